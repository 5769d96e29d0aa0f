//! A small docker token server for `docker-registry`'s `auth.token` mode: RS256 JWTs carrying
//! an `x5c` chain of one self-signed certificate (made with the `openssl` CLI, which also signs),
//! granting every requested action to [`super::USER`] / [`super::PASSWORD`], nothing to others.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub const SERVICE: &str = "kiln-test-registry";
pub const ISSUER: &str = "kiln-test-issuer";

/// The token server; serves until dropped.
pub struct TokenServer {
    pub addr: SocketAddr,
    /// PEM certificate the registry trusts (`rootcertbundle`).
    pub cert: PathBuf,
    pub issued: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn openssl(args: &[&str], cwd: &Path) -> Vec<u8> {
    let output = Command::new("openssl").args(args).current_dir(cwd).output().expect("run openssl");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

struct Keys {
    key: PathBuf,
    cert_der_b64: String,
}

impl TokenServer {
    pub fn start(dir: &Path) -> Self {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=kiln-test-token",
            ],
            dir,
        );
        let der = openssl(&["x509", "-in", "token.crt", "-outform", "DER"], dir);
        let keys = Arc::new(Keys { key: dir.join("token.key"), cert_der_b64: STANDARD.encode(der) });
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (keys, counter) = (keys.clone(), counter.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let response = issue(&request, &keys, &counter);
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, cert: dir.join("token.crt"), issued, runtime: Some(runtime) }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn issue(request: &Request<Incoming>, keys: &Keys, counter: &AtomicUsize) -> Response<Full<bytes::Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(bytes::Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    let expected = format!("Basic {}", STANDARD.encode(format!("{}:{}", super::USER, super::PASSWORD)));
    if request.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return reply(StatusCode::UNAUTHORIZED, r#"{"details":"invalid credentials"}"#.into());
    }
    let mut access = Vec::new();
    for pair in request.uri().query().unwrap_or("").split('&') {
        let Some(scope) = pair.strip_prefix("scope=") else { continue };
        for scope in percent_decode(scope).split(' ') {
            let parts: Vec<&str> = scope.splitn(3, ':').collect();
            if let [kind, name, actions] = parts[..] {
                access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
            }
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [keys.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": super::USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("kiln-{n}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(&keys.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl dgst -sign failed");
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(output.stdout));
    reply(StatusCode::OK, serde_json::json!({"token": token, "expires_in": 300}).to_string())
}

//! Test support: a real `docker-registry` on 127.0.0.1 (`testkit::registry`), an
//! authenticating / fault-injecting proxy with a token server in front of it, and helpers.

#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use registry::{AuthConfig, Client, ClientOptions, Event, Progress};

pub use testkit::registry::{Auth, PASSWORD, RegistryServer, USER};

/// A loopback address where nothing listens, reserved for as long as the returned socket lives
/// (bound, never listening: connections are refused, and no other process can take the port).
pub fn refused_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

pub mod token_server;

/// A client for tests: fast retries, credentials files in `auth_dir` (none present unless the
/// test writes them).
pub fn client(auth_dir: &Path) -> Client {
    Client::new(options(auth_dir)).unwrap()
}

pub fn options(auth_dir: &Path) -> ClientOptions {
    ClientOptions {
        auth: AuthConfig {
            file: auth_dir.join("kiln-auth.json"),
            fallback: Some(auth_dir.join("docker/config.json")),
        },
        initial_backoff: Duration::from_millis(10),
        max_attempts: 4,
        ..ClientOptions::default()
    }
}

/// A progress sink collecting events.
pub fn recorder() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (Progress::new(move |e| sink.lock().unwrap().push(e)), events)
}

/// A store in a fresh temp dir.
pub fn store() -> (tempfile::TempDir, cache::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = cache::Store::open(&dir.path().join("root")).unwrap();
    (dir, store)
}

/// Files under `root/tmp` (temp files of the store), to check nothing is left behind.
pub fn leftover_temp_files(store: &cache::Store) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![store.root().join("tmp")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|e| e != "lock") {
                out.push(path);
            }
        }
    }
    out
}

/// Every blob in the store hashes to its name.
pub fn assert_store_consistent(store: &cache::Store) {
    let content = store.content();
    for digest in content.list().unwrap() {
        content.read(&digest).unwrap_or_else(|e| panic!("blob {digest} corrupt: {e}"));
    }
    for record in store.images().list().unwrap() {
        content
            .read_image(&record.target)
            .unwrap_or_else(|e| panic!("image {} unreadable: {e}", record.name));
    }
}

/// A fault the proxy injects into responses whose request path contains `path`.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer 500 to the next `times` matching requests.
    ServerError { path: String, times: usize },
    /// Send half the body, then drop the connection, for the next `times` matching requests.
    DropMidBody { path: String, times: usize },
    /// Flip a byte in the middle of the body (same length).
    Corrupt { path: String },
    /// Serve only the first half of the body (with a matching Content-Length).
    Truncate { path: String },
    /// Serve `body` with `content_type` instead.
    Replace { path: String, body: Vec<u8>, content_type: String },
    /// Answer this status with an empty body.
    Status { path: String, status: u16 },
    /// Hold matching requests until `until` of them are held at once (then, after a grace for
    /// more to arrive, release them all and pass later ones through), or 20 s passed; the most
    /// requests held at once is [`Proxy::max_concurrent_delayed`]. Synchronises on the requests
    /// themselves, not on a delay a loaded machine could outrun: a client that sends fewer at
    /// once never reaches `until` (and the count shows it); one that sends more shows more.
    Hold { path: String, until: usize },
    /// Send half the body, count the transfer in [`Proxy::stalled`], then send nothing more
    /// until the client goes away (or 60 s pass): a download in progress, to cancel.
    StallMidBody { path: String },
}

impl Fault {
    fn path(&self) -> &str {
        match self {
            Fault::ServerError { path, .. }
            | Fault::DropMidBody { path, .. }
            | Fault::Corrupt { path }
            | Fault::Truncate { path }
            | Fault::Replace { path, .. }
            | Fault::Status { path, .. }
            | Fault::Hold { path, .. }
            | Fault::StallMidBody { path } => path,
        }
    }
}

/// Bearer auth the proxy enforces: tokens from its `/token` endpoint (basic auth with
/// [`USER`]/[`PASSWORD`] when `require_login`).
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth {
    pub require_login: bool,
}

#[derive(Default)]
struct ProxyState {
    faults: Vec<Fault>,
    bearer: Option<BearerAuth>,
    /// token → granted scopes (`repository:name:actions`).
    tokens: Vec<(String, Vec<String>)>,
    requests: Vec<String>,
    token_requests: usize,
    /// Held requests ([`Fault::Hold`]) now, and the most at any time.
    delayed_now: usize,
    delayed_max: usize,
    /// The hold was released: matching requests pass.
    hold_open: bool,
    hold_changed: Arc<tokio::sync::Notify>,
    /// Transfers stalled by [`Fault::StallMidBody`] so far.
    stalled: usize,
}

/// A proxy in front of a registry, on its own port, serving until dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    runtime: Option<tokio::runtime::Runtime>,
}

type Body = BoxBody<Bytes, std::io::Error>;

impl Proxy {
    pub fn start(upstream: SocketAddr, bearer: Option<BearerAuth>) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState { bearer, ..ProxyState::default() }));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let shared = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, http) = (shared.clone(), http.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        handle(request, upstream, addr, state.clone(), http.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, runtime: Some(runtime) }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Removes every fault and resets [`Proxy::max_concurrent_delayed`].
    pub fn clear(&self) {
        let mut state = self.state.lock().unwrap();
        state.faults.clear();
        state.delayed_max = 0;
        state.hold_open = false;
    }

    /// `METHOD path` of every request forwarded so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    /// Transfers stalled mid-body by [`Fault::StallMidBody`] so far.
    pub fn stalled(&self) -> usize {
        self.state.lock().unwrap().stalled
    }

    /// The most requests held by a [`Fault::Hold`] at the same time.
    pub fn max_concurrent_delayed(&self) -> usize {
        self.state.lock().unwrap().delayed_max
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = code;
    response
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    own: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    http: reqwest::Client,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/token" {
        return Ok(token(&request, &state));
    }
    let bearer = state.lock().unwrap().bearer;
    if let Some(_auth) = bearer
        && let Some(challenge) = check_bearer(&request, &state, own)
    {
        let mut response = status(StatusCode::UNAUTHORIZED);
        response.headers_mut().insert("www-authenticate", challenge.parse().unwrap());
        return Ok(response);
    }
    state.lock().unwrap().requests.push(format!("{method} {path}"));
    // Take the first matching fault (consuming counted ones).
    let fault = {
        let mut state = state.lock().unwrap();
        let position = state.faults.iter().position(|f| path.contains(f.path()));
        match position {
            Some(i) => {
                let fault = state.faults[i].clone();
                match &mut state.faults[i] {
                    Fault::ServerError { times, .. } | Fault::DropMidBody { times, .. } => {
                        *times -= 1;
                        if *times == 0 {
                            state.faults.remove(i);
                        }
                    }
                    _ => {}
                }
                Some(fault)
            }
            None => None,
        }
    };
    match &fault {
        Some(Fault::ServerError { .. }) => return Ok(status(StatusCode::INTERNAL_SERVER_ERROR)),
        Some(Fault::Status { status: code, .. }) => return Ok(status(StatusCode::from_u16(*code).unwrap())),
        Some(Fault::Hold { until, .. }) => hold(&state, *until).await,
        _ => {}
    }

    let url =
        format!("http://{upstream}{}", request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut forward = http.request(method.clone(), url);
    for (name, value) in request.headers() {
        if name != "host" && name != "authorization" {
            forward = forward.header(name, value);
        }
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let upstream_response = match forward.body(body).send().await {
        Ok(response) => response,
        Err(_) => return Ok(status(StatusCode::BAD_GATEWAY)),
    };
    let mut builder = Response::builder().status(upstream_response.status().as_u16());
    for (name, value) in upstream_response.headers() {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            builder = builder.header(name, value);
        }
    }
    let is_head = method == hyper::Method::HEAD;
    let upstream_length = upstream_response.content_length();
    let mut bytes = upstream_response.bytes().await.unwrap_or_default().to_vec();
    match fault {
        Some(Fault::Corrupt { .. }) if !bytes.is_empty() => {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
        Some(Fault::Truncate { .. }) => bytes.truncate(bytes.len() / 2),
        Some(Fault::Replace { body, content_type, .. }) => {
            bytes = body;
            if let Some(headers) = builder.headers_mut() {
                headers.insert("content-type", content_type.parse().unwrap());
            }
        }
        Some(Fault::StallMidBody { .. }) if bytes.len() > 1 => {
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            let stalled = state.clone();
            let stall = futures::stream::once(async move {
                // counted once the first half is out (this frame is polled after it was sent)
                stalled.lock().unwrap().stalled += 1;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err::<Frame<Bytes>, _>(std::io::Error::other("stalled transfer ended"))
            });
            let first = futures::stream::iter(vec![Ok(Frame::data(half))]);
            let body = StreamBody::new(futures::StreamExt::chain(first, stall)).boxed();
            return Ok(builder.header("content-length", bytes.len()).body(body).unwrap());
        }
        Some(Fault::DropMidBody { .. }) if bytes.len() > 1 => {
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
                vec![Ok(Frame::data(half)), Err(std::io::Error::other("injected connection drop"))];
            let body = StreamBody::new(futures::stream::iter(frames)).boxed();
            return Ok(builder.header("content-length", bytes.len()).body(body).unwrap());
        }
        _ => {}
    }
    if is_head {
        let length = upstream_length.unwrap_or(0);
        return Ok(builder.header("content-length", length).body(full(Bytes::new())).unwrap());
    }
    Ok(builder.header("content-length", bytes.len()).body(full(bytes)).unwrap())
}

/// [`Fault::Hold`]: waits until `until` requests are held (plus a grace for more to show up),
/// the hold was already released, or 20 s passed.
async fn hold(state: &Arc<Mutex<ProxyState>>, until: usize) {
    let changed = {
        let mut state = state.lock().unwrap();
        if state.hold_open {
            return;
        }
        state.delayed_now += 1;
        state.delayed_max = state.delayed_max.max(state.delayed_now);
        state.hold_changed.notify_waiters();
        state.hold_changed.clone()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (open, reached) = {
            let state = state.lock().unwrap();
            (state.hold_open, state.delayed_now >= until)
        };
        if reached && !open {
            // a client that would send more than `until` at once gets the chance to show it
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if open || reached || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    let mut state = state.lock().unwrap();
    state.hold_open = true;
    state.delayed_now -= 1;
    state.hold_changed.notify_waiters();
}

/// `None` if the request carries a token granting what it needs; else the challenge to send.
fn check_bearer(
    request: &Request<Incoming>,
    state: &Arc<Mutex<ProxyState>>,
    own: SocketAddr,
) -> Option<String> {
    let path = request.uri().path();
    let realm = format!("http://{own}/token");
    if path == "/v2/" || path == "/v2" {
        let ok = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer "));
        return (!ok).then(|| format!(r#"Bearer realm="{realm}",service="kiln-test""#));
    }
    let rest = path.strip_prefix("/v2/")?;
    let name = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .find_map(|marker| rest.split_once(marker).map(|(n, _)| n))?;
    let push = !matches!(*request.method(), hyper::Method::GET | hyper::Method::HEAD);
    let action = if push { "pull,push" } else { "pull" };
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let granted = state.lock().unwrap().tokens.iter().any(|(t, scopes)| {
        t == token
            && scopes.iter().any(|s| {
                s.strip_prefix("repository:").and_then(|s| s.rsplit_once(':')).is_some_and(
                    |(repo, actions)| repo == name && (!push || actions.split(',').any(|a| a == "push")),
                )
            })
    });
    (!granted)
        .then(|| format!(r#"Bearer realm="{realm}",service="kiln-test",scope="repository:{name}:{action}""#))
}

fn token(request: &Request<Incoming>, state: &Arc<Mutex<ProxyState>>) -> Response<Body> {
    let mut state = state.lock().unwrap();
    state.token_requests += 1;
    let require_login = state.bearer.is_some_and(|b| b.require_login);
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{USER}:{PASSWORD}"))
    );
    let given = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    if (require_login && given != Some(expected.as_str()))
        || (given.is_some() && given != Some(expected.as_str()))
    {
        return status(StatusCode::UNAUTHORIZED);
    }
    let query = request.uri().query().unwrap_or("");
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .map(|s| s.replace("%3A", ":").replace("%2F", "/").replace("%2C", ",").replace('+', " "))
        .collect();
    let token = format!("tok-{}", state.tokens.len() + 1);
    state.tokens.push((token.clone(), scopes));
    let mut response = Response::new(full(format!(r#"{{"token":"{token}","expires_in":300}}"#)));
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response
}

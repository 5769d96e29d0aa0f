//! The HTTP side of the distribution API: endpoints (scheme and authentication discovered by
//! pinging `/v2/`), authenticated requests with retries, and registry error documents.
//!
//! Every registry gets one [`Endpoint`] per [`Client`], found by `GET /v2/`: HTTPS with
//! certificate verification, or — for loopback hosts and `--insecure-registry` hosts — HTTPS
//! without verification, falling back to plain HTTP. The ping's `401` challenge says whether the
//! registry wants basic auth (credentials sent with every request) or bearer tokens (fetched per
//! repository scope from the token server and cached). A later `401` refreshes the token once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use crate::auth::challenge::{self, Challenge};
use crate::auth::{Credentials, token};
use crate::error::{Error, Result};
use crate::options::ClientOptions;

/// Docker Hub's API host (`docker.io` is only a name).
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Longest error body we read to build a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A distribution API client. Cheap to clone; share one per command so endpoints and tokens
/// are discovered once.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: ClientOptions,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    endpoints: tokio::sync::Mutex<HashMap<String, Arc<Endpoint>>>,
}

/// How a registry wants requests authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// One registry as reached by this client.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) registry: String,
    base: Url,
    http: reqwest::Client,
    mode: Mutex<AuthMode>,
    credentials: Option<Credentials>,
    /// Bearer tokens by scope set.
    tokens: Mutex<HashMap<String, String>>,
}

/// The access a request needs: `repository:<name>:pull[,push]`, plus pull on a mount source.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) repository: String,
    pub(crate) push: bool,
    pub(crate) mount_from: Option<String>,
}

impl Scope {
    pub(crate) fn pull(repository: &str) -> Self {
        Self { repository: repository.to_owned(), push: false, mount_from: None }
    }

    pub(crate) fn push(repository: &str) -> Self {
        Self { repository: repository.to_owned(), push: true, mount_from: None }
    }

    fn scopes(&self) -> Vec<String> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut out = vec![format!("repository:{}:{actions}", self.repository)];
        if let Some(from) = &self.mount_from {
            out.push(format!("repository:{from}:pull"));
        }
        out
    }
}

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self> {
        let build = |verify: bool| {
            reqwest::Client::builder()
                .use_rustls_tls()
                .danger_accept_invalid_certs(!verify)
                .connect_timeout(options.connect_timeout)
                .read_timeout(options.read_timeout)
                .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(Error::HttpClient)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                verified: build(true)?,
                unverified: build(false)?,
                options,
                endpoints: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The HTTP client for a URL outside the distribution API (`ADD <url>`): shared, with this
    /// client's timeouts and user agent; the server's certificate is checked unless its host is
    /// loopback or an insecure registry, as for registries.
    pub fn http_client_for(&self, url: &str) -> &reqwest::Client {
        let host = Url::parse(url).ok().and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
        match host {
            Some(host) if self.inner.options.is_insecure(&host) => &self.inner.unverified,
            _ => &self.inner.verified,
        }
    }

    /// Checks `credentials` against `registry` (what `kiln login` does before saving them):
    /// `Ok` if the registry accepts them or needs none.
    pub async fn check_credentials(&self, registry: &str, credentials: &Credentials) -> Result<()> {
        let endpoint = self.ping(registry, Some(credentials.clone())).await?;
        let mode = endpoint.mode();
        let header = match &mode {
            AuthMode::Anonymous => return Ok(()),
            AuthMode::Basic => basic_header(credentials),
            AuthMode::Bearer { realm, service } => {
                let token = token::fetch(&endpoint.http, realm, service.as_deref(), &[], Some(credentials))
                    .await
                    .map_err(|err| match err {
                        Error::Token { problem, .. } if problem.contains("rejected") => Error::Unauthorized {
                            registry: registry.to_owned(),
                            repository: String::new(),
                            detail: "username or password rejected".into(),
                        },
                        other => other,
                    })?;
                format!("Bearer {token}")
            }
        };
        let url = endpoint.url("/v2/")?;
        let response =
            endpoint.http.get(url).header(AUTHORIZATION, header).send().await.map_err(|source| {
                Error::Connect { registry: registry.to_owned(), url: endpoint.base.to_string(), source }
            })?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::Unauthorized {
                registry: registry.to_owned(),
                repository: String::new(),
                detail: "username or password rejected".into(),
            }),
            status => Err(Error::Status {
                registry: registry.to_owned(),
                method: "GET".into(),
                path: "/v2/".into(),
                status,
                detail: error_detail(response).await,
            }),
        }
    }

    /// The endpoint of `registry`, pinged on first use.
    pub(crate) async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        let mut endpoints = self.inner.endpoints.lock().await;
        if let Some(endpoint) = endpoints.get(registry) {
            return Ok(endpoint.clone());
        }
        let credentials = self.inner.options.auth.credentials(registry)?;
        let endpoint = Arc::new(self.ping(registry, credentials).await?);
        endpoints.insert(registry.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    /// `GET /v2/` over each allowed scheme until one answers; reads the auth challenge.
    async fn ping(&self, registry: &str, credentials: Option<Credentials>) -> Result<Endpoint> {
        let host = if registry == crate::DEFAULT_DOMAIN { DOCKER_HUB_API_HOST } else { registry };
        let options = &self.inner.options;
        let candidates: Vec<(&str, &reqwest::Client)> = schemes(options, registry)
            .iter()
            .map(|&(scheme, verify)| {
                (scheme, if verify { &self.inner.verified } else { &self.inner.unverified })
            })
            .collect();
        for (index, (scheme, http)) in candidates.iter().enumerate() {
            let is_last = index + 1 == candidates.len();
            let invalid = |problem: String| Error::InvalidDocument {
                what: format!("registry address {registry}"),
                problem,
            };
            let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|err| invalid(err.to_string()))?;
            let url = base.join("v2/").map_err(|err| invalid(err.to_string()))?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let err = match http.get(url.clone()).send().await {
                    Ok(response) => {
                        let status = response.status();
                        if status.is_success() || status == StatusCode::UNAUTHORIZED {
                            let mode = auth_mode(registry, response.headers())?;
                            return Ok(Endpoint {
                                registry: registry.to_owned(),
                                base,
                                http: (*http).clone(),
                                mode: Mutex::new(mode),
                                credentials,
                                tokens: Mutex::new(HashMap::new()),
                            });
                        }
                        Error::Status {
                            registry: registry.to_owned(),
                            method: "GET".into(),
                            path: "/v2/".into(),
                            status,
                            detail: error_detail(response).await,
                        }
                    }
                    Err(source) => {
                        Error::Connect { registry: registry.to_owned(), url: url.to_string(), source }
                    }
                };
                if !is_last && matches!(err, Error::Connect { .. }) {
                    tracing::debug!(%registry, %scheme, error = %err, "scheme not usable, trying the next");
                    break;
                }
                if !err.is_transient() || attempt >= options.max_attempts.max(1) {
                    return Err(err);
                }
                tracing::debug!(%registry, attempt, error = %err, "ping failed, retrying");
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        Err(Error::Challenge { registry: registry.to_owned(), challenge: "no usable scheme".into() })
    }

    /// The delay before retry number `attempt` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(10);
        self.inner.options.initial_backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// Sends the request `build` makes (called again for every attempt), authenticated for
    /// `scope`, retrying transient failures up to `attempts` times and a `401` once with fresh
    /// credentials. Returns responses of any status but 401/403, 5xx and 429.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        scope: &Scope,
        attempts: u32,
        build: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Send + Sync),
        on_retry: &(dyn Fn(u32, &Error) + Send + Sync),
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let mut request = build(&endpoint.http)?;
            if let Some(header) = endpoint.authorization(scope).await? {
                request = request.header(AUTHORIZATION, header);
            }
            let request = request.build().map_err(Error::HttpClient)?;
            let (method, path) = (request.method().clone(), request.url().path().to_owned());
            let err = match endpoint.http.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed
                        && endpoint.refresh(scope, response.headers())?
                    {
                        refreshed = true;
                        attempt -= 1;
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        let mut detail = error_detail(response).await;
                        if endpoint.credentials.is_none() {
                            if detail.is_empty() {
                                detail = "authentication required".into();
                            }
                            detail.push_str(&format!(
                                " (no credentials for {}: run `kiln login`)",
                                endpoint.registry
                            ));
                        }
                        return Err(Error::Unauthorized {
                            registry: endpoint.registry.clone(),
                            repository: scope.repository.clone(),
                            detail,
                        });
                    }
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Ok(response);
                    }
                    endpoint.status_error(&method, &path, response).await
                }
                Err(source) => Error::Connect {
                    registry: endpoint.registry.clone(),
                    url: endpoint.base.to_string(),
                    source,
                },
            };
            if !err.is_transient() || attempt >= attempts.max(1) {
                return Err(err);
            }
            on_retry(attempt, &err);
            tracing::debug!(registry = %endpoint.registry, attempt, error = %err, "request failed, retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }
}

impl Endpoint {
    fn mode(&self) -> AuthMode {
        self.mode.lock().map(|m| m.clone()).unwrap_or(AuthMode::Anonymous)
    }

    /// `path` (absolute, starting with `/v2/`) or an absolute URL (upload locations) resolved
    /// against the endpoint.
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|err| Error::UploadProtocol {
            registry: self.registry.clone(),
            problem: format!("invalid location {path:?}: {err}"),
        })
    }

    /// The `Authorization` header for `scope`, fetching a token if needed.
    async fn authorization(&self, scope: &Scope) -> Result<Option<String>> {
        match self.mode() {
            AuthMode::Anonymous => Ok(None),
            AuthMode::Basic => Ok(self.credentials.as_ref().map(basic_header)),
            AuthMode::Bearer { realm, service } => {
                let scopes = scope.scopes();
                let key = scopes.join(" ");
                if let Some(token) = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned()) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let http = self.http.clone();
                let token =
                    token::fetch(&http, &realm, service.as_deref(), &scopes, self.credentials.as_ref())
                        .await?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(key, token.clone());
                }
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// After a `401`: adopts the new challenge and forgets the token of `scope`. False if
    /// retrying cannot help (basic auth without credentials, or credentials already sent).
    fn refresh(&self, scope: &Scope, headers: &HeaderMap) -> Result<bool> {
        let new_mode = auth_mode(&self.registry, headers)?;
        let old_mode = self.mode();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&scope.scopes().join(" "));
        }
        let changed = new_mode != old_mode;
        if let Ok(mut mode) = self.mode.lock() {
            *mode = new_mode.clone();
        }
        Ok(match new_mode {
            AuthMode::Anonymous => changed,
            AuthMode::Basic => changed && self.credentials.is_some(),
            AuthMode::Bearer { .. } => true,
        })
    }

    /// An [`Error::Status`] for a response, with the registry's error message if any.
    pub(crate) async fn status_error(&self, method: &Method, path: &str, response: Response) -> Error {
        let status = response.status();
        Error::Status {
            registry: self.registry.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            status,
            detail: error_detail(response).await,
        }
    }
}

/// The schemes tried for `registry`, in order, and whether certificates are verified: HTTPS
/// with verification, or — for loopback and insecure registries only — unverified HTTPS, then
/// plain HTTP.
fn schemes(options: &ClientOptions, registry: &str) -> &'static [(&'static str, bool)] {
    if options.is_insecure(registry) { &[("https", false), ("http", false)] } else { &[("https", true)] }
}

fn basic_header(credentials: &Credentials) -> String {
    let raw = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// The auth mode a `/v2/` answer asks for (no challenge: anonymous).
fn auth_mode(registry: &str, headers: &HeaderMap) -> Result<AuthMode> {
    let values: Vec<&str> =
        headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return Ok(AuthMode::Anonymous);
    }
    let challenges: Vec<Challenge> = values.iter().flat_map(|v| challenge::parse(v)).collect();
    if let Some(Challenge::Bearer { realm, service, .. }) =
        challenges.iter().find(|c| matches!(c, Challenge::Bearer { .. }))
    {
        return Ok(AuthMode::Bearer { realm: realm.clone(), service: service.clone() });
    }
    if challenges.contains(&Challenge::Basic) {
        return Ok(AuthMode::Basic);
    }
    Err(Error::Challenge { registry: registry.to_owned(), challenge: values.join(", ") })
}

#[derive(Debug, Deserialize)]
struct ErrorDocument {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A short description of an error response: the registry's `errors` document if it sent
/// one, else the start of the body.
pub(crate) async fn error_detail(mut response: Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    if let Ok(document) = serde_json::from_slice::<ErrorDocument>(&body)
        && !document.errors.is_empty()
    {
        return document
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn auth_mode_prefers_bearer_and_rejects_unknown() {
        let mut headers = HeaderMap::new();
        assert_eq!(auth_mode("r", &headers).unwrap(), AuthMode::Anonymous);
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="x""#));
        assert_eq!(auth_mode("r", &headers).unwrap(), AuthMode::Basic);
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="http://t/token",service="s""#),
        );
        assert_eq!(
            auth_mode("r", &headers).unwrap(),
            AuthMode::Bearer { realm: "http://t/token".into(), service: Some("s".into()) }
        );
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate abc"));
        let err = auth_mode("reg.io", &headers).unwrap_err().to_string();
        assert!(err.contains("reg.io") && err.contains("Negotiate"), "{err}");
    }

    #[test]
    fn plain_http_only_for_loopback_and_insecure_registries() {
        let options = ClientOptions {
            insecure_registries: vec!["reg.internal:5000".into()],
            ..ClientOptions::default()
        };
        let insecure: &[(&str, bool)] = &[("https", false), ("http", false)];
        let secure: &[(&str, bool)] = &[("https", true)];
        for registry in ["localhost:5000", "127.0.0.1:43211", "[::1]:5000", "reg.internal:5000"] {
            assert_eq!(schemes(&options, registry), insecure, "{registry}");
        }
        for registry in ["docker.io", "reg.internal:5001", "ghcr.io", "10.0.0.1:5000"] {
            assert_eq!(schemes(&options, registry), secure, "{registry}");
        }
    }

    #[test]
    fn urls_outside_the_api_share_the_registry_tls_settings() {
        let options = ClientOptions {
            insecure_registries: vec!["reg.internal:5000".into(), "files.internal".into()],
            ..ClientOptions::default()
        };
        let client = Client::new(options).unwrap();
        let unverified = &client.inner.unverified;
        for url in [
            "https://127.0.0.1:8443/tool.tar.gz",
            "https://localhost/a",
            "https://[::1]:9000/x",
            "https://reg.internal:5000/f",
            "https://files.internal/f",
        ] {
            assert!(std::ptr::eq(client.http_client_for(url), unverified), "{url}");
        }
        for url in ["https://example.com/f", "https://reg.internal:5001/f", "https://10.0.0.1/f", "not a url"]
        {
            assert!(std::ptr::eq(client.http_client_for(url), &client.inner.verified), "{url}");
        }
    }

    #[test]
    fn scopes_include_mount_source() {
        let mut scope = Scope::push("a/b");
        assert_eq!(scope.scopes(), vec!["repository:a/b:pull,push".to_owned()]);
        scope.mount_from = Some("c/d".into());
        assert_eq!(
            scope.scopes(),
            vec!["repository:a/b:pull,push".to_owned(), "repository:c/d:pull".to_owned()]
        );
        assert_eq!(Scope::pull("x").scopes(), vec!["repository:x:pull".to_owned()]);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let options =
            ClientOptions { initial_backoff: Duration::from_millis(100), ..ClientOptions::default() };
        let client = Client::new(options).unwrap();
        assert_eq!(client.backoff(1), Duration::from_millis(100));
        assert_eq!(client.backoff(2), Duration::from_millis(200));
        assert_eq!(client.backoff(4), Duration::from_millis(800));
        assert_eq!(client.backoff(30), MAX_BACKOFF);
    }
}

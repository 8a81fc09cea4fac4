//! The HTTP machinery: one [`Client`] per process, holding connections, credentials and
//! tokens for every registry it talks to; retries, redirects and re-authentication happen
//! here, below the endpoint methods.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Challenge, Credentials, RegistryAuth, TokenResponse, merge_scopes};
use crate::body::Body;
use crate::error::{Error, RegistryErrors, Result};

/// Settings of a [`Client`]. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (`host` or `host:port`) reached over plain `http://`. Default: none;
    /// `localhost`, `127.0.0.1` and `[::1]` always use http.
    pub insecure_registries: Vec<String>,
    /// Blobs downloaded at once during a pull. Default: 3.
    pub max_concurrent_downloads: usize,
    /// Blobs uploaded at once during a push. Default: 3.
    pub max_concurrent_uploads: usize,
    /// Retries of a request after a connection error, a timeout, 408, 429 or 5xx. Default: 4.
    pub max_retries: u32,
    /// First backoff delay; doubled on each retry, and jittered (half of it, plus a random
    /// part of up to the other half) so that parallel transfers do not retry in step.
    /// Default: 200 ms.
    pub retry_base_delay: Duration,
    /// Longest wait between retries, `Retry-After` included. Default: 30 s.
    pub max_retry_delay: Duration,
    /// How often an interrupted blob download is resumed (or restarted). Default: 5.
    pub resume_attempts: u32,
    /// Upload blobs in chunks of this many bytes (raised to the registry's
    /// `OCI-Chunk-Min-Length`); `None` uploads each blob in one request. Default: `None`.
    pub upload_chunk_size: Option<u64>,
    /// The `User-Agent` header. Default: `wharf/<version>`.
    pub user_agent: String,
    /// Credentials by registry (`host[:port]`, `docker.io` for Docker Hub); they take
    /// precedence over credential files. Default: none.
    pub credentials: HashMap<String, Credentials>,
    /// Credential files to consult (Docker `config.json` format); `None` means
    /// [`credentials::default_files`](crate::credentials::default_files). Default: `None`.
    pub credential_files: Option<Vec<PathBuf>>,
    /// Longest wait for a connection, the TLS handshake included. Default: 30 s.
    pub connect_timeout: Duration,
    /// Longest wait, once the request is sent, for the response's status and headers.
    /// Default: 60 s.
    pub response_timeout: Duration,
    /// The low-speed limit, as curl's `--speed-limit`: a body must arrive at this many
    /// bytes per second on average over each [`low_speed_time`](Self::low_speed_time), or
    /// the request fails with [`Error::TooSlow`] (a blob download then resumes). A server
    /// that stalls or trickles cannot hold a pull. 0 turns the check off. Default: 1024.
    pub low_speed_limit: u64,
    /// The window of [`low_speed_limit`](Self::low_speed_limit), as curl's `--speed-time`.
    /// Default: 30 s.
    pub low_speed_time: Duration,
    /// Deadline of one request, from sending it to the last byte of its body (each retry and
    /// each resumed blob download is a new request). Default: 30 min.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 3,
            max_retries: 4,
            retry_base_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(30),
            resume_attempts: 5,
            upload_chunk_size: None,
            user_agent: concat!("wharf/", env!("CARGO_PKG_VERSION")).to_string(),
            credentials: HashMap::new(),
            credential_files: None,
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// A registry client. Cheap to clone: clones share connections and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    auth: Mutex<HashMap<String, RegistryAuth>>,
}

/// A request body that can be produced again for a retry.
pub(crate) enum ReqBody {
    Empty,
    Bytes(Vec<u8>),
    /// A file (re)opened for each attempt, sent with this length.
    File {
        open: Arc<dyn Fn() -> std::io::Result<std::fs::File> + Send + Sync>,
        len: u64,
    },
}

/// One logical request: retried, redirected and re-authenticated by [`Client::execute`].
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) registry: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: ReqBody,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url, registry: &str, scopes: Vec<String>) -> Req {
        Req {
            method,
            url,
            registry: registry.to_string(),
            scopes,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
        }
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: ReqBody) -> Req {
        self.body = body;
        self
    }
}

/// The scope string for pulling from (and, with `push`, pushing to) a repository.
pub(crate) fn repo_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`), with or without a port.
fn is_local(host: &str) -> bool {
    let h = host_only(host);
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` → `host` (keeping `[v6]` brackets).
fn host_only(host: &str) -> &str {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host; // a bare IPv6 address
    }
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

impl Client {
    /// A client with these settings.
    ///
    /// TLS uses rustls with the *ring* provider and the operating system's trust store.
    ///
    /// # Errors
    /// When the TLS setup or HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Client> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let invalid = |reason: String| Error::Invalid {
            what: "client configuration",
            value: String::new(),
            reason,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_platform_verifier()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                auth: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn auth_state(&self) -> MutexGuard<'_, HashMap<String, RegistryAuth>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `registry` is reached over plain http.
    pub fn is_insecure(&self, registry: &str) -> bool {
        is_local(registry) || self.inner.config.insecure_registries.iter().any(|r| r == registry)
    }

    /// `https://host/v2/` (or `http://` for insecure registries); Docker Hub's API host
    /// for `docker.io`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a registry name that is not a host\[:port\].
    pub fn base_url(&self, registry: &str) -> Result<Url> {
        let host = match registry {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            r => r,
        };
        let scheme = if self.is_insecure(registry) { "http" } else { "https" };
        let url = Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| Error::Invalid {
            what: "registry",
            value: registry.to_string(),
            reason: e.to_string(),
        })?;
        if url.host_str().is_none() || url.path() != "/v2/" || registry.contains(['/', '@', '?', '#']) {
            return Err(Error::Invalid {
                what: "registry",
                value: registry.to_string(),
                reason: "not a host[:port]".into(),
            });
        }
        Ok(url)
    }

    /// Plain http is allowed for this URL only if its host is local or marked insecure.
    fn check_scheme(&self, url: &Url, registry: &str) -> Result<()> {
        if url.scheme() == "https" {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default();
        let hostport = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if url.scheme() == "http" && (self.is_insecure(registry) || self.is_insecure(&hostport) || is_local(host)) {
            return Ok(());
        }
        Err(Error::Insecure { registry: hostport })
    }

    /// The credentials for `registry`: configured, else from credential files (looked
    /// up once, then cached).
    pub(crate) async fn credentials(&self, registry: &str) -> Result<Credentials> {
        if let Some(c) = self.auth_state().get(registry).and_then(|a| a.credentials.clone()) {
            return Ok(c);
        }
        let creds = match self.inner.config.credentials.get(registry) {
            Some(c) => c.clone(),
            None => {
                let files = self
                    .inner
                    .config
                    .credential_files
                    .clone()
                    .unwrap_or_else(crate::credentials::default_files);
                let reg = registry.to_string();
                tokio::task::spawn_blocking(move || crate::credentials::lookup(&reg, &files))
                    .await
                    .map_err(|e| Error::Credentials {
                        source_name: "credential lookup".into(),
                        reason: e.to_string(),
                    })??
            }
        };
        self.auth_state().entry(registry.to_string()).or_default().credentials = Some(creds.clone());
        Ok(creds)
    }

    /// The `Authorization` header for a request with these scopes, from what is known
    /// of the registry's challenge; fetches a token when needed.
    async fn auth_header(&self, registry: &str, scopes: &[String]) -> Result<Option<String>> {
        let challenge = self.auth_state().get(registry).and_then(|a| a.challenge.clone());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(registry).await?.basic_header()),
            Some(Challenge::Bearer { .. }) => {
                let key = merge_scopes(scopes.iter().map(String::as_str)).join(" ");
                if let Some(t) = self.auth_state().get(registry).and_then(|a| a.token(&key).cloned()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self.fetch_token(registry, scopes, &[]).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Requests a token for `scopes` plus `extra` (a challenge's scopes) and caches it
    /// under `scopes`.
    async fn fetch_token(&self, registry: &str, scopes: &[String], extra: &[String]) -> Result<String> {
        let Some(Challenge::Bearer { realm, service, .. }) =
            self.auth_state().get(registry).and_then(|a| a.challenge.clone())
        else {
            return Err(Error::Token {
                realm: String::new(),
                reason: "no bearer challenge".into(),
            });
        };
        let token_err = |reason: String| Error::Token {
            realm: realm.clone(),
            reason,
        };
        let mut url = Url::parse(&realm).map_err(|e| token_err(format!("bad realm: {e}")))?;
        self.check_scheme(&url, registry)?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in merge_scopes(scopes.iter().chain(extra).map(String::as_str)) {
                q.append_pair("scope", &s);
            }
        }
        let creds = self.credentials(registry).await?;
        let auth = creds.basic_header();
        let resp = self
            .send_retrying(&Method::GET, &url, || {
                let mut rb = self.inner.http.get(url.clone());
                if let Some(a) = &auth {
                    rb = rb.header(header::AUTHORIZATION, a);
                }
                Ok(rb)
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = read_capped(&self.inner.config, resp, 64 * 1024)
                .await
                .unwrap_or_default();
            return Err(Error::Unauthorized {
                url: url.to_string(),
                status,
                errors: RegistryErrors::decode(&body),
            });
        }
        if !status.is_success() {
            return Err(token_err(format!("HTTP {status}")));
        }
        let body = read_capped(&self.inner.config, resp, 1024 * 1024).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("malformed answer: {e}")))?;
        let token = parsed
            .into_token()
            .ok_or_else(|| token_err("answer has no token".into()))?;
        let value = token.value.clone();
        let key = merge_scopes(scopes.iter().map(String::as_str)).join(" ");
        self.auth_state()
            .entry(registry.to_string())
            .or_default()
            .tokens
            .insert(key, token);
        Ok(value)
    }

    /// Sends one request built by `build`, retrying connection errors, timeouts, 408, 429
    /// and 5xx with jittered backoff (honouring `Retry-After`). Other statuses are returned.
    pub(crate) async fn send_retrying(
        &self,
        method: &Method,
        url: &Url,
        build: impl Fn() -> Result<reqwest::RequestBuilder>,
    ) -> Result<Response> {
        let config = &self.inner.config;
        let mut attempt = 0;
        loop {
            let send = build()?.timeout(config.request_timeout).send();
            let failure = match tokio::time::timeout(config.response_timeout, send).await {
                Err(_elapsed) => Error::TimedOut {
                    method: method.clone(),
                    url: url.to_string(),
                    phase: "response headers",
                    limit: config.response_timeout,
                    received: 0,
                },
                Ok(Err(e)) if e.is_timeout() => Error::TimedOut {
                    method: method.clone(),
                    url: url.to_string(),
                    phase: if e.is_connect() { "connecting" } else { "the request" },
                    limit: if e.is_connect() {
                        config.connect_timeout
                    } else {
                        config.request_timeout
                    },
                    received: 0,
                },
                Ok(Err(e)) if retryable_transport(&e) => Error::Transport {
                    method: method.clone(),
                    url: url.to_string(),
                    source: e,
                },
                Ok(Err(e)) => {
                    return Err(Error::Transport {
                        method: method.clone(),
                        url: url.to_string(),
                        source: e,
                    });
                }
                Ok(Ok(resp)) => {
                    if attempt < config.max_retries && retryable_status(resp.status()) {
                        let delay = retry_after(&resp)
                            .map(|d| d.min(config.max_retry_delay))
                            .unwrap_or_else(|| self.backoff(attempt));
                        drop(resp);
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            };
            if attempt >= config.max_retries {
                return Err(failure);
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// The delay before retry number `attempt + 1`: `retry_base_delay * 2^attempt`, of which
    /// the upper half is random (equal jitter), at most `max_retry_delay`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let exp = config
            .retry_base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(config.max_retry_delay);
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Executes a logical request: authentication (re-authenticating once on 401),
    /// retries, and redirects for GET/HEAD (without `Authorization` once the redirect
    /// leaves the registry's origin). Returns the final response whatever its status,
    /// except 401/403, which become [`Error::Unauthorized`].
    pub(crate) async fn execute(&self, req: &Req) -> Result<Response> {
        let mut url = req.url.clone();
        self.check_scheme(&url, &req.registry)?;
        let mut reauthed = false;
        let mut redirects = 0;
        let mut send_auth = true;
        loop {
            let auth = if send_auth {
                self.auth_header(&req.registry, &req.scopes).await?
            } else {
                None
            };
            let resp = self
                .send_retrying(&req.method, &url, || {
                    let mut rb = self.inner.http.request(req.method.clone(), url.clone());
                    rb = rb.headers(req.headers.clone());
                    if let Some(a) = &auth {
                        rb = rb.header(header::AUTHORIZATION, a);
                    }
                    match &req.body {
                        ReqBody::Empty => {
                            if req.method == Method::PUT || req.method == Method::POST || req.method == Method::PATCH {
                                rb = rb.header(header::CONTENT_LENGTH, "0");
                            }
                        }
                        ReqBody::Bytes(b) => rb = rb.body(b.clone()),
                        ReqBody::File { open, len } => {
                            let f = open().map_err(|source| Error::Io {
                                what: format!("opening the body of {} {url}", req.method),
                                source,
                            })?;
                            rb = rb
                                .header(header::CONTENT_LENGTH, len.to_string())
                                .body(reqwest::Body::from(tokio::fs::File::from_std(f)));
                        }
                    }
                    Ok(rb)
                })
                .await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && send_auth && !reauthed {
                reauthed = true;
                let challenge = resp
                    .headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter_map(Challenge::parse)
                    // Prefer Bearer when several schemes are offered.
                    .max_by_key(|c| matches!(c, Challenge::Bearer { .. }));
                if let Some(ch) = challenge {
                    self.auth_state().entry(req.registry.clone()).or_default().challenge = Some(ch.clone());
                    match ch {
                        Challenge::Basic => {
                            if self.credentials(&req.registry).await? != Credentials::Anonymous {
                                continue;
                            }
                        }
                        Challenge::Bearer { scope, .. } => {
                            self.fetch_token(&req.registry, &req.scopes, &scope).await?;
                            continue;
                        }
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let body = read_capped(&self.inner.config, resp, 64 * 1024)
                    .await
                    .unwrap_or_default();
                return Err(Error::Unauthorized {
                    url: url.to_string(),
                    status,
                    errors: RegistryErrors::decode(&body),
                });
            }
            if status.is_redirection()
                && (req.method == Method::GET || req.method == Method::HEAD)
                && let Some(loc) = resp.headers().get(header::LOCATION)
            {
                redirects += 1;
                let next = loc
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| Error::Protocol {
                        url: url.to_string(),
                        reason: format!("bad redirect Location {loc:?}"),
                    })?;
                if redirects > 10 {
                    return Err(Error::Protocol {
                        url: url.to_string(),
                        reason: "more than 10 redirects".into(),
                    });
                }
                self.check_scheme(&next, &req.registry)?;
                if !same_origin(&req.url, &next) {
                    send_auth = false;
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// [`execute`](Self::execute), then any non-2xx status becomes an error carrying the
    /// registry's decoded error body.
    pub(crate) async fn execute_ok(&self, req: &Req) -> Result<Response> {
        let resp = self.execute(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(&self.inner.config, &req.method, resp).await)
    }
}

fn retryable_transport(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT
        || s == StatusCode::TOO_MANY_REQUESTS
        || (s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// `Retry-After` in seconds (HTTP dates are not honoured: the backoff applies).
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Turns a non-success response into an error, decoding its JSON error body.
pub(crate) async fn status_error(config: &ClientConfig, method: &Method, resp: Response) -> Error {
    let status = resp.status();
    let url = resp.url().clone();
    let body = read_capped(config, resp, 64 * 1024).await.unwrap_or_default();
    let errors = RegistryErrors::decode(&body);
    if status == StatusCode::METHOD_NOT_ALLOWED || errors.has("UNSUPPORTED") {
        return Error::Unsupported {
            method: method.clone(),
            url: url.to_string(),
            status,
            errors,
        };
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Error::Unauthorized {
            url: url.to_string(),
            status,
            errors,
        };
    }
    Error::Status {
        method: method.clone(),
        url: url.to_string(),
        status,
        errors,
    }
}

/// Reads a whole body of at most `max` bytes; longer bodies are cut at `max` (callers
/// that must refuse them use [`read_limited`]).
pub(crate) async fn read_capped(config: &ClientConfig, resp: Response, max: usize) -> Result<Vec<u8>> {
    let mut body = Body::new(resp, &Method::GET, config);
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Reads a whole body, failing with `too_large(bytes_seen)` as soon as it exceeds `max`
/// (whatever `Content-Length` said).
pub(crate) async fn read_limited(
    config: &ClientConfig,
    resp: Response,
    method: &Method,
    max: u64,
    too_large: impl Fn(u64) -> Error,
) -> Result<Vec<u8>> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(too_large(len));
    }
    let mut body = Body::new(resp, method, config);
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > max {
            return Err(too_large(out.len() as u64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chooses_scheme_by_registry() {
        let c = Client::new(ClientConfig {
            insecure_registries: vec!["reg.lan:5000".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        let cases = [
            ("localhost:5000", "http://localhost:5000/v2/"),
            ("127.0.0.1:41234", "http://127.0.0.1:41234/v2/"),
            ("[::1]:5000", "http://[::1]:5000/v2/"),
            ("reg.lan:5000", "http://reg.lan:5000/v2/"),
            ("reg.lan", "https://reg.lan/v2/"),
            ("ghcr.io", "https://ghcr.io/v2/"),
            ("docker.io", "https://registry-1.docker.io/v2/"),
        ];
        for (reg, want) in cases {
            assert_eq!(c.base_url(reg).unwrap().as_str(), want, "{reg}");
        }
        for bad in ["a/b", "x@y", "", "host:notaport"] {
            assert!(matches!(c.base_url(bad), Err(Error::Invalid { .. })), "{bad}");
        }
        for (host, local) in [
            ("localhost", true),
            ("LOCALHOST:5000", true),
            ("127.0.0.1", true),
            ("127.1.2.3:80", true),
            ("[::1]:5000", true),
            ("::1", true),
            ("127.example.com", false),
            ("localhost.example.com", false),
            ("10.0.0.1:5000", false),
        ] {
            assert_eq!(is_local(host), local, "{host}");
        }
        // Malformed: no panic, and no URL either.
        let _ = is_local("[::1");
        assert!(c.base_url("[::1").is_err());
        let http = Url::parse("http://evil.example/token").unwrap();
        assert!(matches!(c.check_scheme(&http, "ghcr.io"), Err(Error::Insecure { .. })));
        assert!(c.check_scheme(&http, "reg.lan:5000").is_ok());
        assert!(
            c.check_scheme(&Url::parse("http://127.0.0.1:9/x").unwrap(), "ghcr.io")
                .is_ok()
        );
    }

    /// Six transfers failing at once must not retry in step: each delay is half the
    /// exponential step plus a random part of up to the other half.
    #[test]
    fn backoff_grows_with_equal_jitter_under_the_cap() {
        let c = Client::new(ClientConfig {
            retry_base_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(1),
            ..ClientConfig::default()
        })
        .unwrap();
        for attempt in 0..8 {
            let step = (Duration::from_millis(100) * (1 << attempt)).min(Duration::from_secs(1));
            for _ in 0..50 {
                let d = c.backoff(attempt);
                assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
            }
        }
        let delays: std::collections::HashSet<Duration> = (0..6).map(|_| c.backoff(3)).collect();
        assert!(delays.len() > 1, "six retries fired with the same delay");
    }

    #[test]
    fn classifies_retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 400, 401, 404, 405, 501] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}

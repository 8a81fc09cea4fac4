//! Test fixtures: real `docker-registry` processes, a token issuer, and a hostile HTTP server.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A free TCP port on 127.0.0.1 (bound and released: the registry binds it right after).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How a test registry authenticates.
pub enum Auth {
    None,
    /// htpasswd with these users (bcrypt, made here).
    Htpasswd(Vec<(String, String)>),
    /// `auth: token` trusting this issuer.
    Token(Arc<TokenIssuer>),
}

/// A real `docker-registry` process on 127.0.0.1, killed on drop.
pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host: String,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        Self::start_with(auth, true)
    }

    pub fn start_with(auth: Auth, delete: bool) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package"
        );
        let dir = tempfile::tempdir().unwrap();
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Htpasswd(users) => {
                let path = dir.path().join("htpasswd");
                let mut f = std::fs::File::create(&path).unwrap();
                for (u, p) in users {
                    // The registry accepts only bcrypt entries.
                    let h = bcrypt::hash(p, 4).unwrap();
                    writeln!(f, "{u}:{h}").unwrap();
                }
                format!(
                    "auth:\n  htpasswd:\n    realm: wharf-basic\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token(issuer) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                issuer.realm(),
                TokenIssuer::SERVICE,
                TokenIssuer::ISSUER,
                issuer.cert_pem.display()
            ),
        };
        // A port can be taken between finding it free and the registry binding it: retry.
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: wharf-test-secret\n{auth_yaml}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Someone else may own the port (our child then fails to bind and
                    // exits): make sure ours is the one still running.
                    std::thread::sleep(Duration::from_millis(150));
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    return Registry {
                        child,
                        dir,
                        port,
                        host: format!("127.0.0.1:{port}"),
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, or bad config; retry on another port
                }
                assert!(Instant::now() < deadline, "docker-registry did not listen on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry failed to start:\n{log}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal token issuer for the registry's `auth: token`: an RSA key and self-signed
/// certificate made with the `openssl` CLI, JWTs (RS256, `x5c` header) signed with it.
/// Users with the right password get every action they ask for; anonymous users get
/// `pull` on repositories under `public/` only.
pub struct TokenIssuer {
    pub dir: tempfile::TempDir,
    pub key_pem: PathBuf,
    pub cert_pem: PathBuf,
    cert_der_b64: String,
    pub addr: SocketAddr,
    pub users: Vec<(String, String)>,
    /// Every token request's query string, for assertions.
    pub requests: Mutex<Vec<String>>,
    /// Lifetime given to tokens.
    pub expires_in: u64,
}

impl TokenIssuer {
    pub const SERVICE: &'static str = "wharf-test-registry";
    pub const ISSUER: &'static str = "wharf-test-issuer";

    pub async fn start(users: Vec<(String, String)>, expires_in: u64) -> Arc<TokenIssuer> {
        let dir = tempfile::tempdir().unwrap();
        let key_pem = dir.path().join("key.pem");
        let cert_pem = dir.path().join("cert.pem");
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=wharf-token",
            ])
            .arg("-keyout")
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert_pem)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl CLI is needed to make the token issuer's key (apt-get install openssl)");
        assert!(st.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert_pem)
            .output()
            .unwrap();
        assert!(der.status.success());
        let cert_der_b64 = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = Arc::new(TokenIssuer {
            dir,
            key_pem,
            cert_pem,
            cert_der_b64,
            addr,
            users,
            requests: Mutex::new(Vec::new()),
            expires_in,
        });
        let me = issuer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let me = me.clone();
                tokio::spawn(async move {
                    let _ = serve_one(sock, move |req| me.answer(&req)).await;
                });
            }
        });
        issuer
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn answer(&self, req: &HttpRequest) -> Vec<u8> {
        let query = req.path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
        self.requests.lock().unwrap().push(query.clone());
        let user = req.header("authorization").and_then(|a| {
            let b = a.strip_prefix("Basic ")?;
            let d = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
            let s = String::from_utf8(d).ok()?;
            let (u, p) = s.split_once(':')?;
            Some((u.to_string(), p.to_string()))
        });
        let subject = match &user {
            Some(c) if self.users.contains(c) => c.0.clone(),
            Some(_) => {
                return response(
                    401,
                    &[("Content-Type", "application/json")],
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
                );
            }
            None => String::new(),
        };
        let mut access = Vec::new();
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if k != "scope" {
                continue;
            }
            let v = percent_decode(v);
            let mut parts = v.splitn(3, ':');
            let (Some(t), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| !subject.is_empty() || (*a == "pull" && name.starts_with("public/")))
                .collect();
            access.push(serde_json::json!({"type": t, "name": name, "actions": actions}));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let claims = serde_json::json!({
            "iss": Self::ISSUER, "sub": subject, "aud": Self::SERVICE,
            "exp": now + self.expires_in, "nbf": now - 10, "iat": now - 10,
            "jti": format!("{now}-{}", self.requests.lock().unwrap().len()),
            "access": access,
        });
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key_pem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let token = format!("{signing_input}.{}", b64(&out.stdout));
        let body = serde_json::json!({"token": token, "expires_in": self.expires_in}).to_string();
        response(200, &[("Content-Type", "application/json")], body.as_bytes())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed HTTP/1.1 request, as the hostile server sees it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 response with `Connection: close` (callers may lie in the headers).
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> std::io::Result<Option<HttpRequest>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while body.len() < len {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Ok(Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }))
}

async fn serve_one(
    mut sock: tokio::net::TcpStream,
    handler: impl FnOnce(HttpRequest) -> Vec<u8> + Send + 'static,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut sock).await? else {
        return Ok(());
    };
    let resp = tokio::task::spawn_blocking(move || handler(req)).await.unwrap();
    sock.write_all(&resp).await?;
    sock.shutdown().await?;
    Ok(())
}

/// What the hostile server does with one request.
pub enum Reply {
    /// Send these raw bytes and close.
    Raw(Vec<u8>),
    /// Send the head, then `body_len` bytes of `fill`, in 64 KiB pieces, then close
    /// (for huge or endless bodies).
    Stream { head: Vec<u8>, fill: u8, body_len: u64 },
    /// Send and wait as scripted (stalls, trickles, cuts), then close.
    Script(Vec<Step>),
}

/// One step of a scripted reply.
pub enum Step {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Send these bytes one at a time, this long apart (a trickle).
    Trickle(Vec<u8>, Duration),
    /// Wait (a stall).
    Sleep(Duration),
}

type Handler = dyn Fn(&HttpRequest, usize) -> Reply + Send + Sync;

/// An in-process HTTP server answering each request with `handler(request, index)`;
/// every request is recorded.
pub struct Hostile {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl Hostile {
    pub async fn start(handler: impl Fn(&HttpRequest, usize) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let reqs = reqs.clone();
                tokio::spawn(async move {
                    let Ok(Some(req)) = read_request(&mut sock).await else {
                        return;
                    };
                    let index = {
                        let mut r = reqs.lock().unwrap();
                        r.push(req.clone());
                        r.len() - 1
                    };
                    match handler(&req, index) {
                        Reply::Raw(bytes) => {
                            let _ = sock.write_all(&bytes).await;
                        }
                        Reply::Script(steps) => {
                            for step in steps {
                                let sent = match step {
                                    Step::Send(b) => sock.write_all(&b).await,
                                    Step::Trickle(b, gap) => {
                                        let mut r = Ok(());
                                        for byte in b {
                                            r = sock.write_all(&[byte]).await;
                                            if r.is_err() {
                                                break;
                                            }
                                            tokio::time::sleep(gap).await;
                                        }
                                        r
                                    }
                                    Step::Sleep(d) => {
                                        tokio::time::sleep(d).await;
                                        Ok(())
                                    }
                                };
                                if sent.is_err() {
                                    return; // the client hung up: expected
                                }
                            }
                        }
                        Reply::Stream { head, fill, body_len } => {
                            if sock.write_all(&head).await.is_err() {
                                return;
                            }
                            let piece = vec![fill; 64 * 1024];
                            let mut left = body_len;
                            while left > 0 {
                                let n = left.min(piece.len() as u64) as usize;
                                if sock.write_all(&piece[..n]).await.is_err() {
                                    return; // the client hung up: expected
                                }
                                left -= n as u64;
                            }
                        }
                    }
                    let _ = sock.shutdown().await;
                });
            }
        });
        Hostile { addr, requests }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// A client for tests: fast retries, no credential files from the environment.
pub fn client(config: wharf_registry::ClientConfig) -> wharf_registry::Client {
    wharf_registry::Client::new(wharf_registry::ClientConfig {
        retry_base_delay: Duration::from_millis(20),
        credential_files: Some(Vec::new()),
        ..config
    })
    .unwrap()
}

pub fn default_client() -> wharf_registry::Client {
    client(wharf_registry::ClientConfig::default())
}

/// A tar with these regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An uncompressed layer holding one file of `len` patterned bytes (`i % modulus`), and an
/// image config listing its diff_id: what a fake registry serves when the content itself
/// does not matter but a pull must find a layer that unpacking would take.
pub fn pattern_layer(len: usize, modulus: usize) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i % modulus) as u8).collect();
    let layer = tar_of(&[("data", &data)]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        wharf_image::Digest::sha256(&layer)
    );
    (layer, config.into_bytes())
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd_of(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// An image built in `store`: returns the manifest's bytes, digest and media type.
pub struct Built {
    pub bytes: Vec<u8>,
    pub digest: wharf_image::Digest,
    pub media_type: String,
    pub config: wharf_image::Digest,
    pub layers: Vec<wharf_image::Digest>,
}

/// Builds a single-platform image from uncompressed tars; `compression` per layer is
/// "gzip", "zstd" or "none". Docker media types when `docker`.
pub fn build_image(store: &wharf_image::Store, os_arch: (&str, &str), tars: &[(&[u8], &str)], docker: bool) -> Built {
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for (t, comp) in tars {
        diff_ids.push(wharf_image::Digest::sha256(t));
        layers.push(match (*comp, docker) {
            ("gzip", false) => (gzip(t), "application/vnd.oci.image.layer.v1.tar+gzip"),
            ("zstd", false) => (zstd_of(t), "application/vnd.oci.image.layer.v1.tar+zstd"),
            ("none", false) => (t.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
            ("gzip", true) => (gzip(t), wharf_image::media::DOCKER_LAYER_GZIP),
            ("zstd", true) => (zstd_of(t), wharf_image::media::DOCKER_LAYER_ZSTD),
            (_, true) => (t.to_vec(), wharf_image::media::DOCKER_LAYER_TAR),
            (c, _) => panic!("unknown compression {c}"),
        });
    }
    assemble_image(store, os_arch, &layers, &diff_ids, docker)
}

/// Stores an image of these layer blobs (with their media types) and a config listing these
/// diff_ids, as given: nothing checks that they agree, so a test can serve a lying image.
pub fn assemble_image(
    store: &wharf_image::Store,
    os_arch: (&str, &str),
    layer_blobs: &[(Vec<u8>, &str)],
    diff_ids: &[wharf_image::Digest],
    docker: bool,
) -> Built {
    let layers: Vec<_> = layer_blobs
        .iter()
        .map(|(blob, mt)| (store.put_bytes(blob).unwrap(), blob.len(), *mt))
        .collect();
    let diff_ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    let config = serde_json::json!({
        "architecture": os_arch.1, "os": os_arch.0,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    })
    .to_string();
    let cd = store.put_bytes(config.as_bytes()).unwrap();
    let (mt, cmt) = if docker {
        (wharf_image::media::DOCKER_MANIFEST, wharf_image::media::DOCKER_CONFIG)
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": cmt, "size": config.len(), "digest": cd.to_string()},
        "layers": layers.iter().map(|(d, s, m)| serde_json::json!({"mediaType": m, "size": s, "digest": d.to_string()})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let (desc, _) = store.put_manifest(&manifest, Some(mt)).unwrap();
    Built {
        digest: wharf_image::Digest::from_oci(desc.digest()).unwrap(),
        bytes: manifest,
        media_type: mt.to_string(),
        config: cd,
        layers: layers.into_iter().map(|(d, _, _)| d).collect(),
    }
}

pub fn reference(s: &str) -> wharf_image::Reference {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Temporary files left in a store (a failed pull must leave none).
pub fn store_temp_files(store: &wharf_image::Store) -> Vec<PathBuf> {
    let dir = store.root().join(".wharf/tmp");
    std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

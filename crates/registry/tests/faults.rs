//! Faults of the network and the disk, reproduced for real by an in-process server that
//! stalls, trickles, cuts and withholds headers: every pull ends, in a typed error that
//! names the URL, the bytes received and the limit, or in a verified blob. Each test names
//! the fault it reproduces.
#![allow(clippy::unwrap_used)]

mod common;

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Hostile, HttpRequest, Reply, Step, response};
use wharf_image::Digest;
use wharf_registry::{ClientConfig, Error, ManifestRef, Repository};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Fails the test instead of hanging it: the faults under test are hangs.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for 60 s"))
}

/// A one-layer image whose layer requests are answered by `layer(request, n)` (n counts
/// layer requests from 0).
struct Fake {
    server: Hostile,
    reference: wharf_image::Reference,
    layer: Arc<Vec<u8>>,
    layer_digest: Digest,
}

impl Fake {
    async fn start(
        layer_len: usize,
        layer: impl Fn(&HttpRequest, usize, &[u8]) -> Reply + Send + Sync + 'static,
    ) -> Fake {
        let (tar, config) = common::pattern_layer(layer_len, 251);
        let bytes = Arc::new(tar);
        let (cd, ld) = (Digest::sha256(&config), Digest::sha256(&bytes));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{},"digest":"{ld}"}}]}}"#,
            config.len(),
            bytes.len()
        );
        let gets = AtomicUsize::new(0);
        let b = bytes.clone();
        let server = Hostile::start(move |req, _| {
            if req.path.contains("/manifests/") {
                return Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], manifest.as_bytes()));
            }
            if req.path.ends_with(&cd.to_string()) {
                return Reply::Raw(response(200, &[], &config));
            }
            layer(req, gets.fetch_add(1, Ordering::SeqCst), &b)
        })
        .await;
        let reference = common::reference(&format!("{}/faults/repo:t", server.host()));
        Fake {
            server,
            reference,
            layer: bytes,
            layer_digest: ld,
        }
    }

    fn layer_requests(&self) -> Vec<HttpRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&self.layer_digest.to_string()))
            .collect()
    }
}

/// `Range: bytes=N-` of a request.
fn range_from(req: &HttpRequest) -> Option<usize> {
    req.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// The rest of the blob from the request's range (206), or all of it (200).
fn serve_rest(req: &HttpRequest, b: &[u8]) -> Reply {
    match range_from(req) {
        Some(from) => Reply::Raw(response(
            206,
            &[("Content-Range", &format!("bytes {from}-{}/{}", b.len() - 1, b.len()))],
            &b[from..],
        )),
        None => Reply::Raw(response(200, &[], b)),
    }
}

/// Headers announcing the whole blob from `from`, without its body.
fn head_from(req: &HttpRequest, b: &[u8]) -> Vec<u8> {
    let from = range_from(req).unwrap_or(0);
    let len = (b.len() - from).to_string();
    let mut headers = vec![("Content-Length", len.as_str())];
    let range = format!("bytes {from}-{}/{}", b.len() - 1, b.len());
    if from > 0 {
        headers.push(("Content-Range", &range));
    }
    // Headers only: Content-Length announces the body the caller sends (or not).
    response(if from > 0 { 206 } else { 200 }, &headers, b"")
}

fn store() -> (tempfile::TempDir, wharf_image::Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = wharf_image::Store::open(dir.path().join("store")).unwrap();
    (dir, s)
}

/// The error and its causes on one line, as the CLI prints them.
fn chain(e: &Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}

fn fast(config: ClientConfig) -> wharf_registry::Client {
    common::client(ClientConfig {
        low_speed_limit: 1000,
        low_speed_time: Duration::from_millis(500),
        response_timeout: Duration::from_secs(2),
        ..config
    })
}

/// Fault: after the headers, the server sends the blob one byte every 50 ms (20 bytes/s),
/// forever. The low-speed limit ends each attempt; after the resumes, one error names the
/// URL, the bytes received and the limit.
#[tokio::test]
async fn a_blob_that_trickles_is_cut_by_the_low_speed_limit() {
    let fake = Fake::start(100_000, |req, _, b| {
        Reply::Script(vec![
            Step::Send(head_from(req, b)),
            Step::Trickle(b[range_from(req).unwrap_or(0)..].to_vec(), Duration::from_millis(50)),
        ])
    })
    .await;
    let (_d, s) = store();
    let c = fast(ClientConfig {
        resume_attempts: 1,
        ..ClientConfig::default()
    });
    let err = within("a trickled pull", c.pull(&fake.reference, &s, &Default::default()))
        .await
        .unwrap_err();
    let Error::Interrupted {
        attempts, last, url, ..
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(*attempts, 2);
    assert!(url.contains(&fake.layer_digest.to_string()));
    match last.as_ref() {
        Error::TooSlow {
            url, received, limit, ..
        } => {
            assert!(url.contains(&fake.layer_digest.to_string()), "{url}");
            assert!(*received > 0 && *received < 1000, "{received}");
            assert_eq!(*limit, 1000);
        }
        e => panic!("unexpected last failure {e:?}"),
    }
    let line = chain(&err);
    assert!(line.contains("below 1000 bytes/s"), "{line}");
    assert!(!s.has_blob(&fake.layer_digest));
    // The second attempt continued where the first stopped.
    let reqs = fake.layer_requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        range_from(&reqs[1]).is_some_and(|from| from > 0),
        "{:?}",
        reqs[1].headers
    );
}

/// Fault: the server stalls in the middle of the body (half sent, then silence). The stall
/// is cut, the download resumes with `Range` and the blob is stored, verified.
#[tokio::test]
async fn a_blob_that_stalls_mid_body_resumes_and_completes() {
    let fake = Fake::start(300_000, |req, n, b| {
        if n == 0 {
            let mut head = head_from(req, b);
            head.extend_from_slice(&b[..b.len() / 2]);
            Reply::Script(vec![Step::Send(head), Step::Sleep(Duration::from_secs(3600))])
        } else {
            serve_rest(req, b)
        }
    })
    .await;
    let (_d, s) = store();
    let c = fast(ClientConfig::default());
    within("a stalled pull", c.pull(&fake.reference, &s, &Default::default()))
        .await
        .unwrap();
    assert_eq!(s.read_blob(&fake.layer_digest, 1 << 20).unwrap(), *fake.layer);
    let reqs = fake.layer_requests();
    assert_eq!(range_from(&reqs[1]), Some(fake.layer.len() / 2));
}

/// Fault: a server that accepts the request and never answers. The response timeout ends
/// each attempt; the retries end in one `TimedOut` error naming the phase and the limit.
#[tokio::test]
async fn a_server_that_never_sends_headers_times_out() {
    let h = Hostile::start(|_, _| Reply::Script(vec![Step::Sleep(Duration::from_secs(3600))])).await;
    let c = common::client(ClientConfig {
        response_timeout: Duration::from_millis(300),
        max_retries: 2,
        ..ClientConfig::default()
    });
    let repo = Repository::new(&h.host(), "faults/repo").unwrap();
    let err = within(
        "a request without response",
        c.get_manifest(&repo, &ManifestRef::parse("t").unwrap()),
    )
    .await
    .unwrap_err();
    match &err {
        Error::TimedOut { phase, limit, url, .. } => {
            assert_eq!(*phase, "response headers");
            assert_eq!(*limit, Duration::from_millis(300));
            assert!(url.contains("/manifests/t"), "{url}");
        }
        e => panic!("unexpected {e:?}"),
    }
    assert_eq!(h.requests().len(), 3, "one request and two retries");
}

/// Fault: a manifest trickled one byte at a time. Refused by the low-speed limit instead of
/// being waited for.
#[tokio::test]
async fn a_trickled_manifest_is_refused_by_the_low_speed_limit() {
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#.to_vec();
    let h = Hostile::start(move |_, _| {
        let mut head = response(200, &[("Content-Type", OCI_MANIFEST)], &body);
        let split = head.len() - body.len();
        let rest = head.split_off(split);
        Reply::Script(vec![Step::Send(head), Step::Trickle(rest, Duration::from_millis(100))])
    })
    .await;
    let c = fast(ClientConfig::default());
    let repo = Repository::new(&h.host(), "faults/repo").unwrap();
    let err = within(
        "a trickled manifest",
        c.get_manifest(&repo, &ManifestRef::parse("t").unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::TooSlow { .. }), "{err:?}");
}

/// Fault: each request of a blob that streams steadily but slowly outlives the per-request
/// deadline; every attempt continues where the last stopped, and what arrived stays in the
/// store's partial file, which a later pull resumes from.
#[tokio::test]
async fn the_request_deadline_ends_slow_attempts_and_the_partial_file_is_resumed_later() {
    let fake = Fake::start(4 << 20, |req, _, b| {
        let from = range_from(req).unwrap_or(0);
        let mut steps = vec![Step::Send(head_from(req, b))];
        for piece in b[from..].chunks(64 * 1024) {
            steps.push(Step::Send(piece.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(100)));
        }
        Reply::Script(steps)
    })
    .await;
    let (_d, s) = store();
    let slow = common::client(ClientConfig {
        request_timeout: Duration::from_millis(700),
        resume_attempts: 1,
        ..ClientConfig::default()
    });
    let err = within(
        "a pull under a deadline",
        slow.pull(&fake.reference, &s, &Default::default()),
    )
    .await
    .unwrap_err();
    let Error::Interrupted { last, .. } = &err else {
        panic!("unexpected {err:?}")
    };
    assert!(
        matches!(last.as_ref(), Error::TimedOut { phase: "the request", received, .. } if *received > 0),
        "{last:?}"
    );
    let partial = s.partial_path(&fake.layer_digest);
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < fake.layer.len() as u64, "{kept}");
    assert!(common::store_temp_files(&s).is_empty());

    // Another client (as another process would) resumes from the partial file.
    let before = fake.layer_requests().len();
    let c = common::client(ClientConfig::default());
    within("the resumed pull", c.pull(&fake.reference, &s, &Default::default()))
        .await
        .unwrap();
    assert_eq!(s.read_blob(&fake.layer_digest, 8 << 20).unwrap(), *fake.layer);
    assert_eq!(range_from(&fake.layer_requests()[before]), Some(kept as usize));
    assert!(!partial.exists());
}

/// Fault: the connection is cut after 1 MiB, every time. The error says so ("connection
/// closed after 1.0 MiB"), not only "error decoding response body".
#[tokio::test]
async fn a_cut_connection_names_the_bytes_received() {
    let fake = Fake::start(3 << 20, |req, _, b| {
        let from = range_from(req).unwrap_or(0);
        let mut reply = head_from(req, b);
        reply.extend_from_slice(&b[from..(from + (1 << 20)).min(b.len())]);
        Reply::Raw(reply)
    })
    .await;
    let (_d, s) = store();
    let c = common::client(ClientConfig {
        resume_attempts: 1,
        ..ClientConfig::default()
    });
    let err = within("a cut pull", c.pull(&fake.reference, &s, &Default::default()))
        .await
        .unwrap_err();
    let line = chain(&err);
    assert!(line.contains("connection closed after 1.0 MiB"), "{line}");
    assert!(
        matches!(&err, Error::Interrupted { last, .. } if matches!(last.as_ref(), Error::Broken { received, .. } if *received == 1 << 20)),
        "{err:?}"
    );
}

/// Fault: a partial file left by a killed pull, whose bytes were damaged. Resuming re-hashes
/// them, so the digest check fails, nothing is stored, the partial file is removed, and the
/// next pull succeeds from the first byte.
#[tokio::test]
async fn a_damaged_partial_file_is_caught_by_the_digest_and_removed() {
    let fake = Fake::start(200_000, |req, _, b| serve_rest(req, b)).await;
    let (_d, s) = store();
    let partial = s.partial_path(&fake.layer_digest);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let mut damaged = fake.layer[..50_000].to_vec();
    damaged[10] ^= 0xff;
    std::fs::write(&partial, &damaged).unwrap();
    let c = common::default_client();
    let err = c.pull(&fake.reference, &s, &Default::default()).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert_eq!(range_from(&fake.layer_requests()[0]), Some(50_000));
    assert!(!s.has_blob(&fake.layer_digest));
    assert!(!partial.exists());
    c.pull(&fake.reference, &s, &Default::default()).await.unwrap();
    assert_eq!(s.read_blob(&fake.layer_digest, 1 << 20).unwrap(), *fake.layer);
}

/// Fault: gc (what `prune` runs) meets partial files no pull holds; they go.
#[tokio::test]
async fn gc_removes_partial_files_no_pull_holds() {
    let (_d, s) = store();
    let d = Digest::sha256(b"never finished");
    let mut p = s.partial_blob(&d, 100).unwrap();
    std::io::Write::write_all(&mut p, b"never").unwrap();
    drop(p);
    assert_eq!(std::fs::metadata(s.partial_path(&d)).unwrap().len(), 5);
    let report = s.gc().unwrap();
    assert!(report.bytes >= 5);
    assert!(!s.partial_path(&d).exists());
}

/// Fault: a manifest within the 4 MiB cap that lists 20,000 layers (it used to cost a pull
/// ~97 MiB before failing), and one at the limit of 1000 layers whose blobs all fail. A
/// child process pulls both and reports its own peak RSS (`VmHWM`); it must stay under
/// 32 MiB.
#[test]
fn a_manifest_listing_20000_layers_keeps_peak_memory_under_32_mib() {
    const NAME: &str = "a_manifest_listing_20000_layers_keeps_peak_memory_under_32_mib";
    if std::env::var_os("WHARF_FAULTS_RSS_CHILD").is_some() {
        return rss_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env("WHARF_FAULTS_RSS_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: u64 = stdout
        .split("peak-rss-kib: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no peak RSS reported: {stdout}"))
        .parse()
        .unwrap();
    println!("peak RSS of the pulls: {kib} KiB");
    assert!(kib < 32 * 1024, "peak RSS {kib} KiB");
}

fn rss_child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // An image config listing as many diff_ids as the manifest lists layers.
        let config = |n: usize| {
            let diff_ids: Vec<String> = (0..n).map(|i| format!(r#""{}""#, Digest::sha256(&i.to_be_bytes()))).collect();
            format!(
                r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
                diff_ids.join(",")
            )
        };
        let manifest = |n: usize| {
            let layers: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":1000,"digest":"{}"}}"#,
                        Digest::sha256(&i.to_le_bytes())
                    )
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"layers":[{}]}}"#,
                config(n).len(),
                Digest::sha256(config(n).as_bytes()),
                layers.join(",")
            )
        };
        let (huge, at_limit) = (manifest(20_000), manifest(wharf_image::manifest::MAX_DESCRIPTORS));
        let limit_config = config(wharf_image::manifest::MAX_DESCRIPTORS);
        assert!(huge.len() < wharf_image::manifest::MAX_MANIFEST_SIZE);
        let h = Hostile::start(move |req, _| {
            if req.path.ends_with("/manifests/huge") {
                Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], huge.as_bytes()))
            } else if req.path.ends_with("/manifests/limit") {
                Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], at_limit.as_bytes()))
            } else if req.path.ends_with(&Digest::sha256(limit_config.as_bytes()).to_string()) {
                Reply::Raw(response(200, &[], limit_config.as_bytes()))
            } else {
                Reply::Raw(response(404, &[("Content-Type", "application/json")], br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#))
            }
        })
        .await;
        let (_d, s) = store();
        let c = common::default_client();
        let huge = common::reference(&format!("{}/faults/repo:huge", h.host()));
        let err = c.pull(&huge, &s, &Default::default()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Manifest { source: wharf_image::ManifestError::TooManyDescriptors { count: 20_000, .. }, .. }),
            "{err:?}"
        );
        let limit = common::reference(&format!("{}/faults/repo:limit", h.host()));
        let err = c.pull(&limit, &s, &Default::default()).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .to_string();
    println!("peak-rss-kib: {hwm}");
}

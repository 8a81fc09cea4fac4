//! What no real registry does: an in-process server that lies, truncates, loops, throttles
//! and redirects. Each case ends in a typed error or a correct result.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Hostile, Reply, response};
use wharf_image::Digest;
use wharf_registry::{ClientConfig, Credentials, Error, ManifestRef, Repository};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest_body() -> Vec<u8> {
    let d = Digest::sha256(b"cfg");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":3,"digest":"{d}"}},"layers":[]}}"#
    )
    .into_bytes()
}

fn repo(h: &Hostile) -> Repository {
    Repository::new(&h.host(), "evil/repo").unwrap()
}

#[tokio::test]
async fn manifest_with_a_lying_docker_content_digest_is_refused() {
    let body = manifest_body();
    let wrong = Digest::sha256(b"something else").to_string();
    let h = Hostile::start(move |_, _| {
        Reply::Raw(response(
            200,
            &[("Content-Type", OCI_MANIFEST), ("Docker-Content-Digest", &wrong)],
            &body,
        ))
    })
    .await;
    let c = common::default_client();
    let err = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn manifest_by_digest_with_other_content_is_refused() {
    let body = manifest_body();
    let h = Hostile::start(move |_, _| Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], &body))).await;
    let c = common::default_client();
    let asked = Digest::sha256(b"the manifest I wanted");
    let err = c
        .get_manifest(&repo(&h), &ManifestRef::Digest(asked.clone()))
        .await
        .unwrap_err();
    match err {
        Error::DigestMismatch { expected, actual, .. } => {
            assert_eq!(expected, asked);
            assert_eq!(actual, Digest::sha256(&manifest_body()));
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn a_5gb_manifest_content_length_is_refused_before_reading() {
    let h = Hostile::start(|_, _| Reply::Stream {
        head: format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 5000000000\r\n\r\n"
        )
        .into_bytes(),
        fill: b' ',
        body_len: 5_000_000_000,
    })
    .await;
    let c = common::default_client();
    let err = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap_err();
    match err {
        Error::ManifestTooLarge { size, .. } => assert_eq!(size, 5_000_000_000),
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn an_endless_manifest_without_length_is_cut_at_4_mib() {
    // No Content-Length, connection-delimited body of 64 MiB: the cap applies while reading.
    let h = Hostile::start(|_, _| Reply::Stream {
        head: format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {OCI_MANIFEST}\r\n\r\n").into_bytes(),
        fill: b' ',
        body_len: 64 << 20,
    })
    .await;
    let c = common::default_client();
    let err = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap_err();
    match err {
        Error::ManifestTooLarge { size, limit, .. } => {
            assert!(size > limit && size < 8 << 20, "read {size} bytes");
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let body = manifest_body();
    let h = Hostile::start(move |_, i| {
        if i < 2 {
            Reply::Raw(response(
                503,
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
            ))
        } else {
            Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], &body))
        }
    })
    .await;
    let c = common::default_client();
    let m = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap();
    assert_eq!(m.bytes, manifest_body());
    assert_eq!(h.requests().len(), 3);
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_typed_error_with_the_body_decoded() {
    let h = Hostile::start(|_, _| {
        Reply::Raw(response(
            500,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#,
        ))
    })
    .await;
    let c = common::client(ClientConfig {
        max_retries: 2,
        ..ClientConfig::default()
    });
    let err = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap_err();
    match &err {
        Error::Status { status, errors, .. } => {
            assert_eq!(status.as_u16(), 500);
            assert_eq!(errors.0[0].message, "disk on fire");
        }
        e => panic!("unexpected {e:?}"),
    }
    assert_eq!(h.requests().len(), 3, "one try and two retries");
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let body = manifest_body();
    let h = Hostile::start(move |_, i| {
        if i == 0 {
            Reply::Raw(response(
                429,
                &[("Retry-After", "1"), ("Content-Type", "application/json")],
                br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            ))
        } else {
            Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], &body))
        }
    })
    .await;
    let c = common::default_client();
    let started = std::time::Instant::now();
    let m = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap();
    assert_eq!(m.bytes, manifest_body());
    assert_eq!(h.requests().len(), 2);
    // Behaviour, not timing: the client must have waited the second it was told to
    // (its own backoff here is 20 ms).
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn connection_refused_is_retried_then_a_transport_error() {
    let port = common::free_port();
    let c = common::client(ClientConfig {
        max_retries: 1,
        ..ClientConfig::default()
    });
    let err = c.ping(&format!("127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn an_endless_link_loop_is_detected() {
    let h = Hostile::start(|req, _| {
        let (next, tags) = if req.path.contains("last=b") {
            // Points back at the first page.
            (
                "</v2/evil/repo/tags/list?n=2>; rel=\"next\"",
                r#"{"name":"evil/repo","tags":["c","d"]}"#,
            )
        } else {
            (
                "</v2/evil/repo/tags/list?n=2&last=b>; rel=\"next\"",
                r#"{"name":"evil/repo","tags":["a","b"]}"#,
            )
        };
        Reply::Raw(response(
            200,
            &[("Content-Type", "application/json"), ("Link", next)],
            tags.as_bytes(),
        ))
    })
    .await;
    let c = common::default_client();
    let err = c.list_tags(&repo(&h), Some(2)).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(h.requests().len() <= 4, "{}", h.requests().len());
}

#[tokio::test]
async fn tags_paginate_through_link_headers() {
    // A registry that pages its tag list (distribution 2.8 does not).
    let all: Vec<String> = (0..25).map(|i| format!("v{i:02}")).collect();
    let tags = all.clone();
    let h = Hostile::start(move |req, _| {
        let q = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let n: usize = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("n="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let last = q.split('&').find_map(|kv| kv.strip_prefix("last="));
        let start = last.map_or(0, |l| tags.iter().position(|t| t == l).unwrap() + 1);
        let page: Vec<&String> = tags.iter().skip(start).take(n).collect();
        let body = serde_json::json!({"name": "evil/repo", "tags": page}).to_string();
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        if start + n < tags.len() {
            headers.push((
                "Link",
                format!(
                    "</v2/evil/repo/tags/list?n={n}&last={}>; rel=\"next\"",
                    page.last().unwrap()
                ),
            ));
        }
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Reply::Raw(response(200, &hs, body.as_bytes()))
    })
    .await;
    let c = common::default_client();
    let first = c.tags_page(&repo(&h), Some(10), None).await.unwrap();
    assert_eq!(first.items, all[..10]);
    assert!(first.next.is_some());
    assert_eq!(c.list_tags(&repo(&h), Some(10)).await.unwrap(), all);
    assert_eq!(h.requests().len(), 4);
}

#[tokio::test]
async fn a_link_to_another_host_is_refused() {
    let h = Hostile::start(|_, _| {
        Reply::Raw(response(
            200,
            &[
                ("Content-Type", "application/json"),
                (
                    "Link",
                    "<http://127.0.0.2:1/v2/evil/repo/tags/list?last=a>; rel=\"next\"",
                ),
            ],
            br#"{"tags":["a"]}"#,
        ))
    })
    .await;
    let c = common::default_client();
    let err = c.list_tags(&repo(&h), None).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn redirects_to_another_host_do_not_carry_authorization() {
    let blob = b"redirected blob".to_vec();
    let digest = Digest::sha256(&blob);
    let storage = Hostile::start(move |_, _| Reply::Raw(response(200, &[], &blob))).await;
    let target = format!("http://{}/storage/blob?sig=1", storage.host());
    let h = Hostile::start(move |req, _| {
        if req.header("authorization").is_none() {
            Reply::Raw(response(401, &[("WWW-Authenticate", "Basic realm=\"evil\"")], b""))
        } else {
            Reply::Raw(response(307, &[("Location", &target)], b""))
        }
    })
    .await;
    let c = common::client(ClientConfig {
        credentials: [(h.host(), Credentials::basic("u", "p"))].into_iter().collect(),
        ..ClientConfig::default()
    });
    let got = c.get_blob_bytes(&repo(&h), &digest, 1024).await.unwrap();
    assert_eq!(got, b"redirected blob");
    let reg_reqs = h.requests();
    assert!(reg_reqs.last().unwrap().header("authorization").is_some());
    let st_reqs = storage.requests();
    assert_eq!(st_reqs.len(), 1);
    assert_eq!(st_reqs[0].path, "/storage/blob?sig=1");
    assert!(
        st_reqs[0].header("authorization").is_none(),
        "Authorization leaked to the storage host"
    );
}

#[tokio::test]
async fn blob_with_wrong_content_is_refused() {
    let h = Hostile::start(|_, _| Reply::Raw(response(200, &[], b"not what you asked for"))).await;
    let c = common::default_client();
    let asked = Digest::sha256(b"the real blob");
    let err = c.get_blob_bytes(&repo(&h), &asked, 1024).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn method_not_allowed_on_delete_is_unsupported() {
    let h = Hostile::start(|_, _| {
        Reply::Raw(response(
            405,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}"#,
        ))
    })
    .await;
    let c = common::default_client();
    let err = c.delete_manifest(&repo(&h), &Digest::sha256(b"x")).await.unwrap_err();
    match &err {
        Error::Unsupported { errors, .. } => assert!(errors.has("UNSUPPORTED")),
        e => panic!("unexpected {e:?}"),
    }
}

/// How the hostile registry serves the layer blob.
#[derive(Clone, Copy)]
enum LayerMode {
    /// Other bytes of the right length.
    WrongDigest,
    /// The right bytes plus more.
    TooLong,
    /// Content-Length says the whole size; half the bytes, then the connection closes
    /// (the first time). A `Range` request gets 206 with the rest.
    TruncatedThenRange,
    /// Truncated once, and `Range` is ignored (200 with everything).
    TruncatedRangeIgnored,
    /// Truncated every time.
    AlwaysTruncated,
    /// Truncated, then a 206 whose Content-Range does not match what was asked, then
    /// (asked without Range) the whole blob.
    TruncatedBadRange,
}

struct Fake {
    server: Hostile,
    config_len: u64,
    reference: wharf_image::Reference,
    layer: Vec<u8>,
    layer_digest: Digest,
}

async fn fake_registry(mode: LayerMode) -> Fake {
    let (layer, config) = common::pattern_layer(200_000, 253);
    let (cd, ld) = (Digest::sha256(&config), Digest::sha256(&layer));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{},"digest":"{ld}"}}]}}"#,
        config.len(),
        layer.len()
    );
    let l = layer.clone();
    let config_len = config.len() as u64;
    let layer_gets = std::sync::atomic::AtomicUsize::new(0);
    let server = Hostile::start(move |req, _| {
        let len = l.len();
        if req.path.contains("/manifests/") {
            return Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], manifest.as_bytes()));
        }
        if req.path.ends_with(&cd.to_string()) {
            return Reply::Raw(response(200, &[], &config));
        }
        let range_from = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok());
        let half = len / 2;
        // Only the first download breaks, except in AlwaysTruncated mode.
        let first = layer_gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let truncated = || {
            let mut head = response(200, &[("Content-Length", &len.to_string())], b"");
            head.extend_from_slice(&l[..half]);
            Reply::Raw(head)
        };
        match (mode, range_from) {
            (LayerMode::WrongDigest, _) => {
                let mut other = l.clone();
                other[1000] ^= 0xff;
                Reply::Raw(response(200, &[], &other))
            }
            (LayerMode::TooLong, _) => {
                let mut more = l.clone();
                more.extend_from_slice(b"extra");
                Reply::Raw(response(200, &[], &more))
            }
            (LayerMode::TruncatedThenRange, Some(from)) => Reply::Raw(response(
                206,
                &[("Content-Range", &format!("bytes {from}-{}/{len}", len - 1))],
                &l[from..],
            )),
            (LayerMode::TruncatedRangeIgnored, Some(_)) => Reply::Raw(response(200, &[], &l)),
            (LayerMode::TruncatedBadRange, Some(_)) => Reply::Raw(response(
                206,
                &[("Content-Range", &format!("bytes 0-{}/{len}", len - 1))],
                &l,
            )),
            (LayerMode::AlwaysTruncated, _) => truncated(),
            _ if first => truncated(),
            _ => Reply::Raw(response(200, &[], &l)),
        }
    })
    .await;
    let reference = common::reference(&format!("{}/evil/repo:t", server.host()));
    Fake {
        server,
        config_len,
        reference,
        layer,
        layer_digest: ld,
    }
}

fn store() -> (tempfile::TempDir, wharf_image::Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = wharf_image::Store::open(dir.path().join("store")).unwrap();
    (dir, s)
}

#[tokio::test]
async fn pull_of_a_blob_with_the_wrong_digest_stores_nothing() {
    let fake = fake_registry(LayerMode::WrongDigest).await;
    let (_d, s) = store();
    let c = common::default_client();
    let err = c.pull(&fake.reference, &s, &Default::default()).await.unwrap_err();
    match &err {
        Error::DigestMismatch { expected, .. } => assert_eq!(expected, &fake.layer_digest),
        e => panic!("unexpected {e:?}"),
    }
    assert!(!s.has_blob(&fake.layer_digest));
    assert!(
        common::store_temp_files(&s).is_empty(),
        "{:?}",
        common::store_temp_files(&s)
    );
    assert!(s.resolve(&fake.reference).is_err(), "a failed pull tagged the image");
}

#[tokio::test]
async fn pull_of_a_blob_longer_than_its_descriptor_stores_nothing() {
    let fake = fake_registry(LayerMode::TooLong).await;
    let (_d, s) = store();
    let c = common::default_client();
    let err = c.pull(&fake.reference, &s, &Default::default()).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    assert!(!s.has_blob(&fake.layer_digest));
    assert!(common::store_temp_files(&s).is_empty());
}

#[tokio::test]
async fn a_truncated_download_resumes_with_range() {
    let fake = fake_registry(LayerMode::TruncatedThenRange).await;
    let (_d, s) = store();
    let c = common::default_client();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let opts = wharf_registry::PullOptions {
        progress: wharf_registry::Progress::new(move |e: &wharf_registry::ProgressEvent| {
            ev.lock().unwrap().push(e.clone())
        }),
        ..Default::default()
    };
    let pulled = c.pull(&fake.reference, &s, &opts).await.unwrap();
    assert_eq!(s.read_blob(&fake.layer_digest, 1 << 20).unwrap(), fake.layer);
    let half = (fake.layer.len() / 2) as u64;
    let ranges: Vec<String> = fake
        .server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges, [format!("bytes={half}-")]);
    // Only the missing half was downloaded again.
    assert_eq!(pulled.bytes, fake.layer.len() as u64 + fake.config_len);
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&wharf_registry::ProgressEvent::Resumed {
                digest: fake.layer_digest.clone(),
                offset: half
            })
    );
}

#[tokio::test]
async fn a_server_that_ignores_range_makes_the_download_restart() {
    for mode in [LayerMode::TruncatedRangeIgnored, LayerMode::TruncatedBadRange] {
        let fake = fake_registry(mode).await;
        let (_d, s) = store();
        let c = common::default_client();
        c.pull(&fake.reference, &s, &Default::default()).await.unwrap();
        assert_eq!(s.read_blob(&fake.layer_digest, 1 << 20).unwrap(), fake.layer);
        assert!(common::store_temp_files(&s).is_empty());
    }
}

#[tokio::test]
async fn a_download_that_keeps_breaking_is_interrupted_after_bounded_attempts() {
    let fake = fake_registry(LayerMode::AlwaysTruncated).await;
    let (_d, s) = store();
    let c = common::client(ClientConfig {
        resume_attempts: 3,
        ..ClientConfig::default()
    });
    let err = c.pull(&fake.reference, &s, &Default::default()).await.unwrap_err();
    match &err {
        Error::Interrupted { attempts, digest, .. } => {
            assert_eq!(*attempts, 4);
            assert_eq!(digest, &fake.layer_digest);
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(!s.has_blob(&fake.layer_digest));
    assert!(common::store_temp_files(&s).is_empty());
    let layer_gets = fake
        .server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&fake.layer_digest.to_string()))
        .count();
    assert_eq!(layer_gets, 4);
}

#[tokio::test]
async fn insufficient_scope_reauthenticates_once_with_the_challenge_scope() {
    // Tokens are the scopes they were issued for; the manifest needs a second repository's
    // pull scope too, which only the insufficient_scope challenge announces.
    let body = manifest_body();
    let h = Hostile::start(move |req, _| {
        if req.path.starts_with("/token") {
            let q = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
            let scopes: Vec<&str> = q.split('&').filter_map(|kv| kv.strip_prefix("scope=")).collect();
            let token = format!("tok[{}]", scopes.join("+"));
            return Reply::Raw(response(
                200,
                &[("Content-Type", "application/json")],
                serde_json::json!({"token": token, "expires_in": 300}).to_string().as_bytes(),
            ));
        }
        let realm = format!("http://{}/token", req.header("host").unwrap());
        let auth = req.header("authorization").unwrap_or("");
        if req.path == "/v2/" {
            if auth.starts_with("Bearer ") {
                return Reply::Raw(response(200, &[], b"{}"));
            }
            let ch = format!(r#"Bearer realm="{realm}",service="evil""#);
            return Reply::Raw(response(401, &[("WWW-Authenticate", &ch)], b""));
        }
        if auth.contains("evil%2Fextra%3Apull") {
            return Reply::Raw(response(200, &[("Content-Type", OCI_MANIFEST)], &body));
        }
        let ch = format!(
            r#"Bearer realm="{realm}",service="evil",scope="repository:evil/repo:pull repository:evil/extra:pull",error="insufficient_scope""#
        );
        Reply::Raw(response(
            401,
            &[("WWW-Authenticate", &ch), ("Content-Type", "application/json")],
            br#"{"errors":[{"code":"DENIED","message":"insufficient scope"}]}"#,
        ))
    })
    .await;
    let c = common::default_client();
    c.ping(&h.host()).await.unwrap();
    let m = c
        .get_manifest(&repo(&h), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap();
    assert_eq!(m.bytes, manifest_body());
    let token_reqs: Vec<String> = h
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(token_reqs.len(), 3, "{token_reqs:#?}");
    assert!(
        token_reqs[2].contains("scope=repository%3Aevil%2Fextra%3Apull"),
        "{token_reqs:#?}"
    );
    assert!(
        token_reqs[2].contains("scope=repository%3Aevil%2Frepo%3Apull"),
        "{token_reqs:#?}"
    );

    // A registry that still refuses after the one re-authentication: a typed error, and
    // no endless token loop.
    let h2 = Hostile::start(|req, _| {
        if req.path.starts_with("/token") {
            return Reply::Raw(response(200, &[], br#"{"token":"useless"}"#));
        }
        let realm = format!("http://{}/token", req.header("host").unwrap());
        let ch = format!(r#"Bearer realm="{realm}",error="insufficient_scope""#);
        Reply::Raw(response(
            401,
            &[("WWW-Authenticate", &ch)],
            br#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
        ))
    })
    .await;
    let err = c
        .get_manifest(&repo(&h2), &ManifestRef::parse("t").unwrap())
        .await
        .unwrap_err();
    match &err {
        Error::Unauthorized { errors, .. } => assert!(errors.has("DENIED")),
        e => panic!("unexpected {e:?}"),
    }
    assert!(h2.requests().len() <= 4, "{}", h2.requests().len());
}

#[tokio::test]
async fn chunked_uploads_honour_oci_chunk_min_length() {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let got = received.clone();
    let h = Hostile::start(move |req, _| match req.method.as_str() {
        "HEAD" => Reply::Raw(response(404, &[], b"")),
        "POST" => Reply::Raw(response(
            202,
            &[
                ("Location", "/v2/evil/repo/blobs/uploads/u1?state=0"),
                ("OCI-Chunk-Min-Length", "2000"),
            ],
            b"",
        )),
        "PATCH" => {
            let mut all = got.lock().unwrap();
            all.extend_from_slice(&req.body);
            let range = format!("0-{}", all.len() - 1);
            Reply::Raw(response(
                202,
                &[
                    ("Location", "/v2/evil/repo/blobs/uploads/u1?state=1"),
                    ("Range", &range),
                ],
                b"",
            ))
        }
        "PUT" => Reply::Raw(response(201, &[], b"")),
        _ => Reply::Raw(response(400, &[], b"")),
    })
    .await;
    let c = common::client(ClientConfig {
        upload_chunk_size: Some(1000),
        ..ClientConfig::default()
    });
    let data: Vec<u8> = (0..4500u32).map(|i| (i % 241) as u8).collect();
    let d = Digest::sha256(&data);
    let up = c
        .push_blob(
            &repo(&h),
            &d,
            4500,
            &wharf_registry::BlobSource::Bytes(std::sync::Arc::new(data.clone())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(up, wharf_registry::Uploaded::Chunked(3));
    let reqs = h.requests();
    let patches: Vec<(usize, String)> = reqs
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| (r.body.len(), r.header("content-range").unwrap().to_string()))
        .collect();
    assert_eq!(
        patches,
        [
            (2000, "0-1999".to_string()),
            (2000, "2000-3999".into()),
            (500, "4000-4499".into())
        ]
    );
    assert_eq!(*received.lock().unwrap(), data);
    let put = reqs.iter().find(|r| r.method == "PUT").unwrap();
    assert!(
        put.path.contains("state=1") && put.path.contains(&format!("digest={}", d).replace(':', "%3A")),
        "{}",
        put.path
    );
}

#[tokio::test]
async fn referrers_api_answers_are_filtered_by_artifact_type() {
    // A registry with the referrers API that does not apply the artifactType filter itself.
    let (a, b) = (Digest::sha256(b"sig"), Digest::sha256(b"sbom"));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{a}","artifactType":"application/vnd.example.sig"}},{{"mediaType":"{OCI_MANIFEST}","size":2,"digest":"{b}","artifactType":"application/vnd.example.sbom"}}]}}"#
    );
    let h = Hostile::start(move |req, _| {
        if req.path.contains("/referrers/") {
            Reply::Raw(response(
                200,
                &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
                index.as_bytes(),
            ))
        } else {
            Reply::Raw(response(404, &[], b""))
        }
    })
    .await;
    let c = common::default_client();
    let subject = Digest::sha256(b"subject");
    assert_eq!(
        c.referrers(&repo(&h), &subject, None).await.unwrap().manifests().len(),
        2
    );
    let sbom = c
        .referrers(&repo(&h), &subject, Some("application/vnd.example.sbom"))
        .await
        .unwrap();
    assert_eq!(sbom.manifests().len(), 1);
    assert_eq!(sbom.manifests()[0].digest().to_string(), b.to_string());
    let reqs = h.requests();
    assert_eq!(reqs[0].path, format!("/v2/evil/repo/referrers/{subject}"));
    assert!(
        reqs[1].path.ends_with("?artifactType=application%2Fvnd.example.sbom"),
        "{}",
        reqs[1].path
    );
}

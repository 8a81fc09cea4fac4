//! Push from and pull into the store, against a real `docker-registry`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Auth, Registry, build_image, reference, tar_of};
use wharf_image::{Digest, Platform, Store};
use wharf_registry::{Error, Progress, ProgressEvent, PullOptions, PushOptions, Repository};

fn stores() -> (tempfile::TempDir, Store, Store) {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(dir.path().join("a")).unwrap();
    let b = Store::open(dir.path().join("b")).unwrap();
    (dir, a, b)
}

fn blob(store: &Store, d: &Digest) -> Vec<u8> {
    store.read_blob(d, 1 << 30).unwrap()
}

#[tokio::test]
async fn push_then_pull_round_trips_oci_and_docker_gzip_and_zstd() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (_d, src, dst) = stores();
    for (docker, name) in [(false, "round/oci"), (true, "round/docker")] {
        // Different content per variant, so the second pull has nothing in the store yet.
        let t1 = tar_of(&[("etc/hello", name.as_bytes())]);
        let t2 = tar_of(&[("usr/bin/tool", &[docker as u8; 100_000])]);
        let t3 = tar_of(&[("data/plain", name.as_bytes()), ("data/x", b"uncompressed")]);
        let built = build_image(
            &src,
            ("linux", "amd64"),
            &[(&t1, "gzip"), (&t2, "zstd"), (&t3, "none")],
            docker,
        );
        let local = reference(&format!("local.test/{name}:v1"));
        src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
            .unwrap();
        let target = reference(&format!("{}/{name}:v1", reg.host));
        let pushed = c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();
        assert_eq!(pushed.digest, built.digest);
        assert_eq!((pushed.uploaded, pushed.existed), (4, 0), "{name}");

        let pulled = c.pull(&target, &dst, &PullOptions::default()).await.unwrap();
        assert_eq!(pulled.digest, built.digest);
        assert_eq!(pulled.manifest_digest, built.digest);
        assert_eq!(pulled.config_digest, built.config);
        assert_eq!((pulled.fetched, pulled.skipped), (4, 0));
        assert_eq!(pulled.media_type, built.media_type);
        // Byte-identical content, and the image resolves in the destination store.
        assert_eq!(blob(&dst, &built.digest), built.bytes);
        for l in &built.layers {
            assert_eq!(blob(&dst, l), blob(&src, l));
        }
        let image = dst.image(&target, &Platform::new("linux", "amd64", None)).unwrap();
        assert_eq!(image.config_digest, built.config);
        assert_eq!(image.manifest.layers().len(), 3);

        // By digest, into another store: nothing is tagged, the digest resolves.
        let third = Store::open(_d.path().join(format!("by-digest-{docker}"))).unwrap();
        let by_digest = reference(&format!("{}/{name}@{}", reg.host, built.digest));
        let p = c.pull(&by_digest, &third, &PullOptions::default()).await.unwrap();
        assert_eq!(p.digest, built.digest);
        assert_eq!(
            Digest::from_oci(third.resolve(&by_digest).unwrap().digest()).unwrap(),
            built.digest
        );
        assert!(third.list().unwrap().is_empty(), "a pull by digest tagged something");

        // Again: everything is already there.
        let again = c.pull(&target, &dst, &PullOptions::default()).await.unwrap();
        assert_eq!((again.fetched, again.skipped), (0, 4));
        let pushed_again = c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();
        assert_eq!((pushed_again.uploaded, pushed_again.existed), (0, 4));
    }
}

#[tokio::test]
async fn an_index_with_two_platforms_pulls_the_chosen_one() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (_d, src, dst) = stores();
    let amd = build_image(
        &src,
        ("linux", "amd64"),
        &[(&tar_of(&[("arch", b"amd64")]), "gzip")],
        false,
    );
    let arm = build_image(
        &src,
        ("linux", "arm64"),
        &[(&tar_of(&[("arch", b"arm64")]), "gzip")],
        false,
    );
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd.media_type, "size": amd.bytes.len(), "digest": amd.digest.to_string(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": arm.media_type, "size": arm.bytes.len(), "digest": arm.digest.to_string(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    })
    .to_string();
    let (idesc, _) = src
        .put_manifest(index.as_bytes(), Some("application/vnd.oci.image.index.v1+json"))
        .unwrap();
    let local = reference("local.test/multi:v1");
    src.tag(&local, &idesc).unwrap();
    let target = reference(&format!("{}/multi/app:latest", reg.host));
    let pushed = c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();
    assert_eq!(pushed.digest, Digest::sha256(index.as_bytes()));

    let opts = PullOptions {
        platform: "linux/arm64".parse().unwrap(),
        ..PullOptions::default()
    };
    let pulled = c.pull(&target, &dst, &opts).await.unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.manifest_digest, arm.digest);
    assert_eq!(pulled.config_digest, arm.config);
    assert!(dst.has_blob(&arm.config) && !dst.has_blob(&amd.config));
    let image = dst.image(&target, &"linux/arm64".parse().unwrap()).unwrap();
    assert_eq!(image.config_digest, arm.config);

    let opts = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..PullOptions::default()
    };
    let err = c.pull(&target, &dst, &opts).await.unwrap_err();
    match err {
        Error::PlatformNotFound { available, .. } => {
            assert!(
                available.contains("linux/amd64") && available.contains("linux/arm64"),
                "{available}"
            )
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn push_mounts_blobs_from_a_known_source_repository() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (_d, src, _) = stores();
    let built = build_image(
        &src,
        ("linux", "amd64"),
        &[(&tar_of(&[("f", b"mount me")]), "gzip")],
        false,
    );
    let local = reference("local.test/m:v1");
    src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
        .unwrap();
    let first = reference(&format!("{}/team/base:v1", reg.host));
    c.push(&src, &local, &first, &PushOptions::default()).await.unwrap();
    let second = reference(&format!("{}/team/derived:v1", reg.host));
    let opts = PushOptions {
        mount_from: Some(Repository::of(&first).unwrap()),
        ..PushOptions::default()
    };
    let pushed = c.push(&src, &local, &second, &opts).await.unwrap();
    assert_eq!((pushed.mounted, pushed.uploaded, pushed.existed), (2, 0, 0));
    let repo = Repository::of(&second).unwrap();
    for l in &built.layers {
        assert!(c.head_blob(&repo, l).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn progress_events_cover_every_blob() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (_d, src, dst) = stores();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let built = build_image(
        &src,
        ("linux", "amd64"),
        &[
            (&tar_of(&[("big", &big)]), "none"),
            (&tar_of(&[("small", b"s")]), "gzip"),
        ],
        false,
    );
    let local = reference("local.test/p:v1");
    src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
        .unwrap();
    let target = reference(&format!("{}/prog/img:v1", reg.host));
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let push_opts = PushOptions {
        progress: Progress::new(move |e: &ProgressEvent| ev.lock().unwrap().push(e.clone())),
        ..PushOptions::default()
    };
    c.push(&src, &local, &target, &push_opts).await.unwrap();
    let pushed_events = std::mem::take(&mut *events.lock().unwrap());
    let all_blobs: Vec<Digest> = std::iter::once(built.config.clone())
        .chain(built.layers.clone())
        .collect();
    for d in &all_blobs {
        assert!(
            pushed_events
                .iter()
                .any(|e| matches!(e, ProgressEvent::Verified { digest, .. } if digest == d))
        );
    }

    let ev = events.clone();
    let opts = PullOptions {
        progress: Progress::new(move |e: &ProgressEvent| ev.lock().unwrap().push(e.clone())),
        ..PullOptions::default()
    };
    c.pull(&target, &dst, &opts).await.unwrap();
    let got = events.lock().unwrap().clone();
    for d in &all_blobs {
        let size = dst.blob_size(d).unwrap();
        assert!(
            got.contains(&ProgressEvent::Started {
                digest: d.clone(),
                size
            }),
            "{got:?}"
        );
        assert!(got.contains(&ProgressEvent::Verified {
            digest: d.clone(),
            size
        }));
        assert!(got.contains(&ProgressEvent::Bytes {
            digest: d.clone(),
            done: size,
            total: size
        }));
    }
    // The big layer reports intermediate progress.
    let big_layer = &built.layers[0];
    let steps = got
        .iter()
        .filter(|e| matches!(e, ProgressEvent::Bytes { digest, .. } if digest == big_layer))
        .count();
    assert!(steps > 1, "{steps}");

    events.lock().unwrap().clear();
    c.pull(&target, &dst, &opts).await.unwrap();
    let got = events.lock().unwrap().clone();
    assert_eq!(got.len(), all_blobs.len());
    assert!(got.iter().all(|e| matches!(e, ProgressEvent::Skipped { .. })));
}

#[tokio::test]
async fn delete_and_restore_through_references() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (_d, src, _) = stores();
    let built = build_image(&src, ("linux", "amd64"), &[(&tar_of(&[("f", b"x")]), "gzip")], true);
    let local = reference("local.test/d:v1");
    src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
        .unwrap();
    let target = reference(&format!("{}/del/img:v1", reg.host));
    c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();

    let saved = c.delete(&target).await.unwrap();
    assert_eq!(saved.digest, built.digest);
    assert_eq!(saved.bytes, built.bytes);
    let repo = Repository::of(&target).unwrap();
    assert!(
        c.head_manifest(&repo, &wharf_registry::ManifestRef::parse("v1").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(c.restore(&target, &saved).await.unwrap(), built.digest);
    let back = c
        .get_manifest(&repo, &wharf_registry::ManifestRef::parse("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(back.bytes, built.bytes);
    assert_eq!(back.media_type, wharf_image::media::DOCKER_MANIFEST);
}

/// A pull reads each layer as unpacking will while it arrives: an image whose layer a `run`
/// would refuse, or whose config lies about a layer's diff_id or count, is not pulled —
/// typed error, nothing tagged, the layer not stored, no partial file — where the store's
/// `load` and `import` refuse the same.
#[tokio::test]
async fn a_pull_refuses_an_image_whose_layers_unpacking_would_refuse() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (dir, src, _) = stores();
    let good = tar_of(&[("etc/ok", b"fine")]);
    let mut cut = tar_of(&[("etc/big", &[7u8; 5000])]);
    cut.truncate(2000); // inside the file's data
    // Entries after the end-of-archive marker: containerd stops reading, a scanner reads
    // on (a deliberate difference, refused by unpacking).
    let mut trailing = tar_of(&[("etc/ok", b"fine")]);
    trailing.extend_from_slice(&tar_of(&[("etc/hidden", b"unseen")]));
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let zst = "application/vnd.oci.image.layer.v1.tar+zstd";
    let other = Digest::sha256(b"something else");
    let sha = Digest::sha256;
    type Case<'a> = (&'a str, Vec<(Vec<u8>, &'a str)>, Vec<Digest>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("cut", vec![(common::gzip(&cut), gz)], vec![sha(&cut)], "layer refused"),
        (
            "trailing",
            vec![(common::zstd_of(&trailing), zst)],
            vec![sha(&trailing)],
            "layer refused",
        ),
        (
            "diffid",
            vec![(common::gzip(&good), gz)],
            vec![other.clone()],
            "diff_id",
        ),
        (
            "count",
            vec![(common::gzip(&good), gz)],
            vec![sha(&good), sha(&good)],
            "diff_ids",
        ),
        (
            "twice",
            vec![(common::gzip(&good), gz), (common::gzip(&good), gz)],
            vec![sha(&good), other.clone()],
            "two diff_ids",
        ),
    ];
    for (name, layers, diff_ids, says) in cases {
        let built = common::assemble_image(&src, ("linux", "amd64"), &layers, &diff_ids, false);
        let local = reference(&format!("local.test/{name}:v1"));
        src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
            .unwrap();
        let target = reference(&format!("{}/refused/{name}:v1", reg.host));
        c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();

        let dst = Store::open(dir.path().join(format!("dst-{name}"))).unwrap();
        let err = c.pull(&target, &dst, &PullOptions::default()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(says), "{name}: {text}");
        match (&err, name) {
            (Error::LayerRefused { url, digest, .. }, "cut" | "trailing" | "diffid") => {
                assert_eq!(digest, &built.layers[0], "{name}");
                assert!(url.ends_with(&format!("/blobs/{digest}")), "{name}: {url}");
            }
            (Error::Protocol { .. }, "count" | "twice") => {}
            (e, _) => panic!("{name}: unexpected {e:?}"),
        }
        assert!(dst.list().unwrap().is_empty(), "{name}: the refused image was tagged");
        assert!(!dst.has_blob(&built.layers[0]), "{name}: the refused layer was stored");
        assert!(
            !dst.partial_path(&built.layers[0]).exists(),
            "{name}: a partial file was kept"
        );
        assert!(common::store_temp_files(&dst).is_empty(), "{name}");
    }

    // A refused pull leaves the store as it was: a good image (the same layer twice, with
    // the same diff_id) pulls into it afterwards.
    let built = build_image(&src, ("linux", "amd64"), &[(&good, "gzip"), (&good, "gzip")], false);
    let local = reference("local.test/fine:v1");
    src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
        .unwrap();
    let target = reference(&format!("{}/refused/fine:v1", reg.host));
    c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();
    let dst = Store::open(dir.path().join("dst-count")).unwrap();
    let pulled = c.pull(&target, &dst, &PullOptions::default()).await.unwrap();
    assert_eq!(pulled.digest, built.digest);
    assert_eq!(dst.list().unwrap().len(), 1);
}

/// A sink that leaves every layer unchecked, without reading it.
struct Unchecking;

impl wharf_registry::layers::LayerSink for Unchecking {
    fn consume(
        &self,
        _: &wharf_registry::layers::Layer,
        _: &mut (dyn std::io::Read + Send),
    ) -> Result<wharf_registry::layers::Verdict, String> {
        Ok(wharf_registry::layers::Verdict::Unchecked)
    }
}

/// A layer its sink could not judge is checked from the stored blob before the image is named:
/// a sink never weakens the pull's promise.
#[tokio::test]
async fn a_layer_a_sink_leaves_unchecked_is_checked_from_the_blob() {
    let reg = Registry::start(Auth::None);
    let c = common::default_client();
    let (dir, src, _) = stores();
    let mut trailing = tar_of(&[("etc/ok", b"fine")]);
    trailing.extend_from_slice(&tar_of(&[("etc/hidden", b"unseen")]));
    let good = tar_of(&[("etc/ok", b"fine")]);
    let opts = PullOptions {
        layers: Arc::new(Unchecking),
        ..PullOptions::default()
    };
    for (name, tar, ok) in [("good", &good, true), ("trailing", &trailing, false)] {
        let built = build_image(&src, ("linux", "amd64"), &[(tar, "gzip")], false);
        let local = reference(&format!("local.test/unchecked-{name}:v1"));
        src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
            .unwrap();
        let target = reference(&format!("{}/unchecked/{name}:v1", reg.host));
        c.push(&src, &local, &target, &PushOptions::default()).await.unwrap();
        let dst = Store::open(dir.path().join(name)).unwrap();
        let got = c.pull(&target, &dst, &opts).await;
        match (got, ok) {
            (Ok(p), true) => assert_eq!(p.digest, built.digest),
            (Err(Error::LayerRefused { digest, .. }), false) => {
                assert_eq!(digest, built.layers[0]);
                assert!(!dst.has_blob(&built.layers[0]) && dst.list().unwrap().is_empty());
            }
            (r, _) => panic!("{name}: {r:?}"),
        }
    }
}

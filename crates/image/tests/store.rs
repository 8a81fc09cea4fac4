//! The local store against a real filesystem: atomic writes, verification, names, gc, locking.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use common::{make_image, snapshot};
use wharf_image::{Digest, Error, Platform, Reference, Store};

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

#[test]
fn open_creates_a_layout_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let s = Store::open(&root).unwrap();
    assert!(root.join("oci-layout").is_file());
    assert!(root.join("index.json").is_file());
    assert!(root.join("blobs/sha256").is_dir());
    let layout: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    make_image(&s, "busybox", &[vec![("bin/x", b"x")]]);
    let again = Store::open(&root).unwrap();
    assert!(again.resolve(&r("busybox")).is_ok());
}

#[test]
fn a_new_store_and_its_new_parents_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("share/wharf");
    Store::open(&root).unwrap();
    for d in [dir.path().join("share"), root.clone()] {
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
    }
    // An existing directory keeps the mode its owner chose.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&open).unwrap();
    assert_eq!(std::fs::metadata(&open).unwrap().permissions().mode() & 0o777, 0o755);
}

#[test]
fn refuses_a_directory_that_is_not_a_layout_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let before = snapshot(dir.path());
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotALayout { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before);

    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::NotALayout { ref reason, .. } if reason == "no index.json file"),
        "{err}"
    );
    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"9.9"}"#).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(Error::NotALayout { .. })));

    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(Store::open(&file), Err(Error::NotALayout { .. })));
}

/// Fault: several processes create the same new store at once (issue 15: 2–5 of 6
/// concurrent pulls into a fresh `--root` failed with "no oci-layout file").
#[test]
fn concurrent_first_opens_of_a_new_or_empty_directory_all_succeed() {
    for pre_made in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        if pre_made {
            std::fs::create_dir(&root).unwrap();
        }
        let n = 16;
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (root, barrier) = (root.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let s = Store::open(&root)?;
                    s.put_bytes(format!("blob {i}").as_bytes())?;
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let s = Store::open(&root).unwrap();
        for i in 0..n {
            assert!(s.has_blob(&Digest::sha256(format!("blob {i}").as_bytes())));
        }
    }
}

/// Fault: a process was killed while creating the store, leaving `.wharf` and `blobs` but
/// no `oci-layout`. The next open finishes the layout instead of calling it foreign.
#[test]
fn a_layout_left_half_made_by_a_killed_process_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir_all(root.join(".wharf")).unwrap();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join(".tmp-tmp-1-2-3"), b"{\"sch").unwrap();
    let s = Store::open(&root).unwrap();
    assert!(root.join("oci-layout").is_file());
    assert!(!root.join(".tmp-tmp-1-2-3").exists());
    assert!(s.list().unwrap().is_empty());
}

/// Fault: a download killed halfway (its partial blob dropped uncommitted). The next writer
/// of the digest resumes from the kept bytes, and the digest check covers all of them.
#[test]
fn a_partial_blob_is_resumed_by_the_next_writer_and_verified_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("store")).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (d, len) = (Digest::sha256(&data), data.len() as u64);
    let mut w = s.partial_blob(&d, len).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&data[..40_000]).unwrap();
    drop(w);
    let mut w = s.partial_blob(&d, len).unwrap();
    assert_eq!(w.offset(), 40_000);
    w.write_all(&data[40_000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(s.read_blob(&d, 1 << 20).unwrap(), data);
    assert!(!s.partial_path(&d).exists());

    // Restarted (the server could not resume): only what follows counts.
    let other: Vec<u8> = data.iter().rev().copied().collect();
    let od = Digest::sha256(&other);
    let mut w = s.partial_blob(&od, len).unwrap();
    w.write_all(&data[..1000]).unwrap();
    w.restart().unwrap();
    w.write_all(&other).unwrap();
    w.commit().unwrap();
    assert_eq!(s.read_blob(&od, 1 << 20).unwrap(), other);
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_never_visible() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let before = snapshot(dir.path());
    let claimed = Digest::sha256(b"the real content");
    let err = s.put_blob(&b"tampered content"[..], Some(&claimed), None).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { ref digest, .. } if *digest == claimed),
        "{err}"
    );
    assert!(!s.has_blob(&claimed));
    // Truncated: fewer bytes than announced.
    let err = s.put_blob(&b"the real"[..], Some(&claimed), Some(16)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // Oversized.
    let err = s
        .put_blob(&b"the real content and more"[..], Some(&claimed), Some(16))
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before, "no blob and no temp file left behind");

    let (d, n) = s.put_blob(&b"the real content"[..], Some(&claimed), Some(16)).unwrap();
    assert_eq!((d, n), (claimed.clone(), 16));
    assert_eq!(s.read_blob(&claimed, 100).unwrap(), b"the real content");
}

#[test]
fn an_abandoned_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let before = snapshot(dir.path());
    let mut w = s.blob_writer(None, None).unwrap();
    w.write_all(&[7u8; 100_000]).unwrap();
    drop(w); // as if the download was interrupted
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_corrupted_stored_blob_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let d = s.put_bytes(b"{\"a\":1}").unwrap();
    std::fs::write(s.blob_path(&d), b"{\"a\":2}").unwrap();
    assert!(matches!(s.read_blob(&d, 100), Err(Error::Corrupt { .. })));
}

#[test]
fn a_manifest_with_a_missing_blob_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let missing = Digest::sha256(b"never stored");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":12,"digest":"{missing}"}},"layers":[]}}"#
    );
    let before = snapshot(dir.path());
    let err = s.put_manifest(manifest.as_bytes(), None).unwrap_err();
    assert!(matches!(err, Error::BlobNotFound(ref d) if *d == missing), "{err}");
    assert!(matches!(s.put_manifest(b"{oops", None), Err(Error::Manifest(_))));
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn tag_resolve_list_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let desc = make_image(
        &s,
        "localhost:5000/team/app:1.0",
        &[vec![("a", b"1")], vec![("b", b"22")]],
    );
    assert_eq!(
        s.resolve(&r("localhost:5000/team/app:1.0")).unwrap().digest(),
        desc.digest()
    );
    let manifest_digest = Digest::from_oci(desc.digest()).unwrap();
    // By digest, whether or not the digest is named.
    let by_digest = r("localhost:5000/team/app").with_digest(manifest_digest.clone());
    assert_eq!(s.resolve(&by_digest).unwrap().digest(), desc.digest());
    assert!(matches!(
        s.resolve(&r("localhost:5000/team/app:2.0")),
        Err(Error::ImageNotFound(_))
    ));

    let img = s
        .image(&r("localhost:5000/team/app:1.0"), &Platform::default())
        .unwrap();
    assert_eq!(img.manifest.layers().len(), 2);
    assert_eq!(img.config.diff_ids().unwrap().len(), 2);
    assert_eq!(img.config.created(), Some("2024-01-02T03:04:05Z"));

    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    let row = &list[0];
    assert_eq!(row.reference.to_string(), "localhost:5000/team/app:1.0");
    assert_eq!(row.id.as_ref(), Some(img.id()));
    assert_eq!(row.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    let expected: u64 = std::iter::once(desc.size())
        .chain(std::iter::once(img.manifest.config().size()))
        .chain(img.manifest.layers().iter().map(|l| l.size()))
        .sum();
    assert_eq!(row.size, expected);

    // Retagging moves the name; a digest is not a tag.
    let other = make_image(&s, "localhost:5000/team/app:1.0", &[vec![("c", b"333")]]);
    assert_eq!(
        s.resolve(&r("localhost:5000/team/app:1.0")).unwrap().digest(),
        other.digest()
    );
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(matches!(s.tag(&by_digest, &desc), Err(Error::Invalid { .. })));
}

#[test]
fn remove_and_gc_free_only_what_no_image_needs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let shared: Vec<(&str, &[u8])> = vec![("shared", b"base layer")];
    let a = make_image(&s, "a", &[shared.clone(), vec![("only-a", b"aaaa")]]);
    let b = make_image(&s, "b", &[shared, vec![("only-b", b"bbbb")]]);
    let img_a = s.image(&r("a"), &Platform::default()).unwrap();
    let img_b = s.image(&r("b"), &Platform::default()).unwrap();

    // An unreferenced blob written earlier and left over.
    let stray = s.put_bytes(b"stray").unwrap();
    let report = s.gc().unwrap();
    assert_eq!(
        report.removed.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
        vec![stray]
    );

    let report = s.remove(&r("a")).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|(d, _)| d.clone()).collect();
    let mut expected = vec![
        Digest::from_oci(a.digest()).unwrap(),
        img_a.config_digest.clone(),
        Digest::from_oci(img_a.manifest.layers()[1].digest()).unwrap(),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(report.bytes, report.removed.iter().map(|(_, n)| n).sum::<u64>());
    // b is whole, its shared base layer included.
    for l in img_b.manifest.layers() {
        assert!(s.has_blob(&Digest::from_oci(l.digest()).unwrap()));
    }
    assert!(s.image(&r("b"), &Platform::default()).is_ok());
    assert!(s.has_blob(&Digest::from_oci(b.digest()).unwrap()));
    assert!(matches!(s.remove(&r("a")), Err(Error::ImageNotFound(_))));
}

#[test]
fn concurrent_tagging_loses_no_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let desc = make_image(&s, "base", &[vec![("f", b"x")]]);
    let threads = 8;
    let per_thread = 15;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Each thread opens the store itself, as a separate process would.
            let root = dir.path().to_path_buf();
            let desc = desc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let s = Store::open(root).unwrap();
                barrier.wait();
                for i in 0..per_thread {
                    s.tag(&r(&format!("many/t{t}:v{i}")), &desc).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.names().unwrap().len(), 1 + threads * per_thread);
}

#[test]
fn gc_waits_for_a_lease_so_a_pull_in_progress_survives() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    make_image(&s, "keep", &[vec![("k", b"k")]]);
    let lease = s.lease().unwrap();
    // A "pull" writes its blobs before anything references them.
    let layer = s.put_bytes(b"layer of an image being pulled").unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let gc = {
        let s = s.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let report = s.gc().unwrap();
            done.store(true, Ordering::SeqCst);
            report
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!done.load(Ordering::SeqCst), "gc ran while a lease was held");
    // The pull finishes: manifest and tag reference the layer.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = s.put_bytes(config).unwrap();
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":30,"digest":"{layer}"}}]}}"#,
        config.len()
    );
    let (desc, _) = s.put_manifest(m.as_bytes(), None).unwrap();
    s.tag(&r("pulled"), &desc).unwrap();
    drop(lease);
    let report = gc.join().unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(s.has_blob(&layer));
}

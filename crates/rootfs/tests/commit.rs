//! diff / commit / export / listing on real overlay mounts.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Tar, require_root, store_image, tree};
use wharf_image::media::Compression;
use wharf_image::{Reference, Store};
use wharf_rootfs::tar::EntryKind;
use wharf_rootfs::{
    ApplyOptions, CommitOptions, Error, LayerCache, Limits, MountMode, Rootfs, RootfsOptions, list_image_layers,
    list_layer,
};

fn base_layers() -> Vec<Vec<u8>> {
    let mut l1 = Tar::new();
    l1.dir("etc/", 0o755)
        .file("etc/hostname", b"base", 0o644)
        .file("etc/deleted", b"gone soon", 0o644)
        .dir("opt/", 0o755)
        .file("opt/old", b"old", 0o644)
        .dir("opt/sub/", 0o755)
        .file("opt/sub/x", b"x", 0o644)
        .dir("usr/", 0o755)
        .file("usr/keep", b"keep", 0o644)
        .dir("srv/", 0o755)
        .dir("srv/data/", 0o750)
        .file("srv/data/a", b"a", 0o644)
        .dir("srv/data/deep/", 0o755)
        .file("srv/data/deep/b", b"b", 0o600);
    let mut l2 = Tar::new();
    l2.dir("etc/", 0o755)
        .file("etc/.wh.deleted", b"", 0o644)
        .file("etc/added", b"2", 0o600);
    vec![l1.end(), l2.end()]
}

struct Env {
    tmp: tempfile::TempDir,
    store: Store,
    cache: LayerCache,
}

fn env() -> Env {
    require_root("overlayfs mounts");
    let tmp = tempfile::Builder::new()
        .prefix("wharf-rootfs-commit")
        .tempdir()
        .unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let cache = LayerCache::open(tmp.path().join("cache")).unwrap();
    Env { tmp, store, cache }
}

/// Makes changes of every kind inside a container's rootfs.
fn change(root: &std::path::Path) {
    std::fs::write(root.join("etc/hostname"), b"changed").unwrap();
    std::fs::write(root.join("etc/new"), b"new file").unwrap();
    std::fs::remove_file(root.join("etc/added")).unwrap();
    std::fs::remove_dir_all(root.join("opt")).unwrap();
    std::fs::create_dir(root.join("opt")).unwrap();
    std::fs::write(root.join("opt/fresh"), b"fresh").unwrap();
    std::fs::write(root.join("usr/a"), b"linked").unwrap();
    std::fs::hard_link(root.join("usr/a"), root.join("usr/b")).unwrap();
    std::os::unix::fs::symlink("../etc/hostname", root.join("usr/link")).unwrap();
    rustix::fs::setxattr(root.join("usr/a"), "user.note", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    let deep = root.join(format!("usr/{}", "l".repeat(150)));
    std::fs::write(deep, b"long name").unwrap();
    // A renamed lower directory (mv copies when overlayfs refuses the rename).
    let st = std::process::Command::new("mv")
        .arg(root.join("srv/data"))
        .arg(root.join("srv/moved"))
        .status()
        .unwrap();
    assert!(st.success());
    assert!(root.join("srv/moved/deep/b").exists() && !root.join("srv/data").exists());
}

#[test]
fn diff_is_a_layer_that_reproduces_the_container_on_the_image() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/diff:1", &base_layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let c = Rootfs::create(&e.cache, &cached, e.tmp.path().join("c"), &RootfsOptions::default()).unwrap();
    assert_eq!(c.mode(), MountMode::Overlay);
    change(&c.path());
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut blob = Vec::new();
        let d = c.diff(&mut blob, compression).unwrap();
        assert_eq!(d.digest, wharf_image::Digest::sha256(&blob));
        assert_eq!(d.size, blob.len() as u64);
        let listing = list_layer(&blob[..], None, &Limits::default()).unwrap();
        assert_eq!(listing.diff_id, d.diff_id);
        let paths: Vec<_> = listing.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"etc/.wh.added"), "{paths:?}");
        assert!(paths.contains(&"opt/.wh..wh..opq"), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.starts_with("usr/keep")),
            "unchanged file in diff: {paths:?}"
        );
        let b = listing.entries.iter().find(|e| e.path == "usr/b").unwrap();
        assert_eq!((b.kind, b.link.as_deref()), (EntryKind::Hardlink, Some("usr/a")));
        // Base image flattened + diff == the container's view.
        let flat = e.tmp.path().join(format!("flat-{compression:?}"));
        std::fs::create_dir(&flat).unwrap();
        for l in base_layers() {
            common::apply(&flat, &l, &ApplyOptions::default()).unwrap();
        }
        common::apply(&flat, &blob, &ApplyOptions::default()).unwrap();
        let mut want = tree(&c.path());
        let mut got = tree(&flat);
        want.remove("");
        got.remove("");
        assert_eq!(got, want);
    }
}

#[test]
fn commit_adds_an_image_whose_rootfs_is_the_container() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/commit:1", &base_layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let c = Rootfs::create(&e.cache, &cached, e.tmp.path().join("c"), &RootfsOptions::default()).unwrap();
    change(&c.path());
    let name: Reference = "wharf-test/commit:2".parse().unwrap();
    let opts = CommitOptions {
        comment: Some("test commit".into()),
        ..CommitOptions::default()
    };
    let committed = c.commit(&e.store, &image, &name, &opts).unwrap();
    assert_eq!(committed.manifest.layers().len(), 3);
    assert_eq!(committed.config.diff_ids().unwrap().len(), 3);
    assert_eq!(
        committed.config.history().last().unwrap().comment().as_deref(),
        Some("test commit")
    );
    // Same base layers, one new on top.
    assert_eq!(committed.manifest.layers()[..2], image.manifest.layers()[..]);
    let cached2 = e
        .cache
        .ensure_image(&e.store, &committed, &ApplyOptions::default())
        .unwrap();
    let c2 = Rootfs::create(&e.cache, &cached2, e.tmp.path().join("c2"), &RootfsOptions::default()).unwrap();
    let mut want = tree(&c.path());
    let mut got = tree(&c2.path());
    want.remove("");
    got.remove("");
    assert_eq!(got, want);
}

#[test]
fn export_is_the_merged_tree_as_one_tar() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/export:1", &base_layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let c = Rootfs::create(&e.cache, &cached, e.tmp.path().join("c"), &RootfsOptions::default()).unwrap();
    change(&c.path());
    let mut tar = Vec::new();
    let diff_id = c.export(&mut tar).unwrap();
    assert_eq!(diff_id, wharf_image::Digest::sha256(&tar));
    let listing = list_layer(&tar[..], None, &Limits::default()).unwrap();
    assert!(listing.entries.iter().all(|e| !e.whiteout));
    let out = e.tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    common::apply(&out, &tar, &ApplyOptions::default()).unwrap();
    let mut want = tree(&c.path());
    let mut got = tree(&out);
    want.remove("");
    got.remove("");
    assert_eq!(got, want);
    // Copy-mode rootfs export the same content, but cannot diff.
    let copy = Rootfs::create(
        &e.cache,
        &cached,
        e.tmp.path().join("copy"),
        &RootfsOptions {
            mode: Some(MountMode::Copy),
        },
    )
    .unwrap();
    let err = copy.diff(Vec::new(), Compression::Gzip).unwrap_err();
    assert!(matches!(err, Error::Invalid { what: "diff", .. }), "{err}");
}

#[test]
fn image_layers_are_listed_with_sizes_without_extracting() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/list:1", &base_layers());
    let listings = list_image_layers(&e.store, &image, &Limits::default()).unwrap();
    assert_eq!(listings.len(), 2);
    let l1 = &listings[0].1;
    let host = l1.entries.iter().find(|e| e.path == "etc/hostname").unwrap();
    assert_eq!((host.kind, host.size, host.mode), (EntryKind::File, 4, 0o644));
    assert_eq!(l1.files_size, 4 + 9 + 3 + 1 + 4 + 1 + 1);
    let l2 = &listings[1].1;
    assert!(l2.entries.iter().any(|e| e.path == "etc/.wh.deleted" && e.whiteout));
    assert!(e.cache.list().unwrap().is_empty(), "listing extracted something");
}

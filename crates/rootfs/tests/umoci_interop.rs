//! The same multi-layer image unpacked by wharf and by Debian's `umoci unpack` gives
//! identical trees: paths, types, modes, owners, link targets, contents, xattrs, link
//! counts. The image is built here from the real busybox-static binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{H, Tar, gzip, require_root, tree};
use wharf_image::{Digest, Platform};
use wharf_rootfs::{ApplyOptions, LayerCache, MountMode, Rootfs, RootfsOptions};

fn busybox() -> Vec<u8> {
    std::fs::read("/bin/busybox").expect("/bin/busybox missing: install Debian's busybox-static")
}

fn applets() -> Vec<String> {
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Layer 1: a small root filesystem around busybox. Layer 2 deletes files, replaces a
/// directory with an opaque one and adds a hardlink (to a file of its own layer, or with
/// `link_to_lower`, to busybox in layer 1).
fn layers(link_to_lower: bool) -> Vec<Vec<u8>> {
    let bb = busybox();
    let mut l1 = Tar::new();
    l1.dir("bin/", 0o755).file("bin/busybox", &bb, 0o755);
    for a in applets() {
        if a != "busybox" {
            l1.symlink(&format!("bin/{a}"), "busybox");
        }
    }
    l1.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\nshadow:x:42:\nuser:x:1000:\n", 0o644)
        .file_owned("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640, 0, 42)
        .dir("etc/apt/", 0o755)
        .file(
            "etc/apt/sources.list",
            b"deb http://deb.debian.org/debian bookworm main\n",
            0o644,
        )
        .dir("etc/apt/conf.d/", 0o755)
        .file("etc/apt/conf.d/old", b"old", 0o644)
        .dir("tmp/", 0o1777)
        .dir("root/", 0o700)
        .dir("home/", 0o755)
        .header(&H {
            name: b"home/user/",
            typeflag: b'5',
            mode: 0o750,
            uid: 1000,
            gid: 1000,
            ..H::default()
        })
        .file_owned("home/user/.profile", b"export PS1='$ '\n", 0o644, 1000, 1000)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/setuid-tool", b"#!/bin/sh\nid\n", 0o4755)
        .file("usr/bin/setgid-tool", b"#!/bin/sh\nid\n", 0o2755)
        .pax(&[(
            "SCHILY.xattr.security.capability",
            &[1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        )])
        .file("usr/bin/ping", b"#!/bin/sh\necho ping\n", 0o755)
        .dir("usr/share/", 0o755)
        .pax(&[("SCHILY.xattr.user.origin", b"wharf-test")])
        .file("usr/share/readme", b"read me\n", 0o644)
        .pax(&[("path", format!("usr/share/{}", "n".repeat(160)).as_bytes())])
        .file("usr/share/nnnn", b"long name\n", 0o644)
        .dir("dev/", 0o755)
        .node("dev/null", b'3', 1, 3)
        .node("dev/fifo", b'6', 0, 0)
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/junk", b"junk", 0o644)
        .dir("var/log/", 0o755)
        .file("var/log/old.log", b"old log", 0o644)
        .file("var/log/kept.log", b"kept", 0o644);
    let mut l2 = Tar::new();
    l2.dir("bin/", 0o755)
        .file("bin/.wh.ls", b"", 0o644)
        .dir("etc/", 0o755)
        .dir("etc/apt/", 0o755)
        .file("etc/apt/.wh..wh..opq", b"", 0o644)
        .file(
            "etc/apt/sources.list",
            b"deb http://deb.debian.org/debian trixie main\n",
            0o644,
        )
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh.junk", b"", 0o644)
        .dir("var/log/", 0o755)
        .file("var/log/.wh.old.log", b"", 0o644);
    if link_to_lower {
        l2.hardlink("usr/bin/busybox-link", "bin/busybox");
    }
    vec![l1.end(), l2.end()]
}

/// Writes an OCI image layout by hand (what umoci reads) with the image tagged `test`.
fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::sha256(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let blob = gzip(tar);
        let d = put(&blob);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d.to_string(),
            "size": blob.len(),
        }));
        diff_ids.push(Digest::sha256(tar));
    }
    let config = wharf_image::ImageConfig::new_for_layers(&Platform::host(), &diff_ids, None, Vec::new())
        .to_bytes()
        .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "test"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn umoci_unpack(layout: &Path, bundle: &Path) -> std::path::PathBuf {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(bundle)
        .output()
        .expect("umoci not found: install Debian's umoci");
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

fn compare(umoci: &Path, wharf: &Path, what: &str) {
    let mut a = tree(umoci);
    let mut b = tree(wharf);
    // The root directory itself is the unpacker's, not the image's.
    a.remove("");
    b.remove("");
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}: only in umoci: {only_a:?}; only in wharf: {only_b:?}"
    );
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{what}: {k} differs (left: umoci, right: wharf)");
    }
    assert!(a.len() > 250, "{what}: suspiciously small tree ({} entries)", a.len());
    // The comparison covered what it claims to.
    for (path, needle) in [
        ("usr/bin/ping", "security.capability"),
        ("usr/share/readme", "user.origin"),
        ("usr/bin/tool-link", "links=2"),
        ("usr/bin/setuid-tool", "mode=4755"),
        ("tmp", "mode=1777"),
        ("etc/shadow", "owner=0:42"),
        ("home/user", "owner=1000:1000"),
        ("dev/null", "char"),
        ("etc/apt/sources.list", "file 45"),
        ("bin/sh", "symlink -> busybox"),
    ] {
        assert!(
            a[path].contains(needle),
            "{what}: umoci's {path} lacks {needle}: {}",
            a[path]
        );
    }
    for gone in ["bin/ls", "var/cache/junk", "var/log/old.log", "etc/apt/conf.d"] {
        assert!(!a.contains_key(gone), "{what}: {gone} should have been deleted");
    }
}

#[test]
fn wharf_flatten_and_overlay_match_umoci_unpack() {
    require_root("umoci unpack with owners and devices, overlayfs");
    let tmp = tempfile::Builder::new().prefix("wharf-umoci").tempdir().unwrap();
    let ls = layers(false);
    let layout = tmp.path().join("layout");
    write_layout(&layout, &ls);
    let umoci_root = umoci_unpack(&layout, &tmp.path().join("bundle"));

    // Flattened by apply_layer.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for l in &ls {
        common::apply(&flat, &gzip(l), &ApplyOptions::default()).unwrap();
    }
    compare(&umoci_root, &flat, "flatten");

    // Through the store, the layer cache and an overlay rootfs, and its copy fallback.
    let store = wharf_image::Store::open(tmp.path().join("store")).unwrap();
    let image = common::store_image(&store, "wharf-test/umoci:1", &ls);
    let cache = LayerCache::open(tmp.path().join("cache")).unwrap();
    let cached = cache.ensure_image(&store, &image, &ApplyOptions::default()).unwrap();
    let o = Rootfs::create(&cache, &cached, tmp.path().join("ovl"), &RootfsOptions::default()).unwrap();
    assert_eq!(o.mode(), MountMode::Overlay);
    compare(&umoci_root, &o.path(), "overlay");
    // unpack_image: the store's image flattened into a new directory, like umoci.
    let unpacked = tmp.path().join("unpacked");
    let reports = wharf_rootfs::unpack_image(&store, &image, &unpacked, &ApplyOptions::default()).unwrap();
    assert_eq!(reports.len(), 2);
    compare(&umoci_root, &unpacked, "unpack_image");
    let c = Rootfs::create(
        &cache,
        &cached,
        tmp.path().join("copy"),
        &RootfsOptions {
            mode: Some(MountMode::Copy),
        },
    )
    .unwrap();
    compare(&umoci_root, &c.path(), "copy");
}

#[test]
fn hardlink_to_a_lower_layer_matches_umoci_flattened_and_in_overlay() {
    require_root("umoci unpack with owners and devices, overlayfs");
    let tmp = tempfile::Builder::new().prefix("wharf-umoci").tempdir().unwrap();
    let ls = layers(true);
    let layout = tmp.path().join("layout");
    write_layout(&layout, &ls);
    let umoci_root = umoci_unpack(&layout, &tmp.path().join("bundle"));
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for l in &ls {
        common::apply(&flat, &gzip(l), &ApplyOptions::default()).unwrap();
    }
    compare(&umoci_root, &flat, "flatten with a link to a lower layer");
    assert!(tree(&umoci_root)["usr/bin/busybox-link"].contains("links=2"));

    // Overlay-format layers extracted in parallel: the layer linking into its lower one is
    // redone after it, copying the target up as overlayfs would.
    let store = wharf_image::Store::open(tmp.path().join("store")).unwrap();
    let image = common::store_image(&store, "wharf-test/umoci-link:1", &ls);
    let cache = LayerCache::open(tmp.path().join("cache")).unwrap();
    let cached = cache.ensure_image(&store, &image, &ApplyOptions::default()).unwrap();
    assert!(cached[1].path.join("bin/busybox").exists(), "target not copied up");
    assert!(cached[0].path.join("bin/busybox").exists());
    let o = Rootfs::create(&cache, &cached, tmp.path().join("ovl"), &RootfsOptions::default()).unwrap();
    assert_eq!(o.mode(), MountMode::Overlay);
    compare(&umoci_root, &o.path(), "overlay with a link to a lower layer");
}

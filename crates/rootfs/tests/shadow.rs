//! Flattening with a read-ahead of the upper layers ([`Shadow`]): files an upper layer
//! deletes are not written, and the tree is the same as applying every layer in full.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Tar, gzip, require_root, store_image, tree};
use wharf_rootfs::{ApplyOptions, Error, Shadow, apply_layer, unpack_image};

/// Incompressible bytes, so the bottom layer is large next to the clean-up layer above it
/// (unpack_image reads ahead only layers that are small next to those below).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Unpacks `layers` with [`unpack_image`] (which reads the small upper layers ahead) and by
/// applying every layer in full with no shadow; asserts both trees are the same and returns
/// the number of entries left out per layer.
fn unpack_both_ways(layers: &[Vec<u8>]) -> Vec<u64> {
    require_root("flattening layers with owners");
    let tmp = tempfile::tempdir().unwrap();
    let store = wharf_image::Store::open(tmp.path().join("store")).unwrap();
    let image = store_image(&store, "example.com/shadow:1", layers);
    let fast = tmp.path().join("fast");
    let reports = unpack_image(&store, &image, &fast, &ApplyOptions::default()).unwrap();

    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let dir = std::fs::File::open(&full).unwrap();
    for layer in layers {
        let r = apply_layer(&dir, &layer[..], &ApplyOptions::default()).unwrap();
        assert_eq!(r.shadowed, 0, "no shadow given, nothing may be left out");
    }
    std::fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(tree(&fast), tree(&full), "read-ahead unpack differs from a full one");
    reports.iter().map(|r| r.shadowed).collect()
}

#[test]
fn files_a_clean_up_layer_deletes_are_not_written_and_the_tree_is_unchanged() {
    let big = noise(256 * 1024, 1);
    let base = Tar::new()
        .dir("usr/", 0o755)
        .dir("usr/share/", 0o755)
        .dir("usr/share/doc/", 0o755)
        .file("usr/share/doc/a", b"doc a", 0o644)
        .file("usr/share/doc/b", &big, 0o644)
        .dir("usr/share/doc/sub/", 0o755)
        .file("usr/share/doc/sub/c", b"doc c", 0o644)
        .symlink("usr/share/doc/link", "../../bin")
        .hardlink("usr/share/doc/a2", "usr/share/doc/a")
        .node("usr/share/doc/fifo", b'6', 0, 0)
        .dir("usr/share/locale/", 0o755)
        .dir("usr/share/locale/fr/", 0o755)
        .file("usr/share/locale/fr/x.mo", b"fr", 0o644)
        .dir("usr/share/locale/en/", 0o755)
        .file("usr/share/locale/en/x.mo", b"en", 0o644)
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/pkgcache.bin", b"cache", 0o644)
        .dir("opq/", 0o755)
        .file("opq/old", b"old", 0o644)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/tool", b"tool", 0o755)
        .end();
    let cleanup = Tar::new()
        .file("usr/share/.wh.doc", b"", 0o644)
        .file("usr/share/locale/.wh.fr", b"", 0o644)
        .file("var/cache/.wh.pkgcache.bin", b"", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"new", 0o644)
        .end();
    let shadowed = unpack_both_ways(&[base, cleanup]);
    // doc and all 7 entries beneath it, fr and fr/x.mo, pkgcache.bin, opq/old (not opq: a
    // directory made opaque stays).
    assert_eq!(shadowed, vec![12, 0]);
}

#[test]
fn a_link_to_a_left_out_file_from_a_surviving_path_reapplies_the_layer_in_full() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 2), 0o644)
        .dir("doc/", 0o755)
        .file("doc/shared", b"linked from outside doc", 0o644)
        .file("doc/other", b"other", 0o644)
        .hardlink("keep", "doc/shared")
        .end();
    let cleanup = Tar::new().file(".wh.doc", b"", 0o644).end();
    let shadowed = unpack_both_ways(&[base.clone(), cleanup.clone()]);
    assert_eq!(shadowed, vec![0, 0], "the layer was applied again in full");

    // apply_layer itself stops with a typed error naming the link.
    let tmp = tempfile::tempdir().unwrap();
    let mut shadow = Shadow::new(2);
    shadow
        .add_layer(1, &gzip(&cleanup)[..], &ApplyOptions::default())
        .unwrap();
    let opts = ApplyOptions {
        shadow: Some((Arc::new(shadow), 0)),
        ..ApplyOptions::default()
    };
    let dir = std::fs::File::open(tmp.path()).unwrap();
    match apply_layer(&dir, &base[..], &opts) {
        Err(Error::ShadowedLinkTarget { entry, target }) => {
            assert_eq!((entry.as_str(), target.as_str()), ("keep", "doc/shared"));
        }
        other => panic!("expected ShadowedLinkTarget, got {other:?}"),
    }
}

#[test]
fn a_file_written_through_a_symlink_survives_the_whiteout_of_the_symlink() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 3), 0o644)
        .dir("real/", 0o755)
        .symlink("alias", "real")
        .file("alias/f", b"lands in real/", 0o644)
        .end();
    let cleanup = Tar::new().file(".wh.alias", b"", 0o644).end();
    let shadowed = unpack_both_ways(&[base, cleanup]);
    assert_eq!(shadowed, vec![0, 0], "alias/f is reached through a symlink: written");
}

#[test]
fn a_file_linked_from_a_middle_layer_is_written() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 4), 0o644)
        .dir("doc/", 0o755)
        .file("doc/a", b"a", 0o644)
        .file("doc/b", b"b", 0o644)
        .end();
    let middle = Tar::new().hardlink("keep", "doc/a").end();
    let cleanup = Tar::new().file(".wh.doc", b"", 0o644).end();
    let shadowed = unpack_both_ways(&[base, middle, cleanup]);
    assert_eq!(shadowed, vec![1, 0, 0], "doc/b left out, doc/a kept for the link above");
}

#[test]
fn an_entry_beneath_a_left_out_file_fails_as_without_a_shadow() {
    require_root("applying layers with owners");
    let base = Tar::new()
        .dir("doc/", 0o755)
        .file("doc/f", b"a file", 0o644)
        .file("doc/f/child", b"beneath a file", 0o644)
        .end();
    let cleanup = Tar::new().file(".wh.doc", b"", 0o644).end();
    let mut shadow = Shadow::new(2);
    shadow.add_layer(1, &cleanup[..], &ApplyOptions::default()).unwrap();
    assert!(shadow.covers(0) && shadow.covers(1));
    let with = ApplyOptions {
        shadow: Some((Arc::new(shadow), 0)),
        ..ApplyOptions::default()
    };
    for opts in [ApplyOptions::default(), with] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::File::open(tmp.path()).unwrap();
        match apply_layer(&dir, &base[..], &opts) {
            Err(Error::Entry { entry, .. }) => assert_eq!(entry, "doc/f/child"),
            other => panic!("expected an error naming doc/f/child, got {other:?}"),
        }
    }
}

#[test]
fn a_shadow_missing_a_layer_above_is_not_used() {
    require_root("applying layers with owners");
    let base = Tar::new().dir("doc/", 0o755).file("doc/a", b"a", 0o644).end();
    let cleanup = Tar::new().file(".wh.doc", b"", 0o644).end();
    // Three layers, only the top one read: layer 0 is not covered (layer 1 unknown).
    let mut shadow = Shadow::new(3);
    shadow.add_layer(2, &cleanup[..], &ApplyOptions::default()).unwrap();
    assert!(!shadow.covers(0) && shadow.covers(1));
    let opts = ApplyOptions {
        shadow: Some((Arc::new(shadow), 0)),
        ..ApplyOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(tmp.path()).unwrap();
    let r = apply_layer(&dir, &base[..], &opts).unwrap();
    assert_eq!(r.shadowed, 0);
    assert_eq!(std::fs::read(tmp.path().join("doc/a")).unwrap(), b"a");
}

#[test]
fn reading_ahead_checks_the_diff_id() {
    let cleanup = Tar::new().file(".wh.doc", b"", 0o644).end();
    let mut shadow = Shadow::new(2);
    let opts = ApplyOptions {
        diff_id: Some(wharf_image::Digest::sha256(b"something else")),
        ..ApplyOptions::default()
    };
    match shadow.add_layer(1, &cleanup[..], &opts) {
        Err(Error::DiffIdMismatch { actual, .. }) => assert_eq!(actual, wharf_image::Digest::sha256(&cleanup)),
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert!(!shadow.covers(0), "a layer that failed to read is not counted as read");
}

#[test]
fn a_left_out_directory_replacing_a_symlink_is_made_before_a_file_kept_beneath_it() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 5), 0o644)
        .dir("elsewhere/", 0o755)
        .symlink("d", "elsewhere")
        .end();
    // The directory entry replaces the symlink; d/keep is linked from above so it is
    // written, into the new directory, never through the old symlink into elsewhere/.
    let replace = Tar::new()
        .dir("d/", 0o755)
        .file("d/x", b"x", 0o644)
        .file("d/keep", b"keep", 0o644)
        .end();
    let link = Tar::new().hardlink("keep2", "d/keep").end();
    let cleanup = Tar::new().file(".wh.d", b"", 0o644).end();
    let shadowed = unpack_both_ways(&[base, replace, link, cleanup]);
    // The symlink is kept (a layer above writes beneath d); d/x is left out, d is made for
    // d/keep, replacing the symlink.
    assert_eq!(shadowed, vec![0, 1, 0, 0]);
}

#[test]
fn a_directory_an_opaque_layer_writes_beneath_keeps_its_lower_mode() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 6), 0o644)
        .dir("o/", 0o755)
        .dir("o/sub/", 0o700)
        .file("o/sub/f", b"f", 0o644)
        .file("o/gone", b"gone", 0o644)
        .end();
    let cleanup = Tar::new()
        .file("o/.wh..wh..opq", b"", 0o644)
        .file("o/sub/g", b"g", 0o644)
        .end();
    let shadowed = unpack_both_ways(&[base, cleanup]);
    assert_eq!(shadowed, vec![2, 0], "o/sub/f and o/gone; o/sub stays, with mode 0700");
}

#[test]
fn a_symlink_a_middle_layer_writes_through_is_kept() {
    let base = Tar::new()
        .file("big", &noise(256 * 1024, 7), 0o644)
        .dir("elsewhere/", 0o755)
        .symlink("d", "elsewhere")
        .end();
    let through = Tar::new().file("d/kept", b"lands in elsewhere/", 0o644).end();
    let cleanup = Tar::new().file(".wh.d", b"", 0o644).end();
    let shadowed = unpack_both_ways(&[base, through, cleanup]);
    assert_eq!(shadowed, vec![0, 0, 0]);
}

//! Layers as other tools write them (umoci, GNU tar, bsdtar, Go's archive/tar): each case
//! gives the tree containerd gives, or is a documented refusal.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{H, Scratch, Tar, apply, gzip, require_root};
use wharf_rootfs::{ApplyOptions, Error};

/// GNU base-256 in a 12-byte field (two's complement, marker bit set).
fn base256(field: &mut [u8], v: i64) {
    let bytes = v.to_be_bytes();
    let fill = if v < 0 { 0xff } else { 0 };
    field.fill(fill);
    let n = field.len();
    field[n - 8..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

#[test]
fn times_before_1970_and_past_2262_are_the_epoch_as_in_containerd() {
    // Go's boundTime (containerd, Docker, podman): the same tree here as there.
    let mut t = Tar::new();
    t.pax(&[("mtime", b"-315619200")]).file("old", b"", 0o644);
    t.pax(&[("mtime", b"10413792000")]).file("far", b"", 0o644);
    t.pax(&[("mtime", b"2000000000.5")]).file("y2033", b"", 0o644);
    let s = Scratch::new();
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let m = |p: &str| {
        let m = std::fs::symlink_metadata(s.root.join(p)).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(m("old"), (0, 0));
    assert_eq!(m("far"), (0, 0));
    assert_eq!(m("y2033"), (2_000_000_000, 500_000_000));
}

#[test]
fn layer_ending_right_after_the_last_entrys_data_is_complete() {
    // umoci 0.4.7's insert and repack: no padding after the last data, no end blocks.
    let mut t = Tar::new();
    t.dir("d", 0o755).header(&H {
        name: b"d/f",
        size: 5,
        ..H::default()
    });
    t.out.extend_from_slice(b"hello");
    for blob in [t.out.clone(), gzip(&t.out)] {
        let s = Scratch::new();
        apply(&s.root, &blob, &ApplyOptions::default()).unwrap();
        assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"hello");
    }
    // Part of the padding, but not all of it: also complete.
    let s = Scratch::new();
    let partial = [t.out.clone(), vec![0; 100]].concat();
    apply(&s.root, &partial, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"hello");

    // Cut inside the data: still truncated.
    let s = Scratch::new();
    let cut = &t.out[..t.out.len() - 2];
    let err = apply(&s.root, cut, &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Truncated { entry: Some(e), .. } if e == "d/f"),
        "{err:?}"
    );
}

#[test]
fn gnu_base256_numbers_including_negative_times_are_read() {
    // GNU tar's default format writes mtimes before 1970 and ids above 2^21 in base-256.
    let mut t = Tar::new();
    t.header_with(
        &H {
            name: b"old",
            size: 0,
            ..H::default()
        },
        |b| {
            base256(&mut b[136..148], -86_400 * 365);
            base256(&mut b[108..116], 3_000_000);
            base256(&mut b[116..124], 1 << 22);
        },
    );
    let s = Scratch::new();
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let m = std::fs::symlink_metadata(s.root.join("old")).unwrap();
    // Read right, then set as containerd sets times before 1970: to the epoch.
    assert_eq!(m.mtime(), 0);
    if rustix::process::geteuid().is_root() {
        assert_eq!((m.uid(), m.gid()), (3_000_000, 1 << 22));
    }
}

#[test]
fn a_ustar_field_that_a_pax_record_replaces_may_be_unreadable() {
    // bsdtar writes the time in the ustar field even when PAX carries it; whatever is
    // there is not used.
    let mut t = Tar::new();
    t.pax(&[("mtime", b"-1.5"), ("uid", b"7")]).header_with(
        &H {
            name: b"f",
            ..H::default()
        },
        |b| {
            b[136..148].copy_from_slice(b"not octal!!\0");
            b[108..116].copy_from_slice(b"garbage\0");
        },
    );
    let s = Scratch::new();
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let m = std::fs::symlink_metadata(s.root.join("f")).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (0, 0),
        "before 1970: the epoch, as containerd"
    );
    assert_eq!(
        m.uid(),
        if rustix::process::geteuid().is_root() {
            7
        } else {
            m.uid()
        }
    );

    // Without the PAX record the field is used, and refused.
    let mut t = Tar::new();
    t.header_with(
        &H {
            name: b"f",
            ..H::default()
        },
        |b| b[136..148].copy_from_slice(b"not octal!!\0"),
    );
    let s = Scratch::new();
    let err = apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("mtime") && err.to_string().contains("\"f\""),
        "{err}"
    );
}

#[test]
fn pax_path_and_linkpath_are_authoritative_over_the_ustar_name() {
    // libarchive: a long directory name as a truncated ustar name ending in '/' plus the
    // full PAX path.
    let long = format!("{}/{}", "d".repeat(90), "e".repeat(60));
    let mut t = Tar::new();
    t.pax(&[("path", long.as_bytes())]).header(&H {
        name: format!("{}/", "d".repeat(90)).as_bytes(),
        typeflag: b'5',
        mode: 0o750,
        ..H::default()
    });
    t.pax(&[("path", b"innocent")]).file("etc/shadow", b"x", 0o644);
    t.pax(&[("linkpath", b"innocent")]).hardlink("hl", "etc/shadow");
    let s = Scratch::new();
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let m = std::fs::metadata(s.root.join(&long)).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.permissions().mode() & 0o7777, 0o750);
    assert_eq!(std::fs::read(s.root.join("innocent")).unwrap(), b"x");
    assert!(!s.root.join("etc/shadow").exists());
    assert_eq!(
        std::fs::metadata(s.root.join("hl")).unwrap().ino(),
        std::fs::metadata(s.root.join("innocent")).unwrap().ino()
    );
}

#[test]
fn owners_and_modes_inside_a_setgid_directory_are_the_entrys() {
    require_root("chown to other groups");
    // Debian's /var/mail: root:mail 2775. Entries inside say root:root without setgid.
    let mut t = Tar::new();
    t.header(&H {
        name: b"var/mail/",
        typeflag: b'5',
        mode: 0o2775,
        gid: 8,
        ..H::default()
    })
    .dir("var/mail/sub/", 0o755)
    .file("var/mail/f", b"x", 0o644);
    let layer = t.end();
    for format in [wharf_rootfs::LayerFormat::Flatten, wharf_rootfs::LayerFormat::Overlay] {
        let s = Scratch::new();
        let opts = ApplyOptions {
            format,
            ..ApplyOptions::default()
        };
        apply(&s.root, &layer, &opts).unwrap();
        let mail = std::fs::metadata(s.root.join("var/mail")).unwrap();
        assert_eq!((mail.mode() & 0o7777, mail.gid()), (0o2775, 8));
        let sub = std::fs::metadata(s.root.join("var/mail/sub")).unwrap();
        assert_eq!((sub.mode() & 0o7777, sub.uid(), sub.gid()), (0o755, 0, 0), "{format:?}");
        let f = std::fs::metadata(s.root.join("var/mail/f")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o644, 0, 0), "{format:?}");
    }
}

#[test]
fn duplicate_entries_in_one_layer_the_last_one_wins() {
    // containerd, Docker and GNU tar replace an earlier entry of the same layer.
    let mut t = Tar::new();
    t.file("a", b"1", 0o644)
        .file("./a", b"2", 0o600)
        .file("b", b"file", 0o644)
        .dir("b/", 0o700)
        .file("b/in", b"in", 0o644)
        .dir("c", 0o755)
        .file("c/x", b"x", 0o644)
        .file("c", b"now a file", 0o644)
        .dir("./", 0o755)
        .dir(".", 0o711);
    t.file(".wh.gone", b"", 0o644).file(".wh.gone", b"", 0o644);
    let s = Scratch::new();
    std::fs::write(s.root.join("gone"), b"lower").unwrap();
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(s.root.join("a")).unwrap(), b"2");
    assert_eq!(std::fs::metadata(s.root.join("a")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(s.root.join("b/in")).unwrap(), b"in");
    assert_eq!(std::fs::metadata(s.root.join("b")).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::read(s.root.join("c")).unwrap(), b"now a file");
    assert_eq!(std::fs::metadata(&s.root).unwrap().mode() & 0o777, 0o711);
    assert!(!s.root.join("gone").exists());
}

#[test]
fn data_after_the_end_of_archive_marker_is_refused() {
    // Deliberate difference: containerd stops reading at the marker, but `tar -i` and
    // scanners reading on would see entries wharf never wrote.
    let mut hidden = Tar::new();
    hidden.file("hidden", b"x", 0o644);
    let mut t = Tar::new();
    t.file("a", b"1", 0o644);
    let blob = [t.end(), hidden.end()].concat();
    let s = Scratch::new();
    let err = apply(&s.root, &blob, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TrailingGarbage { offset: 2048 }), "{err:?}");
}

#[test]
fn an_entry_beneath_a_lower_layers_file_is_refused_as_containerd_refuses_it() {
    // Children before parents over a directory a lower layer replaced by a file:
    // containerd applies the layer onto the mounted lower layers and fails ("lstat
    // home/again: not a directory"), umoci too; so does flattening here.
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.file("home", b"a file", 0o644);
    apply(&s.root, &l1.end(), &ApplyOptions::default()).unwrap();
    let mut l2 = Tar::new();
    l2.file("home/again/file", b"back", 0o644).dir("home/", 0o750);
    let err = apply(&s.root, &l2.end(), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Entry { entry, .. } if entry == "home/again/file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("Not a directory"), "{err}");
}

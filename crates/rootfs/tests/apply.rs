//! Layer application on real directories: content, metadata, compression, whiteouts.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use common::{H, Scratch, Tar, apply, gzip, require_root, zstd};
use wharf_image::Digest;
use wharf_image::media::Compression;
use wharf_rootfs::{ApplyOptions, Error, LayerFormat, Ownership};

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn rich_layer() -> Vec<u8> {
    let long = format!("dir/{}/file", "d".repeat(120));
    let gnu_long = format!("dir/{}", "g".repeat(150));
    let mut t = Tar::new();
    t.dir("dir/", 0o755)
        .file("dir/plain", b"hello", 0o644)
        .file("dir/setuid", b"#!/bin/sh\n", 0o4755)
        .dir("dir/sticky/", 0o1777)
        .file_owned("dir/owned", b"x", 0o640, 1000, 1001)
        .symlink("dir/link", "plain")
        .symlink("dir/abs-link", "/etc/passwd")
        .hardlink("dir/hard", "dir/plain")
        .node("dir/fifo", b'6', 0, 0)
        .node("dir/null", b'3', 1, 3)
        .pax(&[("path", long.as_bytes())])
        .file("dir/dddddd", b"long pax name", 0o600)
        .gnu_longname(gnu_long.as_bytes())
        .file("dir/gggg", b"long gnu name", 0o600)
        .pax(&[
            ("SCHILY.xattr.user.note", b"hi"),
            (
                "SCHILY.xattr.security.capability",
                &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
        ])
        .file("dir/xattrs", b"x", 0o755);
    // dir/long/ parent of the PAX name is implicit.
    t.end()
}

#[test]
fn applies_files_dirs_links_devices_modes_owners_xattrs_and_long_names() {
    require_root("device nodes, chown, security.capability");
    let s = Scratch::new();
    let layer = rich_layer();
    let report = apply(&s.root, &layer, &ApplyOptions::default()).unwrap();
    assert_eq!(report.diff_id, Digest::sha256(&layer));
    assert_eq!(report.compression, Compression::None);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let r = &s.root;
    assert_eq!(std::fs::read(r.join("dir/plain")).unwrap(), b"hello");
    let m = std::fs::metadata(r.join("dir/setuid")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(std::fs::metadata(r.join("dir/sticky")).unwrap().mode() & 0o7777, 0o1777);
    let o = std::fs::metadata(r.join("dir/owned")).unwrap();
    assert_eq!((o.uid(), o.gid(), o.mode() & 0o7777), (1000, 1001, 0o640));
    assert_eq!(std::fs::read_link(r.join("dir/link")).unwrap().to_str(), Some("plain"));
    assert_eq!(
        std::fs::read_link(r.join("dir/abs-link")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(
        std::fs::metadata(r.join("dir/hard")).unwrap().ino(),
        std::fs::metadata(r.join("dir/plain")).unwrap().ino()
    );
    assert!(
        std::fs::symlink_metadata(r.join("dir/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let null = std::fs::symlink_metadata(r.join("dir/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    let long = format!("dir/{}/file", "d".repeat(120));
    assert_eq!(std::fs::read(r.join(long)).unwrap(), b"long pax name");
    assert_eq!(
        std::fs::read(r.join(format!("dir/{}", "g".repeat(150)))).unwrap(),
        b"long gnu name"
    );
    assert_eq!(xattr(&r.join("dir/xattrs"), "user.note").as_deref(), Some(&b"hi"[..]));
    assert!(xattr(&r.join("dir/xattrs"), "security.capability").is_some());
    // Directory times are set after their children were written.
    assert_eq!(std::fs::metadata(r.join("dir")).unwrap().mtime(), 1_600_000_000);
}

#[test]
fn gzip_zstd_and_plain_layers_give_the_same_tree_and_diff_id() {
    let mut t = Tar::new();
    t.dir("a/", 0o755)
        .file("a/f", &vec![7u8; 3 << 20], 0o644)
        .file("a/g", b"small", 0o600);
    let tar = t.end();
    let expected = Digest::sha256(&tar);
    for (blob, comp) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zstd(&tar), Compression::Zstd),
    ] {
        for given in [None, Some(comp)] {
            let s = Scratch::new();
            let opts = ApplyOptions {
                compression: given,
                diff_id: Some(expected.clone()),
                ..ApplyOptions::default()
            };
            let report = apply(&s.root, &blob, &opts).unwrap();
            assert_eq!(report.compression, comp);
            assert_eq!(report.diff_id, expected);
            assert_eq!(report.uncompressed_size, tar.len() as u64);
            assert_eq!(report.compressed_size, blob.len() as u64);
            assert_eq!(std::fs::read(s.root.join("a/f")).unwrap(), vec![7u8; 3 << 20]);
            assert_eq!(std::fs::metadata(s.root.join("a/g")).unwrap().mode() & 0o777, 0o600);
        }
    }
}

#[test]
fn whiteouts_and_opaque_dirs_flatten_onto_lower_layers() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.dir("etc/", 0o755)
        .file("etc/keep", b"k", 0o644)
        .file("etc/gone", b"g", 0o644)
        .dir("etc/sub/", 0o755)
        .file("etc/sub/deep", b"d", 0o644)
        .dir("opq/", 0o755)
        .file("opq/old", b"o", 0o644)
        .dir("opq/olddir/", 0o755)
        .file("opq/olddir/x", b"x", 0o644)
        .dir("late/", 0o755)
        .file("late/old", b"o", 0o644)
        .dir("late/kept/", 0o755)
        .file("late/kept/old", b"o", 0o644);
    apply(&s.root, &l1.end(), &ApplyOptions::default()).unwrap();
    let mut l2 = Tar::new();
    l2.file("etc/.wh.gone", b"", 0o644)
        .file("etc/.wh.sub", b"", 0o644)
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"n", 0o644)
        // The opaque marker after this layer's own entries still only hides lower content.
        .dir("late/", 0o755)
        .file("late/new", b"n", 0o644)
        .file("late/kept/new", b"n", 0o644)
        .file("late/.wh..wh..opq", b"", 0o644);
    apply(&s.root, &l2.end(), &ApplyOptions::default()).unwrap();
    let r = &s.root;
    assert!(r.join("etc/keep").exists());
    assert!(!r.join("etc/gone").exists());
    assert!(!r.join("etc/sub").exists());
    assert!(!r.join("opq/old").exists() && !r.join("opq/olddir").exists());
    assert!(r.join("opq/new").exists());
    assert!(r.join("late/new").exists() && r.join("late/kept/new").exists());
    assert!(!r.join("late/old").exists() && !r.join("late/kept/old").exists());
    assert!(!r.join("opq/.wh..wh..opq").exists() && !r.join("etc/.wh.gone").exists());
}

#[test]
fn overlay_format_writes_whiteout_devices_and_opaque_xattrs() {
    require_root("mknod of whiteouts, trusted.* xattrs");
    let s = Scratch::new();
    let mut l = Tar::new();
    l.dir("etc/", 0o755)
        .file("etc/.wh.gone", b"", 0o644)
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .file("opq/new", b"n", 0o644)
        // A whiteout for something this layer also creates: the directory becomes opaque.
        .dir("both/", 0o755)
        .file("both/x", b"", 0o644)
        .file(".wh.both", b"", 0o644);
    let opts = ApplyOptions {
        format: LayerFormat::Overlay,
        ..ApplyOptions::default()
    };
    apply(&s.root, &l.end(), &opts).unwrap();
    let w = std::fs::symlink_metadata(s.root.join("etc/gone")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert_eq!(
        xattr(&s.root.join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&s.root.join("both"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(s.root.join("both/x").exists());
    assert!(s.root.join("opq/new").exists());
}

#[test]
fn hardlink_to_a_file_of_an_earlier_layer_when_flattening() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.dir("bin/", 0o755).file("bin/busybox", b"ELF", 0o755);
    apply(&s.root, &l1.end(), &ApplyOptions::default()).unwrap();
    let mut l2 = Tar::new();
    l2.dir("bin/", 0o755).hardlink("bin/sh", "bin/busybox");
    apply(&s.root, &l2.end(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(s.root.join("bin/sh")).unwrap().ino(),
        std::fs::metadata(s.root.join("bin/busybox")).unwrap().ino()
    );
    // In overlay format the layer stands alone: a link to another layer is a typed error.
    let s2 = Scratch::new();
    let mut l2 = Tar::new();
    l2.dir("bin/", 0o755).hardlink("bin/sh", "bin/busybox");
    let opts = ApplyOptions {
        format: LayerFormat::Overlay,
        ..ApplyOptions::default()
    };
    let err = apply(&s2.root, &l2.end(), &opts).unwrap_err();
    assert!(
        matches!(&err, Error::LinkOutsideLayer { entry, .. } if entry == "bin/sh"),
        "{err}"
    );
}

#[test]
fn replaces_lower_entries_of_another_type() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.dir("a/", 0o755)
        .file("a/inner", b"", 0o644)
        .file("b", b"file", 0o644)
        .symlink("c", "b");
    apply(&s.root, &l1.end(), &ApplyOptions::default()).unwrap();
    let mut l2 = Tar::new();
    l2.file("a", b"now a file", 0o644)
        .dir("b/", 0o700)
        .file("c", b"now a file", 0o600);
    apply(&s.root, &l2.end(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(s.root.join("a")).unwrap(), b"now a file");
    assert!(std::fs::symlink_metadata(s.root.join("b")).unwrap().is_dir());
    assert_eq!(std::fs::read(s.root.join("c")).unwrap(), b"now a file");
    assert_eq!(std::fs::read(s.root.join("b")).ok(), None);
}

#[test]
fn id_shift_maps_owners() {
    require_root("chown to shifted ids");
    let s = Scratch::new();
    let mut l = Tar::new();
    l.file_owned("f", b"", 0o644, 0, 0).file_owned("g", b"", 0o644, 1000, 5);
    let opts = ApplyOptions {
        ownership: Ownership::Map(wharf_rootfs::IdMap::shift(100_000, 65536)),
        ..ApplyOptions::default()
    };
    apply(&s.root, &l.end(), &opts).unwrap();
    let f = std::fs::metadata(s.root.join("f")).unwrap();
    let g = std::fs::metadata(s.root.join("g")).unwrap();
    assert_eq!((f.uid(), f.gid()), (100_000, 100_000));
    assert_eq!((g.uid(), g.gid()), (101_000, 100_005));
    let mut l = Tar::new();
    l.file_owned("h", b"", 0o644, 70_000, 0);
    let err = apply(&s.root, &l.end(), &opts).unwrap_err();
    assert!(
        matches!(&err, Error::Unmapped { entry, id: 70_000, .. } if entry == "h"),
        "{err}"
    );
}

#[test]
fn gnu_sparse_file_is_written_sparse_with_its_real_size() {
    let s = Scratch::new();
    // Old GNU sparse: two 512-byte data chunks at offsets 0 and 1 MiB of a 2 MiB file.
    let mut b = [0u8; 512];
    b[..6].copy_from_slice(b"sparse");
    let oct = |f: &mut [u8], v: u64| {
        let st = format!("{:0w$o}\0", v, w = f.len() - 1);
        f.copy_from_slice(st.as_bytes());
    };
    oct(&mut b[100..108], 0o644);
    oct(&mut b[108..116], 0);
    oct(&mut b[116..124], 0);
    oct(&mut b[124..136], 1024);
    oct(&mut b[136..148], 1_600_000_000);
    b[156] = b'S';
    b[257..265].copy_from_slice(b"ustar  \0");
    oct(&mut b[386..398], 0);
    oct(&mut b[398..410], 512);
    oct(&mut b[410..422], 1 << 20);
    oct(&mut b[422..434], 512);
    oct(&mut b[483..495], 2 << 20);
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut t = Tar::new();
    t.out.extend_from_slice(&b);
    t.data(&[[1u8; 512], [2u8; 512]].concat());
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let content = std::fs::read(s.root.join("sparse")).unwrap();
    assert_eq!(content.len(), 2 << 20);
    assert!(content[..512].iter().all(|&x| x == 1));
    assert!(content[512..1 << 20].iter().all(|&x| x == 0));
    assert!(content[1 << 20..(1 << 20) + 512].iter().all(|&x| x == 2));
    let m = std::fs::metadata(s.root.join("sparse")).unwrap();
    assert!(m.blocks() * 512 < 1 << 20, "file is not sparse: {} blocks", m.blocks());
}

#[test]
fn root_entry_directory_sets_root_metadata() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.dir("./", 0o750).file("./x", b"", 0o644);
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::metadata(&s.root).unwrap().permissions().mode() & 0o7777, 0o750);
}

#[test]
fn pax_size_mtime_and_owner_override_ustar_fields() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("mtime", b"1700000000.25"), ("uid", b"0"), ("size", b"3")]);
    t.header(&H {
        name: b"f",
        size: 3,
        ..H::default()
    })
    .data(b"abc");
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    let m = std::fs::metadata(s.root.join("f")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 250_000_000));
    assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"abc");
}

#[test]
fn gnu_tar_pax_sparse_files_of_every_version_are_restored() {
    // Real archives from GNU tar (Debian's tar), not hand-made.
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("holes");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(&f).unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::Start(3 << 20)).unwrap();
        file.write_all(&[9u8; 5000]).unwrap();
        file.seek(SeekFrom::Start(8 << 20)).unwrap();
        file.write_all(b"tail").unwrap();
    }
    let want = std::fs::read(&f).unwrap();
    for version in ["0.0", "0.1", "1.0"] {
        let out = std::process::Command::new("tar")
            .args([
                "--sparse",
                "--format=posix",
                &format!("--sparse-version={version}"),
                "-C",
            ])
            .arg(src.path())
            .args(["-cf", "-", "holes"])
            .output()
            .expect("GNU tar missing");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s = Scratch::new();
        apply(&s.root, &out.stdout, &ApplyOptions::default()).unwrap_or_else(|e| panic!("{version}: {e}"));
        let got = std::fs::read(s.root.join("holes")).unwrap();
        assert_eq!(got.len(), want.len(), "{version}");
        assert!(got == want, "{version}: content differs");
        let blocks = std::fs::metadata(s.root.join("holes")).unwrap().blocks();
        assert!(blocks * 512 < 1 << 20, "{version}: not sparse ({blocks} blocks)");
    }
}

#[test]
fn unprivileged_apply_fills_read_only_directories_and_skips_devices() {
    use std::os::unix::process::CommandExt;
    require_root("to run the unpack as an unprivileged user (uid 65534)");
    let s = Scratch::new();
    std::fs::set_permissions(s.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&s.root, Some(65534), Some(65534)).unwrap();
    let mut t = Tar::new();
    t.dir("ro/", 0o555)
        .file("ro/f", b"inside a read-only dir", 0o444)
        .dir("ro/sub/", 0o500)
        .file("ro/sub/g", b"g", 0o600)
        .node("dev-null", b'3', 1, 3)
        .file_owned("owned", b"", 0o644, 1000, 1000);
    let layer = s.tmp.path().join("layer.tar");
    std::fs::write(&layer, t.end()).unwrap();
    std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "unprivileged_child", "--ignored", "--nocapture"])
        .env("WHARF_CHILD_LAYER", &layer)
        .env("WHARF_CHILD_ROOT", &s.root)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unprivileged child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "the child did not run its test:\n{stdout}");
    let mode = |p: &str| std::fs::symlink_metadata(s.root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/sub"), 0o500);
    assert_eq!(std::fs::read(s.root.join("ro/f")).unwrap(), b"inside a read-only dir");
    assert_eq!(std::fs::read(s.root.join("ro/sub/g")).unwrap(), b"g");
    assert!(!s.root.join("dev-null").exists());
    assert_eq!(std::fs::metadata(s.root.join("owned")).unwrap().uid(), 65534);
}

/// Run by the test above as uid 65534; needs its environment.
#[test]
#[ignore = "helper: run as an unprivileged user by unprivileged_apply_fills_read_only_directories_and_skips_devices"]
fn unprivileged_child() {
    let layer = std::env::var("WHARF_CHILD_LAYER").expect("WHARF_CHILD_LAYER: run through the parent test");
    let root = std::env::var("WHARF_CHILD_ROOT").expect("WHARF_CHILD_ROOT: run through the parent test");
    assert!(!rustix::process::geteuid().is_root());
    let opts = ApplyOptions::default();
    assert!(!opts.privileged && opts.ownership == Ownership::Ignore);
    let blob = std::fs::read(layer).unwrap();
    let report = apply(std::path::Path::new(&root), &blob, &opts).unwrap();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].entry, "dev-null");
}

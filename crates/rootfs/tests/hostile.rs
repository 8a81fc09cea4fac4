//! Crafted hostile layers: each must fail with an error naming the entry (or, for device
//! nodes without privilege, be skipped and reported) and leave the host untouched.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::{H, Scratch, Tar, apply, gzip, zstd};
use wharf_image::Digest;
use wharf_rootfs::{ApplyOptions, Error, LayerFormat, Limit, Limits};

fn entry_of(e: &Error) -> Option<&str> {
    match e {
        Error::Entry { entry, .. }
        | Error::UnsafePath { entry, .. }
        | Error::Escape { entry, .. }
        | Error::HeaderMismatch { entry, .. }
        | Error::BadWhiteout { entry, .. }
        | Error::RootNotDirectory { entry }
        | Error::Unsupported { entry, .. }
        | Error::LinkOutsideLayer { entry, .. } => Some(entry),
        Error::LimitExceeded { entry, .. } | Error::Truncated { entry, .. } => entry.as_deref(),
        _ => None,
    }
}

/// Applies `layers` in order (all but the last must succeed); returns the last error.
fn fails(s: &Scratch, layers: &[Vec<u8>], opts: &ApplyOptions) -> Error {
    let (last, lower) = layers.split_last().unwrap();
    for l in lower {
        apply(&s.root, l, opts).unwrap();
    }
    let err = apply(&s.root, last, opts).expect_err("hostile layer was accepted");
    s.assert_host_untouched();
    err
}

fn assert_names(err: &Error, entry: &str) {
    assert_eq!(entry_of(err), Some(entry), "error does not name {entry:?}: {err}");
    assert!(
        err.to_string().contains(entry),
        "message does not name {entry:?}: {err}"
    );
}

#[test]
fn dotdot_and_absolute_paths_are_rerooted_beneath_the_root() {
    // As containerd does (filepath.Clean on a rooted path): never outside, never refused.
    let s = Scratch::new();
    let abs = format!("{}/evil", s.host.display());
    let mut t = Tar::new();
    t.file("../host/evil", b"1", 0o644)
        .file(&abs, b"2", 0o644)
        .file("a/../../../b", b"3", 0o644)
        .file("/c", b"4", 0o644);
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    s.assert_host_untouched();
    assert_eq!(std::fs::read(s.root.join("host/evil")).unwrap(), b"1");
    let inside = s.root.join(abs.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"2");
    assert_eq!(std::fs::read(s.root.join("b")).unwrap(), b"3");
    assert_eq!(std::fs::read(s.root.join("c")).unwrap(), b"4");
}

#[test]
fn file_written_through_a_symlink_pointing_out_is_refused() {
    for target in ["../host".to_string(), "/".to_string()] {
        let s = Scratch::new();
        let target = if target == "/" {
            s.host.display().to_string()
        } else {
            target
        };
        // In one layer, and across two layers.
        let mut one = Tar::new();
        one.symlink("evil", &target).file("evil/pwned", b"x", 0o644);
        let err = fails(&s, &[one.end()], &ApplyOptions::default());
        assert!(matches!(err, Error::Escape { .. }), "{err}");
        assert_names(&err, "evil/pwned");

        let s = Scratch::new();
        let mut l1 = Tar::new();
        l1.symlink("evil", &target);
        let mut l2 = Tar::new();
        l2.file("evil/pwned", b"x", 0o644);
        let err = fails(&s, &[l1.end(), l2.end()], &ApplyOptions::default());
        assert!(matches!(err, Error::Escape { .. }), "{err}");
        assert_names(&err, "evil/pwned");
    }
}

#[test]
fn hardlink_to_a_path_outside_links_inside_or_is_refused() {
    // A target with `..` or an absolute one is re-rooted: it names the root's own file.
    let s = Scratch::new();
    let abs = format!("{}/sentinel", s.host.display());
    let mut t = Tar::new();
    t.file("host/sentinel", b"inside", 0o644)
        .file(abs.trim_start_matches('/'), b"inside too", 0o644)
        .hardlink("link", "../host/sentinel")
        .hardlink("link2", &abs);
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    s.assert_host_untouched();
    assert_eq!(std::fs::read(s.root.join("link")).unwrap(), b"inside");
    assert_eq!(std::fs::read(s.root.join("link2")).unwrap(), b"inside too");

    // Re-rooted onto nothing: the link fails, naming the entry.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.hardlink("link", "../host/sentinel");
    let err = fails(&s, &[t.end()], &ApplyOptions::default());
    assert!(matches!(err, Error::Entry { op: "link", .. }), "{err}");
    assert_names(&err, "link");

    let s = Scratch::new();
    let mut t = Tar::new();
    t.symlink("out", "../host").hardlink("link", "out/sentinel");
    let err = fails(&s, &[t.end()], &ApplyOptions::default());
    assert!(matches!(err, Error::Escape { .. }), "{err}");
    assert_names(&err, "link");
}

#[test]
fn hardlink_to_a_symlink_pointing_out_links_the_symlink_itself() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.symlink("out", "../host/sentinel")
        .hardlink("link", "out")
        .file("link2", b"", 0o644);
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    assert!(
        std::fs::symlink_metadata(s.root.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    s.assert_host_untouched();
}

#[test]
fn whiteout_naming_dotdot_or_nothing_is_refused() {
    for (name, bad) in [("a/.wh...", "a/.wh..."), (".wh..", ".wh.."), ("a/.wh.", "a/.wh.")] {
        let s = Scratch::new();
        std::fs::create_dir(s.root.join("a")).unwrap();
        let mut t = Tar::new();
        t.file(name, b"", 0o644);
        let err = fails(&s, &[t.end()], &ApplyOptions::default());
        assert!(matches!(err, Error::BadWhiteout { .. }), "{name}: {err}");
        assert_names(&err, bad);
        assert!(s.root.join("a").exists());
    }
}

#[test]
fn whiteout_through_a_symlink_pointing_out_is_refused() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.symlink("evil", "../host");
    let mut l2 = Tar::new();
    l2.file("evil/.wh.sentinel", b"", 0o644);
    let err = fails(&s, &[l1.end(), l2.end()], &ApplyOptions::default());
    assert!(matches!(err, Error::Escape { .. }), "{err}");
    assert_names(&err, "evil/.wh.sentinel");
    let mut l3 = Tar::new();
    l3.file("evil/.wh..wh..opq", b"", 0o644);
    let err = apply(&s.root, &l3.end(), &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Escape { .. }), "{err}");
    s.assert_host_untouched();
}

#[test]
fn symlink_replaced_by_a_directory_between_layers_does_not_touch_its_target() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.symlink("d", "../host");
    let mut l2 = Tar::new();
    l2.dir("d/", 0o777).file("d/new", b"", 0o644);
    apply(&s.root, &l1.end(), &ApplyOptions::default()).unwrap();
    apply(&s.root, &l2.end(), &ApplyOptions::default()).unwrap();
    assert!(std::fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    assert!(s.root.join("d/new").exists());
    s.assert_host_untouched();
}

#[test]
fn symlink_then_same_named_directory_in_one_layer_replaces_the_symlink() {
    // CVE-2026-33056: the directory entry must not chmod through the symlink. The later
    // entry wins (as in containerd), replacing the symlink itself.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.symlink("d", "../host").dir("d/", 0o777).file("d/f", b"x", 0o644);
    apply(&s.root, &t.end(), &ApplyOptions::default()).unwrap();
    s.assert_host_untouched();
    let m = std::fs::symlink_metadata(s.root.join("d")).unwrap();
    assert!(m.is_dir(), "the directory replaced the symlink");
    assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"x");
}

#[test]
fn device_node_in_unprivileged_unpack_is_skipped_and_reported() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.node("dev/sda", b'4', 8, 0)
        .node("dev/mem", b'3', 1, 1)
        .file("ok", b"", 0o644);
    let opts = ApplyOptions {
        privileged: false,
        ownership: wharf_rootfs::Ownership::Ignore,
        ..ApplyOptions::default()
    };
    let report = apply(&s.root, &t.end(), &opts).unwrap();
    let skipped: Vec<_> = report.skipped.iter().map(|s| s.entry.as_str()).collect();
    assert_eq!(skipped, ["dev/sda", "dev/mem"]);
    assert!(!s.root.join("dev/sda").exists() && !s.root.join("dev/mem").exists());
    assert!(s.root.join("ok").exists());
    s.assert_host_untouched();
}

#[test]
fn pax_and_ustar_disagreeing_on_size_are_refused() {
    // A parser ignoring PAX would read 5 bytes of data and take the rest for headers.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("size", b"1024")]);
    t.header(&H {
        name: b"f",
        size: 5,
        ..H::default()
    })
    .data(&[0u8; 1024]);
    let err = fails(&s, &[t.end()], &ApplyOptions::default());
    assert!(matches!(err, Error::HeaderMismatch { field: "size", .. }), "{err}");
    assert_names(&err, "f");
}

#[test]
fn root_entry_that_is_not_a_directory_is_refused() {
    // CVE-2021-29136: a symlink for "/." replacing the root.
    for (name, sym) in [("/.", true), (".", true), ("/", false), ("./", false)] {
        let s = Scratch::new();
        let mut t = Tar::new();
        if sym {
            t.symlink(name, "../host");
        } else {
            t.file(name, b"x", 0o644);
        }
        t.file("after", b"", 0o644);
        let err = fails(&s, &[t.end()], &ApplyOptions::default());
        assert!(matches!(err, Error::RootNotDirectory { .. }), "{name}: {err}");
        assert_names(&err, name);
        assert!(std::fs::symlink_metadata(&s.root).unwrap().is_dir());
    }
}

#[test]
fn header_only_entry_with_data_is_refused() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.header(&H {
        name: b"l",
        typeflag: b'2',
        link: b"x",
        size: 512,
        ..H::default()
    })
    .data(&[0u8; 512]);
    let err = fails(&s, &[t.end()], &ApplyOptions::default());
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("\"l\""), "{err}");
}

fn limits(f: impl FnOnce(&mut Limits)) -> ApplyOptions {
    let mut o = ApplyOptions::default();
    f(&mut o.limits);
    o
}

#[test]
fn budgets_are_typed_errors_naming_the_limit() {
    // Bytes per layer.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("big", &vec![1u8; 2 << 20], 0o644);
    let err = fails(&s, &[t.end()], &limits(|l| l.max_layer_bytes = 1 << 20));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::LayerBytes,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "big");

    // Bytes per image, across layers sharing one budget.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("a", &vec![1u8; 700 << 10], 0o644);
    let l1 = t.end();
    let mut t = Tar::new();
    t.file("b", &vec![1u8; 700 << 10], 0o644);
    let err = fails(&s, &[l1, t.end()], &limits(|l| l.max_image_bytes = 1 << 20));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::ImageBytes,
                ..
            }
        ),
        "{err}"
    );

    // Entries.
    let s = Scratch::new();
    let mut t = Tar::new();
    for i in 0..20 {
        t.file(&format!("f{i}"), b"", 0o644);
    }
    let err = fails(&s, &[t.end()], &limits(|l| l.max_entries = 10));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::Entries,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, "f10");

    // Path depth.
    let s = Scratch::new();
    let deep = vec!["d"; 40].join("/");
    let mut t = Tar::new();
    t.pax(&[("path", deep.as_bytes())]).file("d", b"", 0o644);
    let err = fails(&s, &[t.end()], &limits(|l| l.max_path_depth = 32));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::PathDepth,
                ..
            }
        ),
        "{err}"
    );

    // Xattr size.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("SCHILY.xattr.user.big", &vec![b'x'; 8192])])
        .file("x", b"", 0o644);
    let err = fails(&s, &[t.end()], &limits(|l| l.max_xattr_bytes = 4096));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::XattrBytes,
                ..
            }
        ),
        "{err}"
    );

    // Metadata record size.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.gnu_longname(&vec![b'n'; 4096]).file("n", b"", 0o644);
    let err = fails(&s, &[t.end()], &limits(|l| l.max_metadata_bytes = 1024));
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::MetadataBytes,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn compression_bomb_is_stopped_by_the_ratio_budget() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("zeros", &vec![0u8; 16 << 20], 0o644);
    let tar = t.end();
    for blob in [gzip(&tar), zstd(&tar)] {
        let err = fails(&s, &[blob], &limits(|l| l.max_compression_ratio = 5));
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    limit: Limit::CompressionRatio,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn truncated_and_trailing_garbage_streams_are_typed_errors() {
    let mut t = Tar::new();
    t.file(
        "a",
        &(0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        0o644,
    );
    let tar = t.end();
    let gz = gzip(&tar);
    let zs = zstd(&tar);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("truncated zstd", zs[..zs.len() / 2].to_vec()),
        ("truncated tar", tar[..tar.len() / 2].to_vec()),
        ("garbage after tar", [tar.clone(), b"garbage".to_vec()].concat()),
        (
            "garbage after gzip",
            [gz.clone(), b"garbage!garbage!".to_vec()].concat(),
        ),
        (
            "garbage after zstd",
            [zs.clone(), b"garbage!garbage!".to_vec()].concat(),
        ),
    ];
    for (what, blob) in cases {
        let s = Scratch::new();
        let err = fails(&s, &[blob], &ApplyOptions::default());
        let ok = match what {
            "truncated gzip" | "truncated zstd" | "garbage after gzip" | "garbage after zstd" => {
                matches!(err, Error::Decompress { .. })
            }
            "truncated tar" => matches!(&err, Error::Truncated { entry: Some(e), .. } if e == "a"),
            _ => matches!(err, Error::TrailingGarbage { .. }),
        };
        assert!(ok, "{what}: unexpected error {err:?}");
    }
}

#[test]
fn gzip_with_a_diff_id_is_checked_by_it_and_still_refuses_truncation_and_garbage() {
    // With a diff_id to verify, gzip members are decoded without their CRC-32 (the SHA-256
    // covers every byte): damage is still a typed error.
    let mut t = Tar::new();
    t.file(
        "a",
        &(0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        0o644,
    );
    let tar = t.end();
    let gz = gzip(&tar);
    let opts = ApplyOptions {
        diff_id: Some(Digest::sha256(&tar)),
        ..ApplyOptions::default()
    };
    for (what, blob) in [
        ("truncated", gz[..gz.len() / 2].to_vec()),
        ("garbage after", [gz.clone(), b"garbage!garbage!".to_vec()].concat()),
    ] {
        let s = Scratch::new();
        let err = fails(&s, &[blob], &opts);
        assert!(
            matches!(err, Error::Decompress { .. }),
            "{what}: unexpected error {err:?}"
        );
    }
    // A flipped bit anywhere in the deflate data or the trailer's length is never accepted
    // (what inflates without error is caught by the diff_id); `fails` asserts the error. The
    // CRC-32 bytes are the one place damage is harmless: the content is verified without it.
    let mut damaged = gz.clone();
    let crc = gz.len() - 8..gz.len() - 4;
    for i in (20..gz.len())
        .step_by(499)
        .chain([gz.len() - 1])
        .filter(|i| !crc.contains(i))
    {
        damaged.copy_from_slice(&gz);
        damaged[i] ^= 0x10;
        fails(&Scratch::new(), &[damaged.clone()], &opts);
    }
}

#[test]
fn diff_id_mismatch_fails_and_extract_layer_leaves_nothing() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("a", b"x", 0o644);
    let tar = t.end();
    let opts = ApplyOptions {
        diff_id: Some(Digest::sha256(b"something else")),
        ..ApplyOptions::default()
    };
    let dest = s.tmp.path().join("layer");
    let err = wharf_rootfs::extract_layer(&dest, &gzip(&tar)[..], &opts).unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    assert!(!dest.exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "root" && n != "host")
        .collect();
    assert!(leftovers.is_empty(), "partial output left: {leftovers:?}");
    // The same layer with the right diff_id appears complete.
    let opts = ApplyOptions {
        diff_id: Some(Digest::sha256(&tar)),
        ..ApplyOptions::default()
    };
    wharf_rootfs::extract_layer(&dest, &gzip(&tar)[..], &opts).unwrap();
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"x");
}

#[test]
fn overlay_private_xattrs_in_a_layer_are_not_applied() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
    ])
    .dir("d/", 0o755);
    let opts = ApplyOptions {
        format: LayerFormat::Overlay,
        ..ApplyOptions::default()
    };
    let report = apply(&s.root, &t.end(), &opts).unwrap();
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    let mut buf = [0u8; 64];
    assert!(rustix::fs::lgetxattr(s.root.join("d"), "trusted.overlay.redirect", &mut buf).is_err());
    s.assert_host_untouched();
}

#[test]
fn a_reader_error_is_reported_as_such() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let s = Scratch::new();
    let dir = std::fs::File::open(&s.root).unwrap();
    let err = wharf_rootfs::apply_layer(&dir, Failing, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err:?}");
    let _ = std::io::sink().write(b"");
}

#[test]
fn swapping_a_directory_for_a_symlink_during_extraction_never_redirects_writes() {
    // The CVE-2018-15664 class: while a layer is written, something else keeps exchanging
    // the directory `a` with a symlink to the host directory.
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Scratch::new();
    std::fs::create_dir(s.root.join("a")).unwrap();
    std::os::unix::fs::symlink("../host", s.root.join("a-link")).unwrap();
    let mut t = Tar::new();
    for i in 0..3000 {
        t.file(&format!("a/f{i}"), b"x", 0o644);
    }
    let layer = t.end();
    let done = AtomicBool::new(false);
    let swaps = std::thread::scope(|sc| {
        let swapper = sc.spawn(|| {
            let root = std::fs::File::open(&s.root).unwrap();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(&root, "a", &root, "a-link", rustix::fs::RenameFlags::EXCHANGE).unwrap();
                n += 1;
            }
            n
        });
        let result = apply(&s.root, &layer, &ApplyOptions::default());
        done.store(true, Ordering::Relaxed);
        if let Err(e) = &result {
            // Refusing is fine (the path led outside at that moment); writing outside is not.
            assert!(matches!(e, Error::Escape { .. } | Error::Entry { .. }), "{e}");
        }
        swapper.join().unwrap()
    });
    assert!(swaps > 10, "the race did not happen ({swaps} swaps)");
    s.assert_host_untouched();
    // Whatever was written is inside the root, in the real directory.
    let real = if std::fs::symlink_metadata(s.root.join("a")).unwrap().is_dir() {
        "a"
    } else {
        "a-link"
    };
    for e in std::fs::read_dir(s.root.join(real)).unwrap() {
        assert!(e.unwrap().file_name().to_string_lossy().starts_with('f'));
    }
}

#[test]
fn mutated_archives_never_panic_or_escape() {
    // Byte flips in headers and PAX records of a layer that uses every feature: each
    // mutant must either apply or fail with a typed error, and never touch the host.
    let long = format!("d/{}", "long-pax-name-".repeat(10));
    let mut t = Tar::new();
    t.dir("d/", 0o755)
        .file("d/f", b"data", 0o644)
        .symlink("d/l", "f")
        .hardlink("d/h", "d/f")
        .pax(&[("path", long.as_bytes()), ("SCHILY.xattr.user.x", b"v")])
        .file(&long[..100], b"pax", 0o600)
        .gnu_longname(format!("d/{}", "g".repeat(150)).as_bytes())
        .file("d/ggggg", b"gnu", 0o600)
        .file("d/.wh.gone", b"", 0o644)
        .file("d/.wh..wh..opq", b"", 0o644);
    let base = t.end();
    apply(&Scratch::new().root, &base, &ApplyOptions::default()).unwrap();
    let mut seed: u64 = 0x5eed_1234_abcd_0042;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let header_len = base.len() - 1024;
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..400 {
        let mut m = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % header_len;
            m[at] = match next() % 4 {
                0 => 0,
                1 => b'/',
                2 => b'.',
                _ => next() as u8,
            };
        }
        // Fix the checksums, so the mutations reach the parser rather than stop at it.
        for b in (0..m.len()).step_by(512) {
            if m.len() >= b + 512 && &m[b + 257..b + 262] == b"ustar" {
                m[b + 148..b + 156].copy_from_slice(b"        ");
                let sum: u64 = m[b..b + 512].iter().map(|&x| u64::from(x)).sum();
                m[b + 148..b + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            }
        }
        let s = Scratch::new();
        let result = std::panic::catch_unwind(|| apply(&s.root, &m, &ApplyOptions::default()));
        let Ok(result) = result else {
            panic!("round {round}: panicked");
        };
        let kind = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}")
                .split([' ', '(', '{'])
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        *outcomes.entry(kind).or_insert(0) += 1;
        s.assert_host_untouched();
    }
    // The mutants exercised more than the checksum check.
    assert!(outcomes.len() >= 4, "{outcomes:?}");
}

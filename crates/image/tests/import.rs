//! Importing a flat rootfs as a single-layer image, checked by unpacking it with umoci.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::process::Command;

use common::{gzip, snapshot, tar_of};
use wharf_image::archive::{self, RefNames};
use wharf_image::import::{ContainerConfig, ImportOptions, import_dir, import_tar};
use wharf_image::media::{self, Compression, Kind};
use wharf_image::{Digest, Error, Platform, Reference, Store};

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

#[test]
fn imports_a_tar_in_every_compression_with_the_right_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let tar = tar_of(&[("etc/release", b"imported\n"), ("bin/sh", b"#!")]);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (i, (input, stored)) in [
        (tar.clone(), Compression::Gzip),
        (gzip(&tar), Compression::Zstd),
        (zst, Compression::None),
    ]
    .into_iter()
    .enumerate()
    {
        let opts = ImportOptions {
            compression: stored,
            config: ContainerConfig {
                cmd: vec!["/bin/sh".into()],
                env: vec!["A=1".into()],
                exposed_ports: vec!["8080/tcp".into(), "53/udp".into()],
                ..Default::default()
            },
            created: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        let name = r(&format!("imported/rootfs:v{i}"));
        let img = import_tar(&s, &input[..], &name, &opts).unwrap();
        assert_eq!(
            img.config.diff_ids().unwrap(),
            vec![Digest::sha256(&tar)],
            "diff_id is the plain tar's digest"
        );
        assert_eq!(media::kind(img.manifest.layers()[0].media_type()), Kind::Layer(stored));
        assert_eq!(img.config.created(), Some("2020-01-01T00:00:00Z"));
        let cfg = img.config.inner().config().clone().unwrap();
        assert_eq!(cfg.cmd().clone().unwrap(), vec!["/bin/sh".to_string()]);
        assert_eq!(cfg.env().clone().unwrap(), vec!["A=1".to_string()]);
        assert_eq!(img.config.exposed_ports(), ["53/udp", "8080/tcp"]);
        assert!(s.resolve(&name).is_ok());
    }
}

#[test]
fn garbage_is_refused_and_nothing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let before = snapshot(dir.path());
    for input in [
        b"this is not a tar archive at all, just text".to_vec(),
        Vec::new(),
        gzip(b"not a tar either"),
    ] {
        let err = import_tar(&s, &input[..], &r("bad/import"), &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Archive { .. }), "{err:?}");
    }
    assert!(s.names().unwrap().is_empty());
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn imports_a_directory_that_umoci_unpacks_identically() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(src.join("etc/release"), b"from a directory\n").unwrap();
    std::fs::write(src.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("usr/bin/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("../etc/release", src.join("usr/release-link")).unwrap();
    std::os::unix::fs::chown(src.join("etc/release"), Some(1234), Some(5678)).unwrap();

    let s = Store::open(dir.path().join("store")).unwrap();
    let name = r("imported/dir:1");
    let img = import_dir(&s, &src, &name, &ImportOptions::default()).unwrap();
    assert_eq!(img.manifest.layers().len(), 1);

    let layout = dir.path().join("layout");
    archive::export_layout(
        &s,
        std::slice::from_ref(&name),
        &Platform::host(),
        &layout,
        RefNames::Tag,
    )
    .unwrap();
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:1", layout.display()),
            bundle.to_str().unwrap(),
        ])
        .output()
        .expect("umoci is required for this test (apt-get install umoci)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = bundle.join("rootfs");
    assert_eq!(std::fs::read(root.join("etc/release")).unwrap(), b"from a directory\n");
    let meta = std::fs::metadata(root.join("etc/release")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!(
        std::fs::metadata(root.join("usr/bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::read_link(root.join("usr/release-link")).unwrap().to_str(),
        Some("../etc/release")
    );
}

//! docker save/load archives and OCI layouts, checked against the real skopeo and umoci.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{gzip, make_image, make_image_of_tars, snapshot, tar_of};
use wharf_image::archive::{self, RefNames};
use wharf_image::{Digest, Error, Platform, Reference, Store};

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// Runs a peer tool; fails the test with a clear message when it is not installed.
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is required for this test (apt-get install {tool}): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all)
}

fn sample_store(dir: &Path) -> Store {
    let s = Store::open(dir.join("store")).unwrap();
    make_image(
        &s,
        "example.com/team/app:1.0",
        &[
            vec![
                ("etc/release", b"wharf test 1\n"),
                ("bin/tool", b"#!/bin/sh\necho tool\n"),
            ],
            vec![("etc/extra", b"second layer\n")],
        ],
    );
    s
}

#[test]
fn save_then_load_round_trips_names_config_and_layers() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_store(dir.path());
    make_image(&s, "busybox", &[vec![("bin/busybox", b"not really busybox")]]);
    let refs = [r("example.com/team/app:1.0"), r("busybox:latest")];
    let file = dir.path().join("out.tar");
    archive::save(&s, &refs, &Platform::default(), std::fs::File::create(&file).unwrap()).unwrap();

    let fresh = Store::open(dir.path().join("fresh")).unwrap();
    let loaded = archive::load(&fresh, &file, std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(loaded.len(), 2);
    for name in refs {
        let a = s.image(&name, &Platform::default()).unwrap();
        let b = fresh.image(&name, &Platform::default()).unwrap();
        assert_eq!(a.config_digest, b.config_digest, "{name}: same image id");
        assert_eq!(b.config.diff_ids().unwrap(), a.config.diff_ids().unwrap());
        // Loaded layers are the uncompressed tars: their digests are the diff_ids.
        let layer_digests: Vec<Digest> = b
            .manifest
            .layers()
            .iter()
            .map(|l| Digest::from_oci(l.digest()).unwrap())
            .collect();
        assert_eq!(layer_digests, a.config.diff_ids().unwrap());
    }
}

#[test]
fn skopeo_reads_what_wharf_saves_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_store(dir.path());
    let name = r("example.com/team/app:1.0");
    let img = s.image(&name, &Platform::default()).unwrap();

    let file = dir.path().join("save.tar");
    archive::save(
        &s,
        std::slice::from_ref(&name),
        &Platform::default(),
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", file.display()),
    ]))
    .unwrap();
    let diff_ids: Vec<String> = img.config.diff_ids().unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(inspect["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    // skopeo copies it on into an OCI layout, which wharf imports back to the same image id.
    let oci = dir.path().join("via-skopeo");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", file.display()),
        &format!("oci:{}:copied", oci.display()),
    ]);
    let back = Store::open(dir.path().join("back")).unwrap();
    let loaded = archive::import_layout(&back, &oci, Some(&r("localhost/roundtrip"))).unwrap();
    assert_eq!(loaded[0].references, vec![r("localhost/roundtrip:copied")]);
    // skopeo rewrites the config when it converts to OCI: the filesystem (diff_ids) is what must survive.
    let back_img = back
        .image(&r("localhost/roundtrip:copied"), &Platform::default())
        .unwrap();
    assert_eq!(back_img.config.diff_ids().unwrap(), img.config.diff_ids().unwrap());

    // An exported layout is read by skopeo.
    let layout = dir.path().join("layout");
    archive::export_layout(
        &s,
        std::slice::from_ref(&name),
        &Platform::default(),
        &layout,
        RefNames::Tag,
    )
    .unwrap();
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci:{}:1.0", layout.display())])).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn wharf_loads_what_skopeo_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_store(dir.path());
    let name = r("example.com/team/app:1.0");
    let img = s.image(&name, &Platform::default()).unwrap();
    let layout = dir.path().join("layout");
    archive::export_layout(
        &s,
        std::slice::from_ref(&name),
        &Platform::default(),
        &layout,
        RefNames::Tag,
    )
    .unwrap();
    let file = dir.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:1.0", layout.display()),
        &format!("docker-archive:{}:example.com/team/app:from-skopeo", file.display()),
    ]);
    let fresh = Store::open(dir.path().join("fresh")).unwrap();
    let loaded = archive::load(&fresh, &file, std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(loaded[0].references, vec![r("example.com/team/app:from-skopeo")]);
    let got = fresh
        .image(&r("example.com/team/app:from-skopeo"), &Platform::default())
        .unwrap();
    assert_eq!(got.config.diff_ids().unwrap(), img.config.diff_ids().unwrap());
}

#[test]
fn umoci_unpacks_an_exported_layout_and_wharf_imports_one_umoci_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_store(dir.path());
    let name = r("example.com/team/app:1.0");
    let layout = dir.path().join("layout");
    archive::export_layout(
        &s,
        std::slice::from_ref(&name),
        &Platform::default(),
        &layout,
        RefNames::Tag,
    )
    .unwrap();
    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:1.0", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/release")).unwrap(),
        b"wharf test 1\n"
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/extra")).unwrap(),
        b"second layer\n"
    );

    // umoci writes a new layer on top and repacks; wharf imports the result.
    std::fs::write(bundle.join("rootfs/etc/by-umoci"), b"umoci was here\n").unwrap();
    run(
        "umoci",
        &[
            "repack",
            "--image",
            &format!("{}:umoci", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let fresh = Store::open(dir.path().join("fresh")).unwrap();
    let loaded = archive::import_layout(&fresh, &layout, Some(&r("example.com/team/app"))).unwrap();
    assert_eq!(loaded.len(), 2);
    let got = fresh
        .image(&r("example.com/team/app:umoci"), &Platform::default())
        .unwrap();
    assert_eq!(got.manifest.layers().len(), 3);
    assert_eq!(got.config.diff_ids().unwrap().len(), 3);
}

/// A legacy archive as old Docker and skopeo write it, with a duplicate layer as a symlink.
fn legacy_archive(config_ref: &str, layer_link: &str, diff_ok: bool) -> Vec<u8> {
    let layer = tar_of(&[("hello", b"world")]);
    let diff = if diff_ok {
        Digest::sha256(&layer)
    } else {
        Digest::sha256(b"something else")
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string(), diff.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_ref, "RepoTags": ["legacy:1"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes).unwrap();
    };
    add("aaa/layer.tar", &layer);
    add("cfg.json", &config);
    add("manifest.json", &manifest);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", layer_link).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn loads_a_legacy_archive_with_a_symlinked_duplicate_layer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let bytes = legacy_archive("cfg.json", "../aaa/layer.tar", true);
    archive::load(&s, Path::new("legacy.tar"), &bytes[..]).unwrap();
    let img = s.image(&r("legacy:1"), &Platform::default()).unwrap();
    assert_eq!(img.manifest.layers().len(), 2);
    assert_eq!(img.manifest.layers()[0].digest(), img.manifest.layers()[1].digest());
}

/// A tar whose first member is named `../../escape` (the tar crate refuses to write such names).
fn escaping_member() -> Vec<u8> {
    let mut bytes = tar_of(&[("XXXXXXXXXXXX", b"x"), ("manifest.json", b"[]")]);
    let name = b"../../escape";
    bytes[..name.len()].copy_from_slice(name);
    // Recompute the header checksum over the edited header.
    let mut header = [0u8; 512];
    header.copy_from_slice(&bytes[..512]);
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    let field = format!("{sum:06o}\0 ");
    bytes[148..156].copy_from_slice(field.as_bytes());
    bytes
}

#[test]
fn hostile_or_broken_archives_are_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    make_image(&s, "existing", &[vec![("keep", b"me")]]);
    let before = snapshot(dir.path());

    let good = legacy_archive("cfg.json", "../aaa/layer.tar", true);
    let truncated = good[..good.len() / 2].to_vec();
    let gz = gzip(&tar_of(&[("x", b"y")]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "manifest.json points outside",
            legacy_archive("../../etc/passwd", "../aaa/layer.tar", true),
        ),
        (
            "symlink points outside",
            legacy_archive("cfg.json", "../../../etc/shadow", true),
        ),
        ("absolute symlink", legacy_archive("cfg.json", "/etc/shadow", true)),
        (
            "layer does not match diff_id",
            legacy_archive("cfg.json", "../aaa/layer.tar", false),
        ),
        ("missing config", legacy_archive("nope.json", "../aaa/layer.tar", true)),
        ("truncated", truncated),
        ("not an image archive", tar_of(&[("readme", b"hi")])),
        ("not a tar", gz),
        ("member escapes", escaping_member()),
        ("malformed manifest.json", tar_of(&[("manifest.json", b"{not json")])),
    ];
    for (what, bytes) in cases {
        let err = archive::load(&s, Path::new(what), &bytes[..]).unwrap_err();
        assert!(
            matches!(err, Error::Archive { .. } | Error::Json { .. } | Error::Config(_)),
            "{what}: unexpected error {err:?}"
        );
        assert_eq!(snapshot(dir.path()), before, "{what}: store changed");
    }
    assert!(!Path::new("/escape").exists());
}

#[test]
fn a_layout_with_a_bad_blob_is_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_store(dir.path());
    let layout = dir.path().join("layout");
    let name = r("example.com/team/app:1.0");
    archive::export_layout(
        &s,
        std::slice::from_ref(&name),
        &Platform::default(),
        &layout,
        RefNames::Tag,
    )
    .unwrap();
    let img = s.image(&name, &Platform::default()).unwrap();
    let layer = Digest::from_oci(img.manifest.layers()[1].digest()).unwrap();
    let layer_path = layout.join("blobs/sha256").join(layer.hex());

    let fresh_root = dir.path().join("fresh");
    let fresh = Store::open(&fresh_root).unwrap();
    let before = snapshot(&fresh_root);
    // Corrupted blob.
    std::fs::write(&layer_path, b"corrupted").unwrap();
    let err = archive::import_layout(&fresh, &layout, Some(&r("x/y"))).unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err:?}");
    // Missing blob.
    std::fs::remove_file(&layer_path).unwrap();
    let err = archive::import_layout(&fresh, &layout, Some(&r("x/y"))).unwrap_err();
    assert!(
        matches!(err, Error::Archive { ref reason, .. } if reason.contains("missing")),
        "{err:?}"
    );
    // A bare tag without a repository to put it under.
    let err = archive::import_layout(&fresh, &dir.path().join("store"), None);
    assert!(err.is_ok(), "the store itself names images fully: {err:?}");
    assert_eq!(
        snapshot(&fresh_root).len(),
        before.len() + 4,
        "only the store's own import added blobs"
    );
    // A directory that is not a layout.
    let err = archive::import_layout(&fresh, dir.path(), None).unwrap_err();
    assert!(matches!(err, Error::Io { .. } | Error::Archive { .. }), "{err:?}");
}

#[test]
fn load_and_import_refuse_layers_that_unpacking_would_refuse() {
    // Data hidden after the end-of-archive marker: wharf-rootfs refuses the layer at run
    // time, so load and import must not report success for it.
    let hidden = tar_of(&[("hidden", b"x")]);
    let layer = [tar_of(&[("etc/ok", b"fine")]), hidden].concat();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("store")).unwrap();
    make_image_of_tars(&s, "example.com/hidden:1", std::slice::from_ref(&layer));
    let file = dir.path().join("out.tar");
    archive::save(
        &s,
        &[r("example.com/hidden:1")],
        &Platform::default(),
        std::fs::File::create(&file).unwrap(),
    )
    .unwrap();
    let fresh = Store::open(dir.path().join("fresh")).unwrap();
    let err = archive::load(&fresh, &file, std::fs::File::open(&file).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage after the end"), "{err}");
    assert!(
        fresh.list().unwrap().is_empty(),
        "nothing is named after a refused load"
    );

    let err = wharf_image::import::import_tar(&fresh, &layer[..], &r("example.com/imported:1"), &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("garbage after the end"), "{err}");

    // What the ecosystem writes and unpacking accepts loads: umoci's unpadded layer end.
    let mut unpadded = tar_of(&[("etc/ok", b"fine")]);
    unpadded.truncate(512 + 4);
    let s2 = Store::open(dir.path().join("store2")).unwrap();
    make_image_of_tars(&s2, "example.com/unpadded:1", &[unpadded]);
    let file2 = dir.path().join("out2.tar");
    archive::save(
        &s2,
        &[r("example.com/unpadded:1")],
        &Platform::default(),
        std::fs::File::create(&file2).unwrap(),
    )
    .unwrap();
    archive::load(&fresh, &file2, std::fs::File::open(&file2).unwrap()).unwrap();
}

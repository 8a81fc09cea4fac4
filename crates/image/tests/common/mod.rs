//! Helpers shared by the store and archive tests: small but real images.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use wharf_image::oci_spec::image::{Descriptor, MediaType};
use wharf_image::{Digest, Reference, Store};

/// A real tar with the given (path, content) regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *content).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip of bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Stores an image with one gzip layer per entry of `layers` (each a list of files) and tags it.
/// Returns the manifest descriptor.
pub fn make_image(store: &Store, name: &str, layers: &[Vec<(&str, &[u8])>]) -> Descriptor {
    let tars: Vec<Vec<u8>> = layers.iter().map(|files| tar_of(files)).collect();
    make_image_of_tars(store, name, &tars)
}

/// Stores an image with these layer tars (gzip-compressed) and tags it.
pub fn make_image_of_tars(store: &Store, name: &str, tars: &[Vec<u8>]) -> Descriptor {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in tars {
        diff_ids.push(Digest::sha256(tar).to_string());
        let gz = gzip(tar);
        let d = store.put_bytes(&gz).unwrap();
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "size": gz.len(),
            "digest": d.to_string(),
        }));
    }
    let config = serde_json::json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": format!("test layers for {name}")}],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": layer_descs,
    });
    let (desc, _) = store
        .put_manifest(
            &serde_json::to_vec(&manifest).unwrap(),
            Some("application/vnd.oci.image.manifest.v1+json"),
        )
        .unwrap();
    assert_eq!(desc.media_type(), &MediaType::ImageManifest);
    store.tag(&name.parse::<Reference>().unwrap(), &desc).unwrap();
    desc
}

/// Every file under a directory with its content, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push((rel + "/", Vec::new()));
                walk(base, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

//! wharf-image micro-benchmarks: reference and manifest parsing, digest throughput, store put/get.
//!
//! `cargo bench --bench image`. Whole-process comparisons with skopeo/umoci/runc live in
//! `benches/peers.sh`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Read;

use divan::{Bencher, black_box, counter::BytesCount};
use wharf::image::{Digest, Manifest, Reference, Store, VerifyingReader};

fn main() {
    divan::main();
}

const REFERENCES: &[&str] = &[
    "nginx",
    "nginx:1.25",
    "library/nginx",
    "docker.io/library/nginx:latest",
    "localhost:5000/a/b:tag",
    "ghcr.io/owner/repo@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "registry.example.com:5000/team/project/app:v1.2.3@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

#[divan::bench]
fn parse_references() {
    for r in REFERENCES {
        black_box(black_box(r).parse::<Reference>().unwrap());
    }
}

fn index_json(entries: usize) -> Vec<u8> {
    let manifests: Vec<_> = (0..entries)
        .map(|i| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 1000 + i,
                "digest": Digest::sha256(&i.to_le_bytes()).to_string(),
                "platform": {"os": "linux", "architecture": if i % 2 == 0 { "amd64" } else { "arm64" }},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap()
}

fn manifest_json(layers: usize) -> Vec<u8> {
    let layers: Vec<_> = (0..layers)
        .map(|i| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "size": 1_000_000 + i,
                "digest": Digest::sha256(&i.to_le_bytes()).to_string(),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1234, "digest": Digest::sha256(b"c").to_string()},
        "layers": layers,
    }))
    .unwrap()
}

#[divan::bench(args = [1, 10, 100])]
fn parse_manifest(bencher: Bencher<'_, '_>, layers: usize) {
    let bytes = manifest_json(layers);
    bencher
        .counter(BytesCount::of_slice(&bytes))
        .bench(|| black_box(Manifest::parse(black_box(&bytes), None).unwrap()));
}

#[divan::bench(args = [2, 20])]
fn parse_index_and_choose(bencher: Bencher<'_, '_>, entries: usize) {
    let bytes = index_json(entries);
    let platform = "linux/arm64".parse().unwrap();
    bencher.bench(|| {
        let m = Manifest::parse(black_box(&bytes), None).unwrap();
        black_box(m.choose(&platform).is_some())
    });
}

const MIB: usize = 1024 * 1024;

#[divan::bench(args = [MIB, 64 * MIB])]
fn verify_digest(bencher: Bencher<'_, '_>, size: usize) {
    let data = vec![0x5au8; size];
    let digest = Digest::sha256(&data);
    bencher.counter(BytesCount::new(size)).bench(|| {
        let mut r = VerifyingReader::new(&data[..], digest.clone(), Some(size as u64));
        let mut buf = vec![0u8; 256 * 1024];
        while r.read(&mut buf).unwrap() > 0 {}
        black_box(r.is_verified())
    });
}

#[divan::bench(args = [64 * 1024, 16 * MIB])]
fn store_put_get(bencher: Bencher<'_, '_>, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut n = 0u64;
    bencher.counter(BytesCount::new(size)).bench_local(|| {
        // Distinct content each time, so every put really writes.
        n += 1;
        let mut data = vec![0u8; size];
        data[..8].copy_from_slice(&n.to_le_bytes());
        let d = store.put_bytes(&data).unwrap();
        let mut f = store.open_blob(&d).unwrap();
        let mut out = Vec::with_capacity(size);
        f.read_to_end(&mut out).unwrap();
        black_box(out.len())
    });
}

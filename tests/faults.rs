//! Faults met by real processes of the example CLI: concurrent first use of a store, pulls
//! killed at random moments or interrupted by signals, a full disk. A real `docker-registry`
//! on 127.0.0.1 serves the images. Each test names the fault it reproduces.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::Registry;

fn wharf_bin() -> &'static Path {
    support::example_bin("wharf")
}

fn wharf(root: &Path, args: &[&str]) -> Output {
    Command::new(wharf_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = wharf(root, args);
    assert!(
        out.status.success(),
        "wharf {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pseudo-random, incompressible bytes (xorshift), so gzip keeps layers large.
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

/// Pushes an image of `mib` MiB of noise (in two files) to the registry as `name`, through a
/// seed store in `dir`.
fn push_noise_image(dir: &Path, reg: &Registry, repo: &str, mib: usize) -> String {
    let name = reg.image(repo);
    let tree = dir.join(format!("tree-{}", repo.replace(['/', ':'], "_")));
    std::fs::create_dir_all(tree.join("data")).unwrap();
    std::fs::write(tree.join("data/a"), noise(mib << 19, 1)).unwrap();
    std::fs::write(tree.join("data/b"), noise(mib << 19, 2)).unwrap();
    let seed = dir.join("seed-store");
    ok(&seed, &["import", tree.to_str().unwrap(), &name]);
    ok(&seed, &["push", &name]);
    name
}

/// Every blob in the store hashes to its name.
fn assert_blobs_hash_to_their_names(root: &Path) {
    let dir = root.join("blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let out = Command::new("sha256sum").arg(e.path()).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            sum.split_whitespace().next(),
            Some(name.as_str()),
            "blob {name} is damaged"
        );
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn partial_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join(".wharf/partial"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Fault: six `wharf pull`s at once into a `--root` that does not exist yet (issue 15: 2–5 of
/// them failed with "not an OCI image layout: no oci-layout file").
#[test]
fn concurrent_pulls_into_a_fresh_root_all_succeed() {
    let dir = temp_dir();
    let reg = Registry::start();
    let name = push_noise_image(dir.path(), &reg, "faults/concurrent:1", 2);
    for fresh in ["missing", "empty"] {
        let root = dir.path().join(format!("root-{fresh}"));
        if fresh == "empty" {
            std::fs::create_dir(&root).unwrap();
        }
        let children: Vec<_> = (0..6)
            .map(|_| {
                Command::new(wharf_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["pull", &name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a concurrent pull into a {fresh} root failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(ok(&root, &["images"]).contains("faults/concurrent"));
        assert_blobs_hash_to_their_names(&root);
        assert!(partial_files(&root).is_empty());
    }
}

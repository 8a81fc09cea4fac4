//! `cargo add wharf` builds on a machine without ISA-L: a throwaway crate that depends on the
//! façade by path, with default features, is built with ISA-L's headers hidden (a private mount
//! namespace with an empty tmpfs over `/usr/include/isa-l`, pkg-config pointed at nothing) and
//! must build, warn once, and report zlib-rs as its inflater.

use std::path::Path;
use std::process::Command;

const HEADER_DIR: &str = "/usr/include/isa-l";

#[test]
fn this_build_found_isal() {
    // CI installs libisal-dev (scripts/test-deps.sh), so the default build must have found it.
    assert!(
        Path::new(HEADER_DIR).is_dir(),
        "{HEADER_DIR} is missing: install libisal-dev (scripts/test-deps.sh)"
    );
    assert_eq!(wharf::rootfs::GZIP_INFLATER, "isa-l");
}

#[test]
fn default_features_build_without_isal_headers() {
    assert!(
        Path::new(HEADER_DIR).is_dir(),
        "{HEADER_DIR} is missing: install libisal-dev (scripts/test-deps.sh) so the test can hide it"
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("make a temporary directory");
    let krate = dir.path();
    std::fs::create_dir(krate.join("src")).expect("make src/");
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"anywhere\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nwharf = {{ path = {:?} }}\n\n[workspace]\n",
            workspace.display().to_string()
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(
        krate.join("src/main.rs"),
        "fn main() { println!(\"{}\", wharf::rootfs::GZIP_INFLATER); }\n",
    )
    .expect("write src/main.rs");
    // The workspace's lock file pins the same versions, so the build needs no network.
    std::fs::copy(workspace.join("Cargo.lock"), krate.join("Cargo.lock")).expect("copy Cargo.lock");
    // Its own target directory under the workspace's, so CI's cache keeps it between runs.
    let target = workspace.join("target/build-anywhere");
    let script = format!(
        "set -eu; mount -t tmpfs none {HEADER_DIR}; \
         exec cargo run --offline --manifest-path {manifest:?}",
        manifest = krate.join("Cargo.toml").display().to_string()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CARGO_TARGET_DIR", &target)
        // No debug info and no incremental cache: the build is only checked, and CI's disk is small.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_INCREMENTAL", "0")
        .env("PKG_CONFIG_PATH", "/nonexistent")
        .env("PKG_CONFIG_LIBDIR", "/nonexistent")
        .env_remove("WHARF_ISAL")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run unshare (util-linux) to build the throwaway crate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the throwaway crate did not build without ISA-L:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "zlib-rs",
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("ISA-L not found"),
        "the build did not say it fell back to zlib-rs:\n{stderr}"
    );
}

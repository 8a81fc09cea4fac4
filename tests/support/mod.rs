//! Shared by the root package's integration tests: the example programs they drive.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The binary of example `name` (`wharf`, `runtime`), built once per test binary with the
/// profile the tests were built with.
pub fn example_bin(name: &str) -> &'static Path {
    static BUILT: OnceLock<Mutex<HashMap<String, &'static Path>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built.entry(name.to_string()).or_insert_with(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cargo must be runnable to build examples/{name}: {e}"));
        assert!(status.success(), "building examples/{name} failed");
        // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let bin = profile_dir.join("examples").join(name);
        assert!(bin.is_file(), "{} was not built", bin.display());
        // One path per example for the life of the test binary.
        Box::leak(bin.into_boxed_path())
    })
}

//! Run an OCI bundle with wharf-sandbox, like `runc run -b BUNDLE ID` in the foreground.
//!
//! ```text
//! cargo run --release --example sandbox -- BUNDLE
//! ```
//!
//! Reads `BUNDLE/config.json` as an OCI runtime spec (e.g. one written by `runc spec` or
//! `umoci unpack`), runs its process on the spec's `root.path` (relative to the bundle,
//! `rootfs` by default) with the caller's stdin/stdout/stderr, waits, and exits with the
//! process's exit code (128 + signal when it was killed). Compiled seccomp programs are kept
//! in `wharf::sandbox::default_seccomp_cache()` (`/run/wharf/seccomp` as root) for the next
//! run. `benches/peers.sh` times this against `runc run` on the same bundle.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use wharf::sandbox::oci_spec::runtime::Spec;
use wharf::sandbox::{Container, ExitStatus, SpawnOptions, StdioConfig};

fn run(bundle: PathBuf) -> Result<ExitStatus, Box<dyn std::error::Error>> {
    let config = bundle.join("config.json");
    let spec = Spec::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let root = spec
        .root()
        .as_ref()
        .map_or_else(|| PathBuf::from("rootfs"), |r| r.path().clone());
    let opts = SpawnOptions {
        seccomp_cache: wharf::sandbox::default_seccomp_cache(),
        ..SpawnOptions::default()
    };
    let mut container = Container::spawn_with(&spec, &bundle.join(root), StdioConfig::inherit(), opts)?;
    Ok(container.wait()?.status)
}

fn main() -> ExitCode {
    let Some(bundle) = std::env::args_os().nth(1) else {
        eprintln!("usage: sandbox BUNDLE");
        return ExitCode::from(2);
    };
    match run(bundle.into()) {
        Ok(ExitStatus::Exited(code)) => ExitCode::from(code as u8),
        Ok(ExitStatus::Signaled(signal)) => ExitCode::from(128 + signal as u8),
        Err(e) => {
            eprintln!("sandbox: {e}");
            ExitCode::from(125) // as docker run does for errors of the runtime itself
        }
    }
}

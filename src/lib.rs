//! Wharf: what Docker does under the hood, as libraries.
//!
//! Run an image and read its output and exit code (as root, like every container):
//! ```no_run
//! use wharf::engine::{ContainerSettings, Engine};
//!
//! fn main() -> Result<(), wharf::engine::Error> {
//!     wharf::engine::supervisor::run_if_requested(); // this program also supervises detached containers
//!     let engine = Engine::open("/var/lib/wharf")?;
//!     let settings = ContainerSettings::builder().command(["echo", "hello"]).build();
//!     let name = engine.run("busybox", &settings)?; // pulled when the store lacks it
//!     let exit = engine.wait(&name)?;
//!     let logs = engine.logs(&name)?;
//!     println!("{} exited with {:?}", String::from_utf8_lossy(&logs.stdout), exit.code);
//!     engine.remove(&name, false)
//! }
//! ```
//!
//! [`engine`] composes the crates into containers made from images, as `docker run` makes them; its module
//! docs say what it keeps on disk, how several processes share a root, who waits for a container (a detached one
//! has a supervisor process: the program that embeds wharf, run again, hence the first line of `main`; see
//! [`engine::supervisor`]), and how it fits async code. The façade
//! also re-exports the five crates so that an embedder can depend on one package. Each crate can also be used
//! on its own:
//!
//! - [`image`] — references, digests, manifests, image configs and the local image store;
//! - [`registry`] — the OCI distribution protocol client;
//! - [`rootfs`] — layers applied safely into root filesystems, overlay assembly, commit;
//! - [`sandbox`] — a process in namespaces, cgroups and seccomp from an OCI runtime spec;
//! - [`network`] — container networks through the CNI plugins (bridge, published ports, names).
//!
//! # Building
//! `cargo add wharf` needs a Rust toolchain, crates.io and one system library, libseccomp
//! (Debian and Ubuntu: `apt-get install libseccomp-dev pkg-config`). The default `isal` feature
//! uses ISA-L (`libisal-dev`) to inflate gzip layers when the build finds it and falls back to
//! zlib-rs with one build warning when it does not ([`rootfs::GZIP_INFLATER`] says which);
//! `WHARF_ISAL=require` in the build's environment turns its absence into an error.

pub mod engine;

/// This library's version (all the workspace's crates share it), as `wharf version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use wharf_image as image;
pub use wharf_network as network;
pub use wharf_registry as registry;
pub use wharf_rootfs as rootfs;
pub use wharf_sandbox as sandbox;

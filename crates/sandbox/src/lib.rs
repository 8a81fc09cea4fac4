//! wharf-sandbox: run a process in a container from an OCI runtime [`Spec`](oci_spec::runtime::Spec) and a root
//! filesystem path.
//!
//! The main type is [`Container`]: [`spawn`](Container::spawn) it, then [`wait`](Container::wait),
//! [`kill`](Container::kill), [`exec`](Container::exec) more processes into it, list its
//! [`processes`](Container::processes), read its [`stats`](Container::stats) or [`update`](Container::update) its
//! limits. [`StateDir`] lets another process find, start, signal or delete a container by id.
//!
//! # Design
//! - **One forked child, no helper binary.** The parent prepares everything that allocates — C strings, the mount
//!   list, the compiled seccomp BPF program — and then `clone3`s a child with `CLONE_PIDFD` (plus
//!   `CLONE_NEWPID`/`CLONE_NEWUSER` when asked). The child only makes raw system calls until `execve`, so spawning is
//!   safe from a multithreaded or async program. The pidfd is the handle: signals and waits can never hit a
//!   recycled pid.
//! - **Typed spawn errors.** The child reports a failed step (exec not found, bad cwd, bad user, a mount) as a
//!   fixed-size record over a close-on-exec pipe; the parent turns it into an [`Error`] variant with context.
//! - **Filesystem.** Mounts are made relative to an fd of the rootfs with `openat2(RESOLVE_IN_ROOT)`, through
//!   `/proc/self/fd/N`, so a symlink in the rootfs cannot redirect a mount outside it; masked paths are covered with
//!   a `/dev/null` that was opened once and verified to be the null device (CVE-2025-31133). Then `pivot_root`.
//!   All mounts live in the container's mount namespace and vanish with it.
//! - **Cgroups** go through a small in-crate layer ([`cgroup`]) that handles v1, v2 and hybrid hosts; the module
//!   docs say why not `cgroups-rs`.
//! - **Seccomp**: Docker's default profile ships with the crate and is resolved for the container's capabilities,
//!   architecture and kernel ([`seccomp::docker_default`]), then compiled with libseccomp.
//! - **CVE defences**: the child is non-dumpable until `execve` and never re-executes the host binary
//!   (CVE-2019-5736); every inherited fd is marked close-on-exec and the working directory is resolved inside the
//!   root and checked with `getcwd` (CVE-2024-21626).
//!
//! # Example
//! ```no_run
//! use wharf_sandbox::{Container, StdioConfig, oci_spec::runtime::Spec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut spec = Spec::default();
//! if let Some(p) = spec.process_mut() {
//!     p.set_args(Some(vec!["/bin/echo".into(), "hello".into()]));
//! }
//! let mut c = Container::spawn(&spec, std::path::Path::new("/var/lib/rootfs"), StdioConfig::inherit())?;
//! let exit = c.wait()?;
//! println!("{:?}", exit.status);
//! # Ok(()) }
//! ```

pub mod caps;
pub mod cgroup;
mod child;
mod container;
mod error;
mod prepare;
pub mod seccomp;
pub mod state;

pub use container::{
    Container, DefaultSeccomp, Exit, ExitStatus, ProcessHandle, ProcessInfo, SpawnOptions, Stdio, StdioConfig,
};
pub use error::{Error, Result};
#[doc(inline)]
pub use oci_spec;
pub use state::{StateDir, Status};

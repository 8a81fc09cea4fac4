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
//!   `CLONE_NEWPID`/`CLONE_NEWUSER` when asked). The child only makes raw system calls until `execve` (no
//!   allocation, no locks, no glibc `setuid`-family wrappers, which would signal the parent's other threads), so
//!   spawning is safe from a multithreaded or async program. The pidfd is the handle: signals and waits can never
//!   hit a recycled pid. Namespaces joined by path (`--net=container:x`) are joined by a short-lived helper thread
//!   just before the clone, so the caller's threads are untouched and the child starts inside them; a user or mount
//!   namespace joined by path is joined by the child itself (see [`namespaces`](crate#namespaces) below).
//! - **Typed spawn errors.** The child reports a failed step (exec not found, permission, bad cwd, bad user, a
//!   mount) as a fixed-size record over a close-on-exec pipe; the parent turns it into an [`Error`] variant with
//!   context. A clean EOF on that pipe means `execve` succeeded.
//! - **Filesystem.** Mount propagation is made private, the rootfs is bind-mounted onto itself, and every mount
//!   target is opened relative to an fd of the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted through
//!   `/proc/self/fd/N`, so a symlink in the rootfs cannot redirect a mount outside it. Masked paths get a
//!   `/dev/null` that was opened once and checked to be the null device, or an empty read-only tmpfs; read-only
//!   paths are bind-remounted keeping their locked flags (CVE-2025-31133). A terminal (`process.terminal`) is
//!   allocated, as runc does, from the container's own devpts (its `dev/pts/ptmx`, checked to be the ptmx device)
//!   so its name is valid inside, and its master is passed back over a socket; `/dev/console` is bound from it,
//!   onto a target checked not to be a symlink (CVE-2025-52565). Without a devpts mount the pty comes from the
//!   host's. Then `pivot_root(".", ".")` (or, where that is
//!   impossible or [`SpawnOptions::no_pivot`] asks, `MS_MOVE` + `chroot`, which a process with
//!   `CAP_SYS_CHROOT` can escape). All mounts live in the container's mount namespace and vanish with it.
//!   Mount options are read as mount(8) reads them (flags, propagation, the rest as filesystem data); runc's
//!   recursive attributes (`rro`, `rnosuid`, …) and `remount` are refused naming `mounts[N].options`, where
//!   containerd's runc takes them: as data they would be dropped on a bind mount, and a bind mount asked to be
//!   recursively read-only would stay writable. runc's `tmpcopyup` (podman's `--tmpfs`, `--read-only`) is taken
//!   where the rootfs has nothing at the destination to copy, and refused, naming the field, where it has.
//! - **Device nodes** (runc's rules): unless `/dev` is bind-mounted, the default nodes (null, zero, full, random,
//!   urandom, tty) and `linux.devices` are made in the container's `/dev` — a tmpfs or the rootfs's own directory —
//!   with the `/dev/fd`, `stdin`... and `ptmx -> pts/ptmx` symlinks (`core` where the host has `/proc/kcore`); a
//!   `linux.devices` entry for `/dev/ptmx` is left to that symlink. With `/dev` bind-mounted nothing is made in it:
//!   it is the source's directory. Unlike runc, a node already in the rootfs at that path is replaced, so the
//!   container gets the device the spec names rather than whatever the image put there; type bits in `fileMode`
//!   are ignored for `type`, and the mode is exact whatever the umask.
//! - <a id="namespaces"></a>**Namespaces** (`linux.namespaces`) are checked as runc checks them: each type once;
//!   a path must be a namespace of the listed type (`NS_GET_NSTYPE`: an error naming the entry, not a failed
//!   `setns`); a new user namespace only with mappings. Unlike runc, which ignores uid/gid mappings without a user
//!   namespace and runs the container as the host's root, they are refused: a config that maps ids but forgot the
//!   namespace must not silently run as real root. A mount namespace is
//!   required, new or joined by path; a joined one gets the container's mounts and `pivot_root`, as with runc, so
//!   its holder sees them. Sysctls and a hostname may be set in namespaces the container has of its own, new or
//!   joined (not the caller's own joined by path).
//! - **Cgroups** go through a small in-crate layer ([`cgroup`]) for v1, v2 and hybrid hosts; its docs say why not
//!   `cgroups-rs`. The process enters its cgroup by itself before it runs anything of its own (a v1 `tasks`
//!   write of `0`, or `CLONE_INTO_CGROUP` on v2), which spares the RCU grace period a parent's `cgroup.procs`
//!   write waits for; the cgroup is removed (killing stragglers) when the container is waited for. Huge page
//!   limits (`hugepageLimits`) go to the hugetlb controller (v1 hierarchy or v2), reservation limits included
//!   where the kernel has them; a missing controller or page size is [`Error::CgroupUnavailable`].
//! - **Seccomp**: Docker's default profile ships with the crate and is resolved for the container's bounding
//!   capabilities, architecture and kernel ([`seccomp::docker_default`]), then compiled with libseccomp (once per
//!   profile and process; with [`SpawnOptions::seccomp_cache`], once per profile on disk). A spec's own
//!   `linux.seccomp` replaces it.
//! - **Session keyring**: each container joins a session keyring of its own, `_ses.ID`, as runc does
//!   ([`SpawnOptions::no_new_keyring`] keeps the caller's).
//! - **Hook point**: with [`SpawnOptions::before_pivot`] the child stops once its mounts are in place and before
//!   `pivot_root`, where an OCI runtime runs `createRuntime` and `createContainer` hooks; the state says
//!   [`Status::Creating`] meanwhile.
//! - **Capabilities**: bounding set dropped, then `setgroups`/`setresgid`/`setresuid` with keep-caps, then
//!   `capset` and the ambient set; Docker's 14 by default ([`caps::docker_default`]).
//! - **CVE defences**: the child is non-dumpable until `execve` and never re-executes the host binary, so no
//!   container process can open it through `/proc/PID/exe` (CVE-2019-5736); every inherited fd is marked
//!   close-on-exec and the working directory is resolved inside the root (magic links refused) and checked with
//!   `getcwd` (CVE-2024-21626). A container's working directory that the root lacks is made (0755) after the
//!   mounts and before a read-only root, as runc makes it, beneath the root as mount targets are: a symlink on
//!   the way resolves inside the root, and one dangling there (an absolute link to a host path) is refused as
//!   runc refuses it, never followed out. An exec's working directory must exist, as runc's.
//! - **Create/start split and state**: with [`SpawnOptions::created_only`] the child waits on a FIFO in the state
//!   directory just before `execve`; [`StateDir`] lets any process start, signal, exec into, list and delete a
//!   container by id — what an OCI runtime CLI (runc's command line) needs.
//!
//! # Not supported (refused with [`Error::InvalidSpec`], never ignored)
//! Hooks (the runtime driving the sandbox runs them), SELinux labels, AppArmor profiles on hosts without AppArmor
//! (applied where it is enabled), time namespaces, personality,
//! Intel RDT, memory policy, net devices, network/RDMA limits, block IO throttling and per-device weights,
//! kernel memory limits, realtime CPU, `disableOOMKiller`, sysctls outside the container's own namespaces, and
//! seccomp user notification.
//!
//! # Known limits
//! - The cgroup v2 code path is written but this project's machines only have v1 controllers, so it is not
//!   exercised by full-container tests; the v2 pieces (create, attach, kill, delete, the eBPF device filter) are
//!   tested on the host's controller-less cgroup2 mount.
//! - Rootless use (a non-root caller with a user namespace, as `runc spec --rootless` makes) is tested through the
//!   runtime CLI only (tests/rootless.rs, against runc): a map of the caller's own ids is written directly (after
//!   `setgroups deny`), wider maps — the caller's `/etc/subuid` and `/etc/subgid` ranges — through the setuid
//!   helpers `newuidmap`/`newgidmap` (Debian's `uidmap`; an [`Error::IdMap`] names a missing helper or a refused
//!   range). Without a cgroup the caller may write, the container runs in the caller's cgroup when the spec asks
//!   for no limit, and a limit is refused ([`Error::CgroupUnavailable`] naming it) rather than dropped; a delegated
//!   cgroup v2 subtree is used like any other when `linux.cgroupsPath` points into it. The compiled seccomp cache
//!   of a non-root caller is [`default_seccomp_cache`]: `$XDG_RUNTIME_DIR/wharf/seccomp`.
//! - The `init` reaper is this crate's code running as pid 1 in the container (non-dumpable); it exits with the
//!   program's code or 128+signal.

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
//!
//! # Building
//! The crate links the system's libseccomp (version 2.5 or later): on Debian and Ubuntu
//! `apt-get install libseccomp-dev pkg-config`, on Fedora `dnf install libseccomp-devel`, on Alpine
//! `apk add libseccomp-dev`. Nothing else outside crates.io is needed.

mod bpf_cache;
pub mod caps;
pub mod cgroup;
mod child;
mod clone;
mod container;
mod devices;
mod error;
mod exec;
mod fds;
mod filter;
mod idmap;
mod namespaces;
mod options;
mod plan;
mod prepare;
mod process;
mod report;
pub mod seccomp;
mod spawn;
pub mod state;
mod stdio;
mod sys;

pub use container::Container;
pub use error::{Error, Result};
#[doc(inline)]
pub use oci_spec;
pub use options::{
    BeforePivot, DEFAULT_SECCOMP_CACHE, DefaultSeccomp, MountParam, RootMount, SpawnOptions, default_seccomp_cache,
};
pub use prepare::mount_options;
pub use process::{Exit, ExitStatus, ProcessHandle, ProcessInfo};
pub use state::{StateDir, Status};
pub use stdio::{Stdio, StdioConfig};

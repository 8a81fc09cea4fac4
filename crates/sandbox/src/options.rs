//! [`SpawnOptions`]: how a container is spawned, beyond its spec.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cgroup::CgroupDriver;

/// A filesystem the container's own process mounts on the rootfs path, inside its namespaces, before anything else
/// (see [`SpawnOptions::root_mount`]): how an unprivileged caller gets an overlay, which only the root of a user
/// namespace may mount (Linux 5.11 and later, with `userxattr`).
///
/// # Examples
/// ```
/// use wharf_sandbox::{MountParam, RootMount};
/// let overlay = RootMount {
///     fstype: "overlay".into(),
///     params: vec![
///         MountParam::String("lowerdir+".into(), "/home/u/layers/a".into()),
///         MountParam::String("upperdir".into(), "/home/u/c1/upper".into()),
///         MountParam::String("workdir".into(), "/home/u/c1/work".into()),
///         MountParam::Flag("userxattr".into()),
///     ],
/// };
/// assert_eq!(overlay.params.len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMount {
    /// The filesystem type, as `fsopen(2)` takes it (`overlay`).
    pub fstype: String,
    /// Its parameters in order, each one `fsconfig(2)` call.
    pub params: Vec<MountParam>,
}

/// One parameter of a [`RootMount`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountParam {
    /// A key with a string value (`FSCONFIG_SET_STRING`), e.g. `upperdir` and a path.
    String(String, OsString),
    /// A key alone (`FSCONFIG_SET_FLAG`), e.g. `userxattr`.
    Flag(String),
}

/// Which seccomp filter a container gets when its spec has no `linux.seccomp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultSeccomp {
    /// Docker's default profile, resolved for the container's capabilities (the default).
    #[default]
    Docker,
    /// No filter.
    Unconfined,
}

/// A callback run while a new container's process waits with its mounts in place, before `pivot_root`: the point
/// where the OCI runtime spec runs `createRuntime` (on the host) and `createContainer` (in the container's
/// namespaces) hooks. It gets the process's host pid (its namespaces are `/proc/PID/ns/*`); the container's state,
/// when kept in a state directory, says [`Status::Creating`](crate::Status::Creating) meanwhile. An `Err` removes
/// the container and makes the spawn fail with [`Error::BeforePivot`](crate::Error::BeforePivot).
pub struct BeforePivot(pub Box<dyn FnOnce(i32) -> std::result::Result<(), String> + Send>);

impl std::fmt::Debug for BeforePivot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforePivot(..)")
    }
}

/// Options for [`Container::spawn_with`](crate::Container::spawn_with).
#[derive(Debug, Default)]
pub struct SpawnOptions {
    /// The container id (default: `wharf-PID-N`). Names the cgroup (`wharf/ID` unless the spec has a
    /// `linux.cgroupsPath`) and the state directory entry.
    pub id: Option<String>,
    /// Persist state under this directory so other processes can find the container.
    pub state_dir: Option<PathBuf>,
    /// Run a minimal init as pid 1 that reaps orphans and forwards signals (`docker run --init`).
    pub init: bool,
    /// Set everything up but wait before `execve` until [`Container::start`](crate::Container::start) (or
    /// [`StateDir::start`](crate::StateDir::start)).
    pub created_only: bool,
    /// Seccomp when the spec has none (default: Docker's profile).
    pub default_seccomp: DefaultSeccomp,
    /// Enter the rootfs with `MS_MOVE` + `chroot` instead of `pivot_root` (runc's `--no-pivot`), for roots that
    /// cannot be pivoted (a ramfs). Weaker: a process with `CAP_SYS_CHROOT` can escape a chroot. Used
    /// automatically when `pivot_root` says `EINVAL`.
    pub no_pivot: bool,
    /// The cgroup hierarchy to use (default: [`CgroupDriver::detect`]), e.g. a cgroup2 mount on a hybrid host.
    pub cgroup_driver: Option<CgroupDriver>,
    /// Keep compiled seccomp programs in this directory, so that the next process that starts a container with the
    /// same profile does not compile it again (10 to 20 ms for Docker's profile). It is created 0700 when missing,
    /// and must belong to the caller and not be writable by anyone else: its programs become containers' filters.
    /// [`DEFAULT_SECCOMP_CACHE`] is the conventional place for root. Default: compile in each process (compiled
    /// programs are always kept in memory for the life of the process).
    pub seccomp_cache: Option<PathBuf>,
    /// Pause before `pivot_root` and run this (see [`BeforePivot`]).
    pub before_pivot: Option<BeforePivot>,
    /// Keep the caller's session keyring (runc's `--no-new-keyring`). By default the container's process joins a
    /// session keyring of its own, `_ses.ID`, so keys of the caller's session are not reachable from it;
    /// processes exec'd into the container join the same one.
    pub no_new_keyring: bool,
    /// Bring the loopback interface `lo` up when the container gets a network namespace of its own (not one joined
    /// by path, not the host's), as Docker and podman do. runc leaves it down, and so does the default.
    pub loopback_up: bool,
    /// Mount this filesystem on the rootfs path first, in the container's own mount namespace (the spec must
    /// give it one) and, with a new user namespace, as that namespace's root: an unprivileged caller's overlay.
    /// A kernel that refuses it makes the spawn fail with [`Error::RootMount`](crate::Error::RootMount), the
    /// caller's cue to fall back (to a copy of the layers, say). Nothing is mounted on the host.
    pub root_mount: Option<RootMount>,
}

/// Where the examples keep compiled seccomp programs (see [`SpawnOptions::seccomp_cache`]): on the tmpfs `/run`, so
/// the cache starts empty after every boot.
pub const DEFAULT_SECCOMP_CACHE: &str = "/run/wharf/seccomp";

/// The seccomp program cache for the calling user: [`DEFAULT_SECCOMP_CACHE`] for root; for any other user
/// `$XDG_RUNTIME_DIR/wharf/seccomp` (per user, mode 0700, emptied at logout like the rest of that directory), or
/// none when `XDG_RUNTIME_DIR` is unset — never a path another user could have made.
///
/// # Examples
/// ```
/// let cache = wharf_sandbox::default_seccomp_cache();
/// if rustix::process::geteuid().is_root() {
///     assert_eq!(cache.as_deref(), Some(std::path::Path::new(wharf_sandbox::DEFAULT_SECCOMP_CACHE)));
/// }
/// ```
pub fn default_seccomp_cache() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from(DEFAULT_SECCOMP_CACHE));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("wharf/seccomp"))
}

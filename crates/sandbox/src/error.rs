//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or tearing down a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime spec asks for something invalid or something this crate does not support.
    #[error("invalid runtime spec: {field}: {reason}")]
    InvalidSpec {
        /// The spec field at fault (JSON path, e.g. `process.args`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The rootfs path is not a usable directory.
    #[error("rootfs {path}: {source}")]
    Rootfs {
        /// The rootfs path given.
        path: PathBuf,
        /// Why it is unusable.
        source: io::Error,
    },
    /// The filesystem of [`SpawnOptions::root_mount`](crate::SpawnOptions::root_mount) could not be mounted in
    /// the container's namespaces (e.g. a kernel without overlayfs in user namespaces, before 5.11).
    #[error("cannot mount the {fstype} root filesystem inside the container's namespaces: {source}")]
    RootMount {
        /// The filesystem type.
        fstype: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// The program to execute was not found in the container (searched the container's `PATH`).
    #[error("executable {program:?} not found in the container")]
    ExecNotFound {
        /// `process.args[0]`.
        program: String,
    },
    /// `execve` of the program failed for another reason (permission, format, ...).
    #[error("cannot execute {program:?} in the container: {source}")]
    Exec {
        /// `process.args[0]`.
        program: String,
        /// The errno of the last `execve`.
        source: io::Error,
    },
    /// The working directory could not be made or entered (a component is a file or a symlink dangling inside
    /// the root, an exec's is missing, or it is outside the root).
    #[error("cannot enter working directory {cwd:?} in the container: {source}")]
    Cwd {
        /// `process.cwd`.
        cwd: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The uid or gid map of the container's user namespace could not be set through `newuidmap`/`newgidmap`.
    #[error("cannot map ids into the user namespace with {tool}: {reason}")]
    IdMap {
        /// The helper (`newuidmap` or `newgidmap`).
        tool: &'static str,
        /// Why (missing helper, ranges outside `/etc/subuid`, the helper's own message).
        reason: String,
    },
    /// Switching to the process's user or groups failed.
    #[error("cannot switch to user {uid}:{gid}: {source}")]
    User {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
        /// Why.
        source: io::Error,
    },
    /// A mount (from the spec, or a masked/readonly path, or a device node) failed in the child.
    #[error("mount of {target:?} in the container failed ({what}): {source}")]
    Mount {
        /// The destination inside the container.
        target: PathBuf,
        /// Which step failed.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A setup step in the container's child process failed.
    #[error("container setup step {step:?} failed: {source}")]
    Setup {
        /// The step (e.g. `pivot_root`, `setns`, `seccomp`).
        step: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The caller's [`SpawnOptions::before_pivot`](crate::SpawnOptions::before_pivot) callback failed; the
    /// container was removed.
    #[error("container {id}: before pivot_root: {reason}")]
    BeforePivot {
        /// The container id.
        id: String,
        /// What the callback said.
        reason: String,
    },
    /// A cgroup operation failed.
    #[error("cgroup {path}: {what}: {source}")]
    Cgroup {
        /// The cgroup directory or file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The cgroup controllers this container needs are not available on the host.
    #[error("cgroup controller {controller:?} unavailable: {reason}")]
    CgroupUnavailable {
        /// The controller (e.g. `memory`).
        controller: String,
        /// Why it is unusable (not mounted, not enabled, file missing).
        reason: String,
    },
    /// The seccomp profile could not be resolved or compiled.
    #[error("seccomp profile: {reason}")]
    Seccomp {
        /// What went wrong (unknown syscall name, libseccomp error, ...).
        reason: String,
    },
    /// A host-side system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A host-side file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The persisted container state is missing or unreadable.
    #[error("container {id:?} state: {reason}")]
    State {
        /// The container id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A container id is not a safe file name.
    #[error("invalid container id {0:?}: use 1-128 characters of [A-Za-z0-9_.-], not starting with '.'")]
    InvalidId(String),
    /// A container with this id already has state in the state directory.
    #[error("container with given ID already exists: {0:?}")]
    AlreadyExists(String),
    /// The operation needs a running container.
    #[error("container {id:?} is not running")]
    NotRunning {
        /// The container id.
        id: String,
    },
}

impl Error {
    pub(crate) fn os(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Os { what, source }
    }
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
    pub(crate) fn spec(field: &str, reason: impl Into<String>) -> Error {
        Error::InvalidSpec {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The engine's errors: one enum, each variant naming the container, image or path it is about.

use std::path::PathBuf;

/// What can go wrong in the engine. The crates' own errors are carried whole (`#[from]`), so the
/// digest, path or URL they name is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No container of that name in this engine's root.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// An id prefix that several containers' ids start with.
    #[error("multiple containers found with provided prefix: {0}")]
    AmbiguousId(String),
    /// A container name that is not docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (at most 128 characters).
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// The name is taken by another container (running or stopped).
    #[error("the container name {0:?} is already in use: remove it with `wharf rm {0}`")]
    NameInUse(String),
    /// A setting of [`ContainerSettings`](super::ContainerSettings) that cannot be applied.
    #[error("invalid {setting} {value:?}: {reason}")]
    InvalidSetting {
        /// Which setting.
        setting: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The operation needs a stopped container (or `force`).
    #[error("container {0} is running: stop it first or use rm -f")]
    Running(String),
    /// A rename of a running container, which wharf does not do (docker does): its sandbox state, supervisor
    /// and network are found by its name while it runs.
    #[error("container {0} is running: stop it to rename it")]
    RenameRunning(String),
    /// The container was created but not started.
    #[error("container {0} was created but never started")]
    NotStarted(String),
    /// The container runs already (or the process that started it has not finished with it yet).
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// Another process is creating the container, or waits for it in the foreground.
    #[error("container {name} is {what} by process {pid}")]
    Busy {
        /// The container.
        name: String,
        /// What that process does with it.
        what: &'static str,
        /// That process.
        pid: i32,
    },
    /// The image is not in the store and the pull policy is [`PullPolicy::Never`](super::PullPolicy::Never).
    #[error("image {0} is not in the store (pull policy: never)")]
    ImageMissing(String),
    /// The container's filesystem is a copy of its image's layers (overlayfs was unavailable), which keeps no
    /// record of what changed.
    #[error(
        "container {0}'s filesystem is a copy of its layers (overlayfs was unavailable): its changes are not kept apart"
    )]
    NoOverlay(String),
    /// The container's filesystem is an overlay mounted only inside its own user namespace (a rootless
    /// container's), which this process sees only while the container runs.
    #[error(
        "container {0} is not running, and its filesystem (rootless: an overlay mounted inside its user namespace) \
         is only reachable while it runs: start it first"
    )]
    NotMountedHere(String),
    /// A signal name or number that is not known.
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    /// The container's supervisor could not start it (the reason is the one the supervisor gave: a program not
    /// found, a bad user, …), or could not be run (see [`Supervisor`](super::Supervisor)).
    #[error("start container {name}: {reason}")]
    Supervisor {
        /// The container.
        name: String,
        /// What went wrong.
        reason: String,
        /// When the container's command was what could not be run: why.
        failure: Option<CommandFailure>,
    },
    /// The container did not end after SIGKILL.
    #[error("container {0} did not stop after SIGKILL")]
    DidNotStop(String),
    /// A file operation on the engine's own files failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A container record that could not be written.
    #[error("write the record of container {name}: {source}")]
    Record {
        /// The container.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An error of the image store or of an image's config.
    #[error(transparent)]
    Image(#[from] wharf_image::Error),
    /// An error pulling from a registry.
    #[error(transparent)]
    Registry(#[from] wharf_registry::Error),
    /// An error of the layer cache or the container's filesystem.
    #[error(transparent)]
    Rootfs(#[from] wharf_rootfs::Error),
    /// An error of the sandbox (spawn, signal, exec, cgroup).
    #[error(transparent)]
    Sandbox(#[from] wharf_sandbox::Error),
    /// An error of the container networks.
    #[error(transparent)]
    Network(#[from] wharf_network::Error),
    /// An image reference that does not parse.
    #[error(transparent)]
    Reference(#[from] wharf_image::ReferenceError),
    /// The image config and the settings do not make a runtime spec.
    #[error(transparent)]
    Runtime(#[from] wharf_image::RuntimeError),
    /// A runtime spec that could not be built.
    #[error("build the container's runtime spec: {0}")]
    Spec(#[from] wharf_image::oci_spec::OciSpecError),
}

/// Why a container's command could not be run (docker's `run` exits 127 and 126 for these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandFailure {
    /// The program is not in the container (nor on its `PATH`).
    NotFound,
    /// The program is there but cannot be executed (a directory, no execute permission, a bad format).
    CannotInvoke,
}

impl CommandFailure {
    /// The word of the supervisor's report.
    pub(crate) fn word(self) -> &'static str {
        match self {
            CommandFailure::NotFound => "not-found",
            CommandFailure::CannotInvoke => "cannot-invoke",
        }
    }

    /// The failure of the word `word`.
    pub(crate) fn of_word(word: &str) -> Option<CommandFailure> {
        [CommandFailure::NotFound, CommandFailure::CannotInvoke]
            .into_iter()
            .find(|f| f.word() == word)
    }
}

/// The engine's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// When this error is that the container's command could not be run (not found, or not executable), why —
    /// whether the container was started by this process or by its supervisor.
    ///
    /// # Examples
    /// ```
    /// use wharf::engine::{CommandFailure, Error};
    /// let e = Error::from(wharf::sandbox::Error::ExecNotFound { program: "nope".into() });
    /// assert_eq!(e.command_failure(), Some(CommandFailure::NotFound));
    /// ```
    pub fn command_failure(&self) -> Option<CommandFailure> {
        match self {
            Error::Sandbox(wharf_sandbox::Error::ExecNotFound { .. }) => Some(CommandFailure::NotFound),
            Error::Sandbox(wharf_sandbox::Error::Exec { .. }) => Some(CommandFailure::CannotInvoke),
            Error::Supervisor { failure, .. } => *failure,
            _ => None,
        }
    }

    /// An [`Error::Io`] maker for `map_err`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

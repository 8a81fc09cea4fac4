//! The runtime's error type: one line per failure, naming what failed and on which input.

use std::io;
use std::path::PathBuf;

/// Everything a runtime command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox refused or failed (its message names the spec field, path or step; the failures to start the
    /// program read as runc's, see [`sandbox_words`]).
    #[error("{}", sandbox_words(.0))]
    Sandbox(#[from] wharf::sandbox::Error),
    /// The bundle or its `config.json` cannot be used.
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The bundle directory or its config.json.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `config.json` field this runtime does not support.
    #[error("config.json field {field} is not supported by this runtime: {reason}")]
    Unsupported {
        /// The JSON path of the field.
        field: String,
        /// Why, or what would be needed.
        reason: String,
    },
    /// No container with this id in the state directory.
    // containerd and CRI-O recognise a missing container by runc's words "container does not exist".
    #[error("container does not exist: {0:?}")]
    NotFound(String),
    /// The container is in the wrong state for the command.
    #[error("container {id:?} is {status}: {reason}")]
    BadState {
        /// The container id.
        id: String,
        /// Its current status.
        status: String,
        /// What the command needed, in runc's words where containerd matches on them.
        reason: String,
    },
    /// A signal name or number that does not exist.
    #[error("unknown signal {0:?}")]
    Signal(String),
    /// A command-line value that does not parse.
    #[error("invalid {flag} value {value:?}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Handing the pty master over the console socket failed.
    #[error("console socket {path}: {source}")]
    Console {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A lifecycle hook failed.
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        /// prestart, createRuntime, ...
        kind: &'static str,
        /// The hook's executable.
        path: PathBuf,
        /// Exit status, timeout or spawn error.
        reason: String,
    },
    /// A combination of flags and config that cannot work.
    #[error("{0}")]
    Usage(String),
}

/// The sandbox's message, except that a program that cannot be started is reported in runc's words: podman
/// decides by them what `podman run`/`exec` exits with ("no such file or directory" or "executable file not
/// found in" → 127, "permission denied" → 126, anything else → 255 for exec), and users compare the two runtimes'
/// messages.
fn sandbox_words(e: &wharf::sandbox::Error) -> String {
    use wharf::sandbox::Error as S;
    const PREFIX: &str = "unable to start container process";
    match e {
        S::ExecNotFound { program } if program.contains('/') => {
            format!("{PREFIX}: exec: {program:?}: stat {program}: no such file or directory")
        }
        S::ExecNotFound { program } => format!("{PREFIX}: exec: {program:?}: executable file not found in $PATH"),
        S::Exec { program, source } => format!("{PREFIX}: exec: {program:?}: {}", errno_words(source)),
        S::Cwd { cwd, source } => format!(
            "{PREFIX}: chdir to cwd (\"{}\") set in config.json failed: {}",
            std::path::Path::new("/").join(cwd).display(),
            errno_words(source)
        ),
        e => e.to_string(),
    }
}

/// An errno as Go (and so runc) words it: the C library's text, lower-case, without "(os error N)".
fn errno_words(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match e.raw_os_error() {
        Some(n) => text.trim_end_matches(&format!(" (os error {n})")).to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl Error {
    /// A closure turning an `io::Error` into [`Error::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

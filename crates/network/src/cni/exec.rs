//! The privileged layer: finding and running plugin executables.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a plugin run gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit status, for messages (`exit status: 1`, `signal: 9`).
    pub status: String,
    /// Its standard output (the result or the CNI error object).
    pub stdout: Vec<u8>,
    /// Its standard error (logs; not part of the protocol).
    pub stderr: Vec<u8>,
}

/// How plugins are found and run. [`ProcessExec`] runs the real executables; tests inject a double that
/// records calls and answers from a script, so the chaining logic is checked without root.
pub trait PluginExec: Send + Sync {
    /// The executable for plugin type `plugin` in `dirs`, first match wins.
    fn find(&self, plugin: &str, dirs: &[PathBuf]) -> Option<PathBuf>;

    /// Runs `path` with `env` set (on top of the caller's environment) and `stdin` written to it.
    ///
    /// # Errors
    /// The OS error when it cannot be started or talked to; a plugin that fails is not an error here.
    fn exec(&self, path: &Path, env: &[(&str, String)], stdin: &[u8]) -> io::Result<PluginOutput>;
}

/// The real thing: `fork`+`exec` of the plugin binary, as libcni does.
///
/// # Ambient authority
/// Runs executables from the configured plugin directories with the caller's privileges, in the
/// caller's network namespace (plugins create host-side links and firewall rules there).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessExec;

impl PluginExec for ProcessExec {
    fn find(&self, plugin: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        dirs.iter()
            .map(|d| d.join(plugin))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    fn exec(&self, path: &Path, env: &[(&str, String)], stdin: &[u8]) -> io::Result<PluginOutput> {
        let mut child = Command::new(path)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The config is small (a few KiB), well inside the pipe buffer, so writing before reading cannot
        // deadlock; a plugin that exits without reading gives EPIPE, which is its answer, not our error.
        if let Some(mut input) = child.stdin.take() {
            match input.write_all(stdin) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
        let out = child.wait_with_output()?;
        Ok(PluginOutput {
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

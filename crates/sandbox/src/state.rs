//! Container state persisted on disk, so another process can find, start, signal or delete a container by id
//! (the create/start split of an OCI runtime).
//!
//! Layout: `STATE_DIR/ID/state.json` (written atomically: temp file + rename) and, while the container waits to be
//! started, `STATE_DIR/ID/exec.fifo`: the container's process blocks reading it just before `execve`; writing one
//! byte starts it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};

/// The lifecycle state of a container, as the OCI runtime spec names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being set up: its process exists and waits at the hook point before `pivot_root`
    /// ([`SpawnOptions::before_pivot`](crate::SpawnOptions::before_pivot)).
    Creating,
    /// Set up and waiting to be started.
    Created,
    /// The process runs.
    Running,
    /// The process has exited.
    Stopped,
}

/// What is persisted for one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// The container id.
    pub id: String,
    /// Host pid of the container's first process.
    pub pid: i32,
    /// That process's start time (field 22 of `/proc/PID/stat`), to detect a recycled pid.
    pub pid_start_time: u64,
    /// The root filesystem path.
    pub rootfs: PathBuf,
    /// The container's cgroup.
    pub cgroup: Cgroup,
    /// Seconds since the Unix epoch when the container was created.
    pub created: u64,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// The container was spawned without the default seccomp filter (its spec had none either).
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// Where compiled seccomp programs are kept ([`SpawnOptions::seccomp_cache`](crate::SpawnOptions::seccomp_cache)),
    /// used again by [`StateDir::exec`].
    #[serde(default)]
    pub seccomp_cache: Option<PathBuf>,
    /// The container kept its creator's session keyring ([`SpawnOptions::no_new_keyring`](crate::SpawnOptions::no_new_keyring)).
    #[serde(default)]
    pub no_new_keyring: bool,
    /// Written while the container is still being set up (its process paused before `pivot_root`).
    #[serde(default)]
    pub creating: bool,
}

/// Validate a container id: it names a directory.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_owned()))
    }
}

/// Field 22 (starttime) of `/proc/PID/stat`.
pub(crate) fn pid_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// A directory holding the state of containers, one subdirectory per id.
///
/// # Ambient authority
/// Reads and writes below the path it is given.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Use (and create) `root` as the state directory.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> Result<StateDir> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(Error::io("create state directory", &root))?;
        Ok(StateDir { root })
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn fifo_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    /// Reserve `id`: create its directory, failing if it exists.
    pub(crate) fn reserve(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let d = self.dir(id);
        match fs::create_dir(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists(id.to_owned())),
            Err(e) => Err(Error::io("create container state directory", d)(e)),
        }
    }

    pub(crate) fn save(&self, st: &ContainerState) -> Result<()> {
        let d = self.dir(&st.id);
        let tmp = d.join("state.json.tmp");
        let json = serde_json::to_vec_pretty(st).map_err(|e| Error::State {
            id: st.id.clone(),
            reason: e.to_string(),
        })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(Error::io("write state", &tmp))?;
        // Written whole and renamed into place, so a reader never sees half a record; not
        // fsynced: it describes processes, which a machine crash ends with it (runc's
        // state.json is not synced either), and the sync cost ~0.5 ms in every create,
        // start and delete.
        f.write_all(&json).map_err(Error::io("write state", &tmp))?;
        fs::rename(&tmp, d.join("state.json")).map_err(Error::io("write state", d.join("state.json")))
    }

    /// Load the state of container `id`.
    ///
    /// # Errors
    /// [`Error::State`] if there is none or it does not parse.
    pub fn load(&self, id: &str) -> Result<ContainerState> {
        check_id(id)?;
        let p = self.dir(id).join("state.json");
        let bytes = fs::read(&p).map_err(|e| Error::State {
            id: id.to_owned(),
            reason: format!("{}: {e}", p.display()),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::State {
            id: id.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The ids of all containers with state here.
    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    /// The current status of container `id`.
    ///
    /// # Errors
    /// As [`StateDir::load`].
    pub fn status(&self, id: &str) -> Result<Status> {
        let st = self.load(id)?;
        Ok(
            if pid_start_time(st.pid) != Some(st.pid_start_time) || is_zombie(st.pid) {
                Status::Stopped
            } else if st.creating {
                Status::Creating
            } else if self.fifo_path(id).exists() {
                Status::Created
            } else {
                Status::Running
            },
        )
    }

    /// Start a created container: release its process, which then executes the program.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if it is not in the created state; [`Error::Io`] if the FIFO cannot be written.
    pub fn start(&self, id: &str) -> Result<()> {
        if self.status(id)? != Status::Created {
            return Err(Error::NotRunning { id: id.to_owned() });
        }
        let fifo = self.fifo_path(id);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(Error::io("open start FIFO", &fifo))?;
        f.write_all(&[0]).map_err(Error::io("write start FIFO", &fifo))?;
        fs::remove_file(&fifo).map_err(Error::io("remove start FIFO", &fifo))
    }

    /// Send `signal` to the container's first process (or, with `all`, to every process in its cgroup — also
    /// after the first process exited, as runc does: containerd's exit handling signals what is left that way).
    ///
    /// # Errors
    /// [`Error::NotRunning`] if its first process is gone and `all` is false.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let st = self.load(id)?;
        let alive = pid_start_time(st.pid) == Some(st.pid_start_time);
        if !alive && !all {
            return Err(Error::NotRunning { id: id.to_owned() });
        }
        let pids = if all {
            crate::process::members(&st.cgroup, st.pid)
        } else {
            vec![st.pid]
        };
        for p in pids {
            // SAFETY: kill(2) on a pid verified above (first process) or listed in the container's cgroup; one
            // that exited meanwhile just fails with ESRCH.
            if unsafe { libc::kill(p, signal) } < 0 && alive && p == st.pid {
                return Err(Error::Os {
                    what: "kill",
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }

    /// Delete container `id`: with `force`, kill what still runs; then remove its cgroup and state.
    ///
    /// # Errors
    /// [`Error::NotRunning`]-style refusal ([`Error::State`]) when it still runs and `force` is false; cgroup
    /// removal errors.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let st = self.load(id)?;
        if self.status(id)? != Status::Stopped {
            if !force {
                return Err(Error::State {
                    id: id.to_owned(),
                    reason: "still running (use force)".into(),
                });
            }
            if !st.cgroup.dirs.is_empty() {
                st.cgroup.kill_all(Duration::from_secs(5));
            } else {
                // No cgroup to empty (rootless): kill what runs in the container's pid namespace, and wait until
                // its first process is gone.
                for p in crate::process::members(&st.cgroup, st.pid) {
                    // SAFETY: kill(2) on a pid of the container's pid namespace; one gone meanwhile fails with ESRCH.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while pid_start_time(st.pid) == Some(st.pid_start_time) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        st.cgroup.delete()?;
        remove_state(&self.dir(id))
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

pub(crate) fn remove_state(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove container state", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("abc-1.2_3").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(matches!(check_id(bad), Err(Error::InvalidId(_))), "{bad}");
        }
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(pid_start_time(std::process::id() as i32).is_some());
    }
}

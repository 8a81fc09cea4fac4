//! [`Container`]: a running (or created) container — start, wait, kill, update, pause, exec, processes, stats.

use std::fs::File;
use std::time::Duration;

use oci_spec::runtime::{LinuxResources, Process, Spec};

use crate::cgroup::{Cgroup, JoinFds, Stats};
use crate::error::{Error, Result};
use crate::exec::{Target, exec_into};
use crate::prepare;
use crate::process::{Exit, ExitStatus, ProcessHandle, ProcessInfo, processes_of};
use crate::report::{read_report, report_error};
use crate::seccomp::SeccompProgram;
use crate::state::{self, StateDir};
use crate::stdio::StdioConfig;

/// One running (or created) container.
///
/// Dropping a `Container` that was not waited for kills it and cleans up (cgroup, state), unless it was
/// [`detach`](Container::detach)ed.
#[derive(Debug)]
pub struct Container {
    pub(crate) id: String,
    pub(crate) process: ProcessHandle,
    pub(crate) cgroup: Cgroup,
    pub(crate) state_dir: Option<StateDir>,
    pub(crate) start_pipe: Option<File>,
    pub(crate) error_pipe: Option<File>,
    pub(crate) spec: Spec,
    pub(crate) seccomp: Option<SeccompProgram>,
    pub(crate) program: String,
    pub(crate) exit: Option<Exit>,
    pub(crate) init: bool,
    pub(crate) detached: bool,
    pub(crate) no_new_keyring: bool,
}

impl Container {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's first process.
    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// The caller's end of a piped stdin.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.process.stdin.take()
    }
    /// The caller's end of a piped stdout.
    pub fn take_stdout(&mut self) -> Option<File> {
        self.process.stdout.take()
    }
    /// The caller's end of a piped stderr.
    pub fn take_stderr(&mut self) -> Option<File> {
        self.process.stderr.take()
    }
    /// The pty master, when `process.terminal` was set.
    pub fn take_pty_master(&mut self) -> Option<File> {
        self.process.pty_master.take()
    }

    /// Start a container spawned with [`SpawnOptions::created_only`](crate::SpawnOptions::created_only): its
    /// process executes the program.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if it was not waiting; the typed exec errors if the program cannot be executed.
    pub fn start(&mut self) -> Result<()> {
        match self.start_pipe.take() {
            Some(mut p) => std::io::Write::write_all(&mut p, &[1]).map_err(Error::os("start container"))?,
            None => match &self.state_dir {
                Some(sd) => sd.start(&self.id)?,
                None => return Err(Error::NotRunning { id: self.id.clone() }),
            },
        }
        if let Some(mut err) = self.error_pipe.take() {
            if let Some(r) = read_report(&mut err)? {
                let process = self.spec.process().clone().unwrap_or_default();
                let pp = prepare::proc_plan(&process)?;
                return Err(report_error(r, &pp, &JoinFds::default(), None));
            }
        }
        Ok(())
    }

    /// Send `signal` to the container's first process.
    ///
    /// # Errors
    /// [`Error::Os`] if it is gone.
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.process.kill(signal)
    }

    /// Wait for the container's first process to end, then remove the cgroup (killing any process left in it) and
    /// the persisted state.
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails; cgroup removal errors.
    pub fn wait(&mut self) -> Result<Exit> {
        // Without a timeout, waiting only ends with an exit.
        self.wait_timeout(None)?.ok_or_else(|| Error::Os {
            what: "waitid",
            source: std::io::ErrorKind::Other.into(),
        })
    }

    /// Wait at most `timeout`: if the container is still running then, kill every process in its cgroup and report
    /// `timed_out`.
    ///
    /// # Errors
    /// As [`Container::wait`].
    pub fn wait_or_kill(&mut self, timeout: Duration) -> Result<Exit> {
        if let Some(e) = self.wait_timeout(Some(timeout))? {
            return Ok(e);
        }
        self.cgroup.kill_all(Duration::from_secs(5));
        let _ = self.process.kill(libc::SIGKILL);
        let mut e = self.wait()?;
        e.timed_out = true;
        self.exit = Some(e);
        Ok(e)
    }

    /// Wait up to `timeout` (`None`: forever); `Ok(None)` if it is still running then.
    ///
    /// # Errors
    /// As [`Container::wait`].
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Exit>> {
        if let Some(e) = self.exit {
            return Ok(Some(e));
        }
        let Some(status) = self.process.wait_timeout(timeout)? else {
            return Ok(None);
        };
        let oom_kills = self.cgroup.stats().oom_kills;
        let exit = Exit {
            status,
            oom_kills,
            timed_out: false,
        };
        self.exit = Some(exit);
        self.cleanup()?;
        Ok(Some(exit))
    }

    fn cleanup(&mut self) -> Result<()> {
        self.cgroup.delete()?;
        if let Some(sd) = &self.state_dir {
            state::remove_state(&sd.dir(&self.id))?;
        }
        Ok(())
    }

    /// Leave the container running when this handle is dropped (its state stays in the state directory, if any).
    pub fn detach(mut self) {
        self.detached = true;
        self.process.status = Some(ExitStatus::Exited(0));
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self) -> Stats {
        self.cgroup.stats()
    }

    /// Change the resource limits of the running container.
    ///
    /// # Errors
    /// As [`Cgroup::update`].
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.cgroup.update(resources)
    }

    /// Freeze or thaw every process of the container.
    ///
    /// # Errors
    /// As [`Cgroup::freeze`].
    pub fn pause(&self, frozen: bool) -> Result<()> {
        self.cgroup.freeze(frozen)
    }

    /// The container's processes with their host and container pids (like `docker top`).
    pub fn processes(&self) -> Vec<ProcessInfo> {
        processes_of(&self.cgroup, self.process.pid)
    }

    /// Run another process in the running container: in its namespaces and cgroup, with the security settings of
    /// `process` (its capabilities default to the container's; the container's seccomp filter is applied), like
    /// `docker exec`.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if the container has ended; the typed setup errors reported by the child.
    pub fn exec(&self, process: &Process, stdio: StdioConfig) -> Result<ProcessHandle> {
        if self.exit.is_some() {
            return Err(Error::NotRunning { id: self.id.clone() });
        }
        let target = Target {
            id: &self.id,
            no_new_keyring: self.no_new_keyring,
            pid: self.process.pid,
            pidfd: &self.process.pidfd,
            cgroup: &self.cgroup,
            spec: &self.spec,
            seccomp: self.seccomp.clone(),
        };
        exec_into(target, process, stdio)
    }

    /// The program the container runs (`process.args[0]`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Whether the container runs a minimal init as pid 1.
    pub fn has_init(&self) -> bool {
        self.init
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if self.exit.is_none() {
            let _ = self.process.kill(libc::SIGKILL);
            // A frozen container cannot die until thawed.
            let _ = self.cgroup.freeze(false);
            let _ = self.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Container>();
        send_sync::<ProcessHandle>();
        send_sync::<StateDir>();
    }
}

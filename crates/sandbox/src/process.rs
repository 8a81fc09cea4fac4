//! A process in a container: [`ProcessHandle`] (its pidfd), how it ended ([`ExitStatus`], [`Exit`]), and the
//! processes of a container ([`ProcessInfo`]).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::state::StateDir;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(c) => Some(c),
            ExitStatus::Signaled(_) => None,
        }
    }
    /// The signal, if it was killed by one.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(s) => Some(s),
            ExitStatus::Exited(_) => None,
        }
    }
}

/// The end of a container: how its first process ended, and what else is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// How the container's first process ended.
    pub status: ExitStatus,
    /// Processes of the container the kernel's OOM killer killed (from the cgroup's counter).
    pub oom_kills: u64,
    /// The container was killed because its wall-clock timeout expired.
    pub timed_out: bool,
}

/// A process that runs in the container (its first process or one added with
/// [`Container::exec`](crate::Container::exec)).
#[derive(Debug)]
pub struct ProcessHandle {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) status: Option<ExitStatus>,
    /// Caller's end of a piped stdin.
    pub stdin: Option<File>,
    /// Caller's end of a piped stdout.
    pub stdout: Option<File>,
    /// Caller's end of a piped stderr.
    pub stderr: Option<File>,
    /// The pty master when `process.terminal` is set.
    pub pty_master: Option<File>,
    /// Let go of by [`ProcessHandle::detach`]: not killed on drop.
    pub(crate) detached: bool,
}

impl ProcessHandle {
    /// Let the process go: it keeps running after the handle is gone (dropping a handle kills a process that was
    /// not waited for). It stays a child of this process, so reaping it is the caller's business: `waitpid` on
    /// [`pid`](ProcessHandle::pid), or exit and let init or a subreaper (such as containerd's shim) adopt it, as a
    /// runtime CLI does. Until it is reaped, a container whose pid namespace it is in cannot finish exiting.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Send `signal` (through the pidfd: never to a recycled pid).
    ///
    /// # Errors
    /// [`Error::Os`] if the process is gone or the signal is invalid.
    pub fn kill(&self, signal: i32) -> Result<()> {
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            Err(Error::Os {
                what: "pidfd_send_signal",
                source: std::io::Error::last_os_error(),
            })
        } else {
            Ok(())
        }
    }

    /// Wait for the process to end (or `None` if `timeout` passes first).
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        if let Some(t) = timeout {
            let deadline = Instant::now() + t;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut pfd = libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut pfd, 1, ms) };
                if r > 0 {
                    break;
                }
                if r == 0 {
                    return Ok(None);
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(Error::Os {
                        what: "poll pidfd",
                        source: e,
                    });
                }
            }
        }
        loop {
            // SAFETY: zeroed siginfo is a valid out-parameter; P_PIDFD with our pidfd.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Os {
                    what: "waitid",
                    source: e,
                });
            }
            // SAFETY: waitid filled a SIGCHLD siginfo.
            let st = unsafe { info.si_status() };
            let s = if info.si_code == libc::CLD_EXITED {
                ExitStatus::Exited(st)
            } else {
                ExitStatus::Signaled(st)
            };
            self.status = Some(s);
            return Ok(Some(s));
        }
    }

    /// Wait for the process to end.
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        self.wait_timeout(None)?.ok_or_else(|| Error::Os {
            what: "waitid",
            source: std::io::ErrorKind::Other.into(),
        })
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        if self.status.is_none() && !self.detached {
            let _ = self.kill(libc::SIGKILL);
            let _ = self.wait();
        }
    }
}

/// A process of a container, as `docker top` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Pid on the host.
    pub host_pid: i32,
    /// Pid inside the container's pid namespace.
    pub container_pid: i32,
    /// Its command line.
    pub cmdline: Vec<String>,
}

/// The host pids of a container's processes: those in its cgroup, or, for a container without a cgroup of its own
/// (rootless, see [`Cgroup::create`]), every process in the pid namespace of its first process `first` (only `first`
/// when that is the caller's namespace).
pub(crate) fn members(cgroup: &Cgroup, first: i32) -> Vec<i32> {
    if !cgroup.dirs.is_empty() {
        return cgroup.pids();
    }
    let Some(ns) = crate::namespaces::inode(&first.to_string(), "pid") else {
        return Vec::new();
    };
    if crate::namespaces::inode("self", "pid") == Some(ns) {
        return vec![first];
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![first];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| crate::namespaces::inode(&p.to_string(), "pid") == Some(ns))
        .collect()
}

/// The processes of a container (its cgroup and first process `first`, as [`members`]), with their pids on the host
/// and in their own pid namespace, first process first.
pub(crate) fn processes_of(cgroup: &Cgroup, first: i32) -> Vec<ProcessInfo> {
    let mut out: Vec<ProcessInfo> = members(cgroup, first)
        .into_iter()
        .filter_map(|host_pid| {
            let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
            let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            let container_pid = nspid.split_whitespace().last()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{host_pid}/cmdline")).unwrap_or_default();
            let cmdline = cmd
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Some(ProcessInfo {
                host_pid,
                container_pid,
                cmdline,
            })
        })
        .collect();
    out.sort_by_key(|p| p.container_pid);
    out
}

impl StateDir {
    /// The processes of container `id` (like `runc ps` / `docker top`).
    ///
    /// # Errors
    /// As [`StateDir::load`](crate::StateDir::load).
    pub fn processes(&self, id: &str) -> Result<Vec<ProcessInfo>> {
        let st = self.load(id)?;
        Ok(processes_of(&st.cgroup, st.pid))
    }
}

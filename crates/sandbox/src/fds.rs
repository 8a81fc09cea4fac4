//! File descriptors handed to the child: pipes, and copies moved above the numbers the child fills in.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::cgroup::JoinFds;
use crate::error::{Error, Result};

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::Os {
            what: "pipe2",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicate `fd` to a number >= `min`, close-on-exec: the child dup2()s it to its final number, so sources must
/// never collide with targets 0..min.
pub(crate) fn high(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: fcntl dup of a valid fd.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(Error::Os {
            what: "dup fd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: new fd, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// fds that must live until the clone and be closed in the parent right after.
#[derive(Default)]
pub(crate) struct ChildFds(Vec<OwnedFd>);

impl ChildFds {
    /// Copies of the cgroup v1 `tasks` fds, for the child to join with.
    pub(crate) fn keep_tasks(&mut self, join: &JoinFds, base: RawFd) -> Result<Vec<RawFd>> {
        join.tasks
            .iter()
            .map(|(_, fd)| Ok(self.keep(high(fd.as_raw_fd(), base)?)))
            .collect()
    }

    pub(crate) fn keep(&mut self, fd: OwnedFd) -> RawFd {
        let r = fd.as_raw_fd();
        self.0.push(fd);
        r
    }

    /// The fds the child keeps: 0, 1, 2 and these, sorted.
    pub(crate) fn numbers(&self) -> Vec<RawFd> {
        let mut v: Vec<RawFd> = [0, 1, 2]
            .into_iter()
            .chain(self.0.iter().map(|f| f.as_raw_fd()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

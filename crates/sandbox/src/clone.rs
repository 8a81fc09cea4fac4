//! `clone3` of the child, and what the parent does for it before releasing it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::cgroup::{Cgroup, CgroupVersion};
use crate::child;
use crate::error::{Error, Result};
use crate::plan::Plan;

/// `CLONE_INTO_CGROUP` (Linux 5.7): libc's constant is a `c_int` that overflows to 0 (libc#3584).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3 the child; with `thread_joins`, from a helper thread that first joined those namespaces (pid, net, ipc,
/// uts and cgroup namespaces belong to a thread, so joining them there leaves the caller's threads alone, and the
/// child starts in them before it creates any new user namespace). Returns (pid, pidfd).
///
/// With `into_cgroup` (a cgroup v2 directory) the child is created in that cgroup (`CLONE_INTO_CGROUP`); when the
/// kernel refuses that, it is created where the caller is and the returned flag is false: the caller attaches it.
pub(crate) fn clone_child(
    plan: &Plan,
    flags: u64,
    thread_joins: &[(&OwnedFd, libc::c_int)],
    into_cgroup: Option<&OwnedFd>,
) -> Result<(i32, OwnedFd, bool)> {
    let go = || -> std::result::Result<(i32, RawFd, bool), std::io::Error> {
        for (ns, flag) in thread_joins {
            // SAFETY: setns on a valid namespace fd; affects only this helper thread (and its future children).
            if unsafe { libc::setns(ns.as_raw_fd(), *flag) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut pidfd: libc::c_int = -1;
        // SAFETY: clone_args is plain integers; all zero is "nothing asked".
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = flags | libc::CLONE_PIDFD as u64;
        args.pidfd = &mut pidfd as *mut libc::c_int as u64;
        args.exit_signal = libc::SIGCHLD as u64;
        let clone = |args: &libc::clone_args| {
            // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of this thread's stack and
            // continues here with 0. It only runs `child::run`, which never returns and does not allocate.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    args as *const libc::clone_args,
                    std::mem::size_of::<libc::clone_args>(),
                )
            };
            if r == 0 {
                child::run(plan);
            }
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as i32)
            }
        };
        if let Some(cg) = into_cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = cg.as_raw_fd() as u64;
            if let Ok(pid) = clone(&args) {
                return Ok((pid, pidfd, true));
            }
            // An older kernel, or a cgroup this kernel will not create into: fork here, the caller attaches.
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
        }
        clone(&args).map(|pid| (pid, pidfd, false))
    };
    let res = if !thread_joins.is_empty() {
        std::thread::scope(|s| s.spawn(go).join()).map_err(|_| Error::Os {
            what: "clone helper thread",
            source: std::io::ErrorKind::Other.into(),
        })?
    } else {
        go()
    };
    let (pid, pidfd, in_cgroup) = res.map_err(Error::os("clone3"))?;
    // SAFETY: clone3 returned a new pidfd owned by us.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }, in_cgroup))
}

/// What the parent does for a cloned child before releasing it: attach it to its v2 cgroup when `CLONE_INTO_CGROUP`
/// could not (v1 children join by themselves), and set its OOM score.
pub(crate) fn settle(cgroup: &Cgroup, pid: i32, in_cgroup: bool, oom_score_adj: Option<i32>) -> Result<()> {
    if cgroup.version == CgroupVersion::V2 && !in_cgroup {
        cgroup.attach(pid)?;
    }
    if let Some(adj) = oom_score_adj {
        write_file(
            &format!("/proc/{pid}/oom_score_adj"),
            &adj.to_string(),
            "write oom_score_adj",
        )?;
    }
    Ok(())
}

pub(crate) fn write_file(path: &str, data: &str, what: &'static str) -> Result<()> {
    std::fs::write(path, data).map_err(Error::io(what, path))
}

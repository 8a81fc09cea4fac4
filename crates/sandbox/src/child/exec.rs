//! The last step: `execve` of the program (and the check `create` makes before waiting to be started).

use std::ffi::CStr;

use super::{errno, fail};
use crate::plan::Plan;
use crate::report::Stage;

/// Tries each candidate path with `attempt` (`Ok`: done; `Err(errno)`: why not) and, when none works, fails as
/// `execve` on a `PATH` search does: "not found" if every path was missing, else the last other error.
fn try_exec_paths(plan: &Plan, mut attempt: impl FnMut(&CStr) -> Result<(), i32>) {
    let mut last = libc::ENOENT;
    for p in &plan.exec_paths {
        let Err(e) = attempt(p) else {
            return;
        };
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    if last == libc::ENOENT {
        fail(plan, Stage::ExecNotFound, 0, last)
    }
    fail(plan, Stage::Exec, 0, last)
}

/// Fails the way `exec` would when no candidate path is an executable the process may run: one it has execute
/// permission on that is not a directory (`access` grants X_OK on a searchable directory, which `execve` then
/// refuses with EACCES, as runc's check does before `create` returns).
pub(super) fn check_executable(plan: &Plan) {
    try_exec_paths(plan, |p| {
        // SAFETY: a NUL-terminated path prepared before the fork; `st` is plain data stat fills in.
        unsafe {
            if libc::access(p.as_ptr(), libc::X_OK) != 0 {
                return Err(errno());
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(p.as_ptr(), &mut st) != 0 {
                return Err(errno());
            }
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return Err(libc::EACCES);
            }
            Ok(())
        }
    });
}

/// Reset signal handlers (and an ignored SIGPIPE) to default and unblock signals, then try each candidate path.
pub(super) fn exec(plan: &Plan) -> ! {
    // SAFETY: raw syscalls; argv/envp are NULL-terminated arrays of pointers into live CStrings.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            // An ignored signal stays ignored across exec (nohup's SIGHUP), except SIGPIPE: a Rust program (the
            // CLIs, any embedder) ignores it from start-up, and a container that inherited that would see write
            // errors where `cmd | head` expects it to die of SIGPIPE. std::process::Command resets it the same way.
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const _,
            std::ptr::null_mut::<u8>(),
            8,
        );
        // execve returns only when it failed: every attempt "fails" or replaces the process.
        try_exec_paths(plan, |p| {
            libc::execve(p.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            Err(errno())
        });
        fail(plan, Stage::Exec, 0, libc::ENOENT)
    }
}

//! A minimal init as the container's pid 1.

use libc::{c_int, c_ulong};

use super::{check, close, errno, fail};
use crate::plan::Plan;
use crate::report::Stage;

/// A minimal init (like `docker run --init`): fork the program, forward signals to it, reap every orphan, and exit
/// with the program's status (128+signal if it was killed by a signal).
pub(super) fn reaper(plan: &Plan) {
    // SAFETY: raw syscalls on stack values; signals are all blocked at this point.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let sfd = libc::signalfd(-1, &all, libc::SFD_CLOEXEC);
        check(plan, sfd, Stage::Init, 0);
        let child = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if child < 0 {
            fail(plan, Stage::Init, 1, errno());
        }
        if child == 0 {
            close(sfd);
            return; // the program: goes on to exec
        }
        let child = child as libc::pid_t;
        // Only the program reports exec failures; our copy of the pipe must not keep the parent waiting.
        close(plan.err_w);
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        loop {
            let n = libc::read(
                sfd,
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of_val(&info),
            );
            if n != std::mem::size_of_val(&info) as isize {
                continue;
            }
            let sig = info.ssi_signo as c_int;
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let p = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if p <= 0 {
                    break;
                }
                if p == child {
                    if libc::WIFEXITED(status) {
                        libc::_exit(libc::WEXITSTATUS(status));
                    }
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            }
        }
    }
}

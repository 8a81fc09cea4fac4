//! A terminal allocated inside the container. Generic over [`Sys`].

use std::os::fd::RawFd;

use super::{fail_with, ok};
use crate::plan::Plan;
use crate::report::Stage;
use crate::sys::Sys;

/// Open a new pty from the devpts under `root` (the container's, at `dev/pts/ptmx`, checked to be the ptmx
/// device: the container cannot hand us something else), send its master to the parent over `plan.pty_sock`, and
/// return the slave.
pub(super) fn alloc_pty<S: Sys>(sys: &S, plan: &Plan, root: RawFd) -> RawFd {
    // Non-blocking: even a FIFO planted there could not hold us up before the check.
    let m = sys.open_in_root(root, c"dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
    ok(sys, plan, m, Stage::Console, 2);
    match sys.fstat(m) {
        Ok(f) if f.kind == libc::S_IFCHR && f.rdev == libc::makedev(5, 2) => {}
        Ok(_) => fail_with(sys, plan, Stage::Console, 2, libc::EINVAL),
        Err(e) => fail_with(sys, plan, Stage::Console, 2, e),
    }
    let slave = sys.pty_peer(m);
    ok(sys, plan, slave, Stage::Console, 3);
    if plan.winsize.ws_row != 0 {
        sys.set_winsize(m, &plan.winsize);
    }
    if sys.send_fd(plan.pty_sock, m) != 1 {
        fail_with(sys, plan, Stage::Console, 4, sys.errno());
    }
    sys.close(m);
    sys.close(plan.pty_sock);
    slave
}

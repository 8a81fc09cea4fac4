//! A terminal allocated inside the container.

use std::os::fd::RawFd;

use libc::c_int;

use super::{check, close, errno, fail, open_in_root};
use crate::plan::Plan;
use crate::report::Stage;

/// Open a new pty from the devpts under `root` (the container's, at `dev/pts/ptmx`, checked to be the ptmx
/// device: the container cannot hand us something else), send its master to the parent over `plan.pty_sock`, and
/// return the slave.
pub(super) fn alloc_pty(plan: &Plan, root: RawFd) -> RawFd {
    // SAFETY (whole function): raw syscalls on fds we own and stack buffers.
    unsafe {
        // Non-blocking: even a FIFO planted there could not hold us up before the check.
        let m = open_in_root(root, c"dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK);
        check(plan, m, Stage::Console, 2);
        let mut st: libc::stat = std::mem::zeroed();
        check(plan, libc::fstat(m, &mut st), Stage::Console, 2);
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(5, 2) {
            fail(plan, Stage::Console, 2, libc::EINVAL);
        }
        let unlock: c_int = 0;
        check(plan, libc::ioctl(m, libc::TIOCSPTLCK, &unlock), Stage::Console, 3);
        let slave = libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        check(plan, slave, Stage::Console, 3);
        check(plan, libc::fcntl(m, libc::F_SETFL, libc::O_RDWR), Stage::Console, 3);
        if plan.winsize.ws_row != 0 {
            libc::ioctl(m, libc::TIOCSWINSZ, &plan.winsize);
        }
        // One byte of data carrying the master as SCM_RIGHTS.
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), m);
        if libc::sendmsg(plan.pty_sock, &msg, libc::MSG_NOSIGNAL) != 1 {
            fail(plan, Stage::Console, 4, errno());
        }
        close(m);
        close(plan.pty_sock);
        slave
    }
}

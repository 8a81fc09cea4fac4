//! The loopback interface of a new network namespace.

use libc::c_char;

use super::{check, close};
use crate::plan::Plan;
use crate::report::Stage;

/// `ip link set lo up` in the current network namespace: `SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`.
pub(super) fn loopback_up(plan: &Plan) {
    // SAFETY: a socket of our own and an `ifreq` on the stack, passed to ioctls that read and write only it.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(plan, s, Stage::Loopback, 0);
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as c_char;
        req.ifr_name[1] = b'o' as c_char;
        check(plan, libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req), Stage::Loopback, 1);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(plan, libc::ioctl(s, libc::SIOCSIFFLAGS, &req), Stage::Loopback, 2);
        close(s);
    }
}

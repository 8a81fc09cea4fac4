//! The container's session keyring.

use std::ffi::CStr;

use super::{errno, fail};
use crate::plan::Plan;
use crate::report::Stage;

/// Join the named session keyring; a kernel without keyrings (ENOSYS) is no error, as for runc.
pub(super) fn join_keyring(plan: &Plan, name: &CStr) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    // SAFETY: keyctl with a NUL-terminated name owned by the plan.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if id < 0 {
        if errno() != libc::ENOSYS {
            fail(plan, Stage::Keyring, 0, errno());
        }
        return;
    }
    if plan.keyring_perm_add != 0 {
        // Read-modify-write of the permissions, from "type;uid;gid;perm;description".
        const KEYCTL_DESCRIBE: libc::c_long = 6;
        let mut buf = [0u8; 256];
        // SAFETY: keyctl writes at most buf.len() bytes into the stack buffer.
        let n = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_DESCRIBE, id, buf.as_mut_ptr(), buf.len()) };
        let Some(perm) = (n > 0)
            .then(|| describe_perm(&buf[..(n as usize).min(buf.len())]))
            .flatten()
        else {
            fail(plan, Stage::Keyring, 1, if n < 0 { errno() } else { libc::EINVAL });
        };
        // SAFETY: keyctl on the keyring just joined.
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_SETPERM,
                id,
                (perm | plan.keyring_perm_add) as libc::c_long,
            )
        };
        if r < 0 {
            fail(plan, Stage::Keyring, 2, errno());
        }
    }
}

/// The permission field (hex) of a keyring description `type;uid;gid;perm;description`, without allocating.
pub(super) fn describe_perm(d: &[u8]) -> Option<u32> {
    let field = d.split(|b| *b == b';').nth(3)?;
    let mut v: u32 = 0;
    if field.is_empty() || field.len() > 8 {
        return None;
    }
    for c in field {
        v = (v << 4) | (*c as char).to_digit(16)?;
    }
    Some(v)
}

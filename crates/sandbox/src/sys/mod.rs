//! The narrow syscall layer of the container's child: the mounts, `pivot_root`, namespace joins, credential and
//! capability calls its setup makes, the terminal it allocates and the report of a failed step, as a [`Sys`] trait
//! with the kernel's implementation ([`Kernel`], over rustix's raw-syscall backend: `&CStr` arguments, nothing
//! allocates after the clone) and a recording double ([`Recorder`], tests only). The child's filesystem setup, its
//! terminal and its credential steps are generic over it (static dispatch), so unit tests check the sequence of
//! calls a given spec produces without root, as youki's `TestHelperSyscall` and wharf-rootfs's `Mounter` double
//! do, and make any one call fail to check that the step is reported as that step. The double is injected
//! explicitly, never chosen by `cfg!(test)`.
//!
//! The methods keep the kernel's conventions (a negative return means failure, the error is in [`Sys::errno`]), so
//! the child's step-and-report code reads the same with either implementation. `unsafe` is left where rustix has
//! no safe call: closing a raw fd, `unshare` (unsafe in rustix for `CLONE_FILES`), `setgroups` of a `gid_t` slice,
//! `prlimit64` with the spec's resource number, `dup2` onto fds 0-2, `close_range`, the signal mask, `getcwd`
//! without allocating, `_exit`; and outside this layer `clone3`, `execve`, the seccomp filter load, `keyctl`, the
//! loopback `ioctl`s and the init's `signalfd`/fork.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, dev_t, gid_t, mode_t, uid_t};

use crate::caps::CapMasks;
use crate::report::Report;

mod kernel;
#[cfg(test)]
mod recorder;

pub(crate) use kernel::Kernel;
#[cfg(test)]
pub(crate) use recorder::{Call, Recorder};

/// The file type and device number of an open file (`fstat`'s `st_mode & S_IFMT` and `st_rdev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileKind {
    /// `S_IFDIR`, `S_IFREG`, `S_IFCHR`, ...
    pub kind: mode_t,
    /// The device a device node names.
    pub rdev: dev_t,
}

/// The system calls the child's setup makes. See the module docs.
pub(crate) trait Sys {
    /// The error of the last failed call.
    fn errno(&self) -> i32;
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> c_int;
    /// A new filesystem of type `fstype` mounted on `target` through the new mount API: `fsopen`, one `fsconfig`
    /// per parameter (a string, or a flag when its value is `None`), `fsconfig(FSCONFIG_CMD_CREATE)`, `fsmount`
    /// and `move_mount`. 0, or -1 with the error of the step that failed.
    fn mount_new(&self, fstype: &CStr, params: &[(CString, Option<CString>)], target: &CStr) -> c_int;
    /// `clone3(CLONE_PARENT)`, a fork whose child is the caller's parent's: 0 in the child, its pid here, -1 with
    /// the error.
    fn fork_into_parent(&self) -> libc::pid_t;
    /// `_exit(2)`.
    fn exit(&self, code: c_int) -> !;
    /// `umount2(2)`.
    fn umount2(&self, target: &CStr, flags: c_int) -> c_int;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> c_int;
    /// `chroot(2)`.
    fn chroot(&self, path: &CStr) -> c_int;
    /// `chdir(2)`.
    fn chdir(&self, path: &CStr) -> c_int;
    /// `fchdir(2)`.
    fn fchdir(&self, fd: RawFd) -> c_int;
    /// `open(2)`, close-on-exec.
    fn open(&self, path: &CStr, flags: c_int) -> RawFd;
    /// `openat2(dirfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT)`: symlinks and `..` resolve as if `dirfd` were `/`,
    /// and magic links are refused.
    fn open_in_root(&self, dirfd: RawFd, path: &CStr, flags: c_int) -> RawFd;
    /// `openat(2)`, close-on-exec.
    fn openat(&self, dirfd: RawFd, name: &CStr, flags: c_int, mode: mode_t) -> RawFd;
    /// A close-on-exec duplicate of `fd`.
    fn dup(&self, fd: RawFd) -> RawFd;
    /// `close(2)` (of a non-negative fd).
    fn close(&self, fd: RawFd);
    /// `read(2)` of one byte: 1 when one was read.
    fn read_byte(&self, fd: RawFd) -> isize;
    /// `write(2)`.
    fn write(&self, fd: RawFd, bytes: &[u8]) -> isize;
    /// `fstat(2)`: the file's type and device.
    fn fstat(&self, fd: RawFd) -> Result<FileKind, i32>;
    /// The `MS_*` flags of the mount `fd` is on that a bind remount must keep (`fstatvfs`'s `ST_*` flags).
    fn mount_flags(&self, fd: RawFd) -> c_ulong;
    /// `mkdirat(2)`.
    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int;
    /// `mknodat(2)`.
    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t, dev: dev_t) -> c_int;
    /// `fchmodat(2)`.
    fn fchmodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int;
    /// `fchownat(2)`, not following a final symlink.
    fn fchownat(&self, dirfd: RawFd, name: &CStr, uid: uid_t, gid: gid_t) -> c_int;
    /// `unlinkat(2)` of a non-directory.
    fn unlinkat(&self, dirfd: RawFd, name: &CStr) -> c_int;
    /// `symlinkat(2)`.
    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> c_int;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &CStr) -> c_int;
    /// `setdomainname(2)`.
    fn setdomainname(&self, name: &CStr) -> c_int;
    /// `setns(2)`.
    fn setns(&self, fd: RawFd, nstype: c_int) -> c_int;
    /// `unshare(2)`.
    fn unshare(&self, flags: c_int) -> c_int;
    /// `setresuid(2)` of this thread only (the raw call: glibc's would signal threads that do not exist here).
    fn setresuid(&self, uid: uid_t) -> c_int;
    /// `setresgid(2)` of this thread only.
    fn setresgid(&self, gid: gid_t) -> c_int;
    /// `setgroups(2)` of this thread only.
    fn setgroups(&self, groups: &[gid_t]) -> c_int;
    /// `prctl(PR_SET_KEEPCAPS, 1)`.
    fn keep_caps(&self) -> c_int;
    /// `prctl(PR_CAPBSET_DROP, cap)`.
    fn drop_bounding(&self, cap: u8) -> c_int;
    /// `capset(2)` of the effective, permitted and inheritable sets.
    fn capset(&self, caps: &CapMasks) -> c_int;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    fn clear_ambient(&self);
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`.
    fn raise_ambient(&self, cap: u8) -> c_int;
    /// The peer of the pty master `master`: unlock it, open the slave (`TIOCGPTPEER`, close-on-exec, not the
    /// controlling terminal yet), and make the master blocking again.
    fn pty_peer(&self, master: RawFd) -> RawFd;
    /// `ioctl(fd, TIOCSWINSZ)`, best effort.
    fn set_winsize(&self, fd: RawFd, size: &libc::winsize);
    /// Send `fd` over the Unix socket `sock` as `SCM_RIGHTS` with one byte of data: 1 when it was sent.
    fn send_fd(&self, sock: RawFd, fd: RawFd) -> isize;
    /// A step failed: write `report` to the error pipe `fd` and end the child with status 127 (the recording double
    /// unwinds with the report instead).
    fn exit_failed(&self, fd: RawFd, report: &Report) -> !;
}

/// `/proc/self/fd/N` for `fd`, written into `buf` without allocating.
pub(crate) fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut i = prefix.len();
    let mut digits = [0u8; 12];
    let mut n = fd.max(0) as u32;
    let mut d = 0;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 || d == digits.len() {
            break;
        }
    }
    while d > 0 && i < buf.len() - 1 {
        d -= 1;
        buf[i] = digits[d];
        i += 1;
    }
    buf[i] = 0;
    match CStr::from_bytes_until_nul(&buf[..=i]) {
        Ok(s) => s,
        Err(_) => c"/proc/self/fd/-1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_written_in_place() {
        let mut buf = [0u8; 32];
        assert_eq!(fd_path(7, &mut buf), c"/proc/self/fd/7");
        assert_eq!(fd_path(1234567, &mut buf), c"/proc/self/fd/1234567");
    }
}

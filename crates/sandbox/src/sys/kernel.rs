//! [`Kernel`]: the [`Sys`] calls made for real, each a raw system call (no allocation, no lock, no glibc state).

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, dev_t, gid_t, mode_t, uid_t};

use super::{FileKind, Sys};
use crate::caps::CapMasks;

/// The kernel. Zero-sized: a `&Kernel` costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Kernel;

fn ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

// SAFETY (every block below): the calls get NUL-terminated strings borrowed for the call, plain integers, or
// pointers to values on this stack frame that outlive the call; none keeps a pointer.
impl Sys for Kernel {
    fn errno(&self) -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> c_int {
        unsafe { libc::mount(ptr(source), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) }
    }

    fn umount2(&self, target: &CStr, flags: c_int) -> c_int {
        unsafe { libc::umount2(target.as_ptr(), flags) }
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> c_int {
        unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) as c_int }
    }

    fn chroot(&self, path: &CStr) -> c_int {
        unsafe { libc::chroot(path.as_ptr()) }
    }

    fn chdir(&self, path: &CStr) -> c_int {
        unsafe { libc::chdir(path.as_ptr()) }
    }

    fn fchdir(&self, fd: RawFd) -> c_int {
        unsafe { libc::fchdir(fd) }
    }

    fn open(&self, path: &CStr, flags: c_int) -> RawFd {
        unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) }
    }

    fn open_in_root(&self, dirfd: RawFd, path: &CStr, flags: c_int) -> RawFd {
        // SAFETY: open_how is plain integers.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_IN_ROOT;
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            ) as c_int
        }
    }

    fn openat(&self, dirfd: RawFd, name: &CStr, flags: c_int, mode: mode_t) -> RawFd {
        unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC, mode) }
    }

    fn dup(&self, fd: RawFd) -> RawFd {
        unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) }
    }

    fn close(&self, fd: RawFd) {
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
    }

    fn read_byte(&self, fd: RawFd) -> isize {
        let mut b = [0u8; 1];
        unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) }
    }

    fn write(&self, fd: RawFd, bytes: &[u8]) -> isize {
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
    }

    fn fstat(&self, fd: RawFd) -> Result<FileKind, i32> {
        // SAFETY: stat is plain integers; an out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            return Err(self.errno());
        }
        Ok(FileKind {
            kind: st.st_mode & libc::S_IFMT,
            rdev: st.st_rdev,
        })
    }

    fn mount_flags(&self, fd: RawFd) -> c_ulong {
        // SAFETY: statvfs is plain integers; an out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(fd, &mut st) } < 0 {
            return 0;
        }
        let f = st.f_flag as c_ulong;
        [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
            (libc::ST_RDONLY, libc::MS_RDONLY),
        ]
        .iter()
        .filter(|(st_flag, _)| f & *st_flag as c_ulong != 0)
        .fold(0, |out, (_, ms_flag)| out | ms_flag)
    }

    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) }
    }

    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t, dev: dev_t) -> c_int {
        unsafe { libc::mknodat(dirfd, name.as_ptr(), mode, dev) }
    }

    fn fchmodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        unsafe { libc::fchmodat(dirfd, name.as_ptr(), mode, 0) }
    }

    fn fchownat(&self, dirfd: RawFd, name: &CStr, uid: uid_t, gid: gid_t) -> c_int {
        unsafe { libc::fchownat(dirfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }
    }

    fn unlinkat(&self, dirfd: RawFd, name: &CStr) -> c_int {
        unsafe { libc::unlinkat(dirfd, name.as_ptr(), 0) }
    }

    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> c_int {
        unsafe { libc::symlinkat(target.as_ptr(), dirfd, name.as_ptr()) }
    }

    fn sethostname(&self, name: &CStr) -> c_int {
        unsafe { libc::sethostname(name.as_ptr(), name.to_bytes().len()) }
    }

    fn setdomainname(&self, name: &CStr) -> c_int {
        unsafe { libc::setdomainname(name.as_ptr(), name.to_bytes().len()) }
    }

    fn setns(&self, fd: RawFd, nstype: c_int) -> c_int {
        unsafe { libc::setns(fd, nstype) }
    }

    fn unshare(&self, flags: c_int) -> c_int {
        unsafe { libc::unshare(flags) }
    }

    fn setresuid(&self, uid: uid_t) -> c_int {
        unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) as c_int }
    }

    fn setresgid(&self, gid: gid_t) -> c_int {
        unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) as c_int }
    }

    fn setgroups(&self, groups: &[gid_t]) -> c_int {
        unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) as c_int }
    }

    fn keep_caps(&self) -> c_int {
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }
    }

    fn drop_bounding(&self, cap: u8) -> c_int {
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) }
    }

    fn capset(&self, c: &CapMasks) -> c_int {
        /// `struct __user_cap_header_struct` (not in libc).
        #[repr(C)]
        struct Header {
            version: u32,
            pid: c_int,
        }
        /// `struct __user_cap_data_struct` (not in libc).
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let hdr = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3: two 32-bit halves
            pid: 0,
        };
        let data = [
            Data {
                effective: c.effective as u32,
                permitted: c.permitted as u32,
                inheritable: c.inheritable as u32,
            },
            Data {
                effective: (c.effective >> 32) as u32,
                permitted: (c.permitted >> 32) as u32,
                inheritable: (c.inheritable >> 32) as u32,
            },
        ];
        unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) as c_int }
    }

    fn clear_ambient(&self) {
        unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong, 0, 0, 0) };
    }

    fn raise_ambient(&self, cap: u8) -> c_int {
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                cap as c_ulong,
                0,
                0,
            )
        }
    }
}

/// The child's other steps, made only for real (no double: they are not worth recording).
impl Kernel {
    /// Block every signal.
    pub(crate) fn block_signals(&self) {
        // SAFETY: a sigset on the stack (plain integers), filled, then read for the call (the kernel's 8 bytes).
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &all as *const libc::sigset_t,
                std::ptr::null_mut::<u8>(),
                8,
            );
        }
    }

    /// `prctl(PR_SET_DUMPABLE)`.
    pub(crate) fn set_dumpable(&self, on: bool) {
        // SAFETY: integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, c_ulong::from(on), 0, 0, 0) };
    }

    /// `_exit(2)`: no atexit handlers, no unwinding.
    pub(crate) fn exit(&self, code: c_int) -> ! {
        // SAFETY: ends the process.
        unsafe { libc::_exit(code) }
    }

    /// `prlimit64(0, resource, limit, NULL)`.
    pub(crate) fn setrlimit(&self, resource: c_int, limit: &libc::rlimit64) -> c_int {
        // SAFETY: a pointer to a borrowed rlimit64, read for the call.
        unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource,
                limit as *const libc::rlimit64,
                std::ptr::null_mut::<u8>(),
            ) as c_int
        }
    }

    /// `setsid(2)`.
    pub(crate) fn setsid(&self) {
        // SAFETY: no arguments.
        unsafe { libc::setsid() };
    }

    /// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal `fd` the controlling terminal.
    pub(crate) fn set_controlling_tty(&self, fd: RawFd) -> c_int {
        // SAFETY: integer arguments.
        unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }
    }

    /// `dup2(2)`.
    pub(crate) fn dup2(&self, src: RawFd, dst: RawFd) -> c_int {
        // SAFETY: integer arguments.
        unsafe { libc::dup2(src, dst) }
    }

    /// Mark every fd from `first` on close-on-exec.
    pub(crate) fn cloexec_from(&self, first: u32) {
        // SAFETY: integer arguments.
        unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    }

    /// `umask(2)`.
    pub(crate) fn umask(&self, mask: mode_t) {
        // SAFETY: integer argument.
        unsafe { libc::umask(mask) };
    }

    /// Whether the working directory is inside the root: `getcwd` into a short buffer says ERANGE for a long but
    /// reachable path, and ENOENT or "(unreachable)..." for one outside it.
    pub(crate) fn cwd_reachable(&self) -> Result<bool, i32> {
        let mut buf = [0u8; 8];
        // SAFETY: writes at most buf.len() bytes into the stack buffer.
        let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        if r < 0 {
            return match self.errno() {
                libc::ERANGE => Ok(true),
                e => Err(e),
            };
        }
        Ok(r == 0 || buf[0] == b'/')
    }

    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    pub(crate) fn set_no_new_privs(&self) -> c_int {
        // SAFETY: integer arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }
    }
}

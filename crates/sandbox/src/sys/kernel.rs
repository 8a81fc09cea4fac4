//! [`Kernel`]: the [`Sys`] calls made for real over rustix's raw-syscall backend (given `&CStr` paths it allocates
//! nothing, takes no lock and keeps no glibc state), with `unsafe` only where rustix has no safe wrapper.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use libc::{c_int, c_ulong, dev_t, gid_t, mode_t, uid_t};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, StatVfsMountFlags};
use rustix::io::{Errno, Result};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags,
};
use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets, ThreadNameSpaceType, UnshareFlags};

use super::{FileKind, Sys};
use crate::caps::CapMasks;
use crate::report::Report;

/// The kernel. It keeps the error of the last failed call for [`Sys::errno`] (rustix's raw calls return it instead
/// of setting the C library's `errno`).
#[derive(Debug, Default)]
pub(crate) struct Kernel {
    errno: Cell<i32>,
}

/// `raw` borrowed for one call. -1 is no fd (and `BorrowedFd` cannot hold it): EBADF, as the kernel would say.
fn fd<'a>(raw: RawFd) -> Result<BorrowedFd<'a>> {
    if raw == -1 {
        return Err(Errno::BADF);
    }
    // SAFETY: every caller passes an fd it owns and keeps open for the call, or AT_FDCWD; either way not -1. A
    // stale number only makes the call fail with EBADF: the kernel checks it, no memory is touched.
    Ok(unsafe { BorrowedFd::borrow_raw(raw) })
}

/// The propagation flags of `mount(2)` (`MS_SHARED`, `MS_PRIVATE`, `MS_SLAVE`, `MS_UNBINDABLE`).
const PROPAGATION: c_ulong = libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;

impl Kernel {
    /// 0, or -1 with the error kept.
    fn done(&self, r: Result<()>) -> c_int {
        match r {
            Ok(()) => 0,
            Err(e) => self.failed(e),
        }
    }

    /// The new fd (the caller owns it), or -1 with the error kept.
    fn opened(&self, r: Result<OwnedFd>) -> RawFd {
        match r {
            Ok(fd) => fd.into_raw_fd(),
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, e: Errno) -> c_int {
        self.errno.set(e.raw_os_error());
        -1
    }

    /// A C library call's result, its `errno` kept when it failed.
    fn libc(&self, r: c_int) -> c_int {
        if r < 0 {
            self.errno
                .set(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
        }
        r
    }
}

fn oflags(flags: c_int) -> OFlags {
    OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC
}

impl Sys for Kernel {
    fn errno(&self) -> i32 {
        self.errno.get()
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> c_int {
        // rustix names the calls without a source and type; the kernel reads neither for them.
        let r = match (source, fstype) {
            (None, None) if flags & libc::MS_REMOUNT != 0 => rustix::mount::mount_remount(
                target,
                MountFlags::from_bits_retain((flags & !libc::MS_REMOUNT) as u32),
                data.unwrap_or(c""),
            ),
            (None, None) if flags & PROPAGATION != 0 => {
                rustix::mount::mount_change(target, MountPropagationFlags::from_bits_retain(flags as u32))
            }
            _ => rustix::mount::mount(
                source.unwrap_or(c""),
                target,
                fstype.unwrap_or(c""),
                MountFlags::from_bits_retain(flags as u32),
                data,
            ),
        };
        self.done(r)
    }

    fn mount_new(&self, fstype: &CStr, params: &[(CString, Option<CString>)], target: &CStr) -> c_int {
        let r = (|| {
            let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
            for (k, v) in params {
                match v {
                    Some(v) => rustix::mount::fsconfig_set_string(&fs, k.as_c_str(), v.as_c_str())?,
                    None => rustix::mount::fsconfig_set_flag(&fs, k.as_c_str())?,
                }
            }
            rustix::mount::fsconfig_create(&fs)?;
            let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
            rustix::mount::move_mount(
                &mnt,
                c"",
                rustix::fs::CWD,
                target,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
        })();
        self.done(r)
    }

    fn fork_into_parent(&self) -> libc::pid_t {
        // SAFETY: clone_args is plain integers; all zero is "nothing asked".
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        // The child's exit signal is ours (the kernel takes it from this process with CLONE_PARENT).
        args.flags = libc::CLONE_PARENT as u64;
        // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of this single-threaded process
        // and continues here with 0, still only making raw system calls.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if r < 0 {
            self.errno
                .set(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
            return -1;
        }
        r as libc::pid_t
    }

    fn exit(&self, code: c_int) -> ! {
        Kernel::exit(self, code)
    }

    fn umount2(&self, target: &CStr, flags: c_int) -> c_int {
        self.done(rustix::mount::unmount(
            target,
            UnmountFlags::from_bits_retain(flags as u32),
        ))
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> c_int {
        self.done(rustix::process::pivot_root(new_root, put_old))
    }

    fn chroot(&self, path: &CStr) -> c_int {
        self.done(rustix::process::chroot(path))
    }

    fn chdir(&self, path: &CStr) -> c_int {
        self.done(rustix::process::chdir(path))
    }

    fn fchdir(&self, raw: RawFd) -> c_int {
        self.done(fd(raw).and_then(rustix::process::fchdir))
    }

    fn open(&self, path: &CStr, flags: c_int) -> RawFd {
        self.opened(rustix::fs::open(path, oflags(flags), Mode::empty()))
    }

    fn open_in_root(&self, dirfd: RawFd, path: &CStr, flags: c_int) -> RawFd {
        let r =
            fd(dirfd).and_then(|d| rustix::fs::openat2(d, path, oflags(flags), Mode::empty(), ResolveFlags::IN_ROOT));
        self.opened(r)
    }

    fn openat(&self, dirfd: RawFd, name: &CStr, flags: c_int, mode: mode_t) -> RawFd {
        let r = fd(dirfd).and_then(|d| rustix::fs::openat(d, name, oflags(flags), Mode::from_raw_mode(mode)));
        self.opened(r)
    }

    fn dup(&self, raw: RawFd) -> RawFd {
        self.opened(fd(raw).and_then(|f| rustix::io::fcntl_dupfd_cloexec(f, 0)))
    }

    fn close(&self, raw: RawFd) {
        if raw >= 0 {
            // SAFETY: the caller owns `raw` and uses it no more (rustix cannot tell: a raw fd has no owner type).
            unsafe { rustix::io::close(raw) };
        }
    }

    fn read_byte(&self, raw: RawFd) -> isize {
        let mut b = [0u8; 1];
        match fd(raw).and_then(|f| rustix::io::read(f, &mut b)) {
            Ok(n) => n as isize,
            Err(e) => self.failed(e) as isize,
        }
    }

    fn write(&self, raw: RawFd, bytes: &[u8]) -> isize {
        match fd(raw).and_then(|f| rustix::io::write(f, bytes)) {
            Ok(n) => n as isize,
            Err(e) => self.failed(e) as isize,
        }
    }

    fn fstat(&self, raw: RawFd) -> std::result::Result<FileKind, i32> {
        let st = fd(raw).and_then(rustix::fs::fstat).map_err(|e| e.raw_os_error())?;
        Ok(FileKind {
            kind: st.st_mode & libc::S_IFMT,
            rdev: st.st_rdev,
        })
    }

    fn mount_flags(&self, raw: RawFd) -> c_ulong {
        let Ok(st) = fd(raw).and_then(rustix::fs::fstatvfs) else {
            return 0;
        };
        [
            (StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
            (StatVfsMountFlags::NODEV, libc::MS_NODEV),
            (StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
            (StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
            (StatVfsMountFlags::NODIRATIME, libc::MS_NODIRATIME),
            (StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
            (StatVfsMountFlags::RDONLY, libc::MS_RDONLY),
        ]
        .iter()
        .filter(|(st_flag, _)| st.f_flag.contains(*st_flag))
        .fold(0, |out, (_, ms_flag)| out | ms_flag)
    }

    fn mkdirat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        self.done(fd(dirfd).and_then(|d| rustix::fs::mkdirat(d, name, Mode::from_raw_mode(mode))))
    }

    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t, dev: dev_t) -> c_int {
        let (kind, perm) = (FileType::from_raw_mode(mode), Mode::from_raw_mode(mode & !libc::S_IFMT));
        self.done(fd(dirfd).and_then(|d| rustix::fs::mknodat(d, name, kind, perm, dev)))
    }

    fn fchmodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        let r = fd(dirfd).and_then(|d| rustix::fs::chmodat(d, name, Mode::from_raw_mode(mode), AtFlags::empty()));
        self.done(r)
    }

    fn fchownat(&self, dirfd: RawFd, name: &CStr, uid: uid_t, gid: gid_t) -> c_int {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        self.done(fd(dirfd).and_then(|d| rustix::fs::chownat(d, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)))
    }

    fn unlinkat(&self, dirfd: RawFd, name: &CStr) -> c_int {
        self.done(fd(dirfd).and_then(|d| rustix::fs::unlinkat(d, name, AtFlags::empty())))
    }

    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> c_int {
        self.done(fd(dirfd).and_then(|d| rustix::fs::symlinkat(target, d, name)))
    }

    fn sethostname(&self, name: &CStr) -> c_int {
        self.done(rustix::system::sethostname(name.to_bytes()))
    }

    fn setdomainname(&self, name: &CStr) -> c_int {
        self.done(rustix::system::setdomainname(name.to_bytes()))
    }

    fn setns(&self, raw: RawFd, nstype: c_int) -> c_int {
        let types = ThreadNameSpaceType::from_bits_retain(nstype as u32);
        self.done(fd(raw).and_then(|f| rustix::thread::move_into_thread_name_spaces(f, types)))
    }

    fn unshare(&self, flags: c_int) -> c_int {
        // SAFETY: rustix marks unshare unsafe for CLONE_FILES and CLONE_FS, which would change what fds and
        // working directory other threads see; the child has no other thread, and the plan asks only for
        // namespaces.
        self.done(unsafe { rustix::thread::unshare_unsafe(UnshareFlags::from_bits_retain(flags as u32)) })
    }

    fn setresuid(&self, uid: uid_t) -> c_int {
        let uid = Uid::from_raw(uid);
        self.done(rustix::thread::set_thread_res_uid(uid, uid, uid))
    }

    fn setresgid(&self, gid: gid_t) -> c_int {
        let gid = Gid::from_raw(gid);
        self.done(rustix::thread::set_thread_res_gid(gid, gid, gid))
    }

    fn setgroups(&self, groups: &[gid_t]) -> c_int {
        // Gid is a transparent gid_t; rustix has no cast of a slice, so the raw call (a read-only borrow).
        // SAFETY: the kernel reads `len` gid_t values from the borrowed slice during the call.
        self.libc(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) } as c_int)
    }

    fn keep_caps(&self) -> c_int {
        self.done(rustix::thread::set_keep_capabilities(true))
    }

    fn drop_bounding(&self, cap: u8) -> c_int {
        let cap = CapabilitySet::from_bits_retain(1u64 << cap);
        self.done(rustix::thread::remove_capability_from_bounding_set(cap))
    }

    fn capset(&self, c: &CapMasks) -> c_int {
        let sets = CapabilitySets {
            effective: CapabilitySet::from_bits_retain(c.effective),
            permitted: CapabilitySet::from_bits_retain(c.permitted),
            inheritable: CapabilitySet::from_bits_retain(c.inheritable),
        };
        self.done(rustix::thread::set_capabilities(None, sets))
    }

    fn clear_ambient(&self) {
        // Fails only where ambient capabilities do not exist (before 4.3): nothing to clear.
        let _ = rustix::thread::clear_ambient_capability_set();
    }

    fn raise_ambient(&self, cap: u8) -> c_int {
        let cap = CapabilitySet::from_bits_retain(1u64 << cap);
        self.done(rustix::thread::configure_capability_in_ambient_set(cap, true))
    }

    fn pty_peer(&self, master: RawFd) -> RawFd {
        use rustix::pty::OpenptFlags as P;
        let r = fd(master).and_then(|m| {
            rustix::pty::unlockpt(m)?;
            let slave = rustix::pty::ioctl_tiocgptpeer(m, P::RDWR | P::NOCTTY | P::CLOEXEC)?;
            rustix::fs::fcntl_setfl(m, OFlags::RDWR)?;
            Ok(slave)
        });
        self.opened(r)
    }

    fn set_winsize(&self, raw: RawFd, size: &libc::winsize) {
        let size = rustix::termios::Winsize {
            ws_row: size.ws_row,
            ws_col: size.ws_col,
            ws_xpixel: size.ws_xpixel,
            ws_ypixel: size.ws_ypixel,
        };
        let _ = fd(raw).and_then(|f| rustix::termios::tcsetwinsize(f, size));
    }

    fn send_fd(&self, sock: RawFd, raw: RawFd) -> isize {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let r = fd(sock).and_then(|s| {
            let fds = [fd(raw)?];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(Errno::NOBUFS);
            }
            rustix::net::sendmsg(s, &[std::io::IoSlice::new(&[0])], &mut control, SendFlags::NOSIGNAL)
        });
        match r {
            Ok(n) => n as isize,
            Err(e) => self.failed(e) as isize,
        }
    }

    fn exit_failed(&self, fd: RawFd, report: &Report) -> ! {
        self.write(fd, &report.to_bytes());
        self.exit(127)
    }
}

/// The child's other steps, made only for real (no double: they are not worth recording).
impl Kernel {
    /// Block every signal.
    pub(crate) fn block_signals(&self) {
        // rustix has no sigprocmask outside its runtime feature.
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
        use rustix::process::DumpableBehavior as D;
        let _ = rustix::process::set_dumpable_behavior(if on { D::Dumpable } else { D::NotDumpable });
    }

    /// `_exit(2)`: no atexit handlers, no unwinding.
    pub(crate) fn exit(&self, code: c_int) -> ! {
        // SAFETY: ends the process.
        unsafe { libc::_exit(code) }
    }

    /// `prlimit64(0, resource, limit, NULL)`.
    pub(crate) fn setrlimit(&self, resource: c_int, limit: &libc::rlimit64) -> c_int {
        // The resource is the spec's number (rustix's `Resource` enum would need a table of its own).
        // SAFETY: a pointer to a borrowed rlimit64, read for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource,
                limit as *const libc::rlimit64,
                std::ptr::null_mut::<u8>(),
            )
        };
        self.libc(r as c_int)
    }

    /// `setsid(2)`.
    pub(crate) fn setsid(&self) {
        // Fails only for a process group leader, which a freshly cloned child is not.
        let _ = rustix::process::setsid();
    }

    /// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal `fd` the controlling terminal.
    pub(crate) fn set_controlling_tty(&self, raw: RawFd) -> c_int {
        self.done(fd(raw).and_then(rustix::process::ioctl_tiocsctty))
    }

    /// `dup2(2)` onto a numbered fd (rustix's `dup2` wants an owned target, which fds 0-2 and the extras are not
    /// yet).
    pub(crate) fn dup2(&self, src: RawFd, dst: RawFd) -> c_int {
        // SAFETY: integer arguments; `dst` is replaced in this process's own table (no CLONE_FILES).
        self.libc(unsafe { libc::dup2(src, dst) })
    }

    /// Mark every fd from `first` on close-on-exec.
    pub(crate) fn cloexec_from(&self, first: u32) {
        // SAFETY: integer arguments; marks, closes nothing.
        unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    }

    /// Close every fd from `first` to `last`.
    pub(crate) fn close_range(&self, first: u32, last: u32) {
        // SAFETY: closes fds of this process only (no CLONE_FILES: the parent's table is its own); nothing here
        // holds one of them (the plan lists the fds to keep, and the caller skips those).
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    }

    /// `umask(2)`.
    pub(crate) fn umask(&self, mask: mode_t) {
        rustix::process::umask(Mode::from_raw_mode(mask));
    }

    /// Whether the working directory is inside the root: `getcwd` into a short buffer says ERANGE for a long but
    /// reachable path, and ENOENT or "(unreachable)..." for one outside it. (rustix's `getcwd` allocates.)
    pub(crate) fn cwd_reachable(&self) -> std::result::Result<bool, i32> {
        let mut buf = [0u8; 8];
        // SAFETY: writes at most buf.len() bytes into the stack buffer.
        let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        if r < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ERANGE) => Ok(true),
                e => Err(e.unwrap_or(libc::EIO)),
            };
        }
        Ok(r == 0 || buf[0] == b'/')
    }

    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    pub(crate) fn set_no_new_privs(&self) -> c_int {
        self.done(rustix::thread::set_no_new_privs(true))
    }
}

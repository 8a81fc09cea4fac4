//! The container's child process: everything between `clone3` and `execve`.
//!
//! Fork safety: the parent may be multithreaded (tokio, test harnesses), so another thread may hold the allocator's
//! lock at the moment of the clone. Everything here therefore only reads a [`Plan`] prepared (allocated) by the parent
//! before the clone, and only makes raw system calls: no allocation, no locks, no panics, no glibc wrappers that
//! keep process-wide state (glibc's `setuid`/`setgroups` would signal the parent's threads, which do not exist here,
//! so the raw syscalls are used). Errors are written as a fixed-size record to a close-on-exec pipe; the parent turns
//! them into typed [`Error`](crate::Error)s.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_char, c_int, c_ulong};

use crate::caps::CapMasks;
use crate::seccomp::SeccompProgram;

/// Declares `Stage` and its conversion back from the number the child reports, from one list.
macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident $(= $value:literal)?,)*) => {
        /// Setup steps, as reported through the error pipe.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub(crate) enum Stage {
            $($(#[$doc])* $name $(= $value)?,)*
        }

        impl Stage {
            pub(crate) fn from_u32(v: u32) -> Option<Stage> {
                [$(Stage::$name),*].into_iter().find(|s| *s as u32 == v)
            }
        }
    };
}

stages! {
    Sync = 1,
    CgroupJoin,
    Setns,
    Unshare,
    UserRoot,
    Propagation,
    RootBind,
    RootOpen,
    MountTarget,
    Mount,
    MountRemount,
    MountPropagation,
    Device,
    DevNull,
    Mask,
    Readonly,
    Hostname,
    Domainname,
    Pivot,
    RootReadonly,
    Rlimit,
    Tty,
    Stdio,
    Cwd,
    User,
    CapBounding,
    Seccomp,
    Capset,
    Ambient,
    NoNewPrivs,
    Init,
    Hold,
    Sysctl,
    Console,
    ExecNotFound,
    Exec,
    Keyring,
    Paused,
    AppArmor,
    Loopback,
    /// Not an error: the mounts are in place and the child waits before `pivot_root` (the hook point).
    Mounted = 98,
    /// Not an error: the container is set up and waits to be started.
    Ready = 99,
}

/// The record the child writes on failure (or `Ready`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    pub stage: u32,
    pub index: u32,
    pub errno: i32,
}

pub(crate) const REPORT_LEN: usize = std::mem::size_of::<Report>();

/// A path inside the container, prepared for walking relative to the root without allocating.
#[derive(Debug)]
pub(crate) struct InPath {
    /// The whole path relative to the root (`proc/sys`), `.` for the root itself.
    pub rel: CString,
    /// `proc`, `proc/sys`: each ancestor and the path itself.
    pub prefixes: Vec<CString>,
    /// `proc`, `sys`: the components.
    pub names: Vec<CString>,
}

#[derive(Debug)]
pub(crate) enum MountKind {
    /// A bind mount from a host path (opened in the child after the mount namespace exists).
    Bind { source: CString, recursive: bool },
    /// A new filesystem instance.
    Fs { fstype: CString, source: CString },
}

#[derive(Debug)]
pub(crate) struct MountOp {
    pub target: InPath,
    /// Create the target as a file (bind mount of a file) rather than a directory.
    pub file_target: bool,
    pub kind: MountKind,
    pub flags: c_ulong,
    pub data: Option<CString>,
    /// Bind mounts with ro/nosuid/... need a second, remount call.
    pub remount: Option<c_ulong>,
    /// MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE (+ MS_REC), or 0.
    pub propagation: c_ulong,
}

#[derive(Debug)]
pub(crate) struct DeviceOp {
    pub path: InPath,
    /// The directory holding the node (`None`: the root), created if missing.
    pub parent: Option<InPath>,
    pub name: CString,
    pub mode: libc::mode_t,
    pub dev: libc::dev_t,
    pub uid: u32,
    pub gid: u32,
    /// Host path to bind when mknod is not permitted (inside a user namespace).
    pub host: CString,
}

/// Mount-namespace setup of a new container (absent when joining one with `exec`).
#[derive(Debug)]
pub(crate) struct FsPlan {
    pub rootfs: CString,
    pub propagation: c_ulong,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceOp>,
    /// Create /dev/fd, /dev/stdin, ... and /dev/ptmx symlinks.
    pub dev_symlinks: bool,
    pub masked: Vec<InPath>,
    pub readonly: Vec<InPath>,
    pub root_readonly: bool,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    /// `(proc/sys/net/ipv4/ip_forward, "1")`: written after the mounts, before /proc/sys turns read-only.
    pub sysctl: Vec<(CString, CString)>,
    /// Bind the pty slave (this fd, or -1 for none) over /dev/console.
    pub console: RawFd,
    pub console_path: InPath,
    /// The pty slave's host path (`/dev/pts/N`), reopened inside the new mount namespace (a bind mount cannot take
    /// its source from a mount of another namespace) and checked to be the same device as `console`.
    pub console_host: CString,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// Everything the child needs, prepared by the parent.
pub(crate) struct Plan {
    pub sync_r: RawFd,
    pub err_w: RawFd,
    /// Sources for fds 0, 1, 2 (`-1`: keep what is there).
    pub stdio: [RawFd; 3],
    /// Sources for fds 3, 4, ...
    pub extra: Vec<RawFd>,
    pub pty_slave: RawFd,
    /// Namespaces to join, in order: (fd, CLONE_NEW* type or 0 for a pidfd with several).
    pub join: Vec<(RawFd, c_int)>,
    pub unshare: c_int,
    /// A new user namespace was created by clone: become root in it once mapped.
    pub new_userns: bool,
    pub fs: Option<FsPlan>,
    pub rlimits: Vec<(c_int, libc::rlimit64)>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub caps: CapMasks,
    pub last_cap: u8,
    pub no_new_privs: bool,
    pub umask: libc::mode_t,
    pub seccomp: Option<SeccompProgram>,
    pub cwd: InPath,
    pub exec_paths: Vec<CString>,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub init: bool,
    /// A FIFO opened read-write: the child blocks reading one byte from it before exec (create/start split).
    pub hold_fifo: RawFd,
    /// cgroup v1 `tasks` files of the container's cgroup, opened by the parent: the child moves itself by writing
    /// `0` to each (see [`crate::cgroup::JoinFds`]).
    pub cgroup_tasks: Vec<RawFd>,
    /// Join (creating it if needed) the session keyring of this name, so the container does not share the
    /// caller's (runc does the same, `_ses.ID`).
    pub keyring: Option<CString>,
    /// Permission bits to add to a newly joined session keyring (0: leave it as it is).
    pub keyring_perm_add: u32,
    /// Report [`Stage::Mounted`] before `pivot_root` and wait for one byte on this fd (-1: no pause).
    pub pause_r: RawFd,
    /// `exec PROFILE` for the AppArmor exec attribute (applied at `execve`).
    pub apparmor: Option<CString>,
    /// Allocate the terminal from the container's own devpts (`dev/pts/ptmx`) and send its master over this
    /// socket (-1: no terminal, or one allocated by the parent in `pty_slave`).
    pub pty_sock: RawFd,
    /// Window size for a terminal allocated here (0 rows: leave it).
    pub winsize: libc::winsize,
    /// Set `IFF_UP` on `lo` once the new network namespace exists.
    pub loopback_up: bool,
}

// SAFETY: the raw pointers in argv/envp point into CStrings owned by the same container-spawn call and are only read.
unsafe impl Send for Plan {}
unsafe impl Sync for Plan {}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn report(fd: RawFd, stage: Stage, index: usize, err: i32) {
    let r = Report {
        stage: stage as u32,
        index: index as u32,
        errno: err,
    };
    // SAFETY: writing a plain repr(C) value from the stack.
    unsafe { libc::write(fd, (&r as *const Report).cast(), REPORT_LEN) };
}

fn fail(plan: &Plan, stage: Stage, index: usize, err: i32) -> ! {
    report(plan.err_w, stage, index, err);
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(127) }
}

fn check(plan: &Plan, r: c_int, stage: Stage, index: usize) {
    if r < 0 {
        fail(plan, stage, index, errno());
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(dirfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT)`: symlinks and `..` resolve as if `dirfd` were `/`,
/// and magic links (`/proc/self/fd/N`) are refused.
fn open_in_root(dirfd: RawFd, path: &CStr, flags: c_int) -> c_int {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // SAFETY: valid pointers for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ) as c_int
    }
}

/// `/proc/self/fd/N` as a NUL-terminated string in `buf`.
fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> *const c_char {
    let prefix = b"/proc/self/fd/";
    let mut i = 0;
    for b in prefix {
        buf[i] = *b;
        i += 1;
    }
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
    buf.as_ptr().cast()
}

fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: closing an fd this process owns.
        unsafe { libc::close(fd) };
    }
}

/// Make every directory of `p` exist under `root` (resolving in-root), create the last component as a directory or
/// an empty file, and return an `O_PATH` fd to it.
fn make_target(root: RawFd, p: &InPath, file: bool) -> Result<RawFd, i32> {
    let n = p.prefixes.len();
    for (i, (prefix, name)) in p.prefixes.iter().zip(&p.names).enumerate() {
        let fd = open_in_root(root, prefix, libc::O_PATH);
        if fd >= 0 {
            close(fd);
            continue;
        }
        let e = errno();
        if e != libc::ENOENT {
            return Err(e);
        }
        let parent = match i.checked_sub(1).and_then(|j| p.prefixes.get(j)) {
            Some(pp) => open_in_root(root, pp, libc::O_PATH | libc::O_DIRECTORY),
            // SAFETY: dup of a valid fd.
            None => unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) },
        };
        if parent < 0 {
            return Err(errno());
        }
        // SAFETY: valid dirfd and NUL-terminated name.
        let r = unsafe {
            if file && i + 1 == n {
                let f = libc::openat(
                    parent,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0o644,
                );
                if f >= 0 {
                    libc::close(f);
                    0
                } else {
                    -1
                }
            } else {
                libc::mkdirat(parent, name.as_ptr(), 0o755)
            }
        };
        let e = errno();
        close(parent);
        if r < 0 && e != libc::EEXIST {
            return Err(e);
        }
    }
    let fd = open_in_root(root, &p.rel, libc::O_PATH);
    if fd < 0 { Err(errno()) } else { Ok(fd) }
}

/// The mount flags a read-only remount of the mount under `fd` must keep (locked flags in a user namespace).
fn kept_flags(fd: RawFd) -> c_ulong {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    if unsafe { libc::fstatvfs(fd, &mut st) } < 0 {
        return 0;
    }
    let f = st.f_flag as c_ulong;
    let mut out = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_RDONLY, libc::MS_RDONLY),
    ] {
        if f & st_flag as c_ulong != 0 {
            out |= ms_flag;
        }
    }
    out
}

/// Returns the pty slave allocated from the container's devpts (or -1).
fn setup_fs(plan: &Plan, fs: &FsPlan) -> RawFd {
    let mut slave = -1;
    let null = std::ptr::null::<c_char>();
    // SAFETY (whole function): raw mount-family syscalls with NUL-terminated strings owned by `plan`.
    unsafe {
        check(
            plan,
            libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | fs.propagation, null.cast()),
            Stage::Propagation,
            0,
        );
        check(
            plan,
            libc::mount(
                fs.rootfs.as_ptr(),
                fs.rootfs.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                null.cast(),
            ),
            Stage::RootBind,
            0,
        );
        let root = libc::open(fs.rootfs.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        check(plan, root, Stage::RootOpen, 0);
        let mut tbuf = [0u8; 32];
        let mut sbuf = [0u8; 32];
        for (i, m) in fs.mounts.iter().enumerate() {
            let target = match make_target(root, &m.target, m.file_target) {
                Ok(fd) => fd,
                Err(e) => fail(plan, Stage::MountTarget, i, e),
            };
            let tpath = fd_path(target, &mut tbuf);
            let data = m.data.as_ref().map_or(null.cast(), |d| d.as_ptr().cast());
            match &m.kind {
                MountKind::Bind { source, recursive } => {
                    let src = libc::open(source.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                    check(plan, src, Stage::Mount, i);
                    let spath = fd_path(src, &mut sbuf);
                    let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                    check(plan, libc::mount(spath, tpath, null, flags, data), Stage::Mount, i);
                    close(src);
                }
                MountKind::Fs { fstype, source } => {
                    let r = libc::mount(source.as_ptr(), tpath, fstype.as_ptr(), m.flags, data);
                    if r < 0 && errno() == libc::EPERM && fstype.as_bytes() == b"sysfs" {
                        // No sysfs of our own without a network namespace owned by our user namespace: bind the
                        // host's, read-only (as runc does).
                        let r2 = libc::mount(c"/sys".as_ptr(), tpath, null, libc::MS_BIND | libc::MS_REC, null.cast());
                        check(plan, r2, Stage::Mount, i);
                    } else {
                        check(plan, r, Stage::Mount, i);
                    }
                }
            }
            close(target);
            if m.remount.is_some() || m.propagation != 0 {
                // Re-open: the new fd names the new mount, not the directory under it.
                let top = open_in_root(root, &m.target.rel, libc::O_PATH);
                check(plan, top, Stage::MountRemount, i);
                let tpath = fd_path(top, &mut tbuf);
                if let Some(extra) = m.remount {
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | extra | kept_flags(top);
                    check(
                        plan,
                        libc::mount(null, tpath, null, flags, null.cast()),
                        Stage::MountRemount,
                        i,
                    );
                }
                if m.propagation != 0 {
                    check(
                        plan,
                        libc::mount(null, tpath, null, m.propagation, null.cast()),
                        Stage::MountPropagation,
                        i,
                    );
                }
                close(top);
            }
        }
        for (i, d) in fs.devices.iter().enumerate() {
            let dir = match &d.parent {
                Some(p) => match make_target(root, p, false) {
                    Ok(fd) => fd,
                    Err(e) => fail(plan, Stage::Device, i, e),
                },
                None => libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0),
            };
            check(plan, dir, Stage::Device, i);
            let name = &d.name;
            libc::unlinkat(dir, name.as_ptr(), 0);
            if libc::mknodat(dir, name.as_ptr(), d.mode, d.dev) < 0 {
                let e = errno();
                if e != libc::EPERM {
                    fail(plan, Stage::Device, i, e);
                }
                // In a user namespace: bind the host's node over an empty file.
                let f = libc::openat(
                    dir,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                check(plan, f, Stage::Device, i);
                close(f);
                let t = open_in_root(root, &d.path.rel, libc::O_PATH);
                check(plan, t, Stage::Device, i);
                let r = libc::mount(d.host.as_ptr(), fd_path(t, &mut tbuf), null, libc::MS_BIND, null.cast());
                check(plan, r, Stage::Device, i);
                close(t);
            } else {
                check(
                    plan,
                    libc::fchownat(dir, name.as_ptr(), d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW),
                    Stage::Device,
                    i,
                );
            }
            close(dir);
        }
        if fs.dev_symlinks {
            let dev = open_in_root(root, c"dev", libc::O_PATH | libc::O_DIRECTORY);
            if dev >= 0 {
                for (target, name) in [
                    (c"/proc/self/fd", c"fd"),
                    (c"/proc/self/fd/0", c"stdin"),
                    (c"/proc/self/fd/1", c"stdout"),
                    (c"/proc/self/fd/2", c"stderr"),
                    (c"pts/ptmx", c"ptmx"),
                    (c"/proc/kcore", c"core"),
                ] {
                    libc::symlinkat(target.as_ptr(), dev, name.as_ptr());
                }
                close(dev);
            }
        }
        for (i, (path, value)) in fs.sysctl.iter().enumerate() {
            let f = open_in_root(root, path, libc::O_WRONLY);
            check(plan, f, Stage::Sysctl, i);
            let n = value.as_bytes().len();
            if libc::write(f, value.as_ptr().cast(), n) != n as isize {
                fail(plan, Stage::Sysctl, i, errno());
            }
            close(f);
        }
        if plan.pty_sock >= 0 {
            slave = alloc_pty(plan, root);
        }
        if fs.console >= 0 || slave >= 0 {
            // The console is bound from the pty fd we were handed (or just allocated), onto a target opened
            // without following a final symlink and checked to be a regular file (CVE-2025-52565).
            match make_target(root, &fs.console_path, true) {
                Ok(fd) => close(fd),
                Err(e) => fail(plan, Stage::Console, 0, e),
            }
            let t = open_in_root(root, c"dev/console", libc::O_PATH | libc::O_NOFOLLOW);
            check(plan, t, Stage::Console, 0);
            let mut st: libc::stat = std::mem::zeroed();
            check(plan, libc::fstat(t, &mut st), Stage::Console, 0);
            let kind = st.st_mode & libc::S_IFMT;
            if kind != libc::S_IFREG && kind != libc::S_IFCHR {
                fail(plan, Stage::Console, 0, libc::EINVAL);
            }
            let src = if slave >= 0 {
                // Of this mount namespace's devpts: bound through its fd.
                libc::dup(slave)
            } else {
                let src = libc::open(
                    fs.console_host.as_ptr(),
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                );
                check(plan, src, Stage::Console, 1);
                let mut a: libc::stat = std::mem::zeroed();
                let mut b: libc::stat = std::mem::zeroed();
                check(plan, libc::fstat(src, &mut a), Stage::Console, 1);
                check(plan, libc::fstat(fs.console, &mut b), Stage::Console, 1);
                if a.st_mode & libc::S_IFMT != libc::S_IFCHR || a.st_rdev != b.st_rdev {
                    fail(plan, Stage::Console, 1, libc::EINVAL);
                }
                src
            };
            check(plan, src, Stage::Console, 1);
            let r = libc::mount(
                fd_path(src, &mut sbuf),
                fd_path(t, &mut tbuf),
                null,
                libc::MS_BIND,
                null.cast(),
            );
            close(src);
            check(plan, r, Stage::Console, 0);
            close(t);
        }
        // A verified /dev/null to mask files with: opened once, checked to be the null device, then only ever used
        // through its fd (CVE-2025-31133: never re-resolve a path the container could swap for a symlink).
        let mut devnull = open_in_root(root, c"dev/null", libc::O_PATH | libc::O_NOFOLLOW);
        if devnull < 0 || !is_null_device(devnull) {
            close(devnull);
            devnull = libc::open(c"/dev/null".as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if devnull < 0 || !is_null_device(devnull) {
                fail(plan, Stage::DevNull, 0, libc::EINVAL);
            }
        }
        let mut nbuf = [0u8; 32];
        let npath = fd_path(devnull, &mut nbuf);
        for (i, p) in fs.masked.iter().enumerate() {
            let t = open_in_root(root, &p.rel, libc::O_PATH | libc::O_NOFOLLOW);
            if t < 0 {
                if errno() == libc::ENOENT {
                    continue;
                }
                fail(plan, Stage::Mask, i, errno());
            }
            let mut st: libc::stat = std::mem::zeroed();
            check(plan, libc::fstat(t, &mut st), Stage::Mask, i);
            let tpath = fd_path(t, &mut tbuf);
            let r = match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => libc::mount(
                    c"tmpfs".as_ptr(),
                    tpath,
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    c"size=0,mode=0555".as_ptr().cast(),
                ),
                libc::S_IFLNK => 0,
                _ => libc::mount(npath, tpath, null, libc::MS_BIND, null.cast()),
            };
            check(plan, r, Stage::Mask, i);
            close(t);
        }
        close(devnull);
        for (i, p) in fs.readonly.iter().enumerate() {
            let t = open_in_root(root, &p.rel, libc::O_PATH | libc::O_NOFOLLOW);
            if t < 0 {
                if errno() == libc::ENOENT {
                    continue;
                }
                fail(plan, Stage::Readonly, i, errno());
            }
            let tpath = fd_path(t, &mut tbuf);
            check(
                plan,
                libc::mount(tpath, tpath, null, libc::MS_BIND | libc::MS_REC, null.cast()),
                Stage::Readonly,
                i,
            );
            close(t);
            let t = open_in_root(root, &p.rel, libc::O_PATH | libc::O_NOFOLLOW);
            check(plan, t, Stage::Readonly, i);
            let tpath = fd_path(t, &mut tbuf);
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(t);
            check(
                plan,
                libc::mount(null, tpath, null, flags, null.cast()),
                Stage::Readonly,
                i,
            );
            close(t);
        }
        if let Some(h) = &fs.hostname {
            check(
                plan,
                libc::sethostname(h.as_ptr(), h.as_bytes().len()),
                Stage::Hostname,
                0,
            );
        }
        if let Some(d) = &fs.domainname {
            check(
                plan,
                libc::setdomainname(d.as_ptr(), d.as_bytes().len()),
                Stage::Domainname,
                0,
            );
        }
        if plan.pause_r >= 0 {
            // The caller's hook point: mounts in place, host root still visible (OCI createRuntime and
            // createContainer hooks run here).
            report(plan.err_w, Stage::Mounted, 0, 0);
            let mut b = [0u8; 1];
            if libc::read(plan.pause_r, b.as_mut_ptr().cast(), 1) != 1 {
                fail(plan, Stage::Paused, 0, errno());
            }
            close(plan.pause_r);
        }
        // pivot_root(".", "."): the old root ends up stacked on the new one and is detached right away.
        check(plan, libc::fchdir(root), Stage::Pivot, 0);
        let pivoted = !fs.no_pivot && {
            let r = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr());
            // EINVAL: the current root cannot be pivoted away from (it is the initramfs): fall back to chroot.
            if r < 0 && errno() != libc::EINVAL {
                fail(plan, Stage::Pivot, 0, errno());
            }
            r == 0
        };
        if pivoted {
            check(plan, libc::umount2(c".".as_ptr(), libc::MNT_DETACH), Stage::Pivot, 1);
        } else {
            // Fallback (documented as weaker: a process with CAP_SYS_CHROOT can escape a chroot): move the rootfs
            // mount over / and chroot into it.
            check(
                plan,
                libc::mount(c".".as_ptr(), c"/".as_ptr(), null, libc::MS_MOVE, null.cast()),
                Stage::Pivot,
                3,
            );
            check(plan, libc::chroot(c".".as_ptr()), Stage::Pivot, 4);
        }
        check(plan, libc::chdir(c"/".as_ptr()), Stage::Pivot, 2);
        close(root);
        if fs.root_readonly {
            let r = open_in_root(libc::AT_FDCWD, c".", libc::O_PATH | libc::O_DIRECTORY);
            check(plan, r, Stage::RootReadonly, 0);
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(r);
            close(r);
            check(
                plan,
                libc::mount(null, c"/".as_ptr(), null, flags, null.cast()),
                Stage::RootReadonly,
                0,
            );
        }
    }
    slave
}

/// Open a new pty from the devpts under `root` (the container's, at `dev/pts/ptmx`, checked to be the ptmx
/// device: the container cannot hand us something else), send its master to the parent over `plan.pty_sock`, and
/// return the slave.
/// `ip link set lo up` in the current network namespace: `SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`.
fn loopback_up(plan: &Plan) {
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

fn alloc_pty(plan: &Plan, root: RawFd) -> RawFd {
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

/// Join the named session keyring; a kernel without keyrings (ENOSYS) is no error, as for runc.
fn join_keyring(plan: &Plan, name: &CStr) {
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
fn describe_perm(d: &[u8]) -> Option<u32> {
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

fn is_null_device(fd: RawFd) -> bool {
    // SAFETY: zeroed stat is a valid out-parameter; fd is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) }) == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && st.st_rdev == libc::makedev(1, 3)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Runs in the child right after `clone3`. Never returns.
pub(crate) fn run(plan: &Plan) -> ! {
    // SAFETY (whole function): raw system calls on values owned by the plan or the stack.
    unsafe {
        // No signal handler of the parent may run here: block everything until just before exec.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const _,
            std::ptr::null_mut::<u8>(),
            8,
        );
        // Non-dumpable until execve: processes in the container cannot open /proc/PID/exe (the host binary,
        // CVE-2019-5736) or ptrace us while we still run host code. execve makes the new program dumpable again.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);

        let mut b = [0u8; 1];
        if libc::read(plan.sync_r, b.as_mut_ptr().cast(), 1) != 1 {
            // The parent gave up (it failed to set us up and closed the pipe).
            libc::_exit(1);
        }
        close(plan.sync_r);

        // Into the container's cgroup before anything else, so everything from here on is accounted and limited
        // there, and before a new cgroup namespace is made (its root is the cgroup we are in).
        for (i, fd) in plan.cgroup_tasks.iter().enumerate() {
            let r = libc::write(*fd, b"0".as_ptr().cast(), 1);
            if r != 1 {
                fail(plan, Stage::CgroupJoin, i, if r < 0 { errno() } else { libc::EIO });
            }
            close(*fd);
        }

        for (i, (fd, typ)) in plan.join.iter().enumerate() {
            check(plan, libc::setns(*fd, *typ), Stage::Setns, i);
            close(*fd);
        }
        if plan.new_userns {
            check(
                plan,
                libc::syscall(libc::SYS_setresgid, 0, 0, 0) as c_int,
                Stage::UserRoot,
                0,
            );
            check(
                plan,
                libc::syscall(libc::SYS_setresuid, 0, 0, 0) as c_int,
                Stage::UserRoot,
                1,
            );
        }
        if plan.unshare != 0 {
            check(plan, libc::unshare(plan.unshare), Stage::Unshare, 0);
        }
        if let Some(name) = &plan.keyring {
            join_keyring(plan, name);
        }
        if plan.loopback_up {
            loopback_up(plan);
        }
        // Opened while the host's /proc is still in place; written just before no_new_privs, as runc does.
        let apparmor_attr = match &plan.apparmor {
            Some(_) => {
                let mut fd = libc::open(
                    c"/proc/thread-self/attr/apparmor/exec".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    fd = libc::open(
                        c"/proc/thread-self/attr/exec".as_ptr(),
                        libc::O_WRONLY | libc::O_CLOEXEC,
                    );
                }
                check(plan, fd, Stage::AppArmor, 0);
                fd
            }
            None => -1,
        };
        let mut pty_slave = plan.pty_slave;
        if let Some(fs) = &plan.fs {
            let s = setup_fs(plan, fs);
            if s >= 0 {
                pty_slave = s;
            }
        } else if plan.pty_sock >= 0 {
            // exec: already in the container's mount namespace and root.
            let root = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
            check(plan, root, Stage::Console, 2);
            pty_slave = alloc_pty(plan, root);
            close(root);
        }
        for (i, (res, lim)) in plan.rlimits.iter().enumerate() {
            let r = libc::syscall(
                libc::SYS_prlimit64,
                0,
                *res,
                lim as *const libc::rlimit64,
                std::ptr::null_mut::<u8>(),
            );
            check(plan, r as c_int, Stage::Rlimit, i);
        }
        libc::setsid();
        let mut stdio = plan.stdio;
        if pty_slave >= 0 {
            check(plan, libc::ioctl(pty_slave, libc::TIOCSCTTY, 0), Stage::Tty, 0);
            stdio = [pty_slave; 3];
        }
        for (target, src) in stdio.iter().enumerate() {
            if *src >= 0 {
                check(plan, libc::dup2(*src, target as c_int), Stage::Stdio, target);
            }
        }
        for (i, src) in plan.extra.iter().enumerate() {
            check(plan, libc::dup2(*src, 3 + i as c_int), Stage::Stdio, 3 + i);
        }
        // CVE-2024-21626: no fd of the parent survives exec; and the cwd is resolved inside the root below, so
        // a leaked directory fd cannot become the working directory.
        let first_free = 3 + plan.extra.len() as u32;
        libc::syscall(libc::SYS_close_range, first_free, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);

        libc::umask(plan.umask);
        let cwd_root = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        check(plan, cwd_root, Stage::Cwd, 0);
        let cwd = open_in_root(cwd_root, &plan.cwd.rel, libc::O_PATH | libc::O_DIRECTORY);
        if cwd < 0 {
            fail(plan, Stage::Cwd, 0, errno());
        }
        close(cwd_root);
        check(plan, libc::fchdir(cwd), Stage::Cwd, 0);
        close(cwd);
        let mut buf = [0u8; 8];
        let r = libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len());
        // ERANGE means a long, but reachable, path; ENOENT / "(unreachable)" means outside the root.
        if r < 0 && errno() != libc::ERANGE {
            fail(plan, Stage::Cwd, 0, errno());
        }
        if r > 0 && buf[0] != b'/' {
            fail(plan, Stage::Cwd, 0, libc::ENOENT);
        }

        for cap in 0..=plan.last_cap.min(63) {
            if plan.caps.bounding & (1u64 << cap) == 0 {
                let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0);
                if r < 0 && errno() != libc::EINVAL {
                    fail(plan, Stage::CapBounding, cap as usize, errno());
                }
            }
        }
        if !plan.no_new_privs {
            // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which we still have here.
            load_seccomp(plan);
        }
        check(plan, libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0), Stage::User, 0);
        let r = libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr());
        if r < 0 && !(errno() == libc::EPERM && plan.groups.is_empty()) {
            fail(plan, Stage::User, 1, errno());
        }
        check(
            plan,
            libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) as c_int,
            Stage::User,
            2,
        );
        check(
            plan,
            libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) as c_int,
            Stage::User,
            3,
        );
        let hdr = CapHeader {
            version: 0x20080522,
            pid: 0,
        };
        let c = plan.caps;
        let data = [
            CapData {
                effective: c.effective as u32,
                permitted: c.permitted as u32,
                inheritable: c.inheritable as u32,
            },
            CapData {
                effective: (c.effective >> 32) as u32,
                permitted: (c.permitted >> 32) as u32,
                inheritable: (c.inheritable >> 32) as u32,
            },
        ];
        check(
            plan,
            libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) as c_int,
            Stage::Capset,
            0,
        );
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong, 0, 0, 0);
        // The kernel raises an ambient capability only if it is permitted and inheritable; like runc,
        // leave out the others instead of failing (`runc spec`'s own bundle asks for such ones).
        let raisable = plan.caps.ambient & plan.caps.permitted & plan.caps.inheritable;
        for cap in 0..=plan.last_cap.min(63) {
            if raisable & (1u64 << cap) != 0 {
                let r = libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                    cap as c_ulong,
                    0,
                    0,
                );
                check(plan, r, Stage::Ambient, cap as usize);
            }
        }
        if let Some(attr) = &plan.apparmor {
            let bytes = attr.as_bytes();
            if libc::write(apparmor_attr, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
                fail(plan, Stage::AppArmor, 1, errno());
            }
            close(apparmor_attr);
        }
        if plan.no_new_privs {
            check(
                plan,
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                Stage::NoNewPrivs,
                0,
            );
            load_seccomp(plan);
        }

        if plan.hold_fifo >= 0 {
            // Like runc, `create` fails when the program cannot be executed, rather than a
            // later `start`: checked with the container's own credentials, already in place.
            check_executable(plan);
            report(plan.err_w, Stage::Ready, 0, 0);
            let mut b = [0u8; 1];
            if libc::read(plan.hold_fifo, b.as_mut_ptr().cast(), 1) != 1 {
                fail(plan, Stage::Hold, 0, errno());
            }
            close(plan.hold_fifo);
        }
        if plan.init {
            reaper(plan);
        }
        exec(plan)
    }
}

fn load_seccomp(plan: &Plan) {
    if let Some(p) = &plan.seccomp {
        let prog = libc::sock_fprog {
            len: p.filter.len() as u16,
            filter: p.filter.as_ptr().cast_mut(),
        };
        // SAFETY: prog points to the prepared filter, alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                p.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        check(plan, r as c_int, Stage::Seccomp, 0);
    }
}

/// Tries each candidate path with `attempt` (true: done) and, when none works, fails as
/// `execve` on a `PATH` search does: "not found" if every path was missing, else the last
/// other error.
fn try_exec_paths(plan: &Plan, mut attempt: impl FnMut(&CStr) -> bool) {
    let mut last = libc::ENOENT;
    for p in &plan.exec_paths {
        if attempt(p) {
            return;
        }
        let e = errno();
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    if last == libc::ENOENT {
        fail(plan, Stage::ExecNotFound, 0, last)
    }
    fail(plan, Stage::Exec, 0, last)
}

/// Fails the way `exec` would when no candidate path is an executable the process may run.
fn check_executable(plan: &Plan) {
    // SAFETY: a NUL-terminated path prepared before the fork.
    try_exec_paths(plan, |p| unsafe { libc::access(p.as_ptr(), libc::X_OK) } == 0);
}

/// Reset signal handlers to default and unblock signals, then try each candidate path.
fn exec(plan: &Plan) -> ! {
    // SAFETY: raw syscalls; argv/envp are NULL-terminated arrays of pointers into live CStrings.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
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
            false
        });
        fail(plan, Stage::Exec, 0, libc::ENOENT)
    }
}

/// A minimal init (like `docker run --init`): fork the program, forward signals to it, reap every orphan, and exit
/// with the program's status (128+signal if it was killed by a signal).
fn reaper(plan: &Plan) {
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

#[cfg(test)]
mod stage_tests {
    use super::{Stage, describe_perm};

    #[test]
    fn keyring_description_gives_its_permissions() {
        assert_eq!(describe_perm(b"keyring;0;0;3f130000;_ses.x\0"), Some(0x3f13_0000));
        assert_eq!(describe_perm(b"keyring;0;0;zz;_ses.x"), None);
        assert_eq!(describe_perm(b"keyring;0;0"), None);
    }

    #[test]
    fn reported_numbers_map_back_to_their_stage() {
        for stage in [
            Stage::Sync,
            Stage::Ambient,
            Stage::ExecNotFound,
            Stage::Exec,
            Stage::Paused,
            Stage::AppArmor,
            Stage::Loopback,
            Stage::Mounted,
            Stage::Ready,
        ] {
            assert_eq!(Stage::from_u32(stage as u32), Some(stage));
        }
        assert_eq!(Stage::Sync as u32, 1);
        assert_eq!(Stage::Ready as u32, 99);
        assert_eq!(Stage::from_u32(0), None);
        assert_eq!(Stage::from_u32(Stage::Loopback as u32 + 1), None);
    }
}

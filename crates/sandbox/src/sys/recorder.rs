//! [`Recorder`]: a [`Sys`] that records the calls instead of making them, naming files by path (a
//! `/proc/self/fd/N` argument is shown as the path fd N was opened at), for unit tests without root.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, dev_t, gid_t, mode_t, uid_t};

use super::{FileKind, Sys};
use crate::caps::CapMasks;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Mount {
        source: Option<String>,
        target: String,
        fstype: Option<String>,
        flags: c_ulong,
        data: Option<String>,
    },
    Umount(String),
    PivotRoot,
    Chroot(String),
    Chdir(String),
    Mkdir(String),
    Mknod {
        path: String,
        mode: mode_t,
        dev: dev_t,
    },
    Chmod(String, mode_t),
    Chown(String, uid_t, gid_t),
    Unlink(String),
    Symlink {
        target: String,
        path: String,
    },
    Write(String, Vec<u8>),
    Sethostname(String),
    Setdomainname(String),
    Setns(RawFd, c_int),
    Unshare(c_int),
    Setresuid(uid_t),
    Setresgid(gid_t),
    Setgroups(Vec<gid_t>),
    KeepCaps,
    DropBounding(u8),
    Capset(CapMasks),
    ClearAmbient,
    RaiseAmbient(u8),
}

/// The recording double. Every call succeeds, except opens of `missing` paths (ENOENT); `fstat` says a path is a
/// directory when it is in `dirs`, the null device for `/dev/null` and `ROOT/dev/null`, else a regular file.
#[derive(Default)]
pub(crate) struct Recorder {
    calls: RefCell<Vec<Call>>,
    paths: RefCell<HashMap<RawFd, String>>,
    next: Cell<RawFd>,
    errno: Cell<i32>,
    /// Paths that do not exist (until made).
    missing: RefCell<Vec<String>>,
    /// Paths that are directories.
    dirs: Vec<String>,
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

impl Recorder {
    /// A recorder where `missing` paths do not exist (until made) and `dirs` are directories.
    pub(crate) fn with(missing: &[&str], dirs: &[&str]) -> Recorder {
        Recorder {
            missing: RefCell::new(missing.iter().map(|s| s.to_string()).collect()),
            dirs: dirs.iter().map(|s| s.to_string()).collect(),
            ..Recorder::default()
        }
    }

    /// The calls so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Only the mounts, as `(source, target, fstype, flags)`.
    pub(crate) fn mounts(&self) -> Vec<(Option<String>, String, Option<String>, c_ulong)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    ..
                } => Some((source, target, fstype, flags)),
                _ => None,
            })
            .collect()
    }

    /// `path` exists from now on.
    fn made(&self, path: &str) {
        self.missing.borrow_mut().retain(|p| p != path);
    }

    fn push(&self, c: Call) -> c_int {
        self.calls.borrow_mut().push(c);
        0
    }

    fn path_of(&self, fd: RawFd) -> String {
        self.paths
            .borrow()
            .get(&fd)
            .cloned()
            .unwrap_or_else(|| format!("fd:{fd}"))
    }

    /// A path argument, with `/proc/self/fd/N` shown as what fd N names.
    fn name(&self, c: &CStr) -> String {
        let p = s(c);
        match p.strip_prefix("/proc/self/fd/").and_then(|n| n.parse().ok()) {
            Some(fd) => self.path_of(fd),
            None => p,
        }
    }

    fn join(&self, dirfd: RawFd, rel: &CStr) -> String {
        let dir = if dirfd == libc::AT_FDCWD {
            ".".to_owned()
        } else {
            self.path_of(dirfd)
        };
        match s(rel).as_str() {
            "." => dir,
            r => format!("{}/{r}", dir.trim_end_matches('/')),
        }
    }

    fn open_path(&self, path: String) -> RawFd {
        if self.missing.borrow().contains(&path) {
            self.errno.set(libc::ENOENT);
            return -1;
        }
        let fd = 100 + self.next.get();
        self.next.set(self.next.get() + 1);
        self.paths.borrow_mut().insert(fd, path);
        fd
    }
}

impl Sys for Recorder {
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
        self.push(Call::Mount {
            source: source.map(|c| self.name(c)),
            target: self.name(target),
            fstype: fstype.map(s),
            flags,
            data: data.map(s),
        })
    }
    fn umount2(&self, target: &CStr, _flags: c_int) -> c_int {
        self.push(Call::Umount(s(target)))
    }
    fn pivot_root(&self, _new_root: &CStr, _put_old: &CStr) -> c_int {
        self.push(Call::PivotRoot)
    }
    fn chroot(&self, path: &CStr) -> c_int {
        self.push(Call::Chroot(s(path)))
    }
    fn chdir(&self, path: &CStr) -> c_int {
        self.push(Call::Chdir(s(path)))
    }
    fn fchdir(&self, fd: RawFd) -> c_int {
        self.push(Call::Chdir(self.path_of(fd)))
    }
    fn open(&self, path: &CStr, _flags: c_int) -> RawFd {
        self.open_path(s(path))
    }
    fn open_in_root(&self, dirfd: RawFd, path: &CStr, _flags: c_int) -> RawFd {
        self.open_path(self.join(dirfd, path))
    }
    fn openat(&self, dirfd: RawFd, name: &CStr, flags: c_int, _mode: mode_t) -> RawFd {
        let path = self.join(dirfd, name);
        if flags & libc::O_CREAT != 0 {
            self.made(&path);
        }
        self.open_path(path)
    }
    fn dup(&self, fd: RawFd) -> RawFd {
        self.open_path(self.path_of(fd))
    }
    fn close(&self, fd: RawFd) {
        self.paths.borrow_mut().remove(&fd);
    }
    fn read_byte(&self, _fd: RawFd) -> isize {
        1
    }
    fn write(&self, fd: RawFd, bytes: &[u8]) -> isize {
        self.push(Call::Write(self.path_of(fd), bytes.to_vec()));
        bytes.len() as isize
    }
    fn fstat(&self, fd: RawFd) -> Result<FileKind, i32> {
        let p = self.path_of(fd);
        Ok(if self.dirs.contains(&p) {
            FileKind {
                kind: libc::S_IFDIR,
                rdev: 0,
            }
        } else if p.ends_with("/dev/null") {
            FileKind {
                kind: libc::S_IFCHR,
                rdev: libc::makedev(1, 3),
            }
        } else {
            FileKind {
                kind: libc::S_IFREG,
                rdev: 0,
            }
        })
    }
    fn mount_flags(&self, _fd: RawFd) -> c_ulong {
        0
    }
    fn mkdirat(&self, dirfd: RawFd, name: &CStr, _mode: mode_t) -> c_int {
        let path = self.join(dirfd, name);
        self.made(&path);
        self.push(Call::Mkdir(path))
    }
    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t, dev: dev_t) -> c_int {
        let path = self.join(dirfd, name);
        self.made(&path);
        self.push(Call::Mknod { path, mode, dev })
    }
    fn fchmodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        self.push(Call::Chmod(self.join(dirfd, name), mode))
    }
    fn fchownat(&self, dirfd: RawFd, name: &CStr, uid: uid_t, gid: gid_t) -> c_int {
        self.push(Call::Chown(self.join(dirfd, name), uid, gid))
    }
    fn unlinkat(&self, dirfd: RawFd, name: &CStr) -> c_int {
        self.push(Call::Unlink(self.join(dirfd, name)))
    }
    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> c_int {
        self.push(Call::Symlink {
            target: s(target),
            path: self.join(dirfd, name),
        })
    }
    fn sethostname(&self, name: &CStr) -> c_int {
        self.push(Call::Sethostname(s(name)))
    }
    fn setdomainname(&self, name: &CStr) -> c_int {
        self.push(Call::Setdomainname(s(name)))
    }
    fn setns(&self, fd: RawFd, nstype: c_int) -> c_int {
        self.push(Call::Setns(fd, nstype))
    }
    fn unshare(&self, flags: c_int) -> c_int {
        self.push(Call::Unshare(flags))
    }
    fn setresuid(&self, uid: uid_t) -> c_int {
        self.push(Call::Setresuid(uid))
    }
    fn setresgid(&self, gid: gid_t) -> c_int {
        self.push(Call::Setresgid(gid))
    }
    fn setgroups(&self, groups: &[gid_t]) -> c_int {
        self.push(Call::Setgroups(groups.to_vec()))
    }
    fn keep_caps(&self) -> c_int {
        self.push(Call::KeepCaps)
    }
    fn drop_bounding(&self, cap: u8) -> c_int {
        self.push(Call::DropBounding(cap))
    }
    fn capset(&self, caps: &CapMasks) -> c_int {
        self.push(Call::Capset(*caps))
    }
    fn clear_ambient(&self) {
        self.push(Call::ClearAmbient);
    }
    fn raise_ambient(&self, cap: u8) -> c_int {
        self.push(Call::RaiseAmbient(cap))
    }
}

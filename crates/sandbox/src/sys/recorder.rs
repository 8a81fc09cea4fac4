//! [`Recorder`]: a [`Sys`] that records the calls instead of making them, naming files by path (a
//! `/proc/self/fd/N` argument is shown as the path fd N was opened at), for unit tests without root.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, dev_t, gid_t, mode_t, uid_t};

use super::{FileKind, Sys};
use crate::caps::CapMasks;
use crate::report::Report;

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
    /// A fork whose child goes on (`fork_into_parent`).
    Fork,
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
    /// The slave of the pty master opened at this path.
    PtyPeer(String),
    Winsize(String, u16, u16),
    /// `SendFd(socket, path of the fd sent)`.
    SendFd(RawFd, String),
}

/// The recording double. Every call succeeds, except opens of `missing` paths (ENOENT) and the calls told to fail
/// ([`Recorder::failing`]); `fstat` says a path is a directory when it is in `dirs`, the null device for
/// `/dev/null` and `ROOT/dev/null`, the ptmx device for `.../ptmx`, else a regular file. A failed step does not end
/// the test: [`Sys::exit_failed`] unwinds with the [`Report`] ([`Recorder::run`] catches it).
#[derive(Default)]
pub(crate) struct Recorder {
    /// Calls to fail: (the [`Sys`] method's name, the how-manieth call of it, the errno).
    failures: Vec<(&'static str, usize, i32)>,
    /// How many times each method was called.
    counts: RefCell<HashMap<&'static str, usize>>,
    /// How many of `failures` were injected.
    injected: Cell<usize>,
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

    /// Fail the `nth` (from 1) call of the [`Sys`] method `call` (its name: `"mount"`, `"open_in_root"`, ...) with
    /// `errno`.
    pub(crate) fn failing(mut self, call: &'static str, nth: usize, errno: i32) -> Recorder {
        self.failures.push((call, nth, errno));
        self
    }

    /// Run a setup step: `Ok` with what it returned, or `Err` with the report of the step that failed. Panics
    /// when a failure was asked for that no call met (a misspelt method, or a step the spec does not make).
    pub(crate) fn run<T>(&self, step: impl FnOnce() -> T) -> Result<T, Report> {
        // A failed step is no panic worth printing: keep the default hook for the others.
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !info.payload().is::<Report>() {
                    default(info);
                }
            }));
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(step));
        let r = r.map_err(|p| match p.downcast::<Report>() {
            Ok(report) => *report,
            Err(p) => std::panic::resume_unwind(p),
        });
        if r.is_ok() || self.injected.get() < self.failures.len() {
            assert_eq!(
                self.injected.get(),
                self.failures.len(),
                "injected failures not met: {:?}, calls {:?}",
                self.failures,
                self.counts.borrow()
            );
        }
        r
    }

    /// How many times each [`Sys`] method was called, sorted by name.
    pub(crate) fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut v: Vec<_> = self.counts.borrow().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    /// The errno to fail this call of `call` with, if it was asked for.
    fn inject(&self, call: &'static str) -> Option<i32> {
        let mut counts = self.counts.borrow_mut();
        let n = counts.entry(call).or_insert(0);
        *n += 1;
        let e = self
            .failures
            .iter()
            .find(|(c, nth, _)| *c == call && nth == n)
            .map(|f| f.2)?;
        self.injected.set(self.injected.get() + 1);
        self.errno.set(e);
        Some(e)
    }

    /// `0`, or -1 when this call is to fail.
    fn result(&self, call: &'static str) -> c_int {
        if self.inject(call).is_some() { -1 } else { 0 }
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

    /// Record `c`, a call of the method `call`: 0, or -1 when it is to fail.
    fn push(&self, call: &'static str, c: Call) -> c_int {
        self.calls.borrow_mut().push(c);
        self.result(call)
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

    fn open_path(&self, call: &'static str, path: String) -> RawFd {
        if self.inject(call).is_some() {
            return -1;
        }
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
        self.push(
            "mount",
            Call::Mount {
                source: source.map(|c| self.name(c)),
                target: self.name(target),
                fstype: fstype.map(s),
                flags,
                data: data.map(s),
            },
        )
    }
    fn mount_new(&self, fstype: &CStr, params: &[(CString, Option<CString>)], target: &CStr) -> c_int {
        let data = params
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{}={}", s(k), s(v)),
                None => s(k),
            })
            .collect::<Vec<_>>()
            .join(",");
        self.push(
            "mount_new",
            Call::Mount {
                source: None,
                target: self.name(target),
                fstype: Some(s(fstype)),
                flags: 0,
                data: Some(data),
            },
        )
    }
    fn fork_into_parent(&self) -> libc::pid_t {
        // The recording goes on as the new process would.
        self.push("fork_into_parent", Call::Fork)
    }
    fn exit(&self, code: c_int) -> ! {
        panic!("the recorded child exited with {code}")
    }
    fn umount2(&self, target: &CStr, _flags: c_int) -> c_int {
        self.push("umount2", Call::Umount(s(target)))
    }
    fn pivot_root(&self, _new_root: &CStr, _put_old: &CStr) -> c_int {
        self.push("pivot_root", Call::PivotRoot)
    }
    fn chroot(&self, path: &CStr) -> c_int {
        self.push("chroot", Call::Chroot(s(path)))
    }
    fn chdir(&self, path: &CStr) -> c_int {
        self.push("chdir", Call::Chdir(s(path)))
    }
    fn fchdir(&self, fd: RawFd) -> c_int {
        self.push("fchdir", Call::Chdir(self.path_of(fd)))
    }
    fn open(&self, path: &CStr, _flags: c_int) -> RawFd {
        self.open_path("open", s(path))
    }
    fn open_in_root(&self, dirfd: RawFd, path: &CStr, _flags: c_int) -> RawFd {
        self.open_path("open_in_root", self.join(dirfd, path))
    }
    fn openat(&self, dirfd: RawFd, name: &CStr, flags: c_int, _mode: mode_t) -> RawFd {
        let path = self.join(dirfd, name);
        if flags & libc::O_CREAT != 0 {
            self.made(&path);
        }
        self.open_path("openat", path)
    }
    fn dup(&self, fd: RawFd) -> RawFd {
        self.open_path("dup", self.path_of(fd))
    }
    fn close(&self, fd: RawFd) {
        self.paths.borrow_mut().remove(&fd);
    }
    fn read_byte(&self, _fd: RawFd) -> isize {
        if self.inject("read_byte").is_some() { -1 } else { 1 }
    }
    fn write(&self, fd: RawFd, bytes: &[u8]) -> isize {
        if self.push("write", Call::Write(self.path_of(fd), bytes.to_vec())) < 0 {
            return -1;
        }
        bytes.len() as isize
    }
    fn fstat(&self, fd: RawFd) -> Result<FileKind, i32> {
        if let Some(e) = self.inject("fstat") {
            return Err(e);
        }
        let p = self.path_of(fd);
        Ok(if self.dirs.contains(&p) {
            FileKind {
                kind: libc::S_IFDIR,
                rdev: 0,
            }
        } else if p.ends_with("/ptmx") {
            FileKind {
                kind: libc::S_IFCHR,
                rdev: libc::makedev(5, 2),
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
        self.push("mkdirat", Call::Mkdir(path))
    }
    fn mknodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t, dev: dev_t) -> c_int {
        let path = self.join(dirfd, name);
        self.made(&path);
        self.push("mknodat", Call::Mknod { path, mode, dev })
    }
    fn fchmodat(&self, dirfd: RawFd, name: &CStr, mode: mode_t) -> c_int {
        self.push("fchmodat", Call::Chmod(self.join(dirfd, name), mode))
    }
    fn fchownat(&self, dirfd: RawFd, name: &CStr, uid: uid_t, gid: gid_t) -> c_int {
        self.push("fchownat", Call::Chown(self.join(dirfd, name), uid, gid))
    }
    fn unlinkat(&self, dirfd: RawFd, name: &CStr) -> c_int {
        self.push("unlinkat", Call::Unlink(self.join(dirfd, name)))
    }
    fn symlinkat(&self, target: &CStr, dirfd: RawFd, name: &CStr) -> c_int {
        self.push(
            "symlinkat",
            Call::Symlink {
                target: s(target),
                path: self.join(dirfd, name),
            },
        )
    }
    fn sethostname(&self, name: &CStr) -> c_int {
        self.push("sethostname", Call::Sethostname(s(name)))
    }
    fn setdomainname(&self, name: &CStr) -> c_int {
        self.push("setdomainname", Call::Setdomainname(s(name)))
    }
    fn setns(&self, fd: RawFd, nstype: c_int) -> c_int {
        self.push("setns", Call::Setns(fd, nstype))
    }
    fn unshare(&self, flags: c_int) -> c_int {
        self.push("unshare", Call::Unshare(flags))
    }
    fn setresuid(&self, uid: uid_t) -> c_int {
        self.push("setresuid", Call::Setresuid(uid))
    }
    fn setresgid(&self, gid: gid_t) -> c_int {
        self.push("setresgid", Call::Setresgid(gid))
    }
    fn setgroups(&self, groups: &[gid_t]) -> c_int {
        self.push("setgroups", Call::Setgroups(groups.to_vec()))
    }
    fn keep_caps(&self) -> c_int {
        self.push("keep_caps", Call::KeepCaps)
    }
    fn drop_bounding(&self, cap: u8) -> c_int {
        self.push("drop_bounding", Call::DropBounding(cap))
    }
    fn capset(&self, caps: &CapMasks) -> c_int {
        self.push("capset", Call::Capset(*caps))
    }
    fn clear_ambient(&self) {
        self.push("clear_ambient", Call::ClearAmbient);
    }
    fn raise_ambient(&self, cap: u8) -> c_int {
        self.push("raise_ambient", Call::RaiseAmbient(cap))
    }
    fn pty_peer(&self, master: RawFd) -> RawFd {
        let path = self.path_of(master);
        if self.push("pty_peer", Call::PtyPeer(path.clone())) < 0 {
            return -1;
        }
        self.open_path("pty_peer (the fd)", format!("{path}:peer"))
    }
    fn set_winsize(&self, fd: RawFd, size: &libc::winsize) {
        self.push("set_winsize", Call::Winsize(self.path_of(fd), size.ws_row, size.ws_col));
    }
    fn send_fd(&self, sock: RawFd, fd: RawFd) -> isize {
        if self.push("send_fd", Call::SendFd(sock, self.path_of(fd))) < 0 {
            return -1;
        }
        1
    }
    fn exit_failed(&self, _fd: RawFd, report: &Report) -> ! {
        std::panic::panic_any(*report)
    }
}

//! The new container's filesystem: its mounts, device nodes, masked and read-only paths, console, hostname, then
//! `pivot_root`. Generic over [`Sys`]: unit tests check the calls a spec produces with the recording double.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::c_ulong;

use super::{fail_with, ok, report, tty};
use crate::plan::{FsPlan, InPath, MountKind, Plan};
use crate::report::Stage;
use crate::sys::{Sys, fd_path};

/// Make every directory of `p` exist under `root` (resolving in-root), create the last component as a directory or
/// an empty file, and return an `O_PATH` fd to it.
fn make_target<S: Sys>(sys: &S, root: RawFd, p: &InPath, file: bool) -> Result<RawFd, i32> {
    let n = p.prefixes.len();
    for (i, (prefix, name)) in p.prefixes.iter().zip(&p.names).enumerate() {
        let fd = sys.open_in_root(root, prefix, libc::O_PATH);
        if fd >= 0 {
            sys.close(fd);
            continue;
        }
        let e = sys.errno();
        if e != libc::ENOENT {
            return Err(e);
        }
        let parent = match i.checked_sub(1).and_then(|j| p.prefixes.get(j)) {
            Some(pp) => sys.open_in_root(root, pp, libc::O_PATH | libc::O_DIRECTORY),
            None => sys.dup(root),
        };
        if parent < 0 {
            return Err(sys.errno());
        }
        let r = if file && i + 1 == n {
            let f = sys.openat(parent, name, libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW, 0o644);
            sys.close(f);
            f.min(0)
        } else {
            sys.mkdirat(parent, name, 0o755)
        };
        let e = sys.errno();
        sys.close(parent);
        if r < 0 && e != libc::EEXIST {
            return Err(e);
        }
    }
    let fd = sys.open_in_root(root, &p.rel, libc::O_PATH);
    if fd < 0 { Err(sys.errno()) } else { Ok(fd) }
}

fn is_null_device<S: Sys>(sys: &S, fd: RawFd) -> bool {
    sys.fstat(fd)
        .is_ok_and(|k| k.kind == libc::S_IFCHR && k.rdev == libc::makedev(1, 3))
}

/// Everything between the new mount namespace and the container's root: returns the pty slave allocated from the
/// container's devpts (or -1).
pub(super) fn setup_fs<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan) -> RawFd {
    ok(
        sys,
        plan,
        sys.mount(None, c"/", None, libc::MS_REC | fs.propagation, None),
        Stage::Propagation,
        0,
    );
    if let Some(m) = &fs.root_mount {
        ok(
            sys,
            plan,
            sys.mount_new(&m.fstype, &m.params, &fs.rootfs),
            Stage::RootMount,
            0,
        );
    }
    let bind = libc::MS_BIND | libc::MS_REC;
    ok(
        sys,
        plan,
        sys.mount(Some(fs.rootfs.as_c_str()), &fs.rootfs, None, bind, None),
        Stage::RootBind,
        0,
    );
    let root = sys.open(&fs.rootfs, libc::O_PATH | libc::O_DIRECTORY);
    ok(sys, plan, root, Stage::RootOpen, 0);
    mounts(sys, plan, fs, root);
    // A working directory the root lacks is made (0755, the container's root's), as runc makes it: after the
    // mounts (so one beneath a mount is made in it) and before a read-only root, and beneath the root as a mount
    // target is, so a symlink on the way resolves inside it and a dangling one is refused, never followed out.
    match make_target(sys, root, &plan.cwd, false) {
        Ok(fd) => sys.close(fd),
        Err(e) => fail_with(sys, plan, Stage::Cwd, 0, e),
    }
    devices(sys, plan, fs, root);
    for (i, (path, value)) in fs.sysctl.iter().enumerate() {
        let f = sys.open_in_root(root, path, libc::O_WRONLY);
        ok(sys, plan, f, Stage::Sysctl, i);
        if sys.write(f, value.to_bytes()) != value.to_bytes().len() as isize {
            fail_with(sys, plan, Stage::Sysctl, i, sys.errno());
        }
        sys.close(f);
    }
    let slave = if plan.pty_sock >= 0 {
        tty::alloc_pty(sys, plan, root)
    } else {
        -1
    };
    if fs.console >= 0 || slave >= 0 {
        console(sys, plan, fs, root, slave);
    }
    masks(sys, plan, fs, root);
    if let Some(h) = &fs.hostname {
        ok(sys, plan, sys.sethostname(h), Stage::Hostname, 0);
    }
    if let Some(d) = &fs.domainname {
        ok(sys, plan, sys.setdomainname(d), Stage::Domainname, 0);
    }
    if plan.pause_r >= 0 {
        // The caller's hook point: mounts in place, host root still visible (OCI createRuntime and
        // createContainer hooks run here).
        report(sys, plan, Stage::Mounted);
        if sys.read_byte(plan.pause_r) != 1 {
            fail_with(sys, plan, Stage::Paused, 0, sys.errno());
        }
        sys.close(plan.pause_r);
    }
    enter_root(sys, plan, fs, root);
    slave
}

/// The spec's mounts, each onto a target resolved inside the root and mounted through its fd.
fn mounts<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan, root: RawFd) {
    let (mut tbuf, mut sbuf) = ([0u8; 32], [0u8; 32]);
    for (i, m) in fs.mounts.iter().enumerate() {
        let target = match make_target(sys, root, &m.target, m.file_target) {
            Ok(fd) => fd,
            Err(e) => fail_with(sys, plan, Stage::MountTarget, i, e),
        };
        let tpath = fd_path(target, &mut tbuf);
        let data = m.data.as_deref();
        match &m.kind {
            MountKind::Bind { source, recursive } => {
                let src = sys.open(source, libc::O_PATH);
                ok(sys, plan, src, Stage::Mount, i);
                let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                let r = sys.mount(Some(fd_path(src, &mut sbuf)), tpath, None, flags, data);
                ok(sys, plan, r, Stage::Mount, i);
                sys.close(src);
            }
            MountKind::Fs { fstype, source } => {
                let r = sys.mount(Some(source.as_c_str()), tpath, Some(fstype.as_c_str()), m.flags, data);
                if r < 0 && sys.errno() == libc::EPERM && fstype.as_bytes() == b"sysfs" {
                    // No sysfs of our own without a network namespace owned by our user namespace: bind the
                    // host's, read-only (as runc does).
                    let r2 = sys.mount(Some(c"/sys"), tpath, None, libc::MS_BIND | libc::MS_REC, None);
                    ok(sys, plan, r2, Stage::Mount, i);
                } else {
                    ok(sys, plan, r, Stage::Mount, i);
                }
            }
        }
        sys.close(target);
        if m.remount.is_some() || m.propagation != 0 {
            // Re-open: the new fd names the new mount, not the directory under it.
            let top = sys.open_in_root(root, &m.target.rel, libc::O_PATH);
            ok(sys, plan, top, Stage::MountRemount, i);
            let tpath = fd_path(top, &mut tbuf);
            if let Some(extra) = m.remount {
                let flags = libc::MS_BIND | libc::MS_REMOUNT | extra | sys.mount_flags(top);
                ok(
                    sys,
                    plan,
                    sys.mount(None, tpath, None, flags, None),
                    Stage::MountRemount,
                    i,
                );
            }
            if m.propagation != 0 {
                let r = sys.mount(None, tpath, None, m.propagation, None);
                ok(sys, plan, r, Stage::MountPropagation, i);
            }
            sys.close(top);
        }
    }
}

/// Device nodes (made, or bound from the host's where mknod is not permitted) and the /dev symlinks.
fn devices<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan, root: RawFd) {
    let mut tbuf = [0u8; 32];
    for (i, d) in fs.devices.iter().enumerate() {
        let dir = match &d.parent {
            Some(p) => match make_target(sys, root, p, false) {
                Ok(fd) => fd,
                Err(e) => fail_with(sys, plan, Stage::Device, i, e),
            },
            None => sys.dup(root),
        };
        ok(sys, plan, dir, Stage::Device, i);
        let name = &d.name;
        sys.unlinkat(dir, name);
        if sys.mknodat(dir, name, d.mode, d.dev) < 0 {
            let e = sys.errno();
            if e != libc::EPERM {
                fail_with(sys, plan, Stage::Device, i, e);
            }
            // In a user namespace: bind the host's node over an empty file.
            let f = sys.openat(dir, name, libc::O_CREAT | libc::O_WRONLY, 0o644);
            ok(sys, plan, f, Stage::Device, i);
            sys.close(f);
            let t = sys.open_in_root(root, &d.path.rel, libc::O_PATH);
            ok(sys, plan, t, Stage::Device, i);
            let r = sys.mount(
                Some(d.host.as_c_str()),
                fd_path(t, &mut tbuf),
                None,
                libc::MS_BIND,
                None,
            );
            ok(sys, plan, r, Stage::Device, i);
            sys.close(t);
        } else {
            // The mode asked for, whatever the umask took away (runc chmods too).
            ok(sys, plan, sys.fchmodat(dir, name, d.mode & 0o7777), Stage::Device, i);
            ok(sys, plan, sys.fchownat(dir, name, d.uid, d.gid), Stage::Device, i);
        }
        sys.close(dir);
    }
    if fs.dev_symlinks {
        let dev = sys.open_in_root(root, c"dev", libc::O_PATH | libc::O_DIRECTORY);
        if dev >= 0 {
            for (target, name) in [
                (c"/proc/self/fd", c"fd"),
                (c"/proc/self/fd/0", c"stdin"),
                (c"/proc/self/fd/1", c"stdout"),
                (c"/proc/self/fd/2", c"stderr"),
                (c"pts/ptmx", c"ptmx"),
                (c"/proc/kcore", c"core"),
            ] {
                if name != c"core" || fs.dev_core {
                    sys.symlinkat(target, dev, name);
                }
            }
            sys.close(dev);
        }
    }
}

/// `/dev/console` bound from the pty fd we were handed (or just allocated), onto a target opened without following
/// a final symlink and checked to be a regular file or a device (CVE-2025-52565).
fn console<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan, root: RawFd, slave: RawFd) {
    let (mut tbuf, mut sbuf) = ([0u8; 32], [0u8; 32]);
    match make_target(sys, root, &fs.console_path, true) {
        Ok(fd) => sys.close(fd),
        Err(e) => fail_with(sys, plan, Stage::Console, 0, e),
    }
    let t = sys.open_in_root(root, c"dev/console", libc::O_PATH | libc::O_NOFOLLOW);
    ok(sys, plan, t, Stage::Console, 0);
    match sys.fstat(t) {
        Ok(k) if k.kind == libc::S_IFREG || k.kind == libc::S_IFCHR => {}
        Ok(_) => fail_with(sys, plan, Stage::Console, 0, libc::EINVAL),
        Err(e) => fail_with(sys, plan, Stage::Console, 0, e),
    }
    let src = if slave >= 0 {
        // Of this mount namespace's devpts: bound through its fd.
        sys.dup(slave)
    } else {
        let src = sys.open(&fs.console_host, libc::O_PATH | libc::O_NOFOLLOW);
        ok(sys, plan, src, Stage::Console, 1);
        match (sys.fstat(src), sys.fstat(fs.console)) {
            (Ok(a), Ok(b)) if a.kind == libc::S_IFCHR && a.rdev == b.rdev => {}
            (Err(e), _) | (_, Err(e)) => fail_with(sys, plan, Stage::Console, 1, e),
            _ => fail_with(sys, plan, Stage::Console, 1, libc::EINVAL),
        }
        src
    };
    ok(sys, plan, src, Stage::Console, 1);
    let r = sys.mount(
        Some(fd_path(src, &mut sbuf)),
        fd_path(t, &mut tbuf),
        None,
        libc::MS_BIND,
        None,
    );
    sys.close(src);
    ok(sys, plan, r, Stage::Console, 0);
    sys.close(t);
}

/// Masked paths (a verified /dev/null over files, an empty read-only tmpfs over directories) and read-only paths.
fn masks<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan, root: RawFd) {
    let (mut tbuf, mut nbuf) = ([0u8; 32], [0u8; 32]);
    // A verified /dev/null to mask files with: opened once, checked to be the null device, then only ever used
    // through its fd (CVE-2025-31133: never re-resolve a path the container could swap for a symlink).
    let mut devnull = sys.open_in_root(root, c"dev/null", libc::O_PATH | libc::O_NOFOLLOW);
    if devnull < 0 || !is_null_device(sys, devnull) {
        sys.close(devnull);
        devnull = sys.open(c"/dev/null", libc::O_PATH);
        if devnull < 0 || !is_null_device(sys, devnull) {
            fail_with(sys, plan, Stage::DevNull, 0, libc::EINVAL);
        }
    }
    let npath = fd_path(devnull, &mut nbuf);
    for (i, p) in fs.masked.iter().enumerate() {
        let Some(t) = open_existing(sys, plan, root, &p.rel, Stage::Mask, i) else {
            continue;
        };
        let kind = match sys.fstat(t) {
            Ok(k) => k.kind,
            Err(e) => fail_with(sys, plan, Stage::Mask, i, e),
        };
        let tpath = fd_path(t, &mut tbuf);
        let r = match kind {
            libc::S_IFDIR => sys.mount(
                Some(c"tmpfs"),
                tpath,
                Some(c"tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some(c"size=0,mode=0555"),
            ),
            libc::S_IFLNK => 0,
            _ => sys.mount(Some(npath), tpath, None, libc::MS_BIND, None),
        };
        ok(sys, plan, r, Stage::Mask, i);
        sys.close(t);
    }
    sys.close(devnull);
    for (i, p) in fs.readonly.iter().enumerate() {
        let Some(t) = open_existing(sys, plan, root, &p.rel, Stage::Readonly, i) else {
            continue;
        };
        let tpath = fd_path(t, &mut tbuf);
        let r = sys.mount(Some(tpath), tpath, None, libc::MS_BIND | libc::MS_REC, None);
        ok(sys, plan, r, Stage::Readonly, i);
        sys.close(t);
        let t = sys.open_in_root(root, &p.rel, libc::O_PATH | libc::O_NOFOLLOW);
        ok(sys, plan, t, Stage::Readonly, i);
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | sys.mount_flags(t);
        ok(
            sys,
            plan,
            sys.mount(None, fd_path(t, &mut tbuf), None, flags, None),
            Stage::Readonly,
            i,
        );
        sys.close(t);
    }
}

/// An `O_PATH` fd to `rel` under the root, not following a final symlink; `None` if there is nothing there.
fn open_existing<S: Sys>(sys: &S, plan: &Plan, root: RawFd, rel: &CStr, stage: Stage, i: usize) -> Option<RawFd> {
    let t = sys.open_in_root(root, rel, libc::O_PATH | libc::O_NOFOLLOW);
    if t >= 0 {
        return Some(t);
    }
    match sys.errno() {
        libc::ENOENT => None,
        e => fail_with(sys, plan, stage, i, e),
    }
}

/// `pivot_root(".", ".")` into the root (the old root ends up stacked on the new one and is detached right away),
/// or `MS_MOVE` + `chroot` where that is impossible or asked for; then the read-only root.
fn enter_root<S: Sys>(sys: &S, plan: &Plan, fs: &FsPlan, root: RawFd) {
    ok(sys, plan, sys.fchdir(root), Stage::Pivot, 0);
    let pivoted = !fs.no_pivot && {
        let r = sys.pivot_root(c".", c".");
        // EINVAL: the current root cannot be pivoted away from (it is the initramfs): fall back to chroot.
        if r < 0 && sys.errno() != libc::EINVAL {
            fail_with(sys, plan, Stage::Pivot, 0, sys.errno());
        }
        r == 0
    };
    if pivoted {
        ok(sys, plan, sys.umount2(c".", libc::MNT_DETACH), Stage::Pivot, 1);
    } else {
        // Fallback (documented as weaker: a process with CAP_SYS_CHROOT can escape a chroot): move the rootfs
        // mount over / and chroot into it.
        ok(
            sys,
            plan,
            sys.mount(Some(c"."), c"/", None, libc::MS_MOVE, None),
            Stage::Pivot,
            3,
        );
        ok(sys, plan, sys.chroot(c"."), Stage::Pivot, 4);
    }
    ok(sys, plan, sys.chdir(c"/"), Stage::Pivot, 2);
    sys.close(root);
    if fs.root_readonly {
        let r = sys.open_in_root(libc::AT_FDCWD, c".", libc::O_PATH | libc::O_DIRECTORY);
        ok(sys, plan, r, Stage::RootReadonly, 0);
        let flags: c_ulong = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | sys.mount_flags(r);
        sys.close(r);
        ok(
            sys,
            plan,
            sys.mount(None, c"/", None, flags, None),
            Stage::RootReadonly,
            0,
        );
    }
}

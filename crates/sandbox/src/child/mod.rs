//! The container's child process: everything between `clone3` and `execve`.
//!
//! Fork safety: the parent may be multithreaded (tokio, test harnesses), so another thread may hold the allocator's
//! lock at the moment of the clone. Everything here therefore only reads a [`Plan`] prepared (allocated) by the parent
//! before the clone, and only makes raw system calls: no allocation, no locks, no panics, no glibc wrappers that
//! keep process-wide state (glibc's `setuid`/`setgroups` would signal the parent's threads, which do not exist here,
//! so the raw syscalls are used). Errors are written as a fixed-size record to a close-on-exec pipe; the parent turns
//! them into typed [`Error`](crate::Error)s.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::c_int;

use crate::plan::Plan;
use crate::report::{REPORT_LEN, Report, Stage};
use crate::sys::{Kernel, Sys};

mod creds;
mod exec;
mod fs;
mod init;
mod keyring;
mod net;
#[cfg(test)]
mod tests;
mod tty;

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

/// [`Sys::open_in_root`] for the steps that are not generic (terminal, working directory).
fn open_in_root(dirfd: RawFd, path: &CStr, flags: c_int) -> c_int {
    Kernel.open_in_root(dirfd, path, flags)
}

fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: closing an fd this process owns.
        unsafe { libc::close(fd) };
    }
}

/// Close every fd but `keep` (sorted): `close_range` over the gaps. Where the kernel lacks it (before 5.9) the fds
/// stay open until `execve`, which closes them (they are all marked close-on-exec below).
fn close_all_but(keep: &[RawFd]) {
    let mut next: u32 = 0;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            // SAFETY: closes fds of this process only (no CLONE_FILES: the parent's table is its own).
            unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0) };
        }
        next = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, next, u32::MAX, 0) };
}

/// Runs in the child right after `clone3`. Never returns.
pub(crate) fn run(plan: &Plan) -> ! {
    let k = Kernel;
    // No signal handler of the parent may run here: block everything until just before exec.
    k.block_signals();
    // Non-dumpable until execve: processes in the container cannot open /proc/PID/exe (the host binary,
    // CVE-2019-5736) or ptrace us while we still run host code. execve makes the new program dumpable again.
    k.set_dumpable(false);
    close_all_but(&plan.keep_fds);
    if k.read_byte(plan.sync_r) != 1 {
        // The parent gave up (it failed to set us up and closed the pipe).
        k.exit(1);
    }
    k.close(plan.sync_r);

    // Into the container's cgroup before anything else, so everything from here on is accounted and limited
    // there, and before a new cgroup namespace is made (its root is the cgroup we are in).
    for (i, fd) in plan.cgroup_tasks.iter().enumerate() {
        let r = k.write(*fd, b"0");
        if r != 1 {
            fail(plan, Stage::CgroupJoin, i, if r < 0 { errno() } else { libc::EIO });
        }
        k.close(*fd);
    }

    creds::enter(&k, plan);
    if let Some(name) = &plan.keyring {
        keyring::join_keyring(plan, name);
    }
    if plan.loopback_up {
        net::loopback_up(plan);
    }
    // Opened while the host's /proc is still in place; written just before no_new_privs, as runc does.
    let apparmor_attr = match &plan.apparmor {
        Some(_) => {
            let mut fd = k.open(c"/proc/thread-self/attr/apparmor/exec", libc::O_WRONLY);
            if fd < 0 {
                fd = k.open(c"/proc/thread-self/attr/exec", libc::O_WRONLY);
            }
            check(plan, fd, Stage::AppArmor, 0);
            fd
        }
        None => -1,
    };
    let mut pty_slave = plan.pty_slave;
    if let Some(fs) = &plan.fs {
        let s = fs::setup_fs(&k, plan, fs);
        if s >= 0 {
            pty_slave = s;
        }
    } else if plan.pty_sock >= 0 {
        // exec: already in the container's mount namespace and root.
        let root = k.open(c"/", libc::O_PATH | libc::O_DIRECTORY);
        check(plan, root, Stage::Console, 2);
        pty_slave = tty::alloc_pty(plan, root);
        k.close(root);
    }
    for (i, (res, lim)) in plan.rlimits.iter().enumerate() {
        check(plan, k.setrlimit(*res, lim), Stage::Rlimit, i);
    }
    k.setsid();
    let mut stdio = plan.stdio;
    if pty_slave >= 0 {
        check(plan, k.set_controlling_tty(pty_slave), Stage::Tty, 0);
        stdio = [pty_slave; 3];
    }
    for (target, src) in stdio.iter().enumerate() {
        if *src >= 0 {
            check(plan, k.dup2(*src, target as c_int), Stage::Stdio, target);
        }
    }
    for (i, src) in plan.extra.iter().enumerate() {
        check(plan, k.dup2(*src, 3 + i as c_int), Stage::Stdio, 3 + i);
    }
    // CVE-2024-21626: no fd of the parent survives exec; and the cwd is resolved inside the root below, so a
    // leaked directory fd cannot become the working directory.
    k.cloexec_from(3 + plan.extra.len() as u32);

    k.umask(plan.umask);
    let cwd_root = k.open(c"/", libc::O_PATH | libc::O_DIRECTORY);
    check(plan, cwd_root, Stage::Cwd, 0);
    let cwd = k.open_in_root(cwd_root, &plan.cwd.rel, libc::O_PATH | libc::O_DIRECTORY);
    if cwd < 0 {
        fail(plan, Stage::Cwd, 0, errno());
    }
    k.close(cwd_root);
    check(plan, k.fchdir(cwd), Stage::Cwd, 0);
    k.close(cwd);
    // Outside the root (a leaked fd's directory) getcwd says "(unreachable)" or ENOENT.
    match k.cwd_reachable() {
        Ok(true) => {}
        Ok(false) => fail(plan, Stage::Cwd, 0, libc::ENOENT),
        Err(e) => fail(plan, Stage::Cwd, 0, e),
    }

    creds::drop_bounding(&k, plan);
    if !plan.no_new_privs {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which we still have here.
        load_seccomp(plan);
    }
    creds::switch_user(&k, plan);
    if let Some(attr) = &plan.apparmor {
        let bytes = attr.as_bytes();
        if k.write(apparmor_attr, bytes) != bytes.len() as isize {
            fail(plan, Stage::AppArmor, 1, errno());
        }
        k.close(apparmor_attr);
    }
    if plan.no_new_privs {
        check(plan, k.set_no_new_privs(), Stage::NoNewPrivs, 0);
        load_seccomp(plan);
    }

    if plan.hold_fifo >= 0 {
        // Like runc, `create` fails when the program cannot be executed, rather than a later `start`: checked
        // with the container's own credentials, already in place.
        exec::check_executable(plan);
        report(plan.err_w, Stage::Ready, 0, 0);
        if k.read_byte(plan.hold_fifo) != 1 {
            fail(plan, Stage::Hold, 0, errno());
        }
        k.close(plan.hold_fifo);
    }
    if plan.init {
        init::reaper(plan);
    }
    exec::exec(plan)
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

#[cfg(test)]
mod stage_tests {
    use super::Stage;
    use super::keyring::describe_perm;

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

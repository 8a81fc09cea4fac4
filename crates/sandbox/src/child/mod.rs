//! The container's child process: everything between `clone3` and `execve`.
//!
//! Fork safety: the parent may be multithreaded (tokio, test harnesses), so another thread may hold the allocator's
//! lock at the moment of the clone. Everything here therefore only reads a [`Plan`] prepared (allocated) by the parent
//! before the clone, and only makes raw system calls: no allocation, no locks, no panics, no glibc wrappers that
//! keep process-wide state (glibc's `setuid`/`setgroups` would signal the parent's threads, which do not exist here,
//! so the raw syscalls are used). Errors are written as a fixed-size record to a close-on-exec pipe; the parent turns
//! them into typed [`Error`](crate::Error)s.

use std::os::fd::RawFd;

use libc::c_int;

use crate::plan::Plan;
use crate::report::{Report, Stage};
use crate::sys::{Kernel, Sys};

mod creds;
mod exec;
#[cfg(test)]
mod failures;
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

/// Tell the parent how far the child got (`Mounted`, `Ready`) through the error pipe.
fn report<S: Sys>(sys: &S, plan: &Plan, stage: Stage) {
    sys.write(plan.err_w, &Report::new(stage, 0, 0).to_bytes());
}

/// The step failed: report it through the error pipe and end the child (the recording double unwinds with the
/// report instead, for the tests to catch).
fn fail_with<S: Sys>(sys: &S, plan: &Plan, stage: Stage, index: usize, err: i32) -> ! {
    sys.exit_failed(plan.err_w, &Report::new(stage, index, err))
}

/// [`fail_with`] for the steps only the kernel makes.
fn fail(plan: &Plan, stage: Stage, index: usize, err: i32) -> ! {
    fail_with(&Kernel::default(), plan, stage, index, err)
}

/// A C library call's result `r` must not be negative, else the step fails with `errno`.
fn check(plan: &Plan, r: c_int, stage: Stage, index: usize) {
    if r < 0 {
        fail(plan, stage, index, errno());
    }
}

/// A [`Sys`] call's result `r` must not be negative, else the step fails with the call's error.
fn ok<S: Sys>(sys: &S, plan: &Plan, r: c_int, stage: Stage, index: usize) {
    if r < 0 {
        fail_with(sys, plan, stage, index, sys.errno());
    }
}

fn close(fd: RawFd) {
    Kernel::default().close(fd);
}

/// Close every fd but `keep` (sorted): `close_range` over the gaps. Where the kernel lacks it (before 5.9) the fds
/// stay open until `execve`, which closes them (they are all marked close-on-exec below).
fn close_all_but(k: &Kernel, keep: &[RawFd]) {
    let mut next: u32 = 0;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            k.close_range(next, fd - 1);
        }
        next = fd + 1;
    }
    k.close_range(next, u32::MAX);
}

/// Runs in the child right after `clone3`. Never returns.
pub(crate) fn run(plan: &Plan) -> ! {
    let k = Kernel::default();
    // No signal handler of the parent may run here: block everything until just before exec.
    k.block_signals();
    close_all_but(&k, &plan.keep_fds);
    if k.read_byte(plan.sync_r) != 1 {
        // The parent gave up (it failed to set us up and closed the pipe).
        k.exit(1);
    }
    k.close(plan.sync_r);
    // Non-dumpable until execve: processes in the container cannot open /proc/PID/exe (the host binary,
    // CVE-2019-5736) or ptrace us while we still run host code. execve makes the new program dumpable again.
    // Not before the parent is done with us: a non-dumpable process's /proc files belong to root, and an
    // unprivileged parent writes our user namespace's uid_map, setgroups and gid_map there (rootless). Until then
    // no process of the container exists to reach us.
    k.set_dumpable(false);

    // Into the container's cgroup before anything else, so everything from here on is accounted and limited
    // there, and before a new cgroup namespace is made (its root is the cgroup we are in).
    for (i, fd) in plan.cgroup_tasks.iter().enumerate() {
        let r = k.write(*fd, b"0");
        if r != 1 {
            fail(plan, Stage::CgroupJoin, i, if r < 0 { k.errno() } else { libc::EIO });
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
            ok(&k, plan, fd, Stage::AppArmor, 0);
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
        ok(&k, plan, root, Stage::Console, 2);
        pty_slave = tty::alloc_pty(&k, plan, root);
        k.close(root);
    }
    for (i, (res, lim)) in plan.rlimits.iter().enumerate() {
        ok(&k, plan, k.setrlimit(*res, lim), Stage::Rlimit, i);
    }
    k.setsid();
    let mut stdio = plan.stdio;
    if pty_slave >= 0 {
        ok(&k, plan, k.set_controlling_tty(pty_slave), Stage::Tty, 0);
        stdio = [pty_slave; 3];
    }
    for (target, src) in stdio.iter().enumerate() {
        if *src >= 0 {
            ok(&k, plan, k.dup2(*src, target as c_int), Stage::Stdio, target);
        }
    }
    for (i, src) in plan.extra.iter().enumerate() {
        ok(&k, plan, k.dup2(*src, 3 + i as c_int), Stage::Stdio, 3 + i);
    }
    // CVE-2024-21626: no fd of the parent survives exec; and the cwd is resolved inside the root below, so a
    // leaked directory fd cannot become the working directory.
    k.cloexec_from(3 + plan.extra.len() as u32);

    k.umask(plan.umask);
    let cwd_root = k.open(c"/", libc::O_PATH | libc::O_DIRECTORY);
    ok(&k, plan, cwd_root, Stage::Cwd, 0);
    let cwd = k.open_in_root(cwd_root, &plan.cwd.rel, libc::O_PATH | libc::O_DIRECTORY);
    ok(&k, plan, cwd, Stage::Cwd, 0);
    k.close(cwd_root);
    ok(&k, plan, k.fchdir(cwd), Stage::Cwd, 0);
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
            fail(plan, Stage::AppArmor, 1, k.errno());
        }
        k.close(apparmor_attr);
    }
    if plan.no_new_privs {
        ok(&k, plan, k.set_no_new_privs(), Stage::NoNewPrivs, 0);
        load_seccomp(plan);
    }

    if plan.hold_fifo >= 0 {
        // Like runc, `create` fails when the program cannot be executed, rather than a later `start`: checked
        // with the container's own credentials, already in place.
        exec::check_executable(plan);
        report(&k, plan, Stage::Ready);
        if k.read_byte(plan.hold_fifo) != 1 {
            fail(plan, Stage::Hold, 0, k.errno());
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
            Stage::RootMount,
            Stage::Mounted,
            Stage::Ready,
        ] {
            assert_eq!(Stage::from_u32(stage as u32), Some(stage));
        }
        assert_eq!(Stage::Sync as u32, 1);
        assert_eq!(Stage::Ready as u32, 99);
        assert_eq!(Stage::from_u32(0), None);
        assert_eq!(Stage::from_u32(Stage::RootMount as u32 + 1), None);
    }
}

//! [`Container::exec`] and [`StateDir::exec`]: another process in a running container.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use oci_spec::runtime::{Process, Spec};

use crate::cgroup::Cgroup;
use crate::clone::{clone_child, settle};
use crate::error::{Error, Result};
use crate::filter::resolve_seccomp;
use crate::namespaces;
use crate::options::DefaultSeccomp;
use crate::plan::PlanBuilder;
use crate::prepare;
use crate::process::ProcessHandle;
use crate::report::{read_report, report_error};
use crate::seccomp::SeccompProgram;
use crate::spawn::session_keyring;
use crate::state::{self, StateDir};
use crate::stdio::StdioConfig;

/// The container a process is exec'd into.
pub(crate) struct Target<'a> {
    /// Its id (names its session keyring).
    pub id: &'a str,
    /// It kept its creator's session keyring.
    pub no_new_keyring: bool,
    /// Its first process, whose namespaces the new one joins.
    pub pid: i32,
    /// That process's pidfd.
    pub pidfd: &'a OwnedFd,
    /// Its cgroup.
    pub cgroup: &'a Cgroup,
    /// Its spec (capabilities, AppArmor profile and OOM score default from it).
    pub spec: &'a Spec,
    /// Its seccomp filter.
    pub seccomp: Option<SeccompProgram>,
}

/// `exec` into the container `t`: see [`Container::exec`](crate::Container::exec).
pub(crate) fn exec_into(t: Target<'_>, process: &Process, stdio: StdioConfig) -> Result<ProcessHandle> {
    let Target {
        id,
        no_new_keyring,
        pid,
        pidfd,
        cgroup,
        spec,
        seccomp,
    } = t;
    let mut process = process.clone();
    if process.capabilities().is_none() {
        process.set_capabilities(spec.process().as_ref().and_then(|p| p.capabilities().clone()));
    }
    if process.apparmor_profile().is_none() {
        process.set_apparmor_profile(spec.process().as_ref().and_then(|p| p.apparmor_profile().clone()));
    }
    // The container's OOM score, as runc gives exec'd processes.
    if process.oom_score_adj().is_none() {
        process.set_oom_score_adj(spec.process().as_ref().and_then(|p| p.oom_score_adj()));
    }
    prepare::check_process_supported(&process)?;
    let pp = prepare::proc_plan(&process)?;
    let target = pid.to_string();
    let mut flags = 0;
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ] {
        let name = namespaces::name(flag);
        if namespaces::inode("self", name) != namespaces::inode(&target, name) {
            flags |= flag;
        }
    }
    let pid_ns = if namespaces::inode("self", "pid") != namespaces::inode(&target, "pid") {
        let p = format!("/proc/{pid}/ns/pid");
        Some(OwnedFd::from(File::open(&p).map_err(Error::io("open namespace", &p))?))
    } else {
        None
    };
    // A thread of ours can join the pid namespace only with privilege over it: an unprivileged caller's child
    // joins it together with the user namespace, then forks once more into it.
    let fork = pid_ns.is_some() && !rustix::process::geteuid().is_root();
    let mut b = PlanBuilder::new(spec, &process, &pp, stdio, seccomp)?;
    let fork_pipe = if fork {
        flags |= libc::CLONE_NEWPID;
        let (r, w) = crate::fds::pipe()?;
        b.plan.fork_w = b.keep(&w)?;
        Some((r, w))
    } else {
        None
    };
    b.join(pidfd, flags)?;
    let cg_join = cgroup.join_fds()?;
    b.cgroup(&cg_join)?;
    // The container's own keyring, when it has one (joining the name creates it otherwise, as runc).
    if !no_new_keyring {
        b.plan.keyring = Some(session_keyring(id)?);
    }
    let (plan, mut io, parent) = b.finish();
    let thread_joins: Vec<(&OwnedFd, libc::c_int)> = pid_ns
        .iter()
        .filter(|_| !fork)
        .map(|f| (f, libc::CLONE_NEWPID))
        .collect();
    let (cpid, pidfd, in_cgroup) = clone_child(&plan, 0, &thread_joins, cg_join.v2_dir.as_ref())?;
    drop(parent.fds);
    let (sync_w, err_r) = (parent.sync_w, parent.err_r);
    let [i, o, e] = std::mem::take(&mut io.parent_ends);
    let mut handle = ProcessHandle {
        pid: cpid,
        pidfd,
        status: None,
        stdin: i,
        stdout: o,
        stderr: e,
        pty_master: None,
        detached: false,
    };
    settle(cgroup, cpid, in_cgroup, process.oom_score_adj())?;
    let mut sync_w = File::from(sync_w);
    std::io::Write::write_all(&mut sync_w, &[1]).map_err(Error::os("release exec child"))?;
    drop(sync_w);
    if let Some((fork_r, fork_w)) = fork_pipe {
        drop(fork_w);
        let mut pid = [0u8; 4];
        // Nothing comes when the go-between failed before its fork: its report says why, below.
        if std::io::Read::read_exact(&mut File::from(fork_r), &mut pid).is_ok() {
            let _ = handle.wait();
            let pid = i32::from_ne_bytes(pid);
            // Our child (CLONE_PARENT), not yet waited for: the pid cannot have been reused.
            let fd = rustix::process::pidfd_open(
                rustix::process::Pid::from_raw(pid)
                    .ok_or_else(|| Error::os("exec child's pid")(std::io::ErrorKind::InvalidData.into()))?,
                rustix::process::PidfdFlags::empty(),
            )
            .map_err(|e| Error::os("pidfd_open the exec child")(e.into()))?;
            handle.pid = pid;
            handle.pidfd = fd;
            handle.status = None;
        }
    }
    if let Some(r) = read_report(&mut File::from(err_r))? {
        let _ = handle.wait();
        return Err(report_error(r, &pp, &cg_join, None));
    }
    handle.pty_master = io.take_master()?;
    Ok(handle)
}

impl StateDir {
    /// Run another process in container `id` from any process (like `runc exec`): the container's spec and seccomp
    /// choice are read from the state directory; the new process is a child of the caller.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if its first process is gone (or its pid was reused); as
    /// [`Container::exec`](crate::Container::exec).
    pub fn exec(&self, id: &str, process: &Process, stdio: StdioConfig) -> Result<ProcessHandle> {
        let st = self.load(id)?;
        let spec_path = self.dir(id).join("config.json");
        let spec = Spec::load(&spec_path).map_err(|e| Error::State {
            id: id.to_owned(),
            reason: format!("{}: {e}", spec_path.display()),
        })?;
        // SAFETY: pidfd_open has no memory arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) };
        if fd < 0 {
            return Err(Error::NotRunning { id: id.to_owned() });
        }
        // SAFETY: a new fd owned by us.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // Checked after opening the pidfd: if the start time still matches, the pidfd names our process.
        if state::pid_start_time(st.pid) != Some(st.pid_start_time) {
            return Err(Error::NotRunning { id: id.to_owned() });
        }
        let default = if st.seccomp_unconfined {
            DefaultSeccomp::Unconfined
        } else {
            DefaultSeccomp::Docker
        };
        let seccomp = resolve_seccomp(&spec, default, st.seccomp_cache.as_deref())?;
        let target = Target {
            id,
            no_new_keyring: st.no_new_keyring,
            pid: st.pid,
            pidfd: &pidfd,
            cgroup: &st.cgroup,
            spec: &spec,
            seccomp,
        };
        exec_into(target, process, stdio)
    }
}

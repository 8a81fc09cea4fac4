//! The plan of a container's child: everything it needs between `clone3` and `execve`, prepared (allocated) by the
//! parent, and [`PlanBuilder`], the one way spawn and exec make it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use libc::{c_char, c_int, c_ulong};
use oci_spec::runtime::{Process, Spec};

use crate::caps::{self, CapMasks};
use crate::cgroup::JoinFds;
use crate::error::Result;
use crate::fds::{ChildFds, high, pipe};
use crate::namespaces::Namespaces;
use crate::prepare::ProcPlan;
use crate::seccomp::SeccompProgram;
use crate::stdio::{StdioConfig, StdioSetup, has_devpts, setup_stdio};

/// A path inside the container, prepared for walking relative to the root without allocating.
#[derive(Clone, Debug)]
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
    /// The spec's destination, named in errors.
    pub dest: PathBuf,
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
    /// The node's path in the container (a default one or the spec's), named in errors.
    pub dest: PathBuf,
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
    /// And /dev/core, where the host has a /proc/kcore (runc's rule).
    pub dev_core: bool,
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
    /// A filesystem to mount on `rootfs` first ([`SpawnOptions::root_mount`](crate::SpawnOptions::root_mount)).
    pub root_mount: Option<RootMountOp>,
}

/// [`RootMount`](crate::RootMount) as the child's calls take it: the type, and each parameter's key and value
/// (`None` for a flag).
#[derive(Debug)]
pub(crate) struct RootMountOp {
    pub fstype: CString,
    pub params: Vec<(CString, Option<CString>)>,
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
    /// What `argv` and `envp` point into: kept, never read.
    #[allow(dead_code)]
    pub args: Vec<CString>,
    #[allow(dead_code)]
    pub env: Vec<CString>,
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
    /// Fork once more after joining the namespaces (a joined pid namespace holds only children): the new process,
    /// made a child of the caller's process (`CLONE_PARENT`), goes on; this one writes its pid (4 bytes, native
    /// order) to this fd and exits. -1: no fork. How an unprivileged caller enters a rootless container's pid
    /// namespace, which only a process inside its user namespace may join and a thread of the caller cannot enter.
    pub fork_w: RawFd,
    /// The only fds the child keeps (sorted): 0, 1, 2 and those handed to it. Every other fd it inherited from the
    /// caller (a lock, a socket, a pipe of another child) is closed first thing, not only at `execve`: a created
    /// container waiting to be started, or a frozen one, must not hold them.
    pub keep_fds: Vec<RawFd>,
}

// SAFETY: the raw pointers in argv/envp point into the CStrings of `args`/`env`, owned by the plan itself (their
// heap buffers do not move with it), and are only read.
unsafe impl Send for Plan {}
unsafe impl Sync for Plan {}

/// Builds a [`Plan`]: the process part from a [`ProcPlan`], the standard streams and the two pipes at once; the
/// namespace, filesystem and lifecycle parts (none by default) set by spawn or exec. Every fd the child gets is
/// kept here until the clone ([`PlanBuilder::finish`]).
pub(crate) struct PlanBuilder {
    /// The plan so far; spawn and exec set their parts directly.
    pub plan: Plan,
    /// The standard streams' setup (the caller's ends, the terminal).
    pub io: StdioSetup,
    fds: ChildFds,
    /// The first fd number above those the child fills in (0, 1, 2 and the extra fds).
    base: RawFd,
    sync_w: OwnedFd,
    err_r: OwnedFd,
}

/// What the parent keeps of a built plan: the fds to close right after the clone, and its ends of the pipes.
pub(crate) struct ParentSide {
    /// Close after the clone.
    pub fds: ChildFds,
    /// One byte releases the child.
    pub sync_w: OwnedFd,
    /// The child's reports.
    pub err_r: OwnedFd,
}

impl PlanBuilder {
    /// The plan of `process` (prepared as `pp`) with the standard streams `stdio`, filtered by `seccomp`.
    ///
    /// # Errors
    /// When a pipe, terminal or fd cannot be made.
    pub(crate) fn new(
        spec: &Spec,
        process: &Process,
        pp: &ProcPlan,
        stdio: StdioConfig,
        seccomp: Option<SeccompProgram>,
    ) -> Result<PlanBuilder> {
        let mut fds = ChildFds::default();
        let console = process.console_size().map(|b| (b.height(), b.width()));
        let mut io = setup_stdio(
            stdio,
            process.terminal().unwrap_or(false),
            console,
            has_devpts(spec),
            &mut fds,
        )?;
        let base = 3 + io.extra.len() as RawFd;
        let (sync_r, sync_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let args = pp.args.clone();
        let env = pp.env.clone();
        let argv = args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        let envp = env.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
        let plan = Plan {
            sync_r: fds.keep(high(sync_r.as_raw_fd(), base)?),
            err_w: fds.keep(high(err_w.as_raw_fd(), base)?),
            stdio: io.sources,
            extra: std::mem::take(&mut io.extra),
            pty_slave: io.pty_slave,
            pty_sock: io.pty_sock,
            winsize: io.winsize,
            join: Vec::new(),
            unshare: 0,
            new_userns: false,
            fs: None,
            rlimits: pp.rlimits.clone(),
            uid: pp.uid,
            gid: pp.gid,
            groups: pp.groups.clone(),
            caps: pp.caps,
            last_cap: caps::last_cap(),
            no_new_privs: pp.no_new_privs,
            umask: pp.umask,
            seccomp,
            cwd: pp.cwd.clone(),
            exec_paths: pp.exec_paths.clone(),
            argv,
            envp,
            args,
            env,
            init: false,
            hold_fifo: -1,
            cgroup_tasks: Vec::new(),
            keyring: None,
            keyring_perm_add: 0,
            pause_r: -1,
            apparmor: pp.apparmor.clone(),
            loopback_up: false,
            fork_w: -1,
            keep_fds: Vec::new(),
        };
        Ok(PlanBuilder {
            plan,
            io,
            fds,
            base,
            sync_w,
            err_r,
        })
    }

    /// Hand `fd` to the child (a copy above the numbers it fills in); the number it has there.
    ///
    /// # Errors
    /// When it cannot be duplicated.
    pub(crate) fn keep(&mut self, fd: &impl AsRawFd) -> Result<RawFd> {
        Ok(self.fds.keep(high(fd.as_raw_fd(), self.base)?))
    }

    /// The child joins namespace `fd` (of type `flag`, or 0 for a pidfd's several), after those added before.
    ///
    /// # Errors
    /// As [`PlanBuilder::keep`].
    pub(crate) fn join(&mut self, fd: &OwnedFd, flag: c_int) -> Result<()> {
        let n = self.keep(fd)?;
        self.plan.join.push((n, flag));
        Ok(())
    }

    /// The namespaces of a new container: the child joins the user namespace, then (inside a joined user namespace)
    /// the others, then the mount namespace (a thread of a multithreaded process cannot change its mount namespace;
    /// runc joins it last too), and makes the new ones. Returns the namespaces the helper thread joins before the
    /// clone (pid always; net, ipc, uts and cgroup unless a user namespace is joined first).
    ///
    /// # Errors
    /// As [`PlanBuilder::keep`].
    pub(crate) fn namespaces<'a>(&mut self, ns: &'a Namespaces) -> Result<Vec<(&'a OwnedFd, c_int)>> {
        if let Some(u) = &ns.join_user {
            self.join(u, libc::CLONE_NEWUSER)?;
        }
        let mut thread_joins: Vec<(&OwnedFd, c_int)> = ns.pid_ns.iter().map(|f| (f, libc::CLONE_NEWPID)).collect();
        for (fd, flag) in &ns.join_other {
            if ns.join_user.is_none() {
                thread_joins.push((fd, *flag));
            } else {
                self.join(fd, *flag)?;
            }
        }
        if let Some(m) = &ns.join_mount {
            self.join(m, libc::CLONE_NEWNS)?;
        }
        self.plan.unshare = ns.unshare;
        self.plan.new_userns = ns.new_userns;
        Ok(thread_joins)
    }

    /// The child enters its cgroup by itself through these (v1 `tasks` files).
    ///
    /// # Errors
    /// As [`PlanBuilder::keep`].
    pub(crate) fn cgroup(&mut self, join: &JoinFds) -> Result<()> {
        self.plan.cgroup_tasks = self.fds.keep_tasks(join, self.base)?;
        Ok(())
    }

    /// The plan, and what the parent keeps.
    pub(crate) fn finish(mut self) -> (Plan, StdioSetup, ParentSide) {
        self.plan.keep_fds = self.fds.numbers();
        (
            self.plan,
            self.io,
            ParentSide {
                fds: self.fds,
                sync_w: self.sync_w,
                err_r: self.err_r,
            },
        )
    }
}

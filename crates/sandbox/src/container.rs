//! [`Container`]: spawn, wait, kill, exec, processes, stats.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process, Spec};

use crate::bpf_cache;
use crate::caps;
use crate::cgroup::{Cgroup, CgroupDriver, CgroupVersion, JoinFds, Stats};
use crate::child::{self, Plan, REPORT_LEN, Report, Stage};
use crate::error::{Error, Result};
use crate::prepare::{self, ProcPlan};
use crate::seccomp::{self, KernelVersion, SeccompProgram};
use crate::state::{self, ContainerState, StateDir};

/// Where one of the container's standard streams comes from or goes to.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe; the caller's end is available from the container ([`Container::take_stdout`], ...).
    Piped,
    /// A file descriptor the caller owns (a file, a socket, a pipe end).
    Fd(OwnedFd),
}

impl From<File> for Stdio {
    fn from(f: File) -> Self {
        Stdio::Fd(f.into())
    }
}

impl From<OwnedFd> for Stdio {
    fn from(f: OwnedFd) -> Self {
        Stdio::Fd(f)
    }
}

/// The standard streams of a container's process, plus extra fds passed in as 3, 4, ...
#[derive(Debug, Default)]
pub struct StdioConfig {
    /// fd 0.
    pub stdin: Stdio,
    /// fd 1.
    pub stdout: Stdio,
    /// fd 2.
    pub stderr: Stdio,
    /// Passed to the container as fds 3, 4, ... in order; every other fd is closed.
    pub extra_fds: Vec<OwnedFd>,
}

impl StdioConfig {
    /// All three streams inherited from the caller.
    pub fn inherit() -> Self {
        StdioConfig::default()
    }
    /// stdin from /dev/null, stdout and stderr piped back to the caller.
    pub fn piped() -> Self {
        StdioConfig {
            stdin: Stdio::Null,
            stdout: Stdio::Piped,
            stderr: Stdio::Piped,
            extra_fds: Vec::new(),
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(c) => Some(c),
            ExitStatus::Signaled(_) => None,
        }
    }
    /// The signal, if it was killed by one.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(s) => Some(s),
            ExitStatus::Exited(_) => None,
        }
    }
}

/// The end of a container: how its first process ended, and what else is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// How the container's first process ended.
    pub status: ExitStatus,
    /// Processes of the container the kernel's OOM killer killed (from the cgroup's counter).
    pub oom_kills: u64,
    /// The container was killed because its wall-clock timeout expired.
    pub timed_out: bool,
}

/// Which seccomp filter a container gets when its spec has no `linux.seccomp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultSeccomp {
    /// Docker's default profile, resolved for the container's capabilities (the default).
    #[default]
    Docker,
    /// No filter.
    Unconfined,
}

/// A callback run while a new container's process waits with its mounts in place, before `pivot_root`: the point
/// where the OCI runtime spec runs `createRuntime` (on the host) and `createContainer` (in the container's
/// namespaces) hooks. It gets the process's host pid (its namespaces are `/proc/PID/ns/*`); the container's state,
/// when kept in a state directory, says [`Status::Creating`](crate::Status::Creating) meanwhile. An `Err` removes
/// the container and makes the spawn fail with [`Error::BeforePivot`].
pub struct BeforePivot(pub Box<dyn FnOnce(i32) -> std::result::Result<(), String> + Send>);

impl std::fmt::Debug for BeforePivot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforePivot(..)")
    }
}

/// Options for [`Container::spawn_with`].
#[derive(Debug, Default)]
pub struct SpawnOptions {
    /// The container id (default: `wharf-PID-N`). Names the cgroup (`wharf/ID` unless the spec has a
    /// `linux.cgroupsPath`) and the state directory entry.
    pub id: Option<String>,
    /// Persist state under this directory so other processes can find the container.
    pub state_dir: Option<PathBuf>,
    /// Run a minimal init as pid 1 that reaps orphans and forwards signals (`docker run --init`).
    pub init: bool,
    /// Set everything up but wait before `execve` until [`Container::start`] (or [`StateDir::start`]).
    pub created_only: bool,
    /// Seccomp when the spec has none (default: Docker's profile).
    pub default_seccomp: DefaultSeccomp,
    /// Enter the rootfs with `MS_MOVE` + `chroot` instead of `pivot_root` (runc's `--no-pivot`), for roots that
    /// cannot be pivoted (a ramfs). Weaker: a process with `CAP_SYS_CHROOT` can escape a chroot. Used
    /// automatically when `pivot_root` says `EINVAL`.
    pub no_pivot: bool,
    /// The cgroup hierarchy to use (default: [`CgroupDriver::detect`]), e.g. a cgroup2 mount on a hybrid host.
    pub cgroup_driver: Option<CgroupDriver>,
    /// Keep compiled seccomp programs in this directory, so that the next process that starts a container with the
    /// same profile does not compile it again (10 to 20 ms for Docker's profile). It is created 0700 when missing,
    /// and must belong to the caller and not be writable by anyone else: its programs become containers' filters.
    /// [`DEFAULT_SECCOMP_CACHE`] is the conventional place for root. Default: compile in each process (compiled
    /// programs are always kept in memory for the life of the process).
    pub seccomp_cache: Option<PathBuf>,
    /// Pause before `pivot_root` and run this (see [`BeforePivot`]).
    pub before_pivot: Option<BeforePivot>,
    /// Keep the caller's session keyring (runc's `--no-new-keyring`). By default the container's process joins a
    /// session keyring of its own, `_ses.ID`, so keys of the caller's session are not reachable from it;
    /// processes exec'd into the container join the same one.
    pub no_new_keyring: bool,
    /// Bring the loopback interface `lo` up when the container gets a network namespace of its own (not one joined
    /// by path, not the host's), as Docker and podman do. runc leaves it down, and so does the default.
    pub loopback_up: bool,
}

/// Where the examples keep compiled seccomp programs (see [`SpawnOptions::seccomp_cache`]): on the tmpfs `/run`, so
/// the cache starts empty after every boot.
pub const DEFAULT_SECCOMP_CACHE: &str = "/run/wharf/seccomp";

/// A process that runs in the container (its first process or one added with [`Container::exec`]).
#[derive(Debug)]
pub struct ProcessHandle {
    pid: i32,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
    /// Caller's end of a piped stdin.
    pub stdin: Option<File>,
    /// Caller's end of a piped stdout.
    pub stdout: Option<File>,
    /// Caller's end of a piped stderr.
    pub stderr: Option<File>,
    /// The pty master when `process.terminal` is set.
    pub pty_master: Option<File>,
    /// Let go of by [`ProcessHandle::detach`]: not killed on drop.
    detached: bool,
}

impl ProcessHandle {
    /// Let the process go: it keeps running after the handle is gone (dropping a handle kills a process that was
    /// not waited for). It stays a child of this process, so reaping it is the caller's business: `waitpid` on
    /// [`pid`](ProcessHandle::pid), or exit and let init or a subreaper (such as containerd's shim) adopt it, as a
    /// runtime CLI does. Until it is reaped, a container whose pid namespace it is in cannot finish exiting.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Send `signal` (through the pidfd: never to a recycled pid).
    ///
    /// # Errors
    /// [`Error::Os`] if the process is gone or the signal is invalid.
    pub fn kill(&self, signal: i32) -> Result<()> {
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            Err(Error::Os {
                what: "pidfd_send_signal",
                source: std::io::Error::last_os_error(),
            })
        } else {
            Ok(())
        }
    }

    /// Wait for the process to end (or `None` if `timeout` passes first).
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        if let Some(t) = timeout {
            let deadline = Instant::now() + t;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut pfd = libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut pfd, 1, ms) };
                if r > 0 {
                    break;
                }
                if r == 0 {
                    return Ok(None);
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(Error::Os {
                        what: "poll pidfd",
                        source: e,
                    });
                }
            }
        }
        loop {
            // SAFETY: zeroed siginfo is a valid out-parameter; P_PIDFD with our pidfd.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Os {
                    what: "waitid",
                    source: e,
                });
            }
            // SAFETY: waitid filled a SIGCHLD siginfo.
            let st = unsafe { info.si_status() };
            let s = if info.si_code == libc::CLD_EXITED {
                ExitStatus::Exited(st)
            } else {
                ExitStatus::Signaled(st)
            };
            self.status = Some(s);
            return Ok(Some(s));
        }
    }

    /// Wait for the process to end.
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        self.wait_timeout(None)?.ok_or_else(|| Error::Os {
            what: "waitid",
            source: std::io::ErrorKind::Other.into(),
        })
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        if self.status.is_none() && !self.detached {
            let _ = self.kill(libc::SIGKILL);
            let _ = self.wait();
        }
    }
}

/// One running (or created) container.
///
/// Dropping a `Container` that was not waited for kills it and cleans up (cgroup, state), unless it was
/// [`detach`](Container::detach)ed.
#[derive(Debug)]
pub struct Container {
    id: String,
    process: ProcessHandle,
    cgroup: Cgroup,
    state_dir: Option<StateDir>,
    start_pipe: Option<File>,
    error_pipe: Option<File>,
    spec: Spec,
    seccomp: Option<SeccompProgram>,
    program: String,
    exit: Option<Exit>,
    init: bool,
    detached: bool,
    no_new_keyring: bool,
}

/// A process of a container, as `docker top` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Pid on the host.
    pub host_pid: i32,
    /// Pid inside the container's pid namespace.
    pub container_pid: i32,
    /// Its command line.
    pub cmdline: Vec<String>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::Os {
            what: "pipe2",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicate `fd` to a number >= `min`, close-on-exec: the child dup2()s it to its final number, so sources must
/// never collide with targets 0..min.
fn high(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: fcntl dup of a valid fd.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(Error::Os {
            what: "dup fd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: new fd, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80,
    }
}

fn ns_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        _ => "time",
    }
}

fn ns_inode(pid: &str, name: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{name}"))
        .ok()
        .map(|m| m.ino())
}

/// `CLONE_INTO_CGROUP` (Linux 5.7), not in every libc release.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 the child; with `thread_joins`, from a helper thread that first joined those namespaces (pid, net, ipc,
/// uts and cgroup namespaces belong to a thread, so joining them there leaves the caller's threads alone, and the
/// child starts in them before it creates any new user namespace). Returns (pid, pidfd).
///
/// With `into_cgroup` (a cgroup v2 directory) the child is created in that cgroup (`CLONE_INTO_CGROUP`); when the
/// kernel refuses that, it is created where the caller is and the returned flag is false: the caller attaches it.
fn clone_child(
    plan: &Plan,
    flags: u64,
    thread_joins: &[(&OwnedFd, libc::c_int)],
    into_cgroup: Option<&OwnedFd>,
) -> Result<(i32, OwnedFd, bool)> {
    let go = || -> std::result::Result<(i32, RawFd, bool), std::io::Error> {
        for (ns, flag) in thread_joins {
            // SAFETY: setns on a valid namespace fd; affects only this helper thread (and its future children).
            if unsafe { libc::setns(ns.as_raw_fd(), *flag) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let mut pidfd: libc::c_int = -1;
        let mut args = CloneArgs {
            flags: flags | libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        let clone = |args: &CloneArgs| {
            // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of this thread's stack and
            // continues here with 0. It only runs `child::run`, which never returns and does not allocate.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    args as *const CloneArgs,
                    std::mem::size_of::<CloneArgs>(),
                )
            };
            if r == 0 {
                child::run(plan);
            }
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as i32)
            }
        };
        if let Some(cg) = into_cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = cg.as_raw_fd() as u64;
            if let Ok(pid) = clone(&args) {
                return Ok((pid, pidfd, true));
            }
            // An older kernel, or a cgroup this kernel will not create into: fork here, the caller attaches.
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
        }
        clone(&args).map(|pid| (pid, pidfd, false))
    };
    let res = if !thread_joins.is_empty() {
        std::thread::scope(|s| s.spawn(go).join()).map_err(|_| Error::Os {
            what: "clone helper thread",
            source: std::io::ErrorKind::Other.into(),
        })?
    } else {
        go()
    };
    let (pid, pidfd, in_cgroup) = res.map_err(Error::os("clone3"))?;
    // SAFETY: clone3 returned a new pidfd owned by us.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }, in_cgroup))
}

/// What the parent does for a cloned child before releasing it: attach it to its v2 cgroup when `CLONE_INTO_CGROUP`
/// could not (v1 children join by themselves), and set its OOM score.
fn settle(cgroup: &Cgroup, pid: i32, in_cgroup: bool, oom_score_adj: Option<i32>) -> Result<()> {
    if cgroup.version == CgroupVersion::V2 && !in_cgroup {
        cgroup.attach(pid)?;
    }
    if let Some(adj) = oom_score_adj {
        write_file(
            &format!("/proc/{pid}/oom_score_adj"),
            &adj.to_string(),
            "write oom_score_adj",
        )?;
    }
    Ok(())
}

/// fds that must live until the clone and be closed in the parent right after.
#[derive(Default)]
struct ChildFds(Vec<OwnedFd>);

impl ChildFds {
    /// Copies of the cgroup v1 `tasks` fds, for the child to join with.
    fn keep_tasks(&mut self, join: &JoinFds, base: RawFd) -> Result<Vec<RawFd>> {
        join.tasks
            .iter()
            .map(|(_, fd)| Ok(self.keep(high(fd.as_raw_fd(), base)?)))
            .collect()
    }

    fn keep(&mut self, fd: OwnedFd) -> RawFd {
        let r = fd.as_raw_fd();
        self.0.push(fd);
        r
    }
}

struct StdioSetup {
    sources: [RawFd; 3],
    extra: Vec<RawFd>,
    pty_slave: RawFd,
    pty_path: Option<std::ffi::CString>,
    parent_ends: [Option<File>; 3],
    pty_master: Option<File>,
    /// The child allocates the terminal in the container and sends its master here (its end: `pty_sock`).
    pty_recv: Option<OwnedFd>,
    pty_sock: RawFd,
    winsize: libc::winsize,
}

impl StdioSetup {
    /// The master of a terminal the child allocated, once it has reported (it is sent before `execve`).
    fn take_master(&mut self) -> Result<Option<File>> {
        let Some(sock) = self.pty_recv.take() else {
            return Ok(self.pty_master.take());
        };
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        // SAFETY: recvmsg into stack buffers that outlive the call; the control data is read only if present.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if n != 1
                || cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(Error::Os {
                    what: "receive the terminal's master from the container",
                    source: if n < 0 {
                        std::io::Error::last_os_error()
                    } else {
                        std::io::ErrorKind::UnexpectedEof.into()
                    },
                });
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
            Ok(Some(File::from(OwnedFd::from_raw_fd(fd))))
        }
    }
}

/// Whether the spec mounts a devpts at /dev/pts: then a terminal is allocated from it, inside the container, as
/// runc does (its name is valid there; `tty` and `ttyname` work), rather than from the host's.
fn has_devpts(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts"))
}

fn setup_stdio(
    cfg: StdioConfig,
    terminal: bool,
    console: Option<(u64, u64)>,
    in_container: bool,
    fds: &mut ChildFds,
) -> Result<StdioSetup> {
    let base = 3 + cfg.extra_fds.len() as RawFd;
    let mut out = StdioSetup {
        sources: [-1; 3],
        extra: Vec::new(),
        pty_slave: -1,
        pty_recv: None,
        pty_sock: -1,
        // SAFETY: winsize is plain integers.
        winsize: unsafe { std::mem::zeroed() },
        pty_path: None,
        parent_ends: [None, None, None],
        pty_master: None,
    };
    for (i, s) in [cfg.stdin, cfg.stdout, cfg.stderr].into_iter().enumerate() {
        match s {
            Stdio::Inherit => {}
            Stdio::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(Error::io("open", "/dev/null"))?;
                out.sources[i] = fds.keep(high(f.as_raw_fd(), base)?);
            }
            Stdio::Piped => {
                let (r, w) = pipe()?;
                let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                out.sources[i] = fds.keep(high(theirs.as_raw_fd(), base)?);
                out.parent_ends[i] = Some(File::from(mine));
            }
            Stdio::Fd(fd) => out.sources[i] = fds.keep(high(fd.as_raw_fd(), base)?),
        }
    }
    for fd in &cfg.extra_fds {
        out.extra.push(fds.keep(high(fd.as_raw_fd(), base)?));
    }
    if terminal && in_container {
        let mut pair = [-1; 2];
        // SAFETY: socketpair fills the two-element array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } < 0
        {
            return Err(Error::Os {
                what: "socketpair for the terminal",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: both fds were just created and are ours.
        let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        out.pty_sock = fds.keep(high(theirs.as_raw_fd(), base)?);
        out.pty_recv = Some(mine);
        if let Some((h, w)) = console {
            out.winsize.ws_row = h as u16;
            out.winsize.ws_col = w as u16;
        }
    } else if terminal {
        // SAFETY: standard pty allocation; every result is checked.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if m < 0 {
                return Err(Error::Os {
                    what: "posix_openpt",
                    source: std::io::Error::last_os_error(),
                });
            }
            let master = File::from(OwnedFd::from_raw_fd(m));
            if libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
                return Err(Error::Os {
                    what: "unlockpt",
                    source: std::io::Error::last_os_error(),
                });
            }
            let mut name = [0 as libc::c_char; 128];
            if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
                return Err(Error::Os {
                    what: "ptsname",
                    source: std::io::Error::last_os_error(),
                });
            }
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if s < 0 {
                return Err(Error::Os {
                    what: "open pty slave",
                    source: std::io::Error::last_os_error(),
                });
            }
            let slave = OwnedFd::from_raw_fd(s);
            if let Some((h, w)) = console {
                let ws = libc::winsize {
                    ws_row: h as u16,
                    ws_col: w as u16,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                libc::ioctl(m, libc::TIOCSWINSZ, &ws);
            }
            out.pty_slave = fds.keep(high(slave.as_raw_fd(), base)?);
            out.pty_path = Some(std::ffi::CStr::from_ptr(name.as_ptr()).to_owned());
            out.pty_master = Some(master);
        }
    }
    Ok(out)
}

fn write_file(path: &str, data: &str, what: &'static str) -> Result<()> {
    std::fs::write(path, data).map_err(Error::io(what, path))
}

/// Compiled filters by profile: compiling Docker's profile with libseccomp takes milliseconds (hundreds of names on
/// three architectures), far more than the rest of a spawn, and the same few profiles are used over and over.
static SECCOMP_CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, SeccompProgram>>> =
    std::sync::LazyLock::new(Default::default);

fn cached(key: String, disk: Option<&Path>, build: impl FnOnce() -> Result<SeccompProgram>) -> Result<SeccompProgram> {
    let lock = || SECCOMP_CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Per cache directory: what a directory holds is what spawns that name it get.
    let mem_key = match disk {
        Some(dir) => format!("{}\0{key}", dir.display()),
        None => key.clone(),
    };
    if let Some(p) = lock().get(&mem_key) {
        return Ok(p.clone());
    }
    let p = match disk {
        Some(dir) => bpf_cache::get_or_build(dir, &key, build)?,
        None => build()?,
    };
    let mut cache = lock();
    if cache.len() >= 32 {
        cache.clear();
    }
    cache.insert(mem_key, p.clone());
    Ok(p)
}

fn resolve_seccomp(spec: &Spec, default: DefaultSeccomp, disk: Option<&Path>) -> Result<Option<SeccompProgram>> {
    if let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let key = serde_json::to_string(profile).map_err(|e| Error::Seccomp { reason: e.to_string() })?;
        return cached(key, disk, || seccomp::compile(profile)).map(Some);
    }
    match default {
        DefaultSeccomp::Unconfined => Ok(None),
        DefaultSeccomp::Docker => {
            let bounding = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().clone())
                .unwrap_or_else(caps::docker_default)
                .bounding()
                .clone()
                .unwrap_or_default();
            let kernel = KernelVersion::running().unwrap_or(KernelVersion(0, 0));
            let key = format!("docker:{:x}:{}.{}", caps::mask(Some(&bounding)), kernel.0, kernel.1);
            cached(key, disk, || {
                seccomp::compile(&seccomp::docker_default(&bounding, kernel)?)
            })
            .map(Some)
        }
    }
}

/// `KEY_USR_SEARCH` and `KEY_OTH_SEARCH` of `<linux/keyctl.h>`.
const KEY_USR_SEARCH: u32 = 0x0008_0000;
const KEY_OTH_SEARCH: u32 = 0x0000_0008;

/// The session keyring a container's processes join: `_ses.ID`, as runc names it.
fn session_keyring(id: &str) -> Result<std::ffi::CString> {
    prepare::cstring("session keyring", format!("_ses.{id}").as_bytes())
}

/// What the state directory records for a container.
fn state_record(
    id: &str,
    pid: i32,
    rootfs: &Path,
    cgroup: &Cgroup,
    spec: &Spec,
    opts: &SpawnOptions,
    creating: bool,
) -> ContainerState {
    ContainerState {
        id: id.to_owned(),
        pid,
        pid_start_time: state::pid_start_time(pid).unwrap_or(0),
        rootfs: rootfs.to_owned(),
        cgroup: cgroup.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        annotations: spec.annotations().clone().unwrap_or_default(),
        seccomp_unconfined: opts.default_seccomp == DefaultSeccomp::Unconfined,
        seccomp_cache: opts.seccomp_cache.clone(),
        no_new_keyring: opts.no_new_keyring,
        creating,
    }
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Read the child's report: `None` when the pipe closed (the program was executed).
fn read_report(pipe: &mut File) -> Result<Option<Report>> {
    let mut buf = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < REPORT_LEN {
        match pipe.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Os {
                    what: "read child error pipe",
                    source: e,
                });
            }
        }
    }
    if got < REPORT_LEN {
        return Ok(None);
    }
    let word = |i: usize| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
    Ok(Some(Report {
        stage: u32::from_ne_bytes(word(0)),
        index: u32::from_ne_bytes(word(4)),
        errno: i32::from_ne_bytes(word(8)),
    }))
}

fn report_error(r: Report, spec: &Spec, pp: &ProcPlan, cgroup: &JoinFds) -> Error {
    let source = std::io::Error::from_raw_os_error(r.errno);
    let i = r.index as usize;
    let linux = spec.linux().clone().unwrap_or_default();
    let mount_target = |what: &'static str, list: &[PathBuf]| Error::Mount {
        target: list.get(i).cloned().unwrap_or_default(),
        what,
        source: std::io::Error::from_raw_os_error(r.errno),
    };
    let mounts: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().clone())
        .collect();
    let masked: Vec<PathBuf> = linux.masked_paths().iter().flatten().map(PathBuf::from).collect();
    let ro: Vec<PathBuf> = linux.readonly_paths().iter().flatten().map(PathBuf::from).collect();
    match Stage::from_u32(r.stage) {
        Some(Stage::ExecNotFound) => Error::ExecNotFound {
            program: pp.program.clone(),
        },
        Some(Stage::Exec) => Error::Exec {
            program: pp.program.clone(),
            source,
        },
        Some(Stage::Cwd) => Error::Cwd {
            cwd: PathBuf::from(std::ffi::OsStr::new(&*String::from_utf8_lossy(pp.cwd.rel.as_bytes()))),
            source,
        },
        Some(Stage::User) => Error::User {
            uid: pp.uid,
            gid: pp.gid,
            source,
        },
        Some(Stage::MountTarget) => mount_target("create mount point", &mounts),
        Some(Stage::Mount) => mount_target("mount", &mounts),
        Some(Stage::MountRemount) => mount_target("remount with flags", &mounts),
        Some(Stage::MountPropagation) => mount_target("set propagation", &mounts),
        Some(Stage::Mask) => mount_target("mask path", &masked),
        Some(Stage::Readonly) => mount_target("make path read-only", &ro),
        Some(Stage::CgroupJoin) => Error::Cgroup {
            path: cgroup.tasks.get(i).map(|(p, _)| p.clone()).unwrap_or_default(),
            what: "attach process",
            source,
        },
        Some(s) => Error::Setup {
            step: stage_name(s),
            source,
        },
        None => Error::Setup {
            step: "unknown",
            source,
        },
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Sync => "sync",
        Stage::CgroupJoin => "join cgroup",
        Stage::Setns => "setns",
        Stage::Unshare => "unshare",
        Stage::UserRoot => "become root in user namespace",
        Stage::Propagation => "make mounts private",
        Stage::RootBind => "bind rootfs",
        Stage::RootOpen => "open rootfs",
        Stage::Device => "create device node",
        Stage::DevNull => "verify /dev/null",
        Stage::Hostname => "sethostname",
        Stage::Domainname => "setdomainname",
        Stage::Pivot => "pivot_root",
        Stage::RootReadonly => "read-only root",
        Stage::Rlimit => "setrlimit",
        Stage::Tty => "controlling terminal",
        Stage::Stdio => "stdio",
        Stage::CapBounding => "drop bounding capabilities",
        Stage::Seccomp => "load seccomp filter",
        Stage::Capset => "capset",
        Stage::Ambient => "ambient capabilities",
        Stage::NoNewPrivs => "no_new_privs",
        Stage::Init => "init process",
        Stage::Hold => "wait for start",
        Stage::Sysctl => "write sysctl",
        Stage::Console => "set up the terminal (/dev/console, pty)",
        Stage::Keyring => "join session keyring",
        Stage::Loopback => "bring the loopback interface up",
        Stage::Paused => "wait before pivot_root",
        Stage::AppArmor => "set AppArmor profile",
        _ => "setup",
    }
}

impl Container {
    /// Run `spec.process` in a new container rooted at `rootfs`, with default [`SpawnOptions`].
    ///
    /// # Errors
    /// See [`Container::spawn_with`].
    pub fn spawn(spec: &Spec, rootfs: &Path, stdio: StdioConfig) -> Result<Container> {
        Container::spawn_with(spec, rootfs, stdio, SpawnOptions::default())
    }

    /// Run `spec.process` in a new container rooted at `rootfs`.
    ///
    /// The namespaces are those of `linux.namespaces` (a `path` joins an existing one; a mount namespace is
    /// required). The cgroup is created and the process attached before it runs anything of its own.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] for a spec this crate cannot honour; the typed setup errors ([`Error::ExecNotFound`],
    /// [`Error::Cwd`], [`Error::User`], [`Error::Mount`], [`Error::Setup`]) reported by the child; cgroup and
    /// seccomp errors.
    pub fn spawn_with(spec: &Spec, rootfs: &Path, stdio: StdioConfig, mut opts: SpawnOptions) -> Result<Container> {
        let before_pivot = opts.before_pivot.take();
        let id = match &opts.id {
            Some(id) => id.clone(),
            None => format!(
                "wharf-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        state::check_id(&id)?;
        let rootfs = std::fs::canonicalize(rootfs).map_err(|source| Error::Rootfs {
            path: rootfs.to_owned(),
            source,
        })?;
        if !rootfs.is_dir() {
            return Err(Error::Rootfs {
                path: rootfs,
                source: std::io::ErrorKind::NotADirectory.into(),
            });
        }
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| Error::spec("process", "missing"))?;
        let linux = spec.linux().clone().unwrap_or_default();
        let pp = prepare::proc_plan(&process)?;

        // Namespaces.
        let mut clone_flags: u64 = 0;
        let mut unshare = 0;
        let mut join_user = None;
        let mut join_other = Vec::new();
        let mut pid_ns = None;
        let mut seen = 0;
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            let flag = ns_flag(ns.typ());
            if ns.typ() == LinuxNamespaceType::Time {
                return Err(Error::spec(
                    &format!("linux.namespaces[{i}]"),
                    "time namespaces are not supported",
                ));
            }
            if seen & flag != 0 {
                return Err(Error::spec(
                    &format!("linux.namespaces[{i}]"),
                    "namespace type listed twice",
                ));
            }
            seen |= flag;
            match ns.path() {
                Some(p) => {
                    let f = File::open(p).map_err(|source| Error::Io {
                        what: "open namespace",
                        path: p.clone(),
                        source,
                    })?;
                    let fd = OwnedFd::from(f);
                    match flag {
                        libc::CLONE_NEWPID => pid_ns = Some(fd),
                        libc::CLONE_NEWUSER => join_user = Some(fd),
                        _ => join_other.push((fd, flag)),
                    }
                }
                None => match flag {
                    libc::CLONE_NEWPID | libc::CLONE_NEWUSER => clone_flags |= flag as u64,
                    _ => unshare |= flag,
                },
            }
        }
        if seen & libc::CLONE_NEWNS == 0 || join_other.iter().any(|(_, f)| *f == libc::CLONE_NEWNS) {
            return Err(Error::spec(
                "linux.namespaces",
                "a new mount namespace is required (pivot_root happens in it)",
            ));
        }
        let new_userns = clone_flags & libc::CLONE_NEWUSER as u64 != 0;
        if new_userns && (linux.uid_mappings().is_none() || linux.gid_mappings().is_none()) {
            return Err(Error::spec(
                "linux.uidMappings",
                "a new user namespace needs uid and gid mappings",
            ));
        }

        let driver = match &opts.cgroup_driver {
            Some(d) => d.clone(),
            None => CgroupDriver::detect()?,
        };
        prepare::check_supported(spec, driver.version)?;
        let fs = prepare::fs_plan(spec, &rootfs, driver.version, unshare)?;
        let seccomp = resolve_seccomp(spec, opts.default_seccomp, opts.seccomp_cache.as_deref())?;

        let state_dir = opts.state_dir.as_ref().map(StateDir::new).transpose()?;
        if let Some(sd) = &state_dir {
            sd.reserve(&id)?;
        }
        let cleanup_state = |sd: &Option<StateDir>| {
            if let Some(sd) = sd {
                let _ = state::remove_state(&sd.dir(&id));
            }
        };
        let cg_rel = linux
            .cgroups_path()
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("wharf/{id}")));
        let cgroup = match Cgroup::create(&driver, &cg_rel, linux.resources().as_ref()) {
            Ok(c) => c,
            Err(e) => {
                cleanup_state(&state_dir);
                return Err(e);
            }
        };
        let res = Self::launch(
            spec,
            &id,
            &rootfs,
            pp,
            fs,
            seccomp,
            stdio,
            &opts,
            before_pivot,
            &state_dir,
            &cgroup,
            LaunchNs {
                clone_flags,
                unshare,
                join_user,
                join_other,
                pid_ns,
                new_userns,
            },
        );
        match res {
            Ok(mut c) => {
                c.cgroup = cgroup;
                c.state_dir = state_dir;
                if let Some(sd) = &c.state_dir {
                    let st = state_record(&id, c.process.pid, &rootfs, &c.cgroup, spec, &opts, false);
                    let cfg = sd.dir(&id).join("config.json");
                    spec.save(&cfg).map_err(|e| Error::State {
                        id: id.clone(),
                        reason: format!("{}: {e}", cfg.display()),
                    })?;
                    sd.save(&st)?;
                }
                Ok(c)
            }
            Err(e) => {
                let _ = cgroup.delete();
                cleanup_state(&state_dir);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        spec: &Spec,
        id: &str,
        rootfs: &Path,
        pp: ProcPlan,
        mut fs: child::FsPlan,
        seccomp: Option<SeccompProgram>,
        stdio: StdioConfig,
        opts: &SpawnOptions,
        before_pivot: Option<BeforePivot>,
        state_dir: &Option<StateDir>,
        cgroup: &Cgroup,
        ns: LaunchNs,
    ) -> Result<Container> {
        let process = spec.process().clone().unwrap_or_default();
        let linux = spec.linux().clone().unwrap_or_default();
        let mut fds = ChildFds::default();
        let terminal = process.terminal().unwrap_or(false);
        let console = process.console_size().map(|b| (b.height(), b.width()));
        let mut io = setup_stdio(stdio, terminal, console, has_devpts(spec), &mut fds)?;
        fs.console = io.pty_slave;
        fs.no_pivot = opts.no_pivot;
        fs.console_host = io.pty_path.clone().unwrap_or_default();
        let base = 3 + io.extra.len() as RawFd;
        let (sync_r, sync_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let mut join = Vec::new();
        if let Some(u) = &ns.join_user {
            join.push((fds.keep(high(u.as_raw_fd(), base)?), libc::CLONE_NEWUSER));
        }
        let mut thread_joins: Vec<(&OwnedFd, libc::c_int)> =
            ns.pid_ns.iter().map(|f| (f, libc::CLONE_NEWPID)).collect();
        for (fd, flag) in &ns.join_other {
            if ns.join_user.is_none() {
                thread_joins.push((fd, *flag));
            } else {
                // Inside a joined user namespace: join after it, in the child.
                join.push((fds.keep(high(fd.as_raw_fd(), base)?), *flag));
            }
        }
        // The start gate: a FIFO in the state dir (so another process can start us), or a pipe.
        let mut start_pipe = None;
        let hold_fifo = if opts.created_only {
            match state_dir {
                Some(sd) => {
                    let p = sd.fifo_path(id);
                    let cp = prepare::cstring("state dir", p.as_os_str().as_encoded_bytes())?;
                    // SAFETY: mkfifo with a valid path.
                    if unsafe { libc::mkfifo(cp.as_ptr(), 0o600) } < 0 {
                        return Err(Error::io("mkfifo", &p)(std::io::Error::last_os_error()));
                    }
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(libc::O_CLOEXEC)
                        .open(&p)
                        .map_err(Error::io("open start FIFO", &p))?;
                    fds.keep(high(f.as_raw_fd(), base)?)
                }
                None => {
                    let (r, w) = pipe()?;
                    start_pipe = Some(File::from(w));
                    fds.keep(high(r.as_raw_fd(), base)?)
                }
            }
        } else {
            -1
        };
        let cg_join = cgroup.join_fds()?;
        let cgroup_tasks = fds.keep_tasks(&cg_join, base)?;
        let mut pause_w = None;
        let pause_r = match before_pivot {
            Some(_) => {
                let (r, w) = pipe()?;
                pause_w = Some(File::from(w));
                fds.keep(high(r.as_raw_fd(), base)?)
            }
            None => -1,
        };
        let (keyring, keyring_perm_add) = if opts.no_new_keyring {
            (None, 0)
        } else {
            // Searchable by the container's own user: by "other" when a user namespace maps it (runc does the same).
            let in_userns = ns.new_userns || ns.join_user.is_some();
            (
                Some(session_keyring(id)?),
                if in_userns { KEY_OTH_SEARCH } else { KEY_USR_SEARCH },
            )
        };
        let argv_c = pp.args;
        let env_c = pp.env;
        let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let plan = Plan {
            sync_r: fds.keep(high(sync_r.as_raw_fd(), base)?),
            err_w: fds.keep(high(err_w.as_raw_fd(), base)?),
            stdio: io.sources,
            extra: std::mem::take(&mut io.extra),
            pty_slave: io.pty_slave,
            pty_sock: io.pty_sock,
            winsize: io.winsize,
            join,
            unshare: ns.unshare,
            new_userns: ns.new_userns,
            fs: Some(fs),
            rlimits: pp.rlimits,
            uid: pp.uid,
            gid: pp.gid,
            groups: pp.groups.clone(),
            caps: pp.caps,
            last_cap: caps::last_cap(),
            no_new_privs: pp.no_new_privs,
            umask: pp.umask,
            seccomp: seccomp.clone(),
            cwd: pp.cwd,
            exec_paths: pp.exec_paths,
            argv,
            envp,
            init: opts.init,
            hold_fifo,
            cgroup_tasks,
            keyring,
            keyring_perm_add,
            pause_r,
            apparmor: pp.apparmor.clone(),
            loopback_up: opts.loopback_up && ns.unshare & libc::CLONE_NEWNET != 0,
        };
        drop((sync_r, err_w));
        let (pid, pidfd, in_cgroup) = clone_child(&plan, ns.clone_flags, &thread_joins, cg_join.v2_dir.as_ref())?;
        drop(fds);
        let mut handle = ProcessHandle {
            pid,
            pidfd,
            status: None,
            stdin: None,
            stdout: None,
            stderr: None,
            pty_master: None,
            detached: false,
        };
        let [i, o, e] = std::mem::take(&mut io.parent_ends);
        (handle.stdin, handle.stdout, handle.stderr) = (i, o, e);
        // From here on, a failure kills the child (ProcessHandle's Drop).
        let parent_setup = || -> Result<()> {
            if ns.new_userns {
                let map = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                    m.iter()
                        .flatten()
                        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                        .collect::<String>()
                };
                write_file(
                    &format!("/proc/{pid}/uid_map"),
                    &map(linux.uid_mappings()),
                    "write uid_map",
                )?;
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } != 0 {
                    // An unprivileged caller may write a gid map only once setgroups is disabled (rootless).
                    write_file(&format!("/proc/{pid}/setgroups"), "deny", "write setgroups")?;
                }
                write_file(
                    &format!("/proc/{pid}/gid_map"),
                    &map(linux.gid_mappings()),
                    "write gid_map",
                )?;
            }
            settle(cgroup, pid, in_cgroup, process.oom_score_adj())
        };
        parent_setup()?;
        let mut sync_w = File::from(sync_w);
        std::io::Write::write_all(&mut sync_w, &[1]).map_err(Error::os("release child"))?;
        drop(sync_w);
        let mut err_r = File::from(err_r);
        let mut report = read_report(&mut err_r)?;
        if let (Some(r), Some(hook), Some(mut go)) = (report, before_pivot, pause_w) {
            if r.stage == Stage::Mounted as u32 {
                if let Some(sd) = state_dir {
                    sd.save(&state_record(id, pid, rootfs, cgroup, spec, opts, true))?;
                }
                (hook.0)(pid).map_err(|reason| Error::BeforePivot {
                    id: id.to_owned(),
                    reason,
                })?;
                std::io::Write::write_all(&mut go, &[1]).map_err(Error::os("resume child"))?;
                report = read_report(&mut err_r)?;
            }
        }
        let program = pp.program.clone();
        if report.is_none() || report.is_some_and(|r| r.stage == Stage::Ready as u32) {
            handle.pty_master = io.take_master()?;
        }
        match report {
            None => {}
            Some(r) if r.stage == Stage::Ready as u32 => {}
            Some(r) => {
                let pp2 = prepare::proc_plan(&process)?;
                let _ = handle.wait();
                return Err(report_error(r, spec, &pp2, &cg_join));
            }
        }
        let created = report.is_some();
        Ok(Container {
            id: id.to_owned(),
            process: handle,
            cgroup: cgroup.clone(),
            state_dir: None,
            start_pipe,
            error_pipe: if created { Some(err_r) } else { None },
            spec: spec.clone(),
            seccomp,
            program,
            exit: None,
            init: opts.init,
            detached: false,
            no_new_keyring: opts.no_new_keyring,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's first process.
    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// The caller's end of a piped stdin.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.process.stdin.take()
    }
    /// The caller's end of a piped stdout.
    pub fn take_stdout(&mut self) -> Option<File> {
        self.process.stdout.take()
    }
    /// The caller's end of a piped stderr.
    pub fn take_stderr(&mut self) -> Option<File> {
        self.process.stderr.take()
    }
    /// The pty master, when `process.terminal` was set.
    pub fn take_pty_master(&mut self) -> Option<File> {
        self.process.pty_master.take()
    }

    /// Start a container spawned with [`SpawnOptions::created_only`]: its process executes the program.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if it was not waiting; the typed exec errors if the program cannot be executed.
    pub fn start(&mut self) -> Result<()> {
        match self.start_pipe.take() {
            Some(mut p) => std::io::Write::write_all(&mut p, &[1]).map_err(Error::os("start container"))?,
            None => match &self.state_dir {
                Some(sd) => sd.start(&self.id)?,
                None => return Err(Error::NotRunning { id: self.id.clone() }),
            },
        }
        if let Some(mut err) = self.error_pipe.take() {
            if let Some(r) = read_report(&mut err)? {
                let process = self.spec.process().clone().unwrap_or_default();
                let pp = prepare::proc_plan(&process)?;
                return Err(report_error(r, &self.spec, &pp, &JoinFds::default()));
            }
        }
        Ok(())
    }

    /// Send `signal` to the container's first process.
    ///
    /// # Errors
    /// [`Error::Os`] if it is gone.
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.process.kill(signal)
    }

    /// Wait for the container's first process to end, then remove the cgroup (killing any process left in it) and
    /// the persisted state.
    ///
    /// # Errors
    /// [`Error::Os`] if waiting fails; cgroup removal errors.
    pub fn wait(&mut self) -> Result<Exit> {
        // Without a timeout, waiting only ends with an exit.
        self.wait_timeout(None)?.ok_or_else(|| Error::Os {
            what: "waitid",
            source: std::io::ErrorKind::Other.into(),
        })
    }

    /// Wait at most `timeout`: if the container is still running then, kill every process in its cgroup and report
    /// `timed_out`.
    ///
    /// # Errors
    /// As [`Container::wait`].
    pub fn wait_or_kill(&mut self, timeout: Duration) -> Result<Exit> {
        if let Some(e) = self.wait_timeout(Some(timeout))? {
            return Ok(e);
        }
        self.cgroup.kill_all(Duration::from_secs(5));
        let _ = self.process.kill(libc::SIGKILL);
        let mut e = self.wait()?;
        e.timed_out = true;
        self.exit = Some(e);
        Ok(e)
    }

    /// Wait up to `timeout` (`None`: forever); `Ok(None)` if it is still running then.
    ///
    /// # Errors
    /// As [`Container::wait`].
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<Exit>> {
        if let Some(e) = self.exit {
            return Ok(Some(e));
        }
        let Some(status) = self.process.wait_timeout(timeout)? else {
            return Ok(None);
        };
        let oom_kills = self.cgroup.stats().oom_kills;
        let exit = Exit {
            status,
            oom_kills,
            timed_out: false,
        };
        self.exit = Some(exit);
        self.cleanup()?;
        Ok(Some(exit))
    }

    fn cleanup(&mut self) -> Result<()> {
        self.cgroup.delete()?;
        if let Some(sd) = &self.state_dir {
            state::remove_state(&sd.dir(&self.id))?;
        }
        Ok(())
    }

    /// Leave the container running when this handle is dropped (its state stays in the state directory, if any).
    pub fn detach(mut self) {
        self.detached = true;
        self.process.status = Some(ExitStatus::Exited(0));
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self) -> Stats {
        self.cgroup.stats()
    }

    /// Change the resource limits of the running container.
    ///
    /// # Errors
    /// As [`Cgroup::update`].
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        self.cgroup.update(resources)
    }

    /// Freeze or thaw every process of the container.
    ///
    /// # Errors
    /// As [`Cgroup::freeze`].
    pub fn pause(&self, frozen: bool) -> Result<()> {
        self.cgroup.freeze(frozen)
    }

    /// The container's processes with their host and container pids (like `docker top`).
    pub fn processes(&self) -> Vec<ProcessInfo> {
        processes_of(&self.cgroup)
    }

    /// Run another process in the running container: in its namespaces and cgroup, with the security settings of
    /// `process` (its capabilities default to the container's; the container's seccomp filter is applied), like
    /// `docker exec`.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if the container has ended; the typed setup errors reported by the child.
    pub fn exec(&self, process: &Process, stdio: StdioConfig) -> Result<ProcessHandle> {
        if self.exit.is_some() {
            return Err(Error::NotRunning { id: self.id.clone() });
        }
        exec_into(
            &self.id,
            self.no_new_keyring,
            self.process.pid,
            &self.process.pidfd,
            &self.cgroup,
            &self.spec,
            self.seccomp.clone(),
            process,
            stdio,
        )
    }

    /// The program the container runs (`process.args[0]`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Whether the container runs a minimal init as pid 1.
    pub fn has_init(&self) -> bool {
        self.init
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if self.exit.is_none() {
            let _ = self.process.kill(libc::SIGKILL);
            // A frozen container cannot die until thawed.
            let _ = self.cgroup.freeze(false);
            let _ = self.wait();
        }
    }
}

struct LaunchNs {
    clone_flags: u64,
    unshare: libc::c_int,
    join_user: Option<OwnedFd>,
    join_other: Vec<(OwnedFd, libc::c_int)>,
    pid_ns: Option<OwnedFd>,
    new_userns: bool,
}

/// `exec` into the container whose first process is `pid` (`pidfd`): see [`Container::exec`].
#[allow(clippy::too_many_arguments)]
fn exec_into(
    id: &str,
    no_new_keyring: bool,
    pid: i32,
    pidfd: &OwnedFd,
    cgroup: &Cgroup,
    spec: &Spec,
    seccomp: Option<SeccompProgram>,
    process: &Process,
    stdio: StdioConfig,
) -> Result<ProcessHandle> {
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
        let name = ns_name(flag);
        if ns_inode("self", name) != ns_inode(&target, name) {
            flags |= flag;
        }
    }
    let pid_ns = if ns_inode("self", "pid") != ns_inode(&target, "pid") {
        let p = format!("/proc/{pid}/ns/pid");
        Some(OwnedFd::from(File::open(&p).map_err(Error::io("open namespace", &p))?))
    } else {
        None
    };
    let mut fds = ChildFds::default();
    let mut io = setup_stdio(
        stdio,
        process.terminal().unwrap_or(false),
        process.console_size().map(|b| (b.height(), b.width())),
        has_devpts(spec),
        &mut fds,
    )?;
    let base = 3 + io.extra.len() as RawFd;
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut argv: Vec<*const libc::c_char> = pp.args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = pp.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let join = vec![(fds.keep(high(pidfd.as_raw_fd(), base)?), flags)];
    let cg_join = cgroup.join_fds()?;
    let cgroup_tasks = fds.keep_tasks(&cg_join, base)?;
    let plan = Plan {
        sync_r: fds.keep(high(sync_r.as_raw_fd(), base)?),
        err_w: fds.keep(high(err_w.as_raw_fd(), base)?),
        stdio: io.sources,
        extra: std::mem::take(&mut io.extra),
        pty_slave: io.pty_slave,
        pty_sock: io.pty_sock,
        winsize: io.winsize,
        join,
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
        cwd: prepare::in_path("process.cwd", process.cwd())?,
        exec_paths: pp.exec_paths.clone(),
        argv,
        envp,
        init: false,
        hold_fifo: -1,
        cgroup_tasks,
        // The container's own keyring, when it has one (joining the name creates it otherwise, as runc).
        keyring: if no_new_keyring {
            None
        } else {
            Some(session_keyring(id)?)
        },
        keyring_perm_add: 0,
        pause_r: -1,
        apparmor: pp.apparmor.clone(),
        loopback_up: false,
    };
    drop((sync_r, err_w));
    let thread_joins: Vec<(&OwnedFd, libc::c_int)> = pid_ns.iter().map(|f| (f, libc::CLONE_NEWPID)).collect();
    let (cpid, pidfd, in_cgroup) = clone_child(&plan, 0, &thread_joins, cg_join.v2_dir.as_ref())?;
    drop(fds);
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
    if let Some(r) = read_report(&mut File::from(err_r))? {
        let _ = handle.wait();
        return Err(report_error(r, spec, &pp, &cg_join));
    }
    handle.pty_master = io.take_master()?;
    Ok(handle)
}

impl StateDir {
    /// Run another process in container `id` from any process (like `runc exec`): the container's spec and seccomp
    /// choice are read from the state directory; the new process is a child of the caller.
    ///
    /// # Errors
    /// [`Error::NotRunning`] if its first process is gone (or its pid was reused); as [`Container::exec`].
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
        exec_into(
            id,
            st.no_new_keyring,
            st.pid,
            &pidfd,
            &st.cgroup,
            &spec,
            seccomp,
            process,
            stdio,
        )
    }
}

/// The processes in `cgroup`, with their pids on the host and in their own pid namespace, first process first.
pub(crate) fn processes_of(cgroup: &Cgroup) -> Vec<ProcessInfo> {
    let mut out: Vec<ProcessInfo> = cgroup
        .pids()
        .into_iter()
        .filter_map(|host_pid| {
            let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
            let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            let container_pid = nspid.split_whitespace().last()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{host_pid}/cmdline")).unwrap_or_default();
            let cmdline = cmd
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Some(ProcessInfo {
                host_pid,
                container_pid,
                cmdline,
            })
        })
        .collect();
    out.sort_by_key(|p| p.container_pid);
    out
}

impl StateDir {
    /// The processes of container `id` (like `runc ps` / `docker top`).
    ///
    /// # Errors
    /// As [`StateDir::load`].
    pub fn processes(&self, id: &str) -> Result<Vec<ProcessInfo>> {
        Ok(processes_of(&self.load(id)?.cgroup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Container>();
        send_sync::<ProcessHandle>();
        send_sync::<StateDir>();
    }
}

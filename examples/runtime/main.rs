//! `runtime`: an OCI runtime with runc's command line, over wharf-sandbox, so containerd (and Kubernetes through
//! it) can run containers with wharf: `ctr run --runc-binary target/debug/examples/runtime ...`.
//!
//! `cargo run --example runtime -- --help`. State lives under `--root` (default `/run/wharf-runtime`), one directory
//! per container: the sandbox's `state.json`, `config.json` and start FIFO, and this program's `runtime.json`
//! (bundle, creation time, hooks). `create` leaves the container's process waiting just before `execve`; `start`,
//! from another invocation, releases it.
//!
//! Differences from runc, all refused loudly rather than ignored:
//! - `--systemd-cgroup` is refused (cgroups are written through cgroupfs).
//! - `process.terminal` needs `--console-socket` (no tty proxying by `run` itself).
//! - `createContainer` hooks join the container's namespaces except its pid namespace (runc runs them from inside
//!   it); they run, like `prestart` and `createRuntime`, while the container's process waits before `pivot_root`.
//! - Fields of `config.json` the sandbox cannot honour are refused by it, naming the field.
//!
//! As runc, a failing `exec` exits with 255 (any other failing command with 1), and a program that cannot be started
//! is reported in runc's words (`exec: "/x": stat /x: no such file or directory`): podman turns them into its exit
//! codes 127 and 126.

/// Print a line to stdout; a reader that went away (`runtime list | head -1`) is no reason to panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod bundle;
mod console;
mod error;
mod features;
mod hooks;
mod log;
mod resources;
mod signal;
mod state;

use std::io::Write;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wharf::sandbox::oci_spec::runtime::{Capability, Process, Spec};
use wharf::sandbox::{BeforePivot, Container, DefaultSeccomp, ExitStatus, SpawnOptions, StateDir, Stdio, StdioConfig};

use crate::error::{Error, Result};
use crate::log::LogFormat;
use crate::state::Meta;

/// An OCI runtime with runc's command line, built on wharf-sandbox.
#[derive(Parser, Debug)]
#[command(name = "runtime", disable_version_flag = true)]
struct Cli {
    /// Directory holding the state of containers [default: /run/wharf-runtime as root, else
    /// $XDG_RUNTIME_DIR/wharf-runtime, as runc's]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Write log lines (errors, warnings, --debug steps) to this file
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Manage cgroups through systemd (not supported: refused)
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Log each step
    #[arg(long, global = true)]
    debug: bool,
    /// Print the version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The flags of `create` (and `run`).
#[derive(Args, Debug)]
struct CreateArgs {
    /// The bundle directory (with config.json)
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's pid to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Enter the rootfs with chroot instead of pivot_root (for a ramfs root)
    #[arg(long)]
    no_pivot: bool,
    /// Keep this process's session keyring instead of joining the container's own `_ses.ID`
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, ...) into the container
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Exec into a paused container too (the process runs once the container is resumed)
    #[arg(long)]
    ignore_paused: bool,
    /// The container id
    id: String,
}

/// The flags of `exec`.
#[derive(Args, Debug)]
struct ExecArgs {
    /// A JSON OCI process to run (instead of ARGS)
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Unix socket that receives the pty master when a terminal is allocated
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    tty: bool,
    /// Do not wait for the process: print nothing, exit 0 once it runs
    #[arg(short = 'd', long)]
    detach: bool,
    /// Write the process's pid to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Extra environment variables, KEY=VALUE
    #[arg(short = 'e', long)]
    env: Vec<String>,
    /// uid[:gid] to run as
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Add a capability (CAP_NET_ADMIN, ...)
    #[arg(short = 'c', long)]
    cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    no_new_privs: bool,
    /// Pass this many extra fds (3, 4, ...) into the process
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Exec into a paused container too (the process runs once the container is resumed)
    #[arg(long)]
    ignore_paused: bool,
    /// The container id
    id: String,
    /// The command and its arguments (without --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Set up a container and leave its process waiting for `start`
    Create(CreateArgs),
    /// Release a created container's process
    Start {
        /// The container id
        id: String,
    },
    /// create + start, then wait for it (unless --detach) and delete it; exits with its code
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Leave it running in the background
        #[arg(short = 'd', long)]
        detach: bool,
    },
    /// Print the OCI state of a container as JSON
    State {
        /// The container id
        id: String,
    },
    /// Send a signal (name or number, default TERM)
    Kill {
        /// Signal every process of the container
        #[arg(short = 'a', long)]
        all: bool,
        /// The container id
        id: String,
        /// The signal
        signal: Option<String>,
    },
    /// Delete a container's state and cgroup (killing it with --force)
    Delete {
        /// Kill it first if it still runs
        #[arg(short = 'f', long)]
        force: bool,
        /// The container id
        id: String,
    },
    /// List containers
    List {
        /// table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Print only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Print what this runtime implements, as JSON
    Features,
    /// List the processes of a container
    Ps {
        /// table (ps -ef filtered) or json (host pids)
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// The container id
        id: String,
        /// Arguments for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print resource usage as JSON events (one sample with --stats)
    Events {
        /// Print one stats sample and exit
        #[arg(long)]
        stats: bool,
        /// Time between samples (e.g. 5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        /// The container id
        id: String,
    },
    /// Change the resource limits of a running container
    Update(resources::UpdateArgs),
    /// Freeze every process of a container
    Pause {
        /// The container id
        id: String,
    },
    /// Thaw a paused container
    Resume {
        /// The container id
        id: String,
    },
    /// Run another process in a running container
    Exec(ExecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("--log {}: {e}", cli.log.as_deref().unwrap_or(Path::new("")).display());
        return ExitCode::FAILURE;
    }
    // As runc: `exec` fails with 255, apart from the codes 0..=255 of the process it ran; the rest with 1.
    let failed = match cli.command {
        Some(Cmd::Exec(_)) => ExitCode::from(255),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            log::error(&msg);
            eprintln!("{msg}");
            failed
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if cli.version {
        out!(
            "runtime version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            state::OCI_VERSION
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(cmd) = cli.command else {
        return Err(Error::Usage("no command given (see --help)".into()));
    };
    if let Cmd::Features = cmd {
        out!("{:#}", features::document());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.systemd_cgroup {
        return Err(Error::Usage(
            "--systemd-cgroup is not supported: this runtime manages cgroups through cgroupfs (set SystemdCgroup = \
             false for it)"
                .into(),
        ));
    }
    let sd = StateDir::new(state_root(cli.root.clone()))?;
    log::debug(&format!("{cmd:?}"));
    match cmd {
        Cmd::Create(a) => {
            let c = create(&sd, &a, false)?;
            c.detach();
        }
        Cmd::Start { id } => start(&sd, &id, None)?,
        Cmd::Run { create: a, detach } => return run_container(&sd, &a, detach),
        Cmd::State { id } => {
            let st = state::oci_state(&sd, &id)?;
            out!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
        }
        Cmd::Kill { all, id, signal } => {
            let sig = signal::parse(signal.as_deref().unwrap_or("TERM"))?;
            let (_, status) = state::status(&sd, &id)?;
            // As runc: only `kill --all` reaches a stopped container (what is left in its cgroup); containerd's
            // exit handling sends it and needs it to succeed.
            if status == "stopped" && !all {
                return Err(bad_state(&id, status, "container not running"));
            }
            sd.kill(&id, sig, all)?;
        }
        Cmd::Delete { force, id } => delete(&sd, &id, force)?,
        Cmd::List { format, quiet } => list(&sd, &format, quiet)?,
        Cmd::Features => {}
        Cmd::Ps { format, id, ps_args } => ps(&sd, &id, &format, &ps_args)?,
        Cmd::Events { stats, interval, id } => events(&sd, &id, stats, &interval)?,
        Cmd::Update(a) => {
            let r = resources::from_args(&a)?;
            let (st, status) = state::status(&sd, &a.id)?;
            if status == "stopped" {
                return Err(bad_state(&a.id, status, "container not running"));
            }
            st.cgroup.update(&r)?;
        }
        Cmd::Pause { id } => {
            let (st, status) = state::status(&sd, &id)?;
            // runc freezes a created container too (its process waits for `start`).
            if status != "running" && status != "created" {
                return Err(bad_state(&id, status, "container not running"));
            }
            st.cgroup.freeze(true)?;
        }
        Cmd::Resume { id } => {
            let (st, status) = state::status(&sd, &id)?;
            if status != "paused" {
                return Err(bad_state(&id, status, "container not paused"));
            }
            st.cgroup.freeze(false)?;
        }
        Cmd::Exec(a) => return exec(&sd, &a),
    }
    Ok(ExitCode::SUCCESS)
}

fn bad_state(id: &str, status: String, reason: impl Into<String>) -> Error {
    Error::BadState {
        id: id.to_owned(),
        status,
        reason: reason.into(),
    }
}

/// Take fds 3 .. 3+n of this process to pass on.
fn preserved_fds(n: u32) -> Result<Vec<OwnedFd>> {
    (0..n)
        .map(|i| {
            let fd = 3 + i as RawFd;
            // SAFETY: only inspected; fcntl on a closed fd just fails.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            rustix::io::fcntl_getfd(borrowed)
                .map_err(|_| Error::Usage(format!("--preserve-fds {n}: fd {fd} is not open")))?;
            // SAFETY: the fd is open, was given to us by our caller to pass on, and is used nowhere else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Write a pid file atomically, as runc does (no newline).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp-runtime");
    std::fs::write(&tmp, pid.to_string()).map_err(Error::io("write pid file", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("write pid file", path))
}

/// Everything of `create`: the container waits before `execve` when this returns. Dropping the result (on a later
/// error) kills and removes it.
fn create(sd: &StateDir, a: &CreateArgs, foreground: bool) -> Result<Container> {
    let b = bundle::load(&a.bundle)?;
    let terminal = b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    match (terminal, &a.console_socket) {
        (true, None) if !foreground => {
            return Err(Error::Usage(
                "process.terminal is true: pass --console-socket to receive the pty master (or use run without \
             --detach)"
                    .into(),
            ));
        }
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--console-socket given but process.terminal is false: there is no pty to send".into(),
            ));
        }
        _ => {}
    }
    let stdio = StdioConfig {
        stdin: Stdio::Inherit,
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
        extra_fds: preserved_fds(a.preserve_fds)?,
    };
    let meta = Meta {
        bundle: b.dir,
        created: log::now_rfc3339(),
        hooks: b.hooks,
    };
    let create_hooks: Vec<_> = ["prestart", "createRuntime", "createContainer"]
        .into_iter()
        .map(|kind| (kind, bundle::of(&meta.hooks, kind)))
        .collect();
    // Hooks of create run while the container's process waits before pivot_root, as runc runs them; the state
    // they get (and `state` from another process meanwhile) says "creating".
    let before_pivot = create_hooks.iter().any(|(_, h)| !h.is_empty()).then(|| {
        let (states, id, meta) = (sd.dir(""), a.id.clone(), meta.clone());
        BeforePivot(Box::new(move |pid| {
            let sd = StateDir::new(states).map_err(|e| e.to_string())?;
            meta.save(&sd, &id).map_err(|e| e.to_string())?;
            let st = state_json(&sd, &id).map_err(|e| e.to_string())?;
            for (kind, hooks) in &create_hooks {
                let res = if *kind == "createContainer" {
                    hooks::run_in_namespaces(kind, hooks, &st, pid)
                } else {
                    hooks::run_host(kind, hooks, &st)
                };
                res.map_err(|e| e.to_string())?;
            }
            Ok(())
        }))
    });
    // Saved by the hook callback when there is one (the hooks' state needs it), otherwise once spawned.
    let meta_saved = before_pivot.is_some();
    let opts = SpawnOptions {
        id: Some(a.id.clone()),
        state_dir: Some(sd.dir("")),
        created_only: true,
        // An OCI runtime applies exactly the spec's seccomp: none if it has none (containerd adds its own).
        default_seccomp: DefaultSeccomp::Unconfined,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        seccomp_cache: wharf::sandbox::default_seccomp_cache(),
        before_pivot,
        ..SpawnOptions::default()
    };
    let mut c = Container::spawn_with(&b.spec, &b.rootfs, stdio, opts).map_err(|e| match e {
        // The hook's own error, as the other hook failures read.
        wharf::sandbox::Error::BeforePivot { reason, .. } => Error::Usage(reason),
        e => e.into(),
    })?;
    if !meta_saved {
        meta.save(sd, &a.id)?;
    }
    if let Some(sock) = &a.console_socket {
        let master = c
            .take_pty_master()
            .ok_or_else(|| Error::Usage("the sandbox allocated no pty for process.terminal".into()))?;
        console::send(sock, &master)?;
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, c.pid())?;
    }
    log::debug(&format!("created {} (pid {})", a.id, c.pid()));
    Ok(c)
}

fn state_json(sd: &StateDir, id: &str) -> Result<Vec<u8>> {
    let st = state::oci_state(sd, id)?;
    Ok(serde_json::to_vec(&st).unwrap_or_default())
}

/// `start`: startContainer hooks in the container, release it (through `container` when this process created it,
/// to get the sandbox's exec error), poststart hooks.
fn start(sd: &StateDir, id: &str, container: Option<&mut Container>) -> Result<()> {
    let (_, status) = state::status(sd, id)?;
    let refusal = match status.as_str() {
        "created" => None,
        "stopped" => Some("cannot start a container that has stopped".to_owned()),
        "running" => Some("cannot start an already running container".to_owned()),
        other => Some(format!("cannot start a container in the {other} state")),
    };
    if let Some(reason) = refusal {
        return Err(bad_state(id, status, reason));
    }
    let meta = Meta::load(sd, id);
    let st = state_json(sd, id)?;
    if let Err(e) = hooks::run_in_container(sd, id, &bundle::of(&meta.hooks, "startContainer"), &st) {
        // The spec: a failed startContainer hook stops the container.
        let _ = sd.kill(id, 9, true);
        return Err(e);
    }
    match container {
        Some(c) => c.start()?,
        None => sd.start(id)?,
    }
    let st = state_json(sd, id)?;
    if let Err(e) = hooks::run_host("poststart", &bundle::of(&meta.hooks, "poststart"), &st) {
        log::warn(&e.to_string());
        eprintln!("warning: {e}");
    }
    Ok(())
}

fn exit_code(s: ExitStatus) -> ExitCode {
    match s {
        ExitStatus::Exited(c) => ExitCode::from(c as u8),
        ExitStatus::Signaled(sig) => ExitCode::from(128u8.wrapping_add(sig as u8)),
    }
}

fn run_container(sd: &StateDir, a: &CreateArgs, detach: bool) -> Result<ExitCode> {
    let mut c = create(sd, a, !detach)?;
    // Before the container's program can run (and before the proxy's threads exist, so that they inherit the
    // mask): a signal that came between start and the blocking used to end this process instead of reaching the
    // container.
    if !detach {
        forward_signals(sd, &a.id);
    }
    // Foreground with a terminal and no console socket: this process proxies the pty.
    let proxy = match c.take_pty_master() {
        Some(m) => Some(console::Proxy::start(m).map_err(Error::io("proxy terminal", "pty"))?),
        None => None,
    };
    start(sd, &a.id, Some(&mut c))?;
    if detach {
        c.detach();
        return Ok(ExitCode::SUCCESS);
    }
    let meta = Meta::load(sd, &a.id);
    let mut final_state = state::oci_state(sd, &a.id)?;
    let exit = c.wait()?;
    if let Some(p) = proxy {
        p.finish();
    }
    final_state.status = "stopped".into();
    final_state.pid = 0;
    poststop(&meta, &final_state);
    Ok(exit_code(exit.status))
}

/// Signals this process gets while `run` waits in the foreground go to the container's process, as runc forwards
/// them. Blocked once the container's process exists (it was spawned with the caller's mask, and sets its own
/// before exec) and before it is started.
fn forward_signals(sd: &StateDir, id: &str) {
    const FORWARDED: [libc::c_int; 7] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ];
    // SAFETY: sigset_t is plain data that sigemptyset initialises; the mask change affects this thread, and the
    // forwarding thread inherits it before sigwait.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    let (sd, id) = (sd.clone(), id.to_owned());
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: a valid, initialised set and out-parameter.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            log::debug(&format!("forwarding signal {sig} to {id}"));
            let _ = sd.kill(&id, sig, false);
        }
    });
}

fn poststop(meta: &Meta, st: &state::OciState) {
    let json = serde_json::to_vec(st).unwrap_or_default();
    if let Err(e) = hooks::run_host("poststop", &bundle::of(&meta.hooks, "poststop"), &json) {
        log::warn(&e.to_string());
        eprintln!("warning: {e}");
    }
}

fn delete(sd: &StateDir, id: &str, force: bool) -> Result<()> {
    let mut st = match state::oci_state(sd, id) {
        Err(Error::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    match st.status.as_str() {
        "stopped" | "created" => {}
        _ if force => {}
        _ => {
            let reason = format!(
                "cannot delete container {id} that is not stopped: {} (use --force)",
                st.status
            );
            return Err(bad_state(id, st.status, reason));
        }
    }
    let meta = Meta::load(sd, id);
    sd.delete(id, st.status != "stopped")?;
    st.status = "stopped".into();
    st.pid = 0;
    poststop(&meta, &st);
    Ok(())
}

fn list(sd: &StateDir, format: &str, quiet: bool) -> Result<()> {
    let states: Vec<state::OciState> = sd
        .list()
        .iter()
        .filter_map(|id| state::oci_state(sd, id).ok())
        .collect();
    if quiet {
        for s in &states {
            out!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => out!("{}", serde_json::to_string(&states).unwrap_or_default()),
        "table" => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &states {
                let _ = writeln!(
                    out,
                    "{:<20} {:<8} {:<10} {:<40} {:<32} root",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                );
            }
        }
        other => return Err(bad_format(other)),
    }
    Ok(())
}

/// `--format` of `list` and `ps` takes what runc's does.
fn bad_format(value: &str) -> Error {
    Error::Flag {
        flag: "--format",
        value: value.into(),
        reason: "use table or json".into(),
    }
}

fn ps(sd: &StateDir, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let st = state::load(sd, id)?;
    let pids = st.cgroup.pids();
    match format {
        "json" => out!("{}", serde_json::to_string(&pids).unwrap_or_default()),
        "table" => {
            // As runc: ps(1)'s own output, keeping the header and the lines of the container's pids.
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(Error::io("run", "ps"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::Usage(format!("ps {}: no PID column in its output", args.join(" "))))?;
            out!("{header}");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    out!("{l}");
                }
            }
        }
        other => return Err(bad_format(other)),
    }
    Ok(())
}

fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || Error::Flag {
        flag: "--interval",
        value: s.to_owned(),
        reason: "use a duration like 5s or 500ms".into(),
    };
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        return Err(bad());
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    Ok(Duration::from_millis(n * mult))
}

fn events(sd: &StateDir, id: &str, once: bool, interval: &str) -> Result<()> {
    let every = parse_interval(interval)?;
    let mut printed = false;
    loop {
        let (st, status) = state::status(sd, id)?;
        if status == "stopped" {
            if printed {
                return Ok(());
            }
            return Err(bad_state(id, status, format!("container with id {id} is not running")));
        }
        printed = true;
        // A reader that went away ends the stream.
        if writeln!(
            std::io::stdout().lock(),
            "{}",
            resources::stats_event(id, &st.cgroup.stats())
        )
        .is_err()
        {
            return Ok(());
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

/// The process `exec` runs: `--process` as given, or the container's own process with ARGS and the flags applied.
fn exec_process(sd: &StateDir, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        if !a.args.is_empty() {
            return Err(Error::Usage("give either --process or ARGS, not both".into()));
        }
        let bytes = std::fs::read(p).map_err(Error::io("read process", p))?;
        return bundle::parse_checked("--process", &p.display().to_string(), &bytes);
    }
    if a.args.is_empty() {
        return Err(Error::Usage("exec needs a command (ARGS) or --process".into()));
    }
    let cfg = sd.dir(&a.id).join("config.json");
    let spec = Spec::load(&cfg).map_err(|e| Error::Bundle {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let bad = |reason: &str| Error::Flag {
            flag: "--user",
            value: u.clone(),
            reason: reason.into(),
        };
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        let mut user = p.user().clone();
        user.set_uid(uid.parse().map_err(|_| bad("use numeric uid[:gid]"))?);
        if !gid.is_empty() {
            user.set_gid(gid.parse().map_err(|_| bad("use numeric uid[:gid]"))?);
        }
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let c: Capability =
                serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase())).map_err(|_| {
                    Error::Flag {
                        flag: "--cap",
                        value: name.clone(),
                        reason: "not a capability name".into(),
                    }
                })?;
            let add = |s: &Option<std::collections::HashSet<Capability>>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            let (b, e, pm) = (add(caps.bounding()), add(caps.effective()), add(caps.permitted()));
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn exec(sd: &StateDir, a: &ExecArgs) -> Result<ExitCode> {
    let (_, status) = state::status(sd, &a.id)?;
    match status.as_str() {
        "running" | "created" => {}
        "paused" if a.ignore_paused => {}
        "paused" => {
            let reason = "cannot exec in a paused container (use --ignore-paused to override)";
            return Err(bad_state(&a.id, status, reason));
        }
        _ => return Err(bad_state(&a.id, status, "cannot exec in a stopped container")),
    }
    let process = exec_process(sd, a)?;
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, &a.console_socket) {
        (true, None) if a.detach => {
            return Err(Error::Usage(
                "a terminal was asked for with --detach: pass --console-socket to receive the pty master".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--console-socket given but no terminal was asked for".into(),
            ));
        }
        _ => {}
    }
    let stdio = StdioConfig {
        extra_fds: preserved_fds(a.preserve_fds)?,
        ..StdioConfig::inherit()
    };
    let mut h = sd.exec(&a.id, &process, stdio)?;
    if let Some(sock) = &a.console_socket {
        let master = h
            .pty_master
            .take()
            .ok_or_else(|| Error::Usage("the sandbox allocated no pty for the terminal".into()))?;
        console::send(sock, &master)?;
    }
    let proxy = match h.pty_master.take() {
        Some(m) => Some(console::Proxy::start(m).map_err(Error::io("proxy terminal", "pty"))?),
        None => None,
    };
    if let Some(p) = &a.pid_file {
        write_pid_file(p, h.pid())?;
    }
    if a.detach {
        // The process must outlive us: a subreaper such as containerd's shim adopts it.
        h.detach();
        return Ok(ExitCode::SUCCESS);
    }
    let status = h.wait()?;
    if let Some(p) = proxy {
        p.finish();
    }
    Ok(exit_code(status))
}

/// `--root`, or its default: `/run/wharf-runtime` for root, `$XDG_RUNTIME_DIR/wharf-runtime` for another user
/// (runc's rule: a rootless runtime keeps its state in the user's runtime directory).
fn state_root(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty() && !rustix::process::geteuid().is_root())
            .map(|d| PathBuf::from(d).join("wharf-runtime"))
            .unwrap_or_else(|| PathBuf::from("/run/wharf-runtime"))
    })
}

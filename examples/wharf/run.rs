//! Containers: run (foreground or detached), ps, logs, stop/kill, rm, top, stats.
//!
//! A container's files live under `ROOT/.wharf/containers/NAME/` (its record, `container.json`,
//! see [`crate::records`], and its logs when detached) and `ROOT/.wharf/rootfs/NAME/` (an overlay
//! of the cached layers plus its own upper dir, kept with `Rootfs::persist` while the container
//! exists). The sandbox keeps its own state under `ROOT/.wharf/sandbox/`, so another invocation of
//! this program can find, signal and delete it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use wharf::image::Reference;
use wharf::image::oci_spec::runtime::Spec;
use wharf::rootfs::{ApplyOptions, LayerCache, Rootfs, RootfsOptions};
use wharf::sandbox::{
    Container, DEFAULT_SECCOMP_CACHE, ExitStatus, SpawnOptions, StateDir, Status, Stdio, StdioConfig,
};

use crate::records::{Owner, Record, Records};
use crate::spec::build_spec;
use crate::{Ctx, Result};

/// The flags of `wharf run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container's name
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open and allocate a terminal (-it)
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Name of the container
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variables, KEY=VALUE
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Bind mounts, HOST:CONTAINER[:ro]
    #[arg(short, long)]
    pub volume: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name, uid, uid:gid, name:group)
    #[arg(short, long)]
    pub user: Option<String>,
    /// Hostname [default: the container's name]
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit, e.g. 64m, 1g
    #[arg(long)]
    pub memory: Option<String>,
    /// CPUs, e.g. 0.5
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Networks and published ports
    #[command(flatten)]
    pub network: crate::network::NetArgs,
    /// Pid namespace: private (the default), host, or container:NAME (see and signal its processes)
    #[arg(long, default_value = "private")]
    pub pid: String,
    /// IPC namespace (System V IPC, POSIX message queues): private (the default; also `shareable`), host, or
    /// container:NAME
    #[arg(long, default_value = "private")]
    pub ipc: String,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run a minimal init as pid 1 that reaps zombies and forwards signals
    #[arg(long)]
    pub init: bool,
    /// The image
    pub image: String,
    /// Command and arguments [default: the image's]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn wharf_dir(ctx: &Ctx) -> PathBuf {
    ctx.store.root().join(".wharf")
}

pub fn containers_dir(ctx: &Ctx) -> PathBuf {
    wharf_dir(ctx).join("containers")
}

/// Where container filesystems live: one rootfs directory per container, the layout
/// `Rootfs::layers_in_use` and `Rootfs::cleanup_stale` read.
pub fn rootfs_base(ctx: &Ctx) -> PathBuf {
    wharf_dir(ctx).join("rootfs")
}

pub fn state_dir(ctx: &Ctx) -> Result<StateDir> {
    Ok(StateDir::new(wharf_dir(ctx).join("sandbox"))?)
}

pub fn layer_cache(ctx: &Ctx) -> Result<LayerCache> {
    Ok(LayerCache::open(wharf_dir(ctx).join("layers"))?)
}

/// Container names become directory names: only docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` is accepted.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed").into())
    }
}

/// A random name for a container run without `--name`.
pub fn new_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let d = wharf::image::Digest::sha256(format!("{nanos}-{}", std::process::id()).as_bytes());
    d.hex()[..12].to_string()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Finds the image locally, pulling it when missing.
fn image_for(ctx: &Ctx, r: &Reference, insecure: &[String]) -> Result<wharf::image::store::Image> {
    match ctx.store.image(r, &ctx.platform) {
        Ok(img) => Ok(img),
        Err(wharf::image::Error::ImageNotFound(_)) => {
            eprintln!("Unable to find image '{}' locally", r.familiar());
            crate::registry::pull_quiet(ctx, r, insecure, true)?;
            Ok(ctx.store.image(r, &ctx.platform)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `docker run`. Returns the container's exit code (128+signal when killed), as docker does.
pub fn run(ctx: &Ctx, args: RunArgs, insecure: &[String]) -> Result<u8> {
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    let r: Reference = args.image.parse()?;
    let records = Records::open(ctx)?;
    let record = Record {
        name: args.name.clone().unwrap_or_else(new_name),
        image: r.to_string(),
        command: args.command.clone(),
        created: now(),
        detached: args.detach,
        auto_remove: args.rm,
        creating: true,
        owner: Some(Owner::me()),
    };
    let name = records.reserve(ctx, record, args.name.is_some())?;
    let mut container = match start(ctx, &records, &args, &r, &name, insecure) {
        Ok(Some(container)) => container,
        Ok(None) => {
            println!("{name}");
            return Ok(0);
        }
        Err(e) => {
            // Nothing of a run that failed to start stays.
            if let Ok(Some(held)) = records.hold(&name, true) {
                let _ = records.destroy(ctx, &name, &held);
            }
            return Err(e);
        }
    };
    if args.tty {
        let master = container.take_pty_master().ok_or("the sandbox gave no terminal")?;
        proxy_terminal(master, args.interactive)?;
    }
    let exit = container.wait()?;
    drop(container);
    // A container that has exited gives its address, veth and rules back at once (with --rm, destroy does).
    if !args.rm
        && crate::network::is_cni(&args.network.network)
        && let Err(e) = crate::network::release(ctx, &name)
    {
        eprintln!("wharf: releasing the network of {name}: {e}");
    }
    if exit.oom_kills > 0 {
        eprintln!(
            "wharf: the container was killed for exceeding its memory limit ({} OOM kill(s))",
            exit.oom_kills
        );
    }
    if args.rm
        && let Some(held) = records.hold(&name, true)?
    {
        records.destroy(ctx, &name, &held)?;
    }
    Ok(match exit.status {
        ExitStatus::Exited(c) => (c & 0xff) as u8,
        ExitStatus::Signaled(s) => (128 + s) as u8,
    })
}

/// Everything between taking the name and the container running: the image (pulled when
/// missing), its layers, its filesystem and its process. Returns the container to wait for, or
/// `None` when it runs detached.
fn start(
    ctx: &Ctx,
    records: &Records,
    args: &RunArgs,
    r: &Reference,
    name: &str,
    insecure: &[String],
) -> Result<Option<Container>> {
    let image = image_for(ctx, r, insecure)?;
    let cache = layer_cache(ctx)?;
    let layers = cache.ensure_image(&ctx.store, &image, &ApplyOptions::default())?;
    std::fs::create_dir_all(rootfs_base(ctx))?;
    let rootfs = Rootfs::create(&cache, &layers, rootfs_base(ctx).join(name), &RootfsOptions::default())?;
    if let Some(reason) = rootfs.fallback_reason() {
        eprintln!("wharf: overlayfs unavailable ({reason}); using a copy of the layers");
    }
    let attached = if crate::network::is_cni(&args.network.network) {
        let hostname = args.hostname.clone().unwrap_or_else(|| name.to_string());
        let exposed = image.config.exposed_ports();
        Some(crate::network::attach(ctx, &args.network, name, &hostname, &exposed)?)
    } else if !args.network.publish.is_empty() || args.network.publish_all || args.network.ip.is_some() {
        let net = &args.network.network;
        return Err(format!("-p, -P and --ip need a bridge or user network, not --network {net}").into());
    } else {
        None
    };
    let spec = build_spec(ctx, args, &image.config, &rootfs.path(), name, attached.as_ref())?;
    let dir = containers_dir(ctx).join(name);
    let stdio = if args.detach {
        StdioConfig {
            stdin: Stdio::Null,
            stdout: Stdio::from(File::create(dir.join("stdout.log"))?),
            stderr: Stdio::from(File::create(dir.join("stderr.log"))?),
            extra_fds: Vec::new(),
        }
    } else {
        StdioConfig {
            // With a terminal, Inherit means the pty (-t alone still gives the container a tty
            // on stdin, as docker does); -i decides whether the caller's input is forwarded.
            stdin: if args.interactive || args.tty {
                Stdio::Inherit
            } else {
                Stdio::Null
            },
            ..StdioConfig::inherit()
        }
    };
    let opts = SpawnOptions {
        id: Some(name.to_string()),
        state_dir: Some(wharf_dir(ctx).join("sandbox")),
        init: args.init,
        seccomp_cache: Some(DEFAULT_SECCOMP_CACHE.into()),
        // A new network namespace gets `lo` up, as docker's and podman's do.
        loopback_up: true,
        ..Default::default()
    };
    let container = Container::spawn_with(&spec, &rootfs.path(), stdio, opts)?;
    // The filesystem stays (mounted) until the container is removed, by whichever process.
    rootfs.persist()?;
    let command = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let detach = args.detach;
    records.update(name, |record| {
        record.creating = false;
        record.command = command;
        if detach {
            // No process owns it any more: it runs on its own.
            record.owner = None;
        }
    })?;
    if detach {
        container.detach();
        return Ok(None);
    }
    Ok(Some(container))
}

fn record(ctx: &Ctx, name: &str) -> Result<Record> {
    Records::open(ctx)?.get(name)
}

/// `docker ps [-a]`.
pub fn ps(ctx: &Ctx, all: bool) -> Result<()> {
    let records = Records::open(ctx)?;
    let states = state_dir(ctx)?;
    println!(
        "{:<16} {:<40} {:<30} {:<10} {:<26} PORTS",
        "NAME", "IMAGE", "COMMAND", "STATUS", "CREATED"
    );
    for r in records.list() {
        let status = if r.creating {
            if !r.owner.is_some_and(|o| o.alive()) {
                continue; // its creator died: being rolled back
            }
            "creating"
        } else {
            match states.status(&r.name) {
                Ok(Status::Running) => "running",
                Ok(Status::Created) => "created",
                Ok(Status::Creating) => "creating",
                Ok(Status::Stopped) | Err(_) => "exited",
            }
        };
        if !all && status == "exited" {
            continue;
        }
        let cmd: String = r.command.join(" ").chars().take(30).collect();
        let image = r.image.parse::<Reference>().map_or(r.image.clone(), |i| i.familiar());
        println!(
            "{:<16} {:<40} {:<30} {:<10} {:<26} {}",
            r.name,
            image,
            cmd,
            status,
            wharf::image::config::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(r.created)),
            crate::network::ports_column(ctx, &r.name)
        );
    }
    Ok(())
}

/// `docker logs`.
pub fn logs(ctx: &Ctx, name: &str) -> Result<()> {
    record(ctx, name)?;
    let dir = containers_dir(ctx).join(name);
    let out = std::fs::read(dir.join("stdout.log")).unwrap_or_default();
    let err = std::fs::read(dir.join("stderr.log")).unwrap_or_default();
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    std::io::stderr().write_all(&err)?;
    Ok(())
}

fn signal_number(s: &str) -> Result<i32> {
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    Ok(match name.as_str() {
        "TERM" => 15,
        "KILL" => 9,
        "INT" => 2,
        "HUP" => 1,
        "QUIT" => 3,
        "USR1" => 10,
        "USR2" => 12,
        n => n.parse().map_err(|_| format!("unknown signal {s:?}"))?,
    })
}

/// `docker kill` (and `stop`, which sends TERM and then KILL after a grace period).
pub fn kill(ctx: &Ctx, name: &str, signal: &str, stop: bool) -> Result<()> {
    record(ctx, name)?;
    let states = state_dir(ctx)?;
    let sig = signal_number(signal)?;
    if stop && !matches!(states.status(name), Ok(Status::Running)) {
        // docker stop of a stopped container succeeds: it is where it was asked to be (and
        // gives back the network of one that exited on its own).
        crate::network::release(ctx, name)?;
        println!("{name}");
        return Ok(());
    }
    states.kill(name, sig, true)?;
    if stop {
        // As docker stop: TERM, a grace period, then KILL; return once the container is gone.
        // (A pid 1 without a TERM handler ignores TERM, so the KILL is often what ends it.)
        let stopped = |tenths: u32| {
            (0..tenths).any(|_| {
                let running = matches!(states.status(name), Ok(Status::Running));
                if running {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                !running
            })
        };
        if !stopped(100) {
            states.kill(name, 9, true)?;
            if !stopped(100) {
                return Err(format!("container {name} did not stop after SIGKILL").into());
            }
        }
        // A stopped container gives its address, veth and published ports back, as Docker's do.
        crate::network::release(ctx, name)?;
    }
    println!("{name}");
    Ok(())
}

/// `docker rm [-f]`.
pub fn rm(ctx: &Ctx, name: &str, force: bool) -> Result<()> {
    Records::open(ctx)?.remove(ctx, name, force)?;
    println!("{name}");
    Ok(())
}

/// A handle on a container's filesystem for `f`, kept mounted afterwards.
fn with_rootfs<T>(ctx: &Ctx, name: &str, f: impl FnOnce(&Rootfs) -> Result<T>) -> Result<T> {
    record(ctx, name)?;
    let rootfs = Rootfs::attach(&layer_cache(ctx)?, rootfs_base(ctx).join(name))?;
    let out = f(&rootfs);
    rootfs.persist()?;
    out
}

/// `docker commit`: the container's changes as a new layer on top of its image.
pub fn commit(ctx: &Ctx, name: &str, target: &str) -> Result<()> {
    let target: Reference = target.parse()?;
    let base: Reference = record(ctx, name)?.image.parse()?;
    let image = ctx.store.image(&base, &ctx.platform)?;
    let committed = with_rootfs(ctx, name, |rootfs| {
        let opts = wharf::rootfs::CommitOptions {
            created_by: format!("wharf commit {name}"),
            ..Default::default()
        };
        Ok(rootfs.commit(&ctx.store, &image, &target, &opts)?)
    })?;
    println!("{}", committed.config_digest);
    Ok(())
}

/// `docker export`: the container's whole filesystem as one tar.
pub fn export(ctx: &Ctx, name: &str, output: &Path) -> Result<()> {
    let temp = output.with_extension("partial");
    let res = with_rootfs(ctx, name, |rootfs| {
        let file = File::create(&temp).map_err(|e| format!("create {}: {e}", temp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        rootfs.export(&mut out)?;
        std::io::Write::flush(&mut out)?;
        Ok(())
    })
    .and_then(|()| Ok(std::fs::rename(&temp, output)?));
    if res.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    res
}

/// `docker top`: the container's processes, with their pids on the host and inside.
pub fn top(ctx: &Ctx, name: &str) -> Result<()> {
    record(ctx, name)?;
    println!("{:<10} {:<10} CMD", "PID", "CTR PID");
    for p in state_dir(ctx)?.processes(name)? {
        println!("{:<10} {:<10} {}", p.host_pid, p.container_pid, p.cmdline.join(" "));
    }
    Ok(())
}

/// `docker exec`: another process in a running container, with the container's environment,
/// user and security settings; returns its exit code.
pub fn exec(ctx: &Ctx, name: &str, command: Vec<String>, env: Vec<String>, tty: bool) -> Result<u8> {
    record(ctx, name)?;
    let states = state_dir(ctx)?;
    let spec = Spec::load(states.dir(name).join("config.json"))?;
    let mut process = spec.process().clone().ok_or("the container's spec has no process")?;
    process.set_args(Some(command));
    process.set_terminal(Some(tty));
    let mut all_env = process.env().clone().unwrap_or_default();
    for e in env {
        let key = e.split('=').next().unwrap_or_default().to_string();
        all_env.retain(|x| x.split('=').next() != Some(key.as_str()));
        all_env.push(e);
    }
    process.set_env(Some(all_env));
    let mut handle = states.exec(name, &process, StdioConfig::inherit())?;
    if tty && let Some(master) = handle.pty_master.take() {
        proxy_terminal(master, true)?;
    }
    Ok(match handle.wait()? {
        ExitStatus::Exited(c) => (c & 0xff) as u8,
        ExitStatus::Signaled(s) => (128 + s) as u8,
    })
}

/// `docker stats --no-stream`.
pub fn stats(ctx: &Ctx, name: &str) -> Result<()> {
    record(ctx, name)?;
    let state = state_dir(ctx)?.load(name)?;
    let s = state.cgroup.stats();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "name": name,
            "memory_usage": s.memory_usage,
            "memory_peak": s.memory_peak,
            "memory_limit": s.memory_limit,
            "cpu_usage_ns": s.cpu_usage_ns,
            "pids": s.pids_current,
            "oom_kills": s.oom_kills,
        }))?
    );
    Ok(())
}

#[path = "../common/raw_mode.rs"]
mod raw_mode;
use raw_mode::RawMode;

/// Copies between the caller's terminal and the container's pty until the container closes it.
fn proxy_terminal(master: File, interactive: bool) -> Result<()> {
    use std::io::{Read, Write};
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(&master, size);
    }
    let _raw = RawMode::enter();
    if interactive {
        let mut to_container = master.try_clone()?;
        // Ends with the process: a blocked read of stdin must not keep the container waiting.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_container.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut from_container = master;
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    // EIO from the master means the container's side closed.
    while let Ok(n) = from_container.read(&mut buf) {
        if n == 0 {
            break;
        }
        stdout.write_all(&buf[..n])?;
        stdout.flush()?;
    }
    Ok(())
}

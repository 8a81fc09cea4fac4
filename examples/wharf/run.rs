//! Containers: run (foreground or detached), logs, wait, attach, restart, stop/kill, rm, exec, commit, export —
//! each a mapping of arguments to [`wharf::engine`] calls, and printing.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wharf::engine::{AttachEvent, ContainerSettings, ExecSettings, Limits, LogOptions, LogStream, Output};
use wharf::image::Reference;
use wharf::sandbox::{ExitStatus, StdioConfig};

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
    /// Labels, KEY=VALUE (or KEY, for an empty value)
    #[arg(short, long)]
    pub label: Vec<String>,
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
    /// Restart policy of a detached container: no, on-failure[:N], always, unless-stopped
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Log option of a detached container: max-size=SIZE, max-file=N
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// The image
    pub image: String,
    /// Command and arguments [default: the image's]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The engine's settings for these flags.
    fn settings(&self) -> Result<ContainerSettings> {
        let namespace = |flag: &str, value: &str| value.parse().map_err(|e| format!("invalid --{flag} {value:?}: {e}"));
        let mut log = LogOptions::default();
        for opt in &self.log_opt {
            log.set(opt)?;
        }
        Ok(ContainerSettings {
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| vec![e.clone()]),
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            mounts: self.volume.iter().map(|v| v.parse()).collect::<Result<_, _>>()?,
            limits: Limits {
                memory: self.memory.as_deref().map(Limits::parse_size).transpose()?,
                cpus: self.cpus,
                pids: self.pids_limit,
            },
            network: self.network.settings(),
            pid: namespace("pid", &self.pid)?,
            ipc: namespace("ipc", &self.ipc)?,
            read_only: self.read_only,
            init: self.init,
            tty: self.tty,
            stdin_open: self.interactive,
            output: if self.detach { Output::Logs } else { Output::Inherit },
            auto_remove: self.rm,
            restart: self.restart.parse()?,
            log,
            labels: self
                .label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            ..Default::default()
        })
    }
}

/// `docker run`. Returns the container's exit code (128+signal when killed), as docker does.
pub fn run(ctx: &Ctx, args: RunArgs, insecure: &[String]) -> Result<u8> {
    if let Some(name) = &args.name {
        wharf::engine::check_name(name)?;
    }
    let settings = args.settings()?;
    let r: Reference = args.image.parse()?;
    // Pulled here rather than by the engine, for the progress bars and the interruption message.
    if let Err(wharf::engine::Error::Image(wharf::image::Error::ImageNotFound(_))) = ctx.engine.image(&r) {
        eprintln!("Unable to find image '{}' locally", r.familiar());
        crate::registry::pull_quiet(ctx, &r, insecure, true, true)?;
    }
    let (name, started) = ctx.engine.run_attached(&args.image, &settings)?;
    for warning in &started.warnings {
        eprintln!("wharf: {warning}");
    }
    if args.detach {
        println!("{name}");
        return Ok(0);
    }
    if args.tty {
        let master = started.terminal.ok_or("the sandbox gave no terminal")?;
        proxy_terminal(master, args.interactive)?;
    }
    let exit = ctx.engine.wait(&name)?;
    if exit.oom_killed {
        eprintln!("wharf: the container was killed for exceeding its memory limit (OOM)");
    }
    Ok(exit.status().map_or(255, |s| (s & 0xff) as u8))
}

/// `docker logs [-f]`.
pub fn logs(ctx: &Ctx, name: &str, follow: bool, since: Option<&str>, tail: Option<usize>) -> Result<()> {
    let name = &ctx.engine.resolve(name)?;
    use std::io::Write;
    let since = since.map(parse_since).transpose()?;
    // What is there now, from `since` when asked.
    let snapshot = || match since {
        Some(t) => ctx.engine.logs_since(name, t),
        None => ctx.engine.logs(name),
    };
    if follow {
        let follower = |stream| match since {
            Some(t) => ctx.engine.follow_logs_since(name, stream, t),
            None => ctx.engine.follow_logs(name, stream),
        };
        let (mut out, mut err) = (follower(LogStream::Stdout)?, follower(LogStream::Stderr)?);
        if let Some(n) = tail {
            // The last lines of what is there now, then the followers go on after it: they start where this
            // snapshot starts, so skipping its length lands where it ends.
            let now = snapshot()?;
            let skip = |r: &mut wharf::engine::FollowLogs, len: usize| {
                std::io::copy(&mut std::io::Read::take(r, len as u64), &mut std::io::sink())
            };
            skip(&mut out, now.stdout.len())?;
            skip(&mut err, now.stderr.len())?;
            let last = now.tail(n);
            std::io::stdout().write_all(&last.stdout)?;
            std::io::stderr().write_all(&last.stderr)?;
        }
        let errors = std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::stderr()));
        std::io::copy(&mut out, &mut std::io::stdout())?;
        errors.join().map_err(|_| "copying the container's stderr failed")??;
        return Ok(());
    }
    let logs = snapshot()?;
    let logs = if let Some(n) = tail { logs.tail(n) } else { logs };
    std::io::stdout().write_all(&logs.stdout)?;
    std::io::stderr().write_all(&logs.stderr)?;
    Ok(())
}

/// `--since`'s forms, as docker's: an RFC 3339 time, Unix seconds (with a fraction), or a time ago (`10m`,
/// `1h30m`, `45s`, `1.5h`).
fn parse_since(s: &str) -> Result<SystemTime> {
    let bad = || format!("--since {s:?}: not a time (2026-12-03T20:00:00Z), Unix seconds or a time ago (10m)");
    if let Ok(secs) = s.parse::<f64>()
        && secs >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    if let Some(t) = crate::images::parse_rfc3339(s) {
        return Ok(t);
    }
    let mut ago = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let unit = match &rest[digits..digits + unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad().into()),
        };
        ago += Duration::from_secs_f64(value * unit);
        rest = &rest[digits + unit_len..];
    }
    Ok(SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH))
}

/// `docker wait`: the container's exit code once it stops (128+signal when killed; 255 when nobody saw it).
pub fn wait(ctx: &Ctx, name: &str) -> Result<()> {
    let name = &ctx.engine.resolve(name)?;
    let exit = ctx.engine.wait(name)?;
    println!("{}", exit.status().unwrap_or(255));
    Ok(())
}

/// `docker attach`: the container's output from now on, and this terminal's input to it; ^P^Q detaches. Returns
/// the container's exit code once it stops (0 when detached).
pub fn attach(ctx: &Ctx, name: &str) -> Result<u8> {
    let name = &ctx.engine.resolve(name)?;
    use std::io::{Read, Write};
    let tty = ctx.engine.inspect(name)?.settings.is_some_and(|s| s.tty);
    if tty && let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        // The container's terminal takes our terminal's size, and follows it (looked at four times a second).
        ctx.engine.resize(name, size.ws_row, size.ws_col)?;
        let (engine, name, mut last) = (ctx.engine.clone(), name.to_string(), (size.ws_row, size.ws_col));
        std::thread::spawn(move || {
            while let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
                if (size.ws_row, size.ws_col) != last {
                    last = (size.ws_row, size.ws_col);
                    if engine.resize(&name, last.0, last.1).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    let mut attached = ctx.engine.attach(name)?;
    let mut input = attached.input()?;
    // A container's terminal gets our keys as they are typed (^P^Q included), as docker attach does.
    let raw = tty.then(RawMode::enter);
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let detach = detached.clone();
    // Ends with the process: a blocked read of stdin must not keep it alive.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        let mut last = 0u8;
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                // The end of our input is not the end of the container's: it runs on, as with docker.
                return;
            }
            for &b in &buf[..n] {
                // ^P^Q: docker's detach keys.
                if last == 0x10 && b == 0x11 {
                    detach.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = input.shutdown(std::net::Shutdown::Both);
                    return;
                }
                last = b;
            }
            if input.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let mut code = 0;
    loop {
        let event = match attached.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(_) if detached.load(std::sync::atomic::Ordering::SeqCst) => break,
            Err(e) => return Err(e.into()),
        };
        match event {
            AttachEvent::Output(LogStream::Stdout, bytes) => {
                let mut out = std::io::stdout();
                out.write_all(&bytes)?;
                out.flush()?;
            }
            AttachEvent::Output(LogStream::Stderr, bytes) => std::io::stderr().write_all(&bytes)?,
            AttachEvent::Exited(exit) => code = exit.status().map_or(255, |s| (s & 0xff) as u8),
        }
    }
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        drop(raw);
        eprintln!("read escape sequence");
        return Ok(0);
    }
    Ok(code)
}

/// `docker restart`: stop (TERM, then KILL after `timeout` seconds), then start; the container gets a new
/// process.
pub fn restart(ctx: &Ctx, name: &str, timeout: u64) -> Result<()> {
    // Named by the user's word (name or id), which is echoed back as docker does.
    let (given, name) = (name, &ctx.engine.resolve(name)?);
    ctx.engine.restart(name, Duration::from_secs(timeout))?;
    println!("{given}");
    Ok(())
}

/// `docker stop`: TERM, then KILL after 10 seconds.
pub fn stop(ctx: &Ctx, name: &str, timeout: Duration) -> Result<()> {
    // Named by the user's word (name or id), which is echoed back as docker does.
    let (given, name) = (name, &ctx.engine.resolve(name)?);
    ctx.engine.stop(name, timeout)?;
    println!("{given}");
    Ok(())
}

/// `docker kill`.
pub fn kill(ctx: &Ctx, name: &str, signal: &str) -> Result<()> {
    // Named by the user's word (name or id), which is echoed back as docker does.
    let (given, name) = (name, &ctx.engine.resolve(name)?);
    ctx.engine.kill(name, wharf::engine::signal_number(signal)?)?;
    println!("{given}");
    Ok(())
}

/// `docker rm [-f]`.
pub fn rm(ctx: &Ctx, name: &str, force: bool) -> Result<()> {
    // Named by the user's word (name or id), which is echoed back as docker does.
    let (given, name) = (name, &ctx.engine.resolve(name)?);
    ctx.engine.remove(name, force)?;
    println!("{given}");
    Ok(())
}

/// `docker commit`: the container's changes as a new layer on top of its image.
pub fn commit(ctx: &Ctx, name: &str, target: &str) -> Result<()> {
    let name = &ctx.engine.resolve(name)?;
    let committed = ctx.engine.commit(name, &target.parse()?)?;
    println!("{}", committed.config_digest);
    Ok(())
}

/// `docker export`: the container's whole filesystem as one tar.
pub fn export(ctx: &Ctx, name: &str, output: &Path) -> Result<()> {
    let name = &ctx.engine.resolve(name)?;
    let temp = output.with_extension("partial");
    let res = (|| -> Result<()> {
        let file = File::create(&temp).map_err(|e| format!("create {}: {e}", temp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        ctx.engine.export(name, &mut out)?;
        std::io::Write::flush(&mut out)?;
        Ok(std::fs::rename(&temp, output)?)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    res
}

/// `docker exec`: another process in a running container, with the container's environment,
/// user and security settings; returns its exit code.
pub fn exec(ctx: &Ctx, name: &str, settings: &ExecSettings) -> Result<u8> {
    let name = &ctx.engine.resolve(name)?;
    let mut handle = ctx.engine.exec(name, settings, StdioConfig::inherit())?;
    if settings.tty
        && let Some(master) = handle.pty_master.take()
    {
        proxy_terminal(master, true)?;
    }
    Ok(match handle.wait()? {
        ExitStatus::Exited(c) => (c & 0xff) as u8,
        ExitStatus::Signaled(s) => (128 + s) as u8,
    })
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

//! `wharf`: a small docker-like command line built only on the public APIs of the wharf crates.
//!
//! `cargo run --example wharf -- --help`. Every command prints one clear line on error (`Error: …`, a missing
//! container as docker's `Error: No such container: NAME`) and exits with docker's codes: 125 for wharf's own
//! failures (a bad flag too), 126 when a container's command cannot be invoked, 127 when it is not found. Output to
//! a closed pipe (`| head`) ends quietly with 141, as a process killed by SIGPIPE.

mod files;
mod images;
mod inspect;
mod network;
mod ps;
mod registry;
mod run;
mod system;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wharf::engine::{Engine, EngineOptions};
use wharf::image::{Platform, Store};

/// Errors of the CLI: any error of the crates, shown as one line.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "A small docker-like tool built on the wharf crates"
)]
struct Cli {
    /// Image store directory [default: $WHARF_ROOT, else /var/lib/wharf as root, else ~/.local/share/wharf]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Platform to choose from multi-platform images, as os/arch[/variant]
    #[arg(long, global = true)]
    platform: Option<Platform>,
    /// Registries (host[:port]) to reach over plain http (localhost always is)
    #[arg(long = "insecure-registry", global = true)]
    insecure: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry into the store
    Pull {
        /// The image, e.g. busybox or localhost:5000/team/app:1
        image: String,
        /// Also list each layer's files
        #[arg(long)]
        files: bool,
        /// Also extract each layer into the layer cache while it downloads, so that the first
        /// `run` starts without reading the image again (as `run` does when it pulls)
        #[arg(long)]
        unpack: bool,
    },
    /// Push an image from the store to its registry
    Push {
        /// The image
        image: String,
    },
    /// Run a command in a new container
    Run(Box<run::RunArgs>),
    /// List running containers (as docker ps: -a, -q, --filter, --format)
    Ps(ps::PsArgs),
    /// Create, list, inspect and remove networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Show a container's published ports
    Port {
        /// The container
        name: String,
    },
    /// Block until a container stops, then print its exit code
    Wait {
        /// The container
        name: String,
    },
    /// Attach to a running detached container's output and input (detach with ^P^Q or by ending this)
    Attach {
        /// The container
        name: String,
    },
    /// Restart a container: stop it (TERM, then KILL after the timeout), then start it
    Restart {
        /// Seconds to wait for it to stop before killing it
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// The container
        name: String,
    },
    /// Give a stopped container another name (its id stays)
    Rename {
        /// The container
        old: String,
        /// Its new name
        new: String,
    },
    /// Show a detached container's output
    Logs {
        /// Keep showing what it writes until it stops
        #[arg(short, long)]
        follow: bool,
        /// Only what it wrote at or after this time: an RFC 3339 time (2026-12-03T20:00:00Z), Unix seconds, or a
        /// time ago (10m, 1h30m, 45s)
        #[arg(long)]
        since: Option<String>,
        /// Only the last N lines of each stream
        #[arg(short = 'n', long)]
        tail: Option<usize>,
        /// The container
        name: String,
    },
    /// Stop containers: TERM, then KILL after -t seconds (10)
    Stop {
        /// Seconds to wait after TERM before KILL
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        /// The containers
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to containers' processes
    Kill {
        /// The containers
        #[arg(required = true)]
        names: Vec<String>,
        /// Signal name or number
        #[arg(short, long, default_value = "KILL")]
        signal: String,
    },
    /// Remove containers
    Rm {
        /// The containers
        #[arg(required = true)]
        names: Vec<String>,
        /// Kill it first if it runs
        #[arg(short, long)]
        force: bool,
    },
    /// Create a new image from a container's changes
    Commit {
        /// The container
        name: String,
        /// Name of the new image
        image: String,
    },
    /// Export a container's filesystem as a tar archive
    Export {
        /// The container
        name: String,
        /// Output file
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a command in a running container
    Exec {
        /// Allocate a terminal
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Extra environment, KEY=VALUE
        #[arg(short, long)]
        env: Vec<String>,
        /// Working directory inside the container (absolute) [default: the container's]
        #[arg(short, long)]
        workdir: Option<String>,
        /// User (name, uid, uid:gid, name:group), from the container's /etc/passwd [default: the container's]
        #[arg(short, long)]
        user: Option<String>,
        /// The container
        name: String,
        /// Command and arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List a container's processes, as the host's ps shows them (ps options: default -ef)
    Top {
        /// The container
        name: String,
        /// Options of ps, e.g. -o pid,comm
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Show containers' resource usage, a table a second until ^C (--no-stream for one)
    Stats(usage::StatsArgs),
    /// Change containers' limits (memory, CPUs, processes): live when they run, at the next start when not
    Update(usage::UpdateArgs),
    /// Copy files between a container and the host: NAME:SRC DEST, SRC NAME:DEST (- for a tar on stdin or stdout)
    Cp {
        /// Archive mode: keep the files' owners (uid and gid) instead of root's (in) or the caller's (out)
        #[arg(short, long)]
        archive: bool,
        /// NAME:PATH, a host path, or - (a tar on standard input)
        src: String,
        /// NAME:PATH, a host path, or - (a tar to standard output)
        dest: String,
    },
    /// Show what changed in a container's filesystem: A (added), C (changed), D (deleted)
    Diff {
        /// The container
        name: String,
    },
    /// Show this program's and the library's versions
    Version,
    /// Show the containers and images of the root and what the host gives containers
    Info,
    /// The root's disk use: `system df`
    #[command(subcommand)]
    System(SystemCommand),
    /// Registry operations: catalog, tags, delete and restore
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// List images in the store
    Images,
    /// Remove images and the layers no other image uses
    Rmi {
        /// Images to remove
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove every blob no image references, and print what was freed
    Prune,
    /// Show containers (state, config, mounts) and images (config, layers, history) as a JSON array
    Inspect {
        /// Only look for this kind: container or image
        #[arg(long = "type")]
        kind: Option<String>,
        /// Containers (name or id) or images
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show an image's history
    History {
        /// The image
        image: String,
    },
    /// Give an image another name
    Tag {
        /// Existing image
        source: String,
        /// New name
        target: String,
    },
    /// Write images to a docker-save archive
    Save {
        /// Output file
        #[arg(short, long)]
        output: PathBuf,
        /// Images to save
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from a docker-save or OCI archive (standard input without -i)
    Load {
        /// Input file [default: standard input]
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Import a root filesystem (a tar, possibly compressed, or a directory) as an image
    Import {
        /// A tar file (possibly compressed), - for one on standard input, or a directory
        source: PathBuf,
        /// Name for the image
        image: String,
        /// Default command, e.g. --cmd /bin/sh --cmd -c --cmd 'echo hi'
        #[arg(long)]
        cmd: Vec<String>,
        /// Default environment, KEY=VALUE
        #[arg(short, long)]
        env: Vec<String>,
        /// A Dockerfile instruction for the config, as `docker import -c`: CMD, ENTRYPOINT, ENV, EXPOSE,
        /// LABEL, USER, WORKDIR (e.g. -c 'EXPOSE 80')
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Show the disk space images and containers use, and how much removing unused ones would free
    Df,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// List the repositories of a registry
    Catalog {
        /// host[:port]
        host: String,
    },
    /// List the tags of a repository
    Tags {
        /// The repository, e.g. localhost:5000/team/app
        image: String,
    },
    /// Delete a manifest on the registry, saving its body so it can be restored
    Delete {
        /// The image (tag or digest)
        image: String,
    },
    /// Put back a manifest deleted with `registry delete`
    Restore {
        /// The image as it was deleted
        image: String,
    },
}

/// What every command gets: the engine, its store and the platform.
pub struct Ctx {
    /// The engine on the store.
    pub engine: Engine,
    /// The image store.
    pub store: Store,
    /// The platform to choose.
    pub platform: Platform,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let store = match &cli.root {
        Some(r) => Store::open(r)?,
        None => Store::open_default()?,
    };
    let platform = cli.platform.unwrap_or_else(Platform::host);
    let options = EngineOptions {
        platform: platform.clone(),
        insecure_registries: cli.insecure.clone(),
        ..Default::default()
    };
    let ctx = Ctx {
        engine: Engine::with_store(store.clone(), options)?,
        store,
        platform,
    };
    let insecure = &cli.insecure;
    match cli.command {
        Command::Pull { image, files, unpack } => registry::pull(&ctx, &image, insecure, files, unpack)?,
        Command::Push { image } => registry::push(&ctx, &image, insecure)?,
        Command::Registry(RegistryCommand::Catalog { host }) => registry::catalog(&host, insecure)?,
        Command::Registry(RegistryCommand::Tags { image }) => registry::tags(&image, insecure)?,
        Command::Registry(RegistryCommand::Delete { image }) => registry::delete(&ctx, &image, insecure)?,
        Command::Registry(RegistryCommand::Restore { image }) => registry::restore(&ctx, &image, insecure)?,
        Command::Run(args) => return Ok(ExitCode::from(run::run(&ctx, *args, insecure)?)),
        Command::Ps(args) => ps::ps(&ctx, &args)?,
        Command::Network(cmd) => network::network(&ctx, cmd)?,
        Command::Port { name } => network::port(&ctx, &name)?,
        Command::Rename { old, new } => ctx.engine.rename(&ctx.engine.resolve(&old)?, &new)?,
        Command::Logs {
            follow,
            since,
            tail,
            name,
        } => run::logs(&ctx, &name, follow, since.as_deref(), tail)?,
        Command::Wait { name } => run::wait(&ctx, &name)?,
        Command::Attach { name } => return Ok(ExitCode::from(run::attach(&ctx, &name)?)),
        Command::Restart { time, name } => run::restart(&ctx, &name, time)?,
        Command::Stop { time, names } => {
            return Ok(each(&names, |n| run::stop(&ctx, n, Duration::from_secs(time))));
        }
        Command::Kill { names, signal } => return Ok(each(&names, |n| run::kill(&ctx, n, &signal))),
        Command::Rm { names, force } => return Ok(each(&names, |n| run::rm(&ctx, n, force))),
        Command::Exec {
            tty,
            env,
            workdir,
            user,
            name,
            command,
        } => {
            let settings = wharf::engine::ExecSettings {
                command,
                env,
                workdir,
                user,
                tty,
            };
            return Ok(ExitCode::from(run::exec(&ctx, &name, &settings)?));
        }
        Command::Commit { name, image } => run::commit(&ctx, &name, &image)?,
        Command::Export { name, output } => run::export(&ctx, &name, &output)?,
        Command::Top { name, ps_args } => usage::top(&ctx, &name, &ps_args)?,
        Command::Stats(args) => usage::stats(&ctx, &args)?,
        Command::Update(args) => usage::update(&ctx, &args)?,
        Command::Cp { archive, src, dest } => files::cp(&ctx, &src, &dest, archive)?,
        Command::Diff { name } => files::diff(&ctx, &name)?,
        Command::Version => system::version()?,
        Command::Info => system::info(&ctx)?,
        Command::System(SystemCommand::Df) => system::df(&ctx)?,
        Command::Images => images::images(&ctx)?,
        Command::Rmi { images } => images::rmi(&ctx, &images)?,
        Command::Prune => images::prune(&ctx)?,
        Command::Inspect { kind, names } => inspect::inspect(&ctx, &names, kind.as_deref())?,
        Command::History { image } => images::history(&ctx, &image)?,
        Command::Tag { source, target } => images::tag(&ctx, &source, &target)?,
        Command::Save { output, images } => images::save(&ctx, &output, &images)?,
        Command::Load { input } => images::load(&ctx, input.as_deref())?,
        Command::Import {
            source,
            image,
            cmd,
            env,
            changes,
        } => images::import(&ctx, &source, &image, cmd, env, &changes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends this process quietly, with the status of a
/// process killed by SIGPIPE (as docker's CLI ends), instead of an error or a panic.
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(128 + libc::SIGPIPE),
        res => Ok(res?),
    }
}

/// One line: the error and its causes, joined by ": ".
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line.replace('\n', " ")
}

/// docker's exit status for a failed command: 127 when the container's command is not found, 126 when it cannot be
/// invoked, 125 for wharf's own failures (a bad flag, no such image or container, …).
/// `f` for each of `names`, as docker's stop, kill and rm do: each failure said (`Error: ...`) and the others
/// still done; the exit code is the last failure's (0 when none failed).
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> ExitCode {
    let mut code = 0;
    for name in names {
        if let Err(e) = f(name) {
            if stdout_closed() {
                return ExitCode::from(128 + libc::SIGPIPE as u8);
            }
            eprintln!("Error: {}", one_line(e.as_ref()));
            code = exit_code(e.as_ref());
        }
    }
    ExitCode::from(code)
}

fn exit_code(e: &(dyn std::error::Error + 'static)) -> u8 {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<wharf::engine::Error>() {
            match e.command_failure() {
                Some(wharf::engine::CommandFailure::NotFound) => return 127,
                Some(_) => return 126,
                None => {}
            }
        }
        source = e.source();
    }
    125
}

/// The reader of our stdout went away (`wharf ps | head`): its write end reports an error to poll.
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd that lives across the call; a zero timeout does not block.
    unsafe { libc::poll(&mut fd, 1, 0) == 1 && fd.revents & libc::POLLERR != 0 }
}

/// Output to a closed pipe ends this program quietly, with the status of a process killed by SIGPIPE (as docker's
/// CLI ends): Rust ignores SIGPIPE, so a `println!` to a closed pipe would panic, and a write an error.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_closed() {
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    // `run -d` runs this program again as the container's supervisor.
    wharf::engine::supervisor::run_if_requested();
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are no failure; a bad flag is wharf's (125, as docker run's).
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if stdout_closed() => {
            drop(e);
            ExitCode::from(128 + libc::SIGPIPE as u8)
        }
        Err(e) => {
            eprintln!("Error: {}", one_line(e.as_ref()));
            ExitCode::from(exit_code(e.as_ref()))
        }
    }
}

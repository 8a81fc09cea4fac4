//! Supervised containers: a small monitor process per detached container, as conmon is for podman and the shim
//! for containerd.
//!
//! A container with [`Output::Logs`] (`docker run -d`) is started by a **supervisor**: a
//! process of its own that outlives the program that started it. The supervisor is the container's parent: it
//! reaps it, records its exit code, signal, OOM kills and finish time in the container's record, applies the
//! [`RestartPolicy`](super::RestartPolicy), writes standard output and error to the container's logs with
//! rotation ([`LogOptions`](super::LogOptions)) and serves [`Engine::attach`](super::Engine::attach). It ends
//! once the container has stopped for good (and, with auto-remove, after removing it).
//!
//! # What an embedding program adds to `main`
//! A library cannot install a program, so the engine starts the supervisor by running **the program it is part
//! of** again (`/proc/self/exe`, as moby's `reexec` and runc's `nsenter` do) with a marker in its environment.
//! Such a program calls [`run_if_requested`] first thing in `main`: in the supervisor it never returns, anywhere
//! else it returns at once and costs one environment lookup.
//!
//! ```no_run
//! fn main() -> Result<(), wharf::engine::Error> {
//!     wharf::engine::supervisor::run_if_requested();
//!     let engine = wharf::engine::Engine::open("/var/lib/wharf")?;
//!     // … the program as before
//!     # drop(engine);
//!     Ok(())
//! }
//! ```
//!
//! A program that cannot (a test harness, a program that must not be run twice) names another program whose
//! `main` does, with [`EngineOptions::supervisor`](super::EngineOptions::supervisor) =
//! [`Supervisor::Program`], or keeps containers in-process with [`Supervisor::InProcess`]. As a safety net, the
//! re-run program turns into the supervisor in [`Engine::open`](super::Engine::open) if its `main` forgot the call
//! (after whatever it did before); a program that never opens an engine makes [`Engine::start`](super::Engine::start)
//! fail after 60 s with [`Error::Supervisor`] saying what is missing.
//!
//! # The supervisor's life
//! - **Started detached**: a new session (`setsid`: no controlling terminal, so a `^C` in the starter's terminal
//!   does not reach it, nor does the terminal's hang-up), standard streams on `/dev/null`, its own errors in
//!   `supervisor.log` beside the container's record. Nothing is `fork`ed: the starter runs a new program, and the
//!   supervisor (single-threaded until then) spawns the container with the sandbox's `clone3`.
//! - **Handshake**: a socket pair tells the starter the container's pid, or the error that kept it from
//!   starting (so [`Engine::start`](super::Engine::start) fails as it would in-process, with the message);
//!   while the starter lives, the pair also carries each exit, so its [`Engine::wait`](super::Engine::wait)
//!   does not poll.
//! - **Owner**: the record names the supervisor (pid and start time) as its owner while it lives. Another engine
//!   sees the container running while its pid (with its start time) lives.
//! - **Killed** (`SIGKILL`): the container keeps running, reparented to the host's init, which reaps it. It is
//!   still listed, shown running while its process lives, and stoppable and removable by any engine; once it has
//!   ended the next engine to look records its exit as unknown. Its output then has no reader: a container that
//!   keeps writing gets `EPIPE` (or `SIGPIPE`), as with conmon.
//! - **Cost**: one `exec` of the program and a few threads that sleep in `read`. `benches/detached.sh` compares
//!   `run -d` returning with an attached `run --rm` of `/bin/true`: about 1.1 times (medians of 15–18 ms against
//!   14–18 ms on 2 shared cores).
//!
//! # Attach
//! The supervisor listens on `attach.sock` in the container's directory. A client says `A` first to attach, or
//! `R` and two big-endian `u16`s (rows, columns) to resize the container's terminal (answered by a greeting frame
//! when done). An attached client gets, after a one-frame greeting, the container's output as frames of docker's attach format (8-byte header: stream 1 or 2, three
//! zero bytes, a big-endian `u32` length), and a last frame (stream 3) with the exit as JSON; what it sends is the
//! container's standard input (with [`ContainerSettings::stdin_open`](super::ContainerSettings::stdin_open) or a
//! terminal). Output written before a client connected is in the logs only, as with `docker attach`.

mod monitor;
mod output;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::{CommandFailure, Error, Result};
use super::lifecycle::Started;
use super::records::{Record, RecordedExit};
use super::wait::{ExitInfo, Watch};
use super::{Engine, settings::Output};

pub(crate) use output::{ATTACH, ATTACH_SOCKET, Frame, RESIZE, read_frame};

/// The environment variable that makes a program the supervisor: `FD:NAME:ROOT`.
const ENV: &str = "_WHARF_SUPERVISE";

/// How long [`Engine::start`] waits for the supervisor to say the container runs.
const HANDSHAKE: Duration = Duration::from_secs(60);

/// Set once this process is a supervisor (so that its own engine does not try to become one again).
static SUPERVISING: AtomicBool = AtomicBool::new(false);

/// Which program supervises detached containers ([`EngineOptions::supervisor`](super::EngineOptions::supervisor)).
///
/// # Examples
/// ```
/// use wharf::engine::{EngineOptions, Supervisor};
/// // A test harness cannot run itself again: the example CLI, whose main calls run_if_requested, supervises.
/// let options = EngineOptions {
///     supervisor: Supervisor::Program("/usr/local/bin/wharf".into()),
///     ..Default::default()
/// };
/// assert_ne!(options.supervisor, Supervisor::ThisProgram);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Supervisor {
    /// This program, run again (`/proc/self/exe`); its `main` calls [`run_if_requested`]. The default.
    #[default]
    ThisProgram,
    /// Another program whose `main` calls [`run_if_requested`] (e.g. the example CLI, or a small binary shipped
    /// beside the embedding one). Given the same environment as this process.
    Program(PathBuf),
    /// No supervisor: the process that starts a detached container reaps it on a thread, as foreground ones
    /// are. Its exit is recorded only while that process lives; no restart policy, no log rotation, no attach.
    InProcess,
}

/// Turns this process into a container's supervisor if the engine started it as one, and then never returns
/// (it exits once the container has stopped for good); returns at once otherwise. Call it first thing in
/// `main` (see the [module docs](self#what-an-embedding-program-adds-to-main)).
pub fn run_if_requested() {
    let Some(request) = std::env::var_os(ENV) else { return };
    if SUPERVISING.swap(true, Ordering::SeqCst) {
        // This process supervises already (its own engine opened): nothing more to do here.
        return;
    }
    let Some((fd, name, root)) = parse_request(&request) else {
        eprintln!("wharf supervisor: malformed {ENV}: {request:?}");
        std::process::exit(125);
    };
    // SAFETY: the starter passed this descriptor (its end of the socket pair) under this number; nothing else in
    // this process owns it.
    let report = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Not passed on to the container or anything else this process runs.
    let _ = rustix::io::fcntl_setfd(&report, rustix::io::FdFlags::CLOEXEC);
    // SAFETY: still single-threaded (first thing in main). Whatever the starter had: children are reaped here
    // (an ignored SIGCHLD would let the kernel reap the container first, losing its exit), and a starter or a
    // client that went away is an EPIPE, not the end of the supervisor.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    std::process::exit(monitor::supervise(report, &name, &root))
}

/// `FD:NAME:ROOT` (a name has no `:`; a root may).
fn parse_request(request: &std::ffi::OsStr) -> Option<(i32, String, PathBuf)> {
    let mut parts = request.as_bytes().splitn(3, |b| *b == b':');
    let fd = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let name = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let root = PathBuf::from(OsString::from_vec(parts.next()?.to_vec()));
    super::records::check_name(&name).ok()?;
    Some((fd, name, root))
}

/// The safety net of [`Engine::open`]: a program run as a supervisor whose `main` did not call
/// [`run_if_requested`] becomes one here.
pub(crate) fn run_if_forgotten() {
    if !SUPERVISING.load(Ordering::SeqCst) {
        run_if_requested();
    }
}

/// Whether `settings` make a container this engine starts under a supervisor.
pub(crate) fn supervises(engine: &Engine, output: Output) -> bool {
    output == Output::Logs && engine.options().supervisor != Supervisor::InProcess
}

/// One line of the handshake: what the supervisor tells its starter.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    /// The container runs (again), with this pid.
    Started(i32),
    /// It ended so.
    Exited(RecordedExit),
    /// It could not be started (and, when its command was the cause, why).
    Error(Option<CommandFailure>, String),
}

impl Report {
    fn line(&self) -> String {
        match self {
            Report::Started(pid) => format!("started {pid}\n"),
            Report::Exited(e) => format!("exited {}\n", serde_json::to_string(e).unwrap_or_default()),
            Report::Error(failure, message) => {
                let word = failure.map_or("-", CommandFailure::word);
                format!("error {word} {}\n", message.replace('\n', " "))
            }
        }
    }

    fn parse(line: &str) -> Option<Report> {
        let (word, rest) = line.trim_end().split_once(' ')?;
        Some(match word {
            "started" => Report::Started(rest.parse().ok()?),
            "exited" => Report::Exited(serde_json::from_str(rest).ok()?),
            "error" => {
                let (word, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Report::Error(CommandFailure::of_word(word), message.to_string())
            }
            _ => return None,
        })
    }
}

impl Engine {
    /// Starts `record`'s container under a supervisor (see the [module docs](self)); the record says the
    /// container is started by this process already.
    pub(crate) fn start_supervised(&self, record: &Record) -> Result<Started> {
        let name = record.name.as_str();
        let program = match &self.options().supervisor {
            Supervisor::Program(p) => p.clone(),
            _ => PathBuf::from("/proc/self/exe"),
        };
        let failed = |reason: String| Error::Supervisor {
            name: name.to_string(),
            reason,
            failure: None,
        };
        let (mine, theirs) = UnixStream::pair().map_err(Error::io("make a socket pair for", &program))?;
        let fd = theirs.as_raw_fd();
        let mut request = OsString::from(format!("{fd}:{name}:"));
        request.push(self.store().root().as_os_str());
        let dir = self.records().path(name);
        let errors = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("supervisor.log"))
            .map_err(Error::io("open", dir.join("supervisor.log")))?;
        let mut command = Command::new(&program);
        command
            .env(ENV, request)
            .arg0(format!("wharf-supervisor {name}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors);
        // SAFETY: between fork and exec only async-signal-safe system calls, on a descriptor this process owns.
        unsafe {
            command.pre_exec(move || {
                rustix::process::setsid()?;
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())?;
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("cannot run the supervisor {}: {e}", program.display())))?;
        drop(theirs);
        let _ = mine.set_read_timeout(Some(HANDSHAKE));
        let mut reports = BufReader::new(mine);
        let mut line = String::new();
        let first = reports.read_line(&mut line).ok().and_then(|_| Report::parse(&line));
        let pid = match first {
            Some(Report::Started(pid)) => pid,
            Some(Report::Error(failure, message)) => {
                let _ = child.wait();
                return Err(Error::Supervisor {
                    name: name.to_string(),
                    reason: message,
                    failure,
                });
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "{} did not start it (within {} s): a program that supervises containers calls \
                     wharf::engine::supervisor::run_if_requested() first thing in main, or the engine names one \
                     that does (EngineOptions::supervisor)",
                    program.display(),
                    HANDSHAKE.as_secs()
                )));
            }
        };
        let _ = reports.get_ref().set_read_timeout(None);
        let watch = self.inner.reaping.watch(name);
        let engine = self.clone();
        let owned = name.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("wharf-supervised-{name}"))
            .spawn(move || {
                engine.follow_reports(&owned, reports, watch);
                // The supervisor has ended (or closed its end): it is not left a zombie of this process.
                let _ = child.wait();
            });
        if let Err(e) = spawned {
            // Waits fall back to the record.
            self.inner.reaping.forget(name);
            return Err(Error::io("spawn the thread that hears from the supervisor of", dir)(e));
        }
        Ok(Started {
            pid,
            terminal: None,
            stdin: None,
            stdout: None,
            stderr: None,
            warnings: record.warnings.clone(),
        })
    }

    /// Hands the supervisor's reports to this process's waiters until it ends.
    fn follow_reports(&self, name: &str, reports: BufReader<UnixStream>, mut watch: Arc<Watch>) {
        let mut finished = false;
        for line in reports.lines() {
            let Ok(line) = line else { break };
            match Report::parse(&line) {
                Some(Report::Exited(exit)) => {
                    watch.finish(ExitInfo::from(exit));
                    finished = true;
                }
                Some(Report::Started(_)) => {
                    watch = self.inner.reaping.watch(name);
                    finished = false;
                }
                _ => {}
            }
        }
        if !finished {
            // The supervisor died before the container did: whoever waits now reads the record.
            self.inner.reaping.forget_if(name, &watch);
            watch.finish(self.wait_record(name).unwrap_or(ExitInfo::UNKNOWN));
        }
    }
}

/// `path` for a socket address, short enough whatever the root: through `/proc/self/fd` of its directory.
pub(crate) fn short_path(dir: &std::fs::File, file: &str) -> PathBuf {
    Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let exit = RecordedExit {
            code: None,
            signal: Some(9),
            oom_kills: 1,
        };
        for r in [
            Report::Started(42),
            Report::Exited(exit),
            Report::Error(Some(CommandFailure::NotFound), "exec: /no: not found".into()),
            Report::Error(Some(CommandFailure::CannotInvoke), "cannot execute".into()),
            Report::Error(None, "bad user".into()),
        ] {
            assert_eq!(Report::parse(&r.line()), Some(r));
        }
        assert_eq!(
            Report::parse(&Report::Error(None, "two\nlines".into()).line()),
            Some(Report::Error(None, "two lines".into()))
        );
        assert_eq!(Report::parse("garbage"), None);
    }

    #[test]
    fn requests_parse() {
        let (fd, name, root) = parse_request("3:web:/var/lib/wh:arf".as_ref()).unwrap_or_else(|| panic!("parses"));
        assert_eq!((fd, name.as_str(), root), (3, "web", PathBuf::from("/var/lib/wh:arf")));
        assert!(parse_request("x:web:/r".as_ref()).is_none());
        assert!(parse_request("3:../x:/r".as_ref()).is_none());
    }
}

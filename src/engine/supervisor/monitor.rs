//! The supervisor process: spawns the container, logs its output, reaps it, records its exit and restarts it as
//! its policy says.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wharf_image::Store;
use wharf_sandbox::Container;

use super::output::{self, Clients, RotatingLog};
use super::{ATTACH_SOCKET, Report, Supervisor, short_path};
use crate::engine::error::{Error, Result};
use crate::engine::records::{Owner, Record, RecordedExit, now};
use crate::engine::settings::{ContainerSettings, RestartPolicy};
use crate::engine::wait::ExitInfo;
use crate::engine::{Engine, EngineOptions, network};

/// The first wait before a restart; doubled after each, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run at least this long starts the back-off again from [`FIRST_BACKOFF`].
const RESET_AFTER: Duration = Duration::from_secs(10);
/// How long the output of a container that has ended is still read (a process that escaped its pid namespace
/// may hold the pipes).
const DRAIN: Duration = Duration::from_secs(2);

/// Docker's restart decision after a run that ended with `exit`, with `restarts` restarts so far.
pub(crate) fn should_restart(policy: RestartPolicy, exit: &RecordedExit, restarts: u32, stopped_by_user: bool) -> bool {
    if stopped_by_user {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure(max) => {
            let failed = ExitInfo::from(*exit).status() != Some(0);
            failed && max.is_none_or(|m| restarts < m)
        }
    }
}

/// The wait before the next restart: docker's back-off, from the last wait and how long the run lasted.
pub(crate) fn next_backoff(last: Option<Duration>, ran: Duration) -> Duration {
    match last {
        Some(l) if ran < RESET_AFTER => (l * 2).min(MAX_BACKOFF),
        _ => FIRST_BACKOFF,
    }
}

/// Supervises container `name` of the store at `root`, telling the starter through `report`; returns the
/// process's exit code.
pub(super) fn supervise(report: UnixStream, name: &str, root: &Path) -> i32 {
    let mut report = Some(report);
    let tell = |report: &mut Option<UnixStream>, r: Report| {
        // A starter that has gone hears nothing more.
        if let Some(s) = report
            && s.write_all(r.line().as_bytes()).is_err()
        {
            *report = None;
        }
    };
    let monitor = match Monitor::new(name, root) {
        Ok(m) => m,
        Err(e) => {
            tell(&mut report, Report::Error(e.command_failure(), e.to_string()));
            return 1;
        }
    };
    monitor.run(|r| tell(&mut report, r))
}

struct Monitor {
    engine: Engine,
    name: String,
    settings: ContainerSettings,
    clients: Arc<Clients>,
    /// The container's directory, held open for the socket's short path.
    dir: std::fs::File,
}

impl Monitor {
    fn new(name: &str, root: &Path) -> Result<Monitor> {
        let options = EngineOptions {
            supervisor: Supervisor::InProcess,
            ..Default::default()
        };
        let engine = Engine::with_store(Store::open(root)?, options)?;
        let record = engine.records().get(name)?;
        let settings = record
            .settings
            .ok_or_else(|| Error::NoSuchContainer(name.to_string()))?;
        let path = engine.records().path(name);
        let dir = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
        let socket = short_path(&dir, ATTACH_SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(Error::io("listen on", path.join(ATTACH_SOCKET)))?;
        let clients = Arc::new(Clients::default());
        output::serve(listener, clients.clone()).map_err(Error::io("serve", path.join(ATTACH_SOCKET)))?;
        Ok(Monitor {
            engine,
            name: name.to_string(),
            settings,
            clients,
            dir,
        })
    }

    fn run(self, mut tell: impl FnMut(Report)) -> i32 {
        let records = self.engine.records();
        let name = self.name.as_str();
        let mut backoff = None;
        let mut first = true;
        let mut last = None;
        loop {
            let record = match records.get(name) {
                Ok(r) => r,
                Err(_) => break,
            };
            let began = Instant::now();
            let (container, pumps) = match self.spawn(&record) {
                Ok(c) => c,
                Err(e) => {
                    if first {
                        tell(Report::Error(e.command_failure(), e.to_string()));
                        self.finish(false);
                        return 1;
                    }
                    let _ = records.update(name, |r| {
                        r.warnings.push(format!("restarting it failed: {e}"));
                        r.restarting = false;
                        r.exit = r.last_exit;
                        r.finished = Some(now());
                    });
                    break;
                }
            };
            first = false;
            tell(Report::Started(container.pid()));
            let exit = self.reap(container, &pumps);
            let ran = began.elapsed();
            let mut restart = false;
            let _ = records.update(name, |r| {
                restart = should_restart(self.settings.restart, &exit, r.restart_count, r.stopped_by_user);
                r.exit = Some(exit);
                r.last_exit = Some(exit);
                r.finished = Some(now());
                r.restarting = restart;
            });
            if !restart {
                // No new client from now on: the container has ended for good.
                let _ = std::fs::remove_file(short_path(&self.dir, ATTACH_SOCKET));
            }
            self.clients.finish(ExitInfo::from(exit));
            last = Some(exit);
            if !restart {
                break;
            }
            tell(Report::Exited(exit));
            let wait = next_backoff(backoff, ran);
            backoff = Some(wait);
            if !self.sleep_unless_stopped(wait) {
                break;
            }
        }
        self.finish(true);
        // Told once it is all done (an auto-remove container removed), as a waiter of an in-process reaper is.
        if let Some(exit) = last {
            tell(Report::Exited(exit));
        }
        0
    }

    /// Spawns the next run (the record says whether it is the first) and wires its streams.
    fn spawn(&self, record: &Record) -> Result<(Container, Vec<JoinHandle<()>>)> {
        let records = self.engine.records();
        let name = self.name.as_str();
        let restart = record.restarting;
        let me = Owner::me();
        if restart {
            let mut stopped = false;
            records.update(name, |r| {
                stopped = r.stopped_by_user;
                if !stopped {
                    r.restart_count += 1;
                    r.started = Some(now());
                    r.finished = None;
                    r.exit = None;
                }
            })?;
            if stopped {
                return Err(Error::NotRunning(name.to_string()));
            }
        }
        let mut container = self.engine.spawn_container(record, &self.settings, true)?;
        records.update(name, |r| {
            r.owner = Some(me);
            r.restarting = false;
        })?;
        if restart && records.get(name).is_ok_and(|r| r.stopped_by_user) {
            // Stopped while it was being started again: it ends as the stop asked.
            let _ = container.kill(9);
        }
        let dir = records.path(name);
        let log = |file: &str| {
            RotatingLog::open(dir.join(file), self.settings.log).map_err(Error::io("open", dir.join(file)))
        };
        let mut pumps = Vec::new();
        let mut pump = |source, stream, file: &str| -> Result<()> {
            let p = output::pump(source, stream, log(file)?, self.clients.clone());
            pumps.push(p.map_err(Error::io("spawn the thread that logs", &dir))?);
            Ok(())
        };
        if let Some(master) = container.take_pty_master() {
            let input = master.try_clone().ok();
            self.clients.set_terminal(master.try_clone().ok());
            pump(master, 1, "stdout.log")?;
            self.clients.set_input(input);
        } else {
            for (stream, source, file) in [
                (1, container.take_stdout(), "stdout.log"),
                (2, container.take_stderr(), "stderr.log"),
            ] {
                if let Some(source) = source {
                    pump(source, stream, file)?;
                }
            }
            self.clients.set_input(container.take_stdin());
        }
        Ok((container, pumps))
    }

    /// Waits for the run to end and for its output to reach the logs.
    fn reap(&self, mut container: Container, pumps: &[JoinHandle<()>]) -> RecordedExit {
        let exit = RecordedExit::of(container.wait());
        drop(container);
        // The pumps end when every writer is gone (with the container's pid namespace); the record says the
        // container has ended only once what it wrote is in the logs, so `logs -f` ends with all of it.
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline && pumps.iter().any(|p| !p.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.settings.network.is_cni() {
            let _ = network::release(self.engine.layout(), &self.name);
        }
        exit
    }

    /// Waits `wait` before a restart; false when a user stopped the container (or removed it) meanwhile.
    fn sleep_unless_stopped(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            match self.engine.records().get(&self.name) {
                Ok(r) if !r.stopped_by_user => {}
                _ => return false,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Gives the container up: no more owner, the socket gone, removed if it was to be.
    fn finish(&self, ran: bool) {
        let records = self.engine.records();
        let name = self.name.as_str();
        let _ = std::fs::remove_file(short_path(&self.dir, ATTACH_SOCKET));
        let me = Owner::me();
        let _ = records.update(name, |r| {
            r.restarting = false;
            if r.owner == Some(me) {
                r.owner = None;
            }
        });
        if ran
            && self.settings.auto_remove
            && let Ok(Some(held)) = records.hold(name, true)
            && let Err(e) = records.destroy(name, &held)
        {
            let _ = records.update_held(name, &held, |r| {
                r.warnings.push(format!("removing it once it exited: {e}"));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: RecordedExit = RecordedExit {
        code: Some(1),
        signal: None,
        oom_kills: 0,
    };
    const CLEAN: RecordedExit = RecordedExit {
        code: Some(0),
        signal: None,
        oom_kills: 0,
    };

    #[test]
    fn restart_decisions_follow_docker() {
        let killed = RecordedExit {
            code: None,
            signal: Some(9),
            oom_kills: 0,
        };
        let three = RestartPolicy::OnFailure(Some(3));
        assert!(should_restart(three, &FAILED, 0, false));
        assert!(should_restart(three, &killed, 2, false));
        assert!(!should_restart(three, &FAILED, 3, false), "at most three restarts");
        assert!(!should_restart(three, &CLEAN, 0, false));
        assert!(should_restart(RestartPolicy::OnFailure(None), &FAILED, 1000, false));
        assert!(should_restart(RestartPolicy::Always, &CLEAN, 7, false));
        assert!(should_restart(RestartPolicy::UnlessStopped, &CLEAN, 0, false));
        assert!(!should_restart(RestartPolicy::No, &FAILED, 0, false));
        for policy in [RestartPolicy::Always, RestartPolicy::UnlessStopped, three] {
            assert!(!should_restart(policy, &FAILED, 0, true), "{policy:?} after a stop");
        }
        assert!(!should_restart(three, &RecordedExit::UNKNOWN, 3, false));
    }

    #[test]
    fn backoff_doubles_from_100ms_and_resets_after_a_long_run() {
        let quick = Duration::from_millis(50);
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..12 {
            let w = next_backoff(wait, quick);
            seen.push(w.as_millis());
            wait = Some(w);
        }
        assert_eq!(&seen[..4], [100, 200, 400, 800]);
        assert_eq!(seen[11], 60_000, "capped at a minute: {seen:?}");
        assert_eq!(next_backoff(wait, Duration::from_secs(10)), FIRST_BACKOFF);
    }
}

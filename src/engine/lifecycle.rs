//! A container's life: create, start (and the thread that reaps it), run, stop, kill, remove.

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wharf_image::Reference;
use wharf_rootfs::{ApplyOptions, MountMode, Rootfs, RootfsOptions};
use wharf_sandbox::{Container, MountParam, RootMount, SpawnOptions, Status, Stdio, StdioConfig};

use super::error::{Error, Result};
use super::records::{
    Owner, Record, RecordedExit, check_name, container_cgroup, new_id, new_name, now, process_exists,
};
use super::settings::{ContainerSettings, Limits, Output};
use super::wait::{ExitInfo, Watch};
use super::{Engine, network, spec, supervisor};

/// What [`Engine::start`] hands back.
#[derive(Debug)]
pub struct Started {
    /// The host pid of the container's first process.
    pub pid: i32,
    /// The master side of the container's terminal, with [`ContainerSettings::tty`] and
    /// [`Output::Inherit`] or [`Output::Piped`]: the caller copies it to and from its own terminal (nothing else
    /// reads it, and a full terminal stops the container's writes).
    pub terminal: Option<File>,
    /// The caller's end of the container's standard input, with [`Output::Piped`] and
    /// [`ContainerSettings::stdin_open`] (closing it is the container's end of input).
    pub stdin: Option<File>,
    /// The caller's end of the container's standard output, with [`Output::Piped`].
    pub stdout: Option<File>,
    /// The caller's end of the container's standard error, with [`Output::Piped`].
    pub stderr: Option<File>,
    /// What went less well than asked so far (e.g. a copy of the layers where overlayfs was unavailable), as
    /// [`ContainerInfo::warnings`](super::ContainerInfo::warnings) keeps them.
    pub warnings: Vec<String>,
}

/// Copies what a container's terminal shows into its log, on a thread of its own, until the terminal closes.
fn log_terminal(mut master: File, mut log: File) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("wharf-tty-log".into())
        .spawn(move || {
            // EIO once the container's side is closed.
            let _ = std::io::copy(&mut master, &mut log);
        })
        .map_err(Error::io("spawn the thread that logs", "the container's terminal"))
}

impl Engine {
    /// Creates a container from `image` with `settings`, without starting it (`docker create`): takes the name,
    /// finds the image (pulling it under [`ContainerSettings::pull`]), puts its layers in the cache and mounts
    /// the container's filesystem. Returns the container's name.
    ///
    /// Blocks (a pull, layer extraction, mounts).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NameInUse`], [`Error::ImageMissing`], and the crates' errors for
    /// the pull, the layers and the mount. Nothing of a failed create stays.
    pub fn create(&self, image: &str, settings: &ContainerSettings) -> Result<String> {
        self.create_as(image, settings, false)
    }

    /// Creates and starts a container (`docker run`): while it is being made it is listed as
    /// [`State::Creating`](super::State::Creating) and, if this process dies meanwhile, rolled back by the
    /// next engine on the root. Returns the container's name; [`wait`](Engine::wait) for its exit and read its
    /// [`logs`](Engine::logs).
    ///
    /// Blocks until the container's process runs.
    ///
    /// # Errors
    /// As [`create`](Engine::create) and [`start`](Engine::start); nothing of a failed run stays.
    pub fn run(&self, image: &str, settings: &ContainerSettings) -> Result<String> {
        Ok(self.run_attached(image, settings)?.0)
    }

    /// [`run`](Engine::run), handing back what [`start`](Engine::start) does: the pid and the caller's ends
    /// of the container's streams ([`Output::Piped`], or a terminal's master).
    ///
    /// # Errors
    /// As [`run`](Engine::run).
    pub fn run_attached(&self, image: &str, settings: &ContainerSettings) -> Result<(String, Started)> {
        let name = self.create_as(image, settings, true)?;
        match self.start(&name) {
            Ok(started) => Ok((name, started)),
            Err(e) => {
                // Nothing of a run that failed to start stays.
                if let Ok(Some(held)) = self.records().hold(&name, true) {
                    let _ = self.records().destroy(&name, &held);
                }
                Err(e)
            }
        }
    }

    /// Creates the container; with `running`, the record stays `creating` (owned by this process) for
    /// [`start`](Engine::start) to finish.
    fn create_as(&self, image: &str, settings: &ContainerSettings, running: bool) -> Result<String> {
        if let Some(name) = &settings.name {
            check_name(name)?;
        }
        let r: Reference = image.parse()?;
        if !settings.network.is_cni()
            && (!settings.network.publish.is_empty() || settings.network.publish_all || settings.network.ip.is_some())
        {
            return Err(Error::InvalidSetting {
                setting: "network",
                value: settings.network.mode.clone(),
                reason: "published ports and a fixed address need a bridge or user network".into(),
            });
        }
        // Sources resolved now, in the creator's working directory: whoever starts it later may be elsewhere.
        let mut settings = settings.clone();
        for m in &mut settings.mounts {
            m.source = m.resolved_source()?;
        }
        let settings = &settings;
        let id = new_id();
        let record = Record {
            // Its filesystem's directory is named by its id, which a rename does not change.
            rootfs: Some(id.clone()),
            id,
            name: settings.name.clone().unwrap_or_else(new_name),
            image: r.to_string(),
            command: settings.command.clone(),
            created: now(),
            detached: settings.output == Output::Logs,
            auto_remove: settings.auto_remove,
            creating: true,
            owner: Some(Owner::me()),
            settings: Some(settings.clone()),
            image_digest: None,
            image_id: None,
            started: None,
            finished: None,
            exit: None,
            warnings: Vec::new(),
            restart_count: 0,
            restarting: false,
            stopped_by_user: false,
            last_exit: None,
        };
        let name = self.records().reserve(record, settings.name.is_some())?;
        match self.make_filesystem(&r, settings, &name, running) {
            Ok(()) => Ok(name),
            Err(e) => {
                if let Ok(Some(held)) = self.records().hold(&name, true) {
                    let _ = self.records().destroy(&name, &held);
                }
                Err(e)
            }
        }
    }

    /// The image (pulled under the policy), its layers, the container's filesystem.
    fn make_filesystem(&self, r: &Reference, settings: &ContainerSettings, name: &str, running: bool) -> Result<()> {
        let image = self.image_under(r, settings.pull)?;
        let layout = self.layout();
        let cache = layout.layer_cache()?;
        let layers = cache.ensure_image(self.store(), &image, &ApplyOptions::default())?;
        let base = layout.rootfs_base();
        std::fs::create_dir_all(&base).map_err(Error::io("create", &base))?;
        let dir = layout.rootfs(self.records().get(name)?.rootfs_dir());
        // Without privilege the overlay is mounted by the container's own process, inside its user namespace.
        let opts = RootfsOptions {
            mode: (!rustix::process::geteuid().is_root()).then_some(MountMode::InUserNamespace),
        };
        let rootfs = Rootfs::create(&cache, &layers, dir, &opts)?;
        let warning = rootfs
            .fallback_reason()
            .map(|reason| format!("overlayfs unavailable ({reason}); using a copy of the layers"));
        // The filesystem stays (mounted) until the container is removed, by whichever process.
        rootfs.persist()?;
        let digest = image.manifest_descriptor.digest().to_string();
        let id = image.config_digest.to_string();
        self.records().update(name, |record| {
            record.image_digest = Some(digest);
            record.image_id = Some(id);
            record.warnings.extend(warning);
            if !running {
                record.creating = false;
                record.owner = None;
            }
        })
    }

    /// Starts a created or exited container (`docker start`): attaches its network, builds its runtime spec and
    /// spawns its process, which its supervisor ([`Output::Logs`]) or this process then reaps (see the
    /// [module docs](super#who-waits-for-a-container)); the restart policy applies afresh.
    /// An exited container starts again on the same filesystem, its logs appended to.
    ///
    /// Blocks until the process runs.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::AlreadyRunning`], [`Error::Busy`] while another process creates it,
    /// and the sandbox's typed spawn errors (program not found, bad user, …). A container that fails to start
    /// stays as it was (created or exited).
    pub fn start(&self, name: &str) -> Result<Started> {
        let records = self.records();
        let Some(held) = records.hold(name, true)? else {
            return Err(Error::NoSuchContainer(name.to_string()));
        };
        let record = records.get(name)?;
        let me = Owner::me();
        let Some(settings) = record.settings.clone() else {
            // A record of an older version, made by a `run` whose settings were not kept.
            return Err(Error::InvalidSetting {
                setting: "container",
                value: name.to_string(),
                reason: "made by an older version of wharf, it cannot be started again".into(),
            });
        };
        let layout = self.layout();
        if let Some(owner) = record.owner.filter(|o| *o != me && o.alive()) {
            if !record.creating && process_exists(layout, name) {
                return Err(Error::AlreadyRunning(name.to_string()));
            }
            return Err(Error::Busy {
                name: name.to_string(),
                what: if record.creating {
                    "being created"
                } else if record.restarting {
                    "being restarted"
                } else {
                    "being reaped"
                },
                pid: owner.pid,
            });
        }
        let restart = record.started.is_some();
        if restart {
            if process_exists(layout, name) || record.owner == Some(me) {
                return Err(Error::AlreadyRunning(name.to_string()));
            }
            // The sandbox state of a process nobody reaped (its starter ended first).
            let states = layout.state_dir()?;
            if states.dir(name).exists() {
                states.delete(name, false)?;
            }
        }
        // Taken: a second start finds it running.
        records.update_held(name, &held, |r| {
            r.started = Some(now());
            r.finished = None;
            r.exit = None;
            r.owner = Some(me);
            // A start by a user applies the restart policy afresh, as docker's does.
            r.restart_count = 0;
            r.restarting = false;
            r.stopped_by_user = false;
        })?;
        drop(held);
        let spawned = if supervisor::supervises(self, settings.output) {
            self.start_supervised(&record)
        } else {
            self.spawn(&record, &settings)
        };
        match spawned {
            Ok(started) => Ok(started),
            Err(e) => {
                if settings.network.is_cni() {
                    let _ = network::release(layout, name);
                }
                let _ = records.update(name, |r| {
                    r.started = record.started;
                    r.finished = record.finished;
                    r.exit = record.exit;
                    r.restart_count = record.restart_count;
                    r.stopped_by_user = record.stopped_by_user;
                    if !r.creating {
                        r.owner = None;
                    }
                });
                Err(e)
            }
        }
    }

    /// Changes the limits of container `name` (`docker update`): those `limits` sets replace the container's,
    /// the others stay. A running container gets them live in its cgroup; its record keeps them for
    /// [`inspect`](Engine::inspect) and the next start (a stopped container's take effect then, as docker's do).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::InvalidSetting`]; the cgroup's errors (a memory limit below what the
    /// container uses, a controller the host lacks).
    pub fn update(&self, name: &str, limits: &Limits) -> Result<()> {
        self.records().get(name)?;
        let layout = self.layout();
        let resources = spec::resources(limits)?;
        if process_exists(layout, name) {
            layout.state_dir()?.load(name)?.cgroup.update(&resources)?;
        }
        self.records().update(name, |r| {
            if let Some(s) = &mut r.settings {
                let now = &mut s.limits;
                now.memory = limits.memory.or(now.memory);
                now.cpus = limits.cpus.or(now.cpus);
                now.pids = limits.pids.or(now.pids);
            }
        })
    }

    /// Gives stopped container `old` the name `new` (`docker rename`); its id (and so its short id), filesystem,
    /// logs and settings stay. Unlike docker's, a running container is refused: while it runs, its supervisor
    /// and sandbox state know it by its name.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::InvalidName`] for `new`; [`Error::NameInUse`] when another
    /// container (running or not) has it; [`Error::RenameRunning`].
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        self.records().rename(old, new)
    }

    /// Spawns container `record`'s process, this process its parent. With `supervised` (the supervisor's
    /// call), an [`Output::Logs`] container's output comes back as pipes (or a terminal) for the supervisor to
    /// log, and its standard input as a pipe when it is kept open.
    pub(crate) fn spawn_container(
        &self,
        record: &Record,
        settings: &ContainerSettings,
        supervised: bool,
    ) -> Result<Container> {
        let layout = self.layout();
        let name = record.name.as_str();
        let mut r: Reference = record.image.parse()?;
        if let Some(digest) = &record.image_digest {
            r = r.with_digest(digest.parse().map_err(wharf_image::Error::from)?);
        }
        let image = self.image(&r)?;
        let rootfs = Rootfs::attach(&layout.layer_cache()?, layout.rootfs(record.rootfs_dir()))?;
        let rootfs_path = rootfs.path();
        let root_mount = (rootfs.mode() == MountMode::InUserNamespace).then(|| overlay_in_userns(&rootfs));
        rootfs.persist()?;
        let attached = if settings.network.is_cni() {
            let hostname = settings.hostname.clone().unwrap_or_else(|| name.to_string());
            let exposed = image.config.exposed_ports();
            Some(network::attach(layout, &settings.network, name, &hostname, &exposed)?)
        } else {
            None
        };
        let mut spec = spec::build_spec(layout, settings, &image.config, &rootfs_path, name, attached.as_ref())?;
        // Its cgroup is named by its id, which no other container on the host has: by name, two roots' containers
        // of one name shared one, and removing either killed both.
        let (cgroup_driver, cgroup) = container_cgroup(&record.id);
        if let Some(linux) = spec.linux_mut() {
            linux.set_cgroups_path(Some(cgroup));
        }
        let dir = self.records().path(name);
        let log = |file: &str| append_log(&dir, file);
        // A closure: a spawn that falls back to a copy of the layers needs the streams again.
        let stdio = || -> Result<StdioConfig> {
            Ok(match settings.output {
                // The terminal is standard input, output and error: its master is copied to the stdout log below.
                Output::Logs if settings.tty => StdioConfig::inherit(),
                Output::Logs if supervised => StdioConfig {
                    stdin: if settings.stdin_open { Stdio::Piped } else { Stdio::Null },
                    ..StdioConfig::piped()
                },
                Output::Logs => StdioConfig {
                    stdin: Stdio::Null,
                    stdout: Stdio::from(log("stdout.log")?),
                    stderr: Stdio::from(log("stderr.log")?),
                    extra_fds: Vec::new(),
                },
                Output::Piped if settings.tty => StdioConfig::inherit(),
                Output::Piped => StdioConfig {
                    stdin: if settings.stdin_open { Stdio::Piped } else { Stdio::Null },
                    ..StdioConfig::piped()
                },
                // With a terminal, Inherit means the pty (a terminal alone still gives the container a tty on
                // stdin, as docker's -t does); stdin_open decides whether the caller's input is passed on.
                Output::Inherit => StdioConfig {
                    stdin: if settings.stdin_open || settings.tty {
                        Stdio::Inherit
                    } else {
                        Stdio::Null
                    },
                    ..StdioConfig::inherit()
                },
            })
        };
        let opts = |root_mount| SpawnOptions {
            id: Some(name.to_string()),
            state_dir: Some(layout.wharf().join("sandbox")),
            init: settings.init,
            seccomp_cache: wharf_sandbox::default_seccomp_cache(),
            // A new network namespace gets `lo` up, as docker's and podman's do.
            loopback_up: true,
            root_mount,
            cgroup_driver: cgroup_driver.clone(),
            ..Default::default()
        };
        let fallback = root_mount.is_some();
        let container = match Container::spawn_with(&spec, &rootfs_path, stdio()?, opts(root_mount)) {
            Err(wharf_sandbox::Error::RootMount { source, .. }) if fallback => {
                // A kernel without overlayfs in user namespaces (before 5.11): a copy, said once in the record.
                let mut rootfs = Rootfs::attach(&layout.layer_cache()?, layout.rootfs(record.rootfs_dir()))?;
                let reason = format!("overlayfs unavailable in a user namespace ({source})");
                rootfs.fall_back_to_copy(&reason)?;
                rootfs.persist()?;
                self.records().update(name, |record| {
                    record.warnings.push(format!("{reason}; using a copy of the layers"));
                })?;
                Container::spawn_with(&spec, &rootfs_path, stdio()?, opts(None))?
            }
            spawned => spawned?,
        };
        let command = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        self.records().update(name, |record| {
            record.creating = false;
            record.command = command;
        })?;
        Ok(container)
    }

    /// Spawns container `record`'s process and a thread of this process that reaps it.
    fn spawn(&self, record: &Record, settings: &ContainerSettings) -> Result<Started> {
        let name = record.name.as_str();
        let mut container = self.spawn_container(record, settings, false)?;
        let watch = self.inner.reaping.watch(name);
        let dir = self.records().path(name);
        let log = |file: &str| append_log(&dir, file);
        let mut terminal = container.take_pty_master();
        // A terminal nobody attaches to is logged, as docker logs a `run -dt` container's, while this process lives.
        let copier = match (settings.output, terminal.take()) {
            (Output::Logs, Some(master)) => Some(log_terminal(master, log("stdout.log")?)?),
            (_, t) => {
                terminal = t;
                None
            }
        };
        let started = Started {
            pid: container.pid(),
            terminal,
            stdin: container.take_stdin(),
            stdout: container.take_stdout(),
            stderr: container.take_stderr(),
            warnings: record.warnings.clone(),
        };
        let engine = self.clone();
        let reaper_name = name.to_string();
        let cni = settings.network.is_cni();
        let spawned = std::thread::Builder::new()
            .name(format!("wharf-reap-{name}"))
            .spawn(move || engine.reap(&reaper_name, container, copier, cni, &watch));
        if let Err(e) = spawned {
            return Err(Error::io("spawn the thread that waits for", dir)(e));
        }
        Ok(started)
    }

    /// Waits for `container` (and for its terminal's last output to reach the log), records its exit, gives its
    /// network back, removes it if it was to be removed, then wakes the waiters.
    fn reap(
        &self,
        name: &str,
        mut container: Container,
        copier: Option<JoinHandle<()>>,
        cni: bool,
        watch: &Arc<Watch>,
    ) {
        let waited = container.wait();
        // Every process of the container is gone: the terminal reads to its end.
        if let Some(copier) = copier {
            let _ = copier.join();
        }
        let exit = RecordedExit::of(waited);
        drop(container);
        let records = self.records();
        // A container that has exited gives its address, veth and rules back at once (a removal does too).
        let released = if cni {
            network::release(self.layout(), name)
        } else {
            Ok(())
        };
        let auto_remove = records.get(name).is_ok_and(|r| r.auto_remove);
        let _ = records.update(name, |r| {
            r.exit = Some(exit);
            r.last_exit = Some(exit);
            r.finished = Some(now());
            r.owner = None;
            if let Err(e) = released {
                r.warnings.push(format!("releasing its network when it exited: {e}"));
            }
        });
        if auto_remove && let Ok(Some(held)) = records.hold(name, true) {
            // What cannot be removed now stays listed, for a later remove (its warning says why).
            if let Err(e) = records.destroy(name, &held) {
                let _ = records.update_held(name, &held, |r| {
                    r.warnings.push(format!("removing it once it exited: {e}"));
                });
            }
        }
        watch.finish(ExitInfo::from(exit));
    }

    /// Stops container `name` as `docker stop` does: SIGTERM to its processes, then SIGKILL after `timeout`;
    /// returns once they are gone (with its exit recorded, when this process or a live supervisor reaps it) and
    /// its network is given back. Its supervisor does not restart it (also while it waits to). Stopping a
    /// stopped container succeeds.
    ///
    /// Blocks up to `timeout` and 10 s more.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::DidNotStop`].
    pub fn stop(&self, name: &str, timeout: Duration) -> Result<()> {
        let record = self.records().get(name)?;
        if record.started.is_some() {
            // Its supervisor does not start it again.
            self.records().update(name, |r| r.stopped_by_user = true)?;
        }
        let layout = self.layout();
        let states = layout.state_dir()?;
        let running = || matches!(states.status(name), Ok(Status::Running));
        // A container that ends on its own meanwhile (its state gone with it) is stopped all the same.
        let signal = |sig: i32| match states.kill(name, sig, true) {
            Err(e) if running() => Err(Error::from(e)),
            _ => Ok(()),
        };
        if running() {
            signal(15)?;
            let stopped_within = |limit: Duration| {
                let deadline = Instant::now() + limit;
                while running() {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                true
            };
            // A pid 1 without a TERM handler ignores TERM, so the KILL is often what ends it.
            if !stopped_within(timeout) {
                signal(9)?;
                if !stopped_within(Duration::from_secs(10)) {
                    return Err(Error::DidNotStop(name.to_string()));
                }
            }
        }
        if self.inner.reaping.get(name).is_some() {
            // Its exit recorded before stop returns.
            let _ = self.wait(name);
        } else {
            // Its supervisor records the exit (or gives up a restart) before stop returns.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && self.records().get(name).is_ok_and(|r| {
                    r.owner.is_some_and(|o| o.alive()) && (r.restarting || (r.exit.is_none() && !r.creating))
                })
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // A stopped container gives its address, veth and published ports back, as Docker's do (also one that
        // exited on its own while no process reaped it).
        network::release(layout, name)
    }

    /// Restarts container `name` as `docker restart` does: [`stop`](Engine::stop) with `timeout`, then
    /// [`start`](Engine::start) (a new process; the restart policy applies afresh).
    ///
    /// Blocks as `stop` and `start` do.
    ///
    /// # Errors
    /// As [`stop`](Engine::stop) and [`start`](Engine::start).
    pub fn restart(&self, name: &str, timeout: Duration) -> Result<Started> {
        self.stop(name, timeout)?;
        self.start(name)
    }

    /// Sends `signal` to every process of container `name` (`docker kill`; see [`signal_number`](super::signal_number)).
    /// After `KILL` or `TERM` its supervisor does not restart it.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotRunning`].
    pub fn kill(&self, name: &str, signal: i32) -> Result<()> {
        self.records().get(name)?;
        if !process_exists(self.layout(), name) {
            return Err(Error::NotRunning(name.to_string()));
        }
        if matches!(signal, 9 | 15) {
            // KILL and the stop signal end the container for good, as docker's do; other signals leave its
            // restart policy in place.
            self.records().update(name, |r| r.stopped_by_user = true)?;
        }
        Ok(self.layout().state_dir()?.kill(name, signal, true)?)
    }

    /// Removes container `name` and everything it has: its process (with `force`; else a running container
    /// is [`Error::Running`]), sandbox state, network, filesystem, logs and record.
    ///
    /// Blocks while another process finishes with it (up to 20 s).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::Running`], [`Error::Busy`].
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        self.records().remove(name, force)?;
        self.inner.reaping.forget(name);
        Ok(())
    }
}

/// Opens the log `file` in a container's directory `dir` for appending: a container started again keeps what it
/// wrote before, as docker's logs do.
fn append_log(dir: &std::path::Path, file: &str) -> Result<std::fs::File> {
    let path = dir.join(file);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io("open", path))
}

/// The overlay a rootless container's process mounts on its root inside its user namespace.
fn overlay_in_userns(rootfs: &Rootfs) -> RootMount {
    RootMount {
        fstype: "overlay".into(),
        params: rootfs
            .overlay_params()
            .into_iter()
            .map(|(key, value)| match value {
                Some(v) => MountParam::String(key.into(), v.into_os_string()),
                None => MountParam::Flag(key.into()),
            })
            .collect(),
    }
}

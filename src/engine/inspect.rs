//! Looking at containers: inspect, list with filters, top, stats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use wharf_image::Reference;
use wharf_network::PortMapping;
use wharf_sandbox::cgroup::Stats;
use wharf_sandbox::{ProcessInfo, Status};

use super::error::{Error, Result};
use super::records::{Record, check_name, process_exists};
use super::settings::ContainerSettings;
use super::wait::ExitInfo;
use super::{Engine, network};

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Being made (or started by [`Engine::run`]) by a live process.
    Creating,
    /// Made by [`Engine::create`] and not started.
    Created,
    /// Its first process runs.
    Running,
    /// Its first process has ended.
    Exited,
}

impl State {
    /// Its name as `docker ps` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Created => "created",
            State::Running => "running",
            State::Exited => "exited",
        }
    }
}

/// What [`Engine::inspect`] and [`Engine::list`] tell of a container.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerInfo {
    /// Its id: 64 hex digits, fixed for its whole life; docker shows the first 12 (see [`short_id`](Self::short_id)).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image reference it was made from.
    pub image: String,
    /// The image's config digest (its id), when known.
    pub image_id: Option<String>,
    /// Its command, as the process runs it once started (entrypoint and arguments).
    pub command: Vec<String>,
    /// Its state.
    pub state: State,
    /// The host pid of its first process while it runs.
    pub pid: Option<i32>,
    /// When it was created.
    pub created: SystemTime,
    /// When it was started.
    pub started: Option<SystemTime>,
    /// When its first process ended, as recorded by the process that reaped it.
    pub finished: Option<SystemTime>,
    /// How it ended, once recorded ([`ExitInfo::UNKNOWN`] for an exited container whose exit nobody recorded).
    pub exit: Option<ExitInfo>,
    /// Its published ports.
    pub ports: Vec<PortMapping>,
    /// The settings it was made with: mounts, limits, labels, restart policy (`None` for containers of older
    /// versions).
    pub settings: Option<ContainerSettings>,
    /// What went less well than asked: a copy of the layers where overlayfs was unavailable, a network that
    /// could not be given back or a removal that failed when it exited.
    pub warnings: Vec<String>,
    /// How often its supervisor restarted it under its [`RestartPolicy`](super::RestartPolicy) since it was last
    /// started by a user (docker's `RestartCount`).
    pub restart_count: u32,
    /// Its supervisor waits to restart it (docker's `Restarting`): its state is then [`State::Exited`], its
    /// `exit` the last run's.
    pub restarting: bool,
}

impl ContainerInfo {
    /// The first 12 hex digits of its id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// A filter of [`Engine::list`]: a container is listed when it passes every filter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// In this state.
    State(State),
    /// Its name contains this.
    Name(String),
    /// It has this label (with this value, when given).
    Label(String, Option<String>),
    /// Made from this image reference (as given, or in docker's short form).
    Image(String),
}

impl Filter {
    fn matches(&self, c: &ContainerInfo) -> bool {
        match self {
            Filter::State(s) => c.state == *s,
            Filter::Name(n) => c.name.contains(n.as_str()),
            Filter::Label(k, v) => {
                let labels = c.settings.as_ref().map(|s| &s.labels);
                let value = labels.and_then(|l| l.get(k));
                value.is_some() && (v.is_none() || value == v.as_ref())
            }
            Filter::Image(i) => {
                c.image == *i
                    || c.image
                        .parse::<Reference>()
                        .is_ok_and(|r| r.familiar() == *i || r.to_string() == *i)
            }
        }
    }
}

/// What [`Engine::list`] lists.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Also containers that are not running (created or exited), as `docker ps -a`. Default: false.
    pub all: bool,
    /// Filters, all of which a container must pass. Default: none.
    pub filters: Vec<Filter>,
}

fn time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Engine {
    /// Everything known of container `name` (`docker inspect`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::InvalidName`].
    pub fn inspect(&self, name: &str) -> Result<ContainerInfo> {
        let record = self.records().get(name)?;
        self.info(record)
            .ok_or_else(|| Error::NoSuchContainer(name.to_string()))
    }

    /// The name of the container called `name_or_id`, or whose id is or starts with it (docker's rule: a name
    /// wins over an id prefix; a prefix must name one container).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::AmbiguousId`], [`Error::InvalidName`].
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        check_name(name_or_id)?;
        let records = self.records();
        if records.get(name_or_id).is_ok() {
            return Ok(name_or_id.to_string());
        }
        let hex = !name_or_id.is_empty() && name_or_id.len() <= 64 && name_or_id.bytes().all(|b| b.is_ascii_hexdigit());
        let mut found = if hex {
            let prefix = name_or_id.to_ascii_lowercase();
            records
                .list()
                .into_iter()
                .filter(|r| r.id.starts_with(&prefix))
                .map(|r| r.name)
                .collect()
        } else {
            Vec::new()
        };
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::NoSuchContainer(name_or_id.to_string())),
            _ => Err(Error::AmbiguousId(name_or_id.to_string())),
        }
    }

    /// `None` for a record whose creator died (it is being rolled back).
    fn info(&self, r: Record) -> Option<ContainerInfo> {
        let states = self.layout().state_dir().ok()?;
        let status = states.status(&r.name);
        let state = if r.creating {
            if !r.owner.is_some_and(|o| o.alive()) {
                return None;
            }
            State::Creating
        } else {
            match status {
                Ok(Status::Running | Status::Created | Status::Creating) => State::Running,
                Ok(Status::Stopped) | Err(_) if r.started.is_none() && r.settings.is_some() => State::Created,
                Ok(Status::Stopped) | Err(_) => State::Exited,
            }
        };
        let pid = match state {
            State::Running => states.load(&r.name).ok().map(|s| s.pid),
            _ => None,
        };
        let exit = match (r.exit, state) {
            (Some(e), _) => Some(e.into()),
            (None, State::Exited) if r.owner.is_none_or(|o| !o.alive()) => Some(ExitInfo::UNKNOWN),
            _ => None,
        };
        let ports = network::networks(self.layout())
            .and_then(|n| Ok(n.attachments(&r.name)?))
            .unwrap_or_default()
            .into_iter()
            .flat_map(|a| a.ports)
            .collect();
        Some(ContainerInfo {
            id: r.id,
            name: r.name,
            image: r.image,
            image_id: r.image_id,
            command: r.command,
            state,
            pid,
            created: time(r.created),
            started: r.started.map(time),
            finished: r.finished.map(time),
            exit,
            ports,
            settings: r.settings,
            warnings: r.warnings,
            restart_count: r.restart_count,
            restarting: r.restarting && r.owner.is_some_and(|o| o.alive()),
        })
    }

    /// The containers on this root, newest first (`docker ps [-a] [--filter]`).
    pub fn list(&self, options: &ListOptions) -> Vec<ContainerInfo> {
        let records = self.records();
        records.collect();
        records
            .list()
            .into_iter()
            .filter_map(|r| self.info(r))
            .filter(|c| options.all || matches!(c.state, State::Running | State::Creating))
            .filter(|c| options.filters.iter().all(|f| f.matches(c)))
            .collect()
    }

    /// Fails unless container `name` exists and its process runs.
    fn running(&self, name: &str) -> Result<()> {
        self.records().get(name)?;
        if process_exists(self.layout(), name) {
            Ok(())
        } else {
            Err(Error::NotRunning(name.to_string()))
        }
    }

    /// The processes of container `name` with their pids on the host and inside (`docker top`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotRunning`] (as docker's, not the sandbox's missing state file).
    pub fn top(&self, name: &str) -> Result<Vec<ProcessInfo>> {
        self.running(name)?;
        Ok(self.layout().state_dir()?.processes(name)?)
    }

    /// One sample of container `name`'s resource use from its cgroup (`docker stats --no-stream`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotRunning`].
    pub fn stats(&self, name: &str) -> Result<Stats> {
        self.running(name)?;
        Ok(self.layout().state_dir()?.load(name)?.cgroup.stats())
    }

    /// A sample of container `name`'s resource use every `interval` (`docker stats`), the first at once, until it
    /// stops (or is removed). Each `next` blocks up to `interval`.
    ///
    /// # Errors
    /// As [`stats`](Engine::stats), for the first sample.
    pub fn stats_stream(&self, name: &str, interval: Duration) -> Result<impl Iterator<Item = Stats> + use<>> {
        self.running(name)?;
        let cgroup = self.layout().state_dir()?.load(name)?.cgroup;
        let (layout, name) = (self.layout().clone(), name.to_string());
        let mut first = true;
        Ok(std::iter::from_fn(move || {
            if !std::mem::take(&mut first) {
                std::thread::sleep(interval);
            }
            process_exists(&layout, &name).then(|| cgroup.stats())
        }))
    }
}

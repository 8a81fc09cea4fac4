//! Container records, safe with any number of engine processes at once and with processes killed at
//! any moment.
//!
//! A record is `ROOT/.wharf/containers/NAME/container.json` (beside the container's logs).
//! - **Made whole, then named**: the record is written in `.new-PID-START-N/` and renamed to
//!   `NAME/` with `RENAME_NOREPLACE`, so a name is taken atomically (two processes racing for one
//!   name: one wins, the other is told the name is in use) and no listed directory is ever
//!   half-made. Later changes replace `container.json` by rename.
//! - **Owned while made and while reaped**: the record names its owner (pid and start time, so a
//!   recycled pid is not mistaken for it) and says `creating` until the container runs. The
//!   process that started the container stays its owner while it waits for (reaps) it, and gives
//!   the ownership up once it has recorded the exit.
//!   A detached container's owner is its supervisor process, for as long as it lives.
//! - **Cleaned by the next opener**: every engine that opens the records first collects what
//!   dead processes left: a record still `creating` whose owner is gone is rolled back (its
//!   process killed, its filesystem unmounted and removed, the record removed), an auto-remove
//!   container that stopped with no live owner is removed, a started container whose owner and
//!   process are both gone gets an unknown exit recorded, and leftover `.new-*` / `.gone-*`
//!   directories go.
//! - **One remover at a time**: removal holds an exclusive `flock` on the record's directory and
//!   undoes in the reverse order of creation — process and sandbox state, network, filesystem, then
//!   the record (renamed to `.gone-*` first, so a removal cut short never leaves a half record
//!   listed). Whatever point a removal is killed at, the container stays listed and removable.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, RenameFlags};
use serde::{Deserialize, Serialize};
use wharf_rootfs::Rootfs;
use wharf_sandbox::Status;
use wharf_sandbox::cgroup::{Cgroup, CgroupDriver};

use super::error::{Error, Result};
use super::settings::ContainerSettings;
use super::{Layout, network};

mod rename;

/// Checks a container name: names become directory names, so only docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (at
/// most 128 characters) is accepted.
///
/// # Errors
/// [`Error::InvalidName`].
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// A random name for a container created without one.
pub(crate) fn new_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let d = wharf_image::Digest::sha256(format!("{nanos}-{}-{}", std::process::id(), scratch_name("")).as_bytes());
    d.hex()[..12].to_string()
}

impl Record {
    /// The name of its filesystem's directory under `ROOT/.wharf/rootfs/`.
    pub fn rootfs_dir(&self) -> &str {
        self.rootfs.as_deref().unwrap_or(&self.name)
    }
}

/// The cgroup of container `id`, relative to each hierarchy's root.
pub(crate) fn cgroup_path(id: &str) -> String {
    format!("wharf/{id}")
}

/// Where container `id`'s cgroup goes: `wharf/ID` in the host's hierarchies, or for an unprivileged caller with a
/// cgroup v2 subtree delegated to it, `SUBTREE/wharf/ID` there (with that hierarchy's driver); without one, the
/// sandbox runs the container in the caller's cgroup and refuses limits.
pub(crate) fn container_cgroup(id: &str) -> (Option<CgroupDriver>, PathBuf) {
    match CgroupDriver::delegated() {
        Some((driver, subtree)) => (Some(driver), subtree.join(cgroup_path(id))),
        None => (None, PathBuf::from(cgroup_path(id))),
    }
}

/// A new container id: 64 random-looking hex digits (docker's form; its first 12 are the short id).
pub(crate) fn new_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("id-{nanos}-{}-{}", std::process::id(), scratch_name(""));
    wharf_image::Digest::sha256(seed.as_bytes()).hex().to_string()
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What the engine remembers of a container, beside the sandbox's state. Fields added after the first
/// version default when missing, so records of older stores still read.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Record {
    /// The container's id: 64 hex digits, kept for its whole life (renames included). Records older than ids
    /// get one derived from their name and creation time when read (and keep it from their next write on).
    #[serde(default)]
    pub id: String,
    /// The container's name: its record's directory's (the field is rewritten after a rename).
    pub name: String,
    /// The name of its filesystem's directory under `ROOT/.wharf/rootfs/`: its id for containers made since
    /// renames exist, `None` (its name) for older ones.
    #[serde(default)]
    pub rootfs: Option<String>,
    /// The image it was made from.
    pub image: String,
    /// Its command.
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Its output goes to its log files (started with `-d`).
    pub detached: bool,
    /// Remove it when it stops (`--rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// Still being set up by `owner`.
    #[serde(default)]
    pub creating: bool,
    /// The process that sets it up and, for a foreground run, waits for it.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// What it was created with (`None` in records older than the engine).
    #[serde(default)]
    pub settings: Option<ContainerSettings>,
    /// The image's manifest digest, pinned at creation.
    #[serde(default)]
    pub image_digest: Option<String>,
    /// The image's config digest (its id).
    #[serde(default)]
    pub image_id: Option<String>,
    /// When it was started, seconds since the epoch.
    #[serde(default)]
    pub started: Option<u64>,
    /// When its first process ended (as seen by the process that reaped it).
    #[serde(default)]
    pub finished: Option<u64>,
    /// How it ended, when the process that reaped it recorded it.
    #[serde(default)]
    pub exit: Option<RecordedExit>,
    /// What went less well than asked (a fallback, a clean-up that failed), for inspect.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How often its supervisor restarted it since it was last started by a user.
    #[serde(default)]
    pub restart_count: u32,
    /// Its supervisor waits to restart it.
    #[serde(default)]
    pub restarting: bool,
    /// A user stopped it (stop, kill, forced removal): its supervisor does not restart it.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// How its last run ended, kept while it runs again (`exit` is cleared then).
    #[serde(default)]
    pub last_exit: Option<RecordedExit>,
}

/// An exit as recorded in a container's record.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordedExit {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Processes of the container the kernel's OOM killer ended.
    pub oom_kills: u64,
}

impl RecordedExit {
    /// What a wait for a container's first process gave.
    pub fn of(waited: wharf_sandbox::Result<wharf_sandbox::Exit>) -> RecordedExit {
        match waited {
            Ok(e) => RecordedExit {
                code: match e.status {
                    wharf_sandbox::ExitStatus::Exited(c) => Some(c),
                    wharf_sandbox::ExitStatus::Signaled(_) => None,
                },
                signal: e.status.signal(),
                oom_kills: e.oom_kills,
            },
            // The wait itself failed (it cannot, short of a kernel error): the exit is unknown.
            Err(_) => RecordedExit::UNKNOWN,
        }
    }

    /// An exit nobody saw.
    pub const UNKNOWN: RecordedExit = RecordedExit {
        code: None,
        signal: None,
        oom_kills: 0,
    };
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Its pid.
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`.
    pub start_time: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        // A process's start time never changes: read once per process (a `run` asked a dozen times). Keyed by pid,
        // so a forked child does not take its parent's.
        static ME: std::sync::Mutex<Option<Owner>> = std::sync::Mutex::new(None);
        let pid = std::process::id() as i32;
        let mut me = ME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *me {
            Some(o) if o.pid == pid => o,
            _ => {
                let o = Owner {
                    pid,
                    start_time: proc_stat(pid).map_or(0, |(_, start)| start),
                };
                *me = Some(o);
                o
            }
        }
    }

    /// Whether it still runs (a zombie does not: it was killed and waits to be reaped).
    pub fn alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, start)| start == self.start_time && state != 'Z')
    }
}

/// The state letter and start time (fields 3 and 22) of `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count after the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// Whether the sandbox says the container's process exists (running, or created and waiting).
pub(crate) fn process_exists(layout: &Layout, name: &str) -> bool {
    layout
        .state_dir()
        .is_ok_and(|s| matches!(s.status(name), Ok(Status::Running | Status::Created | Status::Creating)))
}

/// The records under a store's root.
#[derive(Debug)]
pub(crate) struct Records {
    dir: PathBuf,
    layout: Layout,
}

/// An exclusive hold on one record's directory (released on drop).
pub(crate) struct Held {
    _dir: File,
}

impl Records {
    /// The records of `layout`'s root, after collecting what dead processes left.
    pub fn open(layout: &Layout) -> Result<Records> {
        let dir = layout.containers();
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let records = Records {
            dir,
            layout: layout.clone(),
        };
        records.collect();
        Ok(records)
    }

    /// The directory of container `name` (its record and logs).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Takes `record.name` for `record` (or, with no name, a new random one); returns the name.
    ///
    /// # Errors
    /// The name is in use (by a live or stopped container); I/O.
    pub fn reserve(&self, mut record: Record, named: bool) -> Result<String> {
        let temp = self.dir.join(scratch_name(".new-"));
        std::fs::create_dir(&temp).map_err(Error::io("create", &temp))?;
        let result = (|| -> Result<String> {
            for attempt in 0.. {
                write_record(&temp, &record)?;
                match rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &temp,
                    rustix::fs::CWD,
                    self.path(&record.name),
                    RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => return Ok(record.name),
                    Err(rustix::io::Errno::EXIST) if !named && attempt < 10 => {
                        record.name = new_name();
                    }
                    // A dead process's leftover may hold the name: collect it and try once more.
                    Err(rustix::io::Errno::EXIST) if named && attempt == 0 => self.collect_one(&record.name),
                    Err(rustix::io::Errno::EXIST) => return Err(Error::NameInUse(record.name)),
                    Err(e) => {
                        return Err(Error::Record {
                            name: record.name,
                            source: e.into(),
                        });
                    }
                }
            }
            unreachable!("every attempt returns or takes another name")
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        result
    }

    /// The record of `name`.
    ///
    /// # Errors
    /// No such container.
    pub fn get(&self, name: &str) -> Result<Record> {
        check_name(name)?;
        read_record(&self.path(name)).ok_or_else(|| Error::NoSuchContainer(name.to_string()))
    }

    /// Replaces the record of `name` with `f`'s change, holding it meanwhile, so that changes from several
    /// processes (a reaper recording an exit, another engine updating limits) are never lost.
    ///
    /// # Errors
    /// No such container (any more); I/O.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut Record)) -> Result<()> {
        let Some(held) = self.hold(name, true)? else {
            return Err(Error::NoSuchContainer(name.to_string()));
        };
        self.update_held(name, &held, f)
    }

    /// [`update`](Records::update) for a caller that holds the record already.
    pub fn update_held(&self, name: &str, _held: &Held, f: impl FnOnce(&mut Record)) -> Result<()> {
        let mut record = self.get(name)?;
        f(&mut record);
        write_record(&self.path(name), &record)
    }

    /// Every whole record, newest first.
    pub fn list(&self) -> Vec<Record> {
        let mut out: Vec<Record> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| read_record(&e.path()))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        out
    }

    /// Holds `name`'s directory exclusively (waiting for another holder, or not with `wait` false);
    /// `None` when there is no such record (any more) or, without `wait`, it is held.
    pub fn hold(&self, name: &str, wait: bool) -> Result<Option<Held>> {
        check_name(name)?;
        let path = self.path(name);
        let Ok(dir) = File::open(&path) else { return Ok(None) };
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        if rustix::fs::flock(dir.as_fd(), op).is_err() {
            return Ok(None);
        }
        // The holder before us may have removed it (or a new container taken the name).
        let same = match (dir.metadata(), std::fs::metadata(&path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        Ok(same.then_some(Held { _dir: dir }))
    }

    /// Removes container `name` and everything it has, its process included: the sandbox state,
    /// the filesystem, then the record. The caller holds the record.
    pub fn destroy(&self, name: &str, _held: &Held) -> Result<()> {
        let layout = &self.layout;
        let states = layout.state_dir()?;
        if states.dir(name).exists() {
            if states.load(name).is_ok() {
                states.delete(name, true)?;
            } else {
                // Cut short before the sandbox saved its state: its cgroup may hold a process.
                let id = self.get(name)?.id;
                let (driver, path) = container_cgroup(&id);
                let driver = match driver {
                    Some(d) => d,
                    None => CgroupDriver::detect()?,
                };
                let cgroup = Cgroup::create(&driver, &path, None)?;
                cgroup.delete()?;
                remove_tree(&states.dir(name))?;
            }
        }
        // Its network (address, veth, rules, pinned namespace), now that no process can use it.
        network::release(layout, name)?;
        let fs_dir = layout.rootfs(self.get(name).as_ref().map_or(name, Record::rootfs_dir));
        if fs_dir.symlink_metadata().is_ok() {
            match layout
                .layer_cache()
                .and_then(|cache| Ok(Rootfs::attach(&cache, &fs_dir)?))
            {
                Ok(rootfs) => rootfs.close()?,
                // Cut short before the filesystem was whole (or its layers left the cache).
                Err(_) => {
                    unmount_all(&fs_dir.join("rootfs"))?;
                    remove_tree(&fs_dir)?;
                }
            }
        }
        let gone = self.dir.join(scratch_name(".gone-"));
        std::fs::rename(self.path(name), &gone).map_err(Error::io("remove the record", self.path(name)))?;
        remove_tree(&gone)
    }

    /// Collects what dead processes left (see the module docs). Best effort: what cannot be
    /// collected now stays for the next command (and stays removable with `rm`).
    pub fn collect(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(".new-").or_else(|| name.strip_prefix(".gone-")) {
                // A record half made or half removed by a process that died.
                let mut it = rest.split('-');
                let owner = (
                    it.next().and_then(|p| p.parse().ok()),
                    it.next().and_then(|s| s.parse().ok()),
                );
                if let (Some(pid), Some(start_time)) = owner
                    && !(Owner { pid, start_time }).alive()
                {
                    let _ = remove_tree(&e.path());
                }
            } else if !name.starts_with('.') {
                self.collect_one(&name);
            }
        }
    }

    /// Rolls back `name` if its creator died, or removes it if it was to be removed once stopped
    /// and no live process will.
    fn collect_one(&self, name: &str) {
        let garbage = |r: &Record| {
            let owner_alive = r.owner.is_some_and(|o| o.alive());
            !owner_alive
                && (r.creating
                    || (r.auto_remove
                        && (r.started.is_some() || r.settings.is_none())
                        && !process_exists(&self.layout, name)))
        };
        let Ok(record) = self.get(name) else { return };
        if !garbage(&record) {
            let orphaned = |r: &Record| {
                !r.creating
                    && r.started.is_some()
                    && r.exit.is_none()
                    && !r.owner.is_some_and(|o| o.alive())
                    && !process_exists(&self.layout, name)
            };
            // Its reaper (a killed supervisor, an engine that ended) is gone and so is its process: the exit is
            // unknown, and says so in the record rather than only in inspect.
            if orphaned(&record)
                && let Ok(Some(held)) = self.hold(name, false)
                && self.get(name).is_ok_and(|r| orphaned(&r))
            {
                let _ = network::release(&self.layout, name);
                let _ = self.update_held(name, &held, |r| {
                    r.exit = Some(RecordedExit::UNKNOWN);
                    r.finished = Some(now());
                    r.owner = None;
                    r.restarting = false;
                });
            }
            return;
        }
        // Someone else holding it is removing it (or using it): leave it to them.
        if let Ok(Some(held)) = self.hold(name, false)
            && self.get(name).is_ok_and(|r| garbage(&r))
            && let Err(e) = self.destroy(name, &held)
        {
            // Not fatal to whoever opened the records: the container stays listed and removable.
            eprintln!("wharf: could not clean up container {name} left by a killed process: {e}");
        }
    }

    /// `rm [-f]`: waits (a while) for a process that still owns the container (a foreground run, an
    /// engine reaping it) to finish with it, after killing its process with `force`.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut killed = false;
        loop {
            let Some(held) = self.hold(name, true)? else {
                // The foreground run removed it (`run --rm`) once its process was killed.
                return if killed {
                    Ok(())
                } else {
                    Err(Error::NoSuchContainer(name.to_string()))
                };
            };
            // A record without a readable container.json (left by an older version) goes too.
            let record = read_record(&self.path(name));
            let owner = record.as_ref().and_then(|r| r.owner).filter(Owner::alive);
            if let (Some(owner), Some(true)) = (owner, record.as_ref().map(|r| r.creating)) {
                return Err(Error::Busy {
                    name: name.to_string(),
                    what: "being created",
                    pid: owner.pid,
                });
            }
            let running = process_exists(&self.layout, name);
            if running && !force {
                return Err(Error::Running(name.to_string()));
            }
            if let (Some(owner), false, Some(true)) = (owner, force, record.as_ref().map(|r| r.restarting)) {
                return Err(Error::Busy {
                    name: name.to_string(),
                    what: "being restarted (stop it first or use rm -f)",
                    pid: owner.pid,
                });
            }
            if owner.is_some() && record.as_ref().is_some_and(|r| !r.stopped_by_user) {
                // Its supervisor must not start it again.
                let _ = self.update_held(name, &held, |r| r.stopped_by_user = true);
            }
            let Some(owner) = owner else {
                return self.destroy(name, &held);
            };
            // A foreground run waits for this container: end it, and let the run finish.
            drop(held);
            if running {
                let _ = self.layout.state_dir()?.kill(name, 9, true);
                // Its owner removes an auto-remove container itself; any other it leaves for us (or for another
                // remover racing us, who then tells that it removed it).
                killed = record.as_ref().is_some_and(|r| r.auto_remove);
            }
            if Instant::now() > deadline {
                return Err(Error::Busy {
                    name: name.to_string(),
                    what: "still held",
                    pid: owner.pid,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `PREFIX-PID-START-N`: a directory name no other process (alive or dead) uses, telling which
/// process made it.
fn scratch_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let me = Owner::me();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{}-{n}", me.pid, me.start_time)
}

fn read_record(dir: &Path) -> Option<Record> {
    let mut record: Record = serde_json::from_slice(&std::fs::read(dir.join("container.json")).ok()?).ok()?;
    // The directory's name is the container's: a rename cut short between the two keeps the old one.
    if let Some(name) = dir.file_name().and_then(|n| n.to_str())
        && !name.starts_with('.')
    {
        record.name = name.to_string();
    }
    if record.id.is_empty() {
        let seed = format!("{}-{}", record.name, record.created);
        record.id = wharf_image::Digest::sha256(seed.as_bytes()).hex().to_string();
    }
    Some(record)
}

/// `dir/container.json`, replaced whole.
fn write_record(dir: &Path, record: &Record) -> Result<()> {
    // Several threads of one process may write (a reaper and a caller): the temp name is theirs alone.
    let temp = dir.join(format!("container.json.{}", scratch_name("")));
    let path = dir.join("container.json");
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::from);
    bytes
        .and_then(|b| std::fs::write(&temp, b))
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|source| Error::Record {
            name: record.name.clone(),
            source,
        })
}

fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Unmounts whatever is mounted on `target` (and below it), so that removing it cannot reach
/// into a mounted filesystem.
fn unmount_all(target: &Path) -> Result<()> {
    use rustix::mount::{UnmountFlags, unmount};
    loop {
        match unmount(target, UnmountFlags::DETACH) {
            Ok(()) => continue,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(Error::io("unmount", target)(e.into())),
        }
    }
}

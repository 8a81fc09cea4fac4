//! Control groups: a small layer that writes the cgroup files directly, for cgroup v1 and v2.
//!
//! Why not `cgroups-rs`: its current releases (0.5) depend unconditionally on `zbus` (an async D-Bus stack, for a
//! systemd manager we do not use) and `nix`, which would more than double this crate's build; and its `auto()`
//! picks one hierarchy for the whole host, while a hybrid host (v1 controllers plus a cgroup2 mount at
//! `/sys/fs/cgroup/unified` with no controllers in it, as on this project's machines) needs the choice made per
//! controller. The dozen files a container runtime touches are simple to write directly.
//!
//! Limits are data: one pure translation (`cgroup/limits.rs`) turns `LinuxResources` (and the few host facts it
//! depends on) into the ordered list of file writes, the same for [`Cgroup::create`] and [`Cgroup::update`]; an
//! update changes only what it names and refuses the fields create refuses.
//!
//! Which version is used: v1 when the `memory` controller is mounted as a v1 hierarchy, otherwise v2 when a cgroup2
//! mount offers `memory`. [`CgroupDriver::detect`] reports the choice.
//!
//! Huge page limits (`linux.resources.hugepageLimits`, which the kubelet sets on every container of a node whose
//! cgroups offer `hugetlb`) are written to both the fault-time limit and, where the kernel has it (Linux 5.7+), the
//! reservation limit `hugetlb.<size>.rsvd.*`, as runc does since 1.1.10: without the latter a process can `mmap`
//! more huge pages than it may fault in, and dies of SIGBUS on first touch instead of failing at `mmap`. A page size
//! the kernel does not offer, or a hierarchy without the `hugetlb` controller, is an error, never skipped.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod driver;
pub(crate) mod limits;

pub use driver::CgroupDriver;

use limits::{DeviceRules, Facts};

/// Which cgroup hierarchy the container's limits go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The controllers this crate manages on v1 (a directory is made in each one that is mounted).
const V1_CONTROLLERS: [&str; 9] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices", "hugetlb",
];

/// The controllers enabled down a v2 path, where the hierarchy offers them.
const V2_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuset", "pids", "io", "hugetlb"];

/// Where the kernel lists the huge page sizes it supports, one `hugepages-<N>kB` directory each.
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";

/// One container's cgroup (a directory per v1 controller, or one v2 directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The version in use.
    pub version: CgroupVersion,
    /// v1: `(controller, directory)` for each managed controller; v2: one entry with an empty controller name.
    pub dirs: Vec<(String, PathBuf)>,
}

/// How a new process enters the container's cgroup without the parent writing its pid.
///
/// Moving another process into a cgroup (writing its pid to `cgroup.procs`) takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period: 5 to 15 ms on the machines measured,
/// the largest single cost of starting a container. A process that moves itself by writing `0` to a v1 `tasks` file
/// does not take that lock (a single thread moving itself cannot race with its own fork or exec), and `clone3` with
/// `CLONE_INTO_CGROUP` puts a v2 child in place at fork under the read side only. The files are opened by the parent,
/// so the kernel checks the parent's credentials (open-time credentials, Linux 5.16+), not the child's.
#[derive(Debug, Default)]
pub(crate) struct JoinFds {
    /// v1: each hierarchy's `tasks` file (path, for errors), for the child to write `0` to.
    pub tasks: Vec<(PathBuf, OwnedFd)>,
    /// v2: the cgroup directory, for `CLONE_INTO_CGROUP`.
    pub v2_dir: Option<OwnedFd>,
}

fn write(path: &Path, value: &str, what: &'static str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| Error::Cgroup {
            path: path.to_owned(),
            what,
            source,
        })?;
    f.write_all(value.as_bytes()).map_err(|source| Error::Cgroup {
        path: path.to_owned(),
        what,
        source,
    })
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    read(path)?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

/// Resource usage of a container's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Current memory usage in bytes.
    pub memory_usage: u64,
    /// Peak memory usage in bytes (`None` where the kernel does not report it).
    pub memory_peak: Option<u64>,
    /// The memory limit in bytes (`None`: unlimited).
    pub memory_limit: Option<u64>,
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Number of tasks in the cgroup.
    pub pids_current: u64,
    /// How many processes the OOM killer killed in this cgroup.
    pub oom_kills: u64,
    /// Bytes read from block devices by the cgroup's processes (v1 `blkio` service bytes, v2 `io.stat`
    /// `rbytes`), as `docker stats` counts BLOCK I/O; 0 where the kernel does not account them.
    #[serde(default)]
    pub io_read_bytes: u64,
    /// Bytes written to block devices (v1 `blkio`, v2 `io.stat` `wbytes`).
    #[serde(default)]
    pub io_write_bytes: u64,
}

impl Cgroup {
    /// Create the cgroup `rel` (relative to each hierarchy's root, e.g. `wharf/ID`) and apply `resources`.
    ///
    /// # Errors
    /// [`Error::Cgroup`] when a directory or file cannot be written, [`Error::CgroupUnavailable`] when a limit needs a
    /// controller or file the host lacks (e.g. swap limits without swap accounting).
    pub fn create(driver: &CgroupDriver, rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        match Cgroup::make(driver, rel, resources) {
            // An unprivileged caller without a cgroup it may write (rootless, as podman and runc run): the container
            // runs in the caller's cgroup, which is fine only while nothing asks for a limit.
            Err(Error::Cgroup { path, what, source })
                if !rustix::process::geteuid().is_root()
                    && matches!(
                        source.kind(),
                        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                    ) =>
            {
                match resources.and_then(limits::first_limit) {
                    None => Ok(Cgroup {
                        version: driver.version,
                        dirs: Vec::new(),
                    }),
                    Some(limit) => Err(Error::CgroupUnavailable {
                        controller: limit.into(),
                        reason: format!(
                            "a rootless container gets a {limit} limit only in a cgroup its user may write, and \
                             {what} {} failed: {source} (delegate a cgroup v2 subtree to the user, as systemd's user \
                             slice does, or run without the limit)",
                            path.display()
                        ),
                    }),
                }
            }
            r => r,
        }
    }

    /// [`Cgroup::create`] for a caller that may write the hierarchy.
    fn make(driver: &CgroupDriver, rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let mut dirs = Vec::new();
        match driver.version {
            CgroupVersion::V1 => {
                for c in V1_CONTROLLERS {
                    let Some(m) = driver.mount_of(c) else { continue };
                    let dir = m.join(rel);
                    if c == "cpuset" {
                        create_cpuset_v1(m, rel)?;
                    } else {
                        fs::create_dir_all(&dir).map_err(|source| Error::Cgroup {
                            path: dir.clone(),
                            what: "create",
                            source,
                        })?;
                    }
                    dirs.push((c.to_owned(), dir));
                }
            }
            CgroupVersion::V2 => {
                let (_, root) = &driver.mounts[0];
                // Enable the controllers down the path so the leaf gets their files.
                let mut cur = root.clone();
                let avail = read(&root.join("cgroup.controllers")).unwrap_or_default();
                let wanted: Vec<&str> = avail
                    .split_whitespace()
                    .filter(|c| V2_CONTROLLERS.contains(c))
                    .collect();
                for comp in rel.components() {
                    let ctl: String = wanted.iter().map(|c| format!("+{c} ")).collect();
                    // Best effort: a controller already enabled or not delegated is not an error here; a missing
                    // file is reported when the limit is written.
                    let _ = write(
                        &cur.join("cgroup.subtree_control"),
                        ctl.trim_end(),
                        "enable controllers",
                    );
                    cur = cur.join(comp);
                    if !cur.exists() {
                        fs::create_dir(&cur).map_err(|source| Error::Cgroup {
                            path: cur.clone(),
                            what: "create",
                            source,
                        })?;
                    }
                }
                dirs.push((String::new(), cur));
            }
        }
        let cg = Cgroup {
            version: driver.version,
            dirs,
        };
        let default = LinuxResources::default();
        let applied = cg.apply(resources.unwrap_or(&default), DeviceRules::Always);
        if let Err(e) = applied {
            let _ = cg.delete();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            CgroupVersion::V1 => self
                .dirs
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, d)| d.as_path()),
            CgroupVersion::V2 => self.dirs.first().map(|(_, d)| d.as_path()),
        }
    }

    fn need(&self, controller: &str, file: &str) -> Result<PathBuf> {
        let dir = self.dir(controller).ok_or_else(|| Error::CgroupUnavailable {
            controller: controller.into(),
            reason: "not mounted".into(),
        })?;
        let p = dir.join(file);
        if !p.exists() {
            return Err(Error::CgroupUnavailable {
                controller: controller.into(),
                reason: format!("{} does not exist", p.display()),
            });
        }
        Ok(p)
    }

    /// Apply (or change, on a running container) the limits in `r`, and its device rules when it lists any. Fields
    /// `r` does not set keep their current values, and unsupported fields are refused as at create.
    ///
    /// # Errors
    /// As [`Cgroup::create`]. Every limit is checked (spec fields, page sizes, controllers, files) before anything
    /// is written.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        self.apply(r, DeviceRules::IfListed)
    }

    /// Translate `r` ([`limits::translate`], with the facts it needs read from here), check that every file it
    /// writes exists, then write them in order.
    fn apply(&self, r: &LinuxResources, devices: DeviceRules) -> Result<()> {
        let limits = limits::translate(r, self.version, &self.facts(r), devices)?;
        // Each distinct file is checked once (the device rules write `devices.allow` a dozen times).
        let mut paths: Vec<PathBuf> = Vec::with_capacity(limits.writes.len());
        for w in &limits.writes {
            let seen = paths
                .iter()
                .find(|p| p.ends_with(&w.file) && self.dir(w.controller) == p.parent());
            let path = match seen {
                Some(p) => p.clone(),
                None => self.need(w.controller, &w.file)?,
            };
            paths.push(path);
        }
        if let Some(rules) = &limits.device_program {
            let dir = self.dir("").ok_or_else(|| Error::CgroupUnavailable {
                controller: "devices".into(),
                reason: "no cgroup directory".into(),
            })?;
            crate::devices::attach(dir, rules)?;
        }
        for (w, path) in limits.writes.iter().zip(&paths) {
            write(path, &w.value, w.what)?;
        }
        Ok(())
    }

    /// What [`limits::translate`] needs to know about this cgroup and the host for `r`: only what `r` asks about
    /// is read.
    fn facts(&self, r: &LinuxResources) -> Facts {
        let v1 = self.version == CgroupVersion::V1;
        let mut f = Facts {
            devices_v1: self.dir("devices").is_some(),
            devices_v2: rustix::process::geteuid().is_root(),
            ..Facts::default()
        };
        let file = |controller: &str, name: &str| self.dir(controller).map(|d| d.join(name));
        if v1 && r.memory().is_some() {
            f.memory_limit = file("memory", "memory.limit_in_bytes").and_then(|p| read_u64(&p));
            f.memsw_limit = file("memory", "memory.memsw.limit_in_bytes").and_then(|p| read_u64(&p));
        }
        if !v1
            && r.cpu()
                .as_ref()
                .is_some_and(|c| c.quota().is_none() != c.period().is_none())
        {
            f.cpu_max = file("cpu", "cpu.max").and_then(|p| read(&p)).and_then(|s| {
                let (q, p) = s.trim().split_once(' ')?;
                Some((q.to_owned(), p.parse().ok()?))
            });
        }
        if r.block_io().as_ref().is_some_and(|b| b.weight().is_some()) {
            let candidates: [(&str, &'static str); 2] = if v1 {
                [("blkio", "blkio.weight"), ("blkio", "blkio.bfq.weight")]
            } else {
                [("io", "io.bfq.weight"), ("io", "io.weight")]
            };
            f.io_weight_file = candidates
                .into_iter()
                .find(|(c, name)| file(c, name).is_some_and(|p| p.exists()))
                .map(|(_, name)| name);
        }
        if r.hugepage_limits().as_ref().is_some_and(|l| !l.is_empty()) {
            f.hugetlb = self.hugetlb_available();
            f.page_sizes = huge_page_sizes();
            let rsvd = if v1 { "limit_in_bytes" } else { "max" };
            f.hugetlb_rsvd = f.page_sizes.as_ref().ok().and_then(|s| s.first()).is_some_and(|size| {
                file("hugetlb", &format!("hugetlb.{size}.rsvd.{rsvd}")).is_some_and(|p| p.exists())
            });
        }
        f
    }

    /// Whether this cgroup has the hugetlb controller, or why not.
    fn hugetlb_available(&self) -> std::result::Result<(), String> {
        match self.version {
            CgroupVersion::V1 => self
                .dir("hugetlb")
                .map(|_| ())
                .ok_or_else(|| "cannot set hugetlb limit: no cgroup v1 hugetlb hierarchy is mounted".to_owned()),
            CgroupVersion::V2 => {
                let dir = self.dir("").ok_or_else(|| "no cgroup directory".to_owned())?;
                let offered = read(&dir.join("cgroup.controllers")).unwrap_or_default();
                if offered.split_whitespace().any(|c| c == "hugetlb") {
                    Ok(())
                } else {
                    Err(format!(
                        "cannot set hugetlb limit: not enabled for {} (its cgroup.controllers: {:?})",
                        dir.display(),
                        offered.trim()
                    ))
                }
            }
        }
    }

    /// Put process `pid` into the cgroup.
    ///
    /// # Errors
    /// [`Error::Cgroup`] when a `cgroup.procs` file cannot be written.
    pub fn attach(&self, pid: i32) -> Result<()> {
        for (_, d) in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string(), "attach process")?;
        }
        Ok(())
    }

    /// Open what a new process needs to enter this cgroup by itself (see [`JoinFds`]).
    ///
    /// # Errors
    /// [`Error::Cgroup`] when a `tasks` file or the v2 directory cannot be opened.
    pub(crate) fn join_fds(&self) -> Result<JoinFds> {
        let mut out = JoinFds::default();
        for (_, d) in &self.dirs {
            let (path, opts) = match self.version {
                CgroupVersion::V1 => (d.join("tasks"), fs::OpenOptions::new().write(true).clone()),
                CgroupVersion::V2 => (
                    d.clone(),
                    fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECTORY)
                        .clone(),
                ),
            };
            let f = opts.open(&path).map_err(|source| Error::Cgroup {
                path: path.clone(),
                what: "open to attach a process",
                source,
            })?;
            match self.version {
                CgroupVersion::V1 => out.tasks.push((path, f.into())),
                CgroupVersion::V2 => out.v2_dir = Some(f.into()),
            }
        }
        Ok(out)
    }

    /// The host pids of every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let d = self
            .dir("pids")
            .or_else(|| self.dir("memory"))
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()));
        d.and_then(|d| read(&d.join("cgroup.procs")))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Read the container's resource usage.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        match self.version {
            CgroupVersion::V1 => {
                if let Some(d) = self.dir("memory") {
                    s.memory_usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                    s.memory_peak = read_u64(&d.join("memory.max_usage_in_bytes"));
                    s.memory_limit = read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
                    s.oom_kills = keyed(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0);
                }
                if let Some(d) = self.dir("cpuacct") {
                    s.cpu_usage_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
                }
                if let Some(d) = self.dir("pids") {
                    s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
                }
                if let Some(d) = self.dir("blkio") {
                    // `MAJ:MIN Read N` lines; the throttle files count on every kernel, the others only with CFQ.
                    let text = read(&d.join("blkio.throttle.io_service_bytes_recursive"))
                        .or_else(|| read(&d.join("blkio.io_service_bytes_recursive")))
                        .unwrap_or_default();
                    for line in text.lines() {
                        let f: Vec<&str> = line.split_whitespace().collect();
                        let n = f.get(2).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                        match f.get(1) {
                            Some(&"Read") => s.io_read_bytes += n,
                            Some(&"Write") => s.io_write_bytes += n,
                            _ => {}
                        }
                    }
                }
            }
            CgroupVersion::V2 => {
                if let Some(d) = self.dir("") {
                    s.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
                    s.memory_peak = read_u64(&d.join("memory.peak"));
                    s.memory_limit = read_u64(&d.join("memory.max"));
                    s.oom_kills = keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0);
                    s.cpu_usage_ns = keyed(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
                    s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
                    // `MAJ:MIN rbytes=N wbytes=N …` lines, one per device.
                    for kv in read(&d.join("io.stat")).unwrap_or_default().split_whitespace() {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        let n = v.parse::<u64>().unwrap_or(0);
                        match k {
                            "rbytes" => s.io_read_bytes += n,
                            "wbytes" => s.io_write_bytes += n,
                            _ => {}
                        }
                    }
                }
            }
        }
        s
    }

    /// Freeze (`true`) or thaw (`false`) every process in the cgroup.
    ///
    /// # Errors
    /// [`Error::CgroupUnavailable`] without a freezer; [`Error::Cgroup`] when the file cannot be written.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match self.version {
            CgroupVersion::V1 => write(
                &self.need("freezer", "freezer.state")?,
                if frozen { "FROZEN" } else { "THAWED" },
                "freeze",
            ),
            CgroupVersion::V2 => write(
                &self.need("", "cgroup.freeze")?,
                if frozen { "1" } else { "0" },
                "freeze",
            ),
        }
    }

    /// Send SIGKILL to every process in the cgroup, until it is empty or `timeout` has passed.
    pub fn kill_all(&self, timeout: Duration) {
        if let Some(d) = self.dir("").filter(|_| self.version == CgroupVersion::V2) {
            let _ = write(&d.join("cgroup.kill"), "1", "kill");
        }
        let start = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() || start.elapsed() > timeout {
                return;
            }
            for p in pids {
                // SAFETY: plain kill(2) on a pid read from the cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            // A frozen task cannot die: thaw (best effort; there may be no freezer).
            let _ = self.freeze(false);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Remove the cgroup directories, killing anything still inside first.
    ///
    /// # Errors
    /// [`Error::Cgroup`] when a directory cannot be removed within a few seconds.
    pub fn delete(&self) -> Result<()> {
        if !self.pids().is_empty() {
            self.kill_all(Duration::from_secs(5));
        }
        for (_, d) in &self.dirs {
            let start = Instant::now();
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // Tasks that were just killed leave the cgroup asynchronously.
                    Err(_) if start.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(1)),
                    Err(source) => {
                        return Err(Error::Cgroup {
                            path: d.clone(),
                            what: "remove",
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether any of the cgroup's directories still exist.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, d)| d.exists())
    }
}

/// The huge page sizes this kernel offers, named as the hugetlb controller names its files (`64KB`, `2MB`, `1GB`).
fn huge_page_sizes() -> std::result::Result<Vec<String>, String> {
    let entries =
        fs::read_dir(HUGEPAGES_DIR).map_err(|e| format!("this kernel offers no huge pages: {HUGEPAGES_DIR}: {e}"))?;
    let mut kbs: Vec<u64> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()
        })
        .collect();
    kbs.sort_unstable();
    Ok(kbs.into_iter().map(page_size_name).collect())
}

/// The kernel's name for a huge page size of `kb` KiB (mm/hugetlb_cgroup.c: whole GB, else whole MB, else KB).
fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// v1 cpuset directories start with empty `cpus`/`mems`, and a task cannot join such a cgroup: copy the parent's
/// values down every new level.
fn create_cpuset_v1(mount: &Path, rel: &Path) -> Result<()> {
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur = cur.join(comp);
        if !cur.exists() {
            fs::create_dir(&cur).map_err(|source| Error::Cgroup {
                path: cur.clone(),
                what: "create",
                source,
            })?;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = read(&cur.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = read(&parent.join(f)).unwrap_or_default();
                write(&cur.join(f), theirs.trim(), "copy cpuset from parent")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_named_as_the_kernel_names_them() {
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(32 << 10), "32MB");
        assert_eq!(page_size_name(512 << 10), "512MB");
        assert_eq!(page_size_name(1 << 20), "1GB");
        assert_eq!(page_size_name(16 << 20), "16GB");
    }
}

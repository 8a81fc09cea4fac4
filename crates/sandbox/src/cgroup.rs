//! Control groups: a small layer that writes the cgroup files directly, for cgroup v1 and v2.
//!
//! Why not `cgroups-rs`: its current releases (0.5) depend unconditionally on `zbus` (an async D-Bus stack, for a
//! systemd manager we do not use) and `nix`, which would more than double this crate's build; and its `auto()`
//! picks one hierarchy for the whole host, while a hybrid host (v1 controllers plus a cgroup2 mount at
//! `/sys/fs/cgroup/unified` with no controllers in it, as on this project's machines) needs the choice made per
//! controller. The dozen files a container runtime touches are simple to write directly.
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

/// Which cgroup hierarchy the container's limits go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// Device rules every container gets on top of the spec's (cgroup v1), as runc allows them: mknod of anything,
/// and use of null, zero, full, random, urandom, tty, console, ptmx and the pty slaves.
const DEFAULT_ALLOWED_DEVICES: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// The controllers this crate manages on v1 (a directory is made in each one that is mounted).
const V1_CONTROLLERS: [&str; 9] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices", "hugetlb",
];

/// The controllers enabled down a v2 path, where the hierarchy offers them.
const V2_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuset", "pids", "io", "hugetlb"];

/// Where the kernel lists the huge page sizes it supports, one `hugepages-<N>kB` directory each.
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";

/// The cgroup hierarchies found on the host, and the one used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDriver {
    /// The version used for limits.
    pub version: CgroupVersion,
    /// v1: `(controller, mount point)`; v2: `("", mount point)`.
    pub mounts: Vec<(String, PathBuf)>,
}

impl CgroupDriver {
    /// Find the cgroup hierarchies in `/proc/self/mountinfo` and choose one.
    ///
    /// # Errors
    /// [`Error::CgroupUnavailable`] when neither a v1 memory hierarchy nor a cgroup2 mount with the memory controller
    /// exists.
    pub fn detect() -> Result<CgroupDriver> {
        let info = fs::read_to_string("/proc/self/mountinfo").map_err(Error::io("read", "/proc/self/mountinfo"))?;
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mountpoint) = left.split(' ').nth(4) else {
                continue;
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let opts = r.next().unwrap_or("");
            match fstype {
                "cgroup" => {
                    for c in opts.split(',') {
                        if V1_CONTROLLERS.contains(&c) {
                            v1.push((c.to_owned(), PathBuf::from(mountpoint)));
                        }
                    }
                }
                "cgroup2" => v2.push(PathBuf::from(mountpoint)),
                _ => {}
            }
        }
        if v1.iter().any(|(c, _)| c == "memory") {
            return Ok(CgroupDriver {
                version: CgroupVersion::V1,
                mounts: v1,
            });
        }
        for m in v2 {
            let ctrls = fs::read_to_string(m.join("cgroup.controllers")).unwrap_or_default();
            if ctrls.split_whitespace().any(|c| c == "memory") {
                return Ok(CgroupDriver {
                    version: CgroupVersion::V2,
                    mounts: vec![(String::new(), m)],
                });
            }
        }
        Err(Error::CgroupUnavailable {
            controller: "memory".into(),
            reason: "neither a cgroup v1 memory hierarchy nor a cgroup2 mount offering memory is mounted".into(),
        })
    }

    fn mount_of(&self, controller: &str) -> Option<&Path> {
        self.mounts
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_path())
    }
}

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
}

impl Cgroup {
    /// Create the cgroup `rel` (relative to each hierarchy's root, e.g. `wharf/ID`) and apply `resources`.
    ///
    /// # Errors
    /// [`Error::Cgroup`] when a directory or file cannot be written, [`Error::CgroupUnavailable`] when a limit needs a
    /// controller or file the host lacks (e.g. swap limits without swap accounting).
    pub fn create(driver: &CgroupDriver, rel: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
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
        let applied = (|| {
            // Device rules once, here: every container gets the default-deny filter even when the spec lists no rules.
            let rules = resources.and_then(|r| r.devices().clone()).unwrap_or_default();
            if cg.version == CgroupVersion::V2 || cg.dir("devices").is_some() {
                cg.apply_devices(&rules)?;
            }
            match resources {
                Some(r) => cg.apply_limits(r),
                None => Ok(()),
            }
        })();
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

    /// Apply (or change, on a running container) the limits in `r`, and its device rules when it lists any.
    ///
    /// # Errors
    /// As [`Cgroup::create`]. Huge page limits are checked (page sizes, controller) before anything is written.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        self.apply_limits(r)?;
        if let Some(devs) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            self.apply_devices(devs)?;
        }
        Ok(())
    }

    /// Everything in `r` but the device rules.
    fn apply_limits(&self, r: &LinuxResources) -> Result<()> {
        let v1 = self.version == CgroupVersion::V1;
        let hugetlb = self.hugetlb_writes(r)?;
        if let Some(m) = r.memory() {
            if v1 {
                // Raising the limit must come before raising memsw, and lowering memsw before lowering the limit:
                // try one order, then the other.
                let set = |limit: Option<i64>, swap: Option<i64>| -> Result<()> {
                    if let Some(l) = limit {
                        write(
                            &self.need("memory", "memory.limit_in_bytes")?,
                            &l.to_string(),
                            "memory limit",
                        )?;
                    }
                    if let Some(s) = swap {
                        write(
                            &self.need("memory", "memory.memsw.limit_in_bytes")?,
                            &s.to_string(),
                            "swap limit",
                        )?;
                    }
                    Ok(())
                };
                if set(m.limit(), m.swap()).is_err() {
                    if let Some(s) = m.swap() {
                        write(
                            &self.need("memory", "memory.memsw.limit_in_bytes")?,
                            &s.to_string(),
                            "swap limit",
                        )?;
                    }
                    set(m.limit(), None)?;
                }
                if let Some(res) = m.reservation() {
                    write(
                        &self.need("memory", "memory.soft_limit_in_bytes")?,
                        &res.to_string(),
                        "memory reservation",
                    )?;
                }
                if let Some(sw) = m.swappiness() {
                    write(
                        &self.need("memory", "memory.swappiness")?,
                        &sw.to_string(),
                        "swappiness",
                    )?;
                }
            } else {
                if let Some(l) = m.limit() {
                    let v = if l < 0 { "max".to_owned() } else { l.to_string() };
                    write(&self.need("memory", "memory.max")?, &v, "memory limit")?;
                }
                if let Some(s) = m.swap() {
                    // OCI swap is memory+swap; v2's swap.max is swap alone.
                    let v = match (s, m.limit()) {
                        (s, _) if s < 0 => "max".to_owned(),
                        (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                        (s, _) => s.to_string(),
                    };
                    write(&self.need("memory", "memory.swap.max")?, &v, "swap limit")?;
                }
                if let Some(res) = m.reservation() {
                    write(
                        &self.need("memory", "memory.low")?,
                        &res.to_string(),
                        "memory reservation",
                    )?;
                }
            }
        }
        if let Some(c) = r.cpu() {
            if v1 {
                if let Some(s) = c.shares() {
                    write(&self.need("cpu", "cpu.shares")?, &s.to_string(), "cpu shares")?;
                }
                if let Some(p) = c.period() {
                    write(&self.need("cpu", "cpu.cfs_period_us")?, &p.to_string(), "cpu period")?;
                }
                if let Some(q) = c.quota() {
                    write(&self.need("cpu", "cpu.cfs_quota_us")?, &q.to_string(), "cpu quota")?;
                }
                if let Some(cpus) = c.cpus() {
                    write(&self.need("cpuset", "cpuset.cpus")?, cpus, "cpuset cpus")?;
                }
                if let Some(mems) = c.mems() {
                    write(&self.need("cpuset", "cpuset.mems")?, mems, "cpuset mems")?;
                }
            } else {
                if let Some(s) = c.shares() {
                    // runc's conversion of shares [2, 262144] to weight [1, 10000].
                    let w = 1 + (s.clamp(2, 262144) - 2) * 9999 / 262142;
                    write(&self.need("cpu", "cpu.weight")?, &w.to_string(), "cpu weight")?;
                }
                if c.quota().is_some() || c.period().is_some() {
                    let q = match c.quota() {
                        Some(q) if q > 0 => q.to_string(),
                        _ => "max".into(),
                    };
                    let p = c.period().unwrap_or(100_000);
                    write(&self.need("cpu", "cpu.max")?, &format!("{q} {p}"), "cpu quota")?;
                }
                if let Some(cpus) = c.cpus() {
                    write(&self.need("cpuset", "cpuset.cpus")?, cpus, "cpuset cpus")?;
                }
                if let Some(mems) = c.mems() {
                    write(&self.need("cpuset", "cpuset.mems")?, mems, "cpuset mems")?;
                }
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() <= 0 {
                "max".to_owned()
            } else {
                p.limit().to_string()
            };
            write(&self.need("pids", "pids.max")?, &v, "pids limit")?;
        }
        if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
            if v1 {
                let file = ["blkio.weight", "blkio.bfq.weight"]
                    .into_iter()
                    .find(|f| self.dir("blkio").is_some_and(|d| d.join(f).exists()))
                    .ok_or_else(|| Error::CgroupUnavailable {
                        controller: "blkio".into(),
                        reason: "neither blkio.weight nor blkio.bfq.weight exists (no proportional IO scheduler)"
                            .into(),
                    })?;
                write(&self.need("blkio", file)?, &w.to_string(), "blkio weight")?;
            } else {
                let v = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
                let file = if self.dir("io").is_some_and(|d| d.join("io.weight").exists()) {
                    "io.weight"
                } else {
                    "io.bfq.weight"
                };
                write(&self.need("io", file)?, &v.to_string(), "io weight")?;
            }
        }
        for w in &hugetlb {
            write(&w.limit, &w.value, "hugetlb limit")?;
            if let Some(rsvd) = &w.rsvd {
                write(rsvd, &w.value, "hugetlb reservation limit")?;
            }
        }
        if let (CgroupVersion::V2, Some(unified)) = (self.version, r.unified()) {
            let dir = self.need("", "cgroup.procs")?;
            let dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut keys: Vec<_> = unified.iter().collect();
            keys.sort();
            for (k, v) in keys {
                if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                    return Err(Error::CgroupUnavailable {
                        controller: k.clone(),
                        reason: "not a cgroup file name".into(),
                    });
                }
                write(&dir.join(k), v, "unified resource")?;
            }
        }
        Ok(())
    }

    /// Check `r`'s huge page limits against the kernel and this cgroup, and say which files get which value.
    fn hugetlb_writes(&self, r: &LinuxResources) -> Result<Vec<HugetlbWrite>> {
        let Some(limits) = r.hugepage_limits().as_ref().filter(|l| !l.is_empty()) else {
            return Ok(Vec::new());
        };
        let unavailable = |reason: String| Error::CgroupUnavailable {
            controller: "hugetlb".into(),
            reason,
        };
        let dir = match self.version {
            CgroupVersion::V1 => self.dir("hugetlb").ok_or_else(|| {
                unavailable("cannot set hugetlb limit: no cgroup v1 hugetlb hierarchy is mounted".into())
            })?,
            CgroupVersion::V2 => {
                let dir = self.dir("").ok_or_else(|| unavailable("no cgroup directory".into()))?;
                let offered = read(&dir.join("cgroup.controllers")).unwrap_or_default();
                if !offered.split_whitespace().any(|c| c == "hugetlb") {
                    return Err(unavailable(format!(
                        "cannot set hugetlb limit: not enabled for {} (its cgroup.controllers: {:?})",
                        dir.display(),
                        offered.trim()
                    )));
                }
                dir
            }
        };
        let sizes = huge_page_sizes()?;
        let (limit_suffix, unlimited) = match self.version {
            CgroupVersion::V1 => ("limit_in_bytes", "-1"),
            CgroupVersion::V2 => ("max", "max"),
        };
        let mut out = Vec::new();
        for (i, l) in limits.iter().enumerate() {
            let size = l.page_size();
            let well_formed = size
                .strip_suffix("KB")
                .or_else(|| size.strip_suffix("MB"))
                .or_else(|| size.strip_suffix("GB"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !well_formed {
                return Err(Error::spec(
                    &format!("linux.resources.hugepageLimits[{i}].pageSize"),
                    format!("{size:?} is not a page size like 64KB, 2MB or 1GB"),
                ));
            }
            if !sizes.contains(size) {
                return Err(unavailable(format!(
                    "page size {size} is not offered by this kernel (it offers {}; see {HUGEPAGES_DIR})",
                    sizes.join(", ")
                )));
            }
            let limit = self.need("hugetlb", &format!("hugetlb.{size}.{limit_suffix}"))?;
            let rsvd = Some(dir.join(format!("hugetlb.{size}.rsvd.{limit_suffix}"))).filter(|p| p.exists());
            let value = if l.limit() < 0 {
                unlimited.to_owned()
            } else {
                l.limit().to_string()
            };
            out.push(HugetlbWrite { limit, rsvd, value });
        }
        Ok(out)
    }

    /// Device access: deny everything, then the spec's rules, then the nodes every container gets (as runc and
    /// Docker do; without this a container with CAP_MKNOD could open the host's disks). v1 writes
    /// `devices.deny`/`devices.allow`; v2 attaches an eBPF program ([`crate::devices`]).
    fn apply_devices(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        if self.version == CgroupVersion::V2 {
            let dir = self.dir("").ok_or_else(|| Error::CgroupUnavailable {
                controller: "devices".into(),
                reason: "no cgroup directory".into(),
            })?;
            let mut all = vec![crate::devices::Rule {
                allow: false,
                typ: 'a',
                major: None,
                minor: None,
                access: 7,
            }];
            all.extend(rules.iter().map(crate::devices::Rule::from_spec));
            all.extend(
                DEFAULT_ALLOWED_DEVICES
                    .iter()
                    .filter_map(|r| crate::devices::Rule::parse_allow(r)),
            );
            return crate::devices::attach(dir, &all);
        }
        let deny = self.need("devices", "devices.deny")?;
        let dir = deny.parent().map(Path::to_path_buf).unwrap_or_default();
        write(&deny, "a", "device rule")?;
        for d in rules {
            let typ = d.typ().map_or_else(|| "a".to_owned(), |t| t.as_str().to_owned());
            let major = d.major().map_or("*".to_owned(), |m| m.to_string());
            let minor = d.minor().map_or("*".to_owned(), |m| m.to_string());
            let access = d.access().clone().unwrap_or_else(|| "rwm".into());
            let rule = if typ == "a" {
                "a".to_owned()
            } else {
                format!("{typ} {major}:{minor} {access}")
            };
            let file = if d.allow() { "devices.allow" } else { "devices.deny" };
            write(&dir.join(file), &rule, "device rule")?;
        }
        for rule in DEFAULT_ALLOWED_DEVICES {
            write(&dir.join("devices.allow"), rule, "device rule")?;
        }
        Ok(())
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
            }
            CgroupVersion::V2 => {
                if let Some(d) = self.dir("") {
                    s.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
                    s.memory_peak = read_u64(&d.join("memory.peak"));
                    s.memory_limit = read_u64(&d.join("memory.max"));
                    s.oom_kills = keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0);
                    s.cpu_usage_ns = keyed(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
                    s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
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

/// One huge page size's limit: the fault-time limit file, the reservation limit file where the kernel has one, and
/// the value for both.
struct HugetlbWrite {
    limit: PathBuf,
    rsvd: Option<PathBuf>,
    value: String,
}

/// The huge page sizes this kernel offers, named as the hugetlb controller names its files (`64KB`, `2MB`, `1GB`).
fn huge_page_sizes() -> Result<Vec<String>> {
    let entries = fs::read_dir(HUGEPAGES_DIR).map_err(|e| Error::CgroupUnavailable {
        controller: "hugetlb".into(),
        reason: format!("this kernel offers no huge pages: {HUGEPAGES_DIR}: {e}"),
    })?;
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

//! Resource limits as data: one pure translation from [`LinuxResources`] (and what the host's cgroup offers) to the
//! ordered list of cgroup file writes. [`Cgroup::create`](super::Cgroup::create) and
//! [`Cgroup::update`](super::Cgroup::update) both apply what it returns, so a limit behaves the same at create and
//! at update, and both refuse the same unsupported fields ([`check_supported`]).
//!
//! The few host facts a translation depends on (the current v1 memory and swap limits, the current v2 `cpu.max`,
//! which weight file the IO scheduler offers, the huge page sizes) are read beforehand into [`Facts`], so the
//! translation itself touches nothing and unit tests cover it for v1 and v2 without root.
//!
//! Orders and conventions follow runc's cgroup code:
//! - v1 memory and swap (`memory.memsw.limit_in_bytes`, which the kernel keeps at or above the memory limit): when
//!   both change, swap is written first if the new swap limit is above the current memory limit (or unlimited),
//!   else the memory limit first. When only the memory limit changes and would rise above the current swap limit,
//!   the swap limit is raised with it, keeping the swap allowance (swap limit minus memory limit) the container had
//!   (runc and Docker fail there with EINVAL instead); an unlimited memory limit makes swap unlimited too, as runc
//!   does. `0` for the memory or swap limit means "not set", as in runc.
//! - v2 `cpu.max` holds quota and period together: changing one keeps the other's current value (runc's update).
//! - An IO weight goes to BFQ's `*.bfq.weight` when the scheduler offers it (unconverted), else to
//!   `blkio.weight`/`io.weight`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::CgroupVersion;
use crate::devices::Rule;
use crate::error::{Error, Result};

/// Device rules every container gets on top of the spec's, as runc allows them: mknod of anything, and use of
/// null, zero, full, random, urandom, tty, console, ptmx and the pty slaves.
pub(crate) const DEFAULT_ALLOWED_DEVICES: [&str; 11] = [
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

/// A v1 limit at or above this is the kernel's "unlimited" (`PAGE_COUNTER_MAX` in bytes).
const V1_UNLIMITED: u64 = 1 << 62;

/// One write of a cgroup file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Write {
    /// The controller whose directory holds the file (on v2, where every file is in one directory, the controller
    /// the file belongs to: it names a missing one in errors).
    pub controller: &'static str,
    /// The file name (`memory.limit_in_bytes`).
    pub file: String,
    /// What is written.
    pub value: String,
    /// What the write does, for errors (`memory limit`).
    pub what: &'static str,
}

/// Everything a [`LinuxResources`] turns into, in order: the device filter first (v2: an eBPF program of these
/// rules; v1: it is among the writes), then the writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// v2 only: the device rules of the eBPF filter, when the device rules are (re)applied.
    pub device_program: Option<Vec<Rule>>,
    /// The file writes, in the order they must happen.
    pub writes: Vec<Write>,
}

/// What the translation needs to know about the host and the cgroup's current values. [`Facts::default`] is a host
/// that offers nothing optional: no swap accounting, no huge page sizes, no IO weight file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// v1: the current `memory.limit_in_bytes`.
    pub memory_limit: Option<u64>,
    /// v1: the current `memory.memsw.limit_in_bytes` (`None`: no swap accounting).
    pub memsw_limit: Option<u64>,
    /// v2: the current `cpu.max` as (quota, period), e.g. (`max`, 100000).
    pub cpu_max: Option<(String, u64)>,
    /// The IO weight file the scheduler offers (`blkio.weight`, `blkio.bfq.weight`, `io.weight`, `io.bfq.weight`).
    pub io_weight_file: Option<&'static str>,
    /// `Ok(())` when the hugetlb controller is there for this cgroup, else why not.
    pub hugetlb: std::result::Result<(), String>,
    /// The huge page sizes the kernel offers (`2MB`, `1GB`), or why there are none.
    pub page_sizes: std::result::Result<Vec<String>, String>,
    /// The kernel has reservation limits (`hugetlb.<size>.rsvd.*`, Linux 5.7+).
    pub hugetlb_rsvd: bool,
    /// v1: the devices controller is mounted (the device rules go through it).
    pub devices_v1: bool,
    /// v2: the caller may attach a device program (root). An unprivileged caller's container (rootless, in a
    /// user namespace, where no device node can be made and existing ones keep their permissions) gets none, as
    /// runc's rootless containers do; device rules it lists are refused.
    pub devices_v2: bool,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            memory_limit: None,
            memsw_limit: None,
            cpu_max: None,
            io_weight_file: None,
            hugetlb: Ok(()),
            page_sizes: Ok(Vec::new()),
            hugetlb_rsvd: false,
            devices_v1: false,
            devices_v2: true,
        }
    }
}

/// Whether `r`'s device rules are applied: at create always (every container gets the default-deny filter), at
/// update only when `r` lists some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceRules {
    /// Create: always.
    Always,
    /// Update: when listed.
    IfListed,
}

/// `Err` naming `field` as unsupported when it is `set`: every such field is refused rather than ignored.
pub(crate) fn refuse(field: &str, set: bool) -> Result<()> {
    if set {
        Err(Error::spec(
            field,
            "not supported by wharf-sandbox (refused rather than ignored)",
        ))
    } else {
        Ok(())
    }
}

/// Refuse the resource fields this crate does not implement, at create and at update alike.
///
/// # Errors
/// [`Error::InvalidSpec`] naming the field.
pub(crate) fn check_supported(r: &LinuxResources, version: CgroupVersion) -> Result<()> {
    refuse("linux.resources.network", r.network().is_some())?;
    refuse("linux.resources.rdma", r.rdma().as_ref().is_some_and(|v| !v.is_empty()))?;
    refuse(
        "linux.resources.unified (cgroup v2 only; this host uses v1)",
        version == CgroupVersion::V1 && r.unified().as_ref().is_some_and(|v| !v.is_empty()),
    )?;
    if let Some(m) = r.memory() {
        refuse("linux.resources.memory.kernel", m.kernel().is_some())?;
        refuse("linux.resources.memory.kernelTCP", m.kernel_tcp().is_some())?;
        refuse(
            "linux.resources.memory.disableOOMKiller",
            m.disable_oom_killer() == Some(true),
        )?;
    }
    if let Some(c) = r.cpu() {
        refuse("linux.resources.cpu.realtimeRuntime", c.realtime_runtime().is_some())?;
        refuse("linux.resources.cpu.realtimePeriod", c.realtime_period().is_some())?;
        refuse("linux.resources.cpu.idle", c.idle().is_some())?;
        refuse("linux.resources.cpu.burst", c.burst().is_some())?;
    }
    if let Some(b) = r.block_io() {
        refuse("linux.resources.blockIO.leafWeight", b.leaf_weight().is_some())?;
        refuse(
            "linux.resources.blockIO.weightDevice",
            b.weight_device().as_ref().is_some_and(|v| !v.is_empty()),
        )?;
        refuse(
            "linux.resources.blockIO.throttle*",
            [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty())),
        )?;
    }
    Ok(())
}

/// The controller of the first limit `r` sets, device rules aside: what a container without a cgroup of its own
/// (rootless, without a delegated subtree) cannot honour. Device rules are not limits there: in a user namespace
/// the container cannot create device nodes, it only gets the host's bind-mounted.
pub(crate) fn first_limit(r: &LinuxResources) -> Option<&'static str> {
    fn set<T: Default + PartialEq>(v: &Option<T>) -> bool {
        v.as_ref().is_some_and(|v| *v != T::default())
    }
    let listed = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    [
        ("memory", set(r.memory())),
        ("cpu", set(r.cpu())),
        ("pids", r.pids().is_some()),
        ("blkio", set(r.block_io())),
        ("hugetlb", listed(r.hugepage_limits())),
        ("net_cls", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|v| !v.is_empty())),
        ("unified", r.unified().as_ref().is_some_and(|v| !v.is_empty())),
    ]
    .into_iter()
    .find_map(|(name, on)| on.then_some(name))
}

/// Collects writes.
struct Out<'a> {
    writes: &'a mut Vec<Write>,
}

impl Out<'_> {
    fn put(&mut self, controller: &'static str, file: impl Into<String>, value: impl ToString, what: &'static str) {
        self.writes.push(Write {
            controller,
            file: file.into(),
            value: value.to_string(),
            what,
        });
    }
}

/// Translate `r` into the writes that apply it to a cgroup of `version`, given the host `facts`.
///
/// # Errors
/// [`Error::InvalidSpec`] for an unsupported field or a malformed value (a huge page size);
/// [`Error::CgroupUnavailable`] when a limit needs what the host lacks (hugetlb, a page size, an IO weight file).
pub(crate) fn translate(
    r: &LinuxResources,
    version: CgroupVersion,
    facts: &Facts,
    devices: DeviceRules,
) -> Result<Limits> {
    check_supported(r, version)?;
    let mut limits = Limits::default();
    let rules = r.devices().clone().unwrap_or_default();
    if devices == DeviceRules::Always || !rules.is_empty() {
        match version {
            CgroupVersion::V2 if facts.devices_v2 => limits.device_program = Some(device_program(&rules)),
            CgroupVersion::V2 if !rules.is_empty() => {
                return Err(Error::CgroupUnavailable {
                    controller: "devices".into(),
                    reason: "linux.resources.devices: attaching a device program needs privilege an unprivileged \
                             caller does not have (its container's user namespace already keeps it from making \
                             device nodes)"
                        .into(),
                });
            }
            CgroupVersion::V2 => {}
            CgroupVersion::V1 if facts.devices_v1 => device_writes(&rules, &mut limits.writes),
            CgroupVersion::V1 => {}
        }
    }
    let hugetlb = hugetlb(r, version, facts)?;
    let mut out = Out {
        writes: &mut limits.writes,
    };
    match version {
        CgroupVersion::V1 => memory_v1(r, facts, &mut out),
        CgroupVersion::V2 => memory_v2(r, &mut out),
    }
    cpu(r, version, facts, &mut out);
    if let Some(p) = r.pids() {
        let v = if p.limit() <= 0 {
            "max".to_owned()
        } else {
            p.limit().to_string()
        };
        out.put("pids", "pids.max", v, "pids limit");
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        io_weight(w, version, facts, &mut out)?;
    }
    out.writes.extend(hugetlb);
    if let (CgroupVersion::V2, Some(unified)) = (version, r.unified()) {
        let mut keys: Vec<_> = unified.iter().collect();
        keys.sort();
        for (k, v) in keys {
            if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                return Err(Error::CgroupUnavailable {
                    controller: k.clone(),
                    reason: "not a cgroup file name".into(),
                });
            }
            out.put("", k.clone(), v, "unified resource");
        }
    }
    Ok(limits)
}

/// The v2 device filter: deny everything, then the spec's rules, then the nodes every container gets.
fn device_program(rules: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut all = vec![Rule {
        allow: false,
        typ: 'a',
        major: None,
        minor: None,
        access: 7,
    }];
    all.extend(rules.iter().map(Rule::from_spec));
    all.extend(DEFAULT_ALLOWED_DEVICES.iter().filter_map(|r| Rule::parse_allow(r)));
    all
}

/// The v1 device rules: `a` denied, then the spec's rules, then the nodes every container gets.
fn device_writes(rules: &[LinuxDeviceCgroup], writes: &mut Vec<Write>) {
    let mut put = |file: &str, rule: String| {
        writes.push(Write {
            controller: "devices",
            file: file.to_owned(),
            value: rule,
            what: "device rule",
        })
    };
    put("devices.deny", "a".to_owned());
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
        put(if d.allow() { "devices.allow" } else { "devices.deny" }, rule);
    }
    for rule in DEFAULT_ALLOWED_DEVICES {
        put("devices.allow", rule.to_owned());
    }
}

fn memory_v1(r: &LinuxResources, facts: &Facts, out: &mut Out<'_>) {
    let Some(m) = r.memory() else { return };
    // 0 means "not set", as in runc.
    let limit = m.limit().filter(|l| *l != 0);
    let mut swap = m.swap().filter(|s| *s != 0);
    let swap_first = match (limit, swap, facts.memsw_limit) {
        // Unlimited memory makes swap unlimited too (runc), where swap is accounted.
        (Some(-1), None, Some(_)) => {
            swap = Some(-1);
            true
        }
        (Some(_), Some(s), _) => s == -1 || facts.memory_limit.is_some_and(|cur| cur < s as u64),
        // Only the memory limit, above the current swap limit: raise swap with it, keeping the allowance.
        (Some(l), None, Some(memsw)) if memsw < V1_UNLIMITED && l > 0 && l as u64 > memsw => {
            let allowance = memsw.saturating_sub(facts.memory_limit.unwrap_or(memsw));
            swap = Some((l as u64).saturating_add(allowance).min(i64::MAX as u64) as i64);
            true
        }
        _ => false,
    };
    let mem = |out: &mut Out<'_>| {
        if let Some(l) = limit {
            out.put("memory", "memory.limit_in_bytes", l, "memory limit");
        }
    };
    let sw = |out: &mut Out<'_>| {
        if let Some(s) = swap {
            out.put("memory", "memory.memsw.limit_in_bytes", s, "swap limit");
        }
    };
    if swap_first {
        sw(out);
        mem(out);
    } else {
        mem(out);
        sw(out);
    }
    if let Some(res) = m.reservation() {
        out.put("memory", "memory.soft_limit_in_bytes", res, "memory reservation");
    }
    if let Some(s) = m.swappiness() {
        out.put("memory", "memory.swappiness", s, "swappiness");
    }
}

fn memory_v2(r: &LinuxResources, out: &mut Out<'_>) {
    let Some(m) = r.memory() else { return };
    if let Some(l) = m.limit() {
        let v = if l < 0 { "max".to_owned() } else { l.to_string() };
        out.put("memory", "memory.max", v, "memory limit");
    }
    if let Some(s) = m.swap() {
        // OCI swap is memory+swap; v2's swap.max is swap alone.
        let v = match (s, m.limit()) {
            (s, _) if s < 0 => "max".to_owned(),
            (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
            (s, _) => s.to_string(),
        };
        out.put("memory", "memory.swap.max", v, "swap limit");
    }
    if let Some(res) = m.reservation() {
        out.put("memory", "memory.low", res, "memory reservation");
    }
}

fn cpu(r: &LinuxResources, version: CgroupVersion, facts: &Facts, out: &mut Out<'_>) {
    let Some(c) = r.cpu() else { return };
    match version {
        CgroupVersion::V1 => {
            if let Some(s) = c.shares() {
                out.put("cpu", "cpu.shares", s, "cpu shares");
            }
            if let Some(p) = c.period() {
                out.put("cpu", "cpu.cfs_period_us", p, "cpu period");
            }
            if let Some(q) = c.quota() {
                out.put("cpu", "cpu.cfs_quota_us", q, "cpu quota");
            }
        }
        CgroupVersion::V2 => {
            if let Some(s) = c.shares() {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                let w = 1 + (s.clamp(2, 262144) - 2) * 9999 / 262142;
                out.put("cpu", "cpu.weight", w, "cpu weight");
            }
            if c.quota().is_some() || c.period().is_some() {
                let (cur_q, cur_p) = facts.cpu_max.clone().unwrap_or_else(|| ("max".into(), 100_000));
                let q = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    Some(_) => "max".into(),
                    None => cur_q,
                };
                let p = c.period().unwrap_or(cur_p);
                out.put("cpu", "cpu.max", format!("{q} {p}"), "cpu quota");
            }
        }
    }
    if let Some(cpus) = c.cpus() {
        out.put("cpuset", "cpuset.cpus", cpus, "cpuset cpus");
    }
    if let Some(mems) = c.mems() {
        out.put("cpuset", "cpuset.mems", mems, "cpuset mems");
    }
}

fn io_weight(w: u16, version: CgroupVersion, facts: &Facts, out: &mut Out<'_>) -> Result<()> {
    let (controller, v) = match (version, facts.io_weight_file) {
        (CgroupVersion::V1, Some(f @ ("blkio.weight" | "blkio.bfq.weight"))) => ("blkio", (f, u64::from(w))),
        (CgroupVersion::V2, Some(f @ "io.bfq.weight")) => ("io", (f, u64::from(w))),
        (CgroupVersion::V2, Some(f @ "io.weight")) => ("io", (f, 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990)),
        (CgroupVersion::V1, _) => {
            return Err(Error::CgroupUnavailable {
                controller: "blkio".into(),
                reason: "neither blkio.weight nor blkio.bfq.weight exists (no proportional IO scheduler)".into(),
            });
        }
        (CgroupVersion::V2, _) => {
            return Err(Error::CgroupUnavailable {
                controller: "io".into(),
                reason: "neither io.bfq.weight nor io.weight exists (no proportional IO scheduler)".into(),
            });
        }
    };
    out.put(controller, v.0, v.1, "IO weight");
    Ok(())
}

/// Check `r`'s huge page limits against the host and say which files get which value: the fault-time limit, and the
/// reservation limit where the kernel has one.
fn hugetlb(r: &LinuxResources, version: CgroupVersion, facts: &Facts) -> Result<Vec<Write>> {
    let Some(limits) = r.hugepage_limits().as_ref().filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    let unavailable = |reason: String| Error::CgroupUnavailable {
        controller: "hugetlb".into(),
        reason,
    };
    facts.hugetlb.clone().map_err(unavailable)?;
    let sizes = facts.page_sizes.clone().map_err(unavailable)?;
    let (suffix, unlimited) = match version {
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
                "page size {size} is not offered by this kernel (it offers {}; see {})",
                sizes.join(", "),
                super::HUGEPAGES_DIR
            )));
        }
        let value = if l.limit() < 0 {
            unlimited.to_owned()
        } else {
            l.limit().to_string()
        };
        out.push(Write {
            controller: "hugetlb",
            file: format!("hugetlb.{size}.{suffix}"),
            value: value.clone(),
            what: "hugetlb limit",
        });
        if facts.hugetlb_rsvd {
            out.push(Write {
                controller: "hugetlb",
                file: format!("hugetlb.{size}.rsvd.{suffix}"),
                value,
                what: "hugetlb reservation limit",
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

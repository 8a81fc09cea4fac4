//! `update` flags as runc takes them, and `events --stats` in runc's JSON shape.

use std::path::PathBuf;

use serde_json::{Value, json};
use wharf::sandbox::cgroup::Stats;
use wharf::sandbox::oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::error::{Error, Result};

/// The flags of `update` (runc's names).
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// A JSON LinuxResources document (`-` for stdin) applied before the other flags
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (same units as --memory)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (same units as --memory)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPU CFS quota in microseconds per period
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPUs the container may use (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 or 0 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// The container id
    pub id: String,
}

/// A size as docker/runc take it: `1024`, `512k`, `100m`, `1g`, `1GiB`, `-1`.
///
/// # Errors
/// [`Error::Flag`] for anything else.
pub fn parse_bytes(flag: &'static str, s: &str) -> Result<i64> {
    let bad = |reason: &str| Error::Flag {
        flag,
        value: s.to_owned(),
        reason: reason.to_owned(),
    };
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits);
    let n: i64 = num.parse().map_err(|_| bad("expected a number of bytes"))?;
    let mult: i64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad("unknown unit (use k, m, g or t)")),
    };
    n.checked_mul(mult).ok_or_else(|| bad("too large"))
}

/// The resources `args` describe.
///
/// # Errors
/// [`Error::Flag`] for a bad value; [`Error::Io`] if the `--resources` file cannot be read.
pub fn from_args(args: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match &args.resources {
        Some(p) => {
            let bytes = if p.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map_err(Error::io("read", "stdin"))?;
                v
            } else {
                std::fs::read(p).map_err(Error::io("read", p))?
            };
            crate::bundle::parse_checked("--resources", &p.display().to_string(), &bytes)?
        }
        None => LinuxResources::default(),
    };
    if args.memory.is_some() || args.memory_swap.is_some() || args.memory_reservation.is_some() {
        let mut m: LinuxMemory = r.memory().unwrap_or_default();
        if let Some(v) = &args.memory {
            m.set_limit(Some(parse_bytes("--memory", v)?));
        }
        if let Some(v) = &args.memory_swap {
            m.set_swap(Some(parse_bytes("--memory-swap", v)?));
        }
        if let Some(v) = &args.memory_reservation {
            m.set_reservation(Some(parse_bytes("--memory-reservation", v)?));
        }
        r.set_memory(Some(m));
    }
    let cpu_set = args.cpu_share.is_some()
        || args.cpu_quota.is_some()
        || args.cpu_period.is_some()
        || args.cpuset_cpus.is_some()
        || args.cpuset_mems.is_some();
    if cpu_set {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if args.cpu_share.is_some() {
            c.set_shares(args.cpu_share);
        }
        if args.cpu_quota.is_some() {
            c.set_quota(args.cpu_quota);
        }
        if args.cpu_period.is_some() {
            c.set_period(args.cpu_period);
        }
        if args.cpuset_cpus.is_some() {
            c.set_cpus(args.cpuset_cpus.clone());
        }
        if args.cpuset_mems.is_some() {
            c.set_mems(args.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }
    if let Some(l) = args.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(if l <= 0 { -1 } else { l });
        r.set_pids(Some(p));
    }
    if let Some(w) = args.blkio_weight {
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// One `events --stats` sample, in runc's `{"type":"stats","id":…,"data":{…}}` shape (the fields the sandbox
/// measures).
pub fn stats_event(id: &str, s: &Stats) -> Value {
    let mut memory = json!({ "usage": { "usage": s.memory_usage, "limit": s.memory_limit.unwrap_or(0) } });
    if let Some(peak) = s.memory_peak {
        memory["usage"]["max"] = json!(peak);
    }
    json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": { "usage": { "total": s.cpu_usage_ns } },
            "memory": memory,
            "pids": { "current": s.pids_current },
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        for (s, n) in [
            ("1024", 1024),
            ("512k", 512 << 10),
            ("100m", 100 << 20),
            ("1G", 1 << 30),
            ("2MiB", 2 << 20),
        ] {
            assert_eq!(parse_bytes("--memory", s).unwrap(), n, "{s}");
        }
        assert_eq!(parse_bytes("--memory", "-1").unwrap(), -1);
        for bad in ["", "m", "12x", "1.5g"] {
            assert!(parse_bytes("--memory", bad).is_err(), "{bad}");
        }
    }
}

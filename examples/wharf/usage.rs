//! A running container's processes and resources as docker shows and changes them: `top NAME [ps options]`,
//! `stats` (a table streamed until ^C, or `--no-stream`), `update` (limits, live).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wharf::engine::{Limits, ListOptions};

use crate::ps::tabulate;
use crate::{Ctx, Result};

/// The flags of `wharf update`.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit, e.g. 64m, 1g
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPUs, e.g. 0.5
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// The containers
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `docker update [--memory M] [--cpus N] [--pids-limit N] NAME…`: the new limits in each running container's
/// cgroup at once, and a stopped one's for its next start; prints each container as named.
pub fn update(ctx: &Ctx, args: &UpdateArgs) -> Result<()> {
    let limits = Limits {
        memory: args.memory.as_deref().map(Limits::parse_size).transpose()?,
        cpus: args.cpus,
        pids: args.pids_limit,
    };
    if limits == Limits::default() {
        return Err(
            "you must provide one or more flags when using this command (--memory, --cpus, --pids-limit)".into(),
        );
    }
    for name in &args.names {
        ctx.engine.update(&ctx.engine.resolve(name)?, &limits)?;
        crate::print(&format!("{name}\n"))?;
    }
    Ok(())
}

/// `docker top NAME [ps options]`: the host's `ps` (with `-ef` unless told otherwise), only the lines of the
/// container's processes, aligned as docker aligns them.
pub fn top(ctx: &Ctx, name: &str, ps_args: &[String]) -> Result<()> {
    let name = ctx.engine.resolve(name)?;
    let pids: Vec<i32> = ctx.engine.top(&name)?.iter().map(|p| p.host_pid).collect();
    let args = if ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| format!("run ps (Debian's procps): {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("ps {}: {}", args.join(" "), err.trim()).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_column = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or("Couldn't find PID field in ps output")?;
    let mut rows = vec![titles.join("\t")];
    for line in lines {
        // As docker: as many fields as titles, the last one (the command) with its spaces.
        let fields = split_fields(line, titles.len());
        if fields
            .get(pid_column)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            rows.push(fields.join("\t"));
        }
    }
    crate::print(&tabulate(&rows, 20))
}

/// `line`'s first `n - 1` whitespace-separated fields, and the rest as the last.
fn split_fields(line: &str, n: usize) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = line.trim_start();
    while fields.len() + 1 < n && !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        fields.push(rest.trim_end());
    }
    fields
}

/// The flags of `wharf stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// One sample (taken over a second, for the CPU share) instead of a table a second until ^C
    #[arg(long)]
    pub no_stream: bool,
    /// The containers [default: every running one, as they come and go]
    pub names: Vec<String>,
}

/// One container's previous sample: its CPU time and when it was read.
type Previous = HashMap<String, (u64, Instant)>;

/// `docker stats [--no-stream] [NAME…]`: docker's table (CONTAINER ID, NAME, CPU %, MEM USAGE / LIMIT, MEM %,
/// NET I/O, BLOCK I/O, PIDS), redrawn every second on a terminal and appended otherwise, until ^C, a closed pipe, or
/// (with names) every named container has stopped.
pub fn stats(ctx: &Ctx, args: &StatsArgs) -> Result<()> {
    let named: Vec<String> = args
        .names
        .iter()
        .map(|n| ctx.engine.resolve(n))
        .collect::<Result<_, _>>()?;
    let names = || -> Vec<String> {
        if named.is_empty() {
            ctx.engine
                .list(&ListOptions::default())
                .into_iter()
                .map(|c| c.name)
                .collect()
        } else {
            named.clone()
        }
    };
    // The first sample starts the CPU clocks; it fails as docker's does for a stopped named container.
    let mut previous = Previous::new();
    for name in &named {
        let s = ctx.engine.stats(name)?;
        previous.insert(name.clone(), (s.cpu_usage_ns, Instant::now()));
    }
    let memory_total = host_memory();
    sample(ctx, &names(), &mut previous, memory_total);
    let terminal = rustix::termios::isatty(std::io::stdout());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let rows = sample(ctx, &names(), &mut previous, memory_total);
        if rows.is_empty() && !named.is_empty() {
            return Ok(());
        }
        let mut lines =
            vec!["CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS".to_string()];
        lines.extend(rows);
        let table = tabulate(&lines, 10);
        if args.no_stream {
            return crate::print(&table);
        }
        // docker's redraw: clear the screen and go home, only on a terminal.
        crate::print(&if terminal {
            format!("\x1b[2J\x1b[H{table}")
        } else {
            table
        })?;
    }
}

/// A row for each of `names` that runs and had a sample before (its CPU share since then); the others' clocks
/// start now, and those gone are forgotten.
fn sample(ctx: &Ctx, names: &[String], previous: &mut Previous, memory_total: u64) -> Vec<String> {
    previous.retain(|n, _| names.contains(n));
    let mut rows = Vec::new();
    for name in names {
        let Ok(s) = ctx.engine.stats(name) else {
            previous.remove(name);
            continue;
        };
        let now = Instant::now();
        let Some((ns, then)) = previous.insert(name.clone(), (s.cpu_usage_ns, now)) else {
            continue;
        };
        let wall = now.duration_since(then).as_nanos().max(1) as f64;
        let cpu = s.cpu_usage_ns.saturating_sub(ns) as f64 / wall * 100.0;
        let limit = s.memory_limit.unwrap_or(memory_total).max(1);
        let info = ctx.engine.inspect(name).ok();
        let (rx, tx) = info.as_ref().and_then(|c| c.pid).map_or((0, 0), network_bytes);
        rows.push(format!(
            "{}\t{name}\t{cpu:.2}%\t{} / {}\t{:.2}%\t{} / {}\t{} / {}\t{}",
            info.as_ref().map(|c| c.short_id()).unwrap_or_default(),
            bytes_size(s.memory_usage),
            bytes_size(limit),
            s.memory_usage as f64 / limit as f64 * 100.0,
            size3(rx),
            size3(tx),
            size3(s.io_read_bytes),
            size3(s.io_write_bytes),
            s.pids_current,
        ));
    }
    rows
}

/// Bytes received and sent on the network interfaces of process `pid`'s network namespace but `lo` (docker's
/// NET I/O); none when that namespace is the host's (`--net host`), as docker counts no network for it.
fn network_bytes(pid: i32) -> (u64, u64) {
    let ns = |p: &str| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok()
    };
    if ns(&format!("/proc/{pid}/ns/net")) == ns("/proc/self/ns/net") {
        return (0, 0);
    }
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut sums = (0, 0);
    // `  eth0: RX bytes packets errs drop fifo frame compressed multicast TX bytes …` after two header lines.
    for line in dev.lines().skip(2) {
        let Some((interface, counters)) = line.split_once(':') else {
            continue;
        };
        if interface.trim() == "lo" {
            continue;
        }
        let n: Vec<u64> = counters.split_whitespace().filter_map(|c| c.parse().ok()).collect();
        sums.0 += n.first().copied().unwrap_or(0);
        sums.1 += n.get(8).copied().unwrap_or(0);
    }
    sums
}

/// go-units' `HumanSizeWithPrecision(n, 3)`, as docker prints NET I/O and BLOCK I/O: decimal units, three
/// significant digits ("1.2kB", "648B").
pub(crate) fn size3(n: u64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(size, 3), UNITS[unit])
}

/// The host's memory (`MemTotal`), docker's limit of a container without one.
pub(crate) fn host_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// go-units' `BytesSize`, as docker prints memory: binary units, four significant digits ("1.539MiB", "7.6GiB").
pub fn bytes_size(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", four_digits(size), UNITS[unit])
}

/// Go's `%.4g` for 0 ≤ `x` < 10000: four significant digits, no trailing zeros.
pub fn four_digits(x: f64) -> String {
    significant(x, 4)
}

/// Go's `%.Ng` for 0 ≤ `x` < 10^N: `n` significant digits, no trailing zeros.
fn significant(x: f64, n: usize) -> String {
    let integer_digits = if x < 1.0 { 1 } else { (x.log10().floor() as usize) + 1 };
    let decimals = n.saturating_sub(integer_digits);
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

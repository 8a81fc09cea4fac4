//! What wharf and its host are: `version`, `info` and `system df`, in docker's shapes (wharf's library where
//! docker has its server).

use std::collections::{HashMap, HashSet};

use wharf::engine::{ListOptions, State};

use crate::images::{LayerSizes, human_size};
use crate::{Ctx, Result};

/// `docker version`: this program's and the library's versions.
pub fn version() -> Result<()> {
    let platform = format!("{}/{}", std::env::consts::OS, go_arch());
    crate::print(&format!(
        "Client:\n Version:           {}\n OS/Arch:           {platform}\n\nLibrary:\n Version:           {}\n \
         Crates:            wharf-image, wharf-registry, wharf-rootfs, wharf-sandbox, wharf-network {}\n \
         Gzip inflater:     {}\n OS/Arch:           {platform}\n",
        env!("CARGO_PKG_VERSION"),
        wharf::VERSION,
        wharf::VERSION,
        wharf::rootfs::GZIP_INFLATER,
    ))
}

/// The architecture as docker (Go) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `docker info`: the containers and images of the root, and what the host gives containers.
pub fn info(ctx: &Ctx) -> Result<()> {
    let containers = ctx.engine.list(&ListOptions {
        all: true,
        ..Default::default()
    });
    let running = containers.iter().filter(|c| c.state == State::Running).count();
    let images: HashSet<_> = ctx.store.list()?.into_iter().filter_map(|i| i.id).collect();
    let cgroup = wharf::sandbox::cgroup::CgroupDriver::detect()
        .map_or_else(|e| format!("none ({e})"), |d| format!("{:?}", d.version).to_lowercase());
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let overlay = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Seccomp:"));
    let mut security = String::new();
    if seccomp {
        security.push_str("  seccomp\n   Profile: builtin\n");
    }
    if !rustix::process::geteuid().is_root() {
        security.push_str("  rootless\n");
    }
    let uname = rustix::system::uname();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let os = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or("unknown".to_string(), |n| n.trim_matches('"').to_string());
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let text = format!(
        "Client:\n Version:    {}\n\nLibrary:\n Containers: {}\n  Running: {running}\n  Paused: 0\n  Stopped: {}\n \
         Images: {}\n Library Version: {}\n Storage Driver: {}\n Cgroup Driver: cgroupfs\n Cgroup Version: {}\n \
         Security Options:\n{security} Kernel Version: {}\n Operating System: {os}\n OSType: linux\n \
         Architecture: {}\n CPUs: {cpus}\n Total Memory: {}\n Name: {}\n Wharf Root Dir: {}\n",
        env!("CARGO_PKG_VERSION"),
        containers.len(),
        containers.len() - running,
        images.len(),
        wharf::VERSION,
        if overlay {
            "overlay"
        } else {
            "copy (overlayfs is unavailable: each container gets a copy of its layers)"
        },
        cgroup.trim_start_matches('v'),
        uname.release().to_string_lossy(),
        uname.machine().to_string_lossy(),
        crate::usage::bytes_size(crate::usage::host_memory()),
        uname.nodename().to_string_lossy(),
        ctx.store.root().display(),
    );
    crate::print(&text)
}

/// `docker system df`: TYPE TOTAL ACTIVE SIZE RECLAIMABLE for images (their layers' uncompressed sizes, each
/// layer once; active: used by a container) and containers (what they wrote; active: running). wharf has no
/// volumes nor build cache.
pub fn df(ctx: &Ctx) -> Result<()> {
    let containers = ctx.engine.list(&ListOptions {
        all: true,
        ..Default::default()
    });
    let used: HashSet<&str> = containers.iter().filter_map(|c| c.image_id.as_deref()).collect();
    // Every image once (by id), with its layers.
    let mut sizes = LayerSizes::default();
    let mut images: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for row in ctx.store.list()? {
        let Some(id) = row.id else { continue };
        if images.contains_key(&id.to_string()) {
            continue;
        }
        let image = ctx.store.image(&row.reference, &ctx.platform)?;
        images.insert(id.to_string(), sizes.of(ctx, &image)?);
    }
    let mut all_layers = HashMap::new();
    let mut active_layers = HashSet::new();
    for (id, layers) in &images {
        for (diff_id, size) in layers {
            all_layers.insert(diff_id.clone(), *size);
            if used.contains(id.as_str()) {
                active_layers.insert(diff_id.clone());
            }
        }
    }
    let images_size: u64 = all_layers.values().sum();
    let images_reclaimable: u64 = all_layers
        .iter()
        .filter(|(d, _)| !active_layers.contains(*d))
        .map(|(_, s)| s)
        .sum();
    let mut containers_size = 0;
    let mut containers_reclaimable = 0;
    for c in &containers {
        let size = ctx.engine.size_rw(&c.name).unwrap_or(0);
        containers_size += size;
        if c.state != State::Running {
            containers_reclaimable += size;
        }
    }
    let running = containers.iter().filter(|c| c.state == State::Running).count();
    let reclaimable = |part: u64, total: u64| match (part * 100).checked_div(total) {
        Some(percent) => format!("{} ({percent}%)", human_size(part)),
        None => human_size(part),
    };
    let lines = vec![
        "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE".to_string(),
        format!(
            "Images\t{}\t{}\t{}\t{}",
            images.len(),
            images.keys().filter(|id| used.contains(id.as_str())).count(),
            human_size(images_size),
            reclaimable(images_reclaimable, images_size)
        ),
        format!(
            "Containers\t{}\t{running}\t{}\t{}",
            containers.len(),
            human_size(containers_size),
            reclaimable(containers_reclaimable, containers_size)
        ),
    ];
    crate::print(&crate::ps::tabulate(&lines, 10))
}

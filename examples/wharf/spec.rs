//! The container's OCI runtime spec, from the image's config and `wharf run`'s flags.

use std::path::{Path, PathBuf};

use wharf::image::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, MountBuilder,
    Spec,
};
use wharf::image::{RuntimeOverrides, runtime_spec};
use wharf::sandbox::Status;

use crate::run::{RunArgs, check_name, state_dir};
use crate::{Ctx, Result};

/// `64m` → bytes.
fn parse_size(s: &str) -> Result<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last() {
        Some('k') => (&s[..s.find('k').unwrap_or(0)], 1i64 << 10),
        Some('m') => (&s[..s.find('m').unwrap_or(0)], 1 << 20),
        Some('g') => (&s[..s.find('g').unwrap_or(0)], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?} (e.g. 64m, 1g)"))?;
    if n <= 0.0 {
        return Err(format!("invalid size {s:?}: must be positive").into());
    }
    Ok((n * mult as f64) as i64)
}

/// Builds the container's spec from the image config and the flags.
pub fn build_spec(
    ctx: &Ctx,
    args: &RunArgs,
    config: &wharf::image::ImageConfig,
    rootfs: &Path,
    name: &str,
    attached: Option<&crate::network::Attached>,
) -> Result<Spec> {
    let overrides = RuntimeOverrides {
        entrypoint: args.entrypoint.as_ref().map(|e| vec![e.clone()]),
        cmd: (!args.command.is_empty()).then(|| args.command.clone()),
        env: args.env.clone(),
        working_dir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: Some(args.hostname.clone().unwrap_or_else(|| name.to_string())),
        terminal: args.tty,
        rootfs: Some(rootfs.to_path_buf()),
        root_path: Some(rootfs.to_path_buf()),
        readonly_rootfs: args.read_only,
        ..Default::default()
    };
    let mut spec = runtime_spec(config, &overrides)?;
    // The pty gets the caller's window size when it is made, before the process can ask for it.
    if args.tty
        && let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin())
        && let Some(p) = spec.process_mut()
    {
        p.set_console_size(Some(
            wharf::image::oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(size.ws_row))
                .width(u64::from(size.ws_col))
                .build()?,
        ));
    }
    // Docker's default capability set, rather than the runtime-spec example's three.
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(wharf::sandbox::caps::docker_default()));
    }
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(m) = &args.memory {
        let limit = parse_size(m)?;
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).swap(limit).build()?);
    }
    if let Some(cpus) = args.cpus {
        if cpus <= 0.0 {
            return Err("--cpus must be positive".into());
        }
        let period = 100_000u64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64) as i64)
                .build()?,
        );
    }
    if let Some(pids) = args.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build()?);
    }
    let resources = resources.build()?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for v in &args.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, target, ro) = match parts.as_slice() {
            [h, t] => (*h, *t, false),
            [h, t, "ro"] => (*h, *t, true),
            [h, t, "rw"] => (*h, *t, false),
            _ => return Err(format!("invalid volume {v:?}: expected HOST:CONTAINER[:ro]").into()),
        };
        let host = std::fs::canonicalize(host).map_err(|e| format!("volume {v:?}: {host}: {e}"))?;
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if ro { "ro" } else { "rw" }.to_string());
        mounts.push(
            MountBuilder::default()
                .destination(target)
                .typ("bind")
                .source(host)
                .options(options)
                .build()?,
        );
    }
    if let Some(a) = attached {
        mounts.extend(a.mounts.iter().cloned());
    }
    spec.set_mounts(Some(mounts));
    // On a CNI network the container joins the namespace wharf-network attached (and pinned).
    let net = if attached.is_some() {
        "none"
    } else {
        args.network.network.as_str()
    };
    let joins = [
        (LinuxNamespaceType::Network, "net", net, &["none"][..]),
        (LinuxNamespaceType::Pid, "pid", args.pid.as_str(), &["private"]),
        (
            LinuxNamespaceType::Ipc,
            "ipc",
            args.ipc.as_str(),
            &["private", "shareable"],
        ),
    ]
    .into_iter()
    .map(|(typ, ns, value, private)| Ok((typ, namespace_mode(ctx, ns, value, private)?)))
    .chain(attached.map(|a| Ok((LinuxNamespaceType::Network, Some(Some(a.netns.clone()))))))
    .collect::<Result<Vec<_>>>()?;
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(Some(resources));
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        for (typ, mode) in joins {
            let Some(mode) = mode else { continue };
            namespaces.retain(|n| n.typ() != typ);
            if let Some(path) = mode {
                namespaces.push(
                    wharf::image::oci_spec::runtime::LinuxNamespaceBuilder::default()
                        .typ(typ)
                        .path(path)
                        .build()?,
                );
            }
        }
        linux.set_namespaces(Some(namespaces));
    }
    Ok(spec)
}

/// The value of `--net`, `--pid` or `--ipc` (`ns` is the namespace's name in `/proc/PID/ns`):
/// `None` keeps the spec's new namespace, `Some(None)` uses the host's, `Some(Some(path))` joins a
/// running container's (`container:NAME`, as docker and podman do). `private` lists the values
/// that mean a new namespace.
fn namespace_mode(ctx: &Ctx, ns: &str, value: &str, private: &[&str]) -> Result<Option<Option<PathBuf>>> {
    let flag = format!("--{ns}");
    if value.is_empty() || private.contains(&value) {
        return Ok(None);
    }
    if value == "host" {
        return Ok(Some(None));
    }

    let Some(peer) = value.strip_prefix("container:") else {
        let private = private.join(", ");
        return Err(format!("invalid {flag} {value:?}: expected {private}, host or container:NAME").into());
    };
    check_name(peer)?;
    let states = state_dir(ctx)?;
    // A stopped peer's pid may already belong to another process: join only a running one.
    if !matches!(states.status(peer), Ok(Status::Running)) {
        return Err(format!("{flag} container:{peer}: container {peer} is not running").into());
    }
    let state = states.load(peer).map_err(|e| format!("{flag} container:{peer}: {e}"))?;
    Ok(Some(Some(PathBuf::from(format!("/proc/{}/ns/{ns}", state.pid)))))
}

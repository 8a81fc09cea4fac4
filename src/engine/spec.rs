//! The container's OCI runtime spec, from the image's config and the container's settings.

use std::path::{Path, PathBuf};

use wharf_image::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    MountBuilder, Spec,
};
use wharf_image::{RuntimeOverrides, runtime_spec};
use wharf_sandbox::Status;

use super::Layout;
use super::error::{Error, Result};
use super::network::Attached;
use super::settings::{ContainerSettings, Limits, NamespaceMode, Output};

/// Builds the container's spec from the image config and the flags.
pub(crate) fn build_spec(
    layout: &Layout,
    args: &ContainerSettings,
    config: &wharf_image::ImageConfig,
    rootfs: &Path,
    name: &str,
    attached: Option<&Attached>,
) -> Result<Spec> {
    let overrides = RuntimeOverrides {
        entrypoint: args.entrypoint.clone(),
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
        && args.output == Output::Inherit
        && let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin())
        && let Some(p) = spec.process_mut()
    {
        p.set_console_size(Some(
            wharf_image::oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(size.ws_row))
                .width(u64::from(size.ws_col))
                .build()?,
        ));
    }
    // Docker's default capability set, rather than the runtime-spec example's three.
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(Some(wharf_sandbox::caps::docker_default()));
    }
    let resources = resources(&args.limits)?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in &args.mounts {
        let host = m.resolved_source()?;
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if m.read_only { "ro" } else { "rw" }.to_string());
        mounts.push(
            MountBuilder::default()
                .destination(&m.target)
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
    let net = match args.network.mode.as_str() {
        _ if attached.is_some() => NamespaceMode::Private,
        "none" | "" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        other => other.parse()?,
    };
    let joins = [
        (LinuxNamespaceType::Network, "net", &net),
        (LinuxNamespaceType::Pid, "pid", &args.pid),
        (LinuxNamespaceType::Ipc, "ipc", &args.ipc),
    ]
    .into_iter()
    .map(|(typ, ns, mode)| Ok((typ, namespace_mode(layout, ns, mode)?)))
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
                    wharf_image::oci_spec::runtime::LinuxNamespaceBuilder::default()
                        .typ(typ)
                        .path(path)
                        .build()?,
                );
            }
        }
        linux.set_namespaces(Some(namespaces));
    }
    if !rustix::process::geteuid().is_root() {
        rootless(&mut spec)?;
    }
    Ok(spec)
}

/// A container of an unprivileged caller: a user namespace mapping the caller's uid and gid to root inside (its
/// layers were unpacked as the caller, so every file is the caller's, and root's inside), as podman does without
/// subordinate ranges; mount options that name ids outside the map are dropped, as `runc spec --rootless` does.
fn rootless(spec: &mut Spec) -> Result<()> {
    use wharf_image::oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder};
    let own = |id: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(id)
            .size(1u32)
            .build()
    };
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        if !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User) {
            namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User).build()?);
        }
        linux.set_namespaces(Some(namespaces));
        linux.set_uid_mappings(Some(vec![own(uid)?]));
        linux.set_gid_mappings(Some(vec![own(gid)?]));
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if let Some(o) = m.options_mut() {
                o.retain(|o| !o.starts_with("gid=") && !o.starts_with("uid="));
            }
        }
    }
    Ok(())
}

/// The namespace `mode` (`ns` is the namespace's name in `/proc/PID/ns`): `None` keeps the spec's new
/// namespace, `Some(None)` uses the host's, `Some(Some(path))` joins a running container's
/// (`container:NAME`, as docker and podman do).
fn namespace_mode(layout: &Layout, ns: &str, mode: &NamespaceMode) -> Result<Option<Option<PathBuf>>> {
    let peer = match mode {
        NamespaceMode::Private => return Ok(None),
        NamespaceMode::Host => return Ok(Some(None)),
        NamespaceMode::Container(peer) => peer,
    };
    let states = layout.state_dir()?;
    let not_running = |reason: String| Error::InvalidSetting {
        setting: "namespace",
        value: format!("{ns}=container:{peer}"),
        reason,
    };
    // A stopped peer's pid may already belong to another process: join only a running one.
    if !matches!(states.status(peer), Ok(Status::Running)) {
        return Err(not_running(format!("container {peer} is not running")));
    }
    let state = states.load(peer).map_err(|e| not_running(e.to_string()))?;
    Ok(Some(Some(PathBuf::from(format!("/proc/{}/ns/{ns}", state.pid)))))
}

/// The cgroup limits of `limits` (unset ones stay unset: unlimited at creation, unchanged on an update).
pub(crate) fn resources(limits: &Limits) -> Result<LinuxResources> {
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = limits.memory {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).swap(limit).build()?);
    }
    if let Some(cpus) = limits.cpus {
        if cpus <= 0.0 {
            return Err(Error::InvalidSetting {
                setting: "cpus",
                value: cpus.to_string(),
                reason: "must be positive".into(),
            });
        }
        let period = 100_000u64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64) as i64)
                .build()?,
        );
    }
    if let Some(pids) = limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build()?);
    }
    let resources = resources.build()?;
    Ok(resources)
}

//! A container's place on a CNI network: its pinned namespace, its attachment, and giving both back.
//!
//! Network state lives in `ROOT/.wharf/network` (wharf-network's state directory) and each attached
//! container's network namespace is pinned at `ROOT/.wharf/netns/NAME` until the container is released
//! (when it stops, or is removed). The sandbox only gets that path.

use std::path::PathBuf;

use wharf_image::oci_spec::runtime::{Mount, MountBuilder};
use wharf_network::{AttachOptions, NetNs, Networks, NetworksConfig};

use super::Layout;
use super::error::{Error, Result};
use super::settings::NetworkSettings;

/// The networks of `layout`'s root.
pub(crate) fn networks(layout: &Layout) -> Result<Networks> {
    Ok(Networks::open(
        layout.wharf().join("network"),
        NetworksConfig::default(),
    )?)
}

fn netns_path(layout: &Layout, name: &str) -> PathBuf {
    layout.wharf().join("netns").join(name)
}

/// What a container on a CNI network gets: the pinned namespace to join and the bind mounts of its
/// hosts and resolv.conf files.
pub(crate) struct Attached {
    /// The network namespace path for the spec.
    pub netns: PathBuf,
    /// `/etc/hosts` and `/etc/resolv.conf`.
    pub mounts: Vec<Mount>,
}

/// Pins a namespace for container `name` and attaches it to its network (`net.mode` must be a CNI
/// network). `exposed` is the image's `ExposedPorts`, published with `publish_all`.
pub(crate) fn attach(
    layout: &Layout,
    net: &NetworkSettings,
    name: &str,
    hostname: &str,
    exposed: &[&str],
) -> Result<Attached> {
    let mut ports = net.publish.clone();
    if net.publish_all {
        for p in exposed {
            // `80/tcp` (or `80`) is the container port: published on a free host port.
            ports.push(p.parse().map_err(|e| Error::InvalidSetting {
                setting: "exposed port of the image",
                value: p.to_string(),
                reason: format!("{e}"),
            })?);
        }
    }
    let nets = networks(layout)?;
    let path = netns_path(layout, name);
    // A namespace left by a killed process for a container of the same name: its attachments go first.
    if path.exists() {
        release(layout, name)?;
    }
    let ns = NetNs::create(&path)?;
    let opts = AttachOptions {
        name: Some(name.to_string()),
        aliases: net.aliases.clone(),
        hostname: Some(hostname.to_string()),
        ip: net.ip,
        ports,
        ifname: None,
    };
    if let Err(e) = nets.attach(name, ns.path(), &net.mode, &opts) {
        let _ = NetNs::remove(ns.path());
        return Err(e.into());
    }
    let bind = |src: PathBuf, dst: &str| {
        MountBuilder::default()
            .destination(dst)
            .typ("bind")
            .source(src)
            .options(vec!["rbind".to_string(), "rprivate".to_string(), "rw".to_string()])
            .build()
    };
    Ok(Attached {
        netns: path,
        mounts: vec![
            bind(nets.hosts_path(name), "/etc/hosts")?,
            bind(nets.resolv_conf_path(name), "/etc/resolv.conf")?,
        ],
    })
}

/// Detaches container `name` from its networks (rules, veth, leases) and unpins its namespace. Nothing
/// to do for a container without networks.
pub(crate) fn release(layout: &Layout, name: &str) -> Result<()> {
    let nets = networks(layout)?;
    nets.detach_all(name)?;
    NetNs::remove(netns_path(layout, name))?;
    Ok(())
}

//! Networks: `network create/ls/inspect/rm`, `port`, and what `run` and `rm` need from wharf-network.
//!
//! Network state lives in `ROOT/.wharf/network` (wharf-network's state directory) and each attached
//! container's network namespace is pinned at `ROOT/.wharf/netns/NAME` until the container is released
//! (foreground `run` after it exits, `rm` for detached ones). The sandbox only gets that path.

use std::net::IpAddr;
use std::path::PathBuf;

use wharf::image::oci_spec::runtime::{Mount, MountBuilder};
use wharf::network::{AttachOptions, NetNs, NetworkOptions, Networks, NetworksConfig, PortMapping};

use crate::{Ctx, Result};

/// The network flags of `wharf run`.
#[derive(clap::Args, Debug)]
pub struct NetArgs {
    /// Network: none (a private namespace with only lo, the default), bridge (the default network,
    /// 10.88.0.0/16 on wharf0), a network made with `network create`, host, or container:NAME
    #[arg(long = "network", visible_alias = "net", default_value = "none")]
    pub network: String,
    /// A fixed address on a user-created network
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Another name for the container on its network
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp] (no host port: a free one)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<PortMapping>,
    /// Publish every port the image exposes, each on a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
}

/// `wharf network …`.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a bridge network
    Create {
        /// Its subnet, e.g. 10.90.0.0/24 [default: a free /24 of 10.89.0.0/16]
        #[arg(long)]
        subnet: Option<wharf::network::IpNet>,
        /// Its gateway [default: the subnet's first address]
        #[arg(long)]
        gateway: Option<IpAddr>,
        /// The name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls,
    /// Show a network and its containers as JSON
    Inspect {
        /// The network
        name: String,
    },
    /// Remove networks without containers
    #[command(alias = "remove")]
    Rm {
        /// The networks
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn networks(ctx: &Ctx) -> Result<Networks> {
    Ok(Networks::open(
        ctx.store.root().join(".wharf/network"),
        NetworksConfig::default(),
    )?)
}

fn netns_path(ctx: &Ctx, name: &str) -> PathBuf {
    ctx.store.root().join(".wharf/netns").join(name)
}

/// Whether `--network` names a CNI network (rather than none, host or container:NAME).
pub fn is_cni(network: &str) -> bool {
    !matches!(network, "none" | "" | "host") && !network.starts_with("container:")
}

/// What `run` gets for a container on a CNI network: the pinned namespace to join and the bind mounts
/// of its hosts and resolv.conf files.
pub struct Attached {
    /// The network namespace path for the spec.
    pub netns: PathBuf,
    /// `/etc/hosts` and `/etc/resolv.conf`.
    pub mounts: Vec<Mount>,
}

/// Pins a namespace for container `name` and attaches it to its network (`args.network` must be a CNI
/// network). `exposed` is the image's `ExposedPorts`, published with `-P`.
pub fn attach(ctx: &Ctx, args: &NetArgs, name: &str, hostname: &str, exposed: &[&str]) -> Result<Attached> {
    let mut ports = args.publish.clone();
    if args.publish_all {
        for p in exposed {
            // `80/tcp` (or `80`) is the container port: published on a free host port.
            ports.push(p.parse().map_err(|e| format!("the image's exposed port {p:?}: {e}"))?);
        }
    }
    let nets = networks(ctx)?;
    let path = netns_path(ctx, name);
    // A namespace left by a killed `wharf` for a container of the same name: its attachments go first.
    if path.exists() {
        release(ctx, name)?;
    }
    let ns = NetNs::create(&path)?;
    let opts = AttachOptions {
        name: Some(name.to_string()),
        aliases: args.network_alias.clone(),
        hostname: Some(hostname.to_string()),
        ip: args.ip,
        ports,
        ifname: None,
    };
    if let Err(e) = nets.attach(name, ns.path(), &args.network, &opts) {
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
pub fn release(ctx: &Ctx, name: &str) -> Result<()> {
    let nets = networks(ctx)?;
    nets.detach_all(name)?;
    NetNs::remove(netns_path(ctx, name))?;
    Ok(())
}

/// The `PORTS` column of `ps`: `0.0.0.0:8080->80/tcp, …`.
pub fn ports_column(ctx: &Ctx, name: &str) -> String {
    let Ok(nets) = networks(ctx) else { return String::new() };
    let atts = nets.attachments(name).unwrap_or_default();
    atts.iter()
        .flat_map(|a| a.ports.iter().map(ToString::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `docker port NAME`: one `80/tcp -> 0.0.0.0:8080` line per published port.
pub fn port(ctx: &Ctx, name: &str) -> Result<()> {
    crate::run::check_name(name)?;
    for att in networks(ctx)?.attachments(name)? {
        for p in &att.ports {
            let host = p.host_ip.map_or("0.0.0.0".to_string(), |ip| match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            });
            println!("{}/{} -> {host}:{}", p.container_port, p.protocol, p.host_port);
        }
    }
    Ok(())
}

/// `wharf network …`.
pub fn network(ctx: &Ctx, cmd: NetworkCommand) -> Result<()> {
    let nets = networks(ctx)?;
    match cmd {
        NetworkCommand::Create { subnet, gateway, name } => {
            let net = nets.create(
                &name,
                &NetworkOptions {
                    subnet,
                    gateway,
                    ..Default::default()
                },
            )?;
            println!("{}", net.name);
        }
        NetworkCommand::Ls => {
            // The default network is listed once it exists, as Docker lists `bridge`.
            println!("{:<20} {:<16} {:<20} GATEWAY", "NAME", "BRIDGE", "SUBNET");
            for n in nets.list()? {
                println!(
                    "{:<20} {:<16} {:<20} {}",
                    n.name,
                    n.bridge,
                    n.subnet.to_string(),
                    n.gateway
                );
            }
        }
        NetworkCommand::Inspect { name } => {
            let net = nets.network(&name)?;
            let containers: Vec<serde_json::Value> = nets
                .attachments_on(&name)?
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "Name": a.container_id,
                        "IPv4Address": a.addresses().first().map(ToString::to_string),
                        "Aliases": a.aliases,
                        "Ports": a.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "Name": net.name,
                "Driver": "bridge",
                "Bridge": net.bridge,
                "Subnet": net.subnet.to_string(),
                "Gateway": net.gateway.to_string(),
                "CNIVersion": net.cni_version,
                "Containers": containers,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                nets.remove(&name)?;
                println!("{name}");
            }
        }
    }
    Ok(())
}

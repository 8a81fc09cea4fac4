//! Networks: `network create/ls/inspect/rm`, `port`, and `run`'s network flags (the engine attaches and
//! releases containers).

use std::net::IpAddr;

use wharf::engine::NetworkSettings;
use wharf::network::{NetworkOptions, PortMapping};

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

impl NetArgs {
    /// The engine's network settings for these flags.
    pub fn settings(&self) -> NetworkSettings {
        NetworkSettings {
            mode: self.network.clone(),
            ip: self.ip,
            aliases: self.network_alias.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
        }
    }
}

/// `docker port NAME`: one `80/tcp -> 0.0.0.0:8080` line per published port.
pub fn port(ctx: &Ctx, name: &str) -> Result<()> {
    let name = &ctx.engine.resolve(name)?;
    wharf::engine::check_name(name)?;
    for att in ctx.engine.networks()?.attachments(name)? {
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
    let nets = ctx.engine.networks()?;
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

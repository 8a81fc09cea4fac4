//! A network as data: name, bridge, subnet, gateway, and the CNI chain it makes for an attachment.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cni::ConfList;
use crate::{Error, IpNet, PortMapping, Result};

/// The name of the default network, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";

/// A bridge network: containers on it get a veth on one Linux bridge, an address from its subnet
/// (host-local IPAM), a default route through the gateway (the bridge's address) and masquerade for traffic
/// leaving the subnet.
///
/// # Examples
/// ```
/// use wharf_network::{Network, NetworkOptions};
/// let net = Network::new("web", &NetworkOptions {
///     subnet: Some("10.90.0.0/24".parse().unwrap()),
///     ..NetworkOptions::default()
/// }, "1.0.0").unwrap();
/// assert_eq!(net.gateway.to_string(), "10.90.0.1");
/// assert!(net.bridge.starts_with("wh-"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// The Linux bridge device (`wharf0` for the default network, `wh-` and 12 hex digits otherwise).
    pub bridge: String,
    /// The subnet addresses come from.
    pub subnet: IpNet,
    /// The gateway: the bridge's own address.
    pub gateway: IpAddr,
    /// The CNI spec version negotiated with the plugins when the network was created.
    pub cni_version: String,
    /// Whether the chain includes the `firewall` plugin, which opens the `FORWARD` chain for the
    /// containers' addresses (needed on hosts whose `FORWARD` policy is `DROP`, as Docker leaves it).
    pub firewall: bool,
    /// Seconds since the Unix epoch when it was created.
    pub created: u64,
}

/// How to create a network. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// Its subnet. Default: the first free /24 of the pool (`10.89.0.0/16`).
    pub subnet: Option<IpNet>,
    /// Its gateway. Default: the subnet's first address.
    pub gateway: Option<IpAddr>,
    /// The bridge device name. Default: `wh-` and 12 hex digits of the name's SHA-256.
    pub bridge: Option<String>,
    /// Add the `firewall` plugin to the chain. Default: no.
    pub firewall: bool,
}

impl Network {
    /// Validates the options and fills in the defaults that need no other network (a subnet is required
    /// here; [`Networks::create`](crate::Networks::create) picks one from the pool first).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name or bridge name, [`Error::BadAddress`] for a gateway outside the
    /// subnet or on its network or broadcast address.
    pub fn new(name: &str, opts: &NetworkOptions, cni_version: &str) -> Result<Network> {
        check_name("network name", name, 64)?;
        let subnet = opts.subnet.ok_or(Error::InvalidName {
            what: "network",
            name: name.to_string(),
            reason: "a subnet is required",
        })?;
        let subnet = if subnet.network() == subnet {
            subnet
        } else {
            return Err(Error::BadAddress {
                ip: subnet.addr(),
                subnet,
                reason: "a subnet must be its network address",
            });
        };
        if !subnet.addr().is_ipv4() {
            return Err(Error::BadAddress {
                ip: subnet.addr(),
                subnet,
                reason: "IPv6 networks are not supported yet",
            });
        }
        if subnet.prefix() > 30 {
            return Err(Error::BadAddress {
                ip: subnet.addr(),
                subnet,
                reason: "a subnet needs at least /30",
            });
        }
        let gateway = match opts.gateway {
            Some(gw) => gw,
            None => subnet.nth(1).ok_or(Error::BadAddress {
                ip: subnet.addr(),
                subnet,
                reason: "the subnet has no address for a gateway",
            })?,
        };
        check_host_address(gateway, subnet)?;
        let bridge = match &opts.bridge {
            Some(b) => b.clone(),
            None => {
                let hash = hex(&Sha256::digest(name.as_bytes()));
                format!("wh-{}", &hash[..12])
            }
        };
        check_name("bridge name", &bridge, 15)?;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Network {
            name: name.to_string(),
            bridge,
            subnet,
            gateway,
            cni_version: cni_version.to_string(),
            firewall: opts.firewall,
            created,
        })
    }

    /// The plugin types this network's chains may use, for version negotiation.
    pub(crate) fn plugin_types(firewall: bool) -> Vec<&'static str> {
        let mut v = vec!["bridge", "host-local", "portmap", "loopback"];
        if firewall {
            v.push("firewall");
        }
        v
    }

    /// The CNI chain for one attachment: `bridge` with `host-local` IPAM (leases under `ipam_dir`), then
    /// `portmap` if ports are published, then `firewall` if the network asks for it.
    ///
    /// `portmap` runs with `snat: true`: it sets `route_localnet` on the bridge and masquerades hairpin and
    /// localhost traffic, which is what makes a published port answer on `127.0.0.1` without a proxy.
    pub fn conflist(&self, ipam_dir: &Path, ip: Option<IpAddr>, ports: &[PortMapping]) -> ConfList {
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet.to_string(), "gateway": self.gateway.to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_dir,
            },
        });
        if let Some(ip) = ip {
            bridge["runtimeConfig"] = json!({ "ips": [ip.to_string()] });
        }
        let mut plugins = vec![bridge];
        if !ports.is_empty() {
            let mappings: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut m = json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol.to_string(),
                    });
                    if let Some(ip) = p.host_ip {
                        m["hostIP"] = json!(ip.to_string());
                    }
                    m
                })
                .collect();
            plugins.push(json!({
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "snat": true,
                "runtimeConfig": { "portMappings": mappings },
            }));
        }
        if self.firewall {
            plugins.push(json!({ "type": "firewall", "backend": "iptables" }));
        }
        ConfList {
            cni_version: self.cni_version.clone(),
            name: self.name.clone(),
            plugins,
        }
    }
}

/// An address a container or the gateway may hold: inside the subnet, not its network or broadcast address.
pub(crate) fn check_host_address(ip: IpAddr, subnet: IpNet) -> Result<()> {
    if !subnet.contains(ip) {
        return Err(Error::BadAddress {
            ip,
            subnet,
            reason: "it is outside the subnet",
        });
    }
    let host_bits = 32 - u32::from(subnet.prefix());
    let broadcast = subnet.nth((1u128 << host_bits) - 1);
    if ip == subnet.addr() || Some(ip) == broadcast {
        return Err(Error::BadAddress {
            ip,
            subnet,
            reason: "it is the subnet's network or broadcast address",
        });
    }
    Ok(())
}

/// Docker's rule for names: a letter or digit, then letters, digits, `_`, `.`, `-`.
pub(crate) fn check_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("it is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return bad("it must start with a letter or digit"),
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if name.len() > max {
        return bad("it is too long");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(subnet: &str) -> NetworkOptions {
        NetworkOptions {
            subnet: Some(subnet.parse().expect("subnet")),
            ..NetworkOptions::default()
        }
    }

    #[test]
    fn refuses_bad_networks_with_the_reason() {
        let bad = |name: &str, o: NetworkOptions| Network::new(name, &o, "1.0.0").expect_err(name).to_string();
        assert!(bad("-x", opts("10.1.0.0/24")).contains("start with a letter"));
        assert!(bad("a/b", opts("10.1.0.0/24")).contains("only letters"));
        assert!(bad("n", opts("10.1.0.1/24")).contains("network address"));
        assert!(bad("n", opts("10.1.0.0/31")).contains("/30"));
        let gw = |g: &str| NetworkOptions {
            gateway: Some(g.parse().expect("ip")),
            ..opts("10.1.0.0/24")
        };
        assert!(bad("n", gw("10.2.0.1")).contains("outside"));
        assert!(bad("n", gw("10.1.0.255")).contains("broadcast"));
        let long_bridge = NetworkOptions {
            bridge: Some("a-very-long-bridge-name".into()),
            ..opts("10.1.0.0/24")
        };
        assert!(bad("n", long_bridge).contains("too long"));
    }

    #[test]
    fn conflist_has_portmap_only_with_ports_and_the_requested_ip() {
        let net = Network::new("n", &opts("10.1.0.0/24"), "1.0.0").expect("network");
        let plain = net.conflist(Path::new("/ipam"), None, &[]);
        assert_eq!(plain.plugins.len(), 1);
        assert_eq!(plain.plugins[0]["ipam"]["ranges"][0][0]["gateway"], "10.1.0.1");
        assert_eq!(plain.plugins[0]["ipam"]["dataDir"], "/ipam");
        let port: PortMapping = "127.0.0.1:8080:80/udp".parse().expect("port");
        let ip = Some("10.1.0.9".parse().expect("ip"));
        let full = net.conflist(Path::new("/ipam"), ip, &[port]);
        assert_eq!(full.plugins[0]["runtimeConfig"]["ips"][0], "10.1.0.9");
        let m = &full.plugins[1]["runtimeConfig"]["portMappings"][0];
        assert_eq!(
            (m["hostPort"].as_u64(), m["protocol"].as_str()),
            (Some(8080), Some("udp"))
        );
        assert_eq!(m["hostIP"], "127.0.0.1");
        assert_eq!(full.plugins[1]["snat"], true);
    }
}

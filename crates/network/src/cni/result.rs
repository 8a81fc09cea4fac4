//! The CNI result (spec versions 0.3.0 to 1.0.0) as typed values.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::IpNet;

/// What an ADD chain returns: the interfaces it made, their addresses, routes and DNS.
///
/// The shape of CNI 0.3.0–1.0.0 (0.4.0's per-address `version` is accepted and ignored). Unknown fields are
/// dropped here; the runtime keeps the plugin's own JSON for `prevResult`, so nothing is lost on the way
/// back to DEL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The spec version the result is written in.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created or used: on the host (the bridge, the veth end) and in the sandbox.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes added in the sandbox.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings the plugins suggest.
    #[serde(default)]
    pub dns: Dns,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name (`wharf0`, `veth1234abcd`, `eth0`).
    pub name: String,
    /// Its hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace path it lives in; absent for the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop; absent means the IP's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl CniResult {
    /// The sandbox interface called `ifname`'s index in [`interfaces`](Self::interfaces).
    fn sandbox_interface(&self, ifname: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == ifname && i.sandbox.is_some())
    }

    /// The addresses of the sandbox interface `ifname` (all addresses when the result names no
    /// interface for them, as IPAM-only plugins do).
    pub fn addresses_of(&self, ifname: &str) -> Vec<IpNet> {
        let idx = self.sandbox_interface(ifname);
        self.ips
            .iter()
            .filter(|ip| ip.interface.is_none() || ip.interface == idx)
            .map(|ip| ip.address)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bridge_plugins_result() {
        // As printed by Debian's bridge 1.1.1.
        let json = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"wx0","mac":"1e:9f:4e:6c:1e:e6"},
            {"name":"veth3bd23d11","mac":"ae:bc:e9:8d:23:c2"},
            {"name":"eth0","mac":"e2:6f:5f:10:f7:d0","sandbox":"/run/netns/x"}],
            "ips":[{"interface":2,"address":"10.77.0.2/24","gateway":"10.77.0.1"}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let r: CniResult = serde_json::from_str(json).expect("parse");
        assert_eq!(
            r.addresses_of("eth0"),
            vec!["10.77.0.2/24".parse::<IpNet>().expect("net")]
        );
        assert_eq!(r.addresses_of("eth1"), vec![]);
        assert_eq!(r.ips[0].gateway, Some("10.77.0.1".parse().expect("ip")));
        assert_eq!(r.routes[0].dst.prefix(), 0);
    }

    #[test]
    fn parses_a_0_4_0_result() {
        let json = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/16"}]}"#;
        let r: CniResult = serde_json::from_str(json).expect("parse");
        assert_eq!(r.addresses_of("eth0").len(), 1);
    }
}

//! Published ports: `-p [HOST_IP:][HOST_PORT]:CONTAINER_PORT[/tcp|udp]` as Docker writes them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A container port published on the host, through the `portmap` plugin.
///
/// Parsed from Docker's `-p` syntax: `80` (a random host port), `8080:80`, `127.0.0.1:8080:80`,
/// `127.0.0.1::80` (random port on one address), `[::1]:8080:80`, each with an optional `/tcp` or `/udp`.
/// Port ranges (`8000-8010:80`) are refused. A `host_port` of 0 means "any free port", chosen at attach time.
///
/// # Examples
/// ```
/// use wharf_network::{PortMapping, Protocol};
/// let p: PortMapping = "127.0.0.1:8080:80/udp".parse().unwrap();
/// assert_eq!((p.host_port, p.container_port, p.protocol), (8080, 80, Protocol::Udp));
/// assert_eq!(p.to_string(), "127.0.0.1:8080->80/udp");
/// let random: PortMapping = "80".parse().unwrap();
/// assert_eq!(random.host_port, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address to listen on; `None` is every address (`0.0.0.0`).
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 asks for a free one.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether the two mappings claim the same host port (same protocol and port, and addresses that
    /// overlap: equal, or one of them every address).
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl FromStr for PortMapping {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<PortMapping, ParseError> {
        let bad = |reason: &str| ParseError::Port {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some(_) => return Err(bad("protocol must be tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        // An IPv6 host address is bracketed: [::1]:8080:80.
        let (host_ip, ports) = if let Some(v6) = rest.strip_prefix('[') {
            let (ip, ports) = v6
                .split_once("]:")
                .ok_or_else(|| bad("unclosed [ in the host address"))?;
            let ip: IpAddr = ip.parse().map_err(|_| bad("host address is not an IP address"))?;
            (Some(ip), ports)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => {
                    let (ip, ports) = rest.split_once(':').ok_or_else(|| bad("malformed"))?;
                    let ip: IpAddr = ip.parse().map_err(|_| bad("host address is not an IP address"))?;
                    (Some(ip), ports)
                }
                _ => return Err(bad("too many ':' (bracket an IPv6 host address: [::1]:8080:80)")),
            }
        };
        let port = |p: &str, what: &str| -> Result<u16, ParseError> {
            if p.contains('-') {
                return Err(bad("port ranges are not supported"));
            }
            p.parse::<u16>()
                .map_err(|_| bad(&format!("{what} port {p:?} is not a number from 0 to 65535")))
        };
        let (host_port, container_port) = match ports.split_once(':') {
            None => (0, port(ports, "container")?),
            Some(("", c)) => (0, port(c, "container")?),
            Some((h, c)) => (port(h, "host")?, port(c, "container")?),
        };
        if container_port == 0 {
            return Err(bad("container port 0 is not a port"));
        }
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

/// Docker's `ps` form: `0.0.0.0:8080->80/tcp`.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(ip) => write!(f, "{ip}")?,
            None => f.write_str("0.0.0.0")?,
        }
        write!(f, ":{}->{}/{}", self.host_port, self.container_port, self.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let cases: [(&str, Option<IpAddr>, u16, u16, Protocol); 7] = [
            ("80", None, 0, 80, Protocol::Tcp),
            ("8080:80", None, 8080, 80, Protocol::Tcp),
            ("8080:80/udp", None, 8080, 80, Protocol::Udp),
            ("127.0.0.1:8080:80", ip("127.0.0.1"), 8080, 80, Protocol::Tcp),
            ("127.0.0.1::80/tcp", ip("127.0.0.1"), 0, 80, Protocol::Tcp),
            (":53/udp", None, 0, 53, Protocol::Udp),
            ("[::1]:8080:80", ip("::1"), 8080, 80, Protocol::Tcp),
        ];
        for (s, host_ip, host_port, container_port, protocol) in cases {
            assert_eq!(
                s.parse::<PortMapping>(),
                Ok(PortMapping {
                    host_ip,
                    host_port,
                    container_port,
                    protocol
                }),
                "{s}"
            );
        }
    }

    #[test]
    fn refused_forms_say_why() {
        for (s, why) in [
            ("80/sctp", "tcp or udp"),
            ("8000-8010:80", "ranges"),
            ("70000:80", "0 to 65535"),
            ("1:2:3:4", "too many"),
            ("host:80:80", "not an IP"),
            ("8080:0", "port 0"),
            ("", "not a number"),
        ] {
            match s.parse::<PortMapping>() {
                Err(ParseError::Port { reason, .. }) => assert!(reason.contains(why), "{s}: {reason}"),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn conflicts() {
        let p = |s: &str| s.parse::<PortMapping>().expect("port");
        assert!(p("8080:80").conflicts_with(&p("127.0.0.1:8080:81")));
        assert!(!p("127.0.0.2:8080:80").conflicts_with(&p("127.0.0.1:8080:80")));
        assert!(!p("8080:80/udp").conflicts_with(&p("8080:80")));
    }
}

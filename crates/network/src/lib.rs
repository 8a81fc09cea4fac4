//! wharf-network: container networks through the CNI plugins the ecosystem shares.
//!
//! It takes a network namespace path and a network, and connects them by running the standard
//! [CNI](https://www.cni.dev/) plugins (Debian's `containernetworking-plugins`: `bridge`, `host-local`,
//! `portmap`, `firewall`), as containerd's CRI, nerdctl, CRI-O and podman 3 do. It knows nothing of images or
//! sandboxes: the caller makes the namespace (a [`NetNs`]), gives its path to the sandbox, and attaches it.
//!
//! The main type is [`Networks`], a state directory: [`create`](Networks::create), [`list`](Networks::list),
//! [`network`](Networks::network) and [`remove`](Networks::remove) networks; [`attach`](Networks::attach)
//! and [`detach`](Networks::detach) containers, [`check`](Networks::check) them, and [`gc`](Networks::gc)
//! the attachments of containers that are gone. [`cni::Cni`] is the CNI runtime underneath (ADD, CHECK,
//! DEL, VERSION; chains with `prevResult`; typed [`cni::CniResult`]s; plugin errors as [`Error::Plugin`]
//! with the plugin's code and message).
//!
//! # Design
//! - **Plugins, not home-made networking.** A network is a `bridge` plugin configuration with `host-local`
//!   IPAM and `ipMasq` (masquerade for traffic leaving the subnet); published ports add `portmap`; a network
//!   may add `firewall` for hosts whose `FORWARD` policy drops; the `loopback` plugin brings the
//!   container's `lo` up with its first network. wharf creates no link, address or rule
//!   itself. The one exception is [`Networks::remove`] deleting the bridge device, which no plugin does.
//! - **Networks as data.** A [`Network`] is a record (name, bridge, subnet, gateway, the CNI version
//!   negotiated with the plugins once, at creation); the default network [`DEFAULT_NETWORK`] (`bridge`,
//!   `10.88.0.0/16` on `wharf0`) is made on first use; networks without a subnet get a free /24 of
//!   `10.89.0.0/16`. Overlapping subnets are refused with the network they overlap.
//! - **DEL is always possible.** Each attachment's record holds the exact chain ADD runs and is written
//!   (and synced) before ADD starts; the result is added when ADD ends. DEL runs from the record alone, so
//!   a process killed at any point leaves something [`Networks::gc`] can undo. A failed ADD is undone at once.
//!   Namespaces should be pinned ([`NetNs`]): the bridge plugin needs the namespace to find the addresses
//!   whose masquerade rule it removes.
//! - **Names.** Each attached container gets a hosts file listing its own address (hostname, name, aliases)
//!   and, on user networks, its peers' names and aliases; peers' files are rewritten in place as containers
//!   join and leave, so bind mounts see the change. On the default network containers do not resolve each
//!   other's names, as in Docker. `resolv.conf` is the host's without loopback name servers (Docker's rule;
//!   systemd-resolved's upstream list when the host has only its stub), or Google's when none is left.
//! - **Published ports** go through `portmap` with `snat: true`: the plugin DNATs the host port (from other
//!   hosts and from the host itself through the `OUTPUT` chain), sets `route_localnet` on the bridge and
//!   masquerades localhost and hairpin traffic, so `127.0.0.1:PORT` on the host reaches the container with
//!   no userland proxy. Unlike Docker's proxy, nothing listens on the host port, so wharf probes it by binding
//!   it for a moment before ADD: a port a host process or another container holds is [`Error::PortInUse`]
//!   (the probe cannot stop a process that binds the port later). A host port of 0 asks the kernel for a free
//!   one.
//! - **Locking.** Every change takes an `flock` on the state directory, so several processes can share it;
//!   ADD runs under it (attachments are serialised, which keeps port and address choices consistent).
//!
//! Only IPv4 networks for now. [`Networks::check`] runs every plugin's CHECK; Debian bookworm's `portmap`
//! 1.1.1 fails CHECK for containers with published ports and no IPv6 address (it looks for an ip6tables
//! chain it never made: containernetworking/plugins#819, fixed in 1.2.0), so CHECK is only meaningful there
//! without published ports.
//!
//! # Examples
//! ```no_run
//! use wharf_network::{AttachOptions, NetNs, NetworkOptions, Networks, NetworksConfig};
//! let nets = Networks::open("/var/lib/wharf/network", NetworksConfig::default())?;
//! nets.create("web", &NetworkOptions { subnet: Some("10.90.0.0/24".parse()?), ..Default::default() })?;
//! let ns = NetNs::create("/run/wharf/netns/c1")?;
//! let att = nets.attach("c1", ns.path(), "web", &AttachOptions { name: Some("app".into()), ..Default::default() })?;
//! println!("app is {:?}; hosts file {}", att.ip(), nets.hosts_path("c1").display());
//! nets.detach("c1", "web")?;
//! NetNs::remove(ns.path())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attach;
pub mod cni;
mod error;
pub mod hosts;
mod ipnet;
mod netns;
mod network;
mod networks;
mod ports;

pub use attach::{AttachOptions, AttachState, Attachment, GcReport};
pub use error::{Error, ParseError, Result};
pub use ipnet::IpNet;
pub use netns::NetNs;
pub use network::{DEFAULT_NETWORK, Network, NetworkOptions};
pub use networks::{Networks, NetworksConfig};
pub use ports::{PortMapping, Protocol};

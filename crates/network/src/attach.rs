//! Attaching containers to networks: records before ADD, DEL from the record, gc, hosts files.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::{CniResult, ConfList, RuntimeArgs};
use crate::error::io_err;
use crate::hosts::{HostEntry, host_resolv_conf, hosts_file, resolv_conf};
use crate::network::{DEFAULT_NETWORK, check_host_address, check_name};
use crate::networks::{read_json, write_json};
use crate::{Error, IpNet, Networks, PortMapping, Protocol, Result};

/// How to attach a container. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// The container's name, resolvable by its peers on user networks. Default: none.
    pub name: Option<String>,
    /// More names on this network (`--network-alias`). Default: none.
    pub aliases: Vec<String>,
    /// The container's hostname, listed for its own address in its hosts file. Default: none.
    pub hostname: Option<String>,
    /// A fixed address (`--ip`), on user networks only. Default: the next free one (host-local).
    pub ip: Option<IpAddr>,
    /// Ports to publish. A host port of 0 is replaced by a free one. Default: none.
    pub ports: Vec<PortMapping>,
    /// The interface name in the container. Default: `eth0`, or the next free `ethN`.
    pub ifname: Option<String>,
}

/// Whether ADD completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachState {
    /// The record was written and ADD started; it may have been interrupted half-way.
    Adding,
    /// ADD succeeded; the result is stored.
    Attached,
}

/// One container on one network: everything DEL needs (the exact chain ADD ran, the namespace path, the
/// interface, the result), written before ADD starts so that DEL is possible after any crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container id (`CNI_CONTAINERID`).
    pub container_id: String,
    /// The network's name.
    pub network: String,
    /// The container's network namespace (`CNI_NETNS`).
    pub netns: PathBuf,
    /// The interface in it (`CNI_IFNAME`).
    pub ifname: String,
    /// The container's name, if it has one.
    pub name: Option<String>,
    /// Its aliases on this network.
    pub aliases: Vec<String>,
    /// Its hostname, if given.
    pub hostname: Option<String>,
    /// Published ports, with the host ports actually chosen.
    pub ports: Vec<PortMapping>,
    /// Whether ADD completed.
    pub state: AttachState,
    /// The chain ADD ran; DEL and CHECK run the same.
    pub conflist: ConfList,
    /// ADD's result as the plugins printed it.
    pub result: Option<Value>,
}

impl Attachment {
    /// ADD's result as typed values.
    pub fn result(&self) -> Option<CniResult> {
        self.result
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// The container's addresses on this network.
    pub fn addresses(&self) -> Vec<IpNet> {
        self.result().map(|r| r.addresses_of(&self.ifname)).unwrap_or_default()
    }

    /// The container's first address on this network.
    pub fn ip(&self) -> Option<IpAddr> {
        self.addresses().first().map(IpNet::addr)
    }

    fn runtime_args(&self) -> RuntimeArgs {
        RuntimeArgs {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.name
            .iter()
            .chain(&self.aliases)
            .filter(|n| seen.insert(n.as_str()))
            .cloned()
            .collect()
    }
}

/// What [`Networks::gc`] did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Attachments detached (DEL ran, the record is gone).
    pub detached: Vec<Attachment>,
    /// Attachments whose DEL failed; their records stay for the next try.
    pub failed: Vec<(Attachment, Error)>,
}

impl Networks {
    /// Attaches the container `container_id`, whose network namespace is `netns`, to `network`
    /// ([`DEFAULT_NETWORK`] is created on first use): writes the attachment record, runs ADD, stores the
    /// result, writes the container's hosts and resolv.conf and adds it to its peers' hosts files.
    ///
    /// When ADD fails, DEL runs at once and the record is removed, so nothing is left; the ADD error is
    /// returned.
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`], [`Error::AlreadyAttached`], [`Error::InvalidName`] (container id, alias
    /// or interface), [`Error::BadAddress`] for an `ip` outside the subnet or on the default network,
    /// [`Error::PortInUse`] when a host port is held by another container or a host process, and the CNI
    /// errors ([`Error::Plugin`] carries the plugin's code and message).
    pub fn attach(&self, container_id: &str, netns: &Path, network: &str, opts: &AttachOptions) -> Result<Attachment> {
        check_name("container id", container_id, 255)?;
        for alias in opts.aliases.iter().chain(&opts.name) {
            check_name("container name or alias", alias, 255)?;
        }
        let _lock = self.lock()?;
        let net = if network == DEFAULT_NETWORK {
            self.default_network_locked()?
        } else {
            self.network(network)?
        };
        if self.attachment_path(container_id, network).exists() {
            return Err(Error::AlreadyAttached {
                container: container_id.to_string(),
                network: network.to_string(),
            });
        }
        if let Some(ip) = opts.ip {
            if network == DEFAULT_NETWORK {
                return Err(Error::BadAddress {
                    ip,
                    subnet: net.subnet,
                    reason: "a fixed address is only for user-created networks (as in Docker)",
                });
            }
            check_host_address(ip, net.subnet)?;
            if ip == net.gateway {
                return Err(Error::BadAddress {
                    ip,
                    subnet: net.subnet,
                    reason: "it is the gateway's address",
                });
            }
        }
        let all = self.all_attachments()?;
        let mine: Vec<&Attachment> = all.iter().filter(|a| a.container_id == container_id).collect();
        let ifname = match &opts.ifname {
            Some(i) => {
                check_name("interface name", i, 15)?;
                i.clone()
            }
            None => (0..)
                .map(|n| format!("eth{n}"))
                .find(|i| !mine.iter().any(|a| &a.ifname == i))
                .unwrap_or_else(|| unreachable!()),
        };
        let ports = claim_ports(&opts.ports, &all)?;
        let mut att = Attachment {
            container_id: container_id.to_string(),
            network: network.to_string(),
            netns: netns.to_path_buf(),
            ifname,
            name: opts.name.clone(),
            aliases: opts.aliases.clone(),
            hostname: opts.hostname.clone(),
            conflist: net.conflist(&self.ipam_dir(), opts.ip, &ports),
            ports,
            state: AttachState::Adding,
            result: None,
        };
        let path = self.attachment_path(container_id, network);
        write_json(&path, &att)?;
        let rt = att.runtime_args();
        let first = mine.is_empty();
        let added = self.cni.add(&att.conflist, &rt).and_then(|added| {
            if first {
                // The container's `lo` comes up with its first network, through the loopback plugin.
                let lo = ConfList {
                    cni_version: net.cni_version.clone(),
                    name: "lo".to_string(),
                    plugins: vec![serde_json::json!({ "type": "loopback" })],
                };
                self.cni.add(
                    &lo,
                    &RuntimeArgs {
                        ifname: "lo".to_string(),
                        ..rt.clone()
                    },
                )?;
            }
            Ok(added)
        });
        match added {
            Ok((_, raw)) => {
                att.result = Some(raw);
                att.state = AttachState::Attached;
                write_json(&path, &att)?;
            }
            Err(e) => {
                // Release whatever the chain got to; if even that fails, keep the record for gc.
                if self.cni.del(&att.conflist, &rt, None).is_ok() {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(e);
            }
        }
        self.write_container_files(container_id, true)?;
        self.refresh_peers(&att)?;
        Ok(att)
    }

    /// Runs CHECK for an attachment: the plugins verify the interface, address, routes and rules are
    /// still what ADD made.
    ///
    /// # Errors
    /// [`Error::NotAttached`], or the plugin's error saying what is wrong.
    pub fn check(&self, container_id: &str, network: &str) -> Result<()> {
        let att = self.attachment(container_id, network)?;
        let prev = att.result.as_ref().ok_or_else(|| Error::NotAttached {
            container: container_id.to_string(),
            network: network.to_string(),
        })?;
        self.cni.check(&att.conflist, &att.runtime_args(), prev)
    }

    /// The record of `container_id` on `network`.
    ///
    /// # Errors
    /// [`Error::NotAttached`], or a corrupt record.
    pub fn attachment(&self, container_id: &str, network: &str) -> Result<Attachment> {
        check_name("container id", container_id, 255)?;
        read_json(&self.attachment_path(container_id, network))?.ok_or_else(|| Error::NotAttached {
            container: container_id.to_string(),
            network: network.to_string(),
        })
    }

    /// Detaches the container from `network`: DEL from the record (releasing the address lease, the veth,
    /// the masquerade and port-mapping rules), then the record goes and the peers' hosts files drop it.
    /// The container's own files go with its last attachment. Works whether or not the namespace still
    /// exists (without it, the bridge plugin cannot remove its masquerade rule; see [`NetNs`](crate::NetNs)).
    ///
    /// # Errors
    /// [`Error::NotAttached`], or DEL's error (the record stays, so it can be retried).
    pub fn detach(&self, container_id: &str, network: &str) -> Result<()> {
        let _lock = self.lock()?;
        self.detach_locked(&self.attachment(container_id, network)?)
    }

    /// Detaches the container from every network it is on; tries all, returns the first error.
    ///
    /// # Errors
    /// As [`detach`](Self::detach).
    pub fn detach_all(&self, container_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut first = None;
        for att in self.attachments(container_id)? {
            if let Err(e) = self.detach_locked(&att) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Detaches every attachment whose container `is_alive` says is gone: the clean-up after a crash or
    /// `kill -9` of the program that attached it.
    ///
    /// # Errors
    /// Only when the records cannot be read; DEL failures are in the report.
    pub fn gc(&self, is_alive: impl Fn(&Attachment) -> bool) -> Result<GcReport> {
        let _lock = self.lock()?;
        let mut report = GcReport::default();
        for att in self.all_attachments()? {
            if is_alive(&att) {
                continue;
            }
            match self.detach_locked(&att) {
                Ok(()) => report.detached.push(att),
                Err(e) => report.failed.push((att, e)),
            }
        }
        Ok(report)
    }

    fn detach_locked(&self, att: &Attachment) -> Result<()> {
        self.cni.del(&att.conflist, &att.runtime_args(), att.result.as_ref())?;
        let path = self.attachment_path(&att.container_id, &att.network);
        std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
        self.refresh_peers(att)?;
        if self.attachments(&att.container_id)?.is_empty() {
            let dir = self.root.join("containers").join(&att.container_id);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        op: "remove",
                        path: dir,
                        source: e,
                    });
                }
                _ => {}
            }
        } else {
            self.write_container_files(&att.container_id, false)?;
        }
        Ok(())
    }

    /// Rewrites the hosts files of the containers sharing `att`'s network (user networks only: as in
    /// Docker, the default network does not resolve container names).
    fn refresh_peers(&self, att: &Attachment) -> Result<()> {
        if att.network == DEFAULT_NETWORK {
            return Ok(());
        }
        for peer in self.attachments_on(&att.network)? {
            if peer.container_id != att.container_id {
                self.write_container_files(&peer.container_id, false)?;
            }
        }
        Ok(())
    }

    /// Writes the container's hosts file (in place, so a bind mount of it sees the change) and, when
    /// `resolv` is set and it has none yet, its resolv.conf.
    fn write_container_files(&self, container_id: &str, resolv: bool) -> Result<()> {
        let all = self.all_attachments()?;
        let mine: Vec<&Attachment> = all.iter().filter(|a| a.container_id == container_id).collect();
        let mut own = Vec::new();
        let mut peers = Vec::new();
        for att in &mine {
            if let Some(ip) = att.ip() {
                let mut names: Vec<String> = att.hostname.iter().cloned().collect();
                names.extend(att.names().into_iter().filter(|n| Some(n) != att.hostname.as_ref()));
                own.push(HostEntry { ip, names });
            }
            if att.network == DEFAULT_NETWORK {
                continue;
            }
            for peer in all
                .iter()
                .filter(|p| p.network == att.network && p.container_id != container_id)
            {
                if let Some(ip) = peer.ip() {
                    peers.push(HostEntry {
                        ip,
                        names: peer.names(),
                    });
                }
            }
        }
        let dir = self.root.join("containers").join(container_id);
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let hosts = self.hosts_path(container_id);
        std::fs::write(&hosts, hosts_file(&own, &peers)).map_err(io_err("write", &hosts))?;
        let resolv_path = self.resolv_conf_path(container_id);
        if resolv && !resolv_path.exists() {
            std::fs::write(&resolv_path, resolv_conf(&host_resolv_conf())).map_err(io_err("write", &resolv_path))?;
        }
        Ok(())
    }
}

/// Checks the requested ports against other containers' and the host's, and picks free host ports for
/// the ones that ask for any.
fn claim_ports(wanted: &[PortMapping], all: &[Attachment]) -> Result<Vec<PortMapping>> {
    let mut claimed: Vec<PortMapping> = Vec::new();
    for want in wanted {
        let mut p = *want;
        let taken_by = |p: &PortMapping, claimed: &[PortMapping]| -> Option<Option<String>> {
            if claimed.iter().any(|c| c.conflicts_with(p)) {
                return Some(None);
            }
            all.iter()
                .find(|a| a.ports.iter().any(|c| c.conflicts_with(p)))
                .map(|a| Some(a.container_id.clone()))
        };
        if p.host_port == 0 {
            // Let the kernel pick a free port, skipping any another container has published.
            let mut found = None;
            for _ in 0..32 {
                let port = probe(&p)?.ok_or(Error::PortInUse {
                    mapping: p,
                    holder: None,
                })?;
                let candidate = PortMapping { host_port: port, ..p };
                if taken_by(&candidate, &claimed).is_none() {
                    found = Some(candidate);
                    break;
                }
            }
            p = found.ok_or(Error::PortInUse {
                mapping: p,
                holder: None,
            })?;
        } else {
            if let Some(holder) = taken_by(&p, &claimed) {
                return Err(Error::PortInUse { mapping: p, holder });
            }
            if probe(&p)?.is_none() {
                return Err(Error::PortInUse {
                    mapping: p,
                    holder: None,
                });
            }
        }
        claimed.push(p);
    }
    Ok(claimed)
}

/// Binds the mapping's host address and port for a moment: `Some(port)` if it was free (the port the
/// kernel gave for port 0), `None` if something on the host holds it.
fn probe(p: &PortMapping) -> Result<Option<u16>> {
    let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, p.host_port);
    let bound = match p.protocol {
        Protocol::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    };
    match bound {
        Ok(a) => Ok(Some(a.port())),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(Error::Io {
            op: "bind",
            path: PathBuf::from(addr.to_string()),
            source: e,
        }),
    }
}

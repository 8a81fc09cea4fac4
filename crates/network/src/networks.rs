//! The state directory: networks, attachment records and per-container files, under one lock.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cni::Cni;
use crate::error::io_err;
use crate::network::{DEFAULT_NETWORK, check_name};
use crate::{Attachment, Error, IpNet, Network, NetworkOptions, Result};

/// Where things are and what the defaults are. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworksConfig {
    /// Where CNI plugins are looked for. Default: [`Cni::default_dirs`].
    pub plugin_dirs: Vec<PathBuf>,
    /// The default network's subnet. Default: `10.88.0.0/16`.
    pub default_subnet: IpNet,
    /// The default network's bridge device. Default: `wharf0`.
    pub default_bridge: String,
    /// Where networks created without a subnet get theirs, one /24 each. Default: `10.89.0.0/16`.
    pub pool: IpNet,
}

impl Default for NetworksConfig {
    fn default() -> NetworksConfig {
        NetworksConfig {
            plugin_dirs: Cni::default_dirs(),
            default_subnet: IpNet::new([10, 88, 0, 0].into(), 16).unwrap_or_else(|| unreachable!()),
            default_bridge: "wharf0".to_string(),
            pool: IpNet::new([10, 89, 0, 0].into(), 16).unwrap_or_else(|| unreachable!()),
        }
    }
}

/// Container networks kept in a state directory: the networks, one record per attachment of a container
/// to a network, each container's `hosts` and `resolv.conf`, and host-local's leases.
///
/// ```text
/// ROOT/lock                            flock(2)ed by every change, so several processes can share ROOT
/// ROOT/networks/NAME.json              a Network
/// ROOT/attachments/ID@NETWORK.json     an Attachment: written before ADD, removed after DEL
/// ROOT/containers/ID/hosts             bind-mount these into the container
/// ROOT/containers/ID/resolv.conf
/// ROOT/ipam/NAME/                      host-local's leases
/// ```
///
/// # Ambient authority
/// Runs CNI plugins in the caller's network namespace (the "host" the bridge and port mappings live in)
/// and probes host ports there.
///
/// # Examples
/// ```no_run
/// use wharf_network::{AttachOptions, NetNs, Networks, NetworksConfig};
/// let nets = Networks::open("/var/lib/wharf/network", NetworksConfig::default()).unwrap();
/// let ns = NetNs::create("/run/wharf/netns/c1").unwrap();
/// let opts = AttachOptions { name: Some("web".into()), ports: vec!["8080:80".parse().unwrap()], ..Default::default() };
/// let att = nets.attach("c1", ns.path(), "bridge", &opts).unwrap();
/// println!("{} on {}", att.ip().unwrap(), att.network);
/// nets.detach("c1", "bridge").unwrap();
/// NetNs::remove(ns.path()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Networks {
    pub(crate) root: PathBuf,
    pub(crate) cni: Cni,
    pub(crate) config: NetworksConfig,
}

/// The state directory's lock, held for the duration of a change.
pub(crate) struct Lock(#[allow(dead_code)] File);

impl Networks {
    /// Opens (creating if needed) the state directory `root`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be made.
    pub fn open(root: impl Into<PathBuf>, config: NetworksConfig) -> Result<Networks> {
        let cni = Cni::new(config.plugin_dirs.clone());
        Networks::with_cni(root, config, cni)
    }

    /// Like [`open`](Self::open) with a given CNI runtime (another plugin runner).
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be made.
    pub fn with_cni(root: impl Into<PathBuf>, config: NetworksConfig, cni: Cni) -> Result<Networks> {
        let root = root.into();
        for dir in ["networks", "attachments", "containers", "ipam"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(io_err("create directory", d))?;
        }
        Ok(Networks { root, cni, config })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where host-local keeps leases (`NAME/` per network beneath).
    pub fn ipam_dir(&self) -> PathBuf {
        self.root.join("ipam")
    }

    pub(crate) fn lock(&self) -> Result<Lock> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock", &path))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "lock",
            path,
            source: e.into(),
        })?;
        Ok(Lock(f))
    }

    /// Creates a network. Without a subnet it takes the first /24 of the pool no network overlaps.
    ///
    /// # Errors
    /// [`Error::NetworkExists`], [`Error::SubnetOverlap`] naming the network it overlaps,
    /// [`Error::PoolExhausted`], the validation errors of [`Network::new`], or the plugins' version
    /// negotiation errors.
    pub fn create(&self, name: &str, opts: &NetworkOptions) -> Result<Network> {
        let _lock = self.lock()?;
        self.create_locked(name, opts)
    }

    fn create_locked(&self, name: &str, opts: &NetworkOptions) -> Result<Network> {
        check_name("network name", name, 64)?;
        if self.network_path(name).exists() {
            return Err(Error::NetworkExists(name.to_string()));
        }
        let existing = self.list()?;
        let subnet = match opts.subnet {
            Some(s) => s,
            None => self.free_subnet(&existing)?,
        };
        if let Some(other) = existing.iter().find(|n| n.subnet.overlaps(&subnet)) {
            return Err(Error::SubnetOverlap {
                name: name.to_string(),
                subnet,
                other: other.name.clone(),
                other_subnet: other.subnet,
            });
        }
        let cni_version = self.cni.negotiate(&Network::plugin_types(opts.firewall))?;
        let net = Network::new(
            name,
            &NetworkOptions {
                subnet: Some(subnet),
                ..opts.clone()
            },
            &cni_version,
        )?;
        if existing.iter().any(|n| n.bridge == net.bridge) {
            return Err(Error::InvalidName {
                what: "bridge name",
                name: net.bridge,
                reason: "another network uses it",
            });
        }
        write_json(&self.network_path(name), &net)?;
        Ok(net)
    }

    fn free_subnet(&self, existing: &[Network]) -> Result<IpNet> {
        let pool = self.config.pool;
        let count: u128 = if pool.prefix() >= 24 {
            1
        } else {
            1 << (24 - pool.prefix())
        };
        (0..count)
            .filter_map(|i| IpNet::new(pool.nth(i << 8)?, 24.max(pool.prefix())))
            .find(|s| !existing.iter().any(|n| n.subnet.overlaps(s)) && !self.config.default_subnet.overlaps(s))
            .ok_or(Error::PoolExhausted { pool })
    }

    /// The default network ([`DEFAULT_NETWORK`]), created on first use.
    ///
    /// # Errors
    /// As [`create`](Self::create), e.g. when a user network took its subnet.
    pub fn default_network(&self) -> Result<Network> {
        let _lock = self.lock()?;
        self.default_network_locked()
    }

    pub(crate) fn default_network_locked(&self) -> Result<Network> {
        match self.network(DEFAULT_NETWORK) {
            Err(Error::NetworkNotFound(_)) => {}
            other => return other,
        }
        let opts = NetworkOptions {
            subnet: Some(self.config.default_subnet),
            bridge: Some(self.config.default_bridge.clone()),
            ..NetworkOptions::default()
        };
        self.create_locked(DEFAULT_NETWORK, &opts)
    }

    /// The network called `name`.
    ///
    /// # Errors
    /// [`Error::NetworkNotFound`], or a corrupt record.
    pub fn network(&self, name: &str) -> Result<Network> {
        check_name("network name", name, 64).map_err(|_| Error::NetworkNotFound(name.to_string()))?;
        read_json(&self.network_path(name))?.ok_or_else(|| Error::NetworkNotFound(name.to_string()))
    }

    /// Every network, by name.
    ///
    /// # Errors
    /// A directory that cannot be read, or a corrupt record.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut v: Vec<Network> = read_dir_json(&self.root.join("networks"))?;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Removes a network with no containers attached: its record, its leases directory and its bridge
    /// device (`ip link delete`; no CNI plugin deletes bridges).
    ///
    /// # Errors
    /// [`Error::DefaultNetwork`], [`Error::NetworkNotFound`], [`Error::NetworkInUse`] with the containers.
    pub fn remove(&self, name: &str) -> Result<()> {
        if name == DEFAULT_NETWORK {
            return Err(Error::DefaultNetwork(name.to_string()));
        }
        let _lock = self.lock()?;
        let net = self.network(name)?;
        let containers: Vec<String> = self.attachments_on(name)?.into_iter().map(|a| a.container_id).collect();
        if !containers.is_empty() {
            return Err(Error::NetworkInUse {
                network: name.to_string(),
                containers,
            });
        }
        let path = self.network_path(name);
        std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
        let leases = self.ipam_dir().join(name);
        if leases.exists() {
            std::fs::remove_dir_all(&leases).map_err(io_err("remove leases", &leases))?;
        }
        delete_link(&net.bridge)
    }

    fn network_path(&self, name: &str) -> PathBuf {
        self.root.join("networks").join(format!("{name}.json"))
    }

    /// Every attachment record, in no particular order.
    ///
    /// # Errors
    /// A directory that cannot be read, or a corrupt record.
    pub fn all_attachments(&self) -> Result<Vec<Attachment>> {
        read_dir_json(&self.root.join("attachments"))
    }

    /// The attachments of one container.
    ///
    /// # Errors
    /// As [`all_attachments`](Self::all_attachments).
    pub fn attachments(&self, container_id: &str) -> Result<Vec<Attachment>> {
        let mut v: Vec<_> = self
            .all_attachments()?
            .into_iter()
            .filter(|a| a.container_id == container_id)
            .collect();
        v.sort_by(|a, b| a.ifname.cmp(&b.ifname));
        Ok(v)
    }

    /// The attachments to one network.
    ///
    /// # Errors
    /// As [`all_attachments`](Self::all_attachments).
    pub fn attachments_on(&self, network: &str) -> Result<Vec<Attachment>> {
        Ok(self
            .all_attachments()?
            .into_iter()
            .filter(|a| a.network == network)
            .collect())
    }

    pub(crate) fn attachment_path(&self, container_id: &str, network: &str) -> PathBuf {
        self.root
            .join("attachments")
            .join(format!("{container_id}@{network}.json"))
    }

    /// The container's hosts file (bind-mount it at `/etc/hosts`); it exists while the container is
    /// attached to a network and is rewritten in place as peers come and go.
    pub fn hosts_path(&self, container_id: &str) -> PathBuf {
        self.root.join("containers").join(container_id).join("hosts")
    }

    /// The container's resolv.conf (bind-mount it at `/etc/resolv.conf`), written at its first attachment
    /// from the host's ([`host_resolv_conf`](crate::hosts::host_resolv_conf)).
    pub fn resolv_conf_path(&self, container_id: &str) -> PathBuf {
        self.root.join("containers").join(container_id).join("resolv.conf")
    }
}

fn delete_link(name: &str) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(["link", "delete", name, "type", "bridge"])
        .output()
        .map_err(io_err("run ip link delete for", name))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || stderr.contains("Cannot find device") {
        return Ok(());
    }
    Err(Error::Io {
        op: "delete bridge",
        path: name.into(),
        source: std::io::Error::other(stderr.trim().to_string()),
    })
}

/// Writes a record atomically: a temporary file, synced, renamed over the old one.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let data = serde_json::to_vec_pretty(value).map_err(|e| Error::Record {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    std::io::Write::write_all(&mut f, &data).map_err(io_err("write", &tmp))?;
    f.sync_data().map_err(io_err("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))
}

/// Reads a record; `None` if there is none.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| Error::Record {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn read_dir_json<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let path = entry.map_err(io_err("read directory", dir))?.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(v) = read_json(&path)?
        {
            out.push(v);
        }
    }
    Ok(out)
}

//! The crate's error types.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::{IpNet, PortMapping};

/// A string that does not parse as a subnet, address or published port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not `ADDRESS/PREFIX`.
    #[error("invalid subnet or address {input:?}: {reason}")]
    IpNet {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Not `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`.
    #[error("invalid published port {input:?}: {reason}")]
    Port {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Everything that can go wrong in wharf-network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A subnet, address or port did not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A CNI plugin reported an error (the CNI spec's error object on its stdout).
    #[error("CNI plugin {plugin} {command} failed with CNI error {code}: {msg}{}", details_suffix(.details))]
    Plugin {
        /// The plugin's type (`bridge`, `portmap`, …).
        plugin: String,
        /// `ADD`, `CHECK`, `DEL` or `VERSION`.
        command: &'static str,
        /// The CNI error code (1–99 are the spec's, e.g. 1 incompatible version, 7 invalid config,
        /// 11 try again later; 100 and up are the plugin's own).
        code: u32,
        /// The plugin's message.
        msg: String,
        /// The plugin's details, if any.
        details: String,
    },
    /// A plugin failed without the CNI error object (crashed, or printed something else).
    #[error("CNI plugin {plugin} {command} failed ({status}) without a CNI error: {output}")]
    PluginCrashed {
        /// The plugin's type.
        plugin: String,
        /// The command.
        command: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed (stdout, then stderr), trimmed.
        output: String,
    },
    /// A plugin succeeded but printed something that is not what the spec says it prints.
    #[error("CNI plugin {plugin} {command} printed a malformed result: {reason}")]
    PluginOutput {
        /// The plugin's type.
        plugin: String,
        /// The command.
        command: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No executable of this name in the plugin directories.
    #[error("CNI plugin {plugin} not found in {dirs:?} (Debian: apt-get install containernetworking-plugins)")]
    PluginNotFound {
        /// The plugin's type.
        plugin: String,
        /// Where it was looked for.
        dirs: Vec<PathBuf>,
    },
    /// The plugin could not be started.
    #[error("running CNI plugin {}: {source}", path.display())]
    PluginExec {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The plugins of a chain share no CNI version with wharf.
    #[error("CNI plugin {plugin} supports CNI versions {supported:?}; wharf speaks {ours:?}")]
    IncompatibleVersion {
        /// The plugin's type.
        plugin: String,
        /// What it said it supports.
        supported: Vec<String>,
        /// What wharf speaks.
        ours: Vec<String>,
    },
    /// No network of this name.
    #[error("network {0:?} not found")]
    NetworkNotFound(String),
    /// A network of this name exists already.
    #[error("network {0:?} already exists")]
    NetworkExists(String),
    /// A name (network, container id, alias, interface) is not acceptable.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// Which kind of name.
        what: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The new network's subnet overlaps one that exists.
    #[error("subnet {subnet} of network {name:?} overlaps subnet {other_subnet} of network {other:?}")]
    SubnetOverlap {
        /// The network being created.
        name: String,
        /// Its subnet.
        subnet: IpNet,
        /// The existing network.
        other: String,
        /// Its subnet.
        other_subnet: IpNet,
    },
    /// An address (gateway, `--ip`) is not usable in the network's subnet.
    #[error("address {ip} is not usable in subnet {subnet}: {reason}")]
    BadAddress {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
        /// Why.
        reason: &'static str,
    },
    /// Every subnet of the pool for networks without `--subnet` is taken.
    #[error("no free subnet left in the pool {pool} for a new network; give one with a subnet")]
    PoolExhausted {
        /// The pool.
        pool: IpNet,
    },
    /// The network still has containers attached.
    #[error("network {network:?} has containers attached: {containers:?}")]
    NetworkInUse {
        /// The network.
        network: String,
        /// Their ids.
        containers: Vec<String>,
    },
    /// The default network cannot be removed.
    #[error("network {0:?} is the default network and cannot be removed")]
    DefaultNetwork(String),
    /// A published host port is taken, by another container or by a process of the host.
    #[error("host port {mapping} is already in use {}", holder_suffix(.holder))]
    PortInUse {
        /// The mapping that could not be published.
        mapping: PortMapping,
        /// The container publishing it already, if it is one of wharf's.
        holder: Option<String>,
    },
    /// The container is attached to this network already.
    #[error("container {container} is already attached to network {network:?}")]
    AlreadyAttached {
        /// The container id.
        container: String,
        /// The network.
        network: String,
    },
    /// The container is not attached to this network.
    #[error("container {container} is not attached to network {network:?}")]
    NotAttached {
        /// The container id.
        container: String,
        /// The network.
        network: String,
    },
    /// A record on disk is not what wharf wrote.
    #[error("corrupt record {}: {source}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A network namespace could not be made, pinned or removed.
    #[error("network namespace {}: {step}: {source}", path.display())]
    NetNs {
        /// The namespace's path.
        path: PathBuf,
        /// `unshare`, `bind mount`, `unmount`, …
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn holder_suffix(holder: &Option<String>) -> String {
    match holder {
        Some(c) => format!("by container {c}"),
        None => "on the host".to_string(),
    }
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

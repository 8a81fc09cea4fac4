//! A CNI runtime: runs plugin chains (network configuration lists) per the
//! [CNI specification](https://github.com/containernetworking/cni/blob/main/SPEC.md).
//!
//! ADD runs the plugins in order, each getting the previous one's result as `prevResult`; CHECK runs them in
//! order with the stored result; DEL runs them in reverse with the stored result (if the ADD got that far) and
//! goes on past a failing plugin so that as much as possible is released, reporting the first failure. The
//! plugin's CNI error object (`code`, `msg`, `details`) becomes [`Error::Plugin`].

mod exec;
mod result;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use exec::{PluginExec, PluginOutput, ProcessExec};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};

use crate::{Error, Result};

/// The CNI versions wharf speaks, preferred first. A chain runs in the first one all its plugins support.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0", "0.4.0"];

/// A network configuration list (a "conflist"): a named chain of plugin configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfList {
    /// The spec version every plugin of the chain is run in.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name (host-local keeps its leases under it).
    pub name: String,
    /// The plugin configurations, each an object with at least `type`.
    pub plugins: Vec<Value>,
}

/// Who a CNI call is about: the container, its network namespace and the interface name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeArgs {
    /// `CNI_CONTAINERID`: letters, digits, `_`, `.` and `-`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the container's network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to create in it (`eth0`).
    pub ifname: String,
}

/// The CNI runtime: plugin directories and the way plugins are run.
///
/// # Examples
/// ```no_run
/// use wharf_network::cni::Cni;
/// let cni = Cni::new(Cni::default_dirs());
/// let version = cni.negotiate(&["bridge", "portmap"]).unwrap();
/// assert!(["1.0.0", "0.4.0"].contains(&version.as_str()));
/// ```
#[derive(Clone)]
pub struct Cni {
    dirs: Vec<PathBuf>,
    exec: Arc<dyn PluginExec>,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Command {
    Add,
    Check,
    Del,
    Version,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
            Command::Version => "VERSION",
        }
    }
}

impl Cni {
    /// Where plugins are looked for by default: `/opt/cni/bin` (the upstream and containerd location), then
    /// `/usr/lib/cni` (Debian's `containernetworking-plugins`).
    pub fn default_dirs() -> Vec<PathBuf> {
        vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    }

    /// A runtime running the real plugin executables found in `dirs`.
    pub fn new(dirs: Vec<PathBuf>) -> Cni {
        Cni::with_exec(dirs, Arc::new(ProcessExec))
    }

    /// A runtime with another way of running plugins (a test double).
    pub fn with_exec(dirs: Vec<PathBuf>, exec: Arc<dyn PluginExec>) -> Cni {
        Cni { dirs, exec }
    }

    /// The plugin directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The spec versions plugin type `plugin` supports (its `VERSION` answer).
    ///
    /// # Errors
    /// [`Error::PluginNotFound`], [`Error::PluginExec`], a plugin error, or a malformed answer.
    pub fn version(&self, plugin: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct VersionInfo {
            #[serde(rename = "supportedVersions")]
            supported: Vec<String>,
        }
        let stdin = serde_json::json!({ "cniVersion": SUPPORTED_VERSIONS[0] });
        let out = self.invoke(plugin, Command::Version, &[], &stdin)?;
        let info: VersionInfo = serde_json::from_slice(&out).map_err(|e| Error::PluginOutput {
            plugin: plugin.to_string(),
            command: "VERSION",
            reason: e.to_string(),
        })?;
        Ok(info.supported)
    }

    /// The newest of [`SUPPORTED_VERSIONS`] that every plugin in `plugins` supports.
    ///
    /// # Errors
    /// [`Error::IncompatibleVersion`] naming the first plugin that supports none of the remaining versions,
    /// or the errors of [`version`](Self::version).
    pub fn negotiate(&self, plugins: &[&str]) -> Result<String> {
        let mut candidates: Vec<&str> = SUPPORTED_VERSIONS.to_vec();
        for plugin in plugins {
            let supported = self.version(plugin)?;
            candidates.retain(|v| supported.iter().any(|s| s == v));
            if candidates.is_empty() {
                return Err(Error::IncompatibleVersion {
                    plugin: plugin.to_string(),
                    supported,
                    ours: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(candidates[0].to_string())
    }

    /// Runs ADD through the chain. Returns the typed result and the last plugin's JSON (keep it: it is the
    /// `prevResult` CHECK and DEL need).
    ///
    /// A failed ADD may have left part of the chain's work behind; run [`del`](Self::del) to release it.
    ///
    /// # Errors
    /// The first plugin error, or a malformed result.
    pub fn add(&self, list: &ConfList, rt: &RuntimeArgs) -> Result<(CniResult, Value)> {
        let mut prev: Option<Value> = None;
        let mut last_type = String::new();
        for conf in &list.plugins {
            last_type = plugin_type(conf)?.to_string();
            let stdin = plugin_stdin(list, conf, prev.as_ref());
            let out = self.invoke(&last_type, Command::Add, &env(rt), &stdin)?;
            let value: Value = serde_json::from_slice(&out).map_err(|e| Error::PluginOutput {
                plugin: last_type.clone(),
                command: "ADD",
                reason: e.to_string(),
            })?;
            prev = Some(value);
        }
        let value = prev.unwrap_or_else(|| serde_json::json!({ "cniVersion": list.cni_version }));
        let typed = serde_json::from_value(value.clone()).map_err(|e| Error::PluginOutput {
            plugin: last_type,
            command: "ADD",
            reason: e.to_string(),
        })?;
        Ok((typed, value))
    }

    /// Runs CHECK through the chain with the result ADD returned.
    ///
    /// # Errors
    /// The first plugin error: the container's networking is not what ADD set up.
    pub fn check(&self, list: &ConfList, rt: &RuntimeArgs, prev: &Value) -> Result<()> {
        for conf in &list.plugins {
            let stdin = plugin_stdin(list, conf, Some(prev));
            self.invoke(plugin_type(conf)?, Command::Check, &env(rt), &stdin)?;
        }
        Ok(())
    }

    /// Runs DEL through the chain in reverse, with the result ADD returned if it got that far. Every plugin
    /// runs even if one fails; the first failure is returned.
    ///
    /// # Errors
    /// The first plugin error.
    pub fn del(&self, list: &ConfList, rt: &RuntimeArgs, prev: Option<&Value>) -> Result<()> {
        let mut first_err = None;
        for conf in list.plugins.iter().rev() {
            let res = plugin_type(conf).and_then(|t| {
                self.invoke(t, Command::Del, &env(rt), &plugin_stdin(list, conf, prev))
                    .map(drop)
            });
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn invoke(&self, plugin: &str, cmd: Command, env: &[(&str, String)], stdin: &Value) -> Result<Vec<u8>> {
        let path = self
            .exec
            .find(plugin, &self.dirs)
            .ok_or_else(|| Error::PluginNotFound {
                plugin: plugin.to_string(),
                dirs: self.dirs.clone(),
            })?;
        let cni_path = std::env::join_paths(&self.dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut full_env = vec![("CNI_COMMAND", cmd.name().to_string()), ("CNI_PATH", cni_path)];
        full_env.extend(env.iter().cloned());
        let input = serde_json::to_vec(stdin).map_err(|e| Error::PluginOutput {
            plugin: plugin.to_string(),
            command: cmd.name(),
            reason: format!("configuration does not serialize: {e}"),
        })?;
        let out = self
            .exec
            .exec(&path, &full_env, &input)
            .map_err(|source| Error::PluginExec {
                path: path.clone(),
                source,
            })?;
        if out.success {
            return Ok(out.stdout);
        }
        #[derive(Deserialize)]
        struct CniError {
            code: u32,
            #[serde(default)]
            msg: String,
            #[serde(default)]
            details: String,
        }
        match serde_json::from_slice::<CniError>(&out.stdout) {
            Ok(e) => Err(Error::Plugin {
                plugin: plugin.to_string(),
                command: cmd.name(),
                code: e.code,
                msg: e.msg,
                details: e.details,
            }),
            Err(_) => {
                let mut output = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !stderr.trim().is_empty() {
                    output = format!("{output} {}", stderr.trim()).trim().to_string();
                }
                Err(Error::PluginCrashed {
                    plugin: plugin.to_string(),
                    command: cmd.name(),
                    status: out.status,
                    output,
                })
            }
        }
    }
}

fn plugin_type(conf: &Value) -> Result<&str> {
    conf.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::PluginOutput {
            plugin: "?".to_string(),
            command: "ADD",
            reason: format!("plugin configuration without a \"type\": {conf}"),
        })
}

/// The spec's stdin for one plugin of a list: its own object plus the list's `name` and `cniVersion`, and
/// `prevResult` when there is one.
fn plugin_stdin(list: &ConfList, conf: &Value, prev: Option<&Value>) -> Value {
    let mut obj = conf.as_object().cloned().unwrap_or_else(Map::new);
    obj.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    obj.insert("name".into(), Value::String(list.name.clone()));
    if let Some(prev) = prev {
        obj.insert("prevResult".into(), prev.clone());
    }
    Value::Object(obj)
}

fn env(rt: &RuntimeArgs) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", rt.container_id.clone()),
        ("CNI_NETNS", rt.netns.to_string_lossy().into_owned()),
        ("CNI_IFNAME", rt.ifname.clone()),
        ("CNI_ARGS", String::new()),
    ]
}

#[cfg(test)]
mod tests;

//! What this runtime keeps beside the sandbox's state (`ROOT/ID/runtime.json`) and the OCI state it prints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wharf::sandbox::oci_spec::runtime::Hooks;
use wharf::sandbox::state::ContainerState;
use wharf::sandbox::{StateDir, Status};

use crate::error::{Error, Result};

/// The runtime-spec version whose state this runtime reports.
pub const OCI_VERSION: &str = "1.0.2";

/// Saved by `create` next to the sandbox's own state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// When the container was created (RFC 3339).
    pub created: String,
    /// The spec's hooks (the sandbox never sees them).
    #[serde(default)]
    pub hooks: Hooks,
}

impl Meta {
    /// Write it (temp file + rename) into the container's state directory.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, sd: &StateDir, id: &str) -> Result<()> {
        let p = sd.dir(id).join("runtime.json");
        let tmp = sd.dir(id).join("runtime.json.tmp");
        let json = serde_json::to_vec(self).map_err(|e| Error::io("encode", &p)(e.into()))?;
        std::fs::write(&tmp, json).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(Error::io("write", &p))
    }

    /// Read it; a container created by another program has none (then the defaults).
    pub fn load(sd: &StateDir, id: &str) -> Meta {
        std::fs::read(sd.dir(id).join("runtime.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// The state of a container as `runc state` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// The runtime-spec version.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Host pid of the container's process (0 once stopped, as runc).
    pub pid: i32,
    /// created, running, paused or stopped.
    pub status: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The spec's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Owner of a rootless container; empty.
    pub owner: String,
}

/// Load the sandbox's state of `id`, or [`Error::NotFound`].
///
/// # Errors
/// [`Error::NotFound`]; the sandbox's errors for an invalid id or unreadable state.
pub fn load(sd: &StateDir, id: &str) -> Result<ContainerState> {
    if !sd.dir(id).join("state.json").is_file() {
        // Let the sandbox refuse a malformed id with its own message.
        return Err(match sd.load(id) {
            Err(e @ wharf::sandbox::Error::InvalidId(_)) => e.into(),
            _ => Error::NotFound(id.to_owned()),
        });
    }
    Ok(sd.load(id)?)
}

/// Whether the container's cgroup is frozen (paused).
pub fn frozen(st: &ContainerState) -> bool {
    st.cgroup.dirs.iter().any(|(ctrl, dir)| {
        let (file, want) = if ctrl == "freezer" {
            ("freezer.state", "FROZEN")
        } else if ctrl.is_empty() || ctrl == "unified" {
            ("cgroup.freeze", "1")
        } else {
            return false;
        };
        std::fs::read_to_string(Path::new(dir).join(file)).is_ok_and(|s| s.trim() == want)
    })
}

/// The status word of `id`: the sandbox's, or `paused` when its cgroup is frozen.
///
/// # Errors
/// As [`load`].
pub fn status(sd: &StateDir, id: &str) -> Result<(ContainerState, String)> {
    let st = load(sd, id)?;
    let s = match sd.status(id)? {
        Status::Creating => "creating",
        Status::Created if frozen(&st) => "paused",
        Status::Created => "created",
        Status::Running if frozen(&st) => "paused",
        Status::Running => "running",
        Status::Stopped => "stopped",
    };
    Ok((st, s.to_owned()))
}

/// The OCI state of `id`.
///
/// # Errors
/// As [`load`].
pub fn oci_state(sd: &StateDir, id: &str) -> Result<OciState> {
    let (st, status) = status(sd, id)?;
    let meta = Meta::load(sd, id);
    Ok(OciState {
        oci_version: OCI_VERSION.into(),
        id: id.to_owned(),
        pid: if status == "stopped" { 0 } else { st.pid },
        status,
        bundle: meta.bundle,
        rootfs: st.rootfs.clone(),
        created: if meta.created.is_empty() {
            crate::log::rfc3339(st.created as i64, 0)
        } else {
            meta.created
        },
        annotations: st.annotations.clone(),
        owner: String::new(),
    })
}

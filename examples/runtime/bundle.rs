//! A bundle: a directory with `config.json` and the root filesystem it names.
//!
//! Every field of `config.json` is either honoured or refused: fields the `oci-spec` types do not know are found
//! by parsing the file twice (as JSON and as a [`Spec`]) and comparing; fields they know but the sandbox does not
//! support are refused by the sandbox itself; hooks are run here and removed from the spec the sandbox sees.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf::sandbox::oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Error, Result};

/// A loaded bundle.
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The spec to give the sandbox (hooks removed).
    pub spec: Spec,
    /// The spec's hooks, run by this runtime.
    pub hooks: Hooks,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
}

/// Load and check `dir/config.json`.
///
/// # Errors
/// [`Error::Bundle`] if it cannot be read or parsed; [`Error::Unsupported`] for a field this runtime does not know
/// or cannot honour.
pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::Bundle {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let cfg = dir.join("config.json");
    let bytes = std::fs::read(&cfg).map_err(|e| Error::Bundle {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    let raw: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Bundle {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    let mut spec: Spec = serde_json::from_value(raw.clone()).map_err(|e| Error::Bundle {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    let known = serde_json::to_value(&spec).map_err(|e| Error::Bundle {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    if let Some(field) = unknown_field(&raw, &known, "") {
        return Err(Error::Unsupported {
            field,
            reason: "not a field of the OCI runtime spec this runtime implements".into(),
        });
    }
    let major = spec.version().split('.').next().unwrap_or("");
    if major != "1" {
        return Err(Error::Unsupported {
            field: "ociVersion".into(),
            reason: format!("{:?}: only 1.x is implemented", spec.version()),
        });
    }
    for (field, set) in [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ] {
        if set {
            return Err(Error::Unsupported {
                field: field.into(),
                reason: "this runtime runs Linux containers only".into(),
            });
        }
    }
    let hooks = spec.hooks().clone().unwrap_or_default();
    spec.set_hooks(None);
    let root = spec.root().as_ref().ok_or_else(|| Error::Bundle {
        path: cfg.clone(),
        reason: "root.path is missing".into(),
    })?;
    let rootfs = dir.join(root.path());
    Ok(Bundle {
        dir,
        spec,
        hooks,
        rootfs,
    })
}

/// Parse a JSON document of the OCI runtime spec (a process for `exec --process`, resources for `update`),
/// refusing fields the spec types do not know, as for `config.json`. `what` names the document in errors.
///
/// # Errors
/// [`Error::Flag`] when it does not parse; [`Error::Unsupported`] for an unknown field.
pub fn parse_checked<T: serde::de::DeserializeOwned + serde::Serialize>(
    flag: &'static str,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    let bad = |reason: String| Error::Flag {
        flag,
        value: what.to_owned(),
        reason,
    };
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let parsed: T = serde_json::from_value(raw.clone()).map_err(|e| bad(e.to_string()))?;
    let known = serde_json::to_value(&parsed).map_err(|e| bad(e.to_string()))?;
    if let Some(field) = unknown_field(&raw, &known, "") {
        return Err(Error::Unsupported {
            field: format!("{flag} {what}: {field}"),
            reason: "not a field of the OCI runtime spec this runtime implements".into(),
        });
    }
    Ok(parsed)
}

/// Whether a JSON value carries no information (a field holding it may be dropped on re-serialisation).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

/// The JSON path of the first field of `raw` that did not survive parsing into the spec types.
fn unknown_field(raw: &Value, known: &Value, path: &str) -> Option<String> {
    match (raw, known) {
        (Value::Object(r), Value::Object(k)) => r.iter().find_map(|(key, v)| {
            let p = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match k.get(key) {
                Some(kv) => unknown_field(v, kv, &p),
                None if is_empty(v) => None,
                None => Some(p),
            }
        }),
        (Value::Object(r), _) if !r.values().all(is_empty) => Some(path.to_owned()),
        (Value::Array(r), Value::Array(k)) => r
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (rv, kv))| unknown_field(rv, kv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Hooks of one kind, for running.
pub fn of(hooks: &Hooks, kind: &str) -> Vec<Hook> {
    match kind {
        "prestart" => hooks.prestart(),
        "createRuntime" => hooks.create_runtime(),
        "createContainer" => hooks.create_container(),
        "startContainer" => hooks.start_container(),
        "poststart" => hooks.poststart(),
        "poststop" => hooks.poststop(),
        _ => &None,
    }
    .clone()
    .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named() {
        let spec = Spec::default();
        let known = serde_json::to_value(&spec).unwrap();
        let mut raw = known.clone();
        assert_eq!(unknown_field(&raw, &known, ""), None);
        raw["linux"]["fancyFeature"] = serde_json::json!({"on": true});
        assert_eq!(unknown_field(&raw, &known, "").as_deref(), Some("linux.fancyFeature"));
        let mut raw = known.clone();
        raw["process"]["futureFlag"] = serde_json::json!(false);
        assert_eq!(
            unknown_field(&raw, &known, ""),
            None,
            "an empty unknown value changes nothing"
        );
        raw["mounts"][1]["extra"] = serde_json::json!("x");
        assert_eq!(unknown_field(&raw, &known, "").as_deref(), Some("mounts[1].extra"));
    }
}

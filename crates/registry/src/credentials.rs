//! Credentials from Docker's `config.json` and from `$REGISTRY_AUTH_FILE`.
//!
//! # Ambient authority
//! [`lookup`] reads environment variables (`REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`, `HOME`),
//! files under the user's home, and runs `docker-credential-NAME` programs found on `PATH`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::auth::Credentials;
use crate::error::{Error, Result};

/// The key Docker uses for Docker Hub in `config.json` and with credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The shape of Docker's `config.json` (and podman's `auth.json`), the parts wharf reads.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ConfigFile {
    /// Stored credentials by registry.
    #[serde(default)]
    pub auths: HashMap<String, AuthEntry>,
    /// Credential helper per registry (`docker-credential-VALUE`).
    #[serde(default, rename = "credHelpers")]
    pub cred_helpers: HashMap<String, String>,
    /// Credential helper for every registry without its own.
    #[serde(default, rename = "credsStore")]
    pub creds_store: Option<String>,
}

/// One `auths` entry.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default)]
    pub auth: Option<String>,
    /// Explicit user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Explicit password.
    #[serde(default)]
    pub password: Option<String>,
}

impl ConfigFile {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the file cannot be read or is not JSON of this shape.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let bytes = std::fs::read(path).map_err(|e| cred_err(path.display(), e))?;
        serde_json::from_slice(&bytes).map_err(|e| cred_err(path.display(), e))
    }

    /// The credentials this file gives for `registry` (a `host[:port]`); `Ok(None)` when it
    /// has none. Runs a credential helper when one is configured, as Docker does: a
    /// `credHelpers` entry first, then `credsStore`, else the `auths` entries.
    ///
    /// # Errors
    /// A malformed `auth` value, or a helper that fails other than with "not found".
    pub fn credentials_for(&self, registry: &str, source: &Path) -> Result<Option<Credentials>> {
        let keys = registry_keys(registry);
        if let Some(helper) = keys.iter().find_map(|k| self.cred_helpers.get(k)) {
            return run_helper(helper, &keys[0]);
        }
        if let Some(helper) = self.creds_store.as_deref().filter(|h| !h.is_empty()) {
            return run_helper(helper, &keys[0]);
        }
        let entry = self
            .auths
            .iter()
            .find(|(k, _)| keys.iter().any(|want| normalize_key(k) == normalize_key(want)))
            .map(|(_, v)| v);
        let Some(entry) = entry else { return Ok(None) };
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials::basic(u, p)));
        }
        let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| cred_err(source.display(), format!("auths.{registry}.auth: {e}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| cred_err(source.display(), format!("auths.{registry}.auth is not UTF-8")))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| cred_err(source.display(), format!("auths.{registry}.auth is not user:password")))?;
        Ok(Some(Credentials::basic(u, p)))
    }
}

fn cred_err(source: impl ToString, reason: impl ToString) -> Error {
    Error::Credentials {
        source_name: source.to_string(),
        reason: reason.to_string(),
    }
}

/// The keys a registry may be stored under, the helper's server URL first.
fn registry_keys(registry: &str) -> Vec<String> {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            vec![DOCKER_HUB_KEY.to_string(), "docker.io".into(), "index.docker.io".into()]
        }
        r => vec![r.to_string()],
    }
}

/// `https://host:port/v1/` → `host:port`.
fn normalize_key(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

/// Runs `docker-credential-NAME get` with the server URL on stdin.
fn run_helper(name: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cred_err(&program, format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| cred_err(&program, format!("writing stdin: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| cred_err(&program, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let msg = format!("{}{}", stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
        // The helper protocol's answer for "no entry".
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(cred_err(&program, format!("{}: {msg}", out.status)));
    }
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: HelperAnswer = serde_json::from_str(stdout.trim()).map_err(|e| cred_err(&program, e))?;
    // `<token>` means an identity (OAuth refresh) token, which wharf does not exchange:
    // fall back to anonymous rather than sending it as a password.
    if a.username == "<token>" || (a.username.is_empty() && a.secret.is_empty()) {
        return Ok(None);
    }
    Ok(Some(Credentials::basic(a.username, a.secret)))
}

/// The credential files consulted, in order: `$REGISTRY_AUTH_FILE`, then
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn default_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(home).join(".docker/config.json"));
    }
    files
}

/// Looks up credentials for `registry` in `files` (missing files are skipped); the first
/// file that has an entry wins. Anonymous when none has.
///
/// # Errors
/// A file that exists but cannot be parsed, a malformed entry, a failing helper.
pub fn lookup(registry: &str, files: &[PathBuf]) -> Result<Credentials> {
    for f in files {
        if !f.exists() {
            continue;
        }
        if let Some(c) = ConfigFile::read(f)?.credentials_for(registry, f)? {
            return Ok(c);
        }
    }
    Ok(Credentials::Anonymous)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_auths_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
                "http://localhost:5000/v2/":{"auth":"YTpi"},
                "ghcr.io":{"username":"x","password":"y"},
                "empty.example":{}}}"#,
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), f.clone()];
        assert_eq!(
            lookup("docker.io", &files).unwrap(),
            Credentials::basic("user", "pa:ss")
        );
        assert_eq!(lookup("localhost:5000", &files).unwrap(), Credentials::basic("a", "b"));
        assert_eq!(lookup("ghcr.io", &files).unwrap(), Credentials::basic("x", "y"));
        assert_eq!(lookup("empty.example", &files).unwrap(), Credentials::Anonymous);
        assert_eq!(lookup("quay.io", &files).unwrap(), Credentials::Anonymous);

        std::fs::write(&f, r#"{"auths":{"bad.example":{"auth":"!!!"}}}"#).unwrap();
        assert!(matches!(lookup("bad.example", &files), Err(Error::Credentials { .. })));
        std::fs::write(&f, "not json").unwrap();
        assert!(matches!(lookup("x", &files), Err(Error::Credentials { .. })));
    }
}

//! Image configs: OCI (`application/vnd.oci.image.config.v1+json`) and Docker
//! (`application/vnd.docker.container.image.v1+json`).
//!
//! Both formats share one JSON shape; Docker's adds fields (`container_config`,
//! `config.Healthcheck`, `config.Shell`, `config.OnBuild`, …) and writes Go's zero values as
//! `null` (`"Cmd": null`, `"Env": null`) or leaves `rootfs.diff_ids` out for an image without
//! layers. [`ImageConfig::parse`] normalises those before handing the document to
//! [`oci_spec::image::ImageConfiguration`], checks what the image-spec requires (`rootfs.type`
//! is `layers`, every diff_id is a digest wharf can verify, `os` and `architecture` are there)
//! and keeps the Docker-only fields that change how a container runs.
//!
//! A parsed config is never re-serialised to compute a digest: the store keeps the bytes it
//! was given. [`ImageConfig::to_bytes`] is for configs wharf makes itself (import, commit),
//! and writes them with sorted keys so the same config always gets the same digest.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::{Config, History, ImageConfiguration, MediaType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Digest, DigestError, Platform};

/// Why an image config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON, or a field has the wrong type.
    #[error("malformed image config: {reason}")]
    Malformed {
        /// What the JSON parser said (with line and column).
        reason: String,
    },
    /// The document is JSON but not an object.
    #[error("image config is not a JSON object")]
    NotAnObject,
    /// A field the image-spec requires is absent.
    #[error("image config has no {field}")]
    MissingField {
        /// The field, dotted (`rootfs.type`).
        field: &'static str,
    },
    /// `rootfs.type` is something other than `layers`.
    #[error("image config rootfs.type is {found:?}, expected \"layers\"")]
    RootfsType {
        /// The type found.
        found: String,
    },
    /// A `rootfs.diff_ids` entry is not a digest wharf can verify.
    #[error("image config rootfs.diff_ids[{index}] {value:?} is invalid: {source}")]
    DiffId {
        /// Position in `rootfs.diff_ids`.
        index: usize,
        /// The entry as written.
        value: String,
        /// What is wrong with it.
        #[source]
        source: DigestError,
    },
    /// The descriptor's media type is not an image config's.
    #[error("media type {found:?} is not an image config (OCI or Docker)")]
    MediaType {
        /// The media type given.
        found: String,
    },
    /// The config could not be written as JSON.
    #[error("cannot serialise image config: {reason}")]
    Serialize {
        /// What serde_json said.
        reason: String,
    },
}

/// Docker's `config.Healthcheck`: how the engine probes a running container.
///
/// Durations are Go `time.Duration` values, in nanoseconds, as Docker writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// The probe: `[]` inherit, `["NONE"]` disabled, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between probes, in nanoseconds (0: engine default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time before a probe is considered hung, in nanoseconds (0: engine default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Start-up time during which failures do not count, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between probes during the start period, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures before the container is unhealthy (0: engine default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// Docker-only fields of `config` that oci-spec's model drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerExtras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args_escaped: Option<bool>,
}

impl DockerExtras {
    fn is_empty(&self) -> bool {
        *self == DockerExtras::default()
    }
}

/// A parsed image config (OCI `application/vnd.oci.image.config.v1+json` or Docker's
/// `application/vnd.docker.container.image.v1+json`).
///
/// # Examples
/// ```
/// use wharf_image::ImageConfig;
///
/// let json = br#"{"architecture":"amd64","os":"linux",
///   "config":{"Cmd":["nginx","-g","daemon off;"],"Env":null,"ExposedPorts":{"80/tcp":{}}},
///   "rootfs":{"type":"layers","diff_ids":[]}}"#;
/// let config = ImageConfig::parse(json)?;
/// assert_eq!(config.cmd(), Some(&["nginx".to_string(), "-g".into(), "daemon off;".into()][..]));
/// assert_eq!(config.exposed_ports(), ["80/tcp"]);
/// assert!(config.env().is_empty());
/// # Ok::<(), wharf_image::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    inner: ImageConfiguration,
    docker: DockerExtras,
}

impl ImageConfig {
    /// Parses an OCI or Docker image config.
    ///
    /// # Errors
    /// [`ConfigError`] on malformed JSON, a missing `rootfs`, `os` or `architecture`, a
    /// `rootfs.type` other than `layers`, or a diff_id that is not a sha256/sha512 digest.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let mut doc: Value = serde_json::from_slice(bytes).map_err(malformed)?;
        let obj = doc.as_object_mut().ok_or(ConfigError::NotAnObject)?;
        normalise(obj)?;
        let docker = match obj.get("config") {
            Some(c @ Value::Object(_)) => DockerExtras::deserialize(c).map_err(malformed)?,
            _ => DockerExtras::default(),
        };
        let inner: ImageConfiguration = serde_json::from_value(doc).map_err(malformed)?;
        ImageConfig::from_parts(inner, docker)
    }

    /// Parses a config blob after checking that its descriptor's media type is an image
    /// config's: OCI's `application/vnd.oci.image.config.v1+json` or Docker's
    /// `application/vnd.docker.container.image.v1+json`.
    ///
    /// # Errors
    /// [`ConfigError::MediaType`] for any other media type (a manifest, a layer, an artifact's
    /// config), else as [`ImageConfig::parse`].
    pub fn parse_as(media_type: &MediaType, bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        if crate::media::kind(media_type) != crate::media::Kind::Config {
            return Err(ConfigError::MediaType {
                found: media_type.to_string(),
            });
        }
        ImageConfig::parse(bytes)
    }

    /// Wraps an oci-spec config after checking it as [`ImageConfig::parse`] does.
    ///
    /// # Errors
    /// [`ConfigError::RootfsType`] or [`ConfigError::DiffId`].
    pub fn from_inner(inner: ImageConfiguration) -> Result<ImageConfig, ConfigError> {
        ImageConfig::from_parts(inner, DockerExtras::default())
    }

    fn from_parts(inner: ImageConfiguration, docker: DockerExtras) -> Result<ImageConfig, ConfigError> {
        let inner = sorted_sets(inner);
        if inner.rootfs().typ() != "layers" {
            return Err(ConfigError::RootfsType {
                found: inner.rootfs().typ().clone(),
            });
        }
        let c = ImageConfig { inner, docker };
        c.diff_ids()?;
        Ok(c)
    }

    /// Starts a new config for `platform` (import, commit).
    pub fn builder(platform: &Platform) -> ImageConfigBuilder {
        ImageConfigBuilder::new(platform)
    }

    /// A new config for `platform` with these layers, execution parameters and history.
    ///
    /// `history` should hold one entry without `empty_layer` per diff_id, in order; it is
    /// kept as given.
    pub fn new_for_layers(
        platform: &Platform,
        diff_ids: &[Digest],
        container_config: Option<Config>,
        history: Vec<History>,
    ) -> ImageConfig {
        let mut b = ImageConfig::builder(platform);
        for d in diff_ids {
            b = b.layer(d);
        }
        for h in history {
            b = b.history(h);
        }
        if let Some(c) = container_config {
            b = b.config(c);
        }
        b.build()
    }

    /// A copy of this config with one more layer on top (commit).
    ///
    /// `history` is appended with `empty_layer` cleared; its `created`, when set, becomes the
    /// new config's `created`.
    pub fn with_added_layer(&self, diff_id: &Digest, history: History) -> ImageConfig {
        let mut next = self.clone();
        next.inner.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
        let mut h = history;
        h.set_empty_layer(None);
        if let Some(created) = h.created().clone() {
            next.inner.set_created(Some(created));
        }
        next.inner.history_mut().get_or_insert_with(Vec::new).push(h);
        next
    }

    /// A copy of this config with other execution parameters (`docker commit --change`).
    ///
    /// Docker-only parameters (healthcheck, shell, …) are kept.
    pub fn with_container_config(&self, config: Config) -> ImageConfig {
        let mut next = self.clone();
        next.inner.set_config(Some(config));
        next.inner = sorted_sets(next.inner);
        next
    }

    /// The config as JSON with object keys sorted, so equal configs give equal bytes.
    ///
    /// Not byte-identical to what [`ImageConfig::parse`] was given: keep those bytes when the
    /// digest of an existing config matters.
    ///
    /// # Errors
    /// [`ConfigError::Serialize`] if serde_json refuses the model (it does not in practice).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        let ser = |e: serde_json::Error| ConfigError::Serialize { reason: e.to_string() };
        let mut doc = serde_json::to_value(&self.inner).map_err(ser)?;
        if !self.docker.is_empty()
            && let Value::Object(top) = &mut doc
        {
            let extras = serde_json::to_value(&self.docker).map_err(ser)?;
            let config = top.entry("config").or_insert_with(|| Value::Object(Map::new()));
            if let (Value::Object(c), Value::Object(e)) = (config, extras) {
                c.extend(e);
            }
        }
        serde_json::to_vec(&sorted(doc)).map_err(ser)
    }

    /// The oci-spec model.
    pub fn inner(&self) -> &ImageConfiguration {
        &self.inner
    }

    /// The oci-spec model, taken out (Docker-only fields are dropped).
    pub fn into_inner(self) -> ImageConfiguration {
        self.inner
    }

    fn config(&self) -> Option<&Config> {
        self.inner.config().as_ref()
    }

    /// Creation time (RFC 3339), if recorded.
    pub fn created(&self) -> Option<&str> {
        self.inner.created().as_deref()
    }

    /// Who made the image, if recorded (not empty).
    pub fn author(&self) -> Option<&str> {
        non_empty(self.inner.author().as_deref())
    }

    /// Operating system (`linux`).
    pub fn os(&self) -> String {
        self.inner.os().to_string()
    }

    /// CPU architecture, as Go names it (`amd64`, `arm64`).
    pub fn architecture(&self) -> String {
        self.inner.architecture().to_string()
    }

    /// CPU variant (`v7`), if recorded (not empty).
    pub fn variant(&self) -> Option<&str> {
        non_empty(self.inner.variant().as_deref())
    }

    /// `os.version`, if recorded (Windows images).
    pub fn os_version(&self) -> Option<&str> {
        non_empty(self.inner.os_version().as_deref())
    }

    /// `os.features`; empty when not recorded.
    pub fn os_features(&self) -> &[String] {
        self.inner.os_features().as_deref().unwrap_or_default()
    }

    /// The platform the image was built for, normalised.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os(), &self.architecture(), self.variant())
    }

    /// `config.Entrypoint`; `None` when absent or `null`.
    pub fn entrypoint(&self) -> Option<&[String]> {
        self.config().and_then(|c| c.entrypoint().as_deref())
    }

    /// `config.Cmd`; `None` when absent or `null`.
    pub fn cmd(&self) -> Option<&[String]> {
        self.config().and_then(|c| c.cmd().as_deref())
    }

    /// `config.Env` (`KEY=value` entries, in order); empty when absent or `null`.
    pub fn env(&self) -> &[String] {
        self.config().and_then(|c| c.env().as_deref()).unwrap_or_default()
    }

    /// `config.WorkingDir`; `None` when absent or empty.
    pub fn working_dir(&self) -> Option<&str> {
        non_empty(self.config().and_then(|c| c.working_dir().as_deref()))
    }

    /// `config.User` (`name`, `uid`, `name:group`, `uid:gid`, …); `None` when absent or empty.
    pub fn user(&self) -> Option<&str> {
        non_empty(self.config().and_then(|c| c.user().as_deref()))
    }

    /// `config.Labels`, sorted by key.
    pub fn labels(&self) -> BTreeMap<&str, &str> {
        self.config()
            .and_then(|c| c.labels().as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default()
    }

    /// Keys of `config.ExposedPorts` (`80/tcp`, `53/udp`, `8080`), sorted.
    pub fn exposed_ports(&self) -> Vec<&str> {
        sorted_keys(self.config().and_then(|c| c.exposed_ports().as_deref()))
    }

    /// Keys of `config.Volumes` (container paths), sorted.
    pub fn volumes(&self) -> Vec<&str> {
        sorted_keys(self.config().and_then(|c| c.volumes().as_deref()))
    }

    /// `config.StopSignal` (`SIGQUIT`, `9`); `None` when absent or empty.
    pub fn stop_signal(&self) -> Option<&str> {
        non_empty(self.config().and_then(|c| c.stop_signal().as_deref()))
    }

    /// `history`, first layer first; empty when absent.
    pub fn history(&self) -> &[History] {
        self.inner.history().as_deref().unwrap_or_default()
    }

    /// Docker's `config.Healthcheck`, if any.
    pub fn healthcheck(&self) -> Option<&Healthcheck> {
        self.docker.healthcheck.as_ref()
    }

    /// Docker's `config.Shell` (the shell form of `RUN`/`CMD` runs in), if set.
    pub fn shell(&self) -> Option<&[String]> {
        self.docker.shell.as_deref()
    }

    /// Docker's `config.OnBuild` triggers; empty when absent.
    pub fn on_build(&self) -> &[String] {
        self.docker.on_build.as_deref().unwrap_or_default()
    }

    /// `rootfs.diff_ids`, validated.
    ///
    /// # Errors
    /// [`ConfigError::DiffId`] when a diff_id is not a sha256/sha512 digest.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ConfigError> {
        self.inner
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(index, s)| {
                s.parse::<Digest>().map_err(|source| ConfigError::DiffId {
                    index,
                    value: s.clone(),
                    source,
                })
            })
            .collect()
    }
}

/// Builds a new [`ImageConfig`]; see [`ImageConfig::builder`].
///
/// # Examples
/// ```
/// use wharf_image::{Digest, ImageConfig, Platform};
/// use wharf_image::oci_spec::image::{ConfigBuilder, HistoryBuilder};
///
/// let layer = Digest::sha256(b"a layer tar");
/// let config = ImageConfig::builder(&Platform::default())
///     .created("2024-01-01T00:00:00Z")
///     .config(ConfigBuilder::default().cmd(vec!["/bin/sh".to_string()]).build()?)
///     .layer(&layer)
///     .history(HistoryBuilder::default().created_by("wharf import").build()?)
///     .build();
/// assert_eq!(config.diff_ids()?, [layer]);
/// assert_eq!(ImageConfig::parse(&config.to_bytes()?)?, config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageConfigBuilder {
    inner: ImageConfiguration,
}

impl ImageConfigBuilder {
    fn new(platform: &Platform) -> ImageConfigBuilder {
        let mut inner = ImageConfiguration::default();
        inner.set_os(platform.os().into());
        inner.set_architecture(platform.architecture().into());
        inner.set_variant(platform.variant().map(str::to_string));
        ImageConfigBuilder { inner }
    }

    /// Sets `created` (RFC 3339; see [`rfc3339`]).
    pub fn created(mut self, created: impl Into<String>) -> Self {
        self.inner.set_created(Some(created.into()));
        self
    }

    /// Sets `author`.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.inner.set_author(Some(author.into()));
        self
    }

    /// Sets the execution parameters (`config`).
    pub fn config(mut self, config: Config) -> Self {
        self.inner.set_config(Some(config));
        self
    }

    /// Appends a layer to `rootfs.diff_ids`.
    pub fn layer(mut self, diff_id: &Digest) -> Self {
        self.inner.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
        self
    }

    /// Appends a `history` entry.
    pub fn history(mut self, entry: History) -> Self {
        self.inner.history_mut().get_or_insert_with(Vec::new).push(entry);
        self
    }

    /// The config.
    pub fn build(self) -> ImageConfig {
        ImageConfig {
            inner: sorted_sets(self.inner),
            docker: DockerExtras::default(),
        }
    }
}

/// Formats a time as RFC 3339 in UTC with second precision (`2024-05-01T12:00:00Z`), the
/// form `created` takes. Times before 1970 are written as the epoch.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// oci-spec collects Go sets (`ExposedPorts`, `Volumes`) through a HashMap: fix their order
/// so that equal configs compare equal.
fn sorted_sets(mut inner: ImageConfiguration) -> ImageConfiguration {
    if let Some(mut c) = inner.config().clone() {
        let mut ports = c.exposed_ports().clone();
        let mut volumes = c.volumes().clone();
        for set in [&mut ports, &mut volumes].into_iter().flatten() {
            set.sort_unstable();
            set.dedup();
        }
        c.set_exposed_ports(ports);
        c.set_volumes(volumes);
        inner.set_config(Some(c));
    }
    inner
}

fn malformed(e: serde_json::Error) -> ConfigError {
    ConfigError::Malformed { reason: e.to_string() }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn sorted_keys(keys: Option<&[String]>) -> Vec<&str> {
    let mut v: Vec<&str> = keys.unwrap_or_default().iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Brings what Docker writes into the shape oci-spec's model accepts, and reports missing
/// required fields by name rather than as a serde message.
fn normalise(obj: &mut Map<String, Value>) -> Result<(), ConfigError> {
    for field in ["architecture", "os"] {
        match obj.get(field) {
            None | Some(Value::Null) => return Err(ConfigError::MissingField { field }),
            _ => {}
        }
    }
    let rootfs = match obj.get_mut("rootfs") {
        None | Some(Value::Null) => return Err(ConfigError::MissingField { field: "rootfs" }),
        Some(Value::Object(r)) => r,
        Some(_) => {
            return Err(ConfigError::Malformed {
                reason: "rootfs is not an object".into(),
            });
        }
    };
    match rootfs.get("type") {
        None | Some(Value::Null) => return Err(ConfigError::MissingField { field: "rootfs.type" }),
        Some(Value::String(t)) if t == "layers" => {}
        Some(Value::String(t)) => return Err(ConfigError::RootfsType { found: t.clone() }),
        Some(other) => {
            return Err(ConfigError::RootfsType {
                found: other.to_string(),
            });
        }
    }
    // Docker marks diff_ids `omitempty`: an image without layers has none.
    if matches!(rootfs.get("diff_ids"), None | Some(Value::Null)) {
        rootfs.insert("diff_ids".into(), Value::Array(Vec::new()));
    }
    if let Some(Value::Object(config)) = obj.get_mut("config") {
        // Go's map[string]struct{}: values are `{}`; tolerate `null` as Go itself does.
        for set in ["ExposedPorts", "Volumes"] {
            if let Some(Value::Object(m)) = config.get_mut(set) {
                for v in m.values_mut() {
                    if v.is_null() {
                        *v = Value::Object(Map::new());
                    }
                }
            }
        }
    }
    Ok(())
}

/// Rebuilds every object with its keys in order, whatever map serde_json was built with.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn sorted_orders_nested_keys() {
        let v: Value = serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":0,"x":1}]},"a":null}"#).unwrap_or_default();
        assert_eq!(
            serde_json::to_string(&sorted(v)).unwrap_or_default(),
            r#"{"a":null,"b":{"a":[{"x":1,"y":0}],"z":1}}"#
        );
    }
}

//! Image config → OCI runtime spec, following the image-spec's
//! [conversion rules](https://github.com/opencontainers/image-spec/blob/main/conversion.md)
//! with Docker's semantics where the caller overrides the image (`docker run --entrypoint`,
//! `-e`, `-w`, `-u`, `-h`, `-t`).
//!
//! The spec starts from [`Spec::default`] — runc's defaults: the usual mounts (`/proc`,
//! `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys`, cgroups), new namespaces, a minimal
//! capability set, masked and read-only kernel paths — and sets what the image decides:
//!
//! | Image config | Runtime spec |
//! | --- | --- |
//! | `Entrypoint` + `Cmd` | `process.args` |
//! | `Env` | `process.env`, plus `PATH`, `HOME` (and `HOSTNAME`, `TERM`) when the image does not set them |
//! | `WorkingDir` | `process.cwd` (`/` when unset) |
//! | `User` | `process.user`, names resolved in the rootfs (see [`crate::user`]) |
//! | `os`, `architecture`, `variant`, `os.version`, `os.features`, `author`, `created`, `StopSignal`, `ExposedPorts` | `org.opencontainers.image.*` annotations |
//! | `Labels` | annotations, taking precedence over the ones above |
//! | `Volumes` | the [`VOLUMES_ANNOTATION`] annotation |
//!
//! Volumes are not turned into mounts: what backs a volume (a host directory, a tmpfs, a
//! copy of the image's content) is the caller's policy, and the sandbox takes mounts as
//! given. The caller reads the list from [`crate::ImageConfig::volumes`] or from the
//! annotation and adds the mounts it wants.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use oci_spec::runtime::Spec;

use crate::ImageConfig;
use crate::user::{self, RootfsUsers, UserError};

/// The `PATH` a process gets when neither the image nor the caller sets one (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Annotation listing the image's `Config.Volumes`, comma-separated and sorted. Set only
/// when the image declares volumes.
pub const VOLUMES_ANNOTATION: &str = "dev.wharf.image.volumes";

/// Why an image config could not become a runtime spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Neither the image nor the overrides say what to run.
    #[error("no command: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// An environment entry is not `KEY=value`.
    #[error("environment entry {entry:?} is not KEY=value")]
    Env {
        /// The entry.
        entry: String,
    },
    /// The working directory is not an absolute path.
    #[error("working directory {path:?} is not an absolute path")]
    WorkingDir {
        /// The path given.
        path: String,
    },
    /// The user could not be resolved.
    #[error("user {user:?}: {source}")]
    User {
        /// The `User` value (`name`, `uid:gid`, …).
        user: String,
        /// Why.
        #[source]
        source: UserError,
    },
}

/// What a caller overrides when turning an image config into a runtime spec; `Default`
/// overrides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOverrides {
    /// Replaces the image's `Entrypoint` and, unless [`cmd`](Self::cmd) is given too, drops
    /// its `Cmd` (`docker run --entrypoint`); `Some(vec![])` runs `cmd` alone. Default: the
    /// image's.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's `Cmd`, keeping its `Entrypoint` (the arguments after the image in
    /// `docker run`). Default: the image's.
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` entries merged over the image's `Env`; a key already set is replaced in
    /// place. Default: none.
    pub env: Vec<String>,
    /// Replaces `WorkingDir`; must be absolute. Default: the image's, else `/`.
    pub working_dir: Option<String>,
    /// Replaces `User` (`name`, `uid`, `name:group`, `uid:gid`, …). Default: the image's,
    /// else root.
    pub user: Option<String>,
    /// The container's host name (`hostname`, and `HOSTNAME` in the environment unless set).
    /// Default: none (the runtime's own default applies).
    pub hostname: Option<String>,
    /// Gives the process a terminal (`process.terminal`, and `TERM=xterm` unless set).
    /// Default: false.
    pub terminal: bool,
    /// The container's root filesystem on this machine, to resolve user and group names in
    /// its `/etc/passwd` and `/etc/group`. Default: none, and only numeric users resolve.
    pub rootfs: Option<PathBuf>,
    /// `root.path` of the spec. Default: `rootfs` (relative to the bundle).
    pub root_path: Option<PathBuf>,
    /// `root.readonly` of the spec. Default: false, a writable root as Docker gives.
    pub readonly_rootfs: bool,
    /// Annotations added last, over those from the image. Default: none.
    pub annotations: BTreeMap<String, String>,
}

/// Converts an image config to an OCI runtime spec.
///
/// `process.args` is `Entrypoint` followed by `Cmd`; `process.env` is the image's `Env` with
/// the overrides merged in by key, and `PATH` ([`DEFAULT_PATH`]) and `HOME` (the user's home
/// in `/etc/passwd`, else `/`) added when not set; `process.cwd` is `WorkingDir` or `/`;
/// `process.user` comes from [`user::resolve`] against `overrides.rootfs`. See the
/// [module documentation](self) for the annotations.
///
/// # Errors
/// [`RuntimeError::NoCommand`] when there is nothing to run, [`RuntimeError::Env`] for an
/// entry without `=`, [`RuntimeError::WorkingDir`] for a relative directory and
/// [`RuntimeError::User`] when the user or group is not in the rootfs (or is a name and no
/// rootfs was given) or the rootfs's user database cannot be read safely.
///
/// # Examples
/// ```
/// use wharf_image::{ImageConfig, RuntimeOverrides, runtime_spec};
///
/// let config = ImageConfig::parse(br#"{"architecture":"amd64","os":"linux",
///   "config":{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],
///             "Env":["NGINX_VERSION=1.25.3"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"},
///   "rootfs":{"type":"layers","diff_ids":[]}}"#)?;
/// let overrides = RuntimeOverrides {
///     cmd: Some(vec!["nginx-debug".into()]),
///     env: vec!["NGINX_VERSION=custom".into()],
///     ..Default::default()
/// };
/// let spec = runtime_spec(&config, &overrides)?;
/// let process = spec.process().as_ref().expect("a process");
/// assert_eq!(process.args().as_deref(), Some(&["/docker-entrypoint.sh".to_string(), "nginx-debug".into()][..]));
/// assert_eq!(process.cwd().to_str(), Some("/"));
/// let env = process.env().clone().unwrap_or_default();
/// assert!(env.contains(&"NGINX_VERSION=custom".to_string()));
/// assert!(env.contains(&"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()));
/// let annotations = spec.annotations().clone().unwrap_or_default();
/// assert_eq!(annotations["org.opencontainers.image.stopSignal"], "SIGQUIT");
/// assert_eq!(annotations["org.opencontainers.image.exposedPorts"], "80/tcp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn runtime_spec(config: &ImageConfig, overrides: &RuntimeOverrides) -> Result<Spec, RuntimeError> {
    let args = args(config, overrides)?;

    let cwd = match overrides.working_dir.as_deref().or(config.working_dir()) {
        None => "/".to_string(),
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => return Err(RuntimeError::WorkingDir { path: p.into() }),
    };

    let user_spec = overrides.user.as_deref().or(config.user()).unwrap_or("");
    let user_err = |source| RuntimeError::User {
        user: user_spec.into(),
        source,
    };
    let users = match &overrides.rootfs {
        Some(root) => Some(RootfsUsers::read(root).map_err(user_err)?),
        None => None,
    };
    let resolved = user::resolve(user_spec, users.as_ref()).map_err(user_err)?;

    let mut env = Env::default();
    env.merge(config.env())?;
    env.merge(&overrides.env)?;
    env.set_default("PATH", DEFAULT_PATH, true);
    if let Some(h) = &overrides.hostname {
        env.set_default("HOSTNAME", h, false);
    }
    if overrides.terminal {
        env.set_default("TERM", "xterm", false);
    }
    env.set_default("HOME", resolved.home.as_deref().unwrap_or("/"), false);

    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(env.entries));
    process.set_cwd(cwd.into());
    process.set_terminal(Some(overrides.terminal));
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(resolved.uid);
    user.set_gid(resolved.gid);
    user.set_additional_gids(Some(resolved.additional_gids).filter(|g| !g.is_empty()));
    process.set_user(user);
    spec.set_process(Some(process));

    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(overrides.root_path.clone().unwrap_or_else(|| PathBuf::from("rootfs")));
    root.set_readonly(Some(overrides.readonly_rootfs));
    spec.set_root(Some(root));
    spec.set_hostname(overrides.hostname.clone());
    spec.set_annotations(Some(annotations(config, overrides)));
    Ok(spec)
}

/// `Entrypoint` + `Cmd`, with Docker's override rules.
fn args(config: &ImageConfig, o: &RuntimeOverrides) -> Result<Vec<String>, RuntimeError> {
    let (entrypoint, cmd): (&[String], &[String]) = match (&o.entrypoint, &o.cmd) {
        (Some(ep), cmd) => (ep, cmd.as_deref().unwrap_or_default()),
        (None, Some(cmd)) => (config.entrypoint().unwrap_or_default(), cmd),
        (None, None) => (
            config.entrypoint().unwrap_or_default(),
            config.cmd().unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if args.is_empty() {
        return Err(RuntimeError::NoCommand);
    }
    Ok(args)
}

/// An environment that keeps its order and replaces by key.
#[derive(Default)]
struct Env {
    entries: Vec<String>,
}

impl Env {
    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    }

    fn merge(&mut self, entries: &[String]) -> Result<(), RuntimeError> {
        for entry in entries {
            let key = match entry.split_once('=') {
                Some((k, _)) if !k.is_empty() => k,
                _ => return Err(RuntimeError::Env { entry: entry.clone() }),
            };
            match self.position(key) {
                Some(i) => self.entries[i] = entry.clone(),
                None => self.entries.push(entry.clone()),
            }
        }
        Ok(())
    }

    /// Sets `key` unless it is set; `first` puts it in front (where Docker puts `PATH`).
    fn set_default(&mut self, key: &str, value: &str, first: bool) {
        if self.position(key).is_none() {
            let entry = format!("{key}={value}");
            if first {
                self.entries.insert(0, entry);
            } else {
                self.entries.push(entry);
            }
        }
    }
}

fn annotations(config: &ImageConfig, overrides: &RuntimeOverrides) -> HashMap<String, String> {
    const P: &str = "org.opencontainers.image.";
    let mut a = HashMap::new();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            a.insert(key.to_string(), v);
        }
    };
    set(&format!("{P}os"), Some(config.os()));
    set(&format!("{P}architecture"), Some(config.architecture()));
    set(&format!("{P}variant"), config.variant().map(str::to_string));
    set(&format!("{P}os.version"), config.os_version().map(str::to_string));
    let features = config.os_features();
    set(
        &format!("{P}os.features"),
        (!features.is_empty()).then(|| features.join(",")),
    );
    set(&format!("{P}author"), config.author().map(str::to_string));
    set(&format!("{P}created"), config.created().map(str::to_string));
    set(&format!("{P}stopSignal"), config.stop_signal().map(str::to_string));
    let ports = config.exposed_ports();
    set(
        &format!("{P}exposedPorts"),
        (!ports.is_empty()).then(|| ports.join(",")),
    );
    let volumes = config.volumes();
    set(VOLUMES_ANNOTATION, (!volumes.is_empty()).then(|| volumes.join(",")));
    // Labels win over the implicit annotations (conversion.md, "Annotations").
    for (k, v) in config.labels() {
        a.insert(k.to_string(), v.to_string());
    }
    for (k, v) in &overrides.annotations {
        a.insert(k.clone(), v.clone());
    }
    a
}

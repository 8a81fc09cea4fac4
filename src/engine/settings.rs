//! What a container is made with: [`ContainerSettings`] (built with [`ContainerSettingsBuilder`]), docker run's
//! flags as a type, and the [`PullPolicy`] for its image.
//!
//! The settings are stored in the container's record, so that another process (another [`Engine`](super::Engine)
//! on the same root) can start, inspect or exec into it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use wharf_network::PortMapping;

use super::error::{Error, Result};

/// When [`Engine::create`](super::Engine::create) pulls the image from its registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull every time, even when the store has the image (a moving tag gets its newest image).
    Always,
    /// Pull only when the store lacks the image (docker run's default).
    #[default]
    Missing,
    /// Never pull: an image missing from the store is [`Error::ImageMissing`].
    Never,
}

/// Where the container's standard streams go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// A detached container (`docker run -d`): its supervisor (see the [supervisor's docs](super::supervisor))
    /// writes standard output and error to the container's log files, read with [`Engine::logs`](super::Engine::logs)
    /// and streamed to [`Engine::attach`](super::Engine::attach)ed clients; standard input is `/dev/null`, or with
    /// [`ContainerSettings::stdin_open`] what attached clients send.
    #[default]
    Logs,
    /// The container shares the engine process's standard streams (a foreground `docker run` in a terminal):
    /// nothing is logged. Standard input is passed only with [`ContainerSettings::stdin_open`] or a terminal.
    Inherit,
    /// Pipes: the caller's ends come back from [`Engine::start`](super::Engine::start) in
    /// [`Started`](super::Started) (attached at start, as `docker run -a` is; standard input only with
    /// [`ContainerSettings::stdin_open`]). Nothing is logged; whoever holds the ends must read them, or the
    /// container blocks once a pipe is full.
    Piped,
}

/// A host directory or file bind-mounted into the container (`docker run -v HOST:TARGET[:ro]`).
///
/// # Ambient authority
/// `source` is a path on the host, in the creating process's view (working directory, mounts): the container
/// gets whatever it names, with the engine's privileges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// The host path; made absolute (symlinks resolved) when the container is created.
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl BindMount {
    /// The source made absolute, its symlinks resolved on the host.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the volume when the source does not exist.
    pub fn resolved_source(&self) -> Result<PathBuf> {
        std::fs::canonicalize(&self.source).map_err(|e| Error::InvalidSetting {
            setting: "volume",
            value: format!("{}:{}", self.source.display(), self.target),
            reason: format!("{}: {e}", self.source.display()),
        })
    }
}

impl FromStr for BindMount {
    type Err = Error;

    /// Docker's `-v` form: `HOST:CONTAINER`, `HOST:CONTAINER:ro` or `HOST:CONTAINER:rw`.
    fn from_str(v: &str) -> Result<BindMount> {
        let parts: Vec<&str> = v.split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [h, t] => (*h, *t, false),
            [h, t, "ro"] => (*h, *t, true),
            [h, t, "rw"] => (*h, *t, false),
            _ => {
                return Err(Error::InvalidSetting {
                    setting: "volume",
                    value: v.to_string(),
                    reason: "expected HOST:CONTAINER[:ro]".into(),
                });
            }
        };
        Ok(BindMount {
            source: source.into(),
            target: target.into(),
            read_only,
        })
    }
}

/// Resource limits, applied through the container's cgroup. `None`: unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (and memory + swap) in bytes (`--memory`).
    pub memory: Option<i64>,
    /// CPUs, e.g. 0.5 (`--cpus`): a quota per 100 ms period.
    pub cpus: Option<f64>,
    /// Maximum number of processes (`--pids-limit`).
    pub pids: Option<i64>,
}

impl Limits {
    /// `64m`, `1g`, `512k`, `100` (bytes) → bytes, as docker reads `--memory`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the size.
    pub fn parse_size(s: &str) -> Result<i64> {
        let lower = s.trim().to_ascii_lowercase();
        let digits = lower.trim_end_matches('b');
        let (num, mult) = match digits.chars().last() {
            Some('k') => (&digits[..digits.len() - 1], 1i64 << 10),
            Some('m') => (&digits[..digits.len() - 1], 1 << 20),
            Some('g') => (&digits[..digits.len() - 1], 1 << 30),
            _ => (digits, 1),
        };
        let bad = |reason: &str| Error::InvalidSetting {
            setting: "size",
            value: s.to_string(),
            reason: reason.into(),
        };
        let n: f64 = num.parse().map_err(|_| bad("e.g. 64m, 1g"))?;
        if n <= 0.0 {
            return Err(bad("must be positive"));
        }
        Ok((n * mult as f64) as i64)
    }
}

/// A namespace of the container (`--pid`, `--ipc`, and the network's `container:NAME` form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// A new namespace of its own (the default).
    #[default]
    Private,
    /// The host's.
    Host,
    /// That of another running container, by name.
    Container(String),
}

impl FromStr for NamespaceMode {
    type Err = Error;

    /// `private` (also `shareable`, `""`), `host` or `container:NAME`.
    fn from_str(s: &str) -> Result<NamespaceMode> {
        Ok(match s {
            "" | "private" | "shareable" => NamespaceMode::Private,
            "host" => NamespaceMode::Host,
            _ => match s.strip_prefix("container:") {
                Some(peer) => {
                    super::records::check_name(peer)?;
                    NamespaceMode::Container(peer.to_string())
                }
                None => {
                    return Err(Error::InvalidSetting {
                        setting: "namespace mode",
                        value: s.to_string(),
                        reason: "expected private, host or container:NAME".into(),
                    });
                }
            },
        })
    }
}

/// The container's network (`--network` and its companions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    /// `none` (a private namespace with only `lo`, the default), `host`, `container:NAME`, `bridge` (the default
    /// CNI network, 10.88.0.0/16) or the name of a network made with wharf-network.
    pub mode: String,
    /// A fixed address on a user-created network.
    pub ip: Option<IpAddr>,
    /// More names for the container on its network.
    pub aliases: Vec<String>,
    /// Published ports (`-p`).
    pub publish: Vec<PortMapping>,
    /// Publish every port the image exposes on a free host port (`-P`).
    pub publish_all: bool,
}

impl Default for NetworkSettings {
    fn default() -> NetworkSettings {
        NetworkSettings {
            mode: "none".into(),
            ip: None,
            aliases: Vec::new(),
            publish: Vec::new(),
            publish_all: false,
        }
    }
}

impl NetworkSettings {
    /// Whether [`mode`](Self::mode) names a CNI network (rather than none, host or container:NAME).
    pub fn is_cni(&self) -> bool {
        is_cni(&self.mode)
    }
}

/// Whether a `--network` value names a CNI network (rather than none, host or container:NAME).
fn is_cni(mode: &str) -> bool {
    !matches!(mode, "none" | "" | "host") && !mode.starts_with("container:")
}

/// Docker's restart policies, applied by a detached container's supervisor (see the
/// [supervisor's docs](super::supervisor)): after each exit it waits (100 ms, doubled after each restart up to
/// a minute, back to 100 ms once the container ran 10 s, as docker does), then starts the container again.
/// A container stopped by the user ([`Engine::stop`](super::Engine::stop), a `KILL` or `TERM` from
/// [`Engine::kill`](super::Engine::kill), `remove(force)`) is never restarted; [`Engine::start`](super::Engine::start)
/// applies the policy again from a count of zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart (the default).
    #[default]
    No,
    /// Restart after a non-zero exit (or a kill by a signal), at most this many times (`None`: without limit):
    /// `on-failure:3` runs the container at most four times.
    OnFailure(Option<u32>),
    /// Always restart.
    Always,
    /// Always restart, unless it was stopped by a user (with no daemon to restart, the same as `Always`).
    UnlessStopped,
}

impl FromStr for RestartPolicy {
    type Err = Error;

    /// `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    fn from_str(s: &str) -> Result<RestartPolicy> {
        let bad = || Error::InvalidSetting {
            setting: "restart policy",
            value: s.to_string(),
            reason: "expected no, on-failure[:N], always or unless-stopped".into(),
        };
        Ok(match s {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(None),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => RestartPolicy::OnFailure(Some(n.parse().map_err(|_| bad())?)),
                None => return Err(bad()),
            },
        })
    }
}

/// How a supervised container's output is logged (`docker run --log-opt max-size=… --log-opt max-file=…`): each
/// stream's log (`stdout.log`, `stderr.log`) is rotated once it would grow past `max_size`, keeping at most
/// `max_files` files per stream (`stdout.log`, `stdout.log.1`, … the oldest dropped), as docker's `json-file`
/// driver does.
///
/// # Examples
/// ```
/// use wharf::engine::LogOptions;
/// let mut log = LogOptions::default();
/// log.set("max-size=10k").unwrap();
/// log.set("max-file=3").unwrap();
/// assert_eq!((log.max_size, log.max_files), (Some(10 << 10), 3));
/// assert!(log.set("mode=non-blocking").is_err());
/// assert!(log.set("max-size=lots").unwrap_err().to_string().contains("max-size=lots"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogOptions {
    /// The largest a log file grows before it is rotated, in bytes. Default: `None`, never rotated.
    pub max_size: Option<u64>,
    /// How many files of each stream are kept, the current one included (only with `max_size`). Default: 1.
    pub max_files: u32,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            max_size: None,
            max_files: 1,
        }
    }
}

impl LogOptions {
    /// Sets one of docker's `--log-opt KEY=VALUE`: `max-size` (`10m`, `512k`, bytes) or `max-file` (at least 1).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for another key or a bad value.
    pub fn set(&mut self, opt: &str) -> Result<()> {
        let bad = |reason: &str| Error::InvalidSetting {
            setting: "log option",
            value: opt.to_string(),
            reason: reason.into(),
        };
        match opt.split_once('=') {
            Some(("max-size", v)) => {
                let size = Limits::parse_size(v).map_err(|_| bad("max-size must be a size such as 10m, 512k"))?;
                self.max_size = Some(size as u64);
            }
            Some(("max-file", v)) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => self.max_files = n,
                _ => return Err(bad("max-file must be a whole number of at least 1")),
            },
            _ => return Err(bad("expected max-size=SIZE or max-file=N")),
        }
        Ok(())
    }
}

/// Everything `docker run` takes besides the image, for [`Engine::create`](super::Engine::create). Every field
/// defaults to the image's value or docker's default; build one with [`ContainerSettings::builder`].
///
/// # Examples
/// ```
/// use wharf::engine::{ContainerSettings, PullPolicy};
/// let settings = ContainerSettings::builder()
///     .name("web")
///     .command(["httpd", "-f", "-p", "8080"])
///     .env("MODE=test")
///     .memory(64 << 20)
///     .pull(PullPolicy::Never)
///     .build();
/// assert_eq!(settings.name.as_deref(), Some("web"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSettings {
    /// The container's name; default: a random 12-hex-digit one.
    pub name: Option<String>,
    /// The command and its arguments; default (empty): the image's `Cmd`.
    pub command: Vec<String>,
    /// Replaces the image's entrypoint (`Some(vec![])` clears it); default: the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries over the image's environment.
    pub env: Vec<String>,
    /// The working directory (absolute); default: the image's, else `/`.
    pub workdir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid`, `name:group`); default: the image's, else root.
    pub user: Option<String>,
    /// The host name; default: the container's name.
    pub hostname: Option<String>,
    /// Bind mounts.
    pub mounts: Vec<BindMount>,
    /// Resource limits; default: none.
    pub limits: Limits,
    /// The network; default: `none` (only `lo`).
    pub network: NetworkSettings,
    /// The pid namespace; default: private.
    pub pid: NamespaceMode,
    /// The IPC namespace; default: private.
    pub ipc: NamespaceMode,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    /// Run a minimal init as pid 1 that reaps zombies and forwards signals.
    pub init: bool,
    /// Give the container a terminal. With [`Output::Inherit`] its master is returned by
    /// [`Engine::start`](super::Engine::start) for the caller to copy; with [`Output::Logs`] what it shows goes to
    /// the stdout log and to attached clients, whose input it reads.
    pub tty: bool,
    /// Keep standard input open (`-i`): the caller's with [`Output::Inherit`], attached clients' with
    /// [`Output::Logs`].
    pub stdin_open: bool,
    /// Where standard streams go; default: [`Output::Logs`].
    pub output: Output,
    /// Labels, shown by [`Engine::inspect`](super::Engine::inspect) and matched by [`Filter::Label`](super::Filter).
    pub labels: BTreeMap<String, String>,
    /// The restart policy, applied by the supervisor of a container with [`Output::Logs`] (see [`RestartPolicy`]).
    pub restart: RestartPolicy,
    /// Log rotation of a supervised container ([`Output::Logs`]); default: none.
    pub log: LogOptions,
    /// Remove the container once it has stopped (`--rm`).
    pub auto_remove: bool,
    /// When to pull the image; default: [`PullPolicy::Missing`].
    pub pull: PullPolicy,
}

impl ContainerSettings {
    /// A builder starting from the defaults.
    pub fn builder() -> ContainerSettingsBuilder {
        ContainerSettingsBuilder::default()
    }
}

/// Builds [`ContainerSettings`] one setting at a time.
///
/// # Examples
/// ```
/// use wharf::engine::{ContainerSettings, NamespaceMode, RestartPolicy};
/// let s = ContainerSettings::builder()
///     .entrypoint(["/bin/sh", "-c"])
///     .command(["echo $GREETING"])
///     .env("GREETING=hi")
///     .workdir("/tmp")
///     .user("1000:1000")
///     .hostname("box")
///     .mount("/srv/data:/data:ro".parse().unwrap())
///     .cpus(0.5)
///     .pids_limit(64)
///     .network("bridge")
///     .pid(NamespaceMode::Host)
///     .read_only(true)
///     .init(true)
///     .label("team", "ci")
///     .restart(RestartPolicy::OnFailure(Some(3)))
///     .auto_remove(true)
///     .build();
/// assert_eq!(s.labels["team"], "ci");
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContainerSettingsBuilder {
    settings: ContainerSettings,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => |$s:ident, $v:ident| $body:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $v: $ty) -> Self {
                let $s = &mut self.settings;
                $body;
                self
            }
        )*
    };
}

impl ContainerSettingsBuilder {
    setters! {
        /// The container's name.
        name: impl Into<String> => |s, v| s.name = Some(v.into());
        /// The command and its arguments (replacing the image's `Cmd`).
        command: impl IntoIterator<Item = impl Into<String>> => |s, v| s.command = v.into_iter().map(Into::into).collect();
        /// The entrypoint (replacing the image's).
        entrypoint: impl IntoIterator<Item = impl Into<String>> => |s, v| s.entrypoint = Some(v.into_iter().map(Into::into).collect());
        /// One more `KEY=VALUE` environment entry.
        env: impl Into<String> => |s, v| s.env.push(v.into());
        /// The working directory.
        workdir: impl Into<String> => |s, v| s.workdir = Some(v.into());
        /// The user.
        user: impl Into<String> => |s, v| s.user = Some(v.into());
        /// The host name.
        hostname: impl Into<String> => |s, v| s.hostname = Some(v.into());
        /// One more bind mount.
        mount: BindMount => |s, v| s.mounts.push(v);
        /// All resource limits at once.
        limits: Limits => |s, v| s.limits = v;
        /// The memory limit in bytes.
        memory: i64 => |s, v| s.limits.memory = Some(v);
        /// The CPU limit, e.g. 0.5.
        cpus: f64 => |s, v| s.limits.cpus = Some(v);
        /// The maximum number of processes.
        pids_limit: i64 => |s, v| s.limits.pids = Some(v);
        /// The network mode (`none`, `host`, `container:NAME`, `bridge`, a network's name).
        network: impl Into<String> => |s, v| s.network.mode = v.into();
        /// All network settings at once.
        network_settings: NetworkSettings => |s, v| s.network = v;
        /// The pid namespace.
        pid: NamespaceMode => |s, v| s.pid = v;
        /// The IPC namespace.
        ipc: NamespaceMode => |s, v| s.ipc = v;
        /// A read-only root filesystem.
        read_only: bool => |s, v| s.read_only = v;
        /// A minimal init as pid 1.
        init: bool => |s, v| s.init = v;
        /// A terminal.
        tty: bool => |s, v| s.tty = v;
        /// Standard input kept open (with [`Output::Inherit`]).
        stdin_open: bool => |s, v| s.stdin_open = v;
        /// Where standard streams go.
        output: Output => |s, v| s.output = v;
        /// The restart policy (see [`RestartPolicy`]).
        restart: RestartPolicy => |s, v| s.restart = v;
        /// Log rotation (see [`LogOptions`]).
        log: LogOptions => |s, v| s.log = v;
        /// Removal once stopped.
        auto_remove: bool => |s, v| s.auto_remove = v;
        /// The pull policy.
        pull: PullPolicy => |s, v| s.pull = v;
    }

    /// One more label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.labels.insert(key.into(), value.into());
        self
    }

    /// The settings.
    pub fn build(self) -> ContainerSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_reads_them() {
        assert_eq!(Limits::parse_size("64m").ok(), Some(64 << 20));
        assert_eq!(Limits::parse_size("1g").ok(), Some(1 << 30));
        assert_eq!(Limits::parse_size("512kb").ok(), Some(512 << 10));
        assert_eq!(Limits::parse_size("100").ok(), Some(100));
        for bad in ["lots", "-1m", "0", ""] {
            assert!(Limits::parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_namespaces_and_restart_policies_parse() {
        let m: BindMount = "/a:/b:ro".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(m.read_only && m.target == "/b");
        assert!("/a".parse::<BindMount>().is_err());
        assert_eq!("host".parse::<NamespaceMode>().ok(), Some(NamespaceMode::Host));
        assert!(matches!(
            "container:../x".parse::<NamespaceMode>(),
            Err(Error::InvalidName(_))
        ));
        assert!("sideways".parse::<NamespaceMode>().is_err());
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().ok(),
            Some(RestartPolicy::OnFailure(Some(3)))
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }
}

//! The engine: containers from images, as `docker run` makes them, on one store root.
//!
//! An [`Engine`] opened on a store root composes the crates: the image (pulled under a [`PullPolicy`]) → its
//! layers in the layer cache → an overlay root filesystem → a runtime spec from the image config and the
//! [`ContainerSettings`] → a sandboxed process, with its network through wharf-network when asked.
//!
//! ```no_run
//! use wharf::engine::{ContainerSettings, Engine};
//! # fn main() -> Result<(), wharf::engine::Error> {
//! wharf::engine::supervisor::run_if_requested(); // first thing in main: see "Who waits for a container"
//! let engine = Engine::open("/var/lib/wharf")?;
//! let settings = ContainerSettings::builder().command(["echo", "hello"]).build();
//! let name = engine.run("busybox", &settings)?;
//! let exit = engine.wait(&name)?;
//! let logs = engine.logs(&name)?;
//! assert_eq!((exit.code, logs.stdout.as_slice()), (Some(0), &b"hello\n"[..]));
//! engine.remove(&name, false)?;
//! # Ok(()) }
//! ```
//!
//! # On disk
//! Everything lives under the store's root, in the layout the example CLI has always used, so stores made by
//! older versions keep working: `ROOT/.wharf/containers/NAME/` (the record, `container.json`, and the logs
//! `stdout.log`, `stderr.log` and their rotated `stdout.log.1`…, the supervisor's `attach.sock` and its own
//! errors in `supervisor.log`), `ROOT/.wharf/rootfs/ID/` (the container's overlay, by its id, which a rename does not
//! change; by its name for containers of older versions), `ROOT/.wharf/sandbox/`
//! (the sandbox's state, so any process can find, signal and exec into a container), `ROOT/.wharf/layers/`
//! (the layer cache), `ROOT/.wharf/network` and `ROOT/.wharf/netns/`.
//!
//! # Several processes, one root
//! Records are taken, changed and removed atomically (see the records' design in the source,
//! `src/engine/records.rs`): two engines racing for a name get one container and one
//! [`Error::NameInUse`]; a removal holds the record's lock; whatever a killed process left is rolled back by the
//! next engine that opens the root. Any engine on the root can inspect, list, stop, kill, exec into and remove
//! any container.
//!
//! # Who waits for a container
//! A detached container ([`Output::Logs`]) is reaped by its [supervisor], a small process that
//! outlives the engine that started it: it records the exit code, signal, OOM kills and finish time in the
//! record, applies the [`RestartPolicy`], logs the output with rotation ([`LogOptions`]) and serves
//! [`Engine::attach`]. **An embedding program calls [`supervisor::run_if_requested`] first thing in `main`**
//! (or names another program in [`EngineOptions::supervisor`]). A foreground container ([`Output::Inherit`],
//! [`Output::Piped`]) is reaped by a thread of the process that started it, which records the same; if that
//! process ends first, the container keeps running but nobody records its exit: its [`ExitInfo`] is then unknown
//! (`code` and `signal` both `None`), as it is for a container whose supervisor was killed. The engine that
//! started a container wakes its own [`Engine::wait`]ers without polling; another engine's `wait` polls the
//! record.
//!
//! # Blocking and async
//! Every method blocks the calling thread (file system, mounts, `clone3`, waiting); none needs a runtime.
//! [`Engine`] is `Clone + Send + Sync` (an `Arc` inside), so async code moves a clone into
//! `tokio::task::spawn_blocking`. Waiting has an async form, [`Engine::wait_async`], that never blocks an
//! executor's worker (the reaping thread wakes it); dropping its future leaves the container as it was (the
//! reaping thread, not the future, owns it). [`Engine::pull`] runs its own small tokio runtime: call it from
//! `spawn_blocking`, not from inside an async task.

mod attach;
mod error;
mod exec;
mod extract;
mod files;
mod image;
mod inspect;
mod lifecycle;
mod logs;
mod network;
mod records;
mod settings;
mod spec;
pub mod supervisor;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_image::{Platform, Store};
use wharf_rootfs::LayerCache;
use wharf_sandbox::StateDir;

pub use attach::{AttachEvent, Attached};
pub use error::{CommandFailure, Error, Result};
pub use exec::ExecSettings;
pub use extract::{ExtractLayers, VerifyLayers};
pub use files::{Change, ChangeKind, PathStat};
pub use inspect::{ContainerInfo, Filter, ListOptions, State};
pub use lifecycle::Started;
pub use logs::{FollowLogs, LogStream, Logs};
pub use records::check_name;
pub use settings::{
    BindMount, ContainerSettings, ContainerSettingsBuilder, Limits, LogOptions, NamespaceMode, NetworkSettings, Output,
    PullPolicy, RestartPolicy,
};
pub use supervisor::Supervisor;
pub use wait::{ExitInfo, WaitFuture};

/// How an [`Engine`] reaches registries and chooses images.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The platform chosen from multi-platform images. Default: the host's.
    pub platform: Platform,
    /// Registries (`host[:port]`) reached over plain HTTP (localhost always is). Default: none.
    pub insecure_registries: Vec<String>,
    /// Which program supervises detached containers. Default: [`Supervisor::ThisProgram`], whose `main` calls
    /// [`supervisor::run_if_requested`] (see the [supervisor's docs](supervisor)).
    pub supervisor: Supervisor,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            platform: Platform::host(),
            insecure_registries: Vec::new(),
            supervisor: Supervisor::default(),
        }
    }
}

/// Where an engine keeps its files under a store root (see the [module docs](self#on-disk)).
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    wharf: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        Layout {
            wharf: root.join(".wharf"),
        }
    }

    /// `ROOT/.wharf`.
    pub fn wharf(&self) -> &Path {
        &self.wharf
    }

    /// The records' directory.
    pub fn containers(&self) -> PathBuf {
        self.wharf.join("containers")
    }

    /// The directory `dir` (a container's id, or its name for older ones: its record says) of a container's
    /// filesystem: the layout `Rootfs::layers_in_use` and `Rootfs::cleanup_stale` read.
    pub fn rootfs(&self, dir: &str) -> PathBuf {
        self.rootfs_base().join(dir)
    }

    /// Where container filesystems live.
    pub fn rootfs_base(&self) -> PathBuf {
        self.wharf.join("rootfs")
    }

    /// The sandbox's state directory.
    pub fn state_dir(&self) -> Result<StateDir> {
        Ok(StateDir::new(self.wharf.join("sandbox"))?)
    }

    /// The layer cache.
    pub fn layer_cache(&self) -> Result<LayerCache> {
        Ok(LayerCache::open(self.wharf.join("layers"))?)
    }
}

/// Containers from images on one store root: create, start, restart, attach, wait, logs (followed too), stop, kill, remove,
/// inspect, list, rename, exec, top, stats (one sample or a stream), update, commit, export, copy in and out, diff.
///
/// Cheap to clone (an `Arc` inside) and `Send + Sync`. Every method blocks (see the
/// [module docs](self#blocking-and-async)); [`wait_async`](Engine::wait_async) is the async wait.
///
/// # Examples
/// ```no_run
/// use wharf::engine::{ContainerSettings, Engine, PullPolicy};
/// # fn main() -> Result<(), wharf::engine::Error> {
/// let engine = Engine::open("/var/lib/wharf")?;
/// let settings = ContainerSettings::builder()
///     .name("sleeper")
///     .command(["sleep", "60"])
///     .pull(PullPolicy::Missing)
///     .build();
/// engine.run("busybox", &settings)?;
/// engine.stop("sleeper", std::time::Duration::from_secs(10))?;
/// println!("{:?}", engine.inspect("sleeper")?.exit);
/// engine.remove("sleeper", false)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    layout: Layout,
    options: EngineOptions,
    records: records::Records,
    reaping: wait::Reaping,
}

impl Engine {
    /// Opens (creating it if needed) the store at `root` with the default options.
    ///
    /// # Ambient authority
    /// Everything the engine keeps is beneath `root` (see the [module docs](self#on-disk)); bind-mount sources
    /// ([`BindMount`]) are host paths, resolved when a container is created.
    ///
    /// # Errors
    /// The store cannot be opened; the records directory cannot be made.
    pub fn open(root: impl AsRef<Path>) -> Result<Engine> {
        Engine::with_store(Store::open(root.as_ref())?, EngineOptions::default())
    }

    /// An engine on `store` with `options`. Opening collects what killed processes left in the
    /// records (see the [module docs](self#several-processes-one-root)).
    ///
    /// # Errors
    /// The records directory cannot be made.
    pub fn with_store(store: Store, options: EngineOptions) -> Result<Engine> {
        supervisor::run_if_forgotten();
        let layout = Layout::new(store.root());
        let records = records::Records::open(&layout)?;
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                layout,
                options,
                records,
                reaping: wait::Reaping::default(),
            }),
        })
    }

    /// The image store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The options it was opened with.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// The container networks of this root (create, list, inspect, remove them with wharf-network).
    ///
    /// # Errors
    /// The network state directory cannot be opened.
    pub fn networks(&self) -> Result<wharf_network::Networks> {
        network::networks(&self.inner.layout)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub(crate) fn records(&self) -> &records::Records {
        &self.inner.records
    }
}

/// A signal by name (`TERM`, `SIGKILL`, …) or number, as `docker kill -s` takes it.
///
/// # Errors
/// [`Error::UnknownSignal`].
pub fn signal_number(s: &str) -> Result<i32> {
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    Ok(match name.as_str() {
        "TERM" => 15,
        "KILL" => 9,
        "INT" => 2,
        "HUP" => 1,
        "QUIT" => 3,
        "USR1" => 10,
        "USR2" => 12,
        "STOP" => 19,
        "CONT" => 18,
        n => n.parse().map_err(|_| Error::UnknownSignal(s.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_moves_into_spawn_blocking() {
        fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
        clone_send_sync::<Engine>();
        fn send<T: Send + 'static>() {}
        send::<WaitFuture>();
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("TERM").ok(), Some(15));
        assert_eq!(signal_number("SIGKILL").ok(), Some(9));
        assert_eq!(signal_number("10").ok(), Some(10));
        assert!(matches!(signal_number("SIGNOPE"), Err(Error::UnknownSignal(_))));
    }
}

//! A container's root filesystem: an overlay of cached layers plus its own upper
//! directory, or a flattened copy when overlayfs cannot be used.
//!
//! ## Many layers
//! The classic `mount(2)` call passes every lower directory in one option string limited to
//! a page (4 KiB), which ~40 cache paths exhaust. wharf uses the new mount API instead:
//! `fsopen("overlay")`, then one `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", path)` per
//! layer (Linux ≥ 6.8), `fsmount` and `move_mount`. Each path is its own string, so the
//! only limit left is overlayfs's stack depth (500 lowers); beyond it, or when any step
//! fails (no overlayfs, not privileged, `lowerdir+` unknown), the rootfs is a flattened
//! copy and [`Rootfs::mode`] / [`Rootfs::fallback_reason`] say so. No `chdir` and no symlink
//! farm are needed.
//!
//! ## Container directory
//! ```text
//! <dir>/upper   writes of the container (overlay mode)
//! <dir>/work    overlayfs work directory
//! <dir>/rootfs  the merged view (overlay mount point, or the copy)
//! <dir>/owner   "<pid> <start time>" of the process that mounted it, for stale-mount cleanup
//! ```

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};

use crate::cache::{CachedLayer, LayerCache, LayerLock};
use crate::error::{Error, Result};
use crate::fsutil;

/// overlayfs's maximum number of lower layers (`OVL_MAX_STACK`).
pub const MAX_OVERLAY_LAYERS: usize = 500;

/// How a [`Rootfs`] was assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// An overlayfs mount: cached layers read-only below, the container's upper dir on top.
    Overlay,
    /// A flattened copy of the layers (reflinked where the filesystem can).
    Copy,
    /// An overlay's directories (the container's upper and work dirs beside the cached layers) with nothing
    /// mounted on the host: the container's own process mounts the overlay inside its user namespace, with
    /// [`Rootfs::overlay_params`]. What an unprivileged caller uses, since Linux 5.11 lets the root of a user
    /// namespace mount overlayfs (with `userxattr`, so the layers mark opaque directories with
    /// [`USER_OVERLAY_OPAQUE_XATTR`](crate::USER_OVERLAY_OPAQUE_XATTR)); [`Rootfs::path`] stays an empty
    /// directory on the host. Only asked for, never chosen by itself.
    InUserNamespace,
}

/// The file that marks a container directory as [`MountMode::InUserNamespace`].
const IN_USERNS_MARK: &str = "in-userns";

/// The privileged operations a [`Rootfs`] needs, behind one narrow interface so their
/// sequence can be checked without root (tests inject a recording double) while the real
/// kernel path runs in the root-only integration tests.
pub trait Mounter: std::fmt::Debug + Send + Sync {
    /// Mounts overlayfs on `target` with `lowers` (top first), `upper` and `work`.
    ///
    /// # Errors
    /// [`Error::Mount`] naming the failed step.
    fn mount_overlay(&self, lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<()>;
    /// Unmounts `target` (lazily if busy); not mounted is fine.
    ///
    /// # Errors
    /// [`Error::Mount`].
    fn unmount(&self, target: &Path) -> Result<()>;
}

/// The real kernel: the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelMounter;

impl Mounter for KernelMounter {
    fn mount_overlay(&self, lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<()> {
        mount_overlay(lowers, upper, work, target)
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        unmount(target)
    }
}

/// How to assemble a [`Rootfs`].
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    /// Force a mode; `None` (the default) tries overlay and falls back to a copy.
    pub mode: Option<MountMode>,
}

/// A container's root filesystem. Unmounted and removed on drop or [`Rootfs::close`].
#[derive(Debug)]
pub struct Rootfs {
    dir: PathBuf,
    mode: MountMode,
    layers: Vec<CachedLayer>,
    /// The chain's implied-directory metadata layer, mounted above the layers.
    fixup: Option<PathBuf>,
    fallback_reason: Option<String>,
    active: bool,
    _holds: Vec<LayerLock>,
    mounter: std::sync::Arc<dyn Mounter>,
    /// Where this process sees the merged filesystem, when not at `path()`.
    pub(crate) view: Option<PathBuf>,
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may hold spaces).
    let after = stat.get(stat.rfind(')')? + 2..)?;
    after.split(' ').nth(19)?.parse().ok()
}

fn mount_err(op: impl Into<String>, target: &Path, fs_fd: Option<BorrowedFd<'_>>, e: Errno) -> Error {
    let mut op = op.into();
    // The kernel explains fsconfig/fsmount failures in the context's log.
    if let Some(fd) = fs_fd {
        let mut buf = [0u8; 512];
        while let Ok(n) = rustix::io::read(fd, &mut buf) {
            if n == 0 {
                break;
            }
            op.push_str(&format!(" [{}]", String::from_utf8_lossy(&buf[..n]).trim()));
        }
    }
    Error::Mount {
        op,
        target: target.to_path_buf(),
        source: e.into(),
    }
}

/// Mounts overlayfs on `target` with `lowers` (top first), through the new mount API.
pub(crate) fn mount_overlay(lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let fs_fd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| mount_err("fsopen overlay", target, None, e))?;
    let set = |k: &str, v: &Path| {
        rustix::mount::fsconfig_set_string(&fs_fd, k, v.as_os_str())
            .map_err(|e| mount_err(format!("fsconfig {k}"), v, Some(fs_fd.as_fd()), e))
    };
    for l in lowers {
        set("lowerdir+", l)?;
    }
    set("upperdir", upper)?;
    set("workdir", work)?;
    // Renamed directories and metadata-only copy-ups would make the upper dir an
    // incomplete record of the container's changes, which diff() relies on; ask for full
    // copy-ups (kernels without these options do neither).
    for (k, v) in [("redirect_dir", "off"), ("metacopy", "off")] {
        let _ = rustix::mount::fsconfig_set_string(&fs_fd, k, v);
    }
    rustix::mount::fsconfig_create(&fs_fd).map_err(|e| mount_err("fsconfig create", target, Some(fs_fd.as_fd()), e))?;
    let mnt = rustix::mount::fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| mount_err("fsmount", target, Some(fs_fd.as_fd()), e))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| mount_err("move_mount", target, None, e))
}

/// Whether `path` is a mount point (per this process's mountinfo).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(unescape).as_deref() == Some(want))
}

fn unescape(s: &str) -> Vec<u8> {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(|e| Error::Mount {
            op: "umount (detach)".into(),
            target: target.to_path_buf(),
            source: e.into(),
        }),
        Err(e) => Err(Error::Mount {
            op: "umount".into(),
            target: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

impl Rootfs {
    /// Assembles a rootfs in the new directory `dir` from cached `layers` (bottom to top).
    ///
    /// # Ambient authority
    /// Creates `dir` and mounts on `dir/rootfs`.
    ///
    /// # Errors
    /// [`Error::Io`] creating the directories; [`Error::Mount`] when overlay was forced and
    /// failed; copy errors. On error nothing is left behind.
    pub fn create(
        cache: &LayerCache,
        layers: &[CachedLayer],
        dir: impl AsRef<Path>,
        opts: &RootfsOptions,
    ) -> Result<Rootfs> {
        Rootfs::create_with(cache, layers, dir, opts, std::sync::Arc::new(KernelMounter))
    }

    /// As [`Rootfs::create`], with mounts made by `mounter` (a test double, or a mounter
    /// that works inside another mount namespace).
    ///
    /// # Ambient authority
    /// Creates `dir`.
    ///
    /// # Errors
    /// As [`Rootfs::create`].
    pub fn create_with(
        cache: &LayerCache,
        layers: &[CachedLayer],
        dir: impl AsRef<Path>,
        opts: &RootfsOptions,
        mounter: std::sync::Arc<dyn Mounter>,
    ) -> Result<Rootfs> {
        let dir = dir.as_ref().to_path_buf();
        // Private: the merged view holds the image's set-uid binaries and device nodes.
        fsutil::create_private_dir(&dir).map_err(Error::io("create", &dir))?;
        let mut holds = Vec::with_capacity(layers.len());
        let mut rootfs = Rootfs {
            dir: dir.clone(),
            mode: MountMode::Overlay,
            layers: layers.to_vec(),
            fixup: None,
            fallback_reason: None,
            active: true,
            _holds: Vec::new(),
            mounter,
            view: None,
        };
        for l in layers {
            if !cache.contains(&l.diff_id) {
                return Err(Error::Invalid {
                    what: "layer",
                    reason: format!("{} is not in the layer cache", l.diff_id),
                });
            }
            holds.push(cache.hold(&l.diff_id)?);
        }
        rootfs._holds = holds;
        rootfs.fixup = crate::fixup::ensure(cache, visible_layers(layers))?;
        let me = std::process::id();
        let owner = format!("{me} {}\n", start_time(me).unwrap_or(0));
        fs::write(dir.join("owner"), owner).map_err(Error::io("write", dir.join("owner")))?;
        let ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let json = serde_json::to_vec(&ids).map_err(|e| Error::Invalid {
            what: "layer list",
            reason: e.to_string(),
        })?;
        fs::write(dir.join("layers.json"), json).map_err(Error::io("write", dir.join("layers.json")))?;
        let merged = dir.join("rootfs");
        fs::create_dir(&merged).map_err(Error::io("create", &merged))?;
        if opts.mode == Some(MountMode::InUserNamespace) {
            rootfs.mode = MountMode::InUserNamespace;
            for d in [dir.join("upper"), dir.join("work"), dir.join("empty")] {
                fs::create_dir(&d).map_err(Error::io("create", &d))?;
            }
            let mark = dir.join(IN_USERNS_MARK);
            fs::write(&mark, "").map_err(Error::io("write", &mark))?;
            return Ok(rootfs);
        }
        let want_overlay = opts.mode != Some(MountMode::Copy);
        if want_overlay {
            match rootfs.try_overlay() {
                Ok(()) => return Ok(rootfs),
                Err(e) if opts.mode == Some(MountMode::Overlay) => return Err(e),
                Err(e) => rootfs.fallback_reason = Some(e.to_string()),
            }
        } else {
            rootfs.fallback_reason = Some("copy mode requested".into());
        }
        rootfs.mode = MountMode::Copy;
        let _ = fsutil::remove_tree(&dir.join("upper"));
        let _ = fsutil::remove_tree(&dir.join("work"));
        copy_layers(layers, rootfs.fixup.as_deref(), &merged)?;
        Ok(rootfs)
    }

    fn try_overlay(&self) -> Result<()> {
        if self.layers.len() + usize::from(self.fixup.is_some()) > MAX_OVERLAY_LAYERS {
            return Err(Error::Invalid {
                what: "overlay",
                reason: format!(
                    "{} layers exceed overlayfs's limit of {MAX_OVERLAY_LAYERS}",
                    self.layers.len()
                ),
            });
        }
        let upper = self.dir.join("upper");
        let work = self.dir.join("work");
        for d in [&upper, &work] {
            if !d.exists() {
                fs::create_dir(d).map_err(Error::io("create", d))?;
            }
        }
        let lowers = self.lowers();
        let empty = self.dir.join("empty");
        if lowers == [empty.clone()] {
            fs::create_dir_all(&empty).map_err(Error::io("create", &empty))?;
        }
        let lowers: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        self.mounter
            .mount_overlay(&lowers, &upper, &work, &self.dir.join("rootfs"))
    }

    /// The overlay's lower directories, top first: the implied-directory layer above the visible layers, or the
    /// directory `empty` for an image without layers (overlayfs needs a lower).
    fn lowers(&self) -> Vec<PathBuf> {
        let mut lowers: Vec<PathBuf> = self
            .fixup
            .iter()
            .cloned()
            .chain(visible_layers(&self.layers).iter().rev().map(|l| l.path.clone()))
            .collect();
        if lowers.is_empty() {
            lowers.push(self.dir.join("empty"));
        }
        lowers
    }

    /// The root filesystem's path (the merged view).
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Where this process sees the merged filesystem: [`Rootfs::path`], unless
    /// [`set_merged_view`](Rootfs::set_merged_view) said otherwise. [`Rootfs::export`] and
    /// [`Rootfs::export_path`] read it.
    pub fn merged_view(&self) -> PathBuf {
        self.view.clone().unwrap_or_else(|| self.path())
    }

    /// Reads the merged filesystem through `dir` from now on: for [`MountMode::InUserNamespace`], whose overlay
    /// exists only in the container's mount namespace, the root of a process inside it (`/proc/PID/root`).
    pub fn set_merged_view(&mut self, dir: PathBuf) {
        self.view = Some(dir);
    }

    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The upper (writable) directory in overlay mode (mounted here or in the container's user namespace).
    pub fn upper(&self) -> Option<PathBuf> {
        (self.mode != MountMode::Copy).then(|| self.dir.join("upper"))
    }

    /// The parameters of the overlay that the container's process mounts on [`Rootfs::path`] in
    /// [`MountMode::InUserNamespace`], in order, as `fsconfig(2)` takes them: a key with a value, or a flag
    /// (`None`). The lower layers top first (the implied-directory layer above them), the upper and work dirs, and
    /// `userxattr` (which also rules out redirects and metadata-only copy-ups, so the upper dir stays a complete
    /// record of the changes). Empty in the other modes.
    ///
    /// # Examples
    /// ```no_run
    /// # fn main() -> wharf_rootfs::Result<()> {
    /// use wharf_rootfs::{LayerCache, MountMode, Rootfs, RootfsOptions};
    /// let cache = LayerCache::open("/home/me/.local/share/wharf/.wharf/layers")?;
    /// let rootfs = Rootfs::attach(&cache, "/home/me/.local/share/wharf/.wharf/rootfs/c1")?;
    /// if rootfs.mode() == MountMode::InUserNamespace {
    ///     for (key, value) in rootfs.overlay_params() {
    ///         println!("{key}={}", value.map(|v| v.display().to_string()).unwrap_or_default());
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn overlay_params(&self) -> Vec<(&'static str, Option<PathBuf>)> {
        if self.mode != MountMode::InUserNamespace {
            return Vec::new();
        }
        let mut params: Vec<(&'static str, Option<PathBuf>)> =
            self.lowers().into_iter().map(|l| ("lowerdir+", Some(l))).collect();
        params.push(("upperdir", Some(self.dir.join("upper"))));
        params.push(("workdir", Some(self.dir.join("work"))));
        // With userxattr the kernel neither creates redirects nor copies up metadata alone (and refuses
        // `redirect_dir`/`metacopy` values that would), so the upper dir stays a complete record of the changes.
        params.push(("userxattr", None));
        params
    }

    /// Turns a new [`MountMode::InUserNamespace`] rootfs into a copy of its layers, for when the kernel refused
    /// the container's overlay (before Linux 5.11): the upper and work dirs go, the layers are copied into
    /// [`Rootfs::path`], and `reason` becomes the [fallback reason](Rootfs::fallback_reason).
    ///
    /// # Errors
    /// [`Error::Invalid`] in another mode or when the upper dir holds changes (a container that already ran
    /// must not lose them); copy errors.
    pub fn fall_back_to_copy(&mut self, reason: &str) -> Result<()> {
        let upper = self.dir.join("upper");
        let used = fs::read_dir(&upper).map_or(true, |mut d| d.next().is_some());
        if self.mode != MountMode::InUserNamespace || used {
            return Err(Error::Invalid {
                what: "rootfs",
                reason: format!(
                    "{} cannot become a copy of its layers: only a new container's overlay made in a user \
                     namespace can",
                    self.dir.display()
                ),
            });
        }
        for d in ["upper", "work", "empty"] {
            let _ = fsutil::remove_tree(&self.dir.join(d));
        }
        let mark = self.dir.join(IN_USERNS_MARK);
        fs::remove_file(&mark).map_err(Error::io("remove", &mark))?;
        self.mode = MountMode::Copy;
        self.fallback_reason = Some(reason.to_string());
        copy_layers(&self.layers, self.fixup.as_deref(), &self.path())
    }

    /// Lets members of group `gid` pass through the (otherwise owner-only) container
    /// directory to reach the rootfs: for a container in a user namespace, whose root is
    /// an unprivileged host id. Sets the directory's group to `gid` and its mode to 0710.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn grant_traverse(&self, gid: u32) -> Result<()> {
        std::os::unix::fs::chown(&self.dir, None, Some(gid)).map_err(Error::io("chown", &self.dir))?;
        fs::set_permissions(&self.dir, std::os::unix::fs::PermissionsExt::from_mode(0o710))
            .map_err(Error::io("chmod", &self.dir))
    }

    /// How it was assembled.
    pub fn mode(&self) -> MountMode {
        self.mode
    }

    /// Why overlay was not used, in copy mode.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The layers below, bottom to top.
    pub fn layers(&self) -> &[CachedLayer] {
        &self.layers
    }

    /// Unmounts and removes the container directory (the upper dir's changes are lost).
    ///
    /// # Errors
    /// [`Error::Mount`] or [`Error::Io`]; the directory is left for
    /// [`Rootfs::cleanup_stale`] then.
    pub fn close(mut self) -> Result<()> {
        self.teardown()
    }

    /// Keeps the rootfs (mounted, with its upper dir) after this handle is gone: for a
    /// container that outlives the process, or a stopped one kept until it is removed.
    /// [`Rootfs::cleanup_stale`] leaves it alone; [`Rootfs::attach`] gets a handle back.
    /// Returns the container directory.
    ///
    /// # Errors
    /// [`Error::Io`] recording it (the rootfs then stays owned by this process).
    pub fn persist(mut self) -> Result<PathBuf> {
        let owner = self.dir.join("owner");
        fs::write(&owner, "persistent\n").map_err(Error::io("write", &owner))?;
        self.active = false;
        Ok(self.dir.clone())
    }

    /// A handle on a rootfs made by [`Rootfs::create`] (possibly by another process, and
    /// [persisted](Rootfs::persist)): holds its layers again and, in overlay mode, mounts it
    /// again if it is not mounted (after a reboot). Dropping the handle unmounts and removes
    /// it, as for a new one, unless it is persisted again.
    ///
    /// # Ambient authority
    /// Reads `dir`; mounts on `dir/rootfs`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `dir` is not a rootfs directory or a layer left the cache;
    /// mount errors.
    pub fn attach(cache: &LayerCache, dir: impl AsRef<Path>) -> Result<Rootfs> {
        Rootfs::attach_with(cache, dir, std::sync::Arc::new(KernelMounter))
    }

    /// As [`Rootfs::attach`], with mounts made by `mounter`.
    ///
    /// # Errors
    /// As [`Rootfs::attach`].
    pub fn attach_with(
        cache: &LayerCache,
        dir: impl AsRef<Path>,
        mounter: std::sync::Arc<dyn Mounter>,
    ) -> Result<Rootfs> {
        let dir = dir.as_ref().to_path_buf();
        let list = dir.join("layers.json");
        let bytes = fs::read(&list).map_err(Error::io("read", &list))?;
        let ids: Vec<wharf_image::Digest> = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: "rootfs directory",
            reason: format!("{}: {e}", list.display()),
        })?;
        let mut holds = Vec::with_capacity(ids.len());
        let mut layers = Vec::with_capacity(ids.len());
        for d in ids {
            if !cache.contains(&d) {
                return Err(Error::Invalid {
                    what: "layer",
                    reason: format!("{d} is no longer in the layer cache"),
                });
            }
            holds.push(cache.hold(&d)?);
            layers.push(CachedLayer {
                path: cache.layer_path(&d),
                diff_id: d,
            });
        }
        let mode = if !dir.join("upper").is_dir() {
            MountMode::Copy
        } else if dir.join(IN_USERNS_MARK).exists() {
            MountMode::InUserNamespace
        } else {
            MountMode::Overlay
        };
        let fixup = if mode != MountMode::Copy {
            crate::fixup::ensure(cache, visible_layers(&layers))?
        } else {
            None
        };
        let rootfs = Rootfs {
            dir,
            mode,
            fixup,
            layers,
            fallback_reason: None,
            active: true,
            _holds: holds,
            mounter,
            view: None,
        };
        if mode == MountMode::Overlay && !is_mounted(&rootfs.path()) {
            let mut r = rootfs;
            if let Err(e) = r.try_overlay() {
                r.active = false; // not ours to delete: the caller decides
                return Err(e);
            }
            return Ok(r);
        }
        Ok(rootfs)
    }

    fn teardown(&mut self) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        let merged = self.path();
        if self.mode == MountMode::Overlay {
            self.mounter.unmount(&merged)?;
        }
        self.active = false;
        fsutil::remove_tree(&self.dir).map_err(Error::io("remove", &self.dir))
    }

    /// The layers used by the container filesystems under `base` (live or persisted),
    /// which the layer cache must keep.
    ///
    /// # Ambient authority
    /// Reads `base`.
    ///
    /// # Errors
    /// [`Error::Io`] reading `base`.
    pub fn layers_in_use(base: impl AsRef<Path>) -> Result<std::collections::HashSet<wharf_image::Digest>> {
        let base = base.as_ref();
        let mut out = std::collections::HashSet::new();
        let entries = match fs::read_dir(base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read", base)(e)),
        };
        for e in entries.flatten() {
            if let Ok(bytes) = fs::read(e.path().join("layers.json"))
                && let Ok(ids) = serde_json::from_slice::<Vec<wharf_image::Digest>>(&bytes)
            {
                out.extend(ids);
            }
        }
        Ok(out)
    }

    /// Finds container directories under `base` whose owning process is gone, unmounts
    /// their rootfs if still mounted, and removes them. Returns the directories removed.
    ///
    /// # Ambient authority
    /// Reads `base` and `/proc`; unmounts.
    ///
    /// # Errors
    /// [`Error::Io`] reading `base`; failures on single entries are skipped.
    pub fn cleanup_stale(base: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let base = base.as_ref();
        let mut removed = Vec::new();
        let entries = match fs::read_dir(base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(Error::io("read", base)(e)),
        };
        for e in entries.flatten() {
            let dir = e.path();
            let Ok(owner) = fs::read_to_string(dir.join("owner")) else {
                continue;
            };
            if owner.trim() == "persistent" {
                continue;
            }
            let mut it = owner.split_whitespace();
            let (Some(pid), Some(start)) = (
                it.next().and_then(|p| p.parse::<u32>().ok()),
                it.next().and_then(|s| s.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if start_time(pid).is_some_and(|t| t == start) {
                continue; // its process is alive
            }
            let merged = dir.join("rootfs");
            if is_mounted(&merged) && unmount(&merged).is_err() {
                continue;
            }
            if fsutil::remove_tree(&dir).is_ok() {
                removed.push(dir);
            }
        }
        Ok(removed)
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

// ---- copy fallback ----

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path)(e.into()))
}

/// The layers from the topmost one whose root is opaque (`/.wh..wh..opq`) upwards:
/// overlayfs does not consult the opaque mark on a layer's root, so the layers it hides are
/// left out instead.
fn visible_layers(layers: &[CachedLayer]) -> &[CachedLayer] {
    let opaque = |l: &CachedLayer| open_dir(&l.path).is_ok_and(|fd| is_opaque(fd.as_fd()));
    match layers.iter().rposition(opaque) {
        Some(i) => &layers[i..],
        None => layers,
    }
}

fn copy_layers(layers: &[CachedLayer], fixup: Option<&Path>, dest: &Path) -> Result<()> {
    let dst = open_dir(dest)?;
    let paths = visible_layers(layers).iter().map(|l| l.path.as_path()).chain(fixup);
    for (i, path) in paths.enumerate() {
        let src = open_dir(path)?;
        let mut links = std::collections::HashMap::new();
        merge_dir(src.as_fd(), dst.as_fd(), dst.as_fd(), &mut Vec::new(), &mut links)
            .map_err(|(p, e)| Error::io("copy layer", path.join(OsStr::from_bytes(&p)))(e.into()))?;
        // The layer root's own metadata (mode of /); the fix-up's root is not a layer's.
        if i < visible_layers(layers).len() {
            copy_meta(src.as_fd(), b".", dst.as_fd(), b".", &FileType::Directory)
                .map_err(|e| Error::io("copy layer", path)(e.into()))?;
        }
    }
    Ok(())
}

type CopyResult = std::result::Result<(), (Vec<u8>, Errno)>;

fn xattr_names(fd: BorrowedFd<'_>) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    match rustix::fs::flistxattr(fd, &mut buf) {
        Ok(n) => buf[..n]
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether the directory `fd` is marked opaque in overlayfs's format, in either namespace: `trusted.overlay.opaque`
/// (layers extracted, and overlays mounted, with privilege) or `user.overlay.opaque` (without: an overlay mounted
/// inside a user namespace with `userxattr`). A layer's tar cannot set either: extraction refuses both.
pub(crate) fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    [
        crate::apply::OVERLAY_OPAQUE_XATTR,
        crate::apply::USER_OVERLAY_OPAQUE_XATTR,
    ]
    .iter()
    .any(|x| get_xattr(fd, x.as_bytes()).as_deref() == Some(b"y"))
}

/// Whether `name` is one of overlayfs's own xattrs (`trusted.overlay.*`, or `user.overlay.*` with `userxattr`),
/// which say how a layer or upper dir is to be read and are never copied as a file's own.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

pub(crate) fn get_xattr(fd: BorrowedFd<'_>, name: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    rustix::fs::fgetxattr(fd, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Copies owner, mode, xattrs (not overlay's own) and times of `sname` in `src` onto
/// `dname` in `dst`.
pub(crate) fn copy_meta(
    src: BorrowedFd<'_>,
    sname: &[u8],
    dst: BorrowedFd<'_>,
    dname: &[u8],
    ft: &FileType,
) -> std::result::Result<(), Errno> {
    let st = rustix::fs::statat(src, sname, AtFlags::SYMLINK_NOFOLLOW)?;
    // Unprivileged, everything stays the caller's.
    if rustix::process::geteuid().is_root() {
        rustix::fs::chownat(
            dst,
            dname,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if *ft != FileType::Symlink {
        let (s, d) = if *ft == FileType::Directory || *ft == FileType::RegularFile {
            (
                Some(rustix::fs::openat(
                    src,
                    sname,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?),
                Some(rustix::fs::openat(
                    dst,
                    dname,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?),
            )
        } else {
            (None, None)
        };
        if let (Some(s), Some(d)) = (&s, &d) {
            rustix::fs::fchmod(d, Mode::from_raw_mode(st.st_mode & 0o7777))?;
            for name in xattr_names(s.as_fd()) {
                if is_overlay_xattr(&name) {
                    continue;
                }
                if let Some(v) = get_xattr(s.as_fd(), &name) {
                    let _ = rustix::fs::fsetxattr(d, name.as_slice(), &v, rustix::fs::XattrFlags::empty());
                }
            }
        } else {
            let p = rustix::fs::openat(
                dst,
                dname,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&p));
            rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))?;
        }
    }
    let t = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::utimensat(dst, dname, &t, AtFlags::SYMLINK_NOFOLLOW)
}

fn merge_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    dst_root: BorrowedFd<'_>,
    rel: &mut Vec<u8>,
    links: &mut std::collections::HashMap<(u64, u64), Vec<u8>>,
) -> CopyResult {
    let fail = |rel: &Vec<u8>, name: &[u8], e: Errno| {
        let mut p = rel.clone();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        (p, e)
    };
    let entries = fsutil::list(src).map_err(|e| (rel.clone(), e))?;
    for (name, _) in entries {
        let st = rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail(rel, &name, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            fsutil::remove_all_at(dst, &name).map_err(|e| fail(rel, &name, e))?;
            continue;
        }
        if ft == FileType::Directory {
            let s = fsutil::open_subdir(src, &name).map_err(|e| fail(rel, &name, e))?;
            let opaque = is_opaque(s.as_fd());
            match rustix::fs::statat(dst, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(d) if FileType::from_raw_mode(d.st_mode) == FileType::Directory && !opaque => {}
                Ok(_) => {
                    fsutil::remove_all_at(dst, &name).map_err(|e| fail(rel, &name, e))?;
                    rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700)).map_err(|e| fail(rel, &name, e))?;
                }
                Err(_) => {
                    rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700)).map_err(|e| fail(rel, &name, e))?;
                }
            }
            let d = fsutil::open_subdir(dst, &name).map_err(|e| fail(rel, &name, e))?;
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            merge_dir(s.as_fd(), d.as_fd(), dst_root, rel, links)?;
            rel.truncate(len);
            copy_meta(src, &name, dst, &name, &ft).map_err(|e| fail(rel, &name, e))?;
            continue;
        }
        fsutil::remove_all_at(dst, &name).map_err(|e| fail(rel, &name, e))?;
        let mut relpath = rel.clone();
        if !relpath.is_empty() {
            relpath.push(b'/');
        }
        relpath.extend_from_slice(&name);
        if st.st_nlink > 1 && ft != FileType::Directory {
            if let Some(first) = links.get(&(st.st_dev, st.st_ino)) {
                rustix::fs::linkat(dst_root, first.as_slice(), dst, &name, AtFlags::empty())
                    .map_err(|e| fail(rel, &name, e))?;
                continue;
            }
            links.insert((st.st_dev, st.st_ino), relpath.clone());
        }
        match ft {
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fail(rel, &name, e))?;
                let d = rustix::fs::openat(
                    dst,
                    &name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| fail(rel, &name, e))?;
                if rustix::fs::ioctl_ficlone(&d, &s).is_err() {
                    let mut left = st.st_size as u64;
                    while left > 0 {
                        let n = match rustix::fs::copy_file_range(&s, None, &d, None, left.min(1 << 30) as usize) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) => return Err(fail(rel, &name, e)),
                        };
                        left -= n as u64;
                    }
                }
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, &name, Vec::new()).map_err(|e| fail(rel, &name, e))?;
                rustix::fs::symlinkat(target.as_bytes(), dst, &name).map_err(|e| fail(rel, &name, e))?;
            }
            _ => {
                rustix::fs::mknodat(dst, &name, ft, Mode::from_raw_mode(0o600), st.st_rdev)
                    .map_err(|e| fail(rel, &name, e))?;
            }
        }
        copy_meta(src, &name, dst, &name, &ft).map_err(|e| fail(rel, &name, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records calls instead of mounting.
    #[derive(Debug, Default)]
    struct Recording {
        calls: Mutex<Vec<String>>,
        fail: bool,
    }

    impl Mounter for Recording {
        fn mount_overlay(&self, lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<()> {
            let name = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let lowers: Vec<String> = lowers
                .iter()
                .map(|l| l.parent().map(name).unwrap_or_default())
                .collect();
            self.calls.lock().unwrap().push(format!(
                "mount lowers={} upper={} work={} target={}",
                lowers.join(","),
                name(upper),
                name(work),
                name(target)
            ));
            if self.fail {
                return Err(Error::Mount {
                    op: "fsopen overlay".into(),
                    target: target.to_path_buf(),
                    source: std::io::Error::from_raw_os_error(19),
                });
            }
            Ok(())
        }

        fn unmount(&self, target: &Path) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unmount {}", target.file_name().unwrap().to_string_lossy()));
            Ok(())
        }
    }

    fn fake_cache(dir: &Path, n: usize) -> (LayerCache, Vec<CachedLayer>) {
        let cache = LayerCache::open(dir.join("cache")).unwrap();
        let mut layers = Vec::new();
        for i in 0..n {
            let d = wharf_image::Digest::sha256(format!("layer {i}").as_bytes());
            let path = cache.layer_path(&d);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join(format!("from-{i}")), b"").unwrap();
            std::fs::write(path.parent().unwrap().join("layer.json"), b"{}").unwrap();
            layers.push(CachedLayer { diff_id: d, path });
        }
        (cache, layers)
    }

    #[test]
    fn mounts_lowers_top_first_and_unmounts_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, layers) = fake_cache(tmp.path(), 3);
        let rec = Arc::new(Recording::default());
        let r = Rootfs::create_with(
            &cache,
            &layers,
            tmp.path().join("c"),
            &RootfsOptions::default(),
            rec.clone(),
        )
        .unwrap();
        assert_eq!(r.mode(), MountMode::Overlay);
        let hex = |i: usize| layers[i].diff_id.hex().to_string();
        drop(r);
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                format!(
                    "mount lowers={},{},{} upper=upper work=work target=rootfs",
                    hex(2),
                    hex(1),
                    hex(0)
                ),
                "unmount rootfs".to_string(),
            ]
        );
        assert!(!tmp.path().join("c").exists());
    }

    #[test]
    fn failed_mount_falls_back_to_a_copy_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, layers) = fake_cache(tmp.path(), 2);
        let rec = Arc::new(Recording {
            fail: true,
            ..Recording::default()
        });
        let r = Rootfs::create_with(
            &cache,
            &layers,
            tmp.path().join("c"),
            &RootfsOptions::default(),
            rec.clone(),
        )
        .unwrap();
        assert_eq!(r.mode(), MountMode::Copy);
        assert!(
            r.fallback_reason().unwrap().contains("fsopen overlay"),
            "{:?}",
            r.fallback_reason()
        );
        assert!(r.path().join("from-0").exists() && r.path().join("from-1").exists());
        assert!(r.upper().is_none());
        drop(r);
        // A copy is never unmounted.
        assert_eq!(rec.calls.lock().unwrap().len(), 1);
        // Forcing overlay reports the failure instead.
        let forced = RootfsOptions {
            mode: Some(MountMode::Overlay),
        };
        let err = Rootfs::create_with(&cache, &layers, tmp.path().join("d"), &forced, rec).unwrap_err();
        assert!(matches!(err, Error::Mount { .. }), "{err}");
        assert!(!tmp.path().join("d").exists());
    }
}

#[cfg(test)]
mod mountinfo_tests {
    use super::unescape;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/var/lib/a\040b"), b"/var/lib/a b");
        assert_eq!(unescape(r"/x\134y"), b"/x\\y");
        assert_eq!(unescape(r"/plain"), b"/plain");
        assert_eq!(unescape(r"/trailing\04"), b"/trailing\\04");
        assert_eq!(unescape("/\\abé"), "/\\abé".as_bytes());
    }
}

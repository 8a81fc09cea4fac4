//! A container's filesystem: commit, export, copy in and out (`docker cp`), and what changed (`docker diff`).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use serde::Serialize;
use wharf_image::Reference;
use wharf_image::store::Image;
use wharf_rootfs::{ApplyOptions, CommitOptions, MountMode, Rootfs};

use super::Engine;
use super::error::{Error, Result};

/// What happened to a path, as `docker diff` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    /// Added (`A`): not in the image.
    Added,
    /// Changed (`C`): in the image, and written to (or its metadata changed).
    Changed,
    /// Deleted (`D`): in the image, removed from the container.
    Deleted,
}

/// One changed path of a container's filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The absolute path inside the container.
    pub path: String,
}

/// What is at a path in a container (docker's `ContainerStatPath`, which `docker cp` asks before it copies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathStat {
    /// A directory (after following symlinks inside the container).
    pub is_dir: bool,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits and type, as `st_mode`.
    pub mode: u32,
}

/// Opens `path` beneath `root` with the container's view of symlinks (`RESOLVE_IN_ROOT`): they resolve inside
/// it, never out of it.
fn open_in_root(root: &Path, path: &str, flags: OFlags) -> Result<OwnedFd> {
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", root)(e.into()))?;
    let rel = path.trim_start_matches('/');
    rustix::fs::openat2(
        dir.as_fd(),
        if rel.is_empty() { "." } else { rel },
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| Error::io("open in the container", path)(e.into()))
}

impl Engine {
    /// A handle on container `name`'s filesystem for `f`, kept mounted afterwards. With `merged`, `f` reads or
    /// writes the merged view ([`Rootfs::merged_view`]): for a rootless container's overlay, which exists only in
    /// its mount namespace, that is its running process's root, and a stopped one is refused.
    fn with_rootfs<T>(&self, name: &str, merged: bool, f: impl FnOnce(&Rootfs) -> Result<T>) -> Result<T> {
        let record = self.records().get(name)?;
        let layout = self.layout();
        let mut rootfs = Rootfs::attach(&layout.layer_cache()?, layout.rootfs(record.rootfs_dir()))?;
        if merged && rootfs.mode() == MountMode::InUserNamespace {
            let running = layout
                .state_dir()?
                .load(name)
                .ok()
                .filter(|_| super::records::process_exists(layout, name));
            match running {
                Some(state) => rootfs.set_merged_view(format!("/proc/{}/root", state.pid).into()),
                None => {
                    rootfs.persist()?;
                    return Err(Error::NotMountedHere(name.to_string()));
                }
            }
        }
        let out = f(&rootfs);
        rootfs.persist()?;
        out
    }

    /// Container `name`'s changes as a new layer on top of its image, stored as image `target`
    /// (`docker commit`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; the store's and the filesystem's errors.
    pub fn commit(&self, name: &str, target: &Reference) -> Result<Image> {
        let base: Reference = self.records().get(name)?.image.parse()?;
        let image = self.image(&base)?;
        self.with_rootfs(name, false, |rootfs| {
            let opts = CommitOptions {
                created_by: format!("wharf commit {name}"),
                ..Default::default()
            };
            Ok(rootfs.commit(self.store(), &image, target, &opts)?)
        })
    }

    /// Container `name`'s whole filesystem as one tar written to `out` (`docker export`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; the filesystem's and `out`'s errors.
    pub fn export(&self, name: &str, out: impl Write) -> Result<()> {
        self.with_rootfs(name, true, |rootfs| {
            rootfs.export(out)?;
            Ok(())
        })
    }

    /// The file or directory at `path` in container `name` as a tar written to `out`
    /// (`docker cp NAME:PATH -`): one entry named by the last component of `path`, with everything beneath a
    /// directory. Symlinks in `path` resolve inside the container, never out of it. Works on running and
    /// stopped containers.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; the filesystem's error naming `path` when it does not exist.
    pub fn copy_out(&self, name: &str, path: &str, out: impl Write) -> Result<()> {
        self.with_rootfs(name, true, |rootfs| Ok(rootfs.export_path(path, out)?))
    }

    /// Unpacks the tar `archive` (plain, gzip or zstd) into directory `dest` of container `name`
    /// (`docker cp - NAME:DEST`). `dest` resolves inside the container; every entry is written beneath it
    /// through wharf-rootfs's layer reader, so no entry (`..`, a symlink in the archive or the container) can
    /// reach out of it. Entries are applied as a layer is: an entry replaces what is there, and whiteout
    /// entries (`.wh.NAME`) delete, where `docker cp` would copy them as files.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::Io`] when `dest` is not a directory; the layer reader's errors
    /// naming the refused entry.
    pub fn copy_in(&self, name: &str, dest: &str, archive: impl Read + Send) -> Result<()> {
        self.with_rootfs(name, true, |rootfs| {
            let dir = open_in_root(&rootfs.merged_view(), dest, OFlags::RDONLY | OFlags::DIRECTORY)?;
            wharf_rootfs::apply_layer(dir.as_fd(), archive, &ApplyOptions::default())?;
            Ok(())
        })
    }

    /// What is at `path` in container `name`, `None` when nothing is. Symlinks in `path`, the last one too,
    /// resolve inside the container, never out of it. Works on running and stopped containers.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::Io`] when `path` cannot be looked at for another reason than its
    /// absence (a component that is a file, a permission).
    pub fn stat_path(&self, name: &str, path: &str) -> Result<Option<PathStat>> {
        self.with_rootfs(name, true, |rootfs| {
            let fd = match open_in_root(&rootfs.merged_view(), path, OFlags::PATH) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                res => res?,
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat in the container", path)(e.into()))?;
            Ok(Some(PathStat {
                is_dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                size: st.st_size as u64,
                mode: st.st_mode,
            }))
        })
    }

    /// The bytes container `name` wrote: the sizes of the files in its overlay's upper directory (docker's
    /// `SizeRw`, what `docker ps -s` and `docker system df` show; each hard-linked file once), or of its whole
    /// tree where overlayfs was unavailable and the layers were copied. Read from the directories as they are:
    /// a stopped container's filesystem is not mounted for it.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; IO errors.
    pub fn size_rw(&self, name: &str) -> Result<u64> {
        let record = self.records().get(name)?;
        let dir = self.layout().rootfs(record.rootfs_dir());
        // As `Rootfs::attach` tells the modes apart: an overlay has an upper directory, a copy does not.
        let upper = dir.join("upper");
        let top = if upper.is_dir() { upper } else { dir.join("rootfs") };
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        let mut dirs = vec![top];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(Error::io("read", &dir))? {
                let entry = entry.map_err(Error::io("read", &dir))?;
                let meta = entry.metadata().map_err(Error::io("stat", entry.path()))?;
                if meta.is_dir() {
                    dirs.push(entry.path());
                } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
                    total += meta.len();
                }
            }
        }
        Ok(total)
    }

    /// What changed in container `name`'s filesystem against its image (`docker diff`), sorted by path.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NoOverlay`]; IO errors.
    pub fn diff(&self, name: &str) -> Result<Vec<Change>> {
        self.with_rootfs(name, false, |rootfs| {
            let Some(upper) = rootfs.upper() else {
                return Err(Error::NoOverlay(name.to_string()));
            };
            let lowers: Vec<OwnedFd> = rootfs
                .layers()
                .iter()
                .map(|l| {
                    rustix::fs::open(
                        &l.path,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| Error::io("open layer", &l.path)(e.into()))
                })
                .collect::<Result<_>>()?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let upper =
                rustix::fs::open(&upper, flags, Mode::empty()).map_err(|e| Error::io("open", &upper)(e.into()))?;
            let mut changes = Vec::new();
            changed_beneath(upper.as_fd(), "", &lowers, &mut changes)?;
            changes.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(changes)
        })
    }
}

/// Whether `rel` exists in one of the image's layers (looked up beneath each, never through a symlink out).
fn in_lower(lowers: &[OwnedFd], rel: &str) -> bool {
    lowers.iter().any(|l| {
        rustix::fs::openat2(
            l.as_fd(),
            rel,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        )
        .is_ok()
    })
}

/// The changes the overlay's upper directory `dir` (at `rel` in the container) holds: a whiteout (a 0/0
/// character device) is a deletion, anything else an addition or a change, by whether the image had it. Walked
/// by fd, never following a symlink: the container may change its upper directory meanwhile.
fn changed_beneath(dir: BorrowedFd<'_>, rel: &str, lowers: &[OwnedFd], out: &mut Vec<Change>) -> Result<()> {
    let os = |what: &'static str, path: &str| {
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        move |e: rustix::io::Errno| Error::io(what, path)(e.into())
    };
    let entries = rustix::fs::Dir::read_from(dir).map_err(os("read", rel))?;
    for entry in entries {
        let entry = entry.map_err(os("read", rel))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let path = format!("{rel}/{}", String::from_utf8_lossy(name));
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(os("stat", &path))?;
        let file_type = FileType::from_raw_mode(st.st_mode);
        let kind = if file_type == FileType::CharacterDevice && st.st_rdev == 0 {
            ChangeKind::Deleted
        } else if in_lower(lowers, path.trim_start_matches('/')) {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        if file_type == FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(os("open", &path))?;
            changed_beneath(sub.as_fd(), &path, lowers, out)?;
        }
        out.push(Change { kind, path });
    }
    Ok(())
}

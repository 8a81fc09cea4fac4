//! The layer cache: each layer extracted once, in overlay format, into a directory keyed by
//! its diff_id, shared by every image and container that uses it.
//!
//! Layout under the cache root:
//! ```text
//! layers/sha256/<hex>/fs          the layer's tree (overlay format: whiteouts are 0/0
//!                                 devices, opaque dirs carry trusted.overlay.opaque=y, or
//!                                 user.overlay.opaque=y when extracted without privilege)
//! layers/sha256/<hex>/layer.json  what extraction reported (sizes, entries, skipped)
//! layers/sha256/<hex>/implied-dirs  directories the layer implies (NUL-separated paths)
//! fixups/<hex>/fs                 per chain of layers: the implied directories' real
//!                                 metadata (see `Rootfs`); `fixups/<hex>/none` if none
//! locks/<hex>.lock                flock: exclusive while extracting or removing,
//!                                 shared while a mounted rootfs uses the layer
//! tmp/                            extractions in progress (removed on failure)
//! ```
//! An entry appears by renaming a complete temporary directory into place, so a reader
//! never sees a half-extracted layer, and two processes extracting the same layer serialise
//! on its lock file (the second finds the work done).
//!
//! `tmp/` carries the "top of a hierarchy" flag (`chattr +T`), so ext4 places each extraction
//! in a block group of its own choosing rather than beside the layers pruned last: on an ext4
//! without a journal, creating thousands of files where thousands were just freed made a
//! first run after `rmi` + `prune` 5–10× slower (the allocator skips, and rescans for every new
//! file, the inodes freed in the last minutes).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use wharf_image::media::{self, Compression};
use wharf_image::oci_spec::image::Descriptor;
use wharf_image::store::Image;
use wharf_image::{Digest, Store};

use crate::apply::{ApplyOptions, ImageBudget, LayerFormat, ProgressEvent, Skipped, extract_layer};
use crate::error::{Error, Result};
use crate::fsutil;

/// The file of a cache entry listing the directories its layer implies.
pub(crate) const IMPLIED_DIRS: &str = "implied-dirs";

/// A unique temporary sibling of `dest` (same directory, so a rename is atomic).
pub(crate) fn temp_sibling(dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".tmp-{name}-{}-{n}", std::process::id()))
}

/// A directory of extracted layers, keyed by diff_id.
#[derive(Debug, Clone)]
pub struct LayerCache {
    root: PathBuf,
}

/// A layer present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    /// The layer's diff_id (verified when it was extracted).
    pub diff_id: Digest,
    /// The layer's tree in overlay format: use it as an overlayfs lower directory.
    pub path: PathBuf,
}

/// What extraction recorded about a cache entry (`layer.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerInfo {
    /// The diff_id.
    pub diff_id: String,
    /// The blob it was extracted from.
    pub blob: String,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Tar entries.
    pub entries: u64,
    /// Entries or attributes not applied (`entry: reason`).
    pub skipped: Vec<String>,
}

/// A lock on a cache entry, released on drop.
#[derive(Debug)]
pub struct LayerLock {
    _file: File,
}

impl LayerCache {
    /// Opens (creating if needed) a layer cache at `root`.
    ///
    /// # Ambient authority
    /// Creates directories under `root` as given.
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be created.
    pub fn open(root: impl AsRef<Path>) -> Result<LayerCache> {
        let root = root.as_ref().to_path_buf();
        // Layers hold images' set-uid binaries and device nodes: keep other users out, from
        // the moment the directory exists. Concurrent openers all succeed: every step is
        // idempotent, and entries appear only by rename.
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        match std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(&root) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(Error::io("create", &root)(e)),
            _ => {}
        }
        fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(Error::io("chmod", &root))?;
        for sub in ["layers/sha256", "locks", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(Error::io("create", &p))?;
        }
        // Each extraction starts in tmp/: place it away from the layers removed last (see
        // `spread_new_trees`: an ext4 without a journal is slow to reuse recently freed inodes).
        let tmp = root.join("tmp");
        if let Ok(dir) = File::open(&tmp) {
            fsutil::spread_new_trees(dir.as_fd(), true);
        }
        let cache = LayerCache { root };
        cache.remove_stale_temps();
        Ok(cache)
    }

    /// Removes temporary directories left by processes that died mid-extraction (their
    /// names end in `-<pid>`).
    fn remove_stale_temps(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&tmp) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fsutil::remove_tree(&e.path());
            }
        }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.algorithm().as_str())
            .join(diff_id.hex())
    }

    /// The layer tree of a diff_id (present or not).
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.entry_dir(diff_id).join("fs")
    }

    /// Whether the layer is extracted.
    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.entry_dir(diff_id).join("layer.json").is_file()
    }

    /// What extraction recorded about a cached layer.
    ///
    /// # Errors
    /// [`Error::Io`] when the layer is not cached, [`Error::Invalid`] when its record is
    /// unreadable.
    pub fn info(&self, diff_id: &Digest) -> Result<LayerInfo> {
        let p = self.entry_dir(diff_id).join("layer.json");
        let bytes = fs::read(&p).map_err(Error::io("read", &p))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: "layer record",
            reason: format!("{}: {e}", p.display()),
        })
    }

    fn lock(&self, diff_id: &Digest, op: FlockOperation) -> Result<LayerLock> {
        let p = self.root.join("locks").join(format!("{}.lock", diff_id.hex()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(Error::io("open", &p))?;
        rustix::fs::flock(file.as_fd(), op).map_err(|e| Error::io("lock", &p)(e.into()))?;
        Ok(LayerLock { _file: file })
    }

    /// A shared hold on a cached layer: [`LayerCache::remove`] refuses to remove it while
    /// held. A mounted [`Rootfs`](crate::Rootfs) holds one for each of its layers.
    ///
    /// # Errors
    /// [`Error::Io`] on lock failures.
    pub fn hold(&self, diff_id: &Digest) -> Result<LayerLock> {
        self.lock(diff_id, FlockOperation::LockShared)
    }

    /// Makes sure the layer `descriptor` (with its `diff_id` from the image config) is
    /// extracted, reading the blob from `store`. The compression is taken from the media
    /// type (sniffed for unknown types); the uncompressed stream is verified against
    /// `diff_id`. Options other than format and diff_id come from `opts`.
    ///
    /// # Errors
    /// Store errors (blob missing), any [`apply_layer`](crate::apply_layer) error.
    pub fn ensure(
        &self,
        store: &Store,
        descriptor: &Descriptor,
        diff_id: &Digest,
        opts: &ApplyOptions,
    ) -> Result<CachedLayer> {
        let done = CachedLayer {
            diff_id: diff_id.clone(),
            path: self.layer_path(diff_id),
        };
        let Some(_lock) = self.lock_to_extract(diff_id)? else {
            opts.progress.emit(&ProgressEvent::Cached { diff_id });
            return Ok(done);
        };
        let blob_digest = Digest::from_oci(descriptor.digest()).map_err(wharf_image::Error::from)?;
        let blob = store.open_blob(&blob_digest)?;
        let compression = media::layer_compression(descriptor.media_type());
        let size = blob.metadata().map_or(0, |m| m.len());
        self.extract(
            &blob_digest,
            compression,
            diff_id,
            size,
            std::io::BufReader::with_capacity(1 << 20, blob),
            opts,
        )
    }

    /// As [`ensure`](Self::ensure), with the blob's bytes from `blob` rather than from a store:
    /// a pull extracts each layer while it downloads. `blob_digest` is only recorded (the
    /// caller verifies the bytes against it); the uncompressed stream is verified against
    /// `diff_id`, so a layer is published only with the content its diff_id names.
    ///
    /// Returns `None`, without reading `blob`, when the layer is already cached (by another
    /// process meanwhile too).
    ///
    /// # Errors
    /// As [`ensure`](Self::ensure); a layer with a hard link into a lower layer is
    /// [`Error::LinkOutsideLayer`] unless `opts.lower_layers` holds them.
    pub fn ensure_from_reader<R: std::io::Read + Send>(
        &self,
        blob_digest: &Digest,
        compression: Option<Compression>,
        diff_id: &Digest,
        blob: R,
        opts: &ApplyOptions,
    ) -> Result<Option<CachedLayer>> {
        let Some(_lock) = self.lock_to_extract(diff_id)? else {
            return Ok(None);
        };
        self.extract(blob_digest, compression, diff_id, 0, blob, opts).map(Some)
    }

    /// The exclusive lock for extracting `diff_id`, or `None` when it is cached: looked at
    /// again once the lock is held, since another process may have extracted it meanwhile.
    fn lock_to_extract(&self, diff_id: &Digest) -> Result<Option<LayerLock>> {
        if self.contains(diff_id) {
            return Ok(None);
        }
        let lock = self.lock(diff_id, FlockOperation::LockExclusive)?;
        Ok((!self.contains(diff_id)).then_some(lock))
    }

    /// Extracts a layer into the cache under its lock: into a temporary directory, renamed into
    /// place only when the whole layer is in and its diff_id verified.
    fn extract<R: std::io::Read + Send>(
        &self,
        blob_digest: &Digest,
        compression: Option<Compression>,
        diff_id: &Digest,
        compressed_size: u64,
        blob: R,
        opts: &ApplyOptions,
    ) -> Result<CachedLayer> {
        let done = CachedLayer {
            diff_id: diff_id.clone(),
            path: self.layer_path(diff_id),
        };
        opts.progress.emit(&ProgressEvent::Started {
            diff_id,
            compressed_size,
        });
        let opts = ApplyOptions {
            format: LayerFormat::Overlay,
            compression,
            diff_id: Some(diff_id.clone()),
            ..opts.clone()
        };
        let dest = self.entry_dir(diff_id);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{}", diff_id.hex(), std::process::id()));
        let _ = fsutil::remove_tree(&tmp);
        fsutil::create_private_dir(&tmp).map_err(Error::io("create", &tmp))?;
        let result = (|| {
            let report = extract_layer(&tmp.join("fs"), blob, &opts)?;
            let info = LayerInfo {
                diff_id: diff_id.to_string(),
                blob: blob_digest.to_string(),
                uncompressed_size: report.uncompressed_size,
                entries: report.entries,
                skipped: report
                    .skipped
                    .iter()
                    .map(|Skipped { entry, reason }| format!("{entry}: {reason}"))
                    .collect(),
            };
            let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Invalid {
                what: "layer record",
                reason: e.to_string(),
            })?;
            let p = tmp.join("layer.json");
            fs::write(&p, json).map_err(Error::io("write", &p))?;
            let p = tmp.join(IMPLIED_DIRS);
            fs::write(&p, report.implied_dirs.join(&0u8)).map_err(Error::io("write", &p))?;
            fs::rename(&tmp, &dest).map_err(Error::io("rename", &dest))?;
            opts.progress.emit(&ProgressEvent::Done {
                diff_id,
                report: &report,
            });
            Ok(())
        })();
        if result.is_err() {
            let _ = fsutil::remove_tree(&tmp);
        }
        result.map(|()| done)
    }

    /// Makes sure every layer of `image` is extracted, extracting missing ones in parallel
    /// (each layer goes into its own directory, so order does not matter), and returns them
    /// bottom to top. One [`ImageBudget`] covers the image.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the config's diff_ids do not match the manifest's layers; the
    /// first extraction error otherwise.
    pub fn ensure_image(&self, store: &Store, image: &Image, opts: &ApplyOptions) -> Result<Vec<CachedLayer>> {
        let (layers, diff_ids) = crate::apply::layers_and_diff_ids(image)?;
        let opts = ApplyOptions {
            image_budget: ImageBudget::new(),
            ..opts.clone()
        };
        let work: Vec<(usize, &Descriptor, &Digest)> = layers
            .iter()
            .zip(&diff_ids)
            .enumerate()
            .filter(|(_, (_, d))| {
                let cached = self.contains(d);
                if cached {
                    opts.progress.emit(&ProgressEvent::Cached { diff_id: d });
                }
                !cached
            })
            .map(|(i, (l, d))| (i, l, d))
            .collect();
        // Each extraction already uses two threads (decompress, write).
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .div_ceil(2)
            .max(2);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let errors = std::sync::Mutex::new(Vec::new());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..workers.min(work.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((idx, desc, diff_id)) = work.get(i) else { break };
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = self.ensure(store, desc, diff_id, &opts) {
                            // A link into a lower layer is retried below; anything else ends the work.
                            if !matches!(e, Error::LinkOutsideLayer { .. }) {
                                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            if let Ok(mut errs) = errors.lock() {
                                errs.push((*idx, e));
                            }
                        }
                    }
                });
            }
        });
        let mut errs = errors.into_inner().unwrap_or_default();
        errs.sort_by_key(|(i, e)| (matches!(e, Error::LinkOutsideLayer { .. }), *i));
        // Layers with hardlinks into lower layers need those extracted first: redo them in
        // order, bottom up, now that the others are done.
        for (idx, e) in errs {
            if !matches!(e, Error::LinkOutsideLayer { .. }) {
                return Err(e);
            }
            let lowers = diff_ids[..idx].iter().rev().map(|d| self.layer_path(d)).collect();
            let opts = ApplyOptions {
                lower_layers: lowers,
                ..opts.clone()
            };
            self.ensure(store, &layers[idx], &diff_ids[idx], &opts)?;
        }
        Ok(diff_ids
            .into_iter()
            .map(|d| CachedLayer {
                path: self.layer_path(&d),
                diff_id: d,
            })
            .collect())
    }

    /// The diff_ids of every cached layer.
    ///
    /// # Errors
    /// [`Error::Io`] reading the cache directory.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("layers/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(Error::io("read", &dir))? {
            let e = e.map_err(Error::io("read", &dir))?;
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>()
                && self.contains(&d)
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a cached layer. Returns false if it was not cached.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a rootfs holds the layer, IO errors otherwise.
    pub fn remove(&self, diff_id: &Digest) -> Result<bool> {
        let _lock = self
            .lock(diff_id, FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| Error::Invalid {
                what: "layer removal",
                reason: format!("layer {diff_id} is in use"),
            })?;
        let dir = self.entry_dir(diff_id);
        if !dir.exists() {
            return Ok(false);
        }
        // Disappear atomically first, then delete at leisure.
        let doomed = self
            .root
            .join("tmp")
            .join(format!("rm-{}-{}", diff_id.hex(), std::process::id()));
        fs::rename(&dir, &doomed).map_err(Error::io("rename", &dir))?;
        fsutil::remove_tree(&doomed).map_err(Error::io("remove", &doomed))?;
        Ok(true)
    }

    /// Removes every cached layer that no image in `store` uses (for the store's platform)
    /// and that no rootfs holds. Returns the removed diff_ids.
    ///
    /// # Errors
    /// Store and IO errors.
    pub fn prune(&self, store: &Store) -> Result<Vec<Digest>> {
        self.prune_keeping(store, &HashSet::new())
    }

    /// As [`LayerCache::prune`], also keeping `keep` (for example the layers of persisted
    /// container filesystems, from [`Rootfs::layers_in_use`](crate::Rootfs::layers_in_use)).
    ///
    /// # Errors
    /// Store and IO errors.
    pub fn prune_keeping(&self, store: &Store, keep: &HashSet<Digest>) -> Result<Vec<Digest>> {
        let mut needed = keep.clone();
        let platform = wharf_image::Platform::host();
        for summary in store.list()? {
            if let Ok(image) = store.image(&summary.reference, &platform)
                && let Ok(ids) = image.config.diff_ids()
            {
                needed.extend(ids);
            }
        }
        let mut removed = Vec::new();
        for d in self.list()? {
            if !needed.contains(&d) && matches!(self.remove(&d), Ok(true)) {
                removed.push(d);
            }
        }
        Ok(removed)
    }
}

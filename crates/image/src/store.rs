//! The local image store: an OCI image layout on disk.
//!
//! ```text
//! ROOT/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! ROOT/index.json            named images: descriptors annotated with org.opencontainers.image.ref.name
//! ROOT/blobs/sha256/<hex>    content-addressed blobs
//! ROOT/.wharf/tmp/           blobs being written (never visible under blobs/ until verified)
//! ROOT/.wharf/partial/       downloads in progress, resumable by the next process (see `PartialBlob`)
//! ROOT/.wharf/*.lock         file locks shared by every process using the store
//! ```
//!
//! `oci-layout` is written last when a store is created, under `.wharf/init.lock`, so any
//! number of processes may create the same new store at once (see the `layout` module).
//!
//! Design choices:
//! - A blob becomes visible only by `rename` after its digest and size were verified and the file
//!   was fsynced, so a crash or a bad download never leaves a wrong blob under its digest.
//! - `index.json` is rewritten whole (temp file, fsync, rename) under an exclusive lock, so two
//!   processes tagging at once both keep their tags.
//! - Garbage collection takes an exclusive lock that every writer holds shared (a [`Lease`]) while
//!   it writes blobs that nothing references yet, so a pull in progress is never collected.
//! - Names are stored as the full normalised reference (`docker.io/library/nginx:latest`) in the
//!   `org.opencontainers.image.ref.name` annotation.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};
use crate::media::{self, Kind};
use crate::{Algorithm, Digest, DigestError, ImageConfig, Manifest, Platform, Reference, VerifyingWriter};

mod layout;
mod partial;

pub use partial::{PARTIAL_MAX_AGE, PartialBlob};

/// The annotation naming an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for the full image name (read on import, written on export).
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Upper bound for documents (manifests, configs, index.json) read whole into memory.
pub const MAX_DOCUMENT_SIZE: u64 = 16 * 1024 * 1024;

const LAYOUT_VERSION: &str = "1.0.0";

/// A content-addressed image store in OCI image layout. Cheap to clone; safe to share
/// between threads and processes.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A resolved single-platform image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it was resolved from.
    pub reference: Reference,
    /// The descriptor of the image manifest (for a multi-platform image: the chosen entry).
    pub manifest_descriptor: Descriptor,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// Digest of the config blob: the image id.
    pub config_digest: Digest,
    /// The image config.
    pub config: ImageConfig,
}

impl Image {
    /// The image id (`docker images` shows its first 12 hex digits).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }
}

/// One row of [`Store::list`], like a line of `docker images`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSummary {
    /// The full reference it is stored under.
    pub reference: Reference,
    /// Digest of the manifest (or index) the name points to.
    pub manifest_digest: Digest,
    /// The image id: digest of the config of the manifest for the store's platform, if present.
    pub id: Option<Digest>,
    /// The config's creation time (RFC 3339), if recorded.
    pub created: Option<String>,
    /// Bytes on disk of every blob of the image that is present (manifests, config, layers).
    pub size: u64,
}

/// What [`Store::gc`] freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Each removed blob and its size.
    pub removed: Vec<(Digest, u64)>,
    /// Total bytes freed (blobs and stale temporary files).
    pub bytes: u64,
}

/// A shared hold on the store that keeps [`Store::gc`] waiting: take one before writing
/// blobs that will only become reachable once a manifest is tagged. Released on drop.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

/// An incoming blob: written to a temporary file while its digest and size are checked,
/// and moved under `blobs/` by [`BlobWriter::commit`] only when they match. Dropping it
/// uncommitted removes the temporary file.
pub struct BlobWriter {
    writer: Option<VerifyingWriter<BufWriter<File>>>,
    temp: PathBuf,
    store: Store,
    _lease: Lease,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").field("temp", &self.temp).finish()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.bytes_written())
    }

    /// Verifies, fsyncs and moves the blob into place; returns its digest and size.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when digest or size do not match (nothing is stored), or an IO error.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let Some(writer) = self.writer.take() else {
            return Err(Error::Invalid {
                what: "blob writer",
                reason: "already finished".into(),
            });
        };
        let (buf, digest, size) = match writer.finish() {
            Ok(v) => v,
            Err(e) => return Err(self.verification_error(e)),
        };
        let file = buf
            .into_inner()
            .map_err(|e| Error::io("write", &self.temp)(e.into_error()))?;
        file.sync_all().map_err(Error::io("fsync", &self.temp))?;
        drop(file);
        let dest = self.store.blob_path(&digest);
        if !dest.exists() {
            let dir = dest.parent().unwrap_or(&self.store.root).to_path_buf();
            fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            fs::rename(&self.temp, &dest).map_err(Error::io("rename", &dest))?;
            sync_dir(&dir)?;
        }
        Ok((digest, size))
    }

    fn verification_error(&self, e: io::Error) -> Error {
        // The digest the content was expected to have is named by the failure itself.
        let expected = match DigestError::from_io(&e) {
            Some(DigestError::Mismatch { expected, .. }) => expected.clone(),
            Some(DigestError::SizeMismatch { digest, .. }) => digest.clone(),
            _ => Digest::sha256(b""),
        };
        Error::verification(e, &expected, "write", &self.temp)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Uncommitted (or already renamed, in which case this fails harmlessly).
        let _ = fs::remove_file(&self.temp);
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("fsync", dir))
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{}", temp_name("tmp")));
    let res = (|| {
        let mut f = File::create(&temp).map_err(Error::io("create", &temp))?;
        f.write_all(bytes).map_err(Error::io("write", &temp))?;
        f.sync_all().map_err(Error::io("fsync", &temp))?;
        fs::rename(&temp, path).map_err(Error::io("rename", path))?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&temp);
    }
    res
}

fn lock(path: &Path, exclusive: bool) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    let op = if exclusive {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::LockShared
    };
    rustix::fs::flock(f.as_fd(), op).map_err(|e| Error::io("lock", path)(e.into()))?;
    Ok(f)
}

fn empty_index() -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(Vec::new());
    index
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

impl Store {
    /// Opens the store at `root`, creating an empty OCI layout if the directory is missing or empty.
    /// Any number of processes may do this at once, on the same new directory too: creation
    /// is serialised by a lock, and a layout another process is still making is waited for,
    /// never taken for a foreign directory. A missing `root` (and any missing parent) is created
    /// with mode 0700: the store is its owner's alone, like Docker's `/var/lib/docker`.
    ///
    /// # Errors
    /// [`Error::NotALayout`] when `root` holds something that is not an OCI image layout
    /// (nothing is changed in it), or an IO error.
    ///
    /// # Ambient authority
    /// Opens `root` as given, relative to the current directory if relative.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        let store = Store { root: root.clone() };
        layout::open_or_create(&store)?;
        let wharf = root.join(".wharf");
        fs::create_dir_all(wharf.join("tmp")).map_err(Error::io("create", &wharf))?;
        for name in ["gc.lock", "index.lock"] {
            let path = wharf.join(name);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::io("create", &path))?;
        }
        Ok(store)
    }

    /// Opens the default store: `$WHARF_ROOT`, else `/var/lib/wharf` for root, else
    /// `$XDG_DATA_HOME/wharf` (`~/.local/share/wharf`).
    ///
    /// # Errors
    /// As [`Store::open`]; [`Error::Invalid`] when no location can be determined.
    ///
    /// # Ambient authority
    /// Reads the environment and the user's home directory.
    pub fn open_default() -> Result<Store> {
        Store::open(Store::default_root()?)
    }

    /// Where [`Store::open_default`] puts the store.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a non-root user with neither `$XDG_DATA_HOME` nor `$HOME`.
    pub fn default_root() -> Result<PathBuf> {
        if let Some(r) = std::env::var_os("WHARF_ROOT").filter(|r| !r.is_empty()) {
            return Ok(PathBuf::from(r));
        }
        if rustix::process::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/wharf"));
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|r| !r.is_empty()) {
            return Ok(PathBuf::from(x).join("wharf"));
        }
        match std::env::var_os("HOME").filter(|r| !r.is_empty()) {
            Some(h) => Ok(PathBuf::from(h).join(".local/share/wharf")),
            None => Err(Error::Invalid {
                what: "store location",
                reason: "set WHARF_ROOT, XDG_DATA_HOME or HOME".into(),
            }),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(d.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Size of a present blob.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`].
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(d.clone())),
            Err(e) => Err(Error::io("stat", self.blob_path(d))(e)),
        }
    }

    /// Opens a blob for reading. The content is not re-verified: wrap it in a
    /// [`VerifyingReader`](crate::VerifyingReader) where that matters.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`].
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobNotFound(d.clone()),
            _ => Error::io("open", &path)(e),
        })
    }

    /// Reads a small blob whole, verifying its digest.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`]; [`Error::Invalid`] if larger than `max`; [`Error::Corrupt`]
    /// if the stored bytes do not hash to `d`.
    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let mut f = self.open_blob(d)?;
        let path = self.blob_path(d);
        let len = f.metadata().map_err(Error::io("stat", &path))?.len();
        if len > max {
            return Err(Error::Invalid {
                what: "blob size",
                reason: format!("{d} is {len} bytes, more than the {max} allowed here"),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        f.read_to_end(&mut bytes).map_err(Error::io("read", &path))?;
        let actual = Digest::of(d.algorithm(), &bytes);
        if &actual != d {
            return Err(Error::Corrupt {
                digest: d.clone(),
                source: DigestError::Mismatch {
                    expected: d.clone(),
                    actual,
                },
            });
        }
        Ok(bytes)
    }

    /// Takes a [`Lease`]: [`Store::gc`] waits until it is dropped. Do not call `gc` from a
    /// thread of the same process while holding one.
    ///
    /// # Errors
    /// IO errors on the lock file.
    pub fn lease(&self) -> Result<Lease> {
        Ok(Lease {
            _file: lock(&self.root.join(".wharf").join("gc.lock"), false)?,
        })
    }

    /// Starts writing a blob. With `expected`, the content must hash to it (its algorithm is
    /// used); without, sha256 is computed. With `expected_size`, the length must match and
    /// writing more fails at once.
    ///
    /// # Errors
    /// IO errors creating the temporary file.
    pub fn blob_writer(&self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<BlobWriter> {
        let lease = self.lease()?;
        let temp = self.root.join(".wharf").join("tmp").join(temp_name("blob"));
        let file = File::create(&temp).map_err(Error::io("create", &temp))?;
        Ok(BlobWriter {
            writer: Some(VerifyingWriter::new(
                BufWriter::with_capacity(256 * 1024, file),
                Algorithm::Sha256,
                expected.cloned(),
                expected_size,
            )),
            temp,
            store: self.clone(),
            _lease: lease,
        })
    }

    /// Streams a blob into the store (see [`Store::blob_writer`]); a blob already present is
    /// not written again when its digest is known up front.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on digest or size mismatch (nothing is stored); IO errors.
    pub fn put_blob(
        &self,
        mut r: impl Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        if let Some(d) = expected
            && let Ok(size) = self.blob_size(d)
            && expected_size.is_none_or(|s| s == size)
        {
            return Ok((d.clone(), size));
        }
        let mut w = self.blob_writer(expected, expected_size)?;
        if let Err(e) = io::copy(&mut r, &mut w) {
            return Err(w.verification_error(e));
        }
        w.commit()
    }

    /// A fresh path for a temporary file or directory inside the store (same filesystem as
    /// `blobs/`, cleaned by [`Store::gc`] when left over).
    pub(crate) fn temp_path(&self, prefix: &str) -> PathBuf {
        self.root.join(".wharf").join("tmp").join(temp_name(prefix))
    }

    /// Moves a file whose content was already verified to hash to `digest` under `blobs/`.
    /// The caller must hold a [`Lease`].
    pub(crate) fn adopt(&self, file: &Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            return Ok(());
        }
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("fsync", file))?;
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        fs::rename(file, &dest).map_err(Error::io("rename", &dest))?;
        sync_dir(&dir)
    }

    /// Stores bytes as a sha256 blob.
    ///
    /// # Errors
    /// IO errors.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::sha256(bytes);
        self.put_blob(bytes, Some(&d), Some(bytes.len() as u64)).map(|(d, _)| d)
    }

    /// Parses and stores a manifest or index after checking that the blobs it references
    /// are present (for an index, missing child manifests are allowed: a pull fetches one
    /// platform). Returns its descriptor and the parsed manifest.
    ///
    /// # Errors
    /// [`Error::Manifest`] if it does not parse; [`Error::BlobNotFound`] for a missing config
    /// or layer (nothing is stored then).
    pub fn put_manifest(&self, bytes: &[u8], media_type: Option<&str>) -> Result<(Descriptor, Manifest)> {
        let manifest = Manifest::parse(bytes, media_type)?;
        if let Manifest::Image { manifest: m, .. } = &manifest {
            for d in std::iter::once(m.config()).chain(m.layers()) {
                let digest = Digest::from_oci(d.digest())?;
                if !self.has_blob(&digest) {
                    return Err(Error::BlobNotFound(digest));
                }
            }
        }
        let digest = self.put_bytes(bytes)?;
        let desc = Descriptor::new(manifest.media_type().clone(), bytes.len() as u64, digest.to_oci());
        Ok((desc, manifest))
    }

    /// Stores a new single-platform image: its config bytes (an OCI config) and an OCI manifest
    /// over `layers`, whose blobs must already be stored. Name it with [`Store::tag`].
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] for a missing layer; IO errors.
    pub fn put_image(&self, config: &[u8], layers: &[Descriptor]) -> Result<(Descriptor, Manifest)> {
        let config_digest = self.put_bytes(config)?;
        let config = Descriptor::new(MediaType::ImageConfig, config.len() as u64, config_digest.to_oci());
        let manifest = crate::manifest::oci_image(&config, layers).map_err(|source| Error::Json {
            what: "manifest".into(),
            source,
        })?;
        self.put_manifest(&manifest, Some(MediaType::ImageManifest.as_ref()))
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("{}", path.display()),
            source,
        })
    }

    fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        let _guard = lock(&self.root.join(".wharf").join("index.lock"), true)?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let out = f(&mut manifests)?;
        index.set_manifests(manifests);
        let bytes = serde_json::to_vec_pretty(&index).map_err(|source| Error::Json {
            what: "index.json".into(),
            source,
        })?;
        write_atomic(&self.root.join("index.json"), &bytes)?;
        Ok(out)
    }

    /// Names a manifest (or index) already in the store, replacing what the name pointed to.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] if the manifest is not stored; [`Error::Invalid`] for a
    /// reference that carries a digest (a digest is not a name); IO errors.
    pub fn tag(&self, r: &Reference, manifest: &Descriptor) -> Result<()> {
        if r.digest().is_some() || r.tag().is_none() {
            return Err(Error::Invalid {
                what: "tag",
                reason: format!("{r} is not a tag reference"),
            });
        }
        let digest = Digest::from_oci(manifest.digest())?;
        if !self.has_blob(&digest) {
            return Err(Error::BlobNotFound(digest));
        }
        let name = r.to_string();
        let mut entry = manifest.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.clone());
        entry.set_annotations(Some(annotations));
        self.update_index(|manifests| {
            manifests.retain(|d| ref_name(d) != Some(name.as_str()));
            manifests.push(entry);
            Ok(())
        })
    }

    /// The descriptor a reference points to: by digest when it has one (the blob must be a
    /// stored manifest), else by name.
    ///
    /// # Errors
    /// [`Error::ImageNotFound`].
    pub fn resolve(&self, r: &Reference) -> Result<Descriptor> {
        let index = self.read_index()?;
        if let Some(d) = r.digest() {
            if let Some(found) = index
                .manifests()
                .iter()
                .find(|e| Digest::from_oci(e.digest()).ok().as_ref() == Some(d))
            {
                return Ok(found.clone());
            }
            if self.has_blob(d) {
                let bytes = self.read_blob(d, MAX_DOCUMENT_SIZE)?;
                let m = Manifest::parse(&bytes, None)?;
                return Ok(Descriptor::new(m.media_type().clone(), bytes.len() as u64, d.to_oci()));
            }
            return Err(Error::ImageNotFound(r.to_string()));
        }
        let name = r.to_string();
        index
            .manifests()
            .iter()
            .find(|e| ref_name(e) == Some(name.as_str()))
            .cloned()
            .ok_or(Error::ImageNotFound(name))
    }

    /// Reads and parses a stored manifest or index.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`], [`Error::Corrupt`], [`Error::Manifest`].
    pub fn manifest(&self, d: &Descriptor) -> Result<Manifest> {
        let digest = Digest::from_oci(d.digest())?;
        let bytes = self.read_blob(&digest, MAX_DOCUMENT_SIZE)?;
        Ok(Manifest::parse(&bytes, Some(d.media_type().as_ref()))?)
    }

    /// Resolves a reference to a single-platform image: through an index (choosing
    /// `platform`) to the manifest and its config.
    ///
    /// # Errors
    /// [`Error::ImageNotFound`] (also when an index has no entry for the platform, or the
    /// entry's manifest was not pulled), and the errors of reading documents.
    pub fn image(&self, r: &Reference, platform: &Platform) -> Result<Image> {
        let mut desc = self.resolve(r)?;
        for _ in 0..4 {
            match self.manifest(&desc)? {
                Manifest::Index { index, .. } => {
                    let chosen = crate::platform::choose(index.manifests(), platform)
                        .ok_or_else(|| Error::ImageNotFound(format!("{r} for platform {platform}")))?;
                    if !self.has_blob(&Digest::from_oci(chosen.digest())?) {
                        return Err(Error::ImageNotFound(format!(
                            "{r} for platform {platform} (not pulled)"
                        )));
                    }
                    desc = chosen.clone();
                }
                Manifest::Image { manifest, .. } => {
                    let config_digest = Digest::from_oci(manifest.config().digest())?;
                    let config = ImageConfig::parse(&self.read_blob(&config_digest, MAX_DOCUMENT_SIZE)?)?;
                    return Ok(Image {
                        reference: r.clone(),
                        manifest_descriptor: desc,
                        manifest,
                        config_digest,
                        config,
                    });
                }
            }
        }
        Err(Error::Invalid {
            what: "index",
            reason: format!("{r}: indexes nested too deeply"),
        })
    }

    /// Every named image, like `docker images`. Sizes count the blobs present on disk.
    ///
    /// # Errors
    /// IO errors reading `index.json`.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let index = self.read_index()?;
        let platform = Platform::host();
        let mut out = Vec::new();
        for entry in index.manifests() {
            let Some(name) = ref_name(entry) else { continue };
            let Ok(reference) = name.parse::<Reference>() else {
                continue;
            };
            let Ok(manifest_digest) = Digest::from_oci(entry.digest()) else {
                continue;
            };
            let mut blobs = BTreeSet::new();
            self.reachable(entry, &mut blobs);
            let size = blobs.iter().filter_map(|d| self.blob_size(d).ok()).sum();
            let image = self.image(&reference, &platform).ok();
            out.push(ImageSummary {
                reference,
                manifest_digest,
                id: image.as_ref().map(|i| i.config_digest.clone()),
                created: image.as_ref().and_then(|i| i.config.created().map(str::to_string)),
                size,
            });
        }
        Ok(out)
    }

    /// Collects every present blob reachable from `d` (damaged documents end the walk there).
    fn reachable(&self, d: &Descriptor, out: &mut BTreeSet<Digest>) {
        let Ok(digest) = Digest::from_oci(d.digest()) else {
            return;
        };
        if !out.insert(digest.clone()) {
            return;
        }
        if matches!(media::kind(d.media_type()), Kind::Manifest | Kind::Index)
            && let Ok(m) = self.manifest(d)
        {
            for child in m.descriptors() {
                self.reachable(child, out);
            }
        }
    }

    /// Removes a name; returns what it pointed to. Blobs stay until [`Store::gc`].
    ///
    /// # Errors
    /// [`Error::ImageNotFound`].
    pub fn untag(&self, r: &Reference) -> Result<Descriptor> {
        let name = r.to_string();
        self.update_index(|manifests| {
            let pos = manifests
                .iter()
                .position(|d| ref_name(d) == Some(name.as_str()))
                .ok_or_else(|| Error::ImageNotFound(name.clone()))?;
            Ok(manifests.remove(pos))
        })
    }

    /// Removes a name and collects the blobs no other name needs (like `docker rmi`).
    ///
    /// # Errors
    /// As [`Store::untag`] and [`Store::gc`].
    pub fn remove(&self, r: &Reference) -> Result<GcReport> {
        self.untag(r)?;
        self.gc()
    }

    /// Deletes every blob not reachable from `index.json`, stale temporary files and partial
    /// downloads ([`PartialBlob`]) that no process holds.
    /// Waits for every [`Lease`] to be released first.
    ///
    /// # Errors
    /// IO errors; a damaged `index.json` (then nothing is deleted).
    pub fn gc(&self) -> Result<GcReport> {
        let _gc = lock(&self.root.join(".wharf").join("gc.lock"), true)?;
        let _index = lock(&self.root.join(".wharf").join("index.lock"), true)?;
        let index = self.read_index()?;
        let mut keep = BTreeSet::new();
        for entry in index.manifests() {
            self.reachable(entry, &mut keep);
        }
        let mut report = GcReport::default();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(Error::io("read", &dir))?;
                let name = entry.file_name();
                let Some(digest) = name
                    .to_str()
                    .and_then(|n| format!("{}:{n}", alg.as_str()).parse::<Digest>().ok())
                else {
                    continue; // not a blob name: leave foreign files alone
                };
                if keep.contains(&digest) {
                    continue;
                }
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(Error::io("remove", entry.path()))?;
                report.bytes += size;
                report.removed.push((digest, size));
            }
        }
        // No lease is held, so every temporary file is left over from a crashed writer.
        let tmp = self.root.join(".wharf").join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if fs::remove_file(entry.path()).is_ok() {
                    report.bytes += size;
                }
            }
        }
        // Partial downloads: no lease is held, so no download is in progress either.
        report.bytes += self.sweep_partials(std::time::Duration::ZERO);
        report.removed.sort();
        Ok(report)
    }

    /// The names in the store and what they point to.
    ///
    /// # Errors
    /// IO errors reading `index.json`.
    pub fn names(&self) -> Result<HashMap<String, Descriptor>> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(|n| (n.to_string(), d.clone())))
            .collect())
    }
}

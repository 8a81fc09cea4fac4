//! Applying one layer (a tar stream, possibly compressed) onto a directory.
//!
//! Every change is made with an `*at` call relative to a directory fd. An entry's parent
//! directory is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)` from the root's fd, and the last component is then created, replaced or
//! removed relative to that parent fd with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW` semantics, so
//! neither a symlink in the layer nor a concurrent swap of a path component can redirect a
//! write outside the root. Symlinks in a parent path are followed only while they stay
//! beneath the root (cap-std's rule): an absolute symlink or one climbing out is an
//! [`Error::Escape`] naming the entry.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use wharf_image::Digest;
use wharf_image::media::Compression;

use crate::error::{Error, Limit, Result};
use crate::fsutil;
use crate::shadow::Shadow;
use crate::stream::{self, StreamLimits};
use wharf_tar::{Entry, EntryKind, ReaderLimits, TarReader};

pub use wharf_tar::{OPAQUE_MARKER, WHITEOUT_PREFIX};
/// The xattr that marks an opaque directory in an overlay-format layer extracted with privilege.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The xattr that marks an opaque directory in an overlay-format layer extracted without privilege (`trusted.*`
/// needs `CAP_SYS_ADMIN`): what an overlay mounted inside a user namespace with `userxattr` reads.
pub const USER_OVERLAY_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// How a layer's whiteouts are represented on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerFormat {
    /// Apply onto a directory holding the layers below: whiteouts delete what they name,
    /// opaque markers empty their directory of what lower layers put there.
    Flatten,
    /// Extract the layer alone into its own directory in overlayfs format: a whiteout
    /// becomes a 0/0 character device, an opaque directory gets
    /// `trusted.overlay.opaque=y` ([`USER_OVERLAY_OPAQUE_XATTR`] when unprivileged, for an overlay mounted in a
    /// user namespace with `userxattr`; unprivileged whiteout devices need Linux 5.8).
    Overlay,
}

/// Budgets that bound what a hostile layer can make wharf do. Each has a generous default
/// for real images; exceeding one is an [`Error::LimitExceeded`] naming it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Uncompressed bytes of one layer. Default: 64 GiB.
    pub max_layer_bytes: u64,
    /// Uncompressed bytes of all layers of an image (shared through
    /// [`ApplyOptions::image_budget`]). Default: 128 GiB.
    pub max_image_bytes: u64,
    /// Entries in one layer. Default: 1 million (the applier remembers every path of the
    /// layer, so this also bounds its memory).
    pub max_entries: u64,
    /// Uncompressed / compressed size, judged once more than 1 MiB was read. Default: 1200
    /// (gzip's best case is about 1030:1; zstd's is far higher, which is what bombs use).
    pub max_compression_ratio: u64,
    /// Components in an entry's path. Default: 256.
    pub max_path_depth: usize,
    /// Total bytes of one entry's xattr names and values. Default: 256 KiB.
    pub max_xattr_bytes: u64,
    /// Size of one PAX or GNU long-name record. Default: 1 MiB.
    pub max_metadata_bytes: u64,
    /// Decompressed bytes one layer's extraction may hold queued between its decompressing,
    /// hashing and writing threads, rounded to 512 KiB chunks (at least one). Default: 12 MiB,
    /// which keeps the decompressor busy while the writer creates a run of small files; a
    /// caller extracting several layers at once divides its memory budget between them.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 64 << 30,
            max_image_bytes: 128 << 30,
            max_entries: 1_000_000,
            max_compression_ratio: 1200,
            max_path_depth: 256,
            max_xattr_bytes: 256 << 10,
            max_metadata_bytes: 1 << 20,
            max_queued_bytes: crate::stream::QUEUE * crate::stream::CHUNK,
        }
    }
}

/// One contiguous range of an id mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id as seen in the layer (inside the container).
    pub container: u64,
    /// First id on the host.
    pub host: u64,
    /// Number of ids.
    pub size: u64,
}

/// Maps the uids and gids of a layer to host ids (for user-namespaced containers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    /// uid ranges.
    pub uids: Vec<IdRange>,
    /// gid ranges.
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// Maps ids `0..size` of both kinds to `host..host+size`.
    pub fn shift(host: u64, size: u64) -> IdMap {
        let r = IdRange {
            container: 0,
            host,
            size,
        };
        IdMap {
            uids: vec![r],
            gids: vec![r],
        }
    }

    fn map(ranges: &[IdRange], id: u64) -> Option<u64> {
        ranges
            .iter()
            .find(|r| id >= r.container && id - r.container < r.size)
            .map(|r| r.host + (id - r.container))
    }
}

/// Whose files these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Keep the layer's uid/gid (needs privilege unless they are the caller's own).
    Preserve,
    /// Map the layer's ids through an [`IdMap`]; an unmapped id is an error.
    Map(IdMap),
    /// Leave everything owned by the caller.
    Ignore,
}

/// Shared count of unpacked bytes across the layers of one image, for
/// [`Limits::max_image_bytes`]. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct ImageBudget(pub(crate) Arc<AtomicU64>);

impl ImageBudget {
    /// A fresh budget with nothing used.
    pub fn new() -> ImageBudget {
        ImageBudget::default()
    }
}

/// Something worth telling a user while layers are read: emitted to a [`Progress`]
/// callback (the caller renders it, e.g. as progress bars).
#[derive(Debug)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// The layer is already in the cache: nothing to do.
    Cached {
        /// The layer.
        diff_id: &'a Digest,
    },
    /// Extraction of a layer starts.
    Started {
        /// The layer.
        diff_id: &'a Digest,
        /// Size of its blob.
        compressed_size: u64,
    },
    /// Bytes of the blob read so far (emitted about every 512 KiB of uncompressed data).
    Read {
        /// The layer, when known (from [`ApplyOptions::diff_id`]).
        diff_id: Option<&'a Digest>,
        /// Blob bytes read.
        compressed_read: u64,
        /// Uncompressed bytes produced.
        uncompressed: u64,
    },
    /// The layer is extracted.
    Done {
        /// The layer.
        diff_id: &'a Digest,
        /// What extraction reported.
        report: &'a ApplyReport,
    },
}

type ProgressFn = dyn Fn(&ProgressEvent<'_>) + Send + Sync;

/// A progress callback; the default reports nothing. Cheap to clone.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ProgressFn>>);

impl Progress {
    /// Calls `f` for every event (from several threads when layers extract in parallel).
    pub fn new(f: impl Fn(&ProgressEvent<'_>) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    pub(crate) fn emit(&self, e: &ProgressEvent<'_>) {
        if let Some(f) = &self.0 {
            f(e);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(callback)"
        } else {
            "Progress(none)"
        })
    }
}

/// How to apply a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Flatten onto the directory, or produce an overlay-format layer directory.
    /// Default: [`LayerFormat::Flatten`].
    pub format: LayerFormat,
    /// The blob's compression; `None` sniffs it from the first bytes. Default: `None`.
    pub compression: Option<Compression>,
    /// The layer's diff_id from the image config, verified against the uncompressed stream.
    /// Default: `None` (computed and reported, not checked).
    pub diff_id: Option<Digest>,
    /// Budgets. Default: [`Limits::default`].
    pub limits: Limits,
    /// Who owns the files. Default: [`Ownership::Preserve`] as root, [`Ownership::Ignore`]
    /// otherwise.
    pub ownership: Ownership,
    /// Whether to create device nodes and set `trusted.*` / `security.capability` xattrs.
    /// When false these are skipped and listed in the report. Default: true as root.
    pub privileged: bool,
    /// Shared per-image byte count. Default: a fresh one.
    pub image_budget: ImageBudget,
    /// Overlay format only: the overlay-format directories of the layers below, top first.
    /// A hardlink whose target is in one of them copies the target up into this layer and
    /// links to the copy, as overlayfs does for `link(2)` on a lower file. Without them such
    /// a link is [`Error::LinkOutsideLayer`]. Default: empty.
    pub lower_layers: Vec<std::path::PathBuf>,
    /// Progress callback. Default: none.
    pub progress: Progress,
    /// Flatten only: what the layers above this one delete, and this layer's index in the
    /// image (0 is the bottom layer). Regular files, hardlinks, device nodes and fifos that a
    /// higher layer removes are then not written (see [`Shadow`] for when that is safe);
    /// ignored unless the shadow [`covers`](Shadow::covers) the layer. Default: none.
    pub shadow: Option<(Arc<Shadow>, usize)>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ApplyOptions {
            format: LayerFormat::Flatten,
            compression: None,
            diff_id: None,
            limits: Limits::default(),
            ownership: if root { Ownership::Preserve } else { Ownership::Ignore },
            privileged: root,
            image_budget: ImageBudget::new(),
            lower_layers: Vec::new(),
            progress: Progress::default(),
            shadow: None,
        }
    }
}

/// Something in the layer that was deliberately not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's name in the archive.
    pub entry: String,
    /// What was skipped and why.
    pub reason: String,
}

/// What applying a layer did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// SHA-256 of the uncompressed stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed stream.
    pub uncompressed_size: u64,
    /// Bytes of the blob read.
    pub compressed_size: u64,
    /// The compression found or given.
    pub compression: Compression,
    /// Entries in the layer (metadata records not counted).
    pub entries: u64,
    /// What was skipped (device nodes when unprivileged, xattrs wharf does not apply).
    pub skipped: Vec<Skipped>,
    /// Whether the layer had an entry for its root directory (whose mode, owner and times
    /// were then applied to the root).
    pub root_entry: bool,
    /// Entries not written because a layer above deletes them ([`ApplyOptions::shadow`]).
    pub shadowed: u64,
    /// Overlay format only: directories the layer implies without an entry of its own (a
    /// parent of its entries), created `0755` owned by root. In an overlay mount they would
    /// hide the metadata of the same directory in lower layers;
    /// [`Rootfs`](crate::Rootfs) corrects that per image. Sorted.
    pub implied_dirs: Vec<Vec<u8>>,
}

/// The layer's diff_id against the one it was expected to have (none given: nothing to check).
///
/// # Errors
/// [`Error::DiffIdMismatch`].
pub(crate) fn check_diff_id(expected: Option<&wharf_image::Digest>, actual: &wharf_image::Digest) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(Error::DiffIdMismatch {
            expected: e.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

/// Applies a layer blob onto the directory `root`.
///
/// The blob is streamed: decompressed on a helper thread, hashed (diff_id), parsed by a
/// strict tar reader and written entry by entry. On error the directory is left partly
/// written; callers that create the directory for this layer remove it (the
/// [`LayerCache`](crate::LayerCache) and [`extract_layer`] do).
///
/// # Errors
/// Any [`Error`]: hostile paths, malformed tar, exceeded budgets, a diff_id mismatch, IO.
///
/// # Examples
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A one-file layer.
/// let mut w = wharf_rootfs::tar::Writer::new(Vec::new());
/// w.append_data(&wharf_rootfs::tar::Header::file("hello.txt", 0o644), b"hello")?;
/// let layer = w.finish()?;
///
/// let dir = tempfile::tempdir()?;
/// let root = std::fs::File::open(dir.path())?;
/// let opts = wharf_rootfs::ApplyOptions {
///     ownership: wharf_rootfs::Ownership::Ignore,
///     ..Default::default()
/// };
/// let report = wharf_rootfs::apply_layer(&root, &layer[..], &opts)?;
/// assert_eq!(report.diff_id, wharf_image::Digest::sha256(&layer));
/// assert_eq!(std::fs::read(dir.path().join("hello.txt"))?, b"hello");
/// # Ok(())
/// # }
/// ```
pub fn apply_layer<R: Read + Send>(root: impl AsFd, blob: R, opts: &ApplyOptions) -> Result<ApplyReport> {
    let root = root.as_fd();
    let limits = StreamLimits {
        max_layer_bytes: opts.limits.max_layer_bytes,
        max_image_bytes: opts.limits.max_image_bytes,
        max_ratio: opts.limits.max_compression_ratio,
        image_used: opts.image_budget.0.clone(),
        progress: opts.progress.clone(),
        label: opts.diff_id.clone(),
        queue: crate::stream::chunks(opts.limits.max_queued_bytes),
    };
    let reader_limits = ReaderLimits {
        max_metadata: opts.limits.max_metadata_bytes,
        max_xattr_bytes: opts.limits.max_xattr_bytes,
    };
    let ((entries, skipped, root_entry, shadowed, implied_dirs), summary) =
        stream::run(blob, opts.compression, &limits, |chunks| {
            let mut tar = TarReader::new(chunks, reader_limits);
            let mut applier = Applier::new(root, opts);
            while let Some(entry) = tar.next_entry()? {
                applier.apply(&entry, &mut tar)?;
            }
            applier.finish()?;
            let root_entry = applier.seen.contains_key(&Vec::new());
            let mut implied: Vec<Vec<u8>> = match opts.format {
                LayerFormat::Overlay => applier
                    .seen
                    .iter()
                    .filter(|(k, v)| **v == Seen::Implicit && !k.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect(),
                LayerFormat::Flatten => Vec::new(),
            };
            implied.sort();
            Ok((applier.entries, applier.skipped, root_entry, applier.shadowed, implied))
        })?;
    check_diff_id(opts.diff_id.as_ref(), &summary.diff_id)?;
    Ok(ApplyReport {
        diff_id: summary.diff_id,
        uncompressed_size: summary.uncompressed,
        compressed_size: summary.compressed,
        compression: summary.compression,
        entries,
        skipped,
        root_entry,
        shadowed,
        implied_dirs,
    })
}

/// A directory made private while a layer is written into it gets the conventional root
/// mode at the end unless a layer said otherwise.
fn open_up_root(dir: &std::path::Path, root_entry: bool) -> Result<()> {
    if !root_entry {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(Error::io("chmod", dir))?;
    }
    Ok(())
}

/// Extracts a layer into a new directory `dest`, which must not exist: the layer is
/// written into a temporary sibling and renamed into place only when it applied completely
/// and its diff_id matched; on any error the temporary directory is removed.
///
/// # Ambient authority
/// Creates `dest`'s sibling in the process's view of the filesystem.
///
/// # Errors
/// As [`apply_layer`], plus IO errors creating or renaming the directory.
pub fn extract_layer<R: Read + Send>(dest: &std::path::Path, blob: R, opts: &ApplyOptions) -> Result<ApplyReport> {
    let tmp = crate::cache::temp_sibling(dest);
    fsutil::create_private_dir(&tmp).map_err(Error::io("mkdir", &tmp))?;
    let result = (|| {
        let dir = rustix::fs::open(&tmp, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open", &tmp)(e.into()))?;
        let report = apply_layer(&dir, blob, opts)?;
        open_up_root(&tmp, report.root_entry)?;
        std::fs::rename(&tmp, dest).map_err(Error::io("rename", dest))?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = fsutil::remove_tree(&tmp);
    }
    result
}

/// An image's layer descriptors (bottom to top) and its config's diff_ids, one for each.
///
/// # Errors
/// [`Error::Invalid`] when the manifest and the config do not list the same number of layers.
pub(crate) fn layers_and_diff_ids(
    image: &wharf_image::store::Image,
) -> Result<(&[wharf_image::oci_spec::image::Descriptor], Vec<Digest>)> {
    let diff_ids = image.config.diff_ids().map_err(wharf_image::Error::from)?;
    let layers = image.manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(Error::Invalid {
            what: "image",
            reason: format!(
                "{}: manifest has {} layers but config has {} diff_ids",
                image.reference,
                layers.len(),
                diff_ids.len()
            ),
        });
    }
    Ok((layers, diff_ids))
}

/// Unpacks every layer of `image` from `store`, flattened, into the new directory `dest`
/// (like `umoci unpack`'s rootfs): each layer's diff_id is verified, one [`ImageBudget`]
/// covers the image, and `dest` appears only once everything applied (a temporary sibling
/// is removed on failure). Returns one report per layer.
///
/// Upper layers that are small next to the layers below them are read ahead into a
/// [`Shadow`] first, so files those layers delete are never written
/// ([`ApplyReport::shadowed`] counts them); the tree is the same as applying every layer in
/// full. `opts.shadow` is ignored.
///
/// # Ambient authority
/// Creates `dest` and a temporary sibling in the process's view of the filesystem.
///
/// # Errors
/// Store errors, [`Error::Invalid`] when manifest and config disagree on the layers, any
/// [`apply_layer`] error.
pub fn unpack_image(
    store: &wharf_image::Store,
    image: &wharf_image::store::Image,
    dest: &std::path::Path,
    opts: &ApplyOptions,
) -> Result<Vec<ApplyReport>> {
    let (layers, diff_ids) = layers_and_diff_ids(image)?;
    let tmp = crate::cache::temp_sibling(dest);
    fsutil::create_private_dir(&tmp).map_err(Error::io("mkdir", &tmp))?;
    let budget = ImageBudget::new();
    let result = (|| {
        // A readable descriptor rather than an O_PATH one: the flag ioctl below needs it.
        let dir = rustix::fs::open(
            &tmp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", &tmp)(e.into()))?;
        // The image's top directories are placed where the filesystem chooses afresh, not
        // beside trees just deleted (see `spread_new_trees`); the flag is cleared before
        // `dest` appears.
        fsutil::spread_new_trees(dir.as_fd(), true);
        let layer_opts = |i: usize| -> Result<(Digest, ApplyOptions)> {
            let desc = &layers[i];
            let digest = Digest::from_oci(desc.digest()).map_err(wharf_image::Error::from)?;
            let compression = wharf_image::media::layer_compression(desc.media_type());
            let o = ApplyOptions {
                format: LayerFormat::Flatten,
                compression,
                diff_id: Some(diff_ids[i].clone()),
                image_budget: budget.clone(),
                shadow: None,
                ..opts.clone()
            };
            Ok((digest, o))
        };
        // Unbuffered: the decompressing thread reads through a buffer of its own.
        let open = |digest: &Digest| -> Result<_> { Ok(store.open_blob(digest)?) };
        // Read the small upper layers ahead: what they delete is not written at all.
        let sizes: Vec<u64> = layers.iter().map(|d| d.size()).collect();
        let shadow = match read_ahead_from(&sizes) {
            Some(first) => {
                let mut shadow = Shadow::new(layers.len());
                for i in first..layers.len() {
                    let (digest, o) = layer_opts(i)?;
                    shadow.add_layer(i, open(&digest)?, &o)?;
                }
                Some(Arc::new(shadow))
            }
            None => None,
        };
        let mut reports = Vec::with_capacity(layers.len());
        for i in 0..layers.len() {
            let (digest, mut o) = layer_opts(i)?;
            o.shadow = shadow.clone().filter(|s| s.covers(i)).map(|s| (s, i));
            let used = budget.0.load(std::sync::atomic::Ordering::Relaxed);
            let report = match apply_layer(&dir, open(&digest)?, &o) {
                Err(Error::ShadowedLinkTarget { .. }) => {
                    // A link to a left-out file: write the whole layer, over what it wrote.
                    budget.0.store(used, std::sync::atomic::Ordering::Relaxed);
                    o.shadow = None;
                    apply_layer(&dir, open(&digest)?, &o)?
                }
                r => r?,
            };
            reports.push(report);
        }
        fsutil::spread_new_trees(dir.as_fd(), false);
        open_up_root(&tmp, reports.iter().any(|r| r.root_entry))?;
        std::fs::rename(&tmp, dest).map_err(Error::io("rename", dest))?;
        Ok(reports)
    })();
    if result.is_err() {
        let _ = fsutil::remove_tree(&tmp);
    }
    result
}

/// The first of the upper layers worth reading ahead when flattening layers of these
/// (compressed) sizes: the longest run of top layers that together are at most an eighth of
/// the layers below them, so reading them twice costs little next to what they may save.
fn read_ahead_from(sizes: &[u64]) -> Option<usize> {
    let total: u64 = sizes.iter().sum();
    let mut below = 0u64;
    for (i, &size) in sizes.iter().enumerate().take(sizes.len().saturating_sub(1)) {
        below += size;
        let above = total - below;
        if above.saturating_mul(8) <= below {
            return Some(i + 1);
        }
    }
    None
}

/// An entry left out because a layer above deletes it, as far as later entries of the same
/// layer can tell.
#[derive(Debug)]
enum LeftOut {
    Dir,
    Symlink(Vec<u8>),
    Other,
}

/// What this layer has put at a path so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Entry(EntryKind),
    /// A directory created because an entry below it had no entry of its own (yet).
    Implicit,
    Whiteout,
    Opaque,
    /// Copied up from a lower layer as the target of a hardlink; a later entry replaces it.
    CopiedUp,
}

enum Parent<'a> {
    Root(BorrowedFd<'a>, Inherit),
    Dir(Rc<OwnedFd>, Inherit),
}

/// What a new entry takes from its parent directory: its group (the parent's when the
/// parent is setgid, else ours) and, for a directory, the setgid bit.
#[derive(Debug, Clone, Copy)]
struct Inherit {
    gid: u64,
    setgid: bool,
}

impl Inherit {
    fn of(dir: BorrowedFd<'_>, egid: u64) -> Inherit {
        match rustix::fs::fstat(dir) {
            Ok(st) if st.st_mode & 0o2000 != 0 => Inherit {
                gid: u64::from(st.st_gid),
                setgid: true,
            },
            // Unknown: assume the worst, so ids and modes are set explicitly.
            Err(_) => Inherit {
                gid: u64::MAX,
                setgid: true,
            },
            Ok(_) => Inherit {
                gid: egid,
                setgid: false,
            },
        }
    }
}

impl Parent<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Parent::Root(fd, _) => *fd,
            Parent::Dir(fd, _) => fd.as_fd(),
        }
    }

    fn inherit(&self) -> Inherit {
        match self {
            Parent::Root(_, i) | Parent::Dir(_, i) => *i,
        }
    }
}

struct Applier<'a> {
    root: BorrowedFd<'a>,
    opts: &'a ApplyOptions,
    /// The last parent directory opened, by its path beneath the root.
    cache: Option<(Vec<u8>, Rc<OwnedFd>, Inherit)>,
    seen: HashMap<Vec<u8>, Seen>,
    /// Every path that is an entry of this layer or an ancestor of one.
    touched: HashSet<Vec<u8>>,
    /// Directories whose times (and, when unprivileged, restrictive modes) are set last.
    dir_times: Vec<(Vec<u8>, Timestamps, Option<u32>)>,
    entries: u64,
    skipped: Vec<Skipped>,
    euid: u64,
    egid: u64,
    /// What entries directly beneath the root inherit from it.
    root_inherit: Inherit,
    umask: u32,
    /// The shadow of the layers above and this layer's index, when it covers this layer.
    shadow: Option<(&'a Shadow, usize)>,
    /// Entries left out because a layer above deletes them.
    shadowed: u64,
    /// Entries of this layer that were left out.
    left_out: HashMap<Vec<u8>, LeftOut>,
    /// The last parent directory found to be reached without symlinks.
    real_parent: Option<Vec<u8>>,
}

/// A time as containerd, Docker and podman set it: one before 1970 or past 2262 (what Go's
/// `time.Time` holds in int64 nanoseconds) becomes the epoch (their `boundTime`), so an
/// image gives the same tree here as there.
fn bound((sec, nsec): (i64, u32)) -> (i64, u32) {
    const MAX_SECS: i64 = i64::MAX / 1_000_000_000;
    const MAX_NSECS: u32 = (i64::MAX % 1_000_000_000) as u32;
    if !(0..=MAX_SECS).contains(&sec) || (sec == MAX_SECS && nsec > MAX_NSECS) {
        (0, 0)
    } else {
        (sec, nsec)
    }
}

fn ts((sec, nsec): (i64, u32)) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    }
}

fn current_umask() -> u32 {
    // Reading the umask without changing it (changing it would race with other threads).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// Splits an archive path into clean components; `None` means the root itself
/// ([`wharf_tar::clean_path`]: absolute names and `..` re-rooted beneath the root).
pub(crate) fn normalize<'p>(entry: &str, raw: &'p [u8], max_depth: usize) -> Result<Option<Vec<&'p [u8]>>> {
    Ok(wharf_tar::clean_path(entry, raw, max_depth)?)
}

impl<'a> Applier<'a> {
    fn new(root: BorrowedFd<'a>, opts: &'a ApplyOptions) -> Self {
        let egid = u64::from(rustix::process::getegid().as_raw());
        Applier {
            root,
            opts,
            cache: None,
            seen: HashMap::new(),
            touched: HashSet::new(),
            dir_times: Vec::new(),
            entries: 0,
            skipped: Vec::new(),
            euid: u64::from(rustix::process::geteuid().as_raw()),
            egid,
            root_inherit: Inherit::of(root, egid),
            umask: current_umask(),
            shadow: match (&opts.shadow, opts.format) {
                (Some((s, layer)), LayerFormat::Flatten) if s.covers(*layer) => Some((s.as_ref(), *layer)),
                _ => None,
            },
            shadowed: 0,
            left_out: HashMap::new(),
            real_parent: None,
        }
    }

    /// Opens (and with `create`, makes) the directory `comps` beneath the root.
    fn parent(&mut self, entry: &str, comps: &[&[u8]], create: bool) -> Result<Option<Parent<'a>>> {
        if comps.is_empty() {
            return Ok(Some(Parent::Root(self.root, self.root_inherit)));
        }
        let key = join(comps);
        if let Some((k, fd, inherit)) = &self.cache
            && *k == key
        {
            return Ok(Some(Parent::Dir(fd.clone(), *inherit)));
        }
        let fd = match fsutil::open_dir_beneath(self.root, &key) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => self.make_parents(entry, comps)?,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.resolve_err(entry, &key, e)),
        };
        let inherit = Inherit::of(fd.as_fd(), self.egid);
        let fd = Rc::new(fd);
        self.cache = Some((key, fd.clone(), inherit));
        Ok(Some(Parent::Dir(fd, inherit)))
    }

    fn resolve_err(&self, entry: &str, path: &[u8], e: Errno) -> Error {
        let path = String::from_utf8_lossy(path).into_owned();
        match e {
            Errno::XDEV | Errno::LOOP => Error::Escape {
                entry: entry.to_string(),
                path,
            },
            e => Error::Entry {
                entry: entry.to_string(),
                op: "resolve parent directory",
                source: e.into(),
            },
        }
    }

    fn make_parents(&mut self, entry: &str, comps: &[&[u8]]) -> Result<OwnedFd> {
        let mut cur: Option<OwnedFd> = None;
        for i in 0..comps.len() {
            let key = join(&comps[..=i]);
            match fsutil::open_dir_beneath(self.root, &key) {
                Ok(fd) => {
                    cur = Some(fd);
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.resolve_err(entry, &key, e)),
            }
            let parent = cur.as_ref().map_or(self.root, |f| f.as_fd());
            match rustix::fs::mkdirat(parent, comps[i], Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::entry(entry, "create parent directory")(e)),
            }
            let fd = fsutil::open_dir_beneath(self.root, &key).map_err(|e| self.resolve_err(entry, &key, e))?;
            self.seen.entry(key).or_insert(Seen::Implicit);
            cur = Some(fd);
        }
        cur.ok_or_else(|| Error::Invalid {
            what: "path",
            reason: "no components".into(),
        })
    }

    /// Forgets the cached parents if `key` is one or one's ancestor.
    fn invalidate(&mut self, key: &[u8]) {
        let below = |k: &[u8]| k == key || (k.starts_with(key) && k.get(key.len()) == Some(&b'/'));
        if let Some((k, _, _)) = &self.cache
            && below(k)
        {
            self.cache = None;
        }
        if self.real_parent.as_deref().is_some_and(below) {
            self.real_parent = None;
        }
    }

    /// Whether the entry can be left out because a layer above deletes it (see [`Shadow`]).
    fn leave_out(&mut self, e: &Entry, key: &[u8], base: &[u8]) -> bool {
        let Some((shadow, layer)) = self.shadow else {
            return false;
        };
        if shadow.is_link_target(key) || !shadow.hides(layer, key) {
            return false;
        }
        let parent = &key[..(key.len() - base.len()).saturating_sub(1)];
        match self.left_out.get(parent) {
            // A left-out directory would have been a real one (replacing anything else).
            Some(LeftOut::Dir) => {}
            Some(_) => return false,
            None if parent.is_empty() || self.real_parent.as_deref() == Some(parent) => {}
            None => {
                let flags = fsutil::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS;
                let open = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                if rustix::fs::openat2(self.root, parent, open, Mode::empty(), flags).is_err() {
                    return false; // missing, or reached through a symlink: write it as usual
                }
                self.real_parent = Some(parent.to_vec());
            }
        }
        self.shadowed += 1;
        let what = match e.kind {
            EntryKind::Dir => LeftOut::Dir,
            EntryKind::Symlink => LeftOut::Symlink(e.link.clone()),
            _ => LeftOut::Other,
        };
        self.left_out.insert(key.to_vec(), what);
        true
    }

    /// Writes the left-out directories and symlinks above an entry that is written after
    /// all, as their entries would have (metadata aside: a higher layer deletes them).
    fn materialize(&mut self, name: &str, comps: &[&[u8]]) -> Result<()> {
        if self.left_out.is_empty() {
            return Ok(());
        }
        for i in 1..comps.len() {
            let key = join(&comps[..i]);
            let Some(what) = self.left_out.remove(&key) else {
                continue;
            };
            self.shadowed -= 1;
            let parent = self
                .parent(name, &comps[..i - 1], true)?
                .ok_or_else(|| Error::entry(name, "resolve parent directory")(Errno::NOENT))?;
            let (dir, base) = (parent.fd(), comps[i - 1]);
            match what {
                LeftOut::Dir => {
                    match rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => continue,
                        Ok(_) => self.clear(name, dir, base, &key)?,
                        Err(Errno::NOENT) => {}
                        Err(err) => return Err(Error::entry(name, "stat")(err)),
                    }
                    let dir = parent.fd();
                    rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(0o755)).map_err(Error::entry(name, "mkdir"))?;
                }
                LeftOut::Symlink(target) => {
                    self.clear(name, dir, base, &key)?;
                    let dir = parent.fd();
                    rustix::fs::symlinkat(target.as_slice(), dir, base).map_err(Error::entry(name, "symlink"))?;
                }
                // What a left-out entry would have been is no directory: fail as writing it would.
                LeftOut::Other => return Err(Error::entry(name, "resolve parent directory")(Errno::NOTDIR)),
            }
        }
        Ok(())
    }

    fn mark_touched(&mut self, comps: &[&[u8]]) {
        for i in (1..=comps.len()).rev() {
            if !self.touched.insert(join(&comps[..i])) {
                break;
            }
        }
    }

    fn skip(&mut self, entry: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            entry: entry.to_string(),
            reason: reason.into(),
        });
    }

    /// The ids to set on a new entry, `None` when it already has them: a new entry is ours,
    /// in our group or in a setgid parent's (`inherit`; `None` when it is not new).
    fn owner(&self, name: &str, e: &Entry, inherit: Option<Inherit>) -> Result<Option<(u64, u64)>> {
        let (uid, gid) = match &self.opts.ownership {
            Ownership::Ignore => return Ok(None),
            Ownership::Preserve => (e.uid, e.gid),
            Ownership::Map(m) => (
                IdMap::map(&m.uids, e.uid).ok_or_else(|| Error::Unmapped {
                    entry: name.to_string(),
                    kind: "uid",
                    id: e.uid,
                })?,
                IdMap::map(&m.gids, e.gid).ok_or_else(|| Error::Unmapped {
                    entry: name.to_string(),
                    kind: "gid",
                    id: e.gid,
                })?,
            ),
        };
        if inherit.is_some_and(|i| uid == self.euid && gid == i.gid) {
            return Ok(None);
        }
        if uid > u64::from(u32::MAX - 1) || gid > u64::from(u32::MAX - 1) {
            return Err(Error::Unsupported {
                entry: name.to_string(),
                what: format!("uid/gid {uid}/{gid} out of range"),
            });
        }
        Ok(Some((uid, gid)))
    }

    fn needs_chmod(&self, mode: u32) -> bool {
        mode & 0o7000 != 0 || mode & 0o777 & self.umask != 0
    }

    fn times(e: &Entry) -> Timestamps {
        Timestamps {
            last_access: ts(bound(e.atime.unwrap_or(e.mtime))),
            last_modification: ts(bound(e.mtime)),
        }
    }

    /// Which of the entry's xattrs to set; the rest are reported as skipped.
    fn xattrs<'e>(&mut self, name: &str, e: &'e Entry) -> Vec<&'e (Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for x in &e.xattrs {
            let k = &x.0;
            let verdict = if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
                Err("overlayfs-private attribute")
            } else if k.starts_with(b"user.") {
                Ok(())
            } else if k == b"security.capability" || k.starts_with(b"trusted.") {
                if self.opts.privileged {
                    Ok(())
                } else {
                    Err("needs privilege")
                }
            } else {
                Err("attribute namespace not applied")
            };
            match verdict {
                Ok(()) => out.push(x),
                Err(why) => self.skip(name, format!("xattr {}: {why}", String::from_utf8_lossy(k))),
            }
        }
        out
    }

    fn set_xattrs(&mut self, name: &str, e: &Entry, fd: BorrowedFd<'_>) -> Result<()> {
        for (k, v) in self.xattrs(name, e) {
            match rustix::fs::fsetxattr(fd, k.as_slice(), v, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::OPNOTSUPP) => {
                    self.skip(
                        name,
                        format!("xattr {}: not supported here", String::from_utf8_lossy(k)),
                    );
                }
                Err(err) => return Err(Error::entry(name, "setxattr")(err)),
            }
        }
        Ok(())
    }

    /// Removes whatever is at `name` in `dir` (a lower layer's entry being replaced).
    fn clear(&mut self, entry: &str, dir: BorrowedFd<'_>, name: &[u8], key: &[u8]) -> Result<()> {
        self.invalidate(key);
        fsutil::remove_all_at(dir, name).map_err(Error::entry(entry, "replace existing"))
    }

    fn apply<R: std::io::BufRead>(&mut self, e: &Entry, tar: &mut TarReader<R>) -> Result<()> {
        let name = e.name();
        self.entries += 1;
        if self.entries > self.opts.limits.max_entries {
            return Err(Error::LimitExceeded {
                limit: Limit::Entries,
                max: self.opts.limits.max_entries,
                entry: Some(name),
            });
        }
        // The rules an entry meets on its own are wharf-tar's, shared with image load and import.
        let Some(comps) = wharf_tar::check_entry(e, self.opts.limits.max_path_depth)? else {
            return self.root_dir(&name, e);
        };
        let key = join(&comps);
        let (base, parent_comps) = comps.split_last().map(|(b, p)| (*b, p)).unwrap_or((b"", &[]));

        // Whiteouts.
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            self.materialize(&name, &comps)?;
            if self.seen.insert(key.clone(), Seen::Whiteout).is_some() {
                // The same whiteout twice (containerd applies both; the second finds
                // nothing left to hide).
                return Ok(());
            }
            if base == OPAQUE_MARKER.as_bytes() {
                return self.opaque(&name, parent_comps);
            }
            if target.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
                self.skip(&name, "AUFS metadata");
                return Ok(());
            }
            return self.whiteout(&name, parent_comps, target);
        }

        // A path already written by this layer is replaced, the last entry winning as in
        // containerd, Docker and GNU tar: every write is fd-relative beneath the root and
        // never follows a symlink in the last component, so the earlier entry cannot
        // redirect the later one.
        let was_whited = self.seen.get(&key) == Some(&Seen::Whiteout);
        self.seen.insert(key.clone(), Seen::Entry(e.kind));
        self.mark_touched(&comps);
        if self.leave_out(e, &key, base) {
            return Ok(()); // its data is skipped by the reader
        }
        self.materialize(&name, &comps)?;

        let parent = self
            .parent(&name, parent_comps, true)?
            .ok_or_else(|| Error::entry(&name, "resolve parent directory")(Errno::NOENT))?;
        match e.kind {
            EntryKind::File => self.file(&name, e, &parent, base, &key, tar),
            EntryKind::Dir => {
                self.dir(&name, e, &parent, base, &key)?;
                if was_whited && self.opts.format == LayerFormat::Overlay {
                    self.set_opaque(&name, &comps)?;
                }
                Ok(())
            }
            EntryKind::Symlink => self.symlink(&name, e, &parent, base, &key),
            EntryKind::Hardlink => self.hardlink(&name, e, &parent, base, &key),
            EntryKind::Char | EntryKind::Block | EntryKind::Fifo => self.node(&name, e, &parent, base, &key),
        }
    }

    fn root_dir(&mut self, name: &str, e: &Entry) -> Result<()> {
        self.seen.insert(Vec::new(), Seen::Entry(EntryKind::Dir));
        let fd = fsutil::open_subdir(self.root, b".").map_err(Error::entry(name, "open root"))?;
        if let Some((u, g)) = self.owner(name, e, None)? {
            rustix::fs::fchown(&fd, Some(uid(u)), Some(gid(g))).map_err(Error::entry(name, "chown"))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(e.mode)).map_err(Error::entry(name, "chmod"))?;
        self.root_inherit = Inherit::of(fd.as_fd(), self.egid);
        self.set_xattrs(name, e, fd.as_fd())?;
        self.dir_times.push((Vec::new(), Self::times(e), None));
        Ok(())
    }

    fn file<R: std::io::BufRead>(
        &mut self,
        name: &str,
        e: &Entry,
        parent: &Parent<'_>,
        base: &[u8],
        key: &[u8],
        tar: &mut TarReader<R>,
    ) -> Result<()> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(e.mode & 0o777);
        let dir = parent.fd();
        let fd = match rustix::fs::openat(dir, base, flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.clear(name, dir, base, key)?;
                let dir = parent.fd();
                rustix::fs::openat(dir, base, flags, mode).map_err(Error::entry(name, "create"))?
            }
            Err(err) => return Err(Error::entry(name, "create")(err)),
        };
        match &e.sparse {
            None => loop {
                let buf = tar.data()?;
                if buf.is_empty() {
                    break;
                }
                let n = rustix::io::write(&fd, buf).map_err(Error::entry(name, "write"))?;
                tar.consume(n);
            },
            Some(chunks) => {
                for &(off, len) in chunks {
                    let mut done = 0u64;
                    while done < len {
                        let buf = tar.data()?;
                        if buf.is_empty() {
                            break;
                        }
                        let k = (buf.len() as u64).min(len - done) as usize;
                        let n = rustix::io::pwrite(&fd, &buf[..k], off + done).map_err(Error::entry(name, "write"))?;
                        tar.consume(n);
                        done += n as u64;
                    }
                }
                rustix::fs::ftruncate(&fd, e.real_size).map_err(Error::entry(name, "truncate"))?;
            }
        }
        self.finish_fd(name, e, &fd, parent.inherit())?;
        rustix::fs::futimens(&fd, &Self::times(e)).map_err(Error::entry(name, "set times"))?;
        Ok(())
    }

    /// Owner, mode (after chown, which clears setuid) and xattrs through an open fd.
    fn finish_fd(&mut self, name: &str, e: &Entry, fd: &OwnedFd, inherit: Inherit) -> Result<()> {
        if let Some((u, g)) = self.owner(name, e, Some(inherit))? {
            rustix::fs::fchown(fd, Some(uid(u)), Some(gid(g))).map_err(Error::entry(name, "chown"))?;
            if e.mode & 0o6000 != 0 || self.needs_chmod(e.mode) {
                rustix::fs::fchmod(fd, Mode::from_raw_mode(e.mode)).map_err(Error::entry(name, "chmod"))?;
            }
        } else if self.needs_chmod(e.mode) {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(e.mode)).map_err(Error::entry(name, "chmod"))?;
        }
        if !e.xattrs.is_empty() {
            self.set_xattrs(name, e, fd.as_fd())?;
        }
        Ok(())
    }

    fn dir(&mut self, name: &str, e: &Entry, parent: &Parent<'_>, base: &[u8], key: &[u8]) -> Result<()> {
        let dir = parent.fd();
        // Without CAP_DAC_OVERRIDE a directory like 0555 could not be filled: keep it
        // writable while the layer applies and set its mode at the end.
        let deferred = (self.euid != 0 && e.mode & 0o700 != 0o700).then_some(e.mode);
        let now_mode = if deferred.is_some() { e.mode | 0o700 } else { e.mode };
        let mode = Mode::from_raw_mode(now_mode & 0o777);
        let mut created = true;
        match rustix::fs::mkdirat(dir, base, mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st =
                    rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW).map_err(Error::entry(name, "stat"))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    created = false;
                } else {
                    // A lower layer's file or symlink: replaced, never followed
                    // (CVE-2026-33056: a later chmod must not reach through a symlink).
                    self.clear(name, dir, base, key)?;
                    let dir = parent.fd();
                    rustix::fs::mkdirat(dir, base, mode).map_err(Error::entry(name, "mkdir"))?;
                }
            }
            Err(err) => return Err(Error::entry(name, "mkdir")(err)),
        }
        let inherit = parent.inherit();
        let owner = self.owner(name, e, created.then_some(inherit))?;
        // A new directory in a setgid one has the setgid bit whatever the entry says.
        if !created || owner.is_some() || inherit.setgid || self.needs_chmod(now_mode) || !e.xattrs.is_empty() {
            let dir = parent.fd();
            let fd = fsutil::open_subdir(dir, base).map_err(Error::entry(name, "open directory"))?;
            if let Some((u, g)) = owner {
                rustix::fs::fchown(&fd, Some(uid(u)), Some(gid(g))).map_err(Error::entry(name, "chown"))?;
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(now_mode)).map_err(Error::entry(name, "chmod"))?;
            if !e.xattrs.is_empty() {
                self.set_xattrs(name, e, fd.as_fd())?;
            }
        }
        self.dir_times.push((key.to_vec(), Self::times(e), deferred));
        Ok(())
    }

    fn symlink(&mut self, name: &str, e: &Entry, parent: &Parent<'_>, base: &[u8], key: &[u8]) -> Result<()> {
        let dir = parent.fd();
        match rustix::fs::symlinkat(e.link.as_slice(), dir, base) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.clear(name, dir, base, key)?;
                let dir = parent.fd();
                rustix::fs::symlinkat(e.link.as_slice(), dir, base).map_err(Error::entry(name, "symlink"))?;
            }
            Err(err) => return Err(Error::entry(name, "symlink")(err)),
        }
        let dir = parent.fd();
        if let Some((u, g)) = self.owner(name, e, Some(parent.inherit()))? {
            rustix::fs::chownat(dir, base, Some(uid(u)), Some(gid(g)), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(Error::entry(name, "chown"))?;
        }
        if !e.xattrs.is_empty() {
            self.skip(name, "xattrs on a symlink");
        }
        rustix::fs::utimensat(dir, base, &Self::times(e), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Error::entry(name, "set times"))?;
        Ok(())
    }

    fn hardlink(&mut self, name: &str, e: &Entry, parent: &Parent<'_>, base: &[u8], key: &[u8]) -> Result<()> {
        let target_name = String::from_utf8_lossy(&e.link).into_owned();
        // check_entry refused the root and the link itself as targets.
        let Some(tcomps) = normalize(name, &e.link, self.opts.limits.max_path_depth)? else {
            return Err(Error::entry(name, "link")(Errno::INVAL));
        };
        let tkey = join(&tcomps);
        if self.left_out.contains_key(&tkey) {
            return Err(Error::ShadowedLinkTarget {
                entry: name.to_string(),
                target: target_name,
            });
        }
        if self.opts.format == LayerFormat::Overlay
            && !matches!(self.seen.get(&tkey), Some(Seen::Entry(_) | Seen::CopiedUp))
        {
            if !self.copy_up(name, &tcomps)? {
                return Err(Error::LinkOutsideLayer {
                    entry: name.to_string(),
                    target: target_name,
                });
            }
            self.seen.insert(tkey.clone(), Seen::CopiedUp);
            self.mark_touched(&tcomps);
        }
        let (tbase, tparent) = tcomps.split_last().map(|(b, p)| (*b, p)).unwrap_or((b"", &[]));
        let tdir = match self.parent(name, tparent, false)? {
            Some(p) => p,
            None => return Err(Error::entry(name, "link")(Errno::NOENT)),
        };
        // The parent of the new link may have been evicted from the cache; keep our handle.
        let link = || rustix::fs::linkat(tdir.fd(), tbase, parent.fd(), base, AtFlags::empty());
        match link() {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let dir = parent.fd();
                self.clear(name, dir, base, key)?;
                link().map_err(Error::entry(name, "link"))
            }
            Err(Errno::XDEV) => Err(Error::Escape {
                entry: name.to_string(),
                path: target_name,
            }),
            Err(err) => Err(Error::entry(name, "link")(err)),
        }
    }

    fn node(&mut self, name: &str, e: &Entry, parent: &Parent<'_>, base: &[u8], key: &[u8]) -> Result<()> {
        let ft = match e.kind {
            EntryKind::Char => FileType::CharacterDevice,
            EntryKind::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if ft != FileType::Fifo && !self.opts.privileged {
            self.skip(name, "device node in an unprivileged unpack");
            return Ok(());
        }
        let dev = rustix::fs::makedev(e.dev_major, e.dev_minor);
        let mode = Mode::from_raw_mode(e.mode & 0o777);
        let dir = parent.fd();
        match rustix::fs::mknodat(dir, base, ft, mode, dev) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.clear(name, dir, base, key)?;
                let dir = parent.fd();
                rustix::fs::mknodat(dir, base, ft, mode, dev).map_err(Error::entry(name, "mknod"))?;
            }
            Err(err) => return Err(Error::entry(name, "mknod")(err)),
        }
        let dir = parent.fd();
        if let Some((u, g)) = self.owner(name, e, Some(parent.inherit()))? {
            rustix::fs::chownat(dir, base, Some(uid(u)), Some(gid(g)), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(Error::entry(name, "chown"))?;
        }
        if e.mode & 0o7000 != 0 || self.needs_chmod(e.mode) {
            // Never open a device to chmod it: go through an O_PATH handle's proc link.
            let p = rustix::fs::openat(
                dir,
                base,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(Error::entry(name, "open"))?;
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&p));
            rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(e.mode)).map_err(Error::entry(name, "chmod"))?;
        }
        rustix::fs::utimensat(dir, base, &Self::times(e), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Error::entry(name, "set times"))?;
        Ok(())
    }

    fn whiteout(&mut self, name: &str, parent_comps: &[&[u8]], target: &[u8]) -> Result<()> {
        let mut tcomps: Vec<&[u8]> = parent_comps.to_vec();
        tcomps.push(target);
        let tkey = join(&tcomps);
        let ours = self.seen.get(&tkey).copied();
        match self.opts.format {
            LayerFormat::Flatten => {
                match ours {
                    // This layer's own entry: the whiteout applies only to lower layers, so
                    // keep it, minus anything lower layers put inside it.
                    Some(Seen::Entry(EntryKind::Dir)) | Some(Seen::Implicit) => self.prune(name, &tcomps),
                    Some(_) => Ok(()),
                    None => {
                        let Some(parent) = self.parent(name, parent_comps, false)? else {
                            return Ok(()); // nothing below to hide
                        };
                        let dir = parent.fd();
                        self.clear(name, dir, target, &tkey)
                    }
                }
            }
            LayerFormat::Overlay => match ours {
                Some(Seen::Entry(EntryKind::Dir)) | Some(Seen::Implicit) => self.set_opaque(name, &tcomps),
                Some(_) => Ok(()),
                None => {
                    self.seen.insert(tkey, Seen::Whiteout);
                    let parent = self
                        .parent(name, parent_comps, true)?
                        .ok_or_else(|| Error::entry(name, "resolve parent directory")(Errno::NOENT))?;
                    let dir = parent.fd();
                    rustix::fs::mknodat(dir, target, FileType::CharacterDevice, Mode::empty(), 0)
                        .map_err(Error::entry(name, "create whiteout device"))
                }
            },
        }
    }

    fn opaque(&mut self, name: &str, dir_comps: &[&[u8]]) -> Result<()> {
        let key = join(dir_comps);
        self.seen.entry(key).or_insert(Seen::Opaque);
        self.mark_touched(dir_comps);
        match self.opts.format {
            LayerFormat::Flatten => {
                self.parent(name, dir_comps, true)?;
                self.prune(name, dir_comps)
            }
            LayerFormat::Overlay => self.set_opaque(name, dir_comps),
        }
    }

    fn set_opaque(&mut self, name: &str, dir_comps: &[&[u8]]) -> Result<()> {
        let d = self
            .parent(name, dir_comps, true)?
            .ok_or_else(|| Error::entry(name, "resolve directory")(Errno::NOENT))?;
        // fsetxattr needs a real fd, not O_PATH.
        let fd = fsutil::open_subdir(d.fd(), b".").map_err(Error::entry(name, "open directory"))?;
        let xattr = if self.opts.privileged {
            OVERLAY_OPAQUE_XATTR
        } else {
            USER_OVERLAY_OPAQUE_XATTR
        };
        rustix::fs::fsetxattr(&fd, xattr, b"y", rustix::fs::XattrFlags::empty())
            .map_err(Error::entry(name, "mark opaque"))
    }

    /// Removes from the directory `dir_comps` everything this layer did not put there
    /// (an opaque marker applies to lower layers only, wherever it appears in the layer).
    fn prune(&mut self, name: &str, dir_comps: &[&[u8]]) -> Result<()> {
        let key = join(dir_comps);
        let Some(parent) = self.parent(name, dir_comps, false)? else {
            return Ok(());
        };
        let fd = fsutil::open_subdir(parent.fd(), b".").map_err(Error::entry(name, "open directory"))?;
        let children = fsutil::list(fd.as_fd()).map_err(Error::entry(name, "read directory"))?;
        for (child, ft) in children {
            let mut ckey = key.clone();
            if !ckey.is_empty() {
                ckey.push(b'/');
            }
            ckey.extend_from_slice(&child);
            if !self.touched.contains(&ckey) {
                self.invalidate(&ckey);
                fsutil::remove_all_at(fd.as_fd(), &child).map_err(Error::entry(name, "remove lower content"))?;
            } else if ft == FileType::Directory {
                let mut sub: Vec<&[u8]> = dir_comps.to_vec();
                sub.push(&child);
                self.prune(name, &sub)?;
            }
        }
        Ok(())
    }

    /// Finds `comps` in the lower layers as overlayfs would (top first, stopping at
    /// whiteouts, opaque directories and non-directories) and copies it, with its parent
    /// directories' metadata, into this layer. False when no lower layer has it.
    fn copy_up(&mut self, name: &str, comps: &[&[u8]]) -> Result<bool> {
        let Some(found) = self.find_lower(name, comps)? else {
            return Ok(false);
        };
        let (base, parents) = comps.split_last().map(|(b, p)| (*b, p)).unwrap_or((b"", &[]));
        // Parents: create missing ones with the lower directory's owner and mode.
        for i in 0..parents.len() {
            let key = join(&comps[..=i]);
            match fsutil::open_dir_beneath(self.root, &key) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.resolve_err(name, &key, e)),
            }
            let parent = self
                .parent(name, &comps[..i], true)?
                .ok_or_else(|| Error::entry(name, "copy up")(Errno::NOENT))?;
            let st = rustix::fs::statat(&found, key.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(Error::entry(name, "copy up: stat lower directory"))?;
            rustix::fs::mkdirat(parent.fd(), comps[i], Mode::from_raw_mode(0o700))
                .map_err(Error::entry(name, "copy up: mkdir"))?;
            let d = fsutil::open_subdir(parent.fd(), comps[i]).map_err(Error::entry(name, "copy up: open"))?;
            rustix::fs::fchown(&d, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))
                .map_err(Error::entry(name, "copy up: chown"))?;
            rustix::fs::fchmod(&d, Mode::from_raw_mode(st.st_mode & 0o7777))
                .map_err(Error::entry(name, "copy up: chmod"))?;
            self.seen.entry(key).or_insert(Seen::Implicit);
        }
        let key = join(comps);
        let parent = self
            .parent(name, parents, true)?
            .ok_or_else(|| Error::entry(name, "copy up")(Errno::NOENT))?;
        let src = rustix::fs::openat2(
            &found,
            key.as_slice(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            fsutil::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
        )
        .map_err(Error::entry(name, "copy up: open lower file"))?;
        let st = rustix::fs::fstat(&src).map_err(Error::entry(name, "copy up: stat"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::Unsupported {
                entry: name.to_string(),
                what: "hardlink to a non-regular file of a lower layer".into(),
            });
        }
        let dst = rustix::fs::openat(
            parent.fd(),
            base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(Error::entry(name, "copy up: create"))?;
        if rustix::fs::ioctl_ficlone(&dst, &src).is_err() {
            let mut left = st.st_size as u64;
            while left > 0 {
                match rustix::fs::copy_file_range(&src, None, &dst, None, left.min(1 << 30) as usize) {
                    Ok(0) => break,
                    Ok(n) => left -= n as u64,
                    Err(e) => return Err(Error::entry(name, "copy up: copy")(e)),
                }
            }
        }
        rustix::fs::fchown(&dst, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))
            .map_err(Error::entry(name, "copy up: chown"))?;
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(Error::entry(name, "copy up: chmod"))?;
        let mut names = vec![0u8; 64 * 1024];
        if let Ok(n) = rustix::fs::flistxattr(&src, &mut names) {
            for x in names[..n].split(|&b| b == 0).filter(|x| !x.is_empty()) {
                if crate::rootfs::is_overlay_xattr(x) {
                    continue;
                }
                let mut v = vec![0u8; 64 * 1024];
                if let Ok(len) = rustix::fs::fgetxattr(&src, x, &mut v) {
                    rustix::fs::fsetxattr(&dst, x, &v[..len], rustix::fs::XattrFlags::empty())
                        .map_err(Error::entry(name, "copy up: setxattr"))?;
                }
            }
        }
        let t = Timestamps {
            last_access: Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rustix::fs::futimens(&dst, &t).map_err(Error::entry(name, "copy up: set times"))?;
        Ok(true)
    }

    /// The root fd of the lower layer where overlayfs would find `comps`.
    fn find_lower(&self, name: &str, comps: &[&[u8]]) -> Result<Option<OwnedFd>> {
        for lower in &self.opts.lower_layers {
            let root = rustix::fs::open(lower, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::io("open lower layer", lower)(e.into()))?;
            let mut stop_below = false;
            for i in 0..comps.len() {
                let key = join(&comps[..=i]);
                let last = i + 1 == comps.len();
                match rustix::fs::statat(&root, key.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => break,
                    Err(e) => return Err(Error::entry(name, "copy up: look up lower layer")(e)),
                    Ok(st) => {
                        let ft = FileType::from_raw_mode(st.st_mode);
                        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                            return Ok(None); // whited out here
                        }
                        if last {
                            return Ok(Some(root));
                        }
                        if ft != FileType::Directory {
                            return Ok(None); // a file hides the rest of the path
                        }
                        let d = fsutil::open_subdir(root.as_fd(), &key)
                            .map_err(Error::entry(name, "copy up: open lower directory"))?;
                        if crate::rootfs::is_opaque(d.as_fd()) {
                            stop_below = true;
                        }
                    }
                }
            }
            if stop_below {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn finish(&mut self) -> Result<()> {
        // Directory times last: creating their children changed them.
        self.cache = None;
        let times = std::mem::take(&mut self.dir_times);
        for (key, t, mode) in times.iter().rev() {
            if key.is_empty() {
                rustix::fs::utimensat(self.root, ".", t, AtFlags::empty()).map_err(Error::entry("/", "set times"))?;
                continue;
            }
            let comps: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
            let (base, parent) = comps.split_last().map(|(b, p)| (*b, p)).unwrap_or((b"", &[]));
            let name = String::from_utf8_lossy(key).into_owned();
            if let Some(p) = self.parent(&name, parent, false)? {
                if let Some(m) = mode {
                    let fd = fsutil::open_subdir(p.fd(), base).map_err(Error::entry(&name, "open directory"))?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(*m)).map_err(Error::entry(&name, "chmod"))?;
                }
                match rustix::fs::utimensat(p.fd(), base, t, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(err) => return Err(Error::entry(&name, "set times")(err)),
                }
            }
        }
        Ok(())
    }
}

fn uid(u: u64) -> Uid {
    // Range checked in `owner`.
    Uid::from_raw(u as u32)
}

fn gid(g: u64) -> Gid {
    Gid::from_raw(g as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_ahead_only_upper_layers_small_next_to_those_below() {
        assert_eq!(read_ahead_from(&[]), None);
        assert_eq!(read_ahead_from(&[100]), None);
        assert_eq!(read_ahead_from(&[95, 1]), Some(1));
        assert_eq!(read_ahead_from(&[80, 20]), None, "a large top layer is not read twice");
        assert_eq!(read_ahead_from(&[10, 80, 5, 3]), Some(2), "the small run on top");
        assert_eq!(read_ahead_from(&[90, 5, 5]), Some(1));
    }

    #[test]
    fn maps_ids() {
        let m = IdMap::shift(100_000, 65536);
        assert_eq!(IdMap::map(&m.uids, 0), Some(100_000));
        assert_eq!(IdMap::map(&m.uids, 65535), Some(165_535));
        assert_eq!(IdMap::map(&m.uids, 65536), None);
    }
}

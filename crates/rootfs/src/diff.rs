//! From a root filesystem back to layers: `diff` (a container's changes as a new layer,
//! overlay whiteouts turned back into `.wh.` entries), `commit` (that layer added on top of
//! an image in the store, like `docker commit`), `export` (the merged tree as one flat tar,
//! like `docker export`), and per-layer file listings read straight from the blobs.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use wharf_image::media::{self, Compression};
use wharf_image::oci_spec::image::{Descriptor, HistoryBuilder};
use wharf_image::store::Image;
use wharf_image::{Digest, LayerDigests, LayerWriter, Reference, Store};

use crate::apply::{Limits, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::rootfs::{MountMode, Rootfs, get_xattr};
use crate::stream::{self, StreamLimits};
use wharf_tar::{EntryKind, Header, ReaderLimits, TarReader};

/// One entry through the workspace's tar writer.
fn write_entry(w: &mut impl Write, h: &Header, data: Option<&mut dyn Read>) -> io::Result<()> {
    wharf_tar::Writer::new(w).append(h, data)
}

// ---- walking a tree into tar entries ----

/// Where the content of a regular file is read from when the upper dir holds only its
/// metadata (overlayfs metacopy).
struct Walk<'a> {
    /// Convert overlay whiteouts/opaque dirs to `.wh.` entries (diff) or not (export).
    overlay_upper: bool,
    merged: Option<BorrowedFd<'a>>,
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Leave out what is mounted on the tree (a directory mount point is written empty): for a merged view seen
    /// through a container process's root, whose `/proc`, `/dev`, `/sys` and volumes are not its filesystem.
    skip_mounts: bool,
}

fn walk_err<'a>(path: &'a [u8], op: &'static str) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::Entry {
        entry: String::from_utf8_lossy(path).into_owned(),
        op,
        source: e.into(),
    }
}

fn io_entry<'a>(path: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| match crate::error::from_io_opt(e) {
        Ok(inner) => inner,
        Err(e) => Error::Entry {
            entry: String::from_utf8_lossy(path).into_owned(),
            op,
            source: e,
        },
    }
}

fn xattrs_of(fd: BorrowedFd<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut buf) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if crate::rootfs::is_overlay_xattr(name) {
            continue;
        }
        if let Some(v) = get_xattr(fd, name) {
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

impl Walk<'_> {
    fn dir(&mut self, w: &mut impl Write, dir: BorrowedFd<'_>, rel: &[u8]) -> Result<()> {
        let mut names = fsutil::list(dir).map_err(walk_err(rel, "read directory"))?;
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in names {
            self.entry(w, dir, &name, rel)?;
        }
        Ok(())
    }

    /// Writes entry `name` of `dir` (named `rel/name` in the tar), and everything beneath it.
    fn entry(&mut self, w: &mut impl Write, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<()> {
        let mut path = rel.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(walk_err(&path, "stat"))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mount_root = self.skip_mounts
            && rustix::fs::statx(
                dir,
                name,
                AtFlags::SYMLINK_NOFOLLOW,
                rustix::fs::StatxFlags::BASIC_STATS,
            )
            .is_ok_and(|x| x.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT));
        if mount_root && ft != FileType::Directory {
            return Ok(());
        }
        let mut h = Header {
            path: path.clone(),
            kind: EntryKind::File,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            mtime: st.st_mtime,
            size: 0,
            link: Vec::new(),
            major: rustix::fs::major(st.st_rdev),
            minor: rustix::fs::minor(st.st_rdev),
            xattrs: Vec::new(),
        };
        if self.overlay_upper && ft == FileType::CharacterDevice && st.st_rdev == 0 {
            let mut wh = rel.to_vec();
            if !wh.is_empty() {
                wh.push(b'/');
            }
            wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
            wh.extend_from_slice(name);
            h.path = wh;
            h.mode = 0;
            h.major = 0;
            write_entry(w, &h, None).map_err(io_entry(&path, "write"))?;
            return Ok(());
        }
        match ft {
            FileType::Directory => {
                let sub = fsutil::open_subdir(dir, name).map_err(walk_err(&path, "open"))?;
                h.kind = EntryKind::Dir;
                h.xattrs = xattrs_of(sub.as_fd());
                write_entry(w, &h, None).map_err(io_entry(&path, "write"))?;
                if self.overlay_upper && crate::rootfs::is_opaque(sub.as_fd()) {
                    let mut o = path.clone();
                    o.push(b'/');
                    o.extend_from_slice(OPAQUE_MARKER.as_bytes());
                    let oh = Header {
                        path: o,
                        kind: EntryKind::File,
                        mode: 0,
                        xattrs: Vec::new(),
                        ..h
                    };
                    write_entry(w, &oh, None).map_err(io_entry(&path, "write"))?;
                }
                if !mount_root {
                    self.dir(w, sub.as_fd(), &path)?;
                }
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                        h.kind = EntryKind::Hardlink;
                        h.link = first.clone();
                        write_entry(w, &h, None).map_err(io_entry(&path, "write"))?;
                        return Ok(());
                    }
                    self.links.insert((st.st_dev, st.st_ino), path.clone());
                }
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(walk_err(&path, "open"))?;
                h.xattrs = xattrs_of(fd.as_fd());
                let metacopy = get_xattr(fd.as_fd(), b"trusted.overlay.metacopy").is_some();
                let fd: OwnedFd = match (metacopy, self.merged) {
                    (true, Some(m)) => {
                        let p = rustix::fs::openat2(
                            m,
                            path.as_slice(),
                            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                            fsutil::BENEATH,
                        );
                        p.map_err(walk_err(&path, "open merged"))?
                    }
                    _ => fd,
                };
                h.size = st.st_size as u64;
                let mut f = std::fs::File::from(fd);
                write_entry(w, &h, Some(&mut f)).map_err(io_entry(&path, "write"))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(walk_err(&path, "readlink"))?;
                h.kind = EntryKind::Symlink;
                h.link = target.into_bytes();
                write_entry(w, &h, None).map_err(io_entry(&path, "write"))?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                h.kind = match ft {
                    FileType::CharacterDevice => EntryKind::Char,
                    FileType::BlockDevice => EntryKind::Block,
                    _ => EntryKind::Fifo,
                };
                write_entry(w, &h, None).map_err(io_entry(&path, "write"))?;
            }
            _ => {} // sockets are not content
        }
        Ok(())
    }
}

fn tar_tree(
    out: impl Write,
    root: BorrowedFd<'_>,
    overlay_upper: bool,
    merged: Option<BorrowedFd<'_>>,
    compression: Compression,
    skip_mounts: bool,
) -> Result<LayerDigests> {
    let fail = |e: io::Error| Error::Io {
        op: "write layer",
        path: "<layer>".into(),
        source: e,
    };
    let mut walk = Walk {
        overlay_upper,
        merged,
        links: HashMap::new(),
        skip_mounts,
    };
    let mut layer = LayerWriter::new(out, compression).map_err(fail)?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut layer);
        walk.dir(&mut w, root, b"")?;
        w.write_all(&[0u8; 1024]).map_err(io_entry(b"<end>", "write"))?;
        w.flush().map_err(fail)?;
    }
    let (mut out, digests) = layer.finish().map_err(fail)?;
    out.flush().map_err(fail)?;
    Ok(digests)
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", p)(e.into()))
}

/// How [`Rootfs::commit`] records the new image.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Compression of the new layer. Default: gzip.
    pub compression: Compression,
    /// History `created_by`. Default: `"wharf commit"`.
    pub created_by: String,
    /// History comment. Default: none.
    pub comment: Option<String>,
    /// History author. Default: none.
    pub author: Option<String>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            compression: Compression::Gzip,
            created_by: "wharf commit".into(),
            comment: None,
            author: None,
        }
    }
}

impl Rootfs {
    /// Writes the container's changes (its upper dir) as a layer tar to `out`, compressed
    /// as asked: overlay whiteout devices become `.wh.NAME` entries and opaque directories
    /// get a `.wh..wh..opq` entry; overlay's own xattrs are left out.
    ///
    /// # Errors
    /// [`Error::Invalid`] in copy mode (there is no upper dir to diff); IO errors.
    pub fn diff(&self, out: impl Write, compression: Compression) -> Result<LayerDigests> {
        if self.mode() == MountMode::Copy {
            return Err(Error::Invalid {
                what: "diff",
                reason: format!(
                    "{} is a flattened copy, not an overlay: there is no upper dir to diff",
                    self.dir().display()
                ),
            });
        }
        let upper = self.dir().join("upper");
        let up = open_dir(&upper)?;
        let merged = open_dir(&self.path())?;
        tar_tree(out, up.as_fd(), true, Some(merged.as_fd()), compression, false)
    }

    /// Writes the merged root filesystem as one flat, uncompressed tar (like `docker export`).
    ///
    /// # Errors
    /// IO errors.
    pub fn export(&self, out: impl Write) -> Result<Digest> {
        let root = open_dir(&self.merged_view())?;
        Ok(tar_tree(out, root.as_fd(), false, None, Compression::None, self.view.is_some())?.diff_id)
    }

    /// Writes the file or directory at `path` inside the root filesystem as one uncompressed tar (like
    /// `docker cp CONTAINER:PATH -`): an entry named by `path`'s last component, and for a directory everything
    /// beneath it. `path` is resolved inside the root (`RESOLVE_IN_ROOT`): its symlinks, absolute ones too, lead
    /// to places in this filesystem and never out of it; a symlink as the last component is written as the link.
    /// `/` (or an empty path) writes the whole tree, as [`Rootfs::export`] does.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` when it does not exist or its parent is not a directory; IO errors.
    pub fn export_path(&self, path: &str, out: impl Write) -> Result<()> {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", trimmed),
        };
        if name.is_empty() || name == "." {
            return self.export(out).map(drop);
        }
        let root = open_dir(&self.merged_view())?;
        let resolve = rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS;
        let dir = rustix::fs::openat2(
            root.as_fd(),
            if parent.is_empty() { "." } else { parent },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(|e| Error::io("open the parent of", path)(e.into()))?;
        let fail = |e: io::Error| Error::io("write the tar of", path)(e);
        let mut walk = Walk {
            overlay_upper: false,
            merged: None,
            links: HashMap::new(),
            skip_mounts: self.view.is_some(),
        };
        let mut w = io::BufWriter::with_capacity(1 << 20, out);
        walk.entry(&mut w, dir.as_fd(), name.as_bytes(), b"")?;
        w.write_all(&[0u8; 1024]).map_err(fail)?;
        w.flush().map_err(fail)
    }

    /// Adds the container's changes on top of `base` as a new image in `store`, tagged
    /// `name` (like `docker commit`). Returns the new image.
    ///
    /// # Errors
    /// As [`Rootfs::diff`], plus store errors.
    pub fn commit(&self, store: &Store, base: &Image, name: &Reference, opts: &CommitOptions) -> Result<Image> {
        let _lease = store.lease()?;
        let mut writer = store.blob_writer(None, None)?;
        let layer = self.diff(&mut writer, opts.compression)?;
        let (digest, size) = writer.commit()?;
        if digest != layer.digest || size != layer.size {
            return Err(Error::Invalid {
                what: "committed layer",
                reason: format!(
                    "store saw {digest} ({size} bytes), diff wrote {} ({} bytes)",
                    layer.digest, layer.size
                ),
            });
        }
        let now = wharf_image::config::rfc3339(std::time::SystemTime::now());
        let mut hb = HistoryBuilder::default()
            .created(now)
            .created_by(opts.created_by.clone());
        if let Some(c) = &opts.comment {
            hb = hb.comment(c.clone());
        }
        if let Some(a) = &opts.author {
            hb = hb.author(a.clone());
        }
        let history = hb.build().map_err(|e| Error::Invalid {
            what: "history",
            reason: e.to_string(),
        })?;
        let config = base.config.with_added_layer(&layer.diff_id, history);
        let config_bytes = config.to_bytes().map_err(wharf_image::Error::from)?;
        let mut layers = base.manifest.layers().clone();
        layers.push(Descriptor::new(
            wharf_image::media::parse(layer.media_type()),
            layer.size,
            layer.digest.to_oci(),
        ));
        let (desc, _) = store.put_image(&config_bytes, &layers)?;
        store.tag(name, &desc)?;
        Ok(store.image(name, &wharf_image::Platform::host())?)
    }
}

// ---- listing ----

/// One entry of a layer, as listed without extracting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// The path as stored in the layer.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// File size (logical size for sparse files; 0 for others).
    pub size: u64,
    /// Link target for symlinks and hardlinks.
    pub link: Option<String>,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A `.wh.` whiteout or opaque marker rather than content.
    pub whiteout: bool,
}

/// What [`list_layer`] found.
#[derive(Debug, Clone)]
pub struct LayerListing {
    /// Entries in archive order.
    pub entries: Vec<ListedEntry>,
    /// SHA-256 of the uncompressed stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed stream.
    pub uncompressed_size: u64,
    /// Sum of file sizes.
    pub files_size: u64,
}

/// The stream's and the tar reader's budgets for reading one layer on its own (no image
/// budget); `label` is the diff_id the stream is expected to hash to, when known; `queue` the
/// chunks queued between the threads.
fn reading_limits(limits: &Limits, label: Option<Digest>, queue: usize) -> (StreamLimits, ReaderLimits) {
    let stream = StreamLimits {
        max_layer_bytes: limits.max_layer_bytes,
        max_image_bytes: u64::MAX,
        max_ratio: limits.max_compression_ratio,
        image_used: Default::default(),
        progress: Default::default(),
        label,
        queue,
    };
    let reader = ReaderLimits {
        max_metadata: limits.max_metadata_bytes,
        max_xattr_bytes: limits.max_xattr_bytes,
    };
    (stream, reader)
}

/// Lists a layer blob's entries with their sizes, reading (and checking) the stream with the
/// same strict reader and budgets as extraction, but writing nothing.
///
/// # Errors
/// The reader's errors (malformed tar, budgets, damaged compression).
pub fn list_layer<R: Read + Send>(blob: R, compression: Option<Compression>, limits: &Limits) -> Result<LayerListing> {
    let (sl, rl) = reading_limits(limits, None, stream::chunks(limits.max_queued_bytes));
    let max_entries = limits.max_entries;
    let (entries, summary) = stream::run(blob, compression, &sl, |chunks| {
        let mut tar = TarReader::new(chunks, rl);
        let mut out = Vec::new();
        while let Some(e) = tar.next_entry()? {
            if out.len() as u64 >= max_entries {
                return Err(Error::LimitExceeded {
                    limit: crate::Limit::Entries,
                    max: max_entries,
                    entry: Some(e.name()),
                });
            }
            let base = e.path.rsplit(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(&[]);
            out.push(ListedEntry {
                path: e.name(),
                kind: e.kind,
                size: if e.kind == EntryKind::File { e.real_size } else { 0 },
                link: matches!(e.kind, EntryKind::Symlink | EntryKind::Hardlink)
                    .then(|| String::from_utf8_lossy(&e.link).into_owned()),
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                whiteout: base.starts_with(WHITEOUT_PREFIX.as_bytes()),
            });
        }
        Ok(out)
    })?;
    let files_size = entries.iter().map(|e| e.size).sum();
    Ok(LayerListing {
        entries,
        diff_id: summary.diff_id,
        uncompressed_size: summary.uncompressed,
        files_size,
    })
}

/// Reads a layer blob as extraction does — the same decompression pipeline (ISA-L inflate where
/// built with it, hashing on a thread of its own), reader and entry rules and budgets — writing
/// nothing, and checks that the uncompressed stream hashes to `diff_id`. What a pull runs on
/// each layer when it does not extract it, so that an image it names is one unpacking takes.
///
/// # Errors
/// The first problem found, as extraction would report it; [`Error::DiffIdMismatch`].
///
/// # Examples
/// ```
/// use wharf_rootfs::{Limits, check_layer};
/// let mut w = wharf_rootfs::tar::Writer::new(Vec::new());
/// w.append_data(&wharf_rootfs::tar::Header::file("etc/hostname", 0o644), b"box\n")?;
/// let layer = w.finish()?;
/// let diff_id = wharf_rootfs::wharf_image::Digest::sha256(&layer);
/// check_layer(&layer[..], None, &diff_id, &Limits::default())?;
/// let cut = &layer[..514]; // inside the data: refused whatever the diff_id says
/// assert!(check_layer(cut, None, &wharf_rootfs::wharf_image::Digest::sha256(cut), &Limits::default()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_layer<R: Read + Send>(
    blob: R,
    compression: Option<Compression>,
    diff_id: &Digest,
    limits: &Limits,
) -> Result<()> {
    // Nothing is written, so the reader never stalls the decompressor for long: four chunks
    // keep a pull's memory within its budget.
    let (sl, rl) = reading_limits(
        limits,
        Some(diff_id.clone()),
        stream::chunks(limits.max_queued_bytes).min(4),
    );
    let ((), summary) = stream::run(blob, compression, &sl, |chunks| {
        wharf_tar::check_layer(chunks, &rl, limits.max_path_depth)?;
        Ok(())
    })?;
    if summary.diff_id != *diff_id {
        return Err(Error::DiffIdMismatch {
            expected: diff_id.clone(),
            actual: summary.diff_id,
        });
    }
    Ok(())
}

/// Lists every layer of an image from the store's blobs (what `dive` shows per layer),
/// checking each against its diff_id.
///
/// # Errors
/// Store errors, [`list_layer`] errors, [`Error::DiffIdMismatch`].
pub fn list_image_layers(store: &Store, image: &Image, limits: &Limits) -> Result<Vec<(Descriptor, LayerListing)>> {
    let diff_ids = image.config.diff_ids().map_err(wharf_image::Error::from)?;
    let mut out = Vec::new();
    for (desc, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
        let digest = Digest::from_oci(desc.digest()).map_err(wharf_image::Error::from)?;
        let blob = store.open_blob(&digest)?;
        let compression = media::layer_compression(desc.media_type());
        let listing = list_layer(io::BufReader::with_capacity(1 << 20, blob), compression, limits)?;
        if listing.diff_id != diff_id {
            return Err(Error::DiffIdMismatch {
                expected: diff_id,
                actual: listing.diff_id,
            });
        }
        out.push((desc.clone(), listing));
    }
    Ok(out)
}

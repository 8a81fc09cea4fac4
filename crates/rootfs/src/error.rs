//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use wharf_image::Digest;

/// A configurable budget of [`Limits`](crate::Limits) that a layer or image exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Uncompressed bytes of one layer.
    LayerBytes,
    /// Uncompressed bytes of all layers of one image together.
    ImageBytes,
    /// Number of tar entries in one layer.
    Entries,
    /// Uncompressed size divided by compressed size.
    CompressionRatio,
    /// Number of components of an entry's path.
    PathDepth,
    /// Total bytes of one entry's extended attributes (names and values).
    XattrBytes,
    /// Size of one PAX or GNU long-name metadata record.
    MetadataBytes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::LayerBytes => "unpacked bytes per layer",
            Limit::ImageBytes => "unpacked bytes per image",
            Limit::Entries => "entries per layer",
            Limit::CompressionRatio => "compression ratio",
            Limit::PathDepth => "path depth",
            Limit::XattrBytes => "xattr bytes per entry",
            Limit::MetadataBytes => "tar metadata record size",
        })
    }
}

/// Everything that can go wrong in wharf-rootfs.
///
/// Variants about a layer's content name the tar entry (`entry`) as it appears in the
/// archive, so a hostile or damaged layer can be diagnosed from the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation on a host path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Applying one tar entry to the filesystem failed.
    #[error("entry {entry:?}: {op} failed: {source}")]
    Entry {
        /// The entry's name in the archive.
        entry: String,
        /// The operation (`create`, `mkdir`, `link`, …).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An entry's path (or link target) is absolute, contains `..`, or is otherwise not a
    /// plain path beneath the root.
    #[error("entry {entry:?}: unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The entry's name in the archive.
        entry: String,
        /// The offending path (the name itself or the hardlink target).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Resolving an entry's path would leave the root (through a symlink pointing outside
    /// it, an absolute symlink, or a mount point).
    #[error("entry {entry:?}: path {path:?} leads outside of the root filesystem")]
    Escape {
        /// The entry's name in the archive.
        entry: String,
        /// The path whose resolution escaped.
        path: String,
    },
    /// The PAX extended header and the ustar header of one entry disagree.
    #[error("entry {entry:?}: PAX {field} {pax:?} disagrees with the ustar header's {ustar:?}")]
    HeaderMismatch {
        /// The entry's name.
        entry: String,
        /// Which field (`size`, `path`, `linkpath`).
        field: &'static str,
        /// The PAX value.
        pax: String,
        /// The ustar value.
        ustar: String,
    },
    /// A whiteout entry is malformed (`.wh.` alone, `.wh..`, `.wh...`).
    #[error("entry {entry:?}: invalid whiteout: {reason}")]
    BadWhiteout {
        /// The entry's name.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// An entry for the root itself (`/`, `.`, `./`) is not a directory (CVE-2021-29136).
    #[error("entry {entry:?} names the root directory but is not a directory")]
    RootNotDirectory {
        /// The entry's name.
        entry: String,
    },
    /// The tar stream is malformed.
    #[error("malformed tar at byte {offset}: {reason}")]
    Malformed {
        /// Offset in the uncompressed stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The tar stream ended in the middle of a header or an entry's data.
    #[error("layer truncated at byte {offset} (uncompressed){}", entry.as_ref().map(|e| format!(" inside entry {e:?}")).unwrap_or_default())]
    Truncated {
        /// Offset in the uncompressed stream.
        offset: u64,
        /// The entry being read, if any.
        entry: Option<String>,
    },
    /// Non-zero bytes follow the end-of-archive marker.
    #[error("garbage after the end of the tar archive at byte {offset}")]
    TrailingGarbage {
        /// Offset in the uncompressed stream.
        offset: u64,
    },
    /// The entry uses a tar feature wharf does not implement.
    #[error("entry {entry:?}: unsupported: {what}")]
    Unsupported {
        /// The entry's name.
        entry: String,
        /// The feature.
        what: String,
    },
    /// A budget of [`Limits`](crate::Limits) was exceeded.
    #[error("limit exceeded: {limit} (max {max}){}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    LimitExceeded {
        /// Which budget.
        limit: Limit,
        /// Its configured maximum.
        max: u64,
        /// The entry being processed, if any.
        entry: Option<String>,
    },
    /// The compressed stream is damaged (truncated gzip/zstd, bad checksum, garbage after it).
    #[error("{compression} stream damaged: {source}")]
    Decompress {
        /// `gzip` or `zstd`.
        compression: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// Reading the layer blob failed.
    #[error("reading the layer failed: {0}")]
    Read(#[source] io::Error),
    /// The uncompressed stream does not hash to the expected diff_id.
    #[error("layer diff_id mismatch: expected {expected}, content hashes to {actual}")]
    DiffIdMismatch {
        /// The diff_id from the image config.
        expected: Digest,
        /// What the uncompressed stream hashed to.
        actual: Digest,
    },
    /// A uid or gid of an entry has no mapping in the configured [`IdMap`](crate::IdMap).
    #[error("entry {entry:?}: {kind} {id} is not mapped by the id map")]
    Unmapped {
        /// The entry's name.
        entry: String,
        /// `uid` or `gid`.
        kind: &'static str,
        /// The container id.
        id: u64,
    },
    /// A hardlink in an overlay-format layer points to a file of another layer.
    #[error(
        "entry {entry:?}: hardlink target {target:?} is not in this layer (overlay-format layers can only link within themselves)"
    )]
    LinkOutsideLayer {
        /// The entry's name.
        entry: String,
        /// The link target.
        target: String,
    },
    /// A hardlink names a file of its own layer that was not written because a layer above
    /// deletes it ([`ApplyOptions::shadow`](crate::ApplyOptions::shadow)), while the link
    /// itself survives. Apply the layer again without the shadow ([`unpack_image`](crate::unpack_image) does).
    #[error(
        "entry {entry:?}: hardlink target {target:?} was left out because a later layer deletes it; apply this layer again without a shadow"
    )]
    ShadowedLinkTarget {
        /// The entry's name.
        entry: String,
        /// The link target.
        target: String,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] wharf_image::Error),
    /// A mount operation failed.
    #[error("{op} {}: {source}", target.display())]
    Mount {
        /// Which step (`fsopen`, `fsconfig lowerdir+`, `move_mount`, `umount`, …).
        op: String,
        /// The mount point or layer directory concerned.
        target: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An argument or stored document is invalid for the operation.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// An IO error with its operation and path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// An error applying an entry.
    pub(crate) fn entry<'a>(entry: &'a str, op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
        move |e| Error::Entry {
            entry: entry.to_string(),
            op,
            source: e.into(),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The reader's errors become the crate's variants of the same name; a stream error keeps
/// the crate error it may carry (budgets and decompression failures travel through `Read`).
impl From<wharf_tar::Error> for Error {
    fn from(e: wharf_tar::Error) -> Error {
        use wharf_tar::Error as T;
        match e {
            T::Malformed { offset, reason } => Error::Malformed { offset, reason },
            T::Truncated { offset, entry } => Error::Truncated { offset, entry },
            T::TrailingGarbage { offset } => Error::TrailingGarbage { offset },
            T::HeaderMismatch {
                entry,
                field,
                pax,
                ustar,
            } => Error::HeaderMismatch {
                entry,
                field,
                pax,
                ustar,
            },
            T::Unsupported { entry, what } => Error::Unsupported { entry, what },
            T::LimitExceeded { limit, max, entry } => Error::LimitExceeded {
                limit: match limit {
                    wharf_tar::Limit::MetadataBytes => Limit::MetadataBytes,
                    wharf_tar::Limit::XattrBytes => Limit::XattrBytes,
                    wharf_tar::Limit::PathDepth => Limit::PathDepth,
                },
                max,
                entry,
            },
            T::UnsafePath { entry, path, reason } => Error::UnsafePath { entry, path, reason },
            T::RootNotDirectory { entry } => Error::RootNotDirectory { entry },
            T::BadWhiteout { entry, reason } => Error::BadWhiteout { entry, reason },
            T::Read { offset, entry, source } => from_io(source, offset, entry.as_deref()),
            other => Error::Malformed {
                offset: 0,
                reason: other.to_string(),
            },
        }
    }
}

/// Wraps an IO error from the underlying stream, unwrapping a crate error carried inside it
/// (budgets and decompression failures travel through `Read` that way).
pub(crate) fn from_io(e: io::Error, offset: u64, entry: Option<&str>) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Truncated {
            offset,
            entry: entry.map(str::to_string),
        };
    }
    if !e.get_ref().is_some_and(|inner| inner.is::<Carried>()) {
        return Error::Read(e);
    }
    match e.into_inner().map(|b| b.downcast::<Carried>()) {
        Some(Ok(c)) => match c.0 {
            Error::LimitExceeded {
                limit,
                max,
                entry: None,
            } => Error::LimitExceeded {
                limit,
                max,
                entry: entry.map(str::to_string),
            },
            other => other,
        },
        Some(Err(other)) => Error::Read(io::Error::other(other)),
        None => Error::Read(io::Error::other("stream error")),
    }
}

/// The crate error carried inside `e`, or `e` itself.
pub(crate) fn from_io_opt(e: io::Error) -> std::result::Result<Error, io::Error> {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        Ok(from_io(e, 0, None))
    } else {
        Err(e)
    }
}

/// A crate error carried through `io::Error`.
#[derive(Debug)]
pub(crate) struct Carried(pub Error);

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

impl Carried {
    pub(crate) fn io(e: Error) -> io::Error {
        io::Error::other(Carried(e))
    }
}

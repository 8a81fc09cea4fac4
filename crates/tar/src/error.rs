//! The crate's error type.

use std::fmt;
use std::io;

/// A budget of [`ReaderLimits`](crate::ReaderLimits) or of a path that an entry exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Size of one PAX or GNU long-name metadata record.
    MetadataBytes,
    /// Total bytes of one entry's extended attributes (names and values).
    XattrBytes,
    /// Number of components of an entry's path.
    PathDepth,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::MetadataBytes => "tar metadata record size",
            Limit::XattrBytes => "xattr bytes per entry",
            Limit::PathDepth => "path depth",
        })
    }
}

/// Why an archive or one of its entries is refused.
///
/// Variants about an entry name it (`entry`) as it appears in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tar stream is malformed.
    #[error("malformed tar at byte {offset}: {reason}")]
    Malformed {
        /// Offset in the uncompressed stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The stream ended in the middle of a header or an entry's data.
    #[error("tar truncated at byte {offset}{}", entry.as_ref().map(|e| format!(" inside entry {e:?}")).unwrap_or_default())]
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
    /// The PAX extended header and the ustar header of one entry disagree on the size.
    #[error("entry {entry:?}: PAX {field} {pax:?} disagrees with the ustar header's {ustar:?}")]
    HeaderMismatch {
        /// The entry's name.
        entry: String,
        /// Which field (`size`).
        field: &'static str,
        /// The PAX value.
        pax: String,
        /// The ustar value.
        ustar: String,
    },
    /// The entry uses a tar feature this reader does not implement.
    #[error("entry {entry:?}: unsupported: {what}")]
    Unsupported {
        /// The entry's name.
        entry: String,
        /// The feature.
        what: String,
    },
    /// A budget was exceeded.
    #[error("limit exceeded: {limit} (max {max}){}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    LimitExceeded {
        /// Which budget.
        limit: Limit,
        /// Its maximum.
        max: u64,
        /// The entry being read, if any.
        entry: Option<String>,
    },
    /// An entry's path (or hardlink target) is not a plain path beneath the root (a NUL
    /// byte, empty).
    #[error("entry {entry:?}: unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The entry's name in the archive.
        entry: String,
        /// The offending path (the name itself or the link target).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An entry for the root itself (`/`, `.`, `./`) is not a directory (CVE-2021-29136).
    #[error("entry {entry:?} names the root directory but is not a directory")]
    RootNotDirectory {
        /// The entry's name.
        entry: String,
    },
    /// A whiteout entry is malformed (`.wh.` alone, `.wh..`, `.wh...`).
    #[error("entry {entry:?}: invalid whiteout: {reason}")]
    BadWhiteout {
        /// The entry's name.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// Reading the underlying stream failed.
    #[error("reading the tar stream failed at byte {offset}: {source}")]
    Read {
        /// Offset in the uncompressed stream.
        offset: u64,
        /// The entry being read, if any.
        entry: Option<String>,
        /// The stream's error.
        #[source]
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one tar reader and writer of wharf: layers unpacked (wharf-rootfs), archives loaded
//! and imported (wharf-image), layers committed and exported all go through them, so one
//! set of rules decides what an archive means.
//!
//! - [`TarReader`]: a streaming reader of POSIX ustar, PAX (`x` records; `g` records are
//!   skipped), GNU long names and links (`L`/`K`), GNU base-256 numbers (negative ones
//!   too) and sparse files (old GNU `S` entries and GNU's PAX formats 0.0, 0.1 and 1.0).
//!   File data is handed out as slices of the reader's own buffer ([`TarReader::data`]),
//!   so it goes from a decompressor to `write(2)` without another copy.
//! - [`Writer`] and [`Header`]: ustar with PAX records for whatever ustar cannot hold.
//! - [`check_entry`], [`clean_path`], [`check_layer`]: what an entry may be in an image
//!   layer, and a whole layer checked without unpacking it.
//!
//! ## Reading as the ecosystem writes
//! Go's `archive/tar` (containerd, Docker, podman) is the reference; GNU tar, bsdtar,
//! Python's tarfile and umoci are the writers. Accepted as they do:
//! - an archive that ends after the last entry's data, with no padding and no
//!   end-of-archive blocks (umoci 0.4's `insert` and `repack`), or after one zero block;
//! - base-256 numbers, negative ones included (GNU tar's times before 1970);
//! - PAX `path`, `linkpath`, `uid`, `gid`, `mtime` and `size` over the ustar fields, whose
//!   values are then not even parsed (bsdtar writes a truncated name ending in `/` and
//!   base-256 times next to the PAX records);
//! - absolute names and `..`, re-rooted lexically beneath the root ([`clean_path`]).
//!
//! ## Refused where parsers disagree (deliberate differences from containerd)
//! A layer that two tar implementations could read differently is refused, so no scanner,
//! builder or runtime sees other files than wharf does:
//! - a PAX `size` different from a non-zero ustar size ([`Error::HeaderMismatch`]): a
//!   parser ignoring PAX would take file data for headers (Go uses the PAX size);
//! - header-only entries (links, directories, devices, fifos) that declare data (Go skips
//!   none of it, others skip it);
//! - two PAX headers, or two GNU long names, for one entry;
//! - non-zero bytes after the end-of-archive marker ([`Error::TrailingGarbage`]):
//!   containerd stops at the marker, but `tar --ignore-zeros` and scanners reading on would
//!   see entries that were never unpacked;
//! - an entry for the root that is not a directory (CVE-2021-29136), whiteouts naming
//!   nothing, `.` or `..`, empty symlink targets, hardlinks to the root or to themselves.
//!
//! Budgets ([`ReaderLimits`]) bound metadata records and xattrs before anything is applied.

mod error;
mod layer;
mod reader;
mod writer;

pub use error::{Error, Limit, Result};
pub use layer::{LayerSummary, OPAQUE_MARKER, WHITEOUT_PREFIX, check_entry, check_layer, clean_path};
pub use reader::{Entry, EntryKind, ReaderLimits, TarReader};
pub use writer::{Header, Writer};

//! Root filesystems from image layers.
//!
//! - [`apply_layer`] / [`extract_layer`] / [`unpack_image`]: stream a layer blob (tar, gzip
//!   or zstd) onto a directory through a strict tar reader ([`tar`]), flattening whiteouts
//!   or producing an overlay-format layer directory ([`LayerFormat`]), within budgets
//!   ([`Limits`]) and verifying the diff_id while extracting.
//! - [`LayerCache`]: layers extracted once, by diff_id, in overlay format, in parallel,
//!   atomically and safely across processes.
//! - [`Rootfs`]: a container's root filesystem: an overlay of cached layers with its own
//!   upper directory (any number of layers, through the new mount API), or a flattened copy
//!   when overlayfs cannot be used.
//! - [`Rootfs::diff`], [`Rootfs::commit`], [`Rootfs::export`], [`Rootfs::export_path`]: a
//!   container's changes as a new layer (and image, like `docker commit`), its whole tree as one
//!   tar, or one file or directory of it (like `docker cp`), resolved inside the root.
//! - [`list_layer`] / [`list_image_layers`]: per-layer file listings with sizes, read from
//!   the blobs without extracting; [`check_layer`]: a layer read as extraction reads it and
//!   its diff_id verified, writing nothing (what a pull runs on each layer).
//!
//! ## Design choices
//! - **fd-relative everything.** Paths from a layer are never joined onto a host path.
//!   Each entry's parent is opened with `openat2(RESOLVE_BENEATH)` from the root's fd and
//!   the entry is created with an `*at` call relative to it, refusing to follow a symlink in
//!   the last component. A symlink in a parent path is followed only while it stays beneath
//!   the root; one that leads out (absolute, or climbing with `..`) is an error naming the
//!   entry, not a silent re-rooting.
//! - **One reader's rules.** Layers are read with wharf-tar ([`tar`]), as wharf-image
//!   reads them at load and import: strict where tar implementations disagree, accepting
//!   what image tools write.
//! - **Streaming on three threads.** Decompression runs on a helper thread that hands
//!   512 KiB chunks (up to 12 MiB queued) both to a hashing thread (the diff_id) and to the
//!   thread parsing the tar and writing files; file data goes from those chunks to `write(2)`
//!   without another copy, and a regular file costs `openat`, `write`s, `futimens` and
//!   `close` (plus `fchown`/`fchmod`/`fsetxattr` only when needed). Decompression is what
//!   bounds an unpack, so with a diff_id to verify gzip's CRC-32 is not computed as well,
//!   and with the `isal` feature the deflate data is decoded by ISA-L (about a quarter
//!   faster than zlib-rs, the default, on the benchmark's Debian layer).
//!
//! ## Features
//! - `isal`: inflate gzip layers with the system's ISA-L (`libisal`, Debian `libisal-dev`)
//!   through a small C face compiled by the build script. Off by default here, so the crate
//!   stays pure Rust apart from zstd; the `wharf` façade turns it on.
//! - **Not writing what a later layer deletes.** [`unpack_image`] reads small upper layers
//!   ahead ([`Shadow`]: their whiteouts, opaque directories and hardlink targets) and leaves
//!   out the files of lower layers they delete, instead of writing and then removing them
//!   (a clean-up layer removing docs and caches is common).
//! - **Layers apart, in overlay form.** The cache extracts each layer into its own
//!   directory with overlayfs whiteouts, so an image's layers extract in parallel and a
//!   container costs one mount. A hardlink into a lower layer is the exception: that layer
//!   is redone once its lowers exist, copying the target up as overlayfs does.
//! - **Implied directories, per image.** A directory a layer only implies (`usr/bin/x` with
//!   no `usr/` entry) is extracted `0755 root:root` and would hide the lower layers' `usr`
//!   in the overlay. Its right metadata depends on the layers below, which differ between
//!   the images sharing the cached layer, so [`Rootfs`] mounts a small directory-only layer
//!   on top, built once per chain of layers, giving such directories the metadata of the
//!   nearest explicit copy below (as flattening does).
//! - **Privileged calls behind [`Mounter`]**, so the mount sequence is unit-tested with a
//!   recording double while root-only integration tests run the real kernel path.
//!
//! ## Deliberate differences from containerd, Docker and umoci
//! What a tar means is [`tar`]'s (wharf-tar) to say, with its list of refusals: ambiguous
//! headers, data after the end-of-archive marker. Accepted as containerd does: absolute
//! entry names and `..`, re-rooted beneath the root; duplicate entries within a layer, the
//! last one winning (every write is fd-relative beneath the root and never follows a
//! symlink in the last component, so an earlier entry cannot redirect a later one); owners
//! and modes as each entry says, even inside a setgid directory; times before 1970 or past
//! 2262 set to the epoch (Go's `boundTime`). Here:
//! - A symlink in an entry's parent path is followed only while it stays beneath the root;
//!   an absolute symlink or one climbing out is refused ([`Error::Escape`]) rather than
//!   resolved as if the root were `/`.
//! - Overlay-format extraction (the cache) needs privilege: whiteouts are device nodes and
//!   opaque markers `trusted.*` xattrs.

mod apply;
mod cache;
mod diff;
pub mod error;
mod fixup;
mod fsutil;
mod gzip;
#[cfg(wharf_isal)]
mod isal;
mod rootfs;
mod shadow;
mod stream;

/// The deflate decoder this build inflates gzip layers with: `"isa-l"` when the `isal` feature
/// found ISA-L's headers and library at build time, else `"zlib-rs"` (see the `isal` feature).
///
/// # Examples
///
/// ```
/// assert!(["isa-l", "zlib-rs"].contains(&wharf_rootfs::GZIP_INFLATER));
/// ```
pub const GZIP_INFLATER: &str = if cfg!(wharf_isal) { "isa-l" } else { "zlib-rs" };

pub use apply::{
    ApplyOptions, ApplyReport, IdMap, IdRange, ImageBudget, LayerFormat, Limits, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR,
    Ownership, Progress, ProgressEvent, Skipped, USER_OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, apply_layer,
    extract_layer, unpack_image,
};
pub use cache::{CachedLayer, LayerCache, LayerInfo, LayerLock};
pub use diff::{CommitOptions, LayerListing, ListedEntry, check_layer, list_image_layers, list_layer};
pub use error::{Error, Limit, Result};
pub use rootfs::{KernelMounter, MAX_OVERLAY_LAYERS, MountMode, Mounter, Rootfs, RootfsOptions};
pub use shadow::Shadow;
pub use wharf_image;
pub use wharf_image::LayerDigests;
/// The tar reader and writer wharf-rootfs reads layers and writes diffs with.
pub use wharf_tar as tar;

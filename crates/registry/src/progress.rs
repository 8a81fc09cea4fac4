//! Progress events of pulls and pushes: the library emits, the caller renders.

use std::sync::Arc;

use wharf_image::Digest;

/// One event about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The transfer of a blob started.
    Started {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes moved so far (emitted every few hundred KiB, and at the end).
    Bytes {
        /// The blob.
        digest: Digest,
        /// Bytes done.
        done: u64,
        /// The blob's size.
        total: u64,
    },
    /// An interrupted download continues from `offset` (with `Range`), or from 0 when
    /// the server cannot resume.
    Resumed {
        /// The blob.
        digest: Digest,
        /// Where it continues.
        offset: u64,
    },
    /// The blob was verified and stored (pull), or accepted by the registry (push).
    Verified {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Nothing to transfer: the store (pull) or the registry (push) already has it, or it
    /// was mounted from another repository.
    Skipped {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The transfer failed.
    Failed {
        /// The blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// A progress callback; called from the transfer tasks, so it must be quick and thread-safe.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

pub(crate) fn emit(cb: &Option<ProgressFn>, event: Progress) {
    if let Some(cb) = cb {
        cb(&event);
    }
}

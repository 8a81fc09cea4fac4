//! Progress of pulls and pushes: the library emits [`ProgressEvent`]s to a [`Progress`]
//! callback, the caller renders them. The same pattern, under the same names, as
//! wharf-rootfs's layer extraction (`wharf_rootfs::Progress`, `wharf_rootfs::ProgressEvent`).

use std::sync::Arc;

use wharf_image::Digest;

/// One event about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
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
    /// the server cannot resume; also a download that picks up a partial file an earlier
    /// pull left.
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

type ProgressFn = dyn Fn(&ProgressEvent) + Send + Sync;

/// A progress callback; the default reports nothing. Cheap to clone.
///
/// It is called from the transfer tasks, so it must be quick and thread-safe.
///
/// # Examples
/// ```
/// use wharf_registry::{Progress, ProgressEvent, PullOptions};
///
/// let options = PullOptions {
///     progress: Progress::new(|e: &ProgressEvent| {
///         if let ProgressEvent::Verified { digest, size } = e {
///             eprintln!("{digest}: {size} bytes");
///         }
///     }),
///     ..PullOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ProgressFn>>);

impl Progress {
    /// Calls `f` for every event (from several tasks when blobs move in parallel).
    pub fn new(f: impl Fn(&ProgressEvent) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    pub(crate) fn emit(&self, e: ProgressEvent) {
        if let Some(f) = &self.0 {
            f(&e);
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

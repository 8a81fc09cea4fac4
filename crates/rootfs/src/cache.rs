//! The layer cache: each layer extracted once, by diff_id.

use std::path::{Path, PathBuf};

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

//! Pinned network namespaces, as `ip netns add` and containerd make them.

use std::path::{Path, PathBuf};

use rustix::mount::{UnmountFlags, mount_bind, unmount};
use rustix::thread::UnshareFlags;

use crate::{Error, Result};

/// A network namespace kept alive by a bind mount of its nsfs file onto a path, independently of any
/// process.
///
/// This is what makes DEL always complete: the bridge plugin tears down its masquerade rules only when it
/// can still enter the namespace and read the container's addresses, so a namespace that died with its
/// last process (a `/proc/PID/ns/net` path) would leave those rules behind. A pinned namespace outlives a
/// `kill -9` of the container and of the program that made it, until [`remove`](Self::remove).
///
/// # Ambient authority
/// Creates and mounts onto a host path; needs `CAP_SYS_ADMIN` (root, or a user namespace's root whose
/// mount namespace holds the path).
///
/// # Examples
/// ```no_run
/// use wharf_network::NetNs;
/// let ns = NetNs::create("/run/wharf/netns/c1").unwrap();
/// // … spawn the container with ns.path() as its network namespace, attach it, run it …
/// NetNs::remove(ns.path()).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    path: PathBuf,
}

impl NetNs {
    /// A new, empty network namespace (only a down `lo`) pinned at `path`. The parent directory is created.
    ///
    /// # Errors
    /// [`Error::NetNs`] naming the step that failed; a half-made path is removed again.
    pub fn create(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref().to_path_buf();
        let ns_err = |step, source| Error::NetNs {
            path: path.clone(),
            step,
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ns_err("create parent directory", e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ns_err("create mount point", e))?;
        // unshare(CLONE_NEWNET) changes only the calling thread, so a short-lived thread does it and the
        // caller's threads stay where they are.
        let target = path.clone();
        let pinned = std::thread::spawn(move || -> std::result::Result<(), (&'static str, std::io::Error)> {
            // SAFETY: NEWNET does not unshare the file table, the only flag with a caveat.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(|e| ("unshare", e.into()))?;
            mount_bind("/proc/thread-self/ns/net", &target).map_err(|e| ("bind mount", e.into()))
        })
        .join()
        .unwrap_or_else(|_| Err(("unshare", std::io::Error::other("the helper thread panicked"))));
        if let Err((step, source)) = pinned {
            let _ = std::fs::remove_file(&path);
            return Err(ns_err(step, source));
        }
        Ok(NetNs { path })
    }

    /// Unpins and deletes the namespace at `path` (it goes away once no process is left in it). A path
    /// that does not exist is not an error, so removal can be retried.
    ///
    /// # Errors
    /// [`Error::NetNs`] when the unmount or the removal fails for another reason.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ns_err = |step, source| Error::NetNs {
            path: path.to_path_buf(),
            step,
            source,
        };
        match unmount(path, UnmountFlags::DETACH) {
            // EINVAL: not a mount point (a half-made or already unmounted path).
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(ns_err("unmount", e.into())),
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ns_err("remove", e)),
            _ => Ok(()),
        }
    }

    /// Where it is pinned: the path to give CNI and the sandbox.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

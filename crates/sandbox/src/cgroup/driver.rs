//! [`CgroupDriver`]: which cgroup hierarchies the host has, and which one a container's limits go through.

use std::fs;
use std::path::{Path, PathBuf};

use super::{CgroupVersion, V1_CONTROLLERS};
use crate::error::{Error, Result};

/// The cgroup hierarchies found on the host, and the one used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDriver {
    /// The version used for limits.
    pub version: CgroupVersion,
    /// v1: `(controller, mount point)`; v2: `("", mount point)`.
    pub mounts: Vec<(String, PathBuf)>,
}

impl CgroupDriver {
    /// Find the cgroup hierarchies in `/proc/self/mountinfo` and choose one.
    ///
    /// # Errors
    /// [`Error::CgroupUnavailable`] when neither a v1 memory hierarchy nor a cgroup2 mount with the memory controller
    /// exists.
    pub fn detect() -> Result<CgroupDriver> {
        let info = fs::read_to_string("/proc/self/mountinfo").map_err(Error::io("read", "/proc/self/mountinfo"))?;
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mountpoint) = left.split(' ').nth(4) else {
                continue;
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let opts = r.next().unwrap_or("");
            match fstype {
                "cgroup" => {
                    for c in opts.split(',') {
                        if V1_CONTROLLERS.contains(&c) {
                            v1.push((c.to_owned(), PathBuf::from(mountpoint)));
                        }
                    }
                }
                "cgroup2" => v2.push(PathBuf::from(mountpoint)),
                _ => {}
            }
        }
        if v1.iter().any(|(c, _)| c == "memory") {
            return Ok(CgroupDriver {
                version: CgroupVersion::V1,
                mounts: v1,
            });
        }
        for m in v2 {
            let ctrls = fs::read_to_string(m.join("cgroup.controllers")).unwrap_or_default();
            if ctrls.split_whitespace().any(|c| c == "memory") {
                return Ok(CgroupDriver {
                    version: CgroupVersion::V2,
                    mounts: vec![(String::new(), m)],
                });
            }
        }
        Err(Error::CgroupUnavailable {
            controller: "memory".into(),
            reason: "neither a cgroup v1 memory hierarchy nor a cgroup2 mount offering memory is mounted".into(),
        })
    }

    /// The cgroup v2 subtree delegated to the calling user, for an unprivileged caller's containers: the topmost
    /// cgroup at or above the caller's own in the cgroup2 hierarchy that the caller owns and may move processes into
    /// (systemd's `user@UID.service` on most distributions, which also delegates the memory, pids and cpu
    /// controllers on a cgroup v2 host). Returns the driver for that hierarchy and the subtree's path relative to its
    /// root; `None` for root, without a cgroup2 mount, or without such a cgroup. A limit the subtree's controllers
    /// cannot enforce is refused when the container is made ([`Error::CgroupUnavailable`]).
    ///
    /// # Examples
    /// ```
    /// use wharf_sandbox::cgroup::CgroupDriver;
    /// if let Some((driver, subtree)) = CgroupDriver::delegated() {
    ///     // A rootless container's cgroup goes below it, e.g. `SUBTREE/wharf/ID`.
    ///     println!("{} in {:?}", subtree.display(), driver.mounts);
    /// }
    /// ```
    pub fn delegated() -> Option<(CgroupDriver, PathBuf)> {
        let uid = rustix::process::geteuid();
        if uid.is_root() {
            return None;
        }
        let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = info.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split(' ').next() != Some("cgroup2") {
                return None;
            }
            left.split(' ').nth(4).map(PathBuf::from)
        })?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/');
        let may_use = |dir: &Path| {
            fs::metadata(dir).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid.as_raw())
                && rustix::fs::access(dir.join("cgroup.procs"), rustix::fs::Access::WRITE_OK).is_ok()
        };
        let mut best = None;
        let mut cur = PathBuf::from(rel);
        loop {
            if !may_use(&mount.join(&cur)) {
                break;
            }
            best = Some(cur.clone());
            if !cur.pop() {
                break;
            }
        }
        best.map(|subtree| {
            (
                CgroupDriver {
                    version: CgroupVersion::V2,
                    mounts: vec![(String::new(), mount)],
                },
                subtree,
            )
        })
    }

    pub(super) fn mount_of(&self, controller: &str) -> Option<&Path> {
        self.mounts
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_path())
    }
}

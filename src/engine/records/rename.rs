//! Renaming a stopped container: its record's directory takes the new name atomically; its id, cgroup and
//! filesystem (which the record names) stay.

use rustix::fs::RenameFlags;

use super::{Records, check_name, process_exists};
use crate::engine::error::{Error, Result};
use crate::engine::network;

impl Records {
    /// Renames stopped container `old` to `new`: its record's directory is renamed with `RENAME_NOREPLACE`
    /// (a taken name is refused atomically, as [`reserve`](Records::reserve) takes one); its id, cgroup and
    /// filesystem (named by the record) stay. What its stopped process left under its name goes first: the
    /// sandbox's state and its network.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::InvalidName`], [`Error::NameInUse`], [`Error::RenameRunning`].
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        check_name(new)?;
        let Some(held) = self.hold(old, true)? else {
            return Err(Error::NoSuchContainer(old.to_string()));
        };
        if old == new {
            return Err(Error::NameInUse(new.to_string()));
        }
        let record = self.get(old)?;
        if record.creating || record.owner.is_some_and(|o| o.alive()) || process_exists(&self.layout, old) {
            return Err(Error::RenameRunning(old.to_string()));
        }
        let states = self.layout.state_dir()?;
        if states.dir(old).exists() {
            states.delete(old, false)?;
        }
        network::release(&self.layout, old)?;
        // Its filesystem's directory is named in the record from now on, whatever the record is called.
        let rootfs = record.rootfs_dir().to_string();
        self.update_held(old, &held, |r| r.rootfs = Some(rootfs))?;
        for attempt in 0..2 {
            let renamed = rustix::fs::renameat_with(
                rustix::fs::CWD,
                self.path(old),
                rustix::fs::CWD,
                self.path(new),
                RenameFlags::NOREPLACE,
            );
            match renamed {
                Ok(()) => return self.update_held(new, &held, |r| r.name = new.to_string()),
                // A dead process's leftover may hold the name: collect it and try once more.
                Err(rustix::io::Errno::EXIST) if attempt == 0 => self.collect_one(new),
                Err(rustix::io::Errno::EXIST) => break,
                Err(e) => {
                    return Err(Error::Record {
                        name: old.to_string(),
                        source: e.into(),
                    });
                }
            }
        }
        Err(Error::NameInUse(new.to_string()))
    }
}

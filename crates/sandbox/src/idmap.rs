//! A new user namespace's uid and gid maps, written by the parent once the child exists.
//!
//! Root writes `/proc/PID/uid_map` and `gid_map` itself. An unprivileged caller may write them only to map its own
//! ids (one id each, after denying `setgroups`); any wider map — the ranges `/etc/subuid` and `/etc/subgid` grant
//! the user, which a rootless container needs so that an image's files owned by uid 33 stay owned by 33 inside —
//! goes through the setuid helpers `newuidmap` and `newgidmap` (Debian's `uidmap`), which check those ranges. That is
//! what podman, buildah and rootless runc do; wharf ships no setuid binary of its own.

use std::process::Command;

use oci_spec::runtime::LinuxIdMapping;

use crate::clone::write_file;
use crate::error::{Error, Result};

/// Write the maps of the user namespace of process `pid`.
///
/// # Errors
/// [`Error::Io`] when a map file cannot be written, [`Error::IdMap`] when a helper is missing or refuses.
pub(crate) fn write_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    let (euid, egid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    let root = euid == 0;
    if root || own_id_only(uids, euid) {
        write_file(&format!("/proc/{pid}/uid_map"), &map_text(uids), "write uid_map")?;
    } else {
        helper("newuidmap", pid, uids)?;
    }
    if root {
        write_file(&format!("/proc/{pid}/gid_map"), &map_text(gids), "write gid_map")
    } else if own_id_only(gids, egid) {
        // An unprivileged caller may write a gid map only once setgroups is denied.
        write_file(&format!("/proc/{pid}/setgroups"), "deny", "write setgroups")?;
        write_file(&format!("/proc/{pid}/gid_map"), &map_text(gids), "write gid_map")
    } else {
        helper("newgidmap", pid, gids)
    }
}

/// Whether `maps` maps exactly one id, the caller's own `id`: what an unprivileged process may write itself.
fn own_id_only(maps: &[LinuxIdMapping], id: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == id)
}

/// The map file's text: `inside outside count` per line.
fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Run `newuidmap`/`newgidmap` for `pid` with `maps`.
fn helper(tool: &'static str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id(), m.host_id(), m.size()].map(|v| v.to_string()));
    }
    let out = cmd.output().map_err(|e| Error::IdMap {
        tool,
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{tool} is not installed (apt-get install uidmap): an unprivileged user maps ids other than its own \
                 only through it"
            )
        } else {
            e.to_string()
        },
    })?;
    if !out.status.success() {
        return Err(Error::IdMap {
            tool,
            reason: format!(
                "{} ({}; the ranges must lie within the user's lines of /etc/sub{}id)",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status,
                if tool == "newuidmap" { "u" } else { "g" }
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn map(inside: u32, outside: u32, size: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(inside)
            .host_id(outside)
            .size(size)
            .build()
            .expect("a mapping")
    }

    #[test]
    fn only_a_single_map_of_the_callers_own_id_is_written_without_a_helper() {
        assert!(own_id_only(&[map(0, 1000, 1)], 1000));
        assert!(!own_id_only(&[map(0, 1000, 1)], 1001));
        assert!(!own_id_only(&[map(0, 1000, 2)], 1000));
        assert!(!own_id_only(&[map(0, 1000, 1), map(1, 100000, 65536)], 1000));
        assert_eq!(
            map_text(&[map(0, 1000, 1), map(1, 100000, 65536)]),
            "0 1000 1\n1 100000 65536\n"
        );
    }
}

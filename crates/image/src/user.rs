//! Users and groups of a container: `Config.User` (`name`, `uid`, `name:group`, `uid:gid`, …)
//! resolved against the `/etc/passwd` and `/etc/group` of the image's root filesystem, the
//! way Docker (runc's `GetExecUser`) does.
//!
//! The root filesystem is untrusted: its `/etc/passwd` may be a symlink to a host file, an
//! absolute path, `../../`, a FIFO that blocks on open, or gigabytes long. [`RootfsUsers::read`]
//! opens both files with `openat2(RESOLVE_IN_ROOT)` relative to a handle on the rootfs, so
//! every symlink resolves as if the rootfs were `/`; it refuses anything but a regular file
//! and reads at most [`MAX_DB_SIZE`] bytes.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The largest `/etc/passwd` or `/etc/group` read from a root filesystem (1 MiB).
pub const MAX_DB_SIZE: u64 = 1 << 20;

/// The largest uid or gid Docker accepts (`2^31 - 1`).
pub const MAX_ID: u32 = i32::MAX as u32;

/// Why a user could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// A user name that is not in the rootfs's `/etc/passwd`.
    #[error("user {user:?} not found in the image's /etc/passwd")]
    UnknownUser {
        /// The name.
        user: String,
    },
    /// A group name that is not in the rootfs's `/etc/group`.
    #[error("group {group:?} not found in the image's /etc/group")]
    UnknownGroup {
        /// The name.
        group: String,
    },
    /// A user or group given by name, with no rootfs to look it up in.
    #[error("{name:?} is a name, and no root filesystem was given to resolve it")]
    NoRootfs {
        /// The name.
        name: String,
    },
    /// A uid or gid outside `0..=2147483647`.
    #[error("id {id} is out of range 0-{MAX_ID}")]
    OutOfRange {
        /// The id, as written.
        id: String,
    },
    /// The root filesystem directory could not be opened.
    #[error("cannot open root filesystem {}: {source}", path.display())]
    Rootfs {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A user database in the rootfs could not be opened or read.
    #[error("cannot read {file} in the root filesystem: {source}")]
    Read {
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A user database in the rootfs is not a regular file (a FIFO, a device, a directory).
    #[error("{file} in the root filesystem is not a regular file")]
    NotAFile {
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
    },
    /// A user database in the rootfs is larger than [`MAX_DB_SIZE`].
    #[error("{file} in the root filesystem is larger than {limit} bytes")]
    TooLarge {
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
        /// The limit.
        limit: u64,
    },
}

/// A line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (empty when not given).
    pub home: String,
    /// Login shell (empty when not given).
    pub shell: String,
}

/// A line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// User names listed as members.
    pub members: Vec<String>,
}

/// The users and groups of a root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsUsers {
    /// `/etc/passwd`, valid lines in file order.
    pub passwd: Vec<PasswdEntry>,
    /// `/etc/group`, valid lines in file order.
    pub group: Vec<GroupEntry>,
}

impl RootfsUsers {
    /// Reads `/etc/passwd` and `/etc/group` of the root filesystem at `rootfs`; a missing file
    /// counts as empty.
    ///
    /// # Ambient authority
    /// Opens `rootfs` by path; everything beneath it is reached through that handle, and
    /// cannot lead outside it.
    ///
    /// # Errors
    /// [`UserError::Rootfs`] when `rootfs` is not a directory that can be opened;
    /// [`UserError::Read`], [`UserError::NotAFile`] or [`UserError::TooLarge`] for a database
    /// that cannot be used.
    pub fn read(rootfs: &Path) -> Result<RootfsUsers, UserError> {
        let dir = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UserError::Rootfs {
            path: rootfs.to_path_buf(),
            source: e.into(),
        })?;
        RootfsUsers::read_at(&dir)
    }

    /// Like [`RootfsUsers::read`], from a directory handle on the root filesystem.
    ///
    /// # Errors
    /// As [`RootfsUsers::read`].
    pub fn read_at(rootfs: impl AsFd) -> Result<RootfsUsers, UserError> {
        let passwd = read_db(rootfs.as_fd(), "/etc/passwd")?;
        let group = read_db(rootfs.as_fd(), "/etc/group")?;
        Ok(RootfsUsers {
            passwd: parse_passwd(&passwd),
            group: parse_group(&group),
        })
    }
}

/// What a `Config.User` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: the groups of `/etc/group` that list the user, when no group
    /// was given (Docker's behaviour).
    pub additional_gids: Vec<u32>,
    /// The passwd entry's name, when the user has one.
    pub name: Option<String>,
    /// The passwd entry's home directory, when the user has one.
    pub home: Option<String>,
}

/// Resolves a `Config.User` value against a root filesystem's users.
///
/// `user` is `name`, `uid`, `name:group`, `uid:gid`, `name:gid` or `uid:group`; empty means
/// uid 0. A user found in `/etc/passwd` (by name, or by uid when numeric) takes its gid and
/// home from there, and, when no group is given, its supplementary groups from the groups
/// of `/etc/group` that list its name. A numeric uid that is not in `/etc/passwd` runs with
/// gid 0 (or the given group) and no supplementary groups. Without `users` (no rootfs), only
/// numeric ids can be resolved.
///
/// This follows Docker, which also gives a numeric uid found in `/etc/passwd` its
/// supplementary groups, where the image-spec's conversion rules suggest not to.
///
/// # Errors
/// [`UserError::UnknownUser`] / [`UserError::UnknownGroup`] for names that are not there,
/// [`UserError::NoRootfs`] for a name without `users`, [`UserError::OutOfRange`] for ids
/// above 2147483647.
///
/// # Examples
/// ```
/// use wharf_image::user::{RootfsUsers, parse_group, parse_passwd, resolve};
///
/// let users = RootfsUsers {
///     passwd: parse_passwd("root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n"),
///     group: parse_group("root:x:0:\nweb:x:33:\nlogs:x:4:web,root\n"),
/// };
/// let web = resolve("web", Some(&users))?;
/// assert_eq!((web.uid, web.gid, web.additional_gids), (33, 33, vec![4]));
/// assert_eq!(resolve("1000:logs", Some(&users))?.gid, 4);
/// assert_eq!(resolve("1000:1000", None)?.uid, 1000);
/// # Ok::<(), wharf_image::user::UserError>(())
/// ```
pub fn resolve(user: &str, users: Option<&RootfsUsers>) -> Result<ResolvedUser, UserError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let uid_arg = numeric(user_part)?;

    let entry = users.and_then(|db| {
        db.passwd
            .iter()
            .find(|p| p.name == user_part)
            .or_else(|| uid_arg.and_then(|uid| db.passwd.iter().find(|p| p.uid == uid)))
    });
    let mut resolved = match (entry, uid_arg) {
        (Some(p), _) => ResolvedUser {
            uid: p.uid,
            gid: p.gid,
            additional_gids: Vec::new(),
            name: Some(p.name.clone()),
            home: Some(p.home.clone()).filter(|h| !h.is_empty()),
        },
        (None, Some(uid)) => ResolvedUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            name: None,
            home: None,
        },
        (None, None) if users.is_none() => return Err(UserError::NoRootfs { name: user_part.into() }),
        (None, None) => return Err(UserError::UnknownUser { user: user_part.into() }),
    };

    match group_part {
        Some(group) => {
            let gid_arg = numeric(group)?;
            let found = users.and_then(|db| {
                db.group
                    .iter()
                    .find(|g| g.name == group)
                    .or_else(|| gid_arg.and_then(|gid| db.group.iter().find(|g| g.gid == gid)))
            });
            resolved.gid = match (found, gid_arg) {
                (Some(g), _) => g.gid,
                (None, Some(gid)) => gid,
                (None, None) if users.is_none() => return Err(UserError::NoRootfs { name: group.into() }),
                (None, None) => return Err(UserError::UnknownGroup { group: group.into() }),
            };
        }
        None => {
            if let (Some(db), Some(name)) = (users, resolved.name.as_deref()) {
                for g in db.group.iter().filter(|g| g.members.iter().any(|m| m == name)) {
                    if !resolved.additional_gids.contains(&g.gid) {
                        resolved.additional_gids.push(g.gid);
                    }
                }
            }
        }
    }
    for id in [resolved.uid, resolved.gid].iter().chain(&resolved.additional_gids) {
        if *id > MAX_ID {
            return Err(UserError::OutOfRange { id: id.to_string() });
        }
    }
    Ok(resolved)
}

/// `Some(id)` when `s` is all ASCII digits, `None` when it is a name.
fn numeric(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(id) if id <= MAX_ID => Ok(Some(id)),
        _ => Err(UserError::OutOfRange { id: s.into() }),
    }
}

/// Parses `/etc/passwd` text. Comments, NIS (`+`/`-`) lines and lines whose ids are not
/// numbers are skipped: a garbled id never becomes uid 0.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    db_lines(text)
        .filter_map(|f| {
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: id_field(f[2])?,
                gid: id_field(f[3])?,
                home: f.get(5).unwrap_or(&"").to_string(),
                shell: f.get(6).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Parses `/etc/group` text, skipping lines as [`parse_passwd`] does.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    db_lines(text)
        .filter_map(|f| {
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: id_field(f[2])?,
                members: f
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn db_lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| !f[0].is_empty())
}

fn id_field(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads one database file of the rootfs, resolving `path` as if `rootfs` were `/`.
fn read_db(rootfs: BorrowedFd<'_>, file: &'static str) -> Result<String, UserError> {
    let read_err = |e: io::Error| UserError::Read { file, source: e };
    let relative = file.trim_start_matches('/');
    // NONBLOCK: opening a FIFO planted by the image must not hang us.
    let fd = match rustix::fs::openat2(
        rootfs,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(read_err(e.into())),
    };
    let file_handle = File::from(fd);
    let meta = file_handle.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(UserError::NotAFile { file });
    }
    let mut bytes = Vec::new();
    file_handle
        .take(MAX_DB_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_DB_SIZE {
        return Err(UserError::TooLarge {
            file,
            limit: MAX_DB_SIZE,
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbled_ids_are_skipped_not_zero() {
        let p =
            parse_passwd("a:x:notanumber:0::/:/bin/sh\nb:x:5:\n#c:x:6:6\n+nis::0:0\nd:x:7:8:gecos:/home/d:/bin/sh\n");
        assert_eq!(
            p,
            [PasswdEntry {
                name: "d".into(),
                uid: 7,
                gid: 8,
                home: "/home/d".into(),
                shell: "/bin/sh".into()
            }]
        );
        let g = parse_group("g:x:x1:\nh:x:9: a , b,,\n:x:3:\n");
        assert_eq!(
            g,
            [GroupEntry {
                name: "h".into(),
                gid: 9,
                members: vec!["a".into(), "b".into()]
            }]
        );
    }

    #[test]
    fn plus_sign_is_not_numeric() {
        assert!(matches!(
            resolve("+5", Some(&RootfsUsers::default())),
            Err(UserError::UnknownUser { .. })
        ));
        assert!(matches!(resolve("2147483648", None), Err(UserError::OutOfRange { .. })));
        assert!(matches!(
            resolve("99999999999999999999", None),
            Err(UserError::OutOfRange { .. })
        ));
    }
}

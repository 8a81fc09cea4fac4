//! fd-relative filesystem helpers: every call takes a directory fd and a single name (or a
//! path resolved with `openat2(RESOLVE_BENEATH)`), never a joined host path.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Resolution flags for every lookup beneath a root: symlinks may be followed only while
/// they stay beneath it; absolute symlinks, `..` past the root, magic links and mount
/// crossings fail with `EXDEV`/`ELOOP`.
pub(crate) const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Opens a directory beneath `root` as an `O_PATH` fd.
pub(crate) fn open_dir_beneath(root: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// Opens a directory entry `name` of `dir` for reading, refusing symlinks.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory (without `.` and `..`).
pub(crate) fn list(dir: BorrowedFd<'_>) -> Result<Vec<(Vec<u8>, FileType)>, Errno> {
    let mut out = Vec::new();
    let mut d = Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((name.to_vec(), e.file_type()));
    }
    Ok(out)
}

/// Removes `name` in `dir` and, if it is a directory, everything beneath it. Missing is fine.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    // Without privilege a directory's own mode applies to its owner: one the owner cannot read or write (an
    // image's 0555 directory, the 0000 work dir overlayfs leaves in a user namespace) is opened up first.
    let open_up = || rustix::fs::chmodat(dir, name, Mode::RWXU, AtFlags::empty());
    let sub = match open_subdir(dir, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ACCESS) => {
            open_up()?;
            open_subdir(dir, name)?
        }
        Err(e) => return Err(e),
    };
    match clear_dir(sub.as_fd()) {
        Err(Errno::ACCESS) => {
            open_up()?;
            clear_dir(sub.as_fd())?;
        }
        r => r?,
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes everything inside a directory.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    for (name, ft) in list(dir)? {
        if ft == FileType::Directory {
            remove_all_at(dir, &name)?;
        } else {
            match rustix::fs::unlinkat(dir, &name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => remove_all_at(dir, &name)?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Removes a host directory tree, if present.
///
/// # Ambient authority
/// Opens `path` from the process's view of the filesystem.
pub(crate) fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("cannot remove a root path"));
    };
    let parent = rustix::fs::open(
        if parent.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            parent
        },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    use std::os::unix::ffi::OsStrExt;
    remove_all_at(parent.as_fd(), name.as_bytes())?;
    Ok(())
}

/// Creates a directory only its owner can enter: what lies below (set-uid binaries and
/// device nodes from images) must not be reachable by other host users.
///
/// # Ambient authority
/// Creates `path` as given.
pub(crate) fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)?;
    // The umask may have removed nothing we need; make the mode exact anyway.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Asks the filesystem (`on`), or stops asking it, to place each directory created directly in
/// `dir` as the top of a new hierarchy (`FS_TOPDIR_FL`, `chattr +T`): ext4's Orlov allocator
/// then puts it, and so the tree extracted below it, in a block group chosen afresh instead of
/// the parent's.
///
/// This is what keeps a layer extracted right after another was removed at unpack speed. An
/// ext4 without a journal skips the free inodes it freed in the last minutes (more while their
/// inode table is dirty) when it allocates new ones, and scans them from the start of the group
/// for every file it creates: a layer extracted next to one just pruned spent 2–5 s of system
/// time in that scan instead of 0.25 s. Best effort: filesystems without the flag (tmpfs, and
/// any that answer `ENOTTY`/`EOPNOTSUPP`) ignore it, and allocation elsewhere is only a hint.
pub(crate) fn spread_new_trees(dir: BorrowedFd<'_>, on: bool) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    if let Ok(flags) = ioctl_getflags(dir)
        && flags.contains(IFlags::TOPDIR) != on
    {
        let _ = ioctl_setflags(dir, flags ^ IFlags::TOPDIR);
    }
}

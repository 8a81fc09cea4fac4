//! The metadata of implied directories, per chain of layers.
//!
//! A layer with `usr/bin/x` but no `usr/` entry gets a `usr` directory `0755 root:root`
//! when it is extracted on its own (the cache's overlay format). In an overlay mount that
//! directory is the topmost `usr`, so it would hide the mode, owner, xattrs and times that
//! the layers below give `usr` — unlike flattening, where `usr` keeps them. The right
//! metadata depends on the layers below, and a cached layer is shared by images with
//! different layers below it, so it cannot be fixed in the layer itself. Instead, for each
//! chain of layers a small directory-only layer is built once (keyed by the chain's
//! diff_ids) and mounted above all of them: for each directory whose topmost copy is implied,
//! it holds that directory (and its parents) with the metadata of the nearest explicit copy
//! below, as flattening would give; overlayfs takes a directory's attributes from the
//! topmost layer that has it, and merges its contents as before.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use wharf_image::{Algorithm, Hasher};

use crate::cache::{CachedLayer, IMPLIED_DIRS, LayerCache};
use crate::error::{Error, Result};
use crate::fsutil;

/// Where a directory is found in a layer.
enum Found {
    Dir,
    /// Absent here, and nothing below shows through (a whiteout, a non-directory or an
    /// opaque directory on the way).
    Hidden,
    Absent {
        opaque_above: bool,
    },
}

/// Opens `path` beneath `root` without following any symlink.
fn open_beneath(root: &OwnedFd, path: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        fsutil::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
}

fn prefixes(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

fn find(root: &OwnedFd, path: &[u8]) -> Result<Found> {
    let mut opaque_above = false;
    for p in prefixes(path) {
        match open_beneath(root, p) {
            Ok(fd) => {
                if p.len() < path.len() && crate::rootfs::is_opaque(fd.as_fd()) {
                    opaque_above = true;
                }
            }
            Err(Errno::NOENT) => return Ok(Found::Absent { opaque_above }),
            // A whiteout, a file or a symlink: nothing of the path below shows through.
            Err(Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(Found::Hidden),
            Err(e) => return Err(Error::io("open", Path::new(&*String::from_utf8_lossy(p)))(e.into())),
        }
    }
    Ok(Found::Dir)
}

struct Chain {
    roots: Vec<OwnedFd>,
    implied: Vec<HashSet<Vec<u8>>>,
}

impl Chain {
    /// The topmost layer below `below` where overlayfs finds the directory `path`.
    fn lookup(&self, path: &[u8], below: usize) -> Result<Option<usize>> {
        for m in (0..below).rev() {
            match find(&self.roots[m], path)? {
                Found::Dir => return Ok(Some(m)),
                Found::Hidden | Found::Absent { opaque_above: true } => return Ok(None),
                Found::Absent { opaque_above: false } => {}
            }
        }
        Ok(None)
    }

    /// The layer whose copy of `path` gives the merged view its metadata, as flattening
    /// would: the topmost explicit copy, looking past implied ones; an implied copy when
    /// nothing below has the directory. `None` when the merged view has no such directory.
    fn source(&self, path: &[u8]) -> Result<Option<(usize, usize)>> {
        let Some(top) = self.lookup(path, self.roots.len())? else {
            return Ok(None);
        };
        let mut cur = top;
        while self.implied[cur].contains(path) {
            match self.lookup(path, cur)? {
                Some(m) => cur = m,
                None => break,
            }
        }
        Ok(Some((top, cur)))
    }
}

/// The directory-only layer correcting implied directories for `layers` (bottom to top, the
/// visible ones), built if needed; `None` when the chain needs none.
///
/// # Errors
/// IO errors reading the layers or writing the fix-up.
pub(crate) fn ensure(cache: &LayerCache, layers: &[CachedLayer]) -> Result<Option<PathBuf>> {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(b"wharf implied-directory metadata v1\n");
    for l in layers {
        h.update(l.diff_id.to_string().as_bytes());
        h.update(b"\n");
    }
    let dir = cache.root().join("fixups").join(h.finish().hex());
    if dir.join("fs").is_dir() {
        return Ok(Some(dir.join("fs")));
    }
    if dir.join("none").exists() {
        return Ok(None);
    }
    let mut chain = Chain {
        roots: Vec::with_capacity(layers.len()),
        implied: Vec::with_capacity(layers.len()),
    };
    for l in layers {
        let p = l.path.parent().unwrap_or(&l.path).join(IMPLIED_DIRS);
        let implied = match fs::read(&p) {
            Ok(b) => b
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect(),
            // Extracted before implied directories were recorded: nothing to correct.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(Error::io("read", &p)(e)),
        };
        chain.implied.push(implied);
        chain.roots.push(
            rustix::fs::open(
                &l.path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", &l.path)(e.into()))?,
        );
    }
    // Directories whose topmost copy is implied and has an explicit one below, and their
    // parents (which must exist in the fix-up too, each with its merged metadata).
    let mut fix: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let candidates: HashSet<&Vec<u8>> = chain.implied.iter().flatten().collect();
    for d in candidates {
        if let Some((top, src)) = chain.source(d)?
            && src != top
        {
            for p in prefixes(d) {
                if !fix.contains_key(p) {
                    let from = if p == d.as_slice() {
                        src
                    } else {
                        chain.source(p)?.map_or(top, |(_, s)| s)
                    };
                    fix.insert(p.to_vec(), from);
                }
            }
        }
    }
    let tmp = cache.root().join("tmp").join(format!(
        "fixup-{}-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = fsutil::remove_tree(&tmp);
    fsutil::create_private_dir(&tmp).map_err(Error::io("create", &tmp))?;
    let result = (|| {
        if fix.is_empty() {
            fs::write(tmp.join("none"), b"").map_err(Error::io("write", tmp.join("none")))?;
        } else {
            build(&chain, &fix, &tmp.join("fs"))?;
        }
        fs::create_dir_all(cache.root().join("fixups")).map_err(Error::io("create", cache.root().join("fixups")))?;
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another process built the same one first.
            Err(_) if dir.join("fs").is_dir() || dir.join("none").exists() => Ok(()),
            Err(e) => Err(Error::io("rename", &dir)(e)),
        }
    })();
    let _ = fsutil::remove_tree(&tmp);
    result?;
    Ok(dir.join("fs").is_dir().then(|| dir.join("fs")))
}

fn build(chain: &Chain, fix: &BTreeMap<Vec<u8>, usize>, dest: &Path) -> Result<()> {
    fs::create_dir(dest).map_err(Error::io("create", dest))?;
    std::fs::set_permissions(dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(Error::io("chmod", dest))?;
    let root = rustix::fs::open(dest, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", dest)(e.into()))?;
    let err = |p: &[u8]| {
        let p = dest.join(&*String::from_utf8_lossy(p));
        move |e: Errno| Error::io("fix up implied directory", &p)(e.into())
    };
    let split = |p: &[u8]| -> (Vec<u8>, Vec<u8>) {
        match p.iter().rposition(|&b| b == b'/') {
            Some(i) => (p[..i].to_vec(), p[i + 1..].to_vec()),
            None => (b".".to_vec(), p.to_vec()),
        }
    };
    // Parents sort before their children.
    for p in fix.keys() {
        let (parent, name) = split(p);
        let pfd = fsutil::open_dir_beneath(root.as_fd(), &parent).map_err(err(p))?;
        rustix::fs::mkdirat(&pfd, name.as_slice(), Mode::from_raw_mode(0o700)).map_err(err(p))?;
    }
    // Metadata (times last, children first: creating a child changes its parent's mtime).
    for (p, &layer) in fix.iter().rev() {
        let (parent, name) = split(p);
        let sfd = open_beneath(&chain.roots[layer], if parent == b"." { b"." } else { &parent }).map_err(err(p))?;
        let dfd = fsutil::open_dir_beneath(root.as_fd(), &parent).map_err(err(p))?;
        crate::rootfs::copy_meta(sfd.as_fd(), &name, dfd.as_fd(), &name, &rustix::fs::FileType::Directory)
            .map_err(err(p))?;
    }
    Ok(())
}

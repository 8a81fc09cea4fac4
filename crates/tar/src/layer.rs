//! What an entry may be in an image layer, judged entry by entry: the rules wharf-rootfs
//! applies when it unpacks and wharf-image when it loads or imports, so that an image is
//! never accepted by one and refused by the other.

use std::io::BufRead;

use crate::error::{Error, Limit, Result};
use crate::reader::{Entry, EntryKind, ReaderLimits, TarReader};

/// Prefix of a whiteout entry's last component (`dir/.wh.name` deletes `dir/name`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry marking its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Splits an archive path into clean components; `None` means the root itself.
///
/// Absolute names and `..` are re-rooted lexically, as containerd does (Go's
/// `filepath.Clean` on a rooted path): `/etc/passwd` is `etc/passwd`, `a/../../b` is `b`.
/// The components never climb above the root; resolving them beneath the root without
/// following symlinks out of it is the caller's part.
///
/// # Errors
/// [`Error::UnsafePath`] for an empty path or one with a NUL byte (only PAX records can
/// carry one); [`Error::LimitExceeded`] for more than `max_depth` components.
///
/// # Examples
/// ```
/// let comps = wharf_tar::clean_path("e", b"/usr/../etc//./passwd", 64)?.expect("not the root");
/// assert_eq!(comps, [&b"etc"[..], b"passwd"]);
/// assert!(wharf_tar::clean_path("e", b"../..", 64)?.is_none());
/// # Ok::<(), wharf_tar::Error>(())
/// ```
pub fn clean_path<'p>(entry: &str, raw: &'p [u8], max_depth: usize) -> Result<Option<Vec<&'p [u8]>>> {
    let unsafe_path = |reason| Error::UnsafePath {
        entry: entry.to_string(),
        path: String::from_utf8_lossy(raw).into_owned(),
        reason,
    };
    if raw.contains(&0) {
        return Err(unsafe_path("contains a NUL byte"));
    }
    if raw.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    if comps.is_empty() {
        return Ok(None);
    }
    if comps.len() > max_depth {
        return Err(Error::LimitExceeded {
            limit: Limit::PathDepth,
            max: max_depth as u64,
            entry: Some(entry.to_string()),
        });
    }
    Ok(Some(comps))
}

/// Checks the rules an entry must meet on its own in a layer: a clean path and hardlink
/// target ([`clean_path`]), the root only ever a directory, whiteouts that name something,
/// symlinks that point somewhere, hardlinks to something other than the root or themselves.
/// Returns the entry's clean path components (`None` for the root).
///
/// # Errors
/// [`Error::UnsafePath`], [`Error::RootNotDirectory`], [`Error::BadWhiteout`],
/// [`Error::LimitExceeded`] (path depth).
pub fn check_entry(e: &Entry, max_depth: usize) -> Result<Option<Vec<&[u8]>>> {
    let name = e.name();
    let Some(comps) = clean_path(&name, &e.path, max_depth)? else {
        if e.kind != EntryKind::Dir {
            return Err(Error::RootNotDirectory { entry: name });
        }
        return Ok(None);
    };
    let base = comps[comps.len() - 1];
    if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if target.is_empty() {
            return Err(Error::BadWhiteout {
                entry: name,
                reason: "names nothing",
            });
        }
        if target == b"." || target == b".." {
            return Err(Error::BadWhiteout {
                entry: name,
                reason: "names '.' or '..'",
            });
        }
        return Ok(Some(comps));
    }
    let bad_link = |reason| Error::UnsafePath {
        entry: name.clone(),
        path: String::from_utf8_lossy(&e.link).into_owned(),
        reason,
    };
    match e.kind {
        EntryKind::Symlink if e.link.is_empty() || e.link.contains(&0) => {
            return Err(bad_link("empty symlink target or NUL byte"));
        }
        EntryKind::Hardlink => match clean_path(&name, &e.link, max_depth)? {
            None => return Err(bad_link("hardlink to the root")),
            Some(t) if t == comps => return Err(bad_link("hardlink to itself")),
            Some(_) => {}
        },
        _ => {}
    }
    Ok(Some(comps))
}

/// What [`check_layer`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerSummary {
    /// Entries, extended headers not counted.
    pub entries: u64,
    /// Bytes of the uncompressed stream.
    pub bytes: u64,
}

/// Reads a whole uncompressed layer and checks every entry as unpacking would
/// ([`TarReader`]'s rules and [`check_entry`]'s), without writing anything.
///
/// # Errors
/// The first entry or stream problem found.
///
/// # Examples
/// ```
/// let mut w = wharf_tar::Writer::new(Vec::new());
/// w.append_data(&wharf_tar::Header::file("etc/hostname", 0o644), b"box\n")?;
/// let layer = w.finish()?;
/// let summary = wharf_tar::check_layer(&layer[..], &Default::default(), 64)?;
/// assert_eq!(summary.entries, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_layer(r: impl BufRead, limits: &ReaderLimits, max_depth: usize) -> Result<LayerSummary> {
    let mut tar = TarReader::new(r, *limits);
    let mut entries = 0;
    while let Some(e) = tar.next_entry()? {
        entries += 1;
        check_entry(&e, max_depth)?;
    }
    Ok(LayerSummary {
        entries,
        bytes: tar.offset(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_reroots_paths() {
        let n = |p: &str| clean_path("e", p.as_bytes(), 8).map(|o| o.map(|c| c.join(&b'/')));
        assert_eq!(n("./a//b/./c/").unwrap().unwrap(), b"a/b/c");
        assert_eq!(n("/etc/passwd").unwrap().unwrap(), b"etc/passwd");
        assert_eq!(n("a/../../b").unwrap().unwrap(), b"b");
        assert_eq!(n("../").unwrap(), None);
        assert_eq!(n("/").unwrap(), None);
        assert!(matches!(n(""), Err(Error::UnsafePath { .. })));
        assert!(matches!(n("a\0b"), Err(Error::UnsafePath { .. })));
        assert!(matches!(
            n("a/b/c/d/e/f/g/h/i"),
            Err(Error::LimitExceeded {
                limit: Limit::PathDepth,
                ..
            })
        ));
    }
}

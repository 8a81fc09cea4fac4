//! Making and recognising the layout on disk, safe when several processes open a store that
//! does not exist yet (or exists empty) at the same moment.
//!
//! The layout is filled in place (the root may be a mount point, so it cannot be renamed
//! into place) under an exclusive lock on `.wharf/init.lock`, and `oci-layout` is written
//! last: its presence marks a complete layout. A directory without it that holds only what
//! creation makes (`.wharf`, `blobs`, `index.json`, `write_atomic`'s temporary files) is a
//! layout another process is making, or one a killed process left half made: it is
//! finished under the lock, never mistaken for a foreign directory. Anything else in a
//! directory without `oci-layout` is someone else's, and nothing is changed in it.

use std::fs;
use std::io;
use std::path::Path;

use super::{LAYOUT_VERSION, Store, empty_index, lock, write_atomic};
use crate::error::{Error, Result};

/// What layout creation puts in the root before `oci-layout`.
const MADE_BY_INIT: &[&str] = &[".wharf", "blobs", "index.json"];
/// The prefix of `write_atomic`'s temporary files.
const TEMP_PREFIX: &str = ".tmp-";

/// Checks the layout at the store's root, creating it when the directory is missing, empty
/// or half made by a store creation.
pub(super) fn open_or_create(store: &Store) -> Result<()> {
    let root = store.root();
    let not_layout = |reason: String| Error::NotALayout {
        path: root.to_path_buf(),
        reason,
    };
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_layout("not a directory".into())),
        // `create_dir_all` succeeds when another process creates it first.
        // A new store is its owner's alone (0700, as the layer cache below it): other users must not read the images
        // it pulls with its owner's credentials, nor a rootless user's images another user.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
                .create(root)
                .map_err(Error::io("create", root))?
        }
        Err(e) => return Err(Error::io("open", root)(e)),
    }
    if has_marker(root)? {
        return check(store);
    }
    let entries = fs::read_dir(root).map_err(Error::io("read", root))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read", root))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !MADE_BY_INIT.contains(&name.as_ref()) && !name.starts_with(TEMP_PREFIX) {
            // Created meanwhile by another process?
            if has_marker(root)? {
                return check(store);
            }
            return Err(not_layout("no oci-layout file".into()));
        }
    }
    let wharf = root.join(".wharf");
    fs::create_dir_all(&wharf).map_err(Error::io("create", &wharf))?;
    let _guard = lock(&wharf.join("init.lock"), true)?;
    if !has_marker(root)? {
        init(store)?;
    }
    check(store)
}

fn has_marker(root: &Path) -> Result<bool> {
    let path = root.join("oci-layout");
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("stat", &path)(e)),
    }
}

/// Fills the layout in; the caller holds `init.lock`. An `index.json` left by a creation
/// that was killed is rewritten: without `oci-layout` no process ever used the store.
fn init(store: &Store) -> Result<()> {
    let root = store.root();
    let blobs = root.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    let index = serde_json::to_vec(&empty_index()).map_err(|source| Error::Json {
        what: "index.json".into(),
        source,
    })?;
    write_atomic(&root.join("index.json"), &index)?;
    // Temporary files of a killed creation; ours are gone (write_atomic renamed them).
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    // oci-layout last: its presence marks a complete layout.
    write_atomic(
        &root.join("oci-layout"),
        format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#).as_bytes(),
    )
}

/// A layout marked complete must be one wharf can use.
fn check(store: &Store) -> Result<()> {
    let root = store.root();
    let not_layout = |reason: String| Error::NotALayout {
        path: root.to_path_buf(),
        reason,
    };
    let path = root.join("oci-layout");
    let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
    #[derive(serde::Deserialize)]
    struct Layout {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let layout: Layout =
        serde_json::from_slice(&bytes).map_err(|e| not_layout(format!("oci-layout is not valid: {e}")))?;
    if layout.version != LAYOUT_VERSION {
        return Err(not_layout(format!(
            "unsupported imageLayoutVersion {:?}",
            layout.version
        )));
    }
    match store.read_index() {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(not_layout("no index.json file".into()))
        }
        other => other.map(|_| ()),
    }
}

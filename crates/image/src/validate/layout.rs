//! Validation of a whole OCI image layout directory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use super::{DocumentKind, Problem, json};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::{Digest, Error, Hasher};

/// Largest config wharf reads to validate; configs with long histories exceed a manifest's limit.
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// Checks an OCI image layout: the `oci-layout` file, `index.json`, and every blob reachable
/// from it (index → manifests and nested indexes → config and layers), each of which must
/// exist under `blobs/<algorithm>/<hex>` with the size and digest its descriptor gives.
/// Manifests, indexes and configs found on the way are validated as documents.
///
/// Blobs are hashed as they stream from disk; only JSON documents (at most 4 MiB for
/// manifests and indexes, 16 MiB for configs) are read into memory. Blobs referenced only
/// as a `subject`, and blobs no descriptor references, are not checked.
///
/// # Ambient authority
/// Reads files beneath `dir`.
///
/// # Errors
/// [`Error::Io`] only when `dir` itself cannot be read as a directory; everything wrong
/// inside it is returned as a [`Problem`].
pub fn layout(dir: &Path) -> Result<Vec<Problem>, Error> {
    fs::read_dir(dir).map_err(Error::io("read directory", dir))?;
    let mut walker = Walker {
        dir,
        problems: Vec::new(),
        seen: HashSet::new(),
    };

    if let Some(bytes) = walker.read_file("oci-layout", 64 * 1024) {
        let problems = super::document(DocumentKind::LayoutHeader, &bytes);
        walker.extend("oci-layout", problems);
    }
    match fs::metadata(dir.join("blobs")) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => walker.push("blobs", "is not a directory"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => walker.push("blobs", "missing: a layout keeps its blobs here"),
        Err(e) => walker.push("blobs", format!("cannot be read: {e}")),
    }
    if let Some(bytes) = walker.read_file("index.json", MAX_MANIFEST_SIZE as u64) {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(index) => {
                walker.extend("index.json", json(DocumentKind::Index, &index));
                walker.children(&index, "index.json", DocumentKind::Index);
            }
            Err(e) => walker.push("index.json", format!("not valid JSON: {e}")),
        }
    }
    Ok(walker.problems)
}

struct Walker<'a> {
    dir: &'a Path,
    problems: Vec<Problem>,
    seen: HashSet<Digest>,
}

/// `file#pointer`, or `file` for the document itself.
fn located(file: &str, pointer: &str) -> String {
    if pointer.is_empty() {
        file.to_string()
    } else {
        format!("{file}#{pointer}")
    }
}

impl Walker<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn extend(&mut self, file: &str, problems: Vec<Problem>) {
        self.problems.extend(problems.into_iter().map(|p| Problem {
            path: located(file, &p.path),
            message: p.message,
        }));
    }

    /// Reads a small file of the layout, reporting it missing, unreadable or too large.
    fn read_file(&mut self, rel: &str, limit: u64) -> Option<Vec<u8>> {
        let path = self.dir.join(rel);
        let mut buf = Vec::new();
        let read = File::open(&path).and_then(|f| f.take(limit + 1).read_to_end(&mut buf));
        match read {
            Ok(n) if n as u64 > limit => {
                self.push(rel, format!("larger than {limit} bytes; not read"));
                None
            }
            Ok(_) => Some(buf),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.push(rel, "missing: every OCI image layout has this file");
                None
            }
            Err(e) => {
                self.push(rel, format!("cannot be read: {e}"));
                None
            }
        }
    }

    /// Follows the descriptors a manifest or index (at `file`) refers to.
    fn children(&mut self, doc: &Value, file: &str, kind: DocumentKind) {
        let each = |key: &'static str| {
            doc.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, d)| (format!("/{key}/{i}"), d))
        };
        match kind {
            DocumentKind::Index => {
                for (ptr, d) in each("manifests") {
                    self.descriptor(d, &located(file, &ptr));
                }
            }
            DocumentKind::Manifest => {
                if let Some(config) = doc.get("config") {
                    self.descriptor(config, &located(file, "/config"));
                }
                for (ptr, d) in each("layers") {
                    self.descriptor(d, &located(file, &ptr));
                }
            }
            _ => {}
        }
    }

    /// Checks the blob a descriptor (found at `at`) names, and descends into it when it is a
    /// manifest, an index or a config. A descriptor whose digest or size is malformed was
    /// already reported by the document's validation and is skipped.
    fn descriptor(&mut self, d: &Value, at: &str) {
        let Some(digest) = d
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Digest>().ok())
        else {
            return;
        };
        let Some(size) = d.get("size").and_then(Value::as_u64) else {
            return;
        };
        if !self.seen.insert(digest.clone()) {
            return;
        }
        let media_type = d.get("mediaType").and_then(Value::as_str).unwrap_or_default();
        let kind = DocumentKind::for_media_type(media_type);
        let rel = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
        let path = self.dir.join(&rel);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.push(rel, format!("missing: referenced by {at}"));
                return;
            }
            Err(e) => {
                self.push(rel, format!("cannot be read: {e}"));
                return;
            }
        };
        if !meta.is_file() {
            self.push(rel, "is not a regular file");
            return;
        }
        if meta.len() != size {
            self.push(rel, format!("is {} bytes, but {at} says {size}", meta.len()));
            return;
        }
        let limit = match kind {
            Some(DocumentKind::Config) => MAX_CONFIG_SIZE,
            Some(_) => MAX_MANIFEST_SIZE as u64,
            None => 0,
        };
        let content = if kind.is_some() && size <= limit {
            match fs::read(&path) {
                Ok(bytes) => {
                    let mut h = Hasher::new(digest.algorithm());
                    h.update(&bytes);
                    Ok((h.finish(), Some(bytes)))
                }
                Err(e) => Err(e),
            }
        } else {
            hash_file(&path, &digest).map(|d| (d, None))
        };
        let (actual, bytes) = match content {
            Ok(c) => c,
            Err(e) => {
                self.push(rel, format!("cannot be read: {e}"));
                return;
            }
        };
        if actual != digest {
            self.push(rel, format!("corrupted: content hashes to {actual}"));
            return;
        }
        let Some(kind) = kind else {
            return;
        };
        let Some(bytes) = bytes else {
            self.push(
                rel,
                format!("is a {kind} of {size} bytes, larger than the {limit} wharf reads; not checked"),
            );
            return;
        };
        let doc = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.push(
                    rel,
                    format!("{at} says this is a {kind}, but it is not valid JSON: {e}"),
                );
                return;
            }
        };
        let mut problems = json(kind, &doc);
        if let Some(own) = doc.get("mediaType").and_then(Value::as_str)
            && own != media_type
            && !problems.iter().any(|p| p.path == "/mediaType")
        {
            problems.push(Problem::new(
                "/mediaType",
                format!("is {own}, but {at} says {media_type}"),
            ));
        }
        self.extend(&rel, problems);
        self.children(&doc, &rel, kind);
    }
}

/// Hashes a file as it streams from disk.
fn hash_file(path: &Path, digest: &Digest) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

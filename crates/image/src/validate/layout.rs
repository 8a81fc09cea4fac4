//! Validation of a whole OCI image layout directory.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use super::{DocumentKind, Problem, json};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::media::{self, Compression, Kind};
use crate::{Digest, Error, Hasher};

/// Largest config wharf reads to validate; configs with long histories exceed a manifest's limit.
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// Checks an OCI image layout: the `oci-layout` file, `index.json`, and every blob reachable
/// from it (index → manifests and nested indexes → config and layers), each of which must
/// exist under `blobs/<algorithm>/<hex>` with the size and digest its descriptor gives.
/// Manifests, indexes and configs found on the way are validated as documents, and each
/// image's layers are checked against its config: as many layers as `rootfs.diff_ids`, and
/// every layer (tar, gzip or zstd) uncompresses to content with its diff ID.
///
/// Blobs are hashed as they stream from disk; only JSON documents (at most 4 MiB for
/// manifests and indexes, 16 MiB for configs) are read into memory. A compressed layer is
/// read twice (to verify its digest, then decompressed for its diff ID); a blob shared by
/// several images is checked once. Blobs referenced only as a `subject`, and blobs no
/// descriptor references, are not checked.
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
        seen: HashMap::new(),
        diff_ids: HashMap::new(),
        uncompressed: HashMap::new(),
        compared: HashSet::new(),
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
    /// Blobs already checked, and whether they were sound.
    seen: HashMap<Digest, bool>,
    /// Configs read so far: their `rootfs.diff_ids` (None for an entry that is not a digest).
    diff_ids: HashMap<Digest, Vec<Option<Digest>>>,
    /// Layers decompressed so far: the digest of their uncompressed content, or why it failed.
    uncompressed: HashMap<Digest, Result<Digest, String>>,
    /// (config, layer, position) triples already compared, so shared layers report once.
    compared: HashSet<(Digest, Digest, usize)>,
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
                let config = doc
                    .get("config")
                    .and_then(|c| self.descriptor(c, &located(file, "/config")));
                let mut layers = Vec::new();
                for (ptr, d) in each("layers") {
                    let sound = self.descriptor(d, &located(file, &ptr));
                    let media_type = d.get("mediaType").and_then(Value::as_str).unwrap_or_default();
                    layers.push((sound, media::kind(&media::parse(media_type))));
                }
                if let Some(config) = config {
                    self.compare_diff_ids(file, &config, &layers);
                }
            }
            _ => {}
        }
    }

    /// Checks an image's layers against the diff IDs its config lists.
    fn compare_diff_ids(&mut self, manifest: &str, config: &Digest, layers: &[(Option<Digest>, Kind)]) {
        let Some(diff_ids) = self.diff_ids.get(config).cloned() else {
            return;
        };
        let crel = blob_rel(config);
        if diff_ids.len() != layers.len() {
            self.push(
                located(manifest, "/layers"),
                format!(
                    "has {} layers, but the config {crel} lists {} diff_ids",
                    layers.len(),
                    diff_ids.len()
                ),
            );
        }
        for (i, ((layer, kind), expected)) in layers.iter().zip(&diff_ids).enumerate() {
            let (Some(layer), Some(expected), Kind::Layer(compression)) = (layer, expected, kind) else {
                continue;
            };
            if !self.compared.insert((config.clone(), layer.clone(), i)) {
                continue;
            }
            let actual = match self.uncompressed.get(layer) {
                Some(a) => a.clone(),
                None => {
                    let a = self.uncompressed_digest(layer, *compression, expected);
                    self.uncompressed.insert(layer.clone(), a.clone());
                    a
                }
            };
            match actual {
                Ok(actual) if actual == *expected => {}
                Ok(actual) => self.push(
                    located(&crel, &format!("/rootfs/diff_ids/{i}")),
                    format!("is {expected}, but layer {} uncompresses to {actual}", blob_rel(layer)),
                ),
                Err(e) => self.push(blob_rel(layer), e),
            }
        }
    }

    /// The digest, with the algorithm of `like`, of a layer's uncompressed content.
    fn uncompressed_digest(&self, layer: &Digest, compression: Compression, like: &Digest) -> Result<Digest, String> {
        if compression == Compression::None && layer.algorithm() == like.algorithm() {
            return Ok(layer.clone());
        }
        let path = self.dir.join(blob_rel(layer));
        let file = File::open(&path).map_err(|e| format!("cannot be read: {e}"))?;
        let (mut reader, name): (Box<dyn Read>, &str) = match compression {
            Compression::None => (Box::new(file), "tar"),
            Compression::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(file)), "gzip"),
            Compression::Zstd => (
                Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| format!("is not valid zstd: {e}"))?),
                "zstd",
            ),
        };
        hash_reader(&mut reader, like).map_err(|e| format!("is not valid {name} as its media type says: {e}"))
    }

    /// Checks the blob a descriptor (found at `at`) names, and descends into it when it is a
    /// manifest, an index or a config. A descriptor whose digest or size is malformed was
    /// already reported by the document's validation and is skipped.
    ///
    /// Returns the digest when the blob is present and sound.
    fn descriptor(&mut self, d: &Value, at: &str) -> Option<Digest> {
        let digest = d.get("digest").and_then(Value::as_str)?.parse::<Digest>().ok()?;
        let size = d.get("size").and_then(Value::as_u64)?;
        if let Some(&sound) = self.seen.get(&digest) {
            return sound.then_some(digest);
        }
        let media_type = d.get("mediaType").and_then(Value::as_str).unwrap_or_default();
        let content = self.blob(&digest, size, media_type, at);
        let sound = content.is_some();
        self.seen.insert(digest.clone(), sound);
        if let Some(Some((kind, doc))) = content {
            let rel = blob_rel(&digest);
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
            if kind == DocumentKind::Config {
                let ids = doc
                    .pointer("/rootfs/diff_ids")
                    .and_then(Value::as_array)
                    .map(|ids| ids.iter().map(|id| id.as_str().and_then(|s| s.parse().ok())).collect());
                if let Some(ids) = ids {
                    self.diff_ids.insert(digest.clone(), ids);
                }
            }
            self.children(&doc, &rel, kind);
        }
        sound.then_some(digest)
    }

    /// Checks that a blob is present with the right size and digest (`None` otherwise) and,
    /// when its media type names a manifest, index or config, parses it.
    fn blob(
        &mut self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        at: &str,
    ) -> Option<Option<(DocumentKind, Value)>> {
        let kind = DocumentKind::for_media_type(media_type);
        let rel = blob_rel(digest);
        let path = self.dir.join(&rel);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.push(rel, format!("missing: referenced by {at}"));
                return None;
            }
            Err(e) => {
                self.push(rel, format!("cannot be read: {e}"));
                return None;
            }
        };
        if !meta.is_file() {
            self.push(rel, "is not a regular file");
            return None;
        }
        if meta.len() != size {
            self.push(rel, format!("is {} bytes, but {at} says {size}", meta.len()));
            return None;
        }
        let limit = match kind {
            Some(DocumentKind::Config) => MAX_CONFIG_SIZE,
            Some(_) => MAX_MANIFEST_SIZE as u64,
            None => 0,
        };
        let content = if kind.is_some() && size <= limit {
            fs::read(&path).map(|bytes| {
                let mut h = Hasher::new(digest.algorithm());
                h.update(&bytes);
                (h.finish(), Some(bytes))
            })
        } else {
            File::open(&path)
                .and_then(|mut f| hash_reader(&mut f, digest))
                .map(|d| (d, None))
        };
        let (actual, bytes) = match content {
            Ok(c) => c,
            Err(e) => {
                self.push(rel, format!("cannot be read: {e}"));
                return None;
            }
        };
        if actual != *digest {
            self.push(rel, format!("corrupted: content hashes to {actual}"));
            return None;
        }
        let Some(kind) = kind else {
            return Some(None);
        };
        let Some(bytes) = bytes else {
            self.push(
                rel,
                format!("is a {kind} of {size} bytes, larger than the {limit} wharf reads; not checked"),
            );
            return Some(None);
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(doc) => Some(Some((kind, doc))),
            Err(e) => {
                self.push(
                    rel,
                    format!("{at} says this is a {kind}, but it is not valid JSON: {e}"),
                );
                Some(None)
            }
        }
    }
}

fn blob_rel(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

/// Hashes what a reader yields (a file as it streams from disk, or a decompressor), with
/// the algorithm of `like`.
fn hash_reader(reader: &mut dyn Read, like: &Digest) -> io::Result<Digest> {
    let mut hasher = Hasher::new(like.algorithm());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

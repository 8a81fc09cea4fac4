//! Image archives: `docker save` / `docker load` tars, and OCI image layout directories.
//!
//! [`save`] writes the form Docker 25+ writes: a tar that is at once a legacy docker archive
//! (`manifest.json`, `repositories`) and an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), with uncompressed layers whose digests are the image's diff_ids. [`load`]
//! reads that form, the legacy form (`<id>/layer.tar`, symlinked duplicate layers, as skopeo and
//! older Docker write it), and a plain OCI layout in a tar.
//!
//! Loading streams each archive member into a temporary file inside the store while hashing it,
//! so nothing is held whole in memory; members become blobs by `rename` only after every check
//! passed, and a failed load leaves the store as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::media::{self, Compression, Kind};
use crate::store::{CONTAINERD_NAME, MAX_DOCUMENT_SIZE, REF_NAME, write_atomic};
use crate::{Algorithm, Digest, Hasher, ImageConfig, Manifest, Platform, Reference, Store, VerifyingWriter};
use wharf_tar::EntryKind;

/// How many symlinks a member name may pass through before it is refused.
const MAX_LINK_HOPS: usize = 16;

/// One image found in a loaded archive.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    /// The names it was tagged with (none for an untagged image: it is then only reachable by
    /// digest, and a later [`Store::gc`] removes it).
    pub references: Vec<Reference>,
    /// Its manifest in the store.
    pub manifest: Descriptor,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Archive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Normalises an archive member name; `None` when it leaves the archive (absolute, or `..`
/// above the top).
fn clean(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A member of an archive, written to a temporary file and hashed.
#[derive(Debug)]
struct Staged {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// Where documents and blobs of an archive or layout come from.
trait Source {
    /// Describes the source in errors.
    fn origin(&self) -> &Path;
    /// A member by archive path, verified content digest and size.
    fn member(&self, path: &str) -> Result<Option<(Digest, u64)>>;
    /// Reads a small member whole.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Moves or copies a member into the store as the blob `digest` (already checked to match).
    fn store_member(&self, store: &Store, path: &str, digest: &Digest) -> Result<()>;
    /// Opens a member for streaming.
    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>>;
}

/// The members of a tar, staged in a temporary directory of the store.
struct StagedTar {
    origin: PathBuf,
    dir: PathBuf,
    files: HashMap<String, Staged>,
    links: HashMap<String, String>,
}

impl Drop for StagedTar {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl StagedTar {
    fn stage(store: &Store, origin: &Path, input: impl Read) -> Result<StagedTar> {
        let dir = store.temp_path("load");
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let mut staged = StagedTar {
            origin: origin.to_path_buf(),
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
        };
        // The workspace's one tar reader, with the rules layers are read with.
        let mut archive = wharf_tar::TarReader::new(
            BufReader::with_capacity(256 * 1024, input),
            wharf_tar::ReaderLimits::default(),
        );
        let damaged = |e: wharf_tar::Error| bad(origin, format!("damaged tar: {e}"));
        let mut n = 0usize;
        while let Some(entry) = archive.next_entry().map_err(damaged)? {
            n += 1;
            let raw = String::from_utf8_lossy(&entry.path).to_string();
            let name = clean(&raw).ok_or_else(|| bad(origin, format!("member {raw:?} points outside the archive")))?;
            match entry.kind {
                EntryKind::File if entry.sparse.is_some() => {
                    return Err(bad(origin, format!("member {name:?} is a sparse file")));
                }
                EntryKind::File => {
                    let path = staged.dir.join(n.to_string());
                    let file = File::create(&path).map_err(Error::io("create", &path))?;
                    let mut w = VerifyingWriter::new(io::BufWriter::new(file), Algorithm::Sha256, None, None);
                    loop {
                        let buf = archive.data().map_err(damaged)?;
                        if buf.is_empty() {
                            break;
                        }
                        w.write_all(buf).map_err(Error::io("write", &path))?;
                        let k = buf.len();
                        archive.consume(k);
                    }
                    let (_, digest, size) = w.finish().map_err(Error::io("write", &path))?;
                    if staged
                        .files
                        .insert(name.clone(), Staged { path, digest, size })
                        .is_some()
                    {
                        return Err(bad(origin, format!("member {name:?} appears twice")));
                    }
                }
                EntryKind::Symlink | EntryKind::Hardlink => {
                    let target = String::from_utf8_lossy(&entry.link).to_string();
                    let resolved = if entry.kind == EntryKind::Hardlink {
                        clean(&target) // hard link names are relative to the archive root
                    } else {
                        let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                        clean(&format!("{parent}/{target}"))
                    };
                    let resolved = resolved.ok_or_else(|| {
                        bad(
                            origin,
                            format!("link {name:?} -> {target:?} points outside the archive"),
                        )
                    })?;
                    staged.links.insert(name, resolved);
                }
                // Directories and anything else carry no content we need.
                _ => {}
            }
        }
        Ok(staged)
    }

    fn resolve(&self, path: &str) -> Result<&Staged> {
        let mut name = clean(path).ok_or_else(|| bad(&self.origin, format!("{path:?} points outside the archive")))?;
        for _ in 0..=MAX_LINK_HOPS {
            if let Some(f) = self.files.get(&name) {
                return Ok(f);
            }
            match self.links.get(&name) {
                Some(next) => name = next.clone(),
                None => return Err(bad(&self.origin, format!("{path:?} is not in the archive"))),
            }
        }
        Err(bad(&self.origin, format!("{path:?}: too many levels of links")))
    }
}

impl Source for StagedTar {
    fn origin(&self) -> &Path {
        &self.origin
    }
    fn member(&self, path: &str) -> Result<Option<(Digest, u64)>> {
        match self.resolve(path) {
            Ok(s) => Ok(Some((s.digest.clone(), s.size))),
            Err(_) if clean(path).is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let s = self.resolve(path)?;
        if s.size > MAX_DOCUMENT_SIZE {
            return Err(bad(
                &self.origin,
                format!("{path} is {} bytes: too large for a document", s.size),
            ));
        }
        fs::read(&s.path).map_err(Error::io("read", &s.path))
    }
    fn store_member(&self, store: &Store, path: &str, digest: &Digest) -> Result<()> {
        let s = self.resolve(path)?;
        if &s.digest != digest {
            return Err(bad(
                &self.origin,
                format!("{path} hashes to {}, not {digest}", s.digest),
            ));
        }
        if store.has_blob(digest) {
            return Ok(());
        }
        // The same member may be adopted twice (shared layers): copy when already moved.
        if s.path.exists() {
            store.adopt(&s.path, digest)
        } else {
            Err(bad(&self.origin, format!("{path}: staged file vanished")))
        }
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>> {
        let s = self.resolve(path)?;
        let f = File::open(&s.path).map_err(Error::io("open", &s.path))?;
        Ok(Box::new(BufReader::new(f)))
    }
}

/// An OCI image layout directory.
struct LayoutDir {
    dir: PathBuf,
}

impl LayoutDir {
    fn path(&self, path: &str) -> Result<PathBuf> {
        let rel = clean(path).ok_or_else(|| bad(&self.dir, format!("{path:?} points outside the layout")))?;
        Ok(self.dir.join(rel))
    }
}

impl Source for LayoutDir {
    fn origin(&self) -> &Path {
        &self.dir
    }
    fn member(&self, path: &str) -> Result<Option<(Digest, u64)>> {
        let p = self.path(path)?;
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(bad(&self.dir, format!("{path} is not a regular file"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat", &p)(e)),
        };
        // A layout names blobs by digest: hash to confirm it.
        let alg = if path.contains("/sha512/") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        };
        let mut h = Hasher::new(alg);
        let mut f = File::open(&p).map_err(Error::io("open", &p))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(Error::io("read", &p))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Some((h.finish(), meta.len())))
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.path(path)?;
        let f = File::open(&p).map_err(Error::io("open", &p))?;
        let mut bytes = Vec::new();
        f.take(MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("read", &p))?;
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(bad(&self.dir, format!("{path} is too large for a document")));
        }
        Ok(bytes)
    }
    fn store_member(&self, store: &Store, path: &str, digest: &Digest) -> Result<()> {
        let p = self.path(path)?;
        let f = File::open(&p).map_err(Error::io("open", &p))?;
        store.put_blob(BufReader::new(f), Some(digest), None).map(|_| ())
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + '_>> {
        let p = self.path(path)?;
        let f = File::open(&p).map_err(Error::io("open", &p))?;
        Ok(Box::new(BufReader::new(f)))
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
    let what = what.into();
    move |source| Error::Json { what, source }
}

/// [`crate::check_layer`] with its error as text, for [`Error::Archive`]'s reason.
fn check_layer(r: impl Read, compression: Compression) -> std::result::Result<Digest, String> {
    crate::layer::check_layer(r, Some(compression)).map_err(|e| e.to_string())
}

fn sniff(src: &dyn Source, path: &str) -> Result<Compression> {
    let mut head = [0u8; 4];
    let mut r = src.open(path)?;
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(bad(src.origin(), format!("reading {path}: {e}"))),
        }
    }
    Ok(Compression::sniff(&head[..n]))
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Loads a `docker save` archive (or an OCI layout in a tar) into the store, like `docker load`.
///
/// `origin` only names the archive in errors. Every member is hashed as it streams; layers are
/// checked against the config's diff_ids and read entry by entry with the rules unpacking
/// applies ([`wharf_tar::check_layer`]), so an image that `run` would refuse is not loaded;
/// names are tagged only after all images of the archive were verified and stored.
///
/// # Errors
/// [`Error::Archive`] for a damaged or hostile archive (members or references leaving it,
/// missing members, layers that do not match the config or that unpacking would refuse), and
/// the store's errors. The store's names are unchanged on error.
pub fn load(store: &Store, origin: &Path, input: impl Read) -> Result<Vec<LoadedImage>> {
    let _lease = store.lease()?;
    let staged = StagedTar::stage(store, origin, input)?;
    let mut plan = Plan::default();
    if staged.member("index.json")?.is_some() && staged.member("oci-layout")?.is_some() {
        plan_layout(&staged, None, true, &mut plan)?;
    } else if staged.member("manifest.json")?.is_some() {
        plan_docker(&staged, &mut plan)?;
    } else {
        return Err(bad(
            origin,
            "neither manifest.json nor an OCI layout (index.json, oci-layout) found",
        ));
    }
    plan.commit(store, &staged)
}

/// What a verified archive or layout adds to the store. Everything is checked while planning;
/// only then are blobs moved in and names tagged, so bad input adds nothing.
#[derive(Default)]
struct Plan {
    /// Members to store as blobs, by member path, already verified to hash to the digest.
    blobs: Vec<(String, Digest)>,
    /// Images: a manifest (a member already in `blobs`, or new bytes) and their names.
    images: Vec<(PlannedManifest, Vec<Reference>)>,
}

enum PlannedManifest {
    Member(Box<Descriptor>),
    New(Vec<u8>),
}

impl Plan {
    fn commit(self, store: &Store, src: &dyn Source) -> Result<Vec<LoadedImage>> {
        for (path, digest) in &self.blobs {
            src.store_member(store, path, digest)?;
        }
        let mut out = Vec::new();
        for (manifest, references) in self.images {
            let manifest = match manifest {
                PlannedManifest::Member(d) => *d,
                PlannedManifest::New(bytes) => {
                    store
                        .put_manifest(&bytes, Some("application/vnd.oci.image.manifest.v1+json"))?
                        .0
                }
            };
            out.push(LoadedImage { references, manifest });
        }
        for image in &out {
            for r in &image.references {
                store.tag(r, &image.manifest)?;
            }
        }
        Ok(out)
    }
}

/// Plans the images of a legacy `manifest.json`.
fn plan_docker(src: &StagedTar, plan: &mut Plan) -> Result<()> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&src.read("manifest.json")?).map_err(json_err("manifest.json"))?;
    for entry in entries {
        let config_bytes = src.read(&entry.config)?;
        let config = ImageConfig::parse(&config_bytes)?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != entry.layers.len() {
            return Err(bad(
                src.origin(),
                format!(
                    "{} lists {} layers but its config has {} diff_ids",
                    entry.config,
                    entry.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let (digest, size) = src
                .member(path)?
                .ok_or_else(|| bad(src.origin(), format!("layer {path:?} is not in the archive")))?;
            let compression = sniff(src, path)?;
            let actual = check_layer(src.open(path)?, compression)
                .map_err(|e| bad(src.origin(), format!("layer {path}: {e}")))?;
            if &actual != diff_id {
                return Err(bad(
                    src.origin(),
                    format!("layer {path} has diff_id {actual}, config says {diff_id}"),
                ));
            }
            let media_type = match compression {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
            };
            plan.blobs.push((path.clone(), digest.clone()));
            layers.push(Descriptor::new(media_type, size, digest.to_oci()));
        }
        let config_digest = Digest::sha256(&config_bytes);
        plan.blobs.push((entry.config.clone(), config_digest.clone()));
        let manifest = image_manifest(
            Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                config_digest.to_oci(),
            ),
            layers,
        )?;
        let references = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse::<Reference>().map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        plan.images.push((PlannedManifest::New(manifest), references));
    }
    Ok(())
}

fn image_manifest(config: Descriptor, layers: Vec<Descriptor>) -> Result<Vec<u8>> {
    crate::manifest::oci_image(&config, &layers).map_err(json_err("manifest"))
}

/// Copies what an OCI layout's index references into the store; returns the named images
/// (untagged yet). A bare-tag `ref.name` takes its repository from `repository`; without
/// one, the entry stays unnamed when `lenient`, else it is an error.
fn plan_layout(src: &dyn Source, repository: Option<&Reference>, lenient: bool, plan: &mut Plan) -> Result<()> {
    let layout: serde_json::Value = serde_json::from_slice(&src.read("oci-layout")?).map_err(json_err("oci-layout"))?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(bad(src.origin(), "oci-layout: imageLayoutVersion is not 1.0.0"));
    }
    let index = Manifest::parse(&src.read("index.json")?, None)?;
    let Manifest::Index { index, .. } = index else {
        return Err(bad(src.origin(), "index.json is not an image index"));
    };
    for entry in index.manifests() {
        plan_tree(src, entry, true, plan)?;
        let annotations = entry.annotations().clone().unwrap_or_default();
        // ref.name is what skopeo and umoci address and maintain; a containerd name may be stale
        // (umoci copies it onto new tags), so it only supplies the repository for a bare tag.
        let containerd = annotations
            .get(CONTAINERD_NAME)
            .map(|n| n.parse::<Reference>())
            .transpose()?;
        let name = match annotations.get(REF_NAME) {
            Some(n) if n.contains('/') || n.contains(':') => Some(n.parse::<Reference>()?),
            Some(tag) => match repository.or(containerd.as_ref()) {
                Some(repo) => Some(repo.with_tag(tag)),
                None if lenient => None,
                None => {
                    return Err(bad(
                        src.origin(),
                        format!("index entry {tag:?} is a bare tag: give the repository to import it under"),
                    ));
                }
            },
            None => containerd,
        };
        let mut desc = Descriptor::new(entry.media_type().clone(), entry.size(), entry.digest().clone());
        desc.set_platform(entry.platform().clone());
        plan.images
            .push((PlannedManifest::Member(Box::new(desc)), name.into_iter().collect()));
    }
    Ok(())
}

/// Plans a descriptor's blob and (for manifests and indexes) what it references, children
/// before parents, verifying each. Missing children of an index are allowed (a layout may hold
/// one platform); anything an image manifest references must be there.
fn plan_tree(src: &dyn Source, d: &Descriptor, required: bool, plan: &mut Plan) -> Result<()> {
    let digest = Digest::from_oci(d.digest())?;
    let path = blob_member(&digest);
    let Some((actual, size)) = src.member(&path)? else {
        if required {
            return Err(bad(src.origin(), format!("blob {digest} is referenced but missing")));
        }
        return Ok(());
    };
    if actual != digest || size != d.size() {
        return Err(bad(
            src.origin(),
            format!(
                "blob {digest}: content hashes to {actual} with {size} bytes (descriptor says {} bytes)",
                d.size()
            ),
        ));
    }
    if let Kind::Layer(compression) = media::kind(d.media_type()) {
        check_layer(src.open(&path)?, compression).map_err(|e| bad(src.origin(), format!("layer {digest}: {e}")))?;
    }
    if matches!(media::kind(d.media_type()), Kind::Manifest | Kind::Index) {
        let m = Manifest::parse(&src.read(&path)?, Some(d.media_type().as_ref()))?;
        let is_index = matches!(m, Manifest::Index { .. });
        for child in m.descriptors() {
            plan_tree(src, child, !is_index, plan)?;
        }
    }
    plan.blobs.push((path, digest));
    Ok(())
}

/// Imports the images of an OCI image layout directory (as `skopeo copy … oci:DIR:TAG` or
/// `umoci` write it). Names come from `io.containerd.image.name`, or from a full reference in
/// `org.opencontainers.image.ref.name`, or, for a bare tag there, from `repository` with that tag.
///
/// # Errors
/// [`Error::Archive`] for a layout with missing or damaged blobs, or a bare tag without a
/// `repository`; the store's names are unchanged on error.
pub fn import_layout(store: &Store, dir: &Path, repository: Option<&Reference>) -> Result<Vec<LoadedImage>> {
    let _lease = store.lease()?;
    let src = LayoutDir { dir: dir.to_path_buf() };
    let mut plan = Plan::default();
    plan_layout(&src, repository, false, &mut plan)?;
    plan.commit(store, &src)
}

/// How [`export_layout`] names images in the layout's `index.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefNames {
    /// `org.opencontainers.image.ref.name` is the tag (`latest`), as skopeo's `oci:DIR:TAG` and
    /// umoci's `--image DIR:TAG` expect; the full name goes in `io.containerd.image.name`.
    #[default]
    Tag,
    /// `org.opencontainers.image.ref.name` is the full reference.
    Full,
}

/// Writes the images to an OCI image layout directory (created, or added to when it already is
/// a layout), one single-platform manifest per reference.
///
/// # Errors
/// [`Error::ImageNotFound`]; [`Error::Invalid`] when two references would get the same name in
/// [`RefNames::Tag`] mode; [`Error::NotALayout`] for an existing directory that is not a layout.
pub fn export_layout(
    store: &Store,
    refs: &[Reference],
    platform: &Platform,
    dir: &Path,
    names: RefNames,
) -> Result<()> {
    let mut entries: Vec<Descriptor> = Vec::new();
    let mut seen = HashSet::new();
    let blobs = dir.join("blobs").join("sha256");
    prepare_layout(dir)?;
    fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    for r in refs {
        let image = store.image(r, platform)?;
        let name = match names {
            RefNames::Tag => r.tag().unwrap_or(crate::reference::DEFAULT_TAG).to_string(),
            RefNames::Full => r.to_string(),
        };
        if !seen.insert(name.clone()) {
            return Err(Error::Invalid {
                what: "export",
                reason: format!("two images would both be named {name:?} in the layout: export them separately"),
            });
        }
        let manifest_digest = Digest::from_oci(image.manifest_descriptor.digest())?;
        let all = std::iter::once(manifest_digest)
            .chain(std::iter::once(image.config_digest.clone()))
            .chain(
                image
                    .manifest
                    .layers()
                    .iter()
                    .map(|l| Digest::from_oci(l.digest()))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        for d in all {
            let dest = dir.join(blob_member(&d));
            if dest.exists() {
                continue;
            }
            copy_blob(store, &d, &dest)?;
        }
        let mut entry = Descriptor::new(
            image.manifest_descriptor.media_type().clone(),
            image.manifest_descriptor.size(),
            image.manifest_descriptor.digest().clone(),
        );
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(REF_NAME.to_string(), name);
        annotations.insert(CONTAINERD_NAME.to_string(), r.to_string());
        entry.set_annotations(Some(annotations));
        let cfg = image.config.inner();
        let plat = oci_spec::image::PlatformBuilder::default()
            .os(cfg.os().clone())
            .architecture(cfg.architecture().clone())
            .build()
            .map_err(|e| Error::Invalid {
                what: "platform",
                reason: e.to_string(),
            })?;
        entry.set_platform(Some(plat));
        entries.push(entry);
    }
    // Merge with what the layout already names.
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).map_err(Error::io("read", &index_path))?)
            .map_err(json_err("index.json"))?;
    let mut manifests: Vec<serde_json::Value> = index["manifests"].as_array().cloned().unwrap_or_default();
    for e in entries {
        let value = serde_json::to_value(&e).map_err(json_err("descriptor"))?;
        let name = value["annotations"][REF_NAME].clone();
        manifests.retain(|m| m["annotations"][REF_NAME] != name);
        manifests.push(value);
    }
    index["manifests"] = serde_json::Value::Array(manifests);
    write_atomic(
        &index_path,
        &serde_json::to_vec(&index).map_err(json_err("index.json"))?,
    )
}

fn prepare_layout(dir: &Path) -> Result<()> {
    let layout = dir.join("oci-layout");
    if layout.exists() {
        return Ok(());
    }
    if let Ok(mut rd) = fs::read_dir(dir)
        && rd.next().is_some()
    {
        return Err(Error::NotALayout {
            path: dir.to_path_buf(),
            reason: "directory is not empty and has no oci-layout".into(),
        });
    }
    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    write_atomic(
        &dir.join("index.json"),
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    )?;
    write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
}

fn copy_blob(store: &Store, d: &Digest, dest: &Path) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    let temp = parent.join(format!(".{}.partial", d.hex()));
    let res = (|| {
        let src = store.open_blob(d)?;
        let out = File::create(&temp).map_err(Error::io("create", &temp))?;
        let mut w = VerifyingWriter::new(io::BufWriter::new(out), d.algorithm(), Some(d.clone()), None);
        io::copy(&mut BufReader::new(src), &mut w).map_err(Error::io("copy", &temp))?;
        let (buf, _, _) = w.finish().map_err(|e| Error::verification(e, d, "write", &temp))?;
        let f = buf
            .into_inner()
            .map_err(|e| Error::io("write", &temp)(e.into_error()))?;
        f.sync_all().map_err(Error::io("fsync", &temp))?;
        fs::rename(&temp, dest).map_err(Error::io("rename", dest))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&temp);
    }
    res
}

/// Writes a `docker save` archive of the images (for `platform`) to `out`, in the form Docker 25+
/// writes: a legacy `manifest.json` + `repositories` and, in the same tar, an OCI image layout.
/// Layers are written uncompressed (their digests are the diff_ids), as `docker load` and
/// `skopeo copy docker-archive:` expect.
///
/// # Errors
/// [`Error::ImageNotFound`], [`Error::Corrupt`] when a stored layer does not decompress to its
/// diff_id, IO errors of `out`.
pub fn save(store: &Store, refs: &[Reference], platform: &Platform, out: impl Write) -> Result<()> {
    let mut tar = wharf_tar::Writer::new(io::BufWriter::new(out));
    let write_err = |e: io::Error| Error::io("write", "archive")(e);
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append(&wharf_tar::Header::dir(dir, 0o755), None)
            .map_err(write_err)?;
    }
    let mut written: HashSet<Digest> = HashSet::new();
    // Group names by manifest, keeping the order of first appearance.
    let mut images: Vec<(crate::store::Image, Vec<Reference>)> = Vec::new();
    for r in refs {
        let image = store.image(r, platform)?;
        match images.iter_mut().find(|(i, _)| i.config_digest == image.config_digest) {
            Some((_, names)) => names.push(r.clone()),
            None => images.push((image, vec![r.clone()])),
        }
    }
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut index_entries = Vec::new();
    for (image, names) in &images {
        let diff_ids = image.config.diff_ids()?;
        if diff_ids.len() != image.manifest.layers().len() {
            return Err(Error::Invalid {
                what: "image",
                reason: format!(
                    "{}: {} layers but {} diff_ids",
                    names[0],
                    image.manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layer_descs = Vec::new();
        for (layer, diff_id) in image.manifest.layers().iter().zip(&diff_ids) {
            let size = append_layer(store, &mut tar, layer, diff_id, &mut written)?;
            layer_descs.push(Descriptor::new(MediaType::ImageLayer, size, diff_id.to_oci()));
        }
        let config_bytes = store.read_blob(&image.config_digest, MAX_DOCUMENT_SIZE)?;
        append_bytes(
            &mut tar,
            &blob_member(&image.config_digest),
            &config_bytes,
            &mut written,
            &image.config_digest,
        )?;
        let manifest = image_manifest(
            Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                image.config_digest.to_oci(),
            ),
            layer_descs,
        )?;
        let manifest_digest = Digest::sha256(&manifest);
        append_bytes(
            &mut tar,
            &blob_member(&manifest_digest),
            &manifest,
            &mut written,
            &manifest_digest,
        )?;
        for r in names {
            let mut annotations = serde_json::Map::new();
            annotations.insert(CONTAINERD_NAME.into(), r.to_string().into());
            annotations.insert(REF_NAME.into(), r.tag().unwrap_or("latest").into());
            index_entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest.to_string(),
                "size": manifest.len(),
                "annotations": annotations,
            }));
            if let Some(tag) = r.tag() {
                let familiar = r.familiar();
                let repo = familiar
                    .rsplit_once(':')
                    .map_or(familiar.as_str(), |(repo, _)| repo)
                    .to_string();
                let top = diff_ids.last().map(|d| d.hex().to_string()).unwrap_or_default();
                repositories.entry(repo).or_default().insert(tag.to_string(), top);
            }
        }
        manifest_json.push(serde_json::json!({
            "Config": blob_member(&image.config_digest),
            "RepoTags": names.iter().filter(|r| r.tag().is_some()).map(Reference::familiar).collect::<Vec<_>>(),
            "Layers": diff_ids.iter().map(blob_member).collect::<Vec<_>>(),
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_entries,
    });
    for (name, bytes) in [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "index.json",
            serde_json::to_vec(&index).map_err(json_err("index.json"))?,
        ),
        (
            "manifest.json",
            serde_json::to_vec(&manifest_json).map_err(json_err("manifest.json"))?,
        ),
        (
            "repositories",
            serde_json::to_vec(&repositories).map_err(json_err("repositories"))?,
        ),
    ] {
        tar.append_data(&wharf_tar::Header::file(name, 0o644), &bytes)
            .map_err(write_err)?;
    }
    tar.finish().and_then(|mut w| w.flush()).map_err(write_err)
}

fn file_header(name: &str, size: u64) -> wharf_tar::Header {
    wharf_tar::Header {
        size,
        ..wharf_tar::Header::file(name, 0o644)
    }
}

fn append_bytes<W: Write>(
    tar: &mut wharf_tar::Writer<W>,
    name: &str,
    bytes: &[u8],
    written: &mut HashSet<Digest>,
    digest: &Digest,
) -> Result<()> {
    if !written.insert(digest.clone()) {
        return Ok(());
    }
    tar.append_data(&wharf_tar::Header::file(name, 0o644), bytes)
        .map_err(Error::io("write", "archive"))
}

/// Appends a layer uncompressed as `blobs/sha256/<diff_id>`; returns its size.
fn append_layer<W: Write>(
    store: &Store,
    tar: &mut wharf_tar::Writer<W>,
    layer: &Descriptor,
    diff_id: &Digest,
    written: &mut HashSet<Digest>,
) -> Result<u64> {
    let digest = Digest::from_oci(layer.digest())?;
    let name = blob_member(diff_id);
    let compression = match media::kind(layer.media_type()) {
        Kind::Layer(c) => c,
        _ => {
            let mut head = [0u8; 4];
            let n = store
                .open_blob(&digest)?
                .read(&mut head)
                .map_err(Error::io("read", store.blob_path(&digest)))?;
            Compression::sniff(&head[..n])
        }
    };
    if compression == Compression::None {
        if &digest != diff_id {
            return Err(Error::Corrupt {
                digest: diff_id.clone(),
                source: crate::DigestError::Mismatch {
                    expected: diff_id.clone(),
                    actual: digest,
                },
            });
        }
        let size = store.blob_size(&digest)?;
        if written.insert(diff_id.clone()) {
            let f = BufReader::new(store.open_blob(&digest)?);
            let mut r = crate::VerifyingReader::new(f, digest, Some(size));
            tar.append(&file_header(&name, size), Some(&mut r))
                .map_err(Error::io("write", "archive"))?;
        }
        return Ok(size);
    }
    // Decompress into a temporary file first: a tar header needs the size up front.
    let temp = store.temp_path("save-layer");
    let res = (|| {
        let src = BufReader::new(store.open_blob(&digest)?);
        let mut reader: Box<dyn Read> = match compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(src)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(src).map_err(Error::io("read", &temp))?),
            Compression::None => Box::new(src),
        };
        let out = File::create(&temp).map_err(Error::io("create", &temp))?;
        let mut w = VerifyingWriter::new(io::BufWriter::new(out), Algorithm::Sha256, Some(diff_id.clone()), None);
        io::copy(&mut reader, &mut w).map_err(Error::io("decompress", store.blob_path(&digest)))?;
        let (_, _, size) = w
            .finish()
            .map_err(|e| Error::verification(e, diff_id, "write", &temp))?;
        if written.insert(diff_id.clone()) {
            let f = File::open(&temp).map_err(Error::io("open", &temp))?;
            tar.append(&file_header(&name, size), Some(&mut BufReader::new(f)))
                .map_err(Error::io("write", "archive"))?;
        }
        Ok(size)
    })();
    let _ = fs::remove_file(&temp);
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::clean;

    #[test]
    fn member_names_are_confined_to_the_archive() {
        assert_eq!(clean("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("abc/layer.tar").as_deref(), Some("abc/layer.tar"));
        assert_eq!(clean("a/../../etc/passwd"), None);
        assert_eq!(clean("/etc/passwd"), None);
        assert_eq!(clean("..").as_deref(), None);
    }
}

//! Import a flat root filesystem (a tar, or a directory) as a single-layer image, like
//! `tar -C dir -c . | docker import - name`.
//!
//! The layer is produced in one streamed pass: the tar is hashed (its diff_id), compressed and
//! written into the store's verifying blob writer, never held in memory.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, MediaType};

use crate::error::{Error, Result};
use crate::media::Compression;
use crate::store::{BlobWriter, Image};
use crate::{Algorithm, Digest, Hasher, Platform, Reference, Store};

/// The container defaults recorded in an imported image's config (`docker import --change`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// `Entrypoint`; empty for none.
    pub entrypoint: Vec<String>,
    /// `Cmd`; empty for none.
    pub cmd: Vec<String>,
    /// `Env` as `KEY=value`; empty for none.
    pub env: Vec<String>,
    /// `WorkingDir`; `None` for none.
    pub working_dir: Option<String>,
    /// `User`; `None` for none.
    pub user: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// Options of [`import_tar`] and [`import_dir`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Platform written into the config. Default: the host's.
    pub platform: Platform,
    /// Container defaults. Default: none.
    pub config: ContainerConfig,
    /// Compression of the stored layer: gzip (default), zstd, or none.
    pub compression: Compression,
    /// `created` time (RFC 3339). Default: now.
    pub created: Option<String>,
    /// History comment. Default: none.
    pub comment: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            platform: Platform::host(),
            config: ContainerConfig::default(),
            compression: Compression::Gzip,
            created: None,
            comment: None,
        }
    }
}

/// Hashes the uncompressed layer and compresses it into a blob writer.
struct LayerSink {
    diff: Hasher,
    out: Encoder,
}

enum Encoder {
    Plain(BlobWriter),
    Gzip(flate2::write::GzEncoder<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
}

impl LayerSink {
    fn new(store: &Store, compression: Compression) -> Result<LayerSink> {
        let w = store.blob_writer(None, None)?;
        let out = match compression {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(w, flate2::Compression::fast())),
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3).map_err(Error::io("compress", store.root()))?)
            }
        };
        Ok(LayerSink {
            diff: Hasher::new(Algorithm::Sha256),
            out,
        })
    }

    /// Finishes compression and commits the blob: (diff_id, digest, size, media type).
    fn finish(self) -> Result<(Digest, Digest, u64, MediaType)> {
        let (writer, media_type) = match self.out {
            Encoder::Plain(w) => (w, MediaType::ImageLayer),
            Encoder::Gzip(e) => (
                e.finish().map_err(Error::io("compress", "layer"))?,
                MediaType::ImageLayerGzip,
            ),
            Encoder::Zstd(e) => (
                e.finish().map_err(Error::io("compress", "layer"))?,
                MediaType::ImageLayerZstd,
            ),
        };
        let (digest, size) = writer.commit()?;
        Ok((self.diff.finish(), digest, size, media_type))
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.out {
            Encoder::Plain(w) => w.write(buf)?,
            Encoder::Gzip(e) => e.write(buf)?,
            Encoder::Zstd(e) => e.write(buf)?,
        };
        self.diff.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// A reader that copies what it reads into a writer (the layer sink), so the tar can be
/// validated entry by entry while the same bytes are stored.
struct Tee<'a, R> {
    inner: R,
    sink: &'a mut LayerSink,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Imports a flat rootfs tar (plain, gzip or zstd: detected) as a single-layer image named
/// `reference`. The tar is checked entry by entry while it streams.
///
/// # Errors
/// [`Error::Archive`] when the input is not a tar; store errors. Nothing is named on error.
pub fn import_tar(store: &Store, input: impl Read, reference: &Reference, opts: &ImportOptions) -> Result<Image> {
    let _lease = store.lease()?;
    let origin = Path::new("import");
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf().map_err(Error::io("read", origin))?;
    let decoded: Box<dyn Read> = match Compression::sniff(head) {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(Error::io("read", origin))?)
        }
    };
    let mut sink = LayerSink::new(store, opts.compression)?;
    let bad = |e: io::Error| Error::Archive {
        path: origin.to_path_buf(),
        reason: format!("not a valid tar: {e}"),
    };
    {
        let mut archive = tar::Archive::new(Tee {
            inner: decoded,
            sink: &mut sink,
        });
        let mut count = 0usize;
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            io::copy(&mut entry, &mut io::sink()).map_err(bad)?;
            count += 1;
        }
        if count == 0 {
            return Err(Error::Archive {
                path: origin.to_path_buf(),
                reason: "not a tar, or an empty one".into(),
            });
        }
        // Keep the trailing blocks too: the diff_id covers the whole stream.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(bad)?;
    }
    finish(store, sink, reference, opts)
}

/// Imports a directory as a single-layer image named `reference` (ownership, modes, symlinks
/// and special files preserved; symlinks are not followed).
///
/// # Errors
/// IO errors reading the directory; store errors.
///
/// # Ambient authority
/// Reads `dir` as given.
pub fn import_dir(store: &Store, dir: &Path, reference: &Reference, opts: &ImportOptions) -> Result<Image> {
    let _lease = store.lease()?;
    let mut sink = LayerSink::new(store, opts.compression)?;
    {
        let mut b = tar::Builder::new(&mut sink);
        b.follow_symlinks(false);
        b.append_dir_all(".", dir).map_err(Error::io("archive", dir))?;
        b.finish().map_err(Error::io("archive", dir))?;
    }
    finish(store, sink, reference, opts)
}

fn finish(store: &Store, sink: LayerSink, reference: &Reference, opts: &ImportOptions) -> Result<Image> {
    let (diff_id, digest, size, media_type) = sink.finish()?;
    let created = opts
        .created
        .clone()
        .unwrap_or_else(|| crate::config::rfc3339(std::time::SystemTime::now()));
    let c = &opts.config;
    let mut container = serde_json::Map::new();
    let mut set = |k: &str, v: serde_json::Value| {
        container.insert(k.to_string(), v);
    };
    if !c.env.is_empty() {
        set("Env", c.env.clone().into());
    }
    if !c.entrypoint.is_empty() {
        set("Entrypoint", c.entrypoint.clone().into());
    }
    if !c.cmd.is_empty() {
        set("Cmd", c.cmd.clone().into());
    }
    if let Some(w) = &c.working_dir {
        set("WorkingDir", w.clone().into());
    }
    if let Some(u) = &c.user {
        set("User", u.clone().into());
    }
    if !c.labels.is_empty() {
        set("Labels", serde_json::to_value(&c.labels).unwrap_or_default());
    }
    let mut config = serde_json::json!({
        "created": created,
        "architecture": opts.platform.architecture(),
        "os": opts.platform.os(),
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "wharf import"}],
    });
    if let Some(v) = opts.platform.variant() {
        config["variant"] = v.into();
    }
    if let Some(comment) = &opts.comment {
        config["history"][0]["comment"] = comment.clone().into();
    }
    let config = serde_json::to_vec(&config).map_err(|source| Error::Json {
        what: "config".into(),
        source,
    })?;
    let config_digest = store.put_bytes(&config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": Descriptor::new(MediaType::ImageConfig, config.len() as u64, config_digest.to_oci()),
        "layers": [Descriptor::new(media_type, size, digest.to_oci())],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
        what: "manifest".into(),
        source,
    })?;
    let (desc, _) = store.put_manifest(&manifest, Some("application/vnd.oci.image.manifest.v1+json"))?;
    store.tag(reference, &desc)?;
    store.image(reference, &opts.platform)
}

//! Import a flat root filesystem (a tar, or a directory) as a single-layer image, like
//! `tar -C dir -c . | docker import - name`.
//!
//! The layer is produced in one streamed pass: the tar is hashed (its diff_id), compressed and
//! written into the store's verifying blob writer, never held in memory.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, HistoryBuilder, MediaType};

use crate::error::{Error, Result};
use crate::media::Compression;
use crate::store::{BlobWriter, Image};
use crate::{ImageConfig, LayerWriter, Platform, Reference, Store};

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
    /// `ExposedPorts` as `PORT/PROTO` (`80/tcp`); empty for none.
    pub exposed_ports: Vec<String>,
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

/// A reader that copies what it reads into a writer (the layer sink), so the tar can be
/// validated entry by entry while the same bytes are stored.
struct Tee<'a, R> {
    inner: R,
    sink: &'a mut LayerWriter<BlobWriter>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Imports a flat rootfs tar (plain, gzip or zstd: detected) as a single-layer image named
/// `reference`. The tar is checked entry by entry while it streams, with the rules unpacking
/// applies ([`wharf_tar::check_layer`]).
///
/// # Errors
/// [`Error::Archive`] when the input is not a tar or one unpacking would refuse; store errors.
/// Nothing is named on error.
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
    let mut sink = LayerWriter::new(store.blob_writer(None, None)?, opts.compression)
        .map_err(Error::io("compress", store.root()))?;
    {
        // Read as unpacking will (the same reader and entry rules), while the same bytes
        // are hashed, compressed and stored.
        let mut tee = BufReader::with_capacity(
            256 * 1024,
            Tee {
                inner: decoded,
                sink: &mut sink,
            },
        );
        let summary =
            wharf_tar::check_layer(&mut tee, &wharf_tar::ReaderLimits::default(), 256).map_err(|e| Error::Archive {
                path: origin.to_path_buf(),
                reason: format!("not a valid layer tar: {e}"),
            })?;
        if summary.entries == 0 {
            return Err(Error::Archive {
                path: origin.to_path_buf(),
                reason: "not a tar, or an empty one".into(),
            });
        }
        // Keep whatever the reader left after a clean end: the diff_id covers the whole stream.
        io::copy(&mut tee, &mut io::sink()).map_err(Error::io("read", origin))?;
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
    let mut sink = LayerWriter::new(store.blob_writer(None, None)?, opts.compression)
        .map_err(Error::io("compress", store.root()))?;
    {
        let mut w = wharf_tar::Writer::new(io::BufWriter::with_capacity(1 << 20, &mut sink));
        let m = std::fs::symlink_metadata(dir).map_err(Error::io("stat", dir))?;
        w.append(&header(b"./".to_vec(), &m, Vec::new()), None)
            .map_err(Error::io("archive", dir))?;
        append_tree(&mut w, dir, b"")?;
        w.finish()
            .and_then(|mut b| b.flush())
            .map_err(Error::io("archive", dir))?;
    }
    finish(store, sink, reference, opts)
}

/// The tar header of a file with metadata `m`.
fn header(path: Vec<u8>, m: &std::fs::Metadata, link: Vec<u8>) -> wharf_tar::Header {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use wharf_tar::EntryKind;
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_char_device() {
        EntryKind::Char
    } else if ft.is_block_device() {
        EntryKind::Block
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        EntryKind::File
    };
    let rdev = m.rdev();
    wharf_tar::Header {
        path,
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid().into(),
        gid: m.gid().into(),
        mtime: m.mtime(),
        size: if kind == EntryKind::File { m.len() } else { 0 },
        link,
        major: rustix::fs::major(rdev),
        minor: rustix::fs::minor(rdev),
        xattrs: Vec::new(),
    }
}

/// Appends what is beneath `dir` (`rel` in the archive), in name order; symlinks are not
/// followed, sockets are left out (tar cannot hold them).
fn append_tree<W: Write>(w: &mut wharf_tar::Writer<W>, dir: &Path, rel: &[u8]) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        names.push(e.map_err(Error::io("read directory", dir))?.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let m = std::fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
        if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) {
            continue;
        }
        let mut arch = rel.to_vec();
        arch.extend_from_slice(name.as_bytes());
        let link = if m.file_type().is_symlink() {
            std::fs::read_link(&path)
                .map_err(Error::io("read link", &path))?
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        let h = header(arch.clone(), &m, link);
        if m.is_file() {
            let mut f = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
            w.append(&h, Some(&mut f)).map_err(Error::io("archive", &path))?;
        } else {
            w.append(&h, None).map_err(Error::io("archive", &path))?;
        }
        if m.is_dir() {
            arch.push(b'/');
            append_tree(w, &path, &arch)?;
        }
    }
    Ok(())
}

fn finish(store: &Store, sink: LayerWriter<BlobWriter>, reference: &Reference, opts: &ImportOptions) -> Result<Image> {
    let (writer, layer) = sink.finish().map_err(Error::io("compress", "layer"))?;
    let (digest, size) = writer.commit()?;
    let diff_id = layer.diff_id.clone();
    let media_type = MediaType::from(layer.media_type());
    let created = opts
        .created
        .clone()
        .unwrap_or_else(|| crate::config::rfc3339(std::time::SystemTime::now()));
    let c = &opts.config;
    let mut container = oci_spec::image::Config::default();
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    container.set_env(non_empty(&c.env));
    container.set_entrypoint(non_empty(&c.entrypoint));
    container.set_cmd(non_empty(&c.cmd));
    container.set_working_dir(c.working_dir.clone());
    container.set_user(c.user.clone());
    container.set_labels((!c.labels.is_empty()).then(|| c.labels.clone().into_iter().collect()));
    container.set_exposed_ports(non_empty(&c.exposed_ports));
    let mut history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("wharf import".to_string());
    if let Some(comment) = &opts.comment {
        history = history.comment(comment.clone());
    }
    let history = history.build().map_err(|e| Error::Invalid {
        what: "history",
        reason: e.to_string(),
    })?;
    let config = ImageConfig::builder(&opts.platform)
        .created(created)
        .config(container)
        .layer(&diff_id)
        .history(history)
        .build()
        .to_bytes()?;
    let (desc, _) = store.put_image(&config, &[Descriptor::new(media_type, size, digest.to_oci())])?;
    store.tag(reference, &desc)?;
    store.image(reference, &opts.platform)
}

//! Layer blobs: one writer for import and commit, one check for pull, load and import.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::media::Compression;
use crate::{Algorithm, Digest, Hasher, VerifyingWriter};

/// What a [`LayerWriter`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// SHA-256 of the uncompressed tar.
    pub diff_id: Digest,
    /// SHA-256 of the blob as written (compressed).
    pub digest: Digest,
    /// Bytes of the blob as written.
    pub size: u64,
    /// The compression used.
    pub compression: Compression,
}

impl LayerDigests {
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        match self.compression {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Writes a layer blob: the uncompressed tar written to it is hashed (the diff_id) on its
/// way into the compressor (gzip level 6 or zstd level 3), and the compressed bytes are
/// hashed and counted (digest and size) on their way out to `inner`. Used by
/// [`import`](crate::import) and by wharf-rootfs's commit.
///
/// # Examples
/// ```
/// use std::io::Write;
/// use wharf_image::{LayerWriter, media::Compression};
/// let mut w = LayerWriter::new(Vec::new(), Compression::Gzip)?;
/// w.write_all(&[0u8; 1024])?; // an empty tar
/// let (blob, d) = w.finish()?;
/// assert_eq!(d.diff_id, wharf_image::Digest::sha256(&[0u8; 1024]));
/// assert_eq!((d.digest, d.size), (wharf_image::Digest::sha256(&blob), blob.len() as u64));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LayerWriter<W: Write> {
    diff: Hasher,
    out: Encoder<VerifyingWriter<W>>,
    compression: Compression,
}

impl<W: Write> LayerWriter<W> {
    /// A layer writer onto `inner`.
    ///
    /// # Errors
    /// The zstd encoder's setup error.
    pub fn new(inner: W, compression: Compression) -> io::Result<LayerWriter<W>> {
        let w = VerifyingWriter::new(inner, Algorithm::Sha256, None, None);
        let out = match compression {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(w, flate2::Compression::new(6))),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        };
        Ok(LayerWriter {
            diff: Hasher::new(Algorithm::Sha256),
            out,
            compression,
        })
    }

    /// Finishes compression; returns the inner writer and what was written.
    ///
    /// # Errors
    /// The compressor's or the inner writer's errors.
    pub fn finish(self) -> io::Result<(W, LayerDigests)> {
        let hashed = match self.out {
            Encoder::Plain(w) => w,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
        };
        let (inner, digest, size) = hashed.finish()?;
        Ok((
            inner,
            LayerDigests {
                diff_id: self.diff.finish(),
                digest,
                size,
                compression: self.compression,
            },
        ))
    }
}

impl<W: Write> Write for LayerWriter<W> {
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

/// The path depth wharf-rootfs unpacks by default (`Limits::max_path_depth`).
pub const LAYER_MAX_PATH_DEPTH: usize = 256;

/// Reads a layer blob as unpacking will — decompressed (`compression`, or detected from the
/// first bytes when `None`, as wharf-rootfs does for a media type that names none), entry by
/// entry with the reader and entry rules of [`wharf_tar::check_layer`] — and returns the
/// SHA-256 of the uncompressed stream: the diff_id the image config must list for it.
/// Load, import and pull call it, so that an image whose layers unpacking would refuse is
/// never stored as an image.
///
/// # Errors
/// The first problem found, as [`wharf_tar::Error`]: a decoder error is a
/// [`wharf_tar::Error::Read`] at the uncompressed offset where it happened.
///
/// # Examples
/// ```
/// use wharf_image::{Digest, check_layer, media::Compression};
/// let mut w = wharf_tar::Writer::new(Vec::new());
/// w.append_data(&wharf_tar::Header::file("etc/hostname", 0o644), b"box\n")?;
/// let layer = w.finish()?;
/// assert_eq!(check_layer(&layer[..], None)?, Digest::sha256(&layer));
/// assert!(check_layer(&layer[..514], Some(Compression::None)).is_err()); // cut inside the data
/// // Ending right after the last entry's data is complete, as umoci writes layers.
/// assert_eq!(check_layer(&layer[..516], None)?, Digest::sha256(&layer[..516]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_layer(r: impl Read, compression: Option<Compression>) -> Result<Digest, wharf_tar::Error> {
    let read_err = |offset, source| wharf_tar::Error::Read {
        offset,
        entry: None,
        source,
    };
    let mut input = BufReader::with_capacity(256 * 1024, r);
    let compression = match compression {
        Some(c) => c,
        None => Compression::sniff(input.fill_buf().map_err(|e| read_err(0, e))?),
    };
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(|e| read_err(0, e))?),
    };
    let mut hashing = BufReader::with_capacity(
        256 * 1024,
        HashingReader {
            inner: decoded,
            hasher: Hasher::new(Algorithm::Sha256),
            read: 0,
        },
    );
    wharf_tar::check_layer(&mut hashing, &wharf_tar::ReaderLimits::default(), LAYER_MAX_PATH_DEPTH)?;
    // The reader stops at a clean end; whatever it left is hashed too.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| read_err(hashing.get_ref().read, e))?;
    Ok(hashing.into_inner().hasher.finish())
}

/// Hashes and counts what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

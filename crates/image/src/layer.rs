//! Writing a layer blob: one writer for import and commit.

use std::io::{self, Write};

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

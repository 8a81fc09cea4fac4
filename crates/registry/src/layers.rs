//! What a pull does with each layer while it downloads: the bytes handed to the blob writer
//! also go, through a bounded channel, to a [`LayerSink`] on a thread of its own. The default
//! sink, [`CheckLayers`], decompresses the layer, hashes it (the diff_id) and reads it with the
//! rules unpacking applies ([`wharf_image::check_layer`]), so a pull never stores a layer that
//! `run` would refuse. A caller that unpacks anyway (an engine running an image it pulls) passes
//! a sink that extracts the layer while it arrives, so the check is the extraction and the
//! layer is read once.
//!
//! # Examples
//! A sink that counts the bytes of each layer before the default check:
//! ```
//! use std::io::Read;
//! use std::sync::Arc;
//! use wharf_registry::PullOptions;
//! use wharf_registry::layers::{CheckLayers, Layer, LayerSink, Verdict};
//!
//! struct Counting;
//! impl LayerSink for Counting {
//!     fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String> {
//!         let mut counted = CountingReader(blob, 0);
//!         let verdict = CheckLayers.consume(layer, &mut counted)?;
//!         eprintln!("{}: {} bytes", layer.blob, counted.1);
//!         Ok(verdict)
//!     }
//! }
//! struct CountingReader<'a>(&'a mut (dyn Read + Send), u64);
//! impl Read for CountingReader<'_> {
//!     fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
//!         let n = self.0.read(buf)?;
//!         self.1 += n as u64;
//!         Ok(n)
//!     }
//! }
//! let options = PullOptions { layers: Arc::new(Counting), ..PullOptions::default() };
//! # let _ = options;
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use wharf_image::Digest;
use wharf_image::media::Compression;

/// One layer of the image being pulled, as its manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob's digest (the blob writer verifies the bytes against it).
    pub blob: Digest,
    /// Its compression by media type; `None` when the media type names none (then detected
    /// from the first bytes, as unpacking does).
    pub compression: Option<Compression>,
    /// The diff_id the image config lists for it: what the uncompressed content must hash to.
    pub diff_id: Digest,
}

/// A sink's verdict on a layer it read to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The layer is one unpacking takes and its content hashes to the diff_id.
    Accepted,
    /// The sink could not judge it (e.g. an extraction that needs lower layers not there
    /// yet): the pull checks the stored blob with [`CheckLayers`] before naming the image.
    Unchecked,
}

/// Receives each layer of a pull while it downloads, on a thread of its own, and judges it.
///
/// `blob` yields the layer's blob bytes as they arrive (from the start, also when a download
/// resumes from a partial file) and ends when the download is complete and its digest and size
/// verified. A sink that returns [`Verdict::Accepted`] vouches for the tar and the diff_id; one
/// that returns early (an error, or [`Verdict::Unchecked`]) need not read the rest.
pub trait LayerSink: Send + Sync {
    /// Reads `blob` and judges `layer`.
    ///
    /// # Errors
    /// Why the layer is refused: the pull then fails with
    /// [`Error::LayerRefused`](crate::Error::LayerRefused) and stores nothing of it.
    fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String>;
}

/// The default [`LayerSink`]: reads each layer as unpacking will and compares its diff_id.
/// An uncompressed layer is only read, not hashed again: its diff_id is its blob digest.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckLayers;

impl LayerSink for CheckLayers {
    fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String> {
        let got = match layer.compression {
            Some(Compression::None) => read_uncompressed(blob).map(|()| layer.blob.clone())?,
            _ => wharf_image::check_layer(blob, layer.compression).map_err(|e| e.to_string())?,
        };
        if got == layer.diff_id {
            Ok(Verdict::Accepted)
        } else {
            Err(format!(
                "its uncompressed content hashes to {got}, but the image config lists diff_id {}",
                layer.diff_id
            ))
        }
    }
}

/// Reads an uncompressed layer with unpacking's rules; what follows a clean end is read too.
fn read_uncompressed(r: &mut (dyn Read + Send)) -> Result<(), String> {
    let mut r = io::BufReader::with_capacity(256 * 1024, r);
    wharf_tar::check_layer(
        &mut r,
        &wharf_tar::ReaderLimits::default(),
        wharf_image::LAYER_MAX_PATH_DEPTH,
    )
    .map_err(|e| e.to_string())?;
    io::copy(&mut r, &mut io::sink()).map_err(|e| format!("reading after the end of the archive: {e}"))?;
    Ok(())
}

/// One layer in flight: its sink's thread, fed chunk by chunk.
pub(crate) struct Checker {
    tx: Option<mpsc::SyncSender<Bytes>>,
    thread: Option<JoinHandle<Result<Verdict, String>>>,
    layer: Layer,
    file: PathBuf,
}

impl Checker {
    /// Starts `sink` on `layer`; `file` is the partial blob, whose first `prefix` bytes come
    /// before what will be fed (a download being resumed), and which holds the whole blob
    /// when [`finish`](Self::finish) is called.
    pub fn start(sink: Arc<dyn LayerSink>, layer: Layer, file: &Path, prefix: u64) -> io::Result<Checker> {
        let head: Box<dyn Read + Send> = if prefix > 0 {
            Box::new(File::open(file)?.take(prefix))
        } else {
            Box::new(io::empty())
        };
        // Eight chunks of a few dozen KiB each: the sink may lag the disk by that much.
        let (tx, rx) = mpsc::sync_channel::<Bytes>(8);
        let l = layer.clone();
        let thread = std::thread::Builder::new()
            .name("wharf-layer-sink".into())
            .spawn(move || {
                let mut blob = head.chain(Chunks {
                    rx,
                    chunk: Bytes::new(),
                });
                sink.consume(&l, &mut blob)
            })?;
        Ok(Checker {
            tx: Some(tx),
            thread: Some(thread),
            layer,
            file: file.to_path_buf(),
        })
    }

    /// Hands the next bytes to the sink. A sink that already stopped takes no more; its
    /// verdict is reported by [`finish`](Self::finish).
    pub fn feed(&self, chunk: &Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(chunk.clone());
        }
    }

    /// Ends the input and waits for the verdict; a layer the sink left unchecked is checked
    /// here from the (complete, verified) blob file.
    pub fn finish(mut self) -> Result<(), String> {
        drop(self.tx.take());
        let verdict = self.thread.take().map_or_else(
            || Err("the layer sink did not run".to_string()),
            |t| t.join().unwrap_or_else(|_| Err("the layer sink panicked".into())),
        )?;
        match verdict {
            Verdict::Accepted => Ok(()),
            Verdict::Unchecked => {
                let mut f = File::open(&self.file).map_err(|e| format!("{}: {e}", self.file.display()))?;
                CheckLayers.consume(&self.layer, &mut f).map(|_| ())
            }
        }
    }
}

impl Drop for Checker {
    /// An abandoned layer (a reset, a failed download) ends at once: its input ends.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The channel as a byte stream; it ends when the sender is dropped.
struct Chunks {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.recv() {
                Ok(c) => self.chunk = c,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

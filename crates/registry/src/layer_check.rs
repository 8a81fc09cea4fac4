//! Checks a layer while it downloads: the bytes handed to the blob writer also go, through
//! a bounded channel, to a thread that decompresses them, hashes the tar (the diff_id) and
//! reads it with the rules unpacking applies ([`wharf_image::check_layer`]). So a pull
//! never stores a layer that `run` would refuse, at the cost of one more thread per layer
//! in flight rather than a second read of every blob.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use wharf_image::Digest;
use wharf_image::media::Compression;

/// What a layer must be: its compression (`None`: detected, as unpacking does) and the
/// diff_id the image config lists for it.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    /// The blob's digest (verified by the blob writer).
    pub blob: Digest,
    pub compression: Option<Compression>,
    pub diff_id: Digest,
}

/// One check in flight, fed chunk by chunk.
pub(crate) struct Checker {
    tx: Option<mpsc::SyncSender<Bytes>>,
    thread: Option<JoinHandle<Result<Digest, String>>>,
    expect: Expect,
}

impl Checker {
    /// Starts a check; `prefix` is a file whose first `len` bytes come before what will be
    /// fed (a partial blob being resumed).
    pub fn start(expect: Expect, prefix: Option<(&Path, u64)>) -> io::Result<Checker> {
        let head: Box<dyn Read + Send> = match prefix {
            Some((path, len)) if len > 0 => Box::new(File::open(path)?.take(len)),
            _ => Box::new(io::empty()),
        };
        // Eight chunks of a few dozen KiB each: the check may lag the disk by that much.
        let (tx, rx) = mpsc::sync_channel::<Bytes>(8);
        let compression = expect.compression;
        let blob_digest = expect.blob.clone();
        let thread = std::thread::Builder::new()
            .name("wharf-layer-check".into())
            .spawn(move || {
                let body = Chunks {
                    rx,
                    chunk: Bytes::new(),
                };
                match compression {
                    // An uncompressed layer's diff_id is its blob digest, which the blob
                    // writer verifies: the tar is only read, not hashed a second time.
                    Some(Compression::None) => read_uncompressed(head.chain(body)).map(|()| blob_digest),
                    _ => wharf_image::check_layer(head.chain(body), compression).map_err(|e| e.to_string()),
                }
            })?;
        Ok(Checker {
            tx: Some(tx),
            thread: Some(thread),
            expect,
        })
    }

    /// Hands the next bytes to the check. A check that already failed takes no more; its
    /// error is reported by [`finish`](Self::finish).
    pub fn feed(&self, chunk: &Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(chunk.clone());
        }
    }

    /// Ends the input and waits for the verdict: `Ok` when the tar is one unpacking takes and
    /// its diff_id is the expected one.
    pub fn finish(mut self) -> Result<(), String> {
        drop(self.tx.take());
        let got = self.thread.take().map_or_else(
            || Err("the check did not run".to_string()),
            |t| t.join().unwrap_or_else(|_| Err("the layer check panicked".into())),
        )?;
        if got == self.expect.diff_id {
            Ok(())
        } else {
            Err(format!(
                "its uncompressed content hashes to {got}, but the image config lists diff_id {}",
                self.expect.diff_id
            ))
        }
    }
}

impl Drop for Checker {
    /// An abandoned check (a reset, a failed download) ends at once: its input ends.
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

/// Reads an uncompressed layer with unpacking's rules; what follows a clean end is read too,
/// so the sender never blocks on a reader that stopped.
fn read_uncompressed(r: impl Read) -> Result<(), String> {
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

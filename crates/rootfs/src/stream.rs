//! The decompression side of layer application: a producer thread reads the blob,
//! decompresses it, counts the uncompressed bytes against the budgets and hands each chunk
//! both to a hashing thread (the diff_id) and to the consumer (the tar reader and file
//! writer) through bounded channels, so decompression, hashing and file writing overlap.
//! Three threads rather than two: neither the decompressor nor the writer is idle long
//! enough to take SHA-256 on as well without becoming the bottleneck, while the scheduler
//! fits a third thread into the gaps of both.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::ScopedJoinHandle;

use wharf_image::media::Compression;
use wharf_image::{Algorithm, Digest, Hasher};

use crate::error::Carried;
use crate::error::{Error, Limit, Result};

pub(crate) const CHUNK: usize = 512 * 1024;
/// Chunks queued for the consumer (and for the hasher, which shares them): 12 MiB. The
/// decompressor is the thread that bounds an unpack, so it must not wait while the consumer
/// writes a run of large files; with 3 MiB it waited ~80 ms per 200 MB layer, with 12 MiB
/// about half that.
pub(crate) const QUEUE: usize = 24;

/// The chunks a queue of at most `bytes` holds (at least one).
pub(crate) fn chunks(bytes: usize) -> usize {
    (bytes / CHUNK).max(1)
}

/// The decompressing thread's read buffer: small enough to stay in its core's L2 cache
/// between the read() that fills it and the decoder that consumes it.
const READ_BUF: usize = 128 * 1024;

/// Budgets the producer enforces while decompressing.
#[derive(Debug, Clone)]
pub(crate) struct StreamLimits {
    pub max_layer_bytes: u64,
    pub max_image_bytes: u64,
    pub max_ratio: u64,
    pub image_used: Arc<AtomicU64>,
    pub progress: crate::apply::Progress,
    pub label: Option<Digest>,
    /// Chunks queued for the consumer and the hasher: [`chunks`] of
    /// [`Limits::max_queued_bytes`](crate::Limits::max_queued_bytes) ([`QUEUE`] by default), at
    /// most four where nothing is written and memory matters more (a pull's check).
    pub queue: usize,
}

/// What the producer measured once the stream ended.
#[derive(Debug, Clone)]
pub(crate) struct StreamSummary {
    pub diff_id: Digest,
    pub uncompressed: u64,
    pub compressed: u64,
    pub compression: Compression,
}

enum Msg {
    Data(Arc<Vec<u8>>),
    Done(StreamSummary),
    Failed(Error),
}

/// The consumer's end: a `BufRead` over the producer's chunks.
pub(crate) struct ChunkReader {
    rx: Receiver<Msg>,
    recycle: Sender<Vec<u8>>,
    cur: Arc<Vec<u8>>,
    pos: usize,
    summary: Option<StreamSummary>,
    failed: bool,
}

/// Hands a chunk back to the producer once both its readers are done with it.
fn recycle(chunk: Arc<Vec<u8>>, to: &Sender<Vec<u8>>) {
    if let Ok(v) = Arc::try_unwrap(chunk)
        && v.capacity() >= CHUNK
    {
        let _ = to.send(v);
    }
}

/// `Read::read` for a reader whose own buffer is the source (`BufRead`).
pub(crate) fn read_buffered(r: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let avail = r.fill_buf()?;
    let n = avail.len().min(buf.len());
    buf[..n].copy_from_slice(&avail[..n]);
    r.consume(n);
    Ok(n)
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.cur.len() {
            if self.summary.is_some() {
                return Ok(&[]);
            }
            if self.failed {
                return Err(io::Error::other("layer stream already failed"));
            }
            match self.rx.recv() {
                Ok(Msg::Data(v)) => {
                    let old = std::mem::replace(&mut self.cur, v);
                    self.pos = 0;
                    recycle(old, &self.recycle);
                }
                Ok(Msg::Done(s)) => self.summary = Some(s),
                Ok(Msg::Failed(e)) => {
                    self.failed = true;
                    return Err(Carried::io(e));
                }
                Err(_) => {
                    self.failed = true;
                    return Err(io::Error::other("layer decompression thread ended unexpectedly"));
                }
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// Counts compressed bytes and marks errors of the blob itself, so they are told apart from
/// decoder errors after passing through the decoder.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.set(self.count.get() + n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(Carried::io(Error::Read(e))),
        }
    }
}

/// Runs `consume` on the decompressed stream of `blob` while a scoped thread decompresses.
/// Returns `consume`'s value and the producer's summary; the summary is only available if
/// the consumer read the stream to its end, which `consume` must do.
pub(crate) fn run<R, T>(
    blob: R,
    compression: Option<Compression>,
    limits: &StreamLimits,
    consume: impl FnOnce(&mut ChunkReader) -> Result<T>,
) -> Result<(T, StreamSummary)>
where
    R: Read + Send,
{
    let (tx, rx) = sync_channel::<Msg>(limits.queue.max(1));
    let (hash_tx, hash_rx) = sync_channel::<Arc<Vec<u8>>>(limits.queue.max(1));
    let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let limits = limits.clone();
        s.spawn(move || produce(blob, compression, &limits, &tx, hash_tx, &recycle_rx));
        let hash_recycle = recycle_tx.clone();
        let hasher: ScopedJoinHandle<'_, Digest> = s.spawn(move || {
            let mut h = Hasher::new(Algorithm::Sha256);
            for chunk in hash_rx {
                h.update(&chunk);
                recycle(chunk, &hash_recycle);
            }
            h.finish()
        });
        let mut reader = ChunkReader {
            rx,
            recycle: recycle_tx,
            cur: Arc::new(Vec::new()),
            pos: 0,
            summary: None,
            failed: false,
        };
        let value = consume(&mut reader)?;
        // The consumer stops at the tar trailer; make sure the producer reached the end.
        loop {
            let buf = reader.fill_buf().map_err(|e| crate::error::from_io(e, 0, None))?;
            if buf.is_empty() {
                break;
            }
            if buf.iter().any(|&b| b != 0) {
                return Err(Error::TrailingGarbage { offset: 0 });
            }
            let n = buf.len();
            reader.consume(n);
        }
        let mut summary = reader
            .summary
            .take()
            .ok_or_else(|| Error::Read(io::Error::other("layer stream ended without a summary")))?;
        // The producer dropped its sender when it finished, so the hasher has ended or will.
        summary.diff_id = hasher
            .join()
            .map_err(|_| Error::Read(io::Error::other("layer hashing thread panicked")))?;
        Ok((value, summary))
    })
}

fn produce<R: Read>(
    blob: R,
    compression: Option<Compression>,
    limits: &StreamLimits,
    tx: &SyncSender<Msg>,
    hash_tx: SyncSender<Arc<Vec<u8>>>,
    recycle: &Receiver<Vec<u8>>,
) {
    let result = produce_inner(blob, compression, limits, tx, &hash_tx, recycle);
    drop(hash_tx); // the hasher's end of stream, before the consumer learns it
    let msg = match result {
        Ok(summary) => Msg::Done(summary),
        Err(e) => Msg::Failed(e),
    };
    let _ = tx.send(msg);
}

fn decode_err(e: io::Error, compression: Compression) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        return crate::error::from_io(e, 0, None);
    }
    match compression {
        Compression::None => Error::Read(e),
        Compression::Gzip => Error::Decompress {
            compression: "gzip",
            source: e,
        },
        Compression::Zstd => Error::Decompress {
            compression: "zstd",
            source: e,
        },
    }
}

fn produce_inner<R: Read>(
    blob: R,
    compression: Option<Compression>,
    limits: &StreamLimits,
    tx: &SyncSender<Msg>,
    hash_tx: &SyncSender<Arc<Vec<u8>>>,
    recycle: &Receiver<Vec<u8>>,
) -> Result<StreamSummary> {
    let count = Rc::new(Cell::new(0u64));
    let mut buffered = BufReader::with_capacity(
        READ_BUF,
        Counting {
            inner: blob,
            count: count.clone(),
        },
    );
    let compression = match compression {
        Some(c) => c,
        None => {
            let head = buffered.fill_buf().map_err(|e| decode_err(e, Compression::None))?;
            Compression::sniff(head)
        }
    };
    let mut decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(buffered),
        // The diff_id's SHA-256 covers every byte: the members' CRC-32 would add nothing.
        Compression::Gzip if limits.label.is_some() => {
            let inflate = crate::gzip::Inflater::best().map_err(|e| decode_err(e, Compression::Gzip))?;
            Box::new(crate::gzip::UncheckedGzip::new(buffered, inflate))
        }
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| decode_err(e, Compression::Zstd))?)
        }
    };
    let mut total: u64 = 0;
    loop {
        let mut buf = match recycle.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(CHUNK),
        };
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(decode_err(e, compression)),
            }
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        total += filled as u64;
        if total > limits.max_layer_bytes {
            return Err(Error::LimitExceeded {
                limit: Limit::LayerBytes,
                max: limits.max_layer_bytes,
                entry: None,
            });
        }
        let image = limits.image_used.fetch_add(filled as u64, Ordering::Relaxed) + filled as u64;
        if image > limits.max_image_bytes {
            return Err(Error::LimitExceeded {
                limit: Limit::ImageBytes,
                max: limits.max_image_bytes,
                entry: None,
            });
        }
        // A small layer may compress well; judge the ratio once there is something to judge.
        let compressed = count.get().max(1024 * 1024);
        if compression != Compression::None && total / compressed > limits.max_ratio {
            return Err(Error::LimitExceeded {
                limit: Limit::CompressionRatio,
                max: limits.max_ratio,
                entry: None,
            });
        }
        limits.progress.emit(&crate::apply::ProgressEvent::Read {
            diff_id: limits.label.as_ref(),
            compressed_read: count.get(),
            uncompressed: total,
        });
        let buf = Arc::new(buf);
        if hash_tx.send(buf.clone()).is_err() || tx.send(Msg::Data(buf)).is_err() {
            // The consumer gave up (it failed); nothing more to do.
            return Err(Error::Read(io::Error::other("consumer ended")));
        }
    }
    drop(decoder);
    Ok(StreamSummary {
        // Filled in from the hashing thread.
        diff_id: Digest::sha256(b""),
        uncompressed: total,
        compressed: count.get(),
        compression,
    })
}

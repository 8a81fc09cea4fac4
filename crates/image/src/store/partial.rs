//! Partial blobs: downloads in progress, kept under `.wharf/partial/` so that a pull killed
//! or interrupted in one process is resumed by the next pull of the same digest, in any
//! process.
//!
//! - One file per digest (`.wharf/partial/<algorithm>-<hex>`), written only under an
//!   exclusive `flock` on the file itself, so two processes never append to the same file;
//!   the second waits, then finds the blob stored (or the partial file to continue).
//! - Nothing is trusted on resume: the bytes already there are hashed again
//!   ([`VerifyingWriter::resume`]), so the digest checked at commit covers every byte.
//! - A file never grows past the blob's size (the writer refuses more), and there is one per
//!   digest; [`Store::gc`](super::Store::gc) removes those no writer holds, and opening a
//!   partial blob removes unheld ones older than [`PARTIAL_MAX_AGE`]. So partial files do
//!   not accumulate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::FlockOperation;

use super::{Lease, Store, sync_dir};
use crate::error::{Error, Result};
use crate::{Digest, DigestError, VerifyingWriter};

/// Partial files no process holds are removed when they are older than this.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A blob being downloaded, resumable across processes (see the module docs). Write the
/// bytes that follow [`offset`](Self::offset), then [`commit`](Self::commit). Dropped
/// uncommitted, it keeps what it holds for the next writer (an empty file is removed).
pub struct PartialBlob {
    writer: Option<VerifyingWriter<BufWriter<File>>>,
    /// The file, locked: the lock lasts as long as this handle, so the file is removed or
    /// renamed only while it is held.
    lock: File,
    path: PathBuf,
    digest: Digest,
    size: u64,
    offset: u64,
    store: Store,
    _lease: Lease,
}

impl std::fmt::Debug for PartialBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialBlob")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Store {
    fn partial_dir(&self) -> PathBuf {
        self.root.join(".wharf").join("partial")
    }

    /// The partial file of a digest (present or not).
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.partial_dir()
            .join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()))
    }

    /// Opens the partial download of `digest` (of `size` bytes), creating it empty, and
    /// waits while another process writes it. What it already holds is read and hashed
    /// again; [`PartialBlob::offset`] says where the download continues. A partial file
    /// longer than `size` is discarded.
    ///
    /// When the blob is already stored (another process finished it meanwhile), the
    /// returned partial blob is empty and its [`commit`](PartialBlob::commit) is not needed:
    /// check [`Store::has_blob`] after this returns.
    ///
    /// # Errors
    /// IO errors on the partial directory or file.
    pub fn partial_blob(&self, digest: &Digest, size: u64) -> Result<PartialBlob> {
        let lease = self.lease()?;
        let dir = self.partial_dir();
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        self.sweep_partials(PARTIAL_MAX_AGE);
        let path = self.partial_path(digest);
        let lock = lock_current(&path)?;
        let len = lock.metadata().map_err(Error::io("stat", &path))?.len();
        // Duplicated handles share one file offset: the kept bytes are read with pread,
        // and the writer appends at the end.
        let mut file = lock.try_clone().map_err(Error::io("open", &path))?;
        file.seek(SeekFrom::End(0)).map_err(Error::io("seek", &path))?;
        let buffered = BufWriter::with_capacity(256 * 1024, file);
        let kept = ReadAt {
            file: &lock,
            pos: 0,
            end: len,
        };
        let writer = match VerifyingWriter::resume(buffered, digest.clone(), Some(size), kept) {
            Ok(w) => w,
            // Longer than the blob: not a prefix of it. Start over.
            Err(e) if DigestError::from_io(&e).is_some() => fresh_writer(&lock, &path, digest, size)?,
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Ok(PartialBlob {
            offset: writer.bytes_written(),
            writer: Some(writer),
            lock,
            path,
            digest: digest.clone(),
            size,
            store: self.clone(),
            _lease: lease,
        })
    }

    /// Removes partial files no process holds that are older than `max_age` (all of them
    /// with `Duration::ZERO`); returns the bytes freed.
    pub(crate) fn sweep_partials(&self, max_age: Duration) -> u64 {
        let Ok(entries) = fs::read_dir(self.partial_dir()) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut freed = 0;
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok());
            if max_age > Duration::ZERO && age.is_none_or(|a| a < max_age) {
                continue;
            }
            let Ok(f) = File::open(e.path()) else { continue };
            // Held by a writer: in use.
            if rustix::fs::flock(f.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
                continue;
            }
            if fs::remove_file(e.path()).is_ok() {
                freed += meta.len();
            }
        }
        freed
    }
}

/// Opens `path` (creating it) and locks it exclusively; retries when the file was renamed
/// or removed by the previous holder while this process waited for the lock.
fn lock_current(path: &Path) -> Result<File> {
    loop {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("open", path))?;
        rustix::fs::flock(f.as_fd(), FlockOperation::LockExclusive).map_err(|e| Error::io("lock", path)(e.into()))?;
        let held = f.metadata().map_err(Error::io("stat", path))?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(f),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", path)(e)),
        }
    }
}

impl PartialBlob {
    /// Bytes already held: the download continues from here.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held now (the offset plus what was written since).
    pub fn bytes_written(&self) -> u64 {
        self.writer.as_ref().map_or(0, VerifyingWriter::bytes_written)
    }

    /// Drops what is held and starts from the first byte (the server could not resume).
    ///
    /// # Errors
    /// IO errors truncating the file.
    pub fn restart(&mut self) -> Result<()> {
        if self.writer.take().is_none() {
            return Err(finished());
        }
        // Unwritten buffered bytes are dropped with the rest.
        self.writer = Some(fresh_writer(&self.lock, &self.path, &self.digest, self.size)?);
        self.offset = 0;
        Ok(())
    }

    /// Verifies digest and size over every byte, fsyncs and moves the blob into place;
    /// returns its digest and size. On a mismatch the partial file is removed (nothing is
    /// stored), so the next download starts over.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on mismatch; IO errors (the partial file is kept then).
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.commit_if(|| Ok(()))
    }

    /// As [`commit`](Self::commit), but once digest and size are verified, `accept` decides
    /// whether the content may be stored (pull checks a layer's tar and diff_id there). A
    /// refused blob is removed with its partial file, never stored: its bytes are what the
    /// registry serves for that digest, so resuming would only fetch them again.
    ///
    /// # Errors
    /// [`Error::Invalid`] with `accept`'s reason when it refuses; as [`commit`](Self::commit).
    pub fn commit_if(mut self, accept: impl FnOnce() -> std::result::Result<(), String>) -> Result<(Digest, u64)> {
        let Some(writer) = self.writer.take() else {
            return Err(finished());
        };
        let (buf, digest, size) = match writer.finish() {
            Ok(v) => v,
            Err(e) => {
                if DigestError::from_io(&e).is_some() {
                    let _ = fs::remove_file(&self.path);
                }
                return Err(Error::verification(e, &self.digest, "write", &self.path));
            }
        };
        let file = buf
            .into_inner()
            .map_err(|e| Error::io("write", &self.path)(e.into_error()))?;
        // The file must hold exactly the verified bytes, nothing before them.
        let len = file.metadata().map_err(Error::io("stat", &self.path))?.len();
        if len != size {
            let _ = fs::remove_file(&self.path);
            return Err(Error::Corrupt {
                digest: self.digest.clone(),
                source: DigestError::SizeMismatch {
                    digest: self.digest.clone(),
                    expected: size,
                    actual: len,
                },
            });
        }
        if let Err(reason) = accept() {
            let _ = fs::remove_file(&self.path);
            return Err(Error::Invalid {
                what: "blob content",
                reason: format!("{digest}: {reason}"),
            });
        }
        file.sync_all().map_err(Error::io("fsync", &self.path))?;
        let dest = self.store.blob_path(&digest);
        if dest.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            let dir = dest.parent().unwrap_or(&self.store.root).to_path_buf();
            fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            // Renamed while locked: a waiting writer notices and reopens (`lock_current`).
            fs::rename(&self.path, &dest).map_err(Error::io("rename", &dest))?;
            sync_dir(&dir)?;
        }
        drop(file);
        Ok((digest, size))
    }

    /// Removes the partial file: what it holds is of no use.
    pub fn discard(mut self) {
        self.writer = None;
        // Still locked (by `lock`): no other writer has it open yet.
        let _ = fs::remove_file(&self.path);
    }
}

/// Reads `file` from `pos` to `end` with pread, leaving the shared file offset alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = std::os::unix::fs::FileExt::read_at(self.file, &mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A writer from the first byte, on the locked file emptied.
fn fresh_writer(lock: &File, path: &Path, digest: &Digest, size: u64) -> Result<VerifyingWriter<BufWriter<File>>> {
    lock.set_len(0).map_err(Error::io("truncate", path))?;
    let mut file = lock.try_clone().map_err(Error::io("open", path))?;
    file.seek(SeekFrom::Start(0)).map_err(Error::io("seek", path))?;
    Ok(VerifyingWriter::new(
        BufWriter::with_capacity(256 * 1024, file),
        digest.algorithm(),
        Some(digest.clone()),
        Some(size),
    ))
}

fn finished() -> Error {
    Error::Invalid {
        what: "partial blob",
        reason: "already finished".into(),
    }
}

impl Write for PartialBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("partial blob already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PartialBlob {
    fn drop(&mut self) {
        let Some(mut w) = self.writer.take() else { return };
        // Keep what arrived for the next writer; an empty file is of no use.
        let _ = w.flush();
        if w.bytes_written() == 0 {
            let _ = fs::remove_file(&self.path);
        }
    }
}

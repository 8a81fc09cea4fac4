//! The streaming reader (see the crate docs for its rules).

use std::io::{self, BufRead};

use crate::error::{Error, Limit, Result};

const BLOCK: u64 = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`, NUL, `7`), or an old GNU sparse file (`S`).
    File,
    /// A hard link (`1`).
    Hardlink,
    /// A symbolic link (`2`).
    Symlink,
    /// A character device (`3`).
    Char,
    /// A block device (`4`).
    Block,
    /// A directory (`5`).
    Dir,
    /// A named pipe (`6`).
    Fifo,
}

/// One parsed entry header, with PAX and GNU extensions folded in.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path as stored (PAX `path`, GNU long name, or ustar prefix + name).
    pub path: Vec<u8>,
    /// Link target for hard and symbolic links.
    pub link: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Access time when a PAX record gives one.
    pub atime: Option<(i64, u32)>,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Extended attributes (`SCHILY.xattr.*`).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For sparse files: the data chunks (offset in the file, length) in archive order.
    pub sparse: Option<Vec<(u64, u64)>>,
    /// The file's logical size (for sparse files larger than the data stored).
    pub real_size: u64,
    /// Bytes of data stored in the archive for this entry.
    pub size: u64,
    /// Offset of the entry's header in the uncompressed stream.
    pub offset: u64,
}

impl Entry {
    /// The entry's path for messages.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Limits on what the reader accepts before any entry is applied.
#[derive(Debug, Clone, Copy)]
pub struct ReaderLimits {
    /// Maximum size of one PAX or GNU long-name record. Default: 1 MiB.
    pub max_metadata: u64,
    /// Maximum total size of one entry's xattrs. Default: 256 KiB.
    pub max_xattr_bytes: u64,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_metadata: 1 << 20,
            max_xattr_bytes: 256 << 10,
        }
    }
}

/// Reads entries one after another from an uncompressed tar stream.
///
/// # Examples
/// ```
/// use wharf_tar::{EntryKind, ReaderLimits, TarReader};
/// let mut w = wharf_tar::Writer::new(Vec::new());
/// w.append_data(&wharf_tar::Header::file("hello.txt", 0o644), b"hi")?;
/// let tar = w.finish()?;
/// let mut r = TarReader::new(&tar[..], ReaderLimits::default());
/// let e = r.next_entry()?.expect("one entry");
/// assert_eq!((e.path.as_slice(), e.kind, e.size), (&b"hello.txt"[..], EntryKind::File, 2));
/// assert_eq!(r.data()?, b"hi");
/// assert!(r.next_entry()?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TarReader<R> {
    r: R,
    offset: u64,
    /// Data bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    limits: ReaderLimits,
    current: Option<String>,
    finished: bool,
}

/// An error of the underlying stream: the end of it where more was needed is truncation;
/// anything else is kept with where it happened.
fn from_io(e: io::Error, offset: u64, entry: Option<&str>) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Truncated {
            offset,
            entry: entry.map(str::to_string),
        };
    }
    Error::Read {
        offset,
        entry: entry.map(str::to_string),
        source: e,
    }
}

impl<R: BufRead> TarReader<R> {
    /// A reader over an uncompressed tar stream.
    pub fn new(r: R, limits: ReaderLimits) -> Self {
        TarReader {
            r,
            offset: 0,
            remaining: 0,
            padding: 0,
            limits,
            current: None,
            finished: false,
        }
    }

    /// Bytes of the uncompressed stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let (offset, current) = (self.offset, &self.current);
            let buf = self.r.fill_buf().map_err(|e| from_io(e, offset, current.as_deref()))?;
            if buf.is_empty() {
                return Err(Error::Truncated {
                    offset: self.offset,
                    entry: self.current.clone(),
                });
            }
            let k = (buf.len() as u64).min(n) as usize;
            self.r.consume(k);
            self.offset += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// Skips up to `n` bytes of padding; true when the stream ended inside it.
    fn skip_padding(&mut self, mut n: u64) -> Result<bool> {
        while n > 0 {
            let (offset, current) = (self.offset, &self.current);
            let buf = self.r.fill_buf().map_err(|e| from_io(e, offset, current.as_deref()))?;
            if buf.is_empty() {
                return Ok(true);
            }
            let k = (buf.len() as u64).min(n) as usize;
            self.r.consume(k);
            self.offset += k as u64;
            n -= k as u64;
        }
        Ok(false)
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<bool> {
        let mut done = 0;
        while done < out.len() {
            let (offset, current) = (self.offset, &self.current);
            let buf = self.r.fill_buf().map_err(|e| from_io(e, offset, current.as_deref()))?;
            if buf.is_empty() {
                if done == 0 {
                    return Ok(false);
                }
                return Err(Error::Truncated {
                    offset: self.offset,
                    entry: self.current.clone(),
                });
            }
            let k = buf.len().min(out.len() - done);
            out[done..done + k].copy_from_slice(&buf[..k]);
            self.r.consume(k);
            self.offset += k as u64;
            done += k;
        }
        Ok(true)
    }

    fn read_block(&mut self, block: &mut [u8; 512]) -> Result<bool> {
        self.read_exact(block)
    }

    /// The next slice of the current entry's data (empty at its end). Call
    /// [`consume`](Self::consume) with how much of it was used.
    pub fn data(&mut self) -> Result<&[u8]> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        let offset = self.offset;
        let remaining = self.remaining;
        let current = self.current.clone();
        let buf = self.r.fill_buf().map_err(|e| from_io(e, offset, current.as_deref()))?;
        if buf.is_empty() {
            return Err(Error::Truncated { offset, entry: current });
        }
        let k = (buf.len() as u64).min(remaining) as usize;
        Ok(&buf[..k])
    }

    /// Marks `n` bytes of the slice returned by [`data`](Self::data) as used.
    pub fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.offset += n as u64;
        self.remaining -= n as u64;
    }

    /// Reads the whole data of a small (metadata) entry.
    fn read_small(&mut self, size: u64) -> Result<Vec<u8>> {
        if size > self.limits.max_metadata {
            return Err(Error::LimitExceeded {
                limit: Limit::MetadataBytes,
                max: self.limits.max_metadata,
                entry: self.current.clone(),
            });
        }
        let mut v = vec![0u8; size as usize];
        if !self.read_exact(&mut v)? && size > 0 {
            return Err(Error::Truncated {
                offset: self.offset,
                entry: self.current.clone(),
            });
        }
        self.skip(pad(size))?;
        Ok(v)
    }

    fn malformed(&self, at: u64, reason: impl Into<String>) -> Error {
        Error::Malformed {
            offset: at,
            reason: reason.into(),
        }
    }

    /// The next entry, or `None` at the end-of-archive marker (after which the rest of the
    /// stream has been checked to be zeros).
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.finished {
            return Ok(None);
        }
        // Skip what the caller did not read of the previous entry.
        let (rest, padding) = (self.remaining, self.padding);
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest)?;
        if self.skip_padding(padding)? {
            // The stream ends inside the last entry's padding: the entry is complete
            // (umoci 0.4's `insert` and `repack` write such layers; the diff_id still
            // covers every byte).
            self.finished = true;
            return Ok(None);
        }
        self.current = None;

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        let mut block = [0u8; 512];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(Error::Truncated {
                        offset: at,
                        entry: None,
                    });
                }
                // A stream that ends cleanly at a header boundary (no end marker) is accepted,
                // as Go's archive/tar does; the diff_id still covers every byte.
                self.finished = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(self.malformed(at, "extended header not followed by an entry"));
                }
                self.finish_trailer()?;
                return Ok(None);
            }
            verify_checksum(&block).map_err(|r| self.malformed(at, r))?;
            let h = RawHeader::parse(&block).map_err(|r| self.malformed(at, r))?;
            match h.typeflag {
                b'x' => {
                    if pax.is_some() {
                        return Err(self.malformed(at, "two PAX headers for one entry"));
                    }
                    let data = self.read_small(h.size(at)?)?;
                    pax = Some(Pax::parse(&data, self.limits).map_err(|e| match e {
                        PaxErr::Malformed(r) => self.malformed(at, r),
                        PaxErr::Limit(l) => Error::LimitExceeded {
                            limit: Limit::XattrBytes,
                            max: l,
                            entry: None,
                        },
                    })?);
                }
                b'g' => {
                    // Global PAX records (git archive's comment) carry nothing wharf applies.
                    self.read_small(h.size(at)?)?;
                }
                b'L' => {
                    if long_name.is_some() {
                        return Err(self.malformed(at, "two GNU long names for one entry"));
                    }
                    long_name = Some(trim_nul(self.read_small(h.size(at)?)?));
                }
                b'K' => {
                    if long_link.is_some() {
                        return Err(self.malformed(at, "two GNU long link names for one entry"));
                    }
                    long_link = Some(trim_nul(self.read_small(h.size(at)?)?));
                }
                _ => return self.entry(at, h, long_name, long_link, pax).map(Some),
            }
        }
    }

    fn entry(
        &mut self,
        at: u64,
        h: RawHeader,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Pax>,
    ) -> Result<Entry> {
        let pax = pax.unwrap_or_default();
        let mut path = long_name.unwrap_or_else(|| h.name.clone());
        let name_for_errors = String::from_utf8_lossy(pax.path.as_deref().unwrap_or(&path)).into_owned();
        self.current = Some(name_for_errors.clone());
        // PAX `path` and `linkpath` are authoritative, as in Go's archive/tar (containerd,
        // Docker, podman): libarchive writes a truncated ustar name next to them.
        if let Some(p) = &pax.path {
            path = p.clone();
        }
        let mut link = long_link.unwrap_or_else(|| h.link.clone());
        if let Some(l) = &pax.linkpath {
            link = l.clone();
        }
        // A numeric ustar field that a PAX record replaces is never used, so it may be
        // anything (bsdtar writes base-256 times next to a PAX `mtime`); one that is used
        // must parse.
        let field = |v: Result<u64, ()>, what: &str| {
            v.map_err(|()| Error::Malformed {
                offset: at,
                reason: format!("entry {name_for_errors:?}: bad {what} field"),
            })
        };
        let size = match pax.size {
            Some(s) => {
                // Parsers that ignore PAX would read another amount of data: refuse
                // unless the ustar field agrees (or is zero or unreadable, as writers
                // leave it for sizes it cannot hold).
                if let Ok(u) = h.size
                    && u != 0
                    && u != s
                {
                    return Err(Error::HeaderMismatch {
                        entry: name_for_errors,
                        field: "size",
                        pax: s.to_string(),
                        ustar: u.to_string(),
                    });
                }
                s
            }
            None => field(h.size, "size")?,
        };
        if pax.sparse.any {
            if let Some(n) = &pax.sparse.name {
                path = n.clone();
            }
            if !matches!(
                (pax.sparse.major, pax.sparse.minor),
                (None | Some(0), _) | (Some(1), Some(0) | None)
            ) {
                return Err(Error::Unsupported {
                    entry: name_for_errors,
                    what: "GNU sparse format version".into(),
                });
            }
        }
        let mut kind = match h.typeflag {
            b'0' | 0 | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::Char,
            b'4' => EntryKind::Block,
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            t => {
                return Err(Error::Unsupported {
                    entry: name_for_errors,
                    what: format!("tar entry type {:?}", t as char),
                });
            }
        };
        // Pre-POSIX tars mark directories only by a trailing slash.
        if kind == EntryKind::File && h.typeflag == 0 && path.ends_with(b"/") {
            kind = EntryKind::Dir;
        }
        if kind != EntryKind::File && size != 0 {
            // Parsers disagree on whether such data exists (Go skips none, others skip it):
            // refuse rather than guess.
            return Err(self.malformed(
                at,
                format!("header-only entry {name_for_errors:?} declares {size} data bytes"),
            ));
        }
        let mut sparse = None;
        let mut real_size = size;
        if h.typeflag == b'S' {
            let (chunks, real) = self.read_gnu_sparse(&h, at, size, &name_for_errors)?;
            sparse = Some(chunks);
            real_size = real;
        }
        let uid = match pax.uid {
            Some(u) => u,
            None => field(h.uid, "uid")?,
        };
        let gid = match pax.gid {
            Some(g) => g,
            None => field(h.gid, "gid")?,
        };
        let mtime = match pax.mtime {
            Some(t) => t,
            None => (
                h.mtime
                    .map_err(|()| self.malformed(at, format!("entry {name_for_errors:?}: bad mtime field")))?,
                0,
            ),
        };
        self.remaining = size;
        self.padding = pad(size);
        if pax.sparse.any {
            if kind != EntryKind::File {
                return Err(self.malformed(at, format!("sparse entry {name_for_errors:?} is not a file")));
            }
            let real =
                pax.sparse.realsize.or(pax.sparse.size).ok_or_else(|| {
                    self.malformed(at, format!("sparse entry {name_for_errors:?} without a real size"))
                })?;
            let map = if pax.sparse.major == Some(1) {
                self.read_sparse_map(at, &name_for_errors)?
            } else {
                pax.sparse.map.clone()
            };
            if map.len() % 2 != 0 {
                return Err(self.malformed(at, format!("sparse entry {name_for_errors:?}: odd sparse map")));
            }
            let chunks: Vec<(u64, u64)> = map.chunks(2).map(|c| (c[0], c[1])).collect();
            let (mut end, mut stored) = (0u64, 0u64);
            for &(off, len) in &chunks {
                let next = off.checked_add(len);
                match next {
                    Some(n) if off >= end => end = n,
                    _ => return Err(self.malformed(at, format!("sparse entry {name_for_errors:?}: bad chunk map"))),
                }
                stored = stored.saturating_add(len);
            }
            if end > real || stored != self.remaining {
                return Err(self.malformed(
                    at,
                    format!("sparse entry {name_for_errors:?}: chunks do not match the stored and real sizes"),
                ));
            }
            sparse = Some(chunks);
            real_size = real;
        }
        Ok(Entry {
            path,
            link,
            kind,
            mode: h.mode,
            uid,
            gid,
            mtime,
            atime: pax.atime,
            dev_major: h.dev_major,
            dev_minor: h.dev_minor,
            xattrs: pax.xattrs,
            sparse,
            real_size,
            size,
            offset: at,
        })
    }

    fn read_gnu_sparse(&mut self, h: &RawHeader, at: u64, size: u64, name: &str) -> Result<(Vec<(u64, u64)>, u64)> {
        let bad = |r: &str| Error::Malformed {
            offset: at,
            reason: format!("sparse entry {name:?}: {r}"),
        };
        let mut chunks = Vec::new();
        let mut push = |raw: &[u8]| -> Result<()> {
            for i in 0..raw.len() / 24 {
                let off_f = &raw[i * 24..i * 24 + 12];
                let len_f = &raw[i * 24 + 12..i * 24 + 24];
                if off_f.iter().all(|&b| b == 0) {
                    continue;
                }
                let off = parse_num(off_f).map_err(|_| bad("bad chunk offset"))?;
                let len = parse_num(len_f).map_err(|_| bad("bad chunk length"))?;
                chunks.push((off, len));
            }
            Ok(())
        };
        push(&h.raw[386..482])?;
        let mut extended = h.raw[482] != 0;
        let mut ext = [0u8; 512];
        let mut blocks = 0;
        while extended {
            blocks += 1;
            if blocks > 4096 {
                return Err(bad("too many sparse extension blocks"));
            }
            if !self.read_block(&mut ext)? {
                return Err(Error::Truncated {
                    offset: self.offset,
                    entry: Some(name.to_string()),
                });
            }
            push(&ext[..504])?;
            extended = ext[504] != 0;
        }
        let real = parse_num(&h.raw[483..495]).map_err(|_| bad("bad real size"))?;
        let mut end = 0u64;
        let mut stored = 0u64;
        for &(off, len) in &chunks {
            if off < end {
                return Err(bad("chunks overlap or are out of order"));
            }
            end = off.checked_add(len).ok_or_else(|| bad("chunk overflows"))?;
            stored = stored.checked_add(len).ok_or_else(|| bad("chunk overflows"))?;
        }
        if end > real || stored != size {
            return Err(bad("chunks do not match the stored and real sizes"));
        }
        Ok((chunks, real))
    }

    /// Reads the decimal sparse map that starts the data of a GNU 1.0 sparse file, and the
    /// padding after it.
    fn read_sparse_map(&mut self, at: u64, name: &str) -> Result<Vec<u64>> {
        let start = self.remaining;
        let mut numbers = Vec::new();
        let mut cur: Option<u64> = None;
        let mut expected: Option<u64> = None;
        loop {
            if start - self.remaining > self.limits.max_metadata {
                return Err(Error::LimitExceeded {
                    limit: Limit::MetadataBytes,
                    max: self.limits.max_metadata,
                    entry: Some(name.to_string()),
                });
            }
            let buf = self.data()?;
            let Some(&b) = buf.first() else {
                return Err(self.malformed(at, format!("sparse entry {name:?}: map truncated")));
            };
            self.consume(1);
            match b {
                b'0'..=b'9' => {
                    let v = cur
                        .unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')));
                    cur =
                        Some(v.ok_or_else(|| self.malformed(at, format!("sparse entry {name:?}: number overflows")))?);
                }
                b'\n' => {
                    let v = cur
                        .take()
                        .ok_or_else(|| self.malformed(at, format!("sparse entry {name:?}: empty map line")))?;
                    match expected {
                        None => {
                            if v > 1 << 20 {
                                return Err(self.malformed(at, format!("sparse entry {name:?}: too many chunks")));
                            }
                            expected = Some(v * 2);
                        }
                        Some(_) => numbers.push(v),
                    }
                    if expected == Some(numbers.len() as u64) {
                        break;
                    }
                }
                _ => return Err(self.malformed(at, format!("sparse entry {name:?}: bad map byte"))),
            }
        }
        let used = start - self.remaining;
        let mut skip = pad(used);
        while skip > 0 {
            let n = (self.data()?.len() as u64).min(skip) as usize;
            if n == 0 {
                return Err(self.malformed(at, format!("sparse entry {name:?}: map truncated")));
            }
            self.consume(n);
            skip -= n as u64;
        }
        Ok(numbers)
    }

    /// After the first zero block: the rest of the stream must be zeros.
    fn finish_trailer(&mut self) -> Result<()> {
        self.finished = true;
        loop {
            let at = self.offset;
            let buf = self.r.fill_buf().map_err(|e| from_io(e, at, None))?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Some(i) = buf.iter().position(|&b| b != 0) {
                return Err(Error::TrailingGarbage { offset: at + i as u64 });
            }
            let n = buf.len();
            self.r.consume(n);
            self.offset += n as u64;
        }
    }

    /// Reads and checks the rest of the stream after `None` was returned; needed when the
    /// stream ended without reading anything more. Returns the underlying reader.
    pub fn into_inner(self) -> R {
        self.r
    }
}

fn pad(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn verify_checksum(b: &[u8; 512]) -> Result<(), String> {
    let stored = parse_num(&b[148..156]).map_err(|_| "unreadable header checksum".to_string())?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &x) in b.iter().enumerate() {
        let x = if (148..156).contains(&i) { b' ' } else { x };
        unsigned += u64::from(x);
        signed += i64::from(x as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(format!(
            "header checksum mismatch (stored {stored}, computed {unsigned})"
        ))
    }
}

/// Parses an unsigned numeric field (octal text, or GNU base-256).
fn parse_num(f: &[u8]) -> Result<u64, ()> {
    u64::try_from(parse_signed(f)?).map_err(|_| ())
}

/// Parses a numeric field: octal text, or GNU base-256 (two's complement, so negative
/// values such as GNU tar's times before 1970) when the high bit is set.
fn parse_signed(f: &[u8]) -> Result<i64, ()> {
    if let Some(&first) = f.first()
        && first & 0x80 != 0
    {
        // The marker bit is the sign bit's neighbour: 0x80 positive, 0xff negative.
        let negative = first & 0x40 != 0;
        let mut v: i128 = if negative { -1 } else { 0 };
        v = (v << 6) | i128::from(first & 0x3f);
        for &b in &f[1..] {
            v = v.checked_mul(256).ok_or(())? | i128::from(b);
            if v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
                return Err(());
            }
        }
        return i64::try_from(v).map_err(|_| ());
    }
    let mut v: i64 = 0;
    let mut started = false;
    for &b in f {
        match b {
            b'0'..=b'7' => {
                started = true;
                v = v.checked_mul(8).ok_or(())?.checked_add(i64::from(b - b'0')).ok_or(())?;
            }
            b' ' | 0 if !started => {}
            b' ' | 0 => break,
            _ => return Err(()),
        }
    }
    Ok(v)
}

fn cstr(f: &[u8]) -> Vec<u8> {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    f[..end].to_vec()
}

struct RawHeader {
    raw: [u8; 512],
    name: Vec<u8>,
    link: Vec<u8>,
    typeflag: u8,
    mode: u32,
    // Fields a PAX record may replace: parsed only if used.
    uid: Result<u64, ()>,
    gid: Result<u64, ()>,
    size: Result<u64, ()>,
    mtime: Result<i64, ()>,
    dev_major: u32,
    dev_minor: u32,
}

impl RawHeader {
    /// The size field of a metadata entry (which no PAX record replaces).
    fn size(&self, at: u64) -> Result<u64> {
        self.size.map_err(|()| Error::Malformed {
            offset: at,
            reason: "bad size field".into(),
        })
    }

    fn parse(b: &[u8; 512]) -> Result<RawHeader, String> {
        let num = |r: std::ops::Range<usize>, what: &str| parse_num(&b[r]).map_err(|_| format!("bad {what} field"));
        let magic = &b[257..265];
        let posix = &magic[..6] == b"ustar\0";
        let gnu = magic == b"ustar  \0";
        let mut name = cstr(&b[0..100]);
        if posix {
            let prefix = cstr(&b[345..500]);
            if !prefix.is_empty() {
                let mut p = prefix;
                p.push(b'/');
                p.extend_from_slice(&name);
                name = p;
            }
        }
        let (dev_major, dev_minor) = if posix || gnu {
            (num(329..337, "devmajor")? as u32, num(337..345, "devminor")? as u32)
        } else {
            (0, 0)
        };
        Ok(RawHeader {
            raw: *b,
            name,
            link: cstr(&b[157..257]),
            typeflag: b[156],
            mode: (num(100..108, "mode")? & 0o7777) as u32,
            uid: parse_num(&b[108..116]),
            gid: parse_num(&b[116..124]),
            size: parse_num(&b[124..136]),
            mtime: parse_signed(&b[136..148]),
            dev_major,
            dev_minor,
        })
    }
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    atime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: PaxSparse,
}

/// GNU's PAX sparse records (formats 0.0, 0.1 and 1.0).
#[derive(Default)]
struct PaxSparse {
    any: bool,
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    size: Option<u64>,
    /// offset, length, offset, length… (0.0 and 0.1)
    map: Vec<u64>,
}

enum PaxErr {
    Malformed(String),
    Limit(u64),
}

fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10)?;
        nanos += d * 10u32.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        // -1.5 means 1.5 s before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

impl Pax {
    fn parse(mut d: &[u8], limits: ReaderLimits) -> Result<Pax, PaxErr> {
        let mut p = Pax::default();
        let mut xattr_bytes = 0u64;
        let bad = |r: &str| PaxErr::Malformed(format!("PAX record: {r}"));
        while !d.is_empty() {
            let sp = d.iter().position(|&b| b == b' ').ok_or_else(|| bad("no length"))?;
            let len: usize = std::str::from_utf8(&d[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad length"))?;
            if len <= sp + 1 || len > d.len() || d[len - 1] != b'\n' {
                return Err(bad("length does not match the record"));
            }
            let rec = &d[sp + 1..len - 1];
            d = &d[len..];
            let eq = rec.iter().position(|&b| b == b'=').ok_or_else(|| bad("no '='"))?;
            let (k, v) = (&rec[..eq], &rec[eq + 1..]);
            let num = |v: &[u8], what: &str| -> Result<u64, PaxErr> {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(&format!("bad {what}")))
            };
            match k {
                b"path" => p.path = Some(v.to_vec()),
                b"linkpath" => p.linkpath = Some(v.to_vec()),
                b"size" => p.size = Some(num(v, "size")?),
                b"uid" => p.uid = Some(num(v, "uid")?),
                b"gid" => p.gid = Some(num(v, "gid")?),
                b"mtime" => p.mtime = Some(parse_time(v).ok_or_else(|| bad("bad mtime"))?),
                b"atime" => p.atime = Some(parse_time(v).ok_or_else(|| bad("bad atime"))?),
                _ if k.starts_with(b"SCHILY.xattr.") => {
                    let name = &k[b"SCHILY.xattr.".len()..];
                    xattr_bytes += (name.len() + v.len()) as u64;
                    if xattr_bytes > limits.max_xattr_bytes {
                        return Err(PaxErr::Limit(limits.max_xattr_bytes));
                    }
                    p.xattrs.push((name.to_vec(), v.to_vec()));
                }
                _ if k.starts_with(b"GNU.sparse.") => {
                    p.sparse.any = true;
                    match &k[b"GNU.sparse.".len()..] {
                        b"major" => p.sparse.major = Some(num(v, "GNU.sparse.major")?),
                        b"minor" => p.sparse.minor = Some(num(v, "GNU.sparse.minor")?),
                        b"name" => p.sparse.name = Some(v.to_vec()),
                        b"realsize" => p.sparse.realsize = Some(num(v, "GNU.sparse.realsize")?),
                        b"size" => p.sparse.size = Some(num(v, "GNU.sparse.size")?),
                        b"numblocks" => {}
                        b"offset" | b"numbytes" => {
                            if p.sparse.map.len() > 1 << 21 {
                                return Err(bad("sparse map too long"));
                            }
                            p.sparse.map.push(num(v, "GNU.sparse offset")?);
                        }
                        b"map" => {
                            for n in v.split(|&b| b == b',').filter(|n| !n.is_empty()) {
                                p.sparse.map.push(num(n, "GNU.sparse.map")?);
                            }
                        }
                        _ => return Err(bad("unknown GNU.sparse record")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_octal_and_base256() {
        assert_eq!(parse_num(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_num(b"   755 \0"), Ok(0o755));
        assert_eq!(parse_num(b"\0\0\0\0"), Ok(0));
        assert_eq!(parse_num(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Ok(256));
        assert!(parse_num(b"12x4").is_err());
        assert!(parse_num(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_time(b"1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"x"), None);
    }
}

//! The tar writer: ustar headers, with a PAX record for every value ustar cannot hold
//! (long or non-ASCII names and link targets, sizes of 8 GiB and more, ids of 2^21 and
//! more, times before 1970 or past 2242, xattrs). What it writes, [`TarReader`](crate::TarReader) reads back
//! unchanged, and so do GNU tar, bsdtar and Go's archive/tar.

use std::io::{self, Read, Write};

use crate::reader::EntryKind;

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The path in the archive (a directory's gets a trailing `/`).
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time in seconds (negative before 1970).
    pub mtime: i64,
    /// Bytes of data (regular files only).
    pub size: u64,
    /// Link target for hard and symbolic links.
    pub link: Vec<u8>,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Extended attributes, written as `SCHILY.xattr.*` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Header {
    /// A regular file owned by root with mtime 0 (set `size`, or use
    /// [`Writer::append_data`], which does).
    pub fn file(path: impl AsRef<[u8]>, mode: u32) -> Header {
        Header {
            path: path.as_ref().to_vec(),
            kind: EntryKind::File,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            link: Vec::new(),
            major: 0,
            minor: 0,
            xattrs: Vec::new(),
        }
    }

    /// A directory owned by root with mtime 0.
    pub fn dir(path: impl AsRef<[u8]>, mode: u32) -> Header {
        Header {
            kind: EntryKind::Dir,
            ..Header::file(path, mode)
        }
    }
}

/// Writes entries to an uncompressed tar stream.
///
/// # Examples
/// ```
/// use wharf_tar::{Header, ReaderLimits, TarReader, Writer};
/// let mut w = Writer::new(Vec::new());
/// w.append(&Header::dir("etc", 0o755), None)?;
/// w.append_data(&Header { mtime: -86_400, ..Header::file("etc/motd", 0o644) }, b"hi\n")?;
/// let tar = w.finish()?;
/// let mut r = TarReader::new(&tar[..], ReaderLimits::default());
/// assert_eq!(r.next_entry()?.expect("dir").path, b"etc/");
/// assert_eq!(r.next_entry()?.expect("file").mtime, (-86_400, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Writer<W> {
    w: W,
}

fn put_octal(field: &mut [u8], v: u64) -> bool {
    let s = format!("{:0w$o}", v, w = field.len() - 1);
    if s.len() > field.len() - 1 {
        return false;
    }
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
    true
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn raw_header(name: &[u8], typeflag: u8, h: &Header, size: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    put_octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    // Values that do not fit are zero here and carried by PAX records.
    for (range, v) in [(108..116, h.uid), (116..124, h.gid), (124..136, size)] {
        if !put_octal(&mut b[range.clone()], v) {
            put_octal(&mut b[range], 0);
        }
    }
    if !(h.mtime >= 0 && put_octal(&mut b[136..148], h.mtime as u64)) {
        put_octal(&mut b[136..148], 0);
    }
    b[156] = typeflag;
    let l = h.link.len().min(100);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], u64::from(h.major));
    put_octal(&mut b[337..345], u64::from(h.minor));
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let pad = ((512 - len % 512) % 512) as usize;
    w.write_all(&[0u8; 512][..pad])
}

impl<W: Write> Writer<W> {
    /// A writer onto `w` (wrap a file or socket in a `BufWriter`: headers are written
    /// 512 bytes at a time).
    pub fn new(w: W) -> Writer<W> {
        Writer { w }
    }

    /// Appends an entry; a regular file's `h.size` bytes of data come from `data`.
    ///
    /// # Errors
    /// The underlying writer's errors; `UnexpectedEof` when `data` holds fewer than
    /// `h.size` bytes (a file that shrank while archived), leaving the stream unusable.
    pub fn append(&mut self, h: &Header, data: Option<&mut dyn Read>) -> io::Result<()> {
        let typeflag = match h.kind {
            EntryKind::File => b'0',
            EntryKind::Hardlink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::Char => b'3',
            EntryKind::Block => b'4',
            EntryKind::Dir => b'5',
            EntryKind::Fifo => b'6',
        };
        let size = if h.kind == EntryKind::File { h.size } else { 0 };
        let mut name = h.path.clone();
        if h.kind == EntryKind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let mut pax = Vec::new();
        if name.len() > 100 || !name.is_ascii() {
            pax_record(&mut pax, b"path", &name);
        }
        if h.link.len() > 100 || !h.link.is_ascii() {
            pax_record(&mut pax, b"linkpath", &h.link);
        }
        if size >= 1 << 33 {
            pax_record(&mut pax, b"size", size.to_string().as_bytes());
        }
        if h.uid >= 1 << 21 {
            pax_record(&mut pax, b"uid", h.uid.to_string().as_bytes());
        }
        if h.gid >= 1 << 21 {
            pax_record(&mut pax, b"gid", h.gid.to_string().as_bytes());
        }
        if !(0..1 << 33).contains(&h.mtime) {
            pax_record(&mut pax, b"mtime", h.mtime.to_string().as_bytes());
        }
        for (k, v) in &h.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(&mut pax, &key, v);
        }
        if !pax.is_empty() {
            let ph = Header {
                mtime: h.mtime.max(0),
                ..Header::file("PaxHeader", 0o644)
            };
            self.w
                .write_all(&raw_header(b"PaxHeader", b'x', &ph, pax.len() as u64))?;
            self.w.write_all(&pax)?;
            pad(&mut self.w, pax.len() as u64)?;
        }
        self.w.write_all(&raw_header(&name, typeflag, h, size))?;
        if size > 0 {
            let copied = match data {
                Some(r) => {
                    let n = io::copy(&mut (&mut *r).take(size), &mut self.w)?;
                    // Read on to the end: a verifying reader checks its digest there, and a
                    // file that grew is an error rather than a silently cut copy.
                    if n == size && r.read(&mut [0u8; 1])? != 0 {
                        return Err(io::Error::other(format!(
                            "{}: more than {size} bytes (did it grow while being archived?)",
                            String::from_utf8_lossy(&h.path)
                        )));
                    }
                    n
                }
                None => 0,
            };
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: {copied} of {size} bytes (did it shrink while being archived?)",
                        String::from_utf8_lossy(&h.path)
                    ),
                ));
            }
            pad(&mut self.w, size)?;
        }
        Ok(())
    }

    /// Appends a regular file holding `data` (its size taken from `data`).
    ///
    /// # Errors
    /// The underlying writer's errors.
    pub fn append_data(&mut self, h: &Header, mut data: &[u8]) -> io::Result<()> {
        let h = Header {
            size: data.len() as u64,
            ..h.clone()
        };
        self.append(&h, Some(&mut data))
    }

    /// The underlying writer, for what does not go through entries.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the underlying writer.
    ///
    /// # Errors
    /// The underlying writer's errors.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        Ok(self.w)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{ReaderLimits, TarReader};

    #[test]
    fn what_ustar_cannot_hold_round_trips_through_pax() {
        let long = "d/".repeat(80) + "f\u{e9}";
        let h = Header {
            uid: 1 << 22,
            gid: 3_000_000,
            mtime: -5,
            xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
            link: Vec::new(),
            ..Header::file(long.as_bytes(), 0o4755)
        };
        let mut w = Writer::new(Vec::new());
        w.append_data(&h, b"abc").unwrap();
        w.append(
            &Header {
                kind: EntryKind::Symlink,
                link: "t".repeat(150).into_bytes(),
                mtime: 1 << 34,
                ..Header::file("l", 0o777)
            },
            None,
        )
        .unwrap();
        let tar = w.finish().unwrap();
        let mut r = TarReader::new(&tar[..], ReaderLimits::default());
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(
            (e.uid, e.gid, e.mtime, e.mode, e.size),
            (1 << 22, 3_000_000, (-5, 0), 0o4755, 3)
        );
        assert_eq!(e.xattrs, h.xattrs);
        assert_eq!(r.data().unwrap(), b"abc");
        let l = r.next_entry().unwrap().unwrap();
        assert_eq!((l.kind, l.link.len(), l.mtime.0), (EntryKind::Symlink, 150, 1 << 34));
        assert!(r.next_entry().unwrap().is_none());
    }
}

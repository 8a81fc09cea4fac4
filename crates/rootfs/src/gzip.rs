//! Gzip (RFC 1952) members decoded without checking their CRC-32.
//!
//! Used only for layers whose uncompressed stream is verified against a diff_id: a SHA-256
//! of every uncompressed byte is a strictly stronger check than the members' CRC-32, and
//! computing the CRC as well cost about 5% of the decompressing thread, which bounds how fast
//! a layer unpacks. Everything else is still checked: the header (magic, method, reserved
//! flags, optional fields bounded), each member's length (ISIZE), truncation, and bytes
//! after the last member that do not start another one.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

/// Optional header fields longer than this are refused.
const MAX_FIELD: usize = 64 * 1024;

enum State {
    /// At the start of a member (or at the end of the stream).
    Header,
    Body,
    Done,
}

/// A `Read` of the concatenated members of a gzip stream.
pub(crate) struct UncheckedGzip<R> {
    inner: R,
    inflate: Decompress,
    state: State,
    /// Bytes produced by the current member.
    member_out: u64,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {what}"))
}

impl<R: BufRead> UncheckedGzip<R> {
    pub(crate) fn new(inner: R) -> Self {
        UncheckedGzip {
            inner,
            inflate: Decompress::new(false),
            state: State::Header,
            member_out: 0,
        }
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let k = buf.len().min(n);
            self.inner.consume(k);
            n -= k;
        }
        Ok(())
    }

    /// Skips a NUL-terminated header field.
    fn skip_cstr(&mut self) -> io::Result<()> {
        let mut len = 0;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(i) = buf.iter().position(|&b| b == 0) {
                self.inner.consume(i + 1);
                return Ok(());
            }
            len += buf.len();
            let n = buf.len();
            self.inner.consume(n);
            if len > MAX_FIELD {
                return Err(invalid("header field too long"));
            }
        }
    }

    fn header(&mut self) -> io::Result<()> {
        let mut h = [0u8; 10];
        self.inner.read_exact(&mut h)?;
        if h[0] != 0x1f || h[1] != 0x8b {
            return Err(invalid("bad magic (not a gzip member)"));
        }
        if h[2] != 8 {
            return Err(invalid("compression method is not deflate"));
        }
        let flags = h[3];
        if flags & 0xe0 != 0 {
            return Err(invalid("reserved header flags set"));
        }
        if flags & 0x04 != 0 {
            let xlen = usize::from(self.byte()?) | usize::from(self.byte()?) << 8;
            self.skip(xlen)?;
        }
        if flags & 0x08 != 0 {
            self.skip_cstr()?;
        }
        if flags & 0x10 != 0 {
            self.skip_cstr()?;
        }
        if flags & 0x02 != 0 {
            self.skip(2)?; // header CRC-16
        }
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        self.inner.read_exact(&mut t)?;
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if isize != self.member_out as u32 {
            return Err(invalid("member length (ISIZE) does not match its data"));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for UncheckedGzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    if self.inner.fill_buf()?.is_empty() {
                        self.state = State::Done;
                        continue;
                    }
                    self.header()?;
                    self.inflate.reset(false);
                    self.member_out = 0;
                    self.state = State::Body;
                }
                State::Body => {
                    let input = self.inner.fill_buf()?;
                    let eof = input.is_empty();
                    let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                    let status = self
                        .inflate
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let consumed = (self.inflate.total_in() - in0) as usize;
                    let produced = (self.inflate.total_out() - out0) as usize;
                    self.inner.consume(consumed);
                    self.member_out += produced as u64;
                    if status == Status::StreamEnd {
                        self.trailer()?;
                        self.state = State::Header;
                    } else if produced == 0 && consumed == 0 {
                        // No progress with input and room for output: never spin on it.
                        return Err(if eof {
                            io::Error::new(io::ErrorKind::UnexpectedEof, "gzip: truncated")
                        } else {
                            invalid("deflate data makes no progress")
                        });
                    }
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(blob: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        UncheckedGzip::new(io::BufReader::with_capacity(7, blob)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_members_and_header_fields_like_flate2() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut named = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::best());
        named.write_all(b"second member").unwrap();
        let blob = [gz(&a), named.finish().unwrap(), gz(b"")].concat();
        let mut expected = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut expected)
            .unwrap();
        assert_eq!(decode(&blob).unwrap(), expected);
        assert_eq!(expected.len(), a.len() + 13);
    }

    #[test]
    fn refuses_truncation_garbage_and_a_wrong_length() {
        let blob = gz(&[7u8; 50_000]);
        for cut in [5, blob.len() / 2, blob.len() - 3] {
            let e = decode(&blob[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
        let garbage = [blob.clone(), b"garbage!garbage!".to_vec()].concat();
        assert_eq!(decode(&garbage).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut wrong_len = blob.clone();
        let n = wrong_len.len();
        wrong_len[n - 4] ^= 1;
        assert_eq!(decode(&wrong_len).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // The CRC is what this decoder leaves to the caller's diff_id check.
        let mut wrong_crc = blob.clone();
        wrong_crc[n - 8] ^= 1;
        assert_eq!(decode(&wrong_crc).unwrap(), vec![7u8; 50_000]);
    }
}

//! Gzip (RFC 1952) members decoded without checking their CRC-32.
//!
//! Used only for layers whose uncompressed stream is verified against a diff_id: a SHA-256
//! of every uncompressed byte is a strictly stronger check than the members' CRC-32, and
//! computing the CRC as well cost about 5% of the decompressing thread, which bounds how fast
//! a layer unpacks. Everything else is still checked: the header (magic, method, reserved
//! flags, optional fields bounded), each member's length (ISIZE), truncation, and bytes
//! after the last member that do not start another one.
//!
//! The deflate data itself goes through ISA-L when the `isal` feature found it at build time
//! (`crate::GZIP_INFLATER` says which), zlib-rs otherwise.

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

/// The raw deflate decoder under the gzip framing.
pub(crate) enum Inflater {
    /// zlib-rs through flate2 (with ISA-L built in, only the tests compare against it).
    #[cfg_attr(wharf_isal, allow(dead_code))]
    Zlib(Box<Decompress>),
    /// ISA-L.
    #[cfg(wharf_isal)]
    Isal(crate::isal::RawInflate),
}

impl Inflater {
    /// The fastest decoder this build has.
    pub(crate) fn best() -> io::Result<Self> {
        #[cfg(wharf_isal)]
        return Ok(Inflater::Isal(crate::isal::RawInflate::new()?));
        #[cfg(not(wharf_isal))]
        Ok(Inflater::Zlib(Box::new(Decompress::new(false))))
    }

    fn reset(&mut self) {
        match self {
            Inflater::Zlib(d) => d.reset(false),
            #[cfg(wharf_isal)]
            Inflater::Isal(d) => d.reset(),
        }
    }

    /// Decodes from `input` into `out`: (consumed, produced, end of the deflate stream,
    /// consumed bytes to give back because they follow the stream's end).
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize, bool, Vec<u8>)> {
        match self {
            Inflater::Zlib(d) => {
                let (in0, out0) = (d.total_in(), d.total_out());
                let status = d
                    .decompress(input, out, FlushDecompress::None)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let consumed = (d.total_in() - in0) as usize;
                let produced = (d.total_out() - out0) as usize;
                Ok((consumed, produced, status == Status::StreamEnd, Vec::new()))
            }
            #[cfg(wharf_isal)]
            Inflater::Isal(d) => {
                let s = d.step(input, out)?;
                Ok((s.consumed, s.produced, s.ended, s.unused.0[..s.unused.1].to_vec()))
            }
        }
    }
}

/// A `BufRead` that can be handed back bytes already consumed from it.
struct Pushback<R> {
    back: Vec<u8>,
    inner: R,
}

impl<R: BufRead> Read for Pushback<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::stream::read_buffered(self, out)
    }
}

impl<R: BufRead> BufRead for Pushback<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.back.is_empty() {
            self.inner.fill_buf()
        } else {
            Ok(&self.back)
        }
    }

    fn consume(&mut self, n: usize) {
        if self.back.is_empty() {
            self.inner.consume(n);
        } else {
            self.back.drain(..n);
        }
    }
}

/// A `Read` of the concatenated members of a gzip stream.
pub(crate) struct UncheckedGzip<R> {
    inner: Pushback<R>,
    inflate: Inflater,
    state: State,
    /// Bytes produced by the current member.
    member_out: u64,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {what}"))
}

impl<R: BufRead> UncheckedGzip<R> {
    pub(crate) fn new(inner: R, inflate: Inflater) -> Self {
        UncheckedGzip {
            inner: Pushback {
                back: Vec::new(),
                inner,
            },
            inflate,
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
                    self.inflate.reset();
                    self.member_out = 0;
                    self.state = State::Body;
                }
                State::Body => {
                    let input = self.inner.fill_buf()?;
                    let eof = input.is_empty();
                    let (consumed, produced, ended, unused) = self.inflate.step(input, out)?;
                    self.inner.consume(consumed);
                    self.inner.back.splice(0..0, unused);
                    self.member_out += produced as u64;
                    if ended {
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

    /// Every decoder this build has.
    fn inflaters() -> Vec<Inflater> {
        #[allow(unused_mut)]
        let mut v = vec![Inflater::Zlib(Box::new(Decompress::new(false)))];
        #[cfg(wharf_isal)]
        v.push(Inflater::Isal(crate::isal::RawInflate::new().unwrap()));
        v
    }

    /// Decodes `blob` with every decoder, through a tiny and a large input buffer, and
    /// returns the result they all agree on (the kind of error, when they fail).
    fn decode(blob: &[u8]) -> io::Result<Vec<u8>> {
        decode_through(blob, &[7, 1 << 20])
    }

    fn decode_through(blob: &[u8], capacities: &[usize]) -> io::Result<Vec<u8>> {
        let mut results = Vec::new();
        for &capacity in capacities {
            for inflate in inflaters() {
                let mut out = Vec::new();
                let r = UncheckedGzip::new(io::BufReader::with_capacity(capacity, blob), inflate)
                    .read_to_end(&mut out)
                    .map(|_| out);
                results.push(r);
            }
        }
        let first = results.remove(0);
        for other in &results {
            match (&first, other) {
                (Ok(a), Ok(b)) => assert!(a == b, "decoders disagree on the data"),
                (Ok(a), Err(e)) | (Err(e), Ok(a)) => panic!("one decoder gave {} bytes, one failed: {e}", a.len()),
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "decoders disagree: {a} vs {b}"),
            }
        }
        first
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

    /// Pseudo-random bytes that do not compress (xorshift).
    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn members_end_anywhere_in_the_input_buffer() {
        // Member ends (where a decoder may have read ahead past the deflate data) land at
        // every offset of small input buffers and at the edges of large ones.
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let parts = [
            Vec::new(),
            b"x".to_vec(),
            noise(70_000, 1),
            text.clone(),
            noise(1_000, 2),
            text[..4_321].to_vec(),
        ];
        let blob: Vec<u8> = parts.iter().flat_map(|p| gz(p)).collect();
        let expected = parts.concat();
        let got = decode_through(&blob, &[1, 2, 3, 5, 8, 13, 64, 4096, 65_536, blob.len()]).unwrap();
        assert!(
            got == expected,
            "decoded {} bytes, expected {}",
            got.len(),
            expected.len()
        );
    }

    #[test]
    fn damaged_deflate_data_never_panics() {
        // Without the CRC a damaged stream may decode to other bytes (the diff_id catches
        // that); what must hold is that every decoder returns, and refuses most damage.
        let blob = [gz(&noise(20_000, 3)), gz(&[b'a'; 50_000])].concat();
        let positions: Vec<usize> = (10..blob.len()).step_by(97).collect();
        for (d, _) in inflaters().into_iter().enumerate() {
            let mut refused = 0;
            for &i in &positions {
                let mut bad = blob.clone();
                bad[i] ^= 0x5a;
                let inflate = inflaters().swap_remove(d);
                let mut out = Vec::new();
                refused += usize::from(
                    UncheckedGzip::new(io::BufReader::with_capacity(4096, &bad[..]), inflate)
                        .read_to_end(&mut out)
                        .is_err(),
                );
            }
            assert!(
                refused > positions.len() / 2,
                "decoder {d} refused {refused} of {}",
                positions.len()
            );
        }
    }
}

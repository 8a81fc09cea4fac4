//! Content digests (`sha256:…`, `sha512:…`) and IO adapters that verify them while bytes stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A hash algorithm wharf can compute and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256: the registered default of the image spec.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears in a digest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of lower-case hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string was rejected, or why streamed content did not match its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `algorithm:` prefix.
    #[error("digest {0:?} has no algorithm prefix (expected e.g. sha256:…)")]
    MissingAlgorithm(String),
    /// The algorithm is syntactically valid but not one wharf can verify.
    #[error("digest {digest:?} uses unsupported algorithm {algorithm:?} (sha256 and sha512 are supported)")]
    UnsupportedAlgorithm {
        /// The whole digest string.
        digest: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// The encoded part is not lower-case hex of the algorithm's length.
    #[error("digest {digest:?}: encoded part must be {expected} lower-case hex characters")]
    BadHex {
        /// The whole digest string.
        digest: String,
        /// How many hex characters the algorithm needs.
        expected: usize,
    },
    /// Streamed content hashed to another digest.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    Mismatch {
        /// The digest the content was supposed to have.
        expected: Digest,
        /// What the content actually hashed to.
        actual: Digest,
    },
    /// Streamed content had another length than announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest the content was supposed to have.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// The bytes seen (for an oversized stream: at least this many).
        actual: u64,
    },
}

/// A validated content digest: algorithm plus lower-case hex.
///
/// ```
/// use wharf_image::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// assert_eq!(d, Digest::of(wharf_image::Algorithm::Sha256, b""));
/// assert_eq!(d.to_string().len(), 71);
/// # Ok::<(), wharf_image::DigestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Digest of a byte slice.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// SHA-256 digest of a byte slice (the common case).
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Converts to oci-spec's digest type, for use in oci-spec descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Our digests are a strict subset of what oci-spec accepts.
        oci_spec::image::Digest::from_str(&self.to_string())
            .unwrap_or_else(|_| unreachable!("validated digest rejected by oci-spec"))
    }

    /// Converts from oci-spec's digest type, validating algorithm and hex.
    ///
    /// # Errors
    /// [`DigestError`] when the digest uses another algorithm or malformed hex.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest, DigestError> {
        d.to_string().parse()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_string()));
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(DigestError::UnsupportedAlgorithm {
                    digest: s.to_string(),
                    algorithm: alg.to_string(),
                });
            }
        };
        let valid =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadHex {
                digest: s.to_string(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::from_oci(d)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one algorithm.
#[derive(Clone)]
pub struct Hasher(HasherInner);

#[derive(Clone)]
enum HasherInner {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Hasher {
        Hasher(match algorithm {
            Algorithm::Sha256 => HasherInner::Sha256(Sha256::new()),
            Algorithm::Sha512 => HasherInner::Sha512(Sha512::new()),
        })
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, out) = match self.0 {
            HasherInner::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            HasherInner::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest {
            algorithm,
            hex: to_hex(&out),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Wraps an `io::Error` around a [`DigestError`], so verification failures travel
/// through `Read`/`Write` and can be recovered with [`DigestError::from_io`].
fn io_err(e: DigestError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl DigestError {
    /// The verification failure carried inside an `io::Error` made by a verifying
    /// reader or writer, if that is what it is.
    pub fn from_io(e: &io::Error) -> Option<&DigestError> {
        e.get_ref()?.downcast_ref::<DigestError>()
    }
}

/// A reader that hashes and counts what passes through it and, at end of stream,
/// fails unless the content matched the expected digest and size.
///
/// A stream longer than `expected_size` fails as soon as the excess is read, so a
/// hostile source cannot make the reader consume unbounded data.
///
/// The failure arrives as an `io::Error` of kind `InvalidData` wrapping a
/// [`DigestError`] (see [`DigestError::from_io`]).
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    seen: u64,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Verifies `inner` against `expected`, and its length against `expected_size` when known.
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
            expected_size,
            seen: 0,
            verified: false,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.seen
    }

    /// True once end of stream was reached and the content matched.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// Reads to the end (discarding) and returns the verification outcome.
    ///
    /// # Errors
    /// IO errors of the inner reader, or a wrapped [`DigestError`].
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if let Some(max) = self.expected_size
            && self.seen > max
        {
            return Err(io_err(DigestError::SizeMismatch {
                digest: self.expected.clone(),
                expected: max,
                actual: self.seen,
            }));
        }
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            return Ok(n);
        }
        // End of stream: verify once.
        if let Some(h) = self.hasher.take() {
            if let Some(size) = self.expected_size
                && self.seen != size
            {
                return Err(io_err(DigestError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: size,
                    actual: self.seen,
                }));
            }
            let actual = h.finish();
            if actual != self.expected {
                return Err(io_err(DigestError::Mismatch {
                    expected: self.expected.clone(),
                    actual,
                }));
            }
            self.verified = true;
        } else if !self.verified {
            return Err(io::Error::other("verifying reader read after a failed verification"));
        }
        Ok(0)
    }
}

/// A writer that hashes and counts what passes through it; [`VerifyingWriter::finish`]
/// checks the result against an expected digest and size.
///
/// Writing more than `expected_size` bytes fails at once.
pub struct VerifyingWriter<W> {
    inner: W,
    hasher: Hasher,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    written: u64,
}

impl<W: Write> VerifyingWriter<W> {
    /// A writer that checks against `expected` (if given) and `expected_size` (if given)
    /// on [`finish`](Self::finish). Without an expected digest it only computes one,
    /// with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm, expected: Option<Digest>, expected_size: Option<u64>) -> Self {
        let algorithm = expected.as_ref().map_or(algorithm, |d| d.algorithm());
        VerifyingWriter {
            inner,
            hasher: Hasher::new(algorithm),
            expected,
            expected_size,
            written: 0,
        }
    }

    /// A writer that continues content of which `existing` holds the beginning (already in
    /// `inner`, which must be positioned after it): `existing` is read and hashed again, so
    /// the final check covers every byte, not only those written from now on.
    ///
    /// # Errors
    /// A read error of `existing`, or a wrapped [`DigestError::SizeMismatch`] when it is
    /// longer than `expected_size`.
    pub fn resume(
        inner: W,
        expected: Digest,
        expected_size: Option<u64>,
        mut existing: impl io::Read,
    ) -> io::Result<Self> {
        let mut w = VerifyingWriter::new(inner, expected.algorithm(), Some(expected), expected_size);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match existing.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(max) = w.expected_size
                && w.written + n as u64 > max
            {
                return Err(io_err(DigestError::SizeMismatch {
                    digest: w.expected.clone().unwrap_or_else(|| w.hasher.clone().finish()),
                    expected: max,
                    actual: w.written + n as u64,
                }));
            }
            w.hasher.update(&buf[..n]);
            w.written += n as u64;
        }
        Ok(w)
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flushes and checks digest and size; returns the inner writer, the digest and the size.
    ///
    /// # Errors
    /// A flush failure, or a wrapped [`DigestError`] on mismatch.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.inner.flush()?;
        let actual = self.hasher.finish();
        if let Some(size) = self.expected_size
            && size != self.written
        {
            return Err(io_err(DigestError::SizeMismatch {
                digest: self.expected.clone().unwrap_or(actual),
                expected: size,
                actual: self.written,
            }));
        }
        if let Some(expected) = self.expected
            && expected != actual
        {
            return Err(io_err(DigestError::Mismatch { expected, actual }));
        }
        Ok((self.inner, actual, self.written))
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(max) = self.expected_size
            && self.written + buf.len() as u64 > max
        {
            return Err(io_err(DigestError::SizeMismatch {
                digest: self.expected.clone().unwrap_or_else(|| self.hasher.clone().finish()),
                expected: max,
                actual: self.written + buf.len() as u64,
            }));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::sha256(b""), d);
        let s512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(&s512.hex()[..16], "ddaf35a193617aba");
        assert_eq!(s512.to_string().parse::<Digest>().unwrap(), s512);
    }

    #[test]
    fn rejects_bad_digests() {
        type Check = fn(&DigestError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("e3b0c442", |e| matches!(e, DigestError::MissingAlgorithm(_))),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", |e| {
                matches!(e, DigestError::UnsupportedAlgorithm { .. })
            }),
            ("sha256:abc", |e| matches!(e, DigestError::BadHex { expected: 64, .. })),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                |e| matches!(e, DigestError::BadHex { .. }),
            ),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                |e| matches!(e, DigestError::BadHex { expected: 128, .. }),
            ),
            ("sha256:", |e| matches!(e, DigestError::BadHex { .. })),
        ];
        for (input, check) in cases {
            let err = input.parse::<Digest>().unwrap_err();
            assert!(check(&err), "{input}: {err:?}");
        }
    }

    #[test]
    fn oci_roundtrip() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d);
    }

    #[test]
    fn verifying_reader_accepts_match_and_rejects_mismatch() {
        let data = b"hello world".repeat(1000);
        let good = Digest::sha256(&data);
        let mut out = Vec::new();
        let mut r = VerifyingReader::new(&data[..], good.clone(), Some(data.len() as u64));
        io::copy(&mut r, &mut out).unwrap();
        assert!(r.is_verified());
        assert_eq!(out, data);

        let bad = Digest::sha256(b"other");
        let err = VerifyingReader::new(&data[..], bad.clone(), None).drain().unwrap_err();
        assert!(matches!(DigestError::from_io(&err), Some(DigestError::Mismatch { expected, .. }) if *expected == bad));

        // Truncated: fewer bytes than announced.
        let err = VerifyingReader::new(&data[..10], good.clone(), Some(data.len() as u64))
            .drain()
            .unwrap_err();
        assert!(matches!(
            DigestError::from_io(&err),
            Some(DigestError::SizeMismatch { actual: 10, .. })
        ));

        // Oversized: fails as soon as the excess arrives.
        let err = VerifyingReader::new(&data[..], good, Some(5)).drain().unwrap_err();
        assert!(matches!(
            DigestError::from_io(&err),
            Some(DigestError::SizeMismatch { expected: 5, .. })
        ));
    }

    #[test]
    fn verifying_writer_checks_on_finish() {
        let data = b"layer bytes";
        let good = Digest::sha256(data);
        let mut w = VerifyingWriter::new(
            Vec::new(),
            Algorithm::Sha256,
            Some(good.clone()),
            Some(data.len() as u64),
        );
        w.write_all(data).unwrap();
        let (buf, d, n) = w.finish().unwrap();
        assert_eq!((buf.as_slice(), &d, n), (&data[..], &good, data.len() as u64));

        let mut w = VerifyingWriter::new(Vec::new(), Algorithm::Sha256, Some(Digest::sha256(b"x")), None);
        w.write_all(data).unwrap();
        let err = w.finish().unwrap_err();
        assert!(matches!(DigestError::from_io(&err), Some(DigestError::Mismatch { .. })));

        let mut w = VerifyingWriter::new(Vec::new(), Algorithm::Sha256, None, Some(3));
        assert!(w.write_all(data).is_err());

        let w = VerifyingWriter::new(Vec::new(), Algorithm::Sha512, None, None);
        let (_, d, _) = w.finish().unwrap();
        assert_eq!(d, Digest::of(Algorithm::Sha512, b""));
    }
}

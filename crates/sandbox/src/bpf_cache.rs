//! Compiled seccomp programs kept on disk between processes.
//!
//! libseccomp needs 10 to 20 ms to compile Docker's profile (hundreds of rules on three architectures): more than
//! everything else a container start does. A runtime CLI starts one container per process, so the in-process cache
//! alone does not help it. With [`SpawnOptions::seccomp_cache`](crate::SpawnOptions::seccomp_cache) set, each
//! program is stored once in that directory, under the SHA-256 of everything its compilation depends on: the
//! profile, the libseccomp version and API level, the kernel release and the machine. Later spawns read it back.
//!
//! A program read from disk is loaded into the kernel as the container's filter, so whoever can write the directory
//! decides what the container may do: the directory must belong to the caller's effective uid and must not be
//! writable by group or others (it is created 0700), each file likewise, and files are opened without following
//! symlinks. A file that is damaged (bad header, wrong checksum, torn write) is ignored and rewritten.

use std::fs::{self, DirBuilder, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::seccomp::SeccompProgram;

/// File header: magic, format version 1.
const MAGIC: &[u8; 8] = b"wharfbp1";
/// Magic, flags (u32), instruction count (u32), SHA-256 of the instructions.
const HEADER_LEN: usize = 8 + 4 + 4 + 32;
/// More instructions than the kernel accepts (BPF_MAXINSNS) means a damaged file.
const MAX_INSNS: usize = 4096;

fn insecure(path: &Path, why: &str) -> Error {
    Error::Seccomp {
        reason: format!("seccomp cache {}: {why}", path.display()),
    }
}

/// Refuse what another user could have written.
fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(insecure(path, &format!("owned by uid {}, not {euid}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure(
            path,
            &format!("mode {:o} is writable by group or others", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// The cache key: SHA-256 over everything the compiled program depends on.
fn file_name(key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wharf seccomp cache v1\0");
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        h.update(format!("libseccomp {}.{}.{}\0", v.major, v.minor, v.micro));
    }
    h.update(format!("api {}\0", libseccomp::get_api()));
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } == 0 {
        for field in [&u.release[..], &u.machine[..]] {
            let bytes: Vec<u8> = field.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
            h.update(&bytes);
            h.update(b"\0");
        }
    }
    h.update(key.as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.bpf")
}

fn encode(p: &SeccompProgram) -> Vec<u8> {
    let mut body = Vec::with_capacity(p.filter.len() * 8);
    for i in &p.filter {
        body.extend_from_slice(&i.code.to_ne_bytes());
        body.push(i.jt);
        body.push(i.jf);
        body.extend_from_slice(&i.k.to_ne_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&p.flags.to_ne_bytes());
    out.extend_from_slice(&(p.filter.len() as u32).to_ne_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// `None` for anything that is not a complete, intact program.
fn decode(bytes: &[u8]) -> Option<SeccompProgram> {
    let (header, body) = bytes.split_at_checked(HEADER_LEN)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let flags = u32::from_ne_bytes(header[8..12].try_into().ok()?);
    let count = u32::from_ne_bytes(header[12..16].try_into().ok()?) as usize;
    if count == 0 || count > MAX_INSNS || body.len() != count * 8 || Sha256::digest(body)[..] != header[16..48] {
        return None;
    }
    Some(SeccompProgram {
        filter: crate::seccomp::filter_from_bytes(body),
        flags,
    })
}

/// Make the directory (0700) if it is missing and check that only the caller can write it.
fn open_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io("create seccomp cache", dir))?;
    }
    let meta = fs::symlink_metadata(dir).map_err(Error::io("stat seccomp cache", dir))?;
    if !meta.is_dir() {
        return Err(insecure(dir, "not a directory"));
    }
    check_owner(dir, &meta)
}

/// Read the program stored for `key`: `Ok(None)` when there is none or it is damaged.
fn read(path: &Path) -> Result<Option<SeccompProgram>> {
    let mut f = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open seccomp cache entry", path)(e)),
    };
    let meta = f.metadata().map_err(Error::io("stat seccomp cache entry", path))?;
    if !meta.is_file() {
        return Err(insecure(path, "not a regular file"));
    }
    check_owner(path, &meta)?;
    if meta.len() > (HEADER_LEN + MAX_INSNS * 8) as u64 {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes)
        .map_err(Error::io("read seccomp cache entry", path))?;
    Ok(decode(&bytes))
}

/// Store a program: written to a temporary file, then renamed over the entry, so readers see all or nothing.
fn write(dir: &Path, path: &Path, p: &SeccompProgram) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let res = (|| {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&encode(p))?;
        // SAFETY: fdatasync on an fd we own. The entry must not be seen before its bytes are on disk: a file that
        // a crash left short is detected by its checksum anyway, so this only saves a recompile.
        unsafe { libc::fdatasync(f.as_raw_fd()) };
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// The program for `key`: read from `dir` when it is there, otherwise built with `build` and stored.
///
/// # Errors
/// [`Error::Seccomp`] when the directory or an entry could be written by someone else; [`Error::Io`] when the
/// directory cannot be created or read; whatever `build` returns. Failing to store a new entry is not an error
/// (the program is still returned; the next spawn compiles again).
pub(crate) fn get_or_build(
    dir: &Path,
    key: &str,
    build: impl FnOnce() -> Result<SeccompProgram>,
) -> Result<SeccompProgram> {
    open_dir(dir)?;
    let path = dir.join(file_name(key));
    if let Some(p) = read(&path)? {
        return Ok(p);
    }
    let p = build()?;
    let _ = write(dir, &path, &p);
    Ok(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn program() -> SeccompProgram {
        SeccompProgram {
            filter: (0..10u32)
                .map(|k| libc::sock_filter {
                    code: 6,
                    jt: 1,
                    jf: 2,
                    k,
                })
                .collect(),
            flags: 4,
        }
    }

    #[test]
    fn encode_decode_round_trip_and_damage_is_rejected() {
        let bytes = encode(&program());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.flags, 4);
        assert_eq!(back.filter.len(), 10);
        assert_eq!(back.filter[9].k, 9);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped).is_none());
        let mut magic = bytes;
        magic[0] = b'x';
        assert!(decode(&magic).is_none());
    }

    #[test]
    fn keys_differ_by_profile() {
        assert_ne!(file_name("a"), file_name("b"));
        assert_eq!(file_name("a"), file_name("a"));
    }
}

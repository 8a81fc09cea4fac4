//! Test helpers: a raw tar writer that can produce the hostile archives no well-behaved
//! tar library would write, and host-side checks.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Writes tar headers byte by byte.
#[derive(Default)]
pub struct Tar {
    pub out: Vec<u8>,
}

pub struct H<'a> {
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: &'a [u8],
    pub major: u32,
    pub minor: u32,
}

impl Default for H<'_> {
    fn default() -> Self {
        H {
            name: b"",
            typeflag: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_600_000_000,
            link: b"",
            major: 0,
            minor: 0,
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn header(&mut self, h: &H<'_>) -> &mut Self {
        self.header_with(h, |_| {})
    }

    /// A header changed by `patch` before its checksum is computed (for fields `H` cannot
    /// express, such as base-256 numbers).
    pub fn header_with(&mut self, h: &H<'_>, patch: impl FnOnce(&mut [u8; 512])) -> &mut Self {
        let mut b = [0u8; 512];
        let n = h.name.len().min(100);
        b[..n].copy_from_slice(&h.name[..n]);
        octal(&mut b[100..108], u64::from(h.mode));
        octal(&mut b[108..116], h.uid);
        octal(&mut b[116..124], h.gid);
        octal(&mut b[124..136], h.size);
        octal(&mut b[136..148], h.mtime);
        b[156] = h.typeflag;
        let l = h.link.len().min(100);
        b[157..157 + l].copy_from_slice(&h.link[..l]);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        octal(&mut b[329..337], u64::from(h.major));
        octal(&mut b[337..345], u64::from(h.minor));
        patch(&mut b);
        b[148..156].copy_from_slice(b"        ");
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&b);
        self
    }

    pub fn data(&mut self, d: &[u8]) -> &mut Self {
        self.out.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            mode,
            size: data.len() as u64,
            ..H::default()
        })
        .data(data)
    }

    pub fn file_owned(&mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            mode,
            uid,
            gid,
            size: data.len() as u64,
            ..H::default()
        })
        .data(data)
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            typeflag: b'5',
            mode,
            ..H::default()
        })
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            typeflag: b'2',
            mode: 0o777,
            link: target.as_bytes(),
            ..H::default()
        })
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            typeflag: b'1',
            link: target.as_bytes(),
            ..H::default()
        })
    }

    pub fn node(&mut self, name: &str, typeflag: u8, major: u32, minor: u32) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            typeflag,
            mode: 0o600,
            major,
            minor,
            ..H::default()
        })
    }

    /// A PAX extended header with the given records.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ' '=' '\n'
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.header(&H {
            name: b"PaxHeader",
            typeflag: b'x',
            size: body.len() as u64,
            ..H::default()
        })
        .data(&body)
    }

    pub fn gnu_longname(&mut self, name: &[u8]) -> &mut Self {
        let mut d = name.to_vec();
        d.push(0);
        self.header(&H {
            name: b"././@LongLink",
            typeflag: b'L',
            size: d.len() as u64,
            ..H::default()
        })
        .data(&d)
    }

    pub fn end(&mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        std::mem::take(&mut self.out)
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Fails the test (never skips) when not root.
pub fn require_root(what: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root ({what}); run the tests as root as CI does"
    );
}

/// A scratch area: `root` is where layers go, `host` is a directory outside it holding a
/// sentinel that hostile layers try to reach.
pub struct Scratch {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub host: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        let tmp = tempfile::Builder::new().prefix("wharf-rootfs-test").tempdir().unwrap();
        let root = tmp.path().join("root");
        let host = tmp.path().join("host");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("sentinel"), b"untouched").unwrap();
        Scratch { tmp, root, host }
    }

    /// The host directory still holds exactly the sentinel, unchanged, with its mode.
    pub fn assert_host_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.host)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["sentinel".to_string()], "host directory was modified");
        assert_eq!(std::fs::read(self.host.join("sentinel")).unwrap(), b"untouched");
        let m = std::fs::metadata(self.host.join("sentinel")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644, "host sentinel mode changed");
        assert_eq!(
            m.uid(),
            rustix::process::geteuid().as_raw(),
            "host sentinel owner changed"
        );
        let d = std::fs::metadata(&self.host).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o755, "host dir mode changed");
    }

    /// Path of the host dir relative to `root` (for symlinks climbing out).
    pub fn host_rel(&self) -> String {
        "../host".to_string()
    }
}

pub fn apply(
    root: &Path,
    blob: &[u8],
    opts: &wharf_rootfs::ApplyOptions,
) -> wharf_rootfs::Result<wharf_rootfs::ApplyReport> {
    let dir = std::fs::File::open(root).unwrap();
    wharf_rootfs::apply_layer(&dir, blob, opts)
}

/// Stores an image made of these uncompressed layer tars (gzip-compressed in the store)
/// under `name` and returns it resolved.
pub fn store_image(store: &wharf_image::Store, name: &str, layers: &[Vec<u8>]) -> wharf_image::store::Image {
    store_image_with(store, name, layers, |tar| {
        (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip")
    })
}

/// As [`store_image`], with the layer blob and its media type chosen by `encode`; the
/// config's diff_ids are the sha256 of the tars as given.
pub fn store_image_with(
    store: &wharf_image::Store,
    name: &str,
    layers: &[Vec<u8>],
    encode: impl Fn(&[u8]) -> (Vec<u8>, &'static str),
) -> wharf_image::store::Image {
    let platform = wharf_image::Platform::host();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let (blob, media_type) = encode(tar);
        let digest = store.put_bytes(&blob).unwrap();
        descs.push(serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": blob.len()}));
        diff_ids.push(wharf_image::Digest::sha256(tar));
    }
    let config = wharf_image::ImageConfig::new_for_layers(&platform, &diff_ids, None, Vec::new());
    let config_bytes = config.to_bytes().unwrap();
    let config_digest = store.put_bytes(&config_bytes).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": descs,
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let (desc, _) = store.put_manifest(&bytes, None).unwrap();
    let reference: wharf_image::Reference = name.parse().unwrap();
    store.tag(&reference, &desc).unwrap();
    store.image(&reference, &platform).unwrap()
}

/// Every path beneath `root` with its type, mode, owner, size/target/content digest and
/// user-visible xattrs: what two unpackers must agree on.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!(
                "file {} {} links={}",
                data.len(),
                wharf_image::Digest::sha256(&data),
                m.nlink()
            )
        } else if ft.is_char_device() {
            format!("char {}", m.rdev())
        } else if ft.is_block_device() {
            format!("block {}", m.rdev())
        } else {
            "fifo".to_string()
        };
        let mut xattrs = Vec::new();
        let mut buf = vec![0u8; 65536];
        if let Ok(n) = rustix::fs::llistxattr(&p, &mut buf) {
            for name in buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
                let name = String::from_utf8_lossy(name).into_owned();
                if name.starts_with("trusted.overlay.") {
                    continue;
                }
                let mut v = vec![0u8; 65536];
                let len = rustix::fs::lgetxattr(&p, name.as_str(), &mut v).unwrap_or(0);
                xattrs.push(format!("{name}={:?}", &v[..len]));
            }
        }
        let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
        out.insert(
            rel,
            format!("{what} mode={mode:o} owner={}:{} xattrs={xattrs:?}", m.uid(), m.gid()),
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

//! wharf-rootfs benchmarks: layer unpack throughput (plain, gzip, zstd) and the cost of a second
//! container's root filesystem from an image already in the layer cache (1 vs 20 layers,
//! 10 MB vs 200 MB: the target is under 10 ms and flat in image size).
//!
//! `cargo bench --bench rootfs` as root (device nodes, trusted xattrs and overlay mounts need it);
//! without root, overlayfs or disk space the benchmark panics saying what is missing. Scratch
//! space is taken under `$WHARF_BENCH_TMP` (default `/var/tmp`), not a tmpfs, so that writes hit
//! a real filesystem as they would in use; `benches/peers.sh` points it at a freshly made ext4,
//! because recent mass deletions on the same filesystem slow down file creation.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::LazyLock;

use divan::{Bencher, counter::BytesCount};
use wharf::image::media::Compression;
use wharf::image::store::Image;
use wharf::image::{Digest, Platform, Reference, Store};
use wharf::rootfs::{ApplyOptions, LayerCache, MountMode, Rootfs, RootfsOptions, apply_layer};

fn main() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "benches/rootfs.rs must run as root: it creates device nodes, sets trusted.* xattrs and mounts overlayfs"
    );
    divan::main();
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    let base = std::env::var_os("WHARF_BENCH_TMP").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot create a scratch directory in {}: {e}", base.display()))
}

/// Deterministic file content that compresses about as well as binaries and text do (~3:1).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = x.to_le_bytes();
        // Half random bytes, half a small alphabet: neither incompressible nor trivial.
        out.extend_from_slice(&word[..4]);
        out.extend(word[4..].iter().map(|b| b"etaoin shrdlu\n\0"[(b & 7) as usize]));
    }
    out.truncate(len);
    out
}

/// An uncompressed layer tar of about `bytes` bytes in files of ~28 KiB (the average of a
/// Debian minbase tree: 200 MB in ~7,000 files), in directories of 50, written to `w`.
fn write_layer(w: impl Write, bytes: usize, seed: u64) {
    let mut tar = tar::Builder::new(w);
    let files = bytes.div_ceil(28 << 10).max(1);
    let mut left = bytes;
    for i in 0..files {
        let dir = format!("layer{seed}/d{}", i / 50);
        if i % 50 == 0 {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, &dir, std::io::empty()).unwrap();
        }
        // Sizes vary from ~1 KiB to ~55 KiB around the mean.
        let len = (((i * 7919) % 54 + 1) << 10).min(left);
        left -= len;
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(len as u64);
        h.set_mtime(1_700_000_000);
        tar.append_data(
            &mut h,
            format!("{dir}/f{i}"),
            &content(seed * 1_000_003 + i as u64, len)[..],
        )
        .unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
}

// --- unpack throughput -----------------------------------------------------------------------

const UNPACK_BYTES: usize = 32 << 20;

struct Layers {
    plain: Vec<u8>,
    gzip: Vec<u8>,
    zstd: Vec<u8>,
}

static LAYERS: LazyLock<Layers> = LazyLock::new(|| {
    let mut plain = Vec::new();
    write_layer(&mut plain, UNPACK_BYTES, 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gzip = gz.finish().unwrap();
    let zstd = zstd::encode_all(&plain[..], 3).unwrap();
    Layers { plain, gzip, zstd }
});

#[derive(Debug, Clone, Copy)]
enum Format {
    Plain,
    Gzip,
    Zstd,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Plain => "tar",
            Format::Gzip => "tar+gzip",
            Format::Zstd => "tar+zstd",
        })
    }
}

/// Flattening one 32 MiB, ~1,200-file layer onto an empty directory; throughput counts
/// uncompressed bytes.
#[divan::bench(args = [Format::Plain, Format::Gzip, Format::Zstd], sample_count = 10, sample_size = 1)]
fn unpack(bencher: Bencher<'_, '_>, format: Format) {
    let layers = &*LAYERS;
    let (blob, compression) = match format {
        Format::Plain => (&layers.plain, Compression::None),
        Format::Gzip => (&layers.gzip, Compression::Gzip),
        Format::Zstd => (&layers.zstd, Compression::Zstd),
    };
    // With the diff_id to verify, as when an image is unpacked.
    let opts = ApplyOptions {
        compression: Some(compression),
        diff_id: Some(Digest::sha256(&layers.plain)),
        ..ApplyOptions::default()
    };
    // Outputs are kept until the benchmark ends: creating files right after deleting thousands
    // makes ext4 scan for recently deleted inodes, which would time the clean-up, not the unpack.
    let base = scratch("wharf-bench-unpack");
    let mut n = 0;
    bencher
        .counter(BytesCount::new(layers.plain.len()))
        .with_inputs(|| {
            n += 1;
            let dir = base.path().join(n.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::File::open(dir).unwrap()
        })
        .bench_local_values(|root| {
            apply_layer(&root, &blob[..], &opts).unwrap();
        });
}

// --- second container from a cached image ----------------------------------------------------

/// An image shape: number of layers × total uncompressed size.
#[derive(Debug, Clone, Copy)]
struct Shape {
    layers: usize,
    megabytes: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // benches/measure.py reads these names (`LAYERSxSIZEMB`) from the output.
        write!(f, "{}x{}MB", self.layers, self.megabytes)
    }
}

const SHAPES: [Shape; 4] = [
    Shape {
        layers: 1,
        megabytes: 10,
    },
    Shape {
        layers: 1,
        megabytes: 200,
    },
    Shape {
        layers: 20,
        megabytes: 10,
    },
    Shape {
        layers: 20,
        megabytes: 200,
    },
];

/// Stores an image of `shape` (uncompressed layers of synthetic files) under `bench/rootfs:SHAPE`.
fn store_image(store: &Store, shape: Shape) -> Image {
    let per_layer = shape.megabytes * 1_000_000 / shape.layers;
    let mut layers = Vec::new();
    for i in 0..shape.layers {
        let mut w = store.blob_writer(None, None).unwrap();
        write_layer(&mut w, per_layer, i as u64 + 1);
        let (digest, size) = w.commit().unwrap();
        layers.push((digest, size));
    }
    let p = Platform::host();
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": p.architecture(), "os": p.os(),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": s,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let (desc, _) = store.put_manifest(&manifest, None).unwrap();
    let reference: Reference = format!("bench/rootfs:{shape}").to_lowercase().parse().unwrap();
    store.tag(&reference, &desc).unwrap();
    store.image(&reference, &p).unwrap()
}

/// `Rootfs::create` (overlay mount of the cached layers plus a fresh upper dir) for an image
/// whose layers are already extracted: the cost of each container after the first.
#[divan::bench(args = SHAPES, sample_count = 50, sample_size = 1)]
fn assemble(bencher: Bencher<'_, '_>, shape: Shape) {
    let dir = scratch("wharf-bench-assemble");
    let store = Store::open(dir.path().join("store")).unwrap();
    let cache = LayerCache::open(dir.path().join("cache")).unwrap();
    let image = store_image(&store, shape);
    let layers = cache.ensure_image(&store, &image, &ApplyOptions::default()).unwrap();
    let check: Vec<Digest> = image.config.diff_ids().unwrap();
    assert_eq!(layers.len(), check.len());
    let opts = RootfsOptions {
        mode: Some(MountMode::Overlay), // fail, not fall back to a copy, when overlayfs is unusable
    };
    let containers = dir.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    let mut n = 0;
    bencher
        .with_inputs(|| {
            n += 1;
            containers.join(n.to_string())
        })
        .bench_local_values(|target| {
            Rootfs::create(&cache, &layers, target, &opts)
                .unwrap_or_else(|e| panic!("overlay assembly failed (is overlayfs available?): {e}"))
            // unmounted and removed when dropped, after the sample
        });
}

//! Pull benchmark: a 95 MB single-layer image from a loopback `docker-registry` into the
//! store, against `skopeo copy docker://… oci:…` in the same run.
//!
//! Targets (issue "distribution protocol client"): wall time ≤ 0.5× skopeo's, peak RSS of
//! the pulling process ≤ 32 MiB. Run with `cargo bench -p wharf-registry --bench pull`;
//! it prints a table and exits non-zero when a target is missed.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write as _};
use std::process::Command;
use std::time::Instant;

use wharf_image::{Digest, Store};
use wharf_registry::{PullOptions, PushOptions};

const LAYER_BYTES: u64 = 95_000_000;
const RUNS: usize = 3;

/// Incompressible bytes, generated (xorshift) so the image is never whole in memory.
struct Noise {
    left: u64,
    state: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Child mode: pull `reference` into `store` and print "<seconds> <peak RSS KiB>".
fn child(reference: &str, store: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::open(store).unwrap();
    let r = common::reference(reference);
    let c = common::default_client();
    let started = Instant::now();
    let pulled = rt.block_on(c.pull(&r, &store, &PullOptions::default())).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(pulled.fetched, 2);
    println!("{secs} {}", peak_rss_kib());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], &args[3]);
        return;
    }
    let reg = common::Registry::start(common::Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let src = Store::open(tmp.path().join("src")).unwrap();

    // One plain-tar layer of 95 MB, streamed into the store.
    let mut w = src.blob_writer(None, None).unwrap();
    let mut tar = tar::Builder::new(&mut w);
    let mut h = tar::Header::new_ustar();
    h.set_path("data/noise").unwrap();
    h.set_size(LAYER_BYTES - 2048 - 1024);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append(
        &h,
        Noise {
            left: LAYER_BYTES - 2048 - 1024,
            state: 0x9e3779b97f4a7c15,
        },
    )
    .unwrap();
    tar.finish().unwrap();
    drop(tar);
    w.flush().unwrap();
    let (layer, size) = w.commit().unwrap();
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#);
    let cd = src.put_bytes(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{size},"digest":"{layer}"}}]}}"#,
        config.len()
    );
    let (desc, _) = src.put_manifest(manifest.as_bytes(), None).unwrap();
    let local = common::reference("local.test/bench:v1");
    src.tag(&local, &desc).unwrap();
    let remote = format!("{}/bench/big:v1", reg.host);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(common::default_client().push(&src, &local, &common::reference(&remote), &PushOptions::default()))
        .unwrap();
    assert_eq!(
        Digest::from_oci(desc.digest()).unwrap(),
        Digest::sha256(manifest.as_bytes())
    );

    let exe = std::env::current_exe().unwrap();
    let (mut wharf_secs, mut wharf_rss, mut skopeo_secs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let dest = tmp.path().join(format!("wharf-{run}"));
        let out = Command::new(&exe)
            .args(["child", &remote, dest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let mut it = line.split_whitespace();
        wharf_secs.push(it.next().unwrap().parse::<f64>().unwrap());
        wharf_rss.push(it.next().unwrap().parse::<u64>().unwrap());

        let oci = tmp.path().join(format!("skopeo-{run}"));
        let started = Instant::now();
        let st = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{remote}"))
            .arg(format!("oci:{}:v1", oci.display()))
            .status()
            .expect("skopeo is needed for the comparison (apt-get install skopeo)");
        assert!(st.success());
        skopeo_secs.push(started.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&dest);
        let _ = std::fs::remove_dir_all(&oci);
    }
    let (w, s) = (median(wharf_secs.clone()), median(skopeo_secs.clone()));
    let rss_mib = *wharf_rss.iter().max().unwrap() as f64 / 1024.0;
    println!(
        "pull of a {} MB single-layer image from loopback, {RUNS} runs (median)",
        LAYER_BYTES / 1_000_000
    );
    println!("  wharf   {w:>7.3} s   runs {wharf_secs:.3?}   peak RSS {rss_mib:.1} MiB");
    println!("  skopeo  {s:>7.3} s   runs {skopeo_secs:.3?}");
    println!("  ratio   {:.2} (target <= 0.50)", w / s);
    let ok_time = w <= 0.5 * s;
    let ok_rss = rss_mib <= 32.0;
    println!(
        "  time target {}, RSS target (<= 32 MiB) {}",
        if ok_time { "met" } else { "MISSED" },
        if ok_rss { "met" } else { "MISSED" }
    );
    if !(ok_time && ok_rss) {
        std::process::exit(1);
    }
}

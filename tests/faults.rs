//! Faults met by real processes of the example CLI: concurrent first use of a store, pulls
//! killed at random moments or interrupted by signals, a full disk. A real `docker-registry`
//! on 127.0.0.1 serves the images. Each test names the fault it reproduces.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use support::Registry;

fn wharf_bin() -> &'static Path {
    support::example_bin("wharf")
}

fn wharf(root: &Path, args: &[&str]) -> Output {
    Command::new(wharf_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    support::cli::succeeded(args, wharf(root, args))
}

/// Pseudo-random, incompressible bytes (xorshift), so gzip keeps layers large.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Pushes an image of `mib` MiB of noise (in two files) to the registry as `name`, through a
/// seed store in `dir`.
fn push_noise_image(dir: &Path, reg: &Registry, repo: &str, mib: usize) -> String {
    let name = reg.image(repo);
    let tree = dir.join(format!("tree-{}", repo.replace(['/', ':'], "_")));
    std::fs::create_dir_all(tree.join("data")).unwrap();
    std::fs::write(tree.join("data/a"), noise(mib << 19, 1)).unwrap();
    std::fs::write(tree.join("data/b"), noise(mib << 19, 2)).unwrap();
    let seed = dir.join("seed-store");
    ok(&seed, &["import", tree.to_str().unwrap(), &name]);
    ok(&seed, &["push", &name]);
    name
}

/// Every blob in the store hashes to its name.
fn assert_blobs_hash_to_their_names(root: &Path) {
    let dir = root.join("blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let out = Command::new("sha256sum").arg(e.path()).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            sum.split_whitespace().next(),
            Some(name.as_str()),
            "blob {name} is damaged"
        );
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn partial_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join(".wharf/partial"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Fault: six `wharf pull`s at once into a `--root` that does not exist yet (issue 15: 2–5 of
/// them failed with "not an OCI image layout: no oci-layout file").
#[test]
fn concurrent_pulls_into_a_fresh_root_all_succeed() {
    let dir = temp_dir();
    let reg = Registry::start();
    let name = push_noise_image(dir.path(), &reg, "faults/concurrent:1", 2);
    for fresh in ["missing", "empty"] {
        let root = dir.path().join(format!("root-{fresh}"));
        if fresh == "empty" {
            std::fs::create_dir(&root).unwrap();
        }
        let children: Vec<_> = (0..6)
            .map(|_| {
                Command::new(wharf_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["pull", &name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a concurrent pull into a {fresh} root failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(ok(&root, &["images"]).contains("faults/concurrent"));
        assert_blobs_hash_to_their_names(&root);
        assert!(partial_files(&root).is_empty());
    }
}

/// A TCP proxy in front of the registry that passes responses at `rate` bytes per second
/// (0: unthrottled), so that a pull takes long enough to be killed in the middle. What
/// clients send is recorded.
struct SlowProxy {
    port: u16,
    rate: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl SlowProxy {
    fn start(upstream: u16, rate: u64) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(AtomicU64::new(rate));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (r, log) = (rate.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write, r) = (server, client, r.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = s_read.read(&mut buf) {
                        if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let rate = r.load(Ordering::Relaxed);
                        if rate > 0 {
                            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        SlowProxy { port, rate, sent }
    }

    /// The image `repo` as reached through the proxy.
    fn image(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    fn range_requests(&self) -> usize {
        String::from_utf8_lossy(&self.sent.lock().unwrap())
            .to_ascii_lowercase()
            .matches("range: bytes=")
            .count()
    }
}

fn spawn_pull(root: &Path, image: &str) -> std::process::Child {
    Command::new(wharf_bin())
        .arg("--root")
        .arg(root)
        .args(["pull", image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the pull has stored more than 64 KiB in partial files (more than the config
/// blob, whose partial file lives only until its commit), at most 60 s.
fn wait_for_partial_bytes(root: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: u64 = partial_files(root)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if held > 64 * 1024 {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the pull ended ({st}) before any partial bytes were seen");
        }
        assert!(Instant::now() < deadline, "the pull stored nothing in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fault: SIGINT and SIGTERM in the middle of a pull. The CLI says so, exits 130 / 143,
/// keeps what arrived (no empty file) and the next pull resumes it with `Range`.
#[test]
fn a_pull_interrupted_by_a_signal_says_so_and_the_next_pull_resumes() {
    let dir = temp_dir();
    let reg = Registry::start();
    push_noise_image(dir.path(), &reg, "faults/signal:1", 4);
    for (signal, code) in [
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::TERM, 143),
    ] {
        let proxy = SlowProxy::start(reg.port, 1 << 20);
        let image = proxy.image("faults/signal:1");
        let root = dir.path().join(format!("root-{code}"));
        let mut child = spawn_pull(&root, &image);
        wait_for_partial_bytes(&root, &mut child);
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("interrupted by SIG"), "{stderr}");
        assert!(stderr.contains(".wharf/partial"), "{stderr}");
        let kept = partial_files(&root);
        assert!(!kept.is_empty(), "nothing kept for resume");
        for p in &kept {
            assert!(
                std::fs::metadata(p).unwrap().len() > 0,
                "an empty partial file {}",
                p.display()
            );
        }
        assert_blobs_hash_to_their_names(&root);

        proxy.rate.store(0, Ordering::Relaxed);
        ok(&root, &["pull", &image]);
        assert!(proxy.range_requests() > 0, "the next pull did not resume with Range");
        assert!(partial_files(&root).is_empty());
        assert_blobs_hash_to_their_names(&root);
    }
}

/// Fault: SIGKILL at random moments of a pull (no chance to clean up). Every blob still
/// hashes to its name, and the next pull succeeds.
#[test]
fn pulls_killed_at_random_moments_leave_a_store_the_next_pull_completes() {
    let dir = temp_dir();
    let reg = Registry::start();
    push_noise_image(dir.path(), &reg, "faults/killed:1", 4);
    let proxy = SlowProxy::start(reg.port, 2 << 20);
    let image = proxy.image("faults/killed:1");
    let root = dir.path().join("root");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = spawn_pull(&root, &image);
        std::thread::sleep(Duration::from_millis(seed % 2500));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_blobs_hash_to_their_names(&root);
    }
    proxy.rate.store(0, Ordering::Relaxed);
    ok(&root, &["pull", &image]);
    assert_blobs_hash_to_their_names(&root);
    assert!(ok(&root, &["images"]).contains("faults/killed"));
    assert!(partial_files(&root).is_empty());
}

/// A small ext4 filesystem on a loop device, unmounted on drop.
struct SmallDisk {
    mnt: PathBuf,
}

impl SmallDisk {
    fn new(dir: &Path, mib: u64) -> SmallDisk {
        assert!(
            rustix::process::geteuid().is_root(),
            "the full-disk test needs root to mount a loop device"
        );
        let image = dir.join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image)
            .status()
            .expect("mkfs.ext4 is required (apt-get install e2fsprogs)");
        assert!(st.success(), "mkfs.ext4 failed");
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .output()
            .expect("mount is required");
        assert!(
            out.status.success(),
            "mounting a loop device failed (is /dev/loop-control available?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { mnt }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Fault: a pull onto a full disk. The CLI reports the OS error ("No space left on device"),
/// not "the blob writer stopped"; nothing damaged is stored.
#[test]
fn a_pull_onto_a_full_disk_says_no_space_left_on_device() {
    let dir = temp_dir();
    let reg = Registry::start();
    let image = push_noise_image(dir.path(), &reg, "faults/full:1", 16);
    let disk = SmallDisk::new(dir.path(), 8);
    let root = disk.mnt.join("store");
    let out = wharf(&root, &["pull", &image]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 16 MiB pull fit on an 8 MiB disk");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("writer stopped"), "{stderr}");
    assert_blobs_hash_to_their_names(&root);
}

//! Shared by the root package's integration tests: the example programs they drive.
#![allow(dead_code, clippy::unwrap_used)]

pub mod containerd;
pub mod runtime_env;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod cli;

/// The binary of example `name` (`wharf`, `runtime`), built once per test binary with the
/// profile the tests were built with.
pub fn example_bin(name: &str) -> &'static Path {
    static BUILT: OnceLock<Mutex<HashMap<String, &'static Path>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built.entry(name.to_string()).or_insert_with(|| {
        // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples. A bench (in
        // target/release) gets release examples.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--example", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cargo must be runnable to build examples/{name}: {e}"));
        assert!(status.success(), "building examples/{name} failed");
        let bin = profile_dir.join("examples").join(name);
        assert!(bin.is_file(), "{} was not built", bin.display());
        // One path per example for the life of the test binary.
        Box::leak(bin.into_boxed_path())
    })
}

/// Fails the test unless `tool` is on the `PATH`, naming the Debian `package` that has it.
pub fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is required: apt-get install {package} (scripts/test-deps.sh)"
    );
}

/// A root filesystem under `root`: the usual top directories and Debian's busybox-static with a link for each of
/// `commands`.
pub fn busybox_rootfs(root: &Path, commands: &[&str]) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static is required (apt-get install busybox-static)");
    for cmd in commands {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(cmd)).unwrap();
    }
}

/// Debian's docker-registry on a free loopback port, with deletion enabled.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is required (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port, _dir: dir }
    }

    pub fn image(&self, path: &str) -> String {
        format!("localhost:{}/{path}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Debian's containerd, started by a test on a private socket, root and state directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A private containerd (its own socket, root and state directories), in its own ctr namespace.
pub struct Containerd {
    /// Holds its config, socket, root and state.
    pub dir: tempfile::TempDir,
    child: Child,
    /// The ctr namespace of this instance.
    pub namespace: String,
}

impl Containerd {
    /// Starts containerd (its CRI plugin off) and waits until it answers.
    pub fn start() -> Containerd {
        Containerd::start_with(None)
    }

    /// Starts containerd with `cri` (given this instance's directory) as the body of its CRI plugin's section, or
    /// with the CRI plugin off when `cri` is `None`, and waits until it answers.
    pub fn start_with(cri: Option<&dyn Fn(&Path) -> String>) -> Containerd {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (containerd runs containers)"
        );
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            super::require(tool, "containerd");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = d.join("config.toml");
        // Top-level keys come before the first table.
        let (disabled, plugins) = match cri {
            None => ("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n", String::new()),
            Some(cri) => ("", format!("[plugins.\"io.containerd.grpc.v1.cri\"]\n{}", cri(d))),
        };
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n{disabled}\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n{plugins}",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("containerd.log")).unwrap())
            .stderr(std::fs::File::create(d.join("containerd.err")).unwrap())
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            child,
            // Unique per test: the shim keeps the runtime's state under /run/containerd/runc/NAMESPACE.
            namespace: format!(
                "wharf-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// The socket containerd serves its API (and the CRI, when on) on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Runs ctr against this containerd.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs ctr; fails the test with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The runtime's state directory for this namespace (the shim's default runc root).
    pub fn runtime_root(&self) -> PathBuf {
        Path::new("/run/containerd/runc").join(&self.namespace)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Whatever a failed test left running goes, then containerd.
        let tasks = String::from_utf8_lossy(&self.ctr(&["task", "ls", "-q"]).stdout).into_owned();
        for t in tasks.lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", t]);
            let _ = self.ctr(&["task", "rm", "-f", t]);
        }
        let containers = String::from_utf8_lossy(&self.ctr(&["c", "ls", "-q"]).stdout).into_owned();
        for c in containers.lines() {
            let _ = self.ctr(&["c", "rm", c]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(self.runtime_root());
    }
}

//! One store and its containers per test, driven through the example CLI as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The example CLI.
pub fn wharf_bin() -> &'static Path {
    super::example_bin("wharf")
}

/// Fails (never skips) when the tests do not run as root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests need root (namespaces, cgroups, overlayfs); run them as root"
    );
}

/// A temporary directory holding one `--root` (its store, containers and their state).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        require_root();
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The `--root` of every command.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `wharf --root STORE ARGS…`, not yet started; stdin is null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(wharf_bin());
        c.arg("--root").arg(self.store()).args(args).stdin(Stdio::null());
        c
    }

    pub fn wharf(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Asserts that `wharf args` is refused as docker refuses: exit 125, one `Error: ` line saying `said`.
    pub fn refused(&self, args: &[&str], said: &str) {
        let out = self.wharf(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("Error: ") && err.contains(said), "{args:?}: {err}");
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.wharf(args))
    }

    /// A root filesystem with Debian's static busybox and a link for each of its applets.
    pub fn busybox_tree(&self, name: &str, release: &str) -> PathBuf {
        let root = self
            .dir
            .path()
            .join(format!("rootfs-{}", name.replace(['/', ':'], "_")));
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox-static is required (apt-get install busybox-static)");
        let list = String::from_utf8_lossy(&list.stdout);
        let applets: Vec<&str> = list.lines().filter(|a| *a != "busybox").collect();
        super::busybox_rootfs(&root, &applets);
        std::fs::create_dir(root.join("data")).unwrap();
        std::fs::write(root.join("etc/release"), release).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        root
    }

    /// A busybox root filesystem imported as `name`.
    pub fn busybox_image(&self, name: &str, release: &str) {
        let root = self.busybox_tree(name, release);
        self.ok(&["import", root.to_str().unwrap(), name, "--cmd", "/bin/sh"]);
    }

    /// The names `ps -a` lists.
    pub fn listed(&self) -> Vec<String> {
        self.ok(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Mounts below the store, as this (the host's) mount namespace sees them.
    pub fn mounts_below_store(&self) -> Vec<String> {
        let store = self.store();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m).starts_with(&store)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop anything a failed test left running, so its mounts and cgroups go too.
        if let Ok(entries) = std::fs::read_dir(self.store().join(".wharf/containers")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let _ = self.wharf(&["rm", "-f", &name]);
            }
        }
    }
}

/// The stdout of a CLI call `wharf ARGS` that must have succeeded (the assertion names the call and its stderr).
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "wharf {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

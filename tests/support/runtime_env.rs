//! The runtime example (`examples/runtime`) and Debian's `runc` driven as containerd drives them: separate
//! invocations sharing state under a `--root`, on bundles built from Debian's busybox-static.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use wharf::sandbox::oci_spec::runtime::Spec;

/// The runtime example.
pub fn runtime_bin() -> &'static Path {
    super::example_bin("runtime")
}

/// What one invocation printed.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// A state directory and bundles, unique to one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    calls: AtomicUsize,
}

impl Env {
    pub fn new() -> Env {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (namespaces, cgroups, pivot_root); run them as root"
        );
        Env {
            dir: tempfile::tempdir().unwrap(),
            calls: AtomicUsize::new(0),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Run `bin` with `args`, its output going to files (a created container inherits them and may outlive the
    /// call: pipes would keep a reader waiting).
    pub fn call(&self, bin: &Path, args: &[&str]) -> Out {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let (o, e) = (
            self.dir.path().join(format!("out.{n}")),
            self.dir.path().join(format!("err.{n}")),
        );
        let status = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()));
        Out {
            status,
            stdout: std::fs::read_to_string(&o).unwrap(),
            stderr: std::fs::read_to_string(&e).unwrap(),
        }
    }

    /// The runtime with `--root` set.
    pub fn rt(&self, args: &[&str]) -> Out {
        let root = self.root();
        let mut all = vec!["--root", root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.call(runtime_bin(), &all)
    }

    /// The runtime; the call must succeed. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rt(args);
        assert!(
            out.status.success(),
            "runtime {args:?} failed ({}): {}",
            out.status,
            out.stderr
        );
        out.stdout
    }

    /// runc's `--root` under this test's directory.
    fn runc_root(&self) -> PathBuf {
        self.dir.path().join("runc-state")
    }

    /// Debian's runc with its own `--root` under this test's directory.
    pub fn runc(&self, args: &[&str]) -> Out {
        let root = self.runc_root();
        let mut all = vec!["--root", root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.call(Path::new(runc()), &all)
    }

    /// `run` of bundle `b` in the foreground through runc and through the runtime (ids `NAME-runc-PID` and
    /// `NAME-wharf-PID`): what each printed, runc's first.
    pub fn run_both(&self, b: &Path, name: &str) -> (Out, Out) {
        let pid = std::process::id();
        let bs = b.to_str().unwrap();
        let theirs = self.runc(&["run", "--bundle", bs, &format!("{name}-runc-{pid}")]);
        let ours = self.rt(&["run", "--bundle", bs, &format!("{name}-wharf-{pid}")]);
        (theirs, ours)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Wait (bounded) until `id` reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.state(id);
            if st["status"] == status {
                return st;
            }
            assert!(Instant::now() < deadline, "{id} never became {status}: {st}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A bundle `name` whose process runs `args`, its spec edited by `edit`.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Spec)) -> PathBuf {
        let b = self.dir.path().join(name);
        super::busybox_rootfs(
            &b.join("rootfs"),
            &["sh", "cat", "echo", "sleep", "true", "tty", "id", "ls"],
        );
        let mut spec = Spec::default();
        let mut p = spec.process().clone().unwrap();
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        spec.set_process(Some(p));
        edit(&mut spec);
        spec.save(b.join("config.json")).unwrap();
        b
    }

    pub fn bundle_json(&self, b: &Path, edit: impl FnOnce(&mut Value)) {
        let p = b.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever a failed test left behind goes (its cgroup and process too), runc's containers as well: a
        // paused one left running would otherwise stay frozen.
        for (root, runc) in [(self.root(), false), (self.runc_root(), true)] {
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let args = ["delete", "--force", &id];
                let _ = if runc { self.runc(&args) } else { self.rt(&args) };
            }
        }
    }
}

pub fn runc() -> &'static str {
    assert!(
        Path::new("/usr/sbin/runc").is_file(),
        "Debian's runc is required to compare with (apt-get install runc)"
    );
    "/usr/sbin/runc"
}

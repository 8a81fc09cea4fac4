//! The commands containerd's shim and CRI-O call (`state`, `start`, `kill`, `delete`, `ps`, `update`, `exec`,
//! `pause`, `resume`, `events`), in every state a container can be in, through Debian's `runc` and through
//! wharf's runtime (`examples/runtime`): the same outcome, and where runc refuses, wharf's error carries runc's
//! words — containerd decides what an error means by them ("container not running", "does not exist"), and
//! after a container exits it sends `kill --all ID 9`, which must succeed. Needs root, busybox-static and runc.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

/// One runtime with its own state directory.
struct Side {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

/// What one call gave: success, and the error message (runc's `msg="…"` without its command prefix).
#[derive(Debug)]
struct Outcome {
    ok: bool,
    msg: String,
}

impl Side {
    fn call(&self, args: &[&str]) -> Outcome {
        // Errors go to a file, not a pipe: a created container's init inherits the descriptor and holds it
        // open until it starts, so a pipe's reader would wait for it.
        let err_file = tempfile::NamedTempFile::new().unwrap();
        let status = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err_file.reopen().unwrap())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let stderr = std::fs::read_to_string(err_file.path()).unwrap().trim().to_owned();
        // runc logs `time="…" level=error msg="…"`; wharf's runtime prints the message alone.
        let msg = match stderr.find("msg=\"") {
            Some(i) => stderr[i + 5..].trim_end_matches('"').to_owned(),
            None => stderr,
        };
        let msg = ["exec failed: ", "runc create failed: "]
            .iter()
            .fold(msg, |m, p| m.strip_prefix(p).map(str::to_owned).unwrap_or(m));
        Outcome {
            ok: status.success(),
            msg,
        }
    }

    fn status(&self, id: &str) -> String {
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(["state", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} state {id}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    fn wait_stopped(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(id) != "stopped" {
            assert!(Instant::now() < deadline, "{}: {id} never stopped", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A busybox bundle from `runc spec` running `args`.
fn bundle(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let b = dir.join(name);
    let bin = b.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is required (apt-get install busybox-static)");
    for cmd in ["sh", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(cmd)).unwrap();
    }
    let st = Command::new(runc())
        .args(["spec", "--bundle"])
        .arg(&b)
        .status()
        .unwrap();
    assert!(st.success(), "runc spec failed");
    let p = b.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    b
}

fn runc() -> &'static str {
    assert!(
        Path::new("/usr/sbin/runc").is_file(),
        "Debian's runc is required as the reference (apt-get install runc)"
    );
    "/usr/sbin/runc"
}

/// Runs `steps` on both sides, in order, and compares each outcome with runc's.
fn compare(sides: &[Side; 2], id: &str, steps: &[&[&str]]) {
    for step in steps {
        let args: Vec<&str> = step.iter().map(|a| if *a == "ID" { id } else { a }).collect();
        let [reference, ours] = sides.each_ref().map(|s| s.call(&args));
        assert_eq!(reference.ok, ours.ok, "{args:?}: runc {reference:?}, wharf {ours:?}");
        if !reference.ok {
            assert!(
                ours.msg.contains(&reference.msg),
                "{args:?}: wharf's error {:?} lacks runc's words {:?}",
                ours.msg,
                reference.msg
            );
        }
    }
}

fn sides(dir: &Path) -> [Side; 2] {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests need root (namespaces, cgroups, pivot_root); run them as root"
    );
    [
        Side {
            name: "runc",
            bin: runc().into(),
            root: dir.join("runc-state"),
        },
        Side {
            name: "wharf",
            bin: support::example_bin("runtime").to_path_buf(),
            root: dir.join("wharf-state"),
        },
    ]
}

/// Containers `id` on both sides, force-deleted when dropped, so a failing test leaves no process behind.
struct Containers<'a> {
    sides: &'a [Side; 2],
    id: &'a str,
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for s in self.sides {
            let _ = s.call(&["delete", "--force", self.id]);
        }
    }
}

/// Creates `id` from `bundle` on both sides.
fn create<'a>(sides: &'a [Side; 2], id: &'a str, bundle: &Path) -> Containers<'a> {
    let made = Containers { sides, id };
    for s in sides {
        let out = s.call(&["create", "--bundle", bundle.to_str().unwrap(), id]);
        assert!(out.ok, "{} create {id}: {}", s.name, out.msg);
    }
    made
}

#[test]
fn a_missing_container_is_refused_in_runcs_words() {
    let dir = tempfile::tempdir().unwrap();
    let sides = sides(dir.path());
    compare(
        &sides,
        "nosuch",
        &[
            &["state", "ID"],
            &["start", "ID"],
            &["kill", "ID", "9"],
            &["kill", "--all", "ID", "9"],
            &["delete", "ID"],
            &["delete", "--force", "ID"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["exec", "ID", "true"],
            &["pause", "ID"],
            &["resume", "ID"],
            &["events", "--stats", "ID"],
        ],
    );
}

#[test]
fn a_stopped_container_takes_kill_all_and_refuses_the_rest_in_runcs_words() {
    let dir = tempfile::tempdir().unwrap();
    let sides = sides(dir.path());
    let b = bundle(dir.path(), "b", &["true"]);
    let _gone = create(&sides, "gone", &b);
    for s in &sides {
        assert!(s.call(&["start", "gone"]).ok, "{} start", s.name);
        s.wait_stopped("gone");
    }
    compare(
        &sides,
        "gone",
        &[
            &["kill", "ID", "9"],
            &["kill", "--all", "ID", "9"],
            &["kill", "--all", "ID", "KILL"],
            &["start", "ID"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["exec", "ID", "true"],
            &["pause", "ID"],
            &["resume", "ID"],
            &["events", "--stats", "ID"],
            &["create", "--bundle", b.to_str().unwrap(), "ID"],
            &["delete", "ID"],
            &["state", "ID"],
        ],
    );
}

#[test]
fn created_running_and_paused_containers_answer_as_runc_does() {
    let dir = tempfile::tempdir().unwrap();
    let sides = sides(dir.path());
    let b = bundle(dir.path(), "b", &["sleep", "100"]);
    let _live = create(&sides, "live", &b);
    compare(
        &sides,
        "live",
        &[
            // created
            &["resume", "ID"],
            &["pause", "ID"],
            &["start", "ID"],
            &["resume", "ID"],
            &["kill", "ID", "0"],
            &["start", "ID"],
            // running
            &["start", "ID"],
            &["resume", "ID"],
            &["kill", "ID", "0"],
            &["exec", "ID", "true"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["delete", "ID"],
            &["pause", "ID"],
            // paused
            &["pause", "ID"],
            &["start", "ID"],
            &["exec", "ID", "true"],
            &["delete", "ID"],
            &["resume", "ID"],
            // running again
            &["kill", "ID", "KILL"],
        ],
    );
    for s in &sides {
        s.wait_stopped("live");
        assert!(s.call(&["delete", "live"]).ok, "{} delete", s.name);
    }
}

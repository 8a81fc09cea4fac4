//! podman drives the runtime example: Debian's podman (with its conmon) runs a busybox image — written here as a
//! docker archive by wharf-image and brought in with `podman load` — through `--runtime <examples/runtime>`, and
//! the same steps through `--runtime runc` as the reference: `run --rm`, `run -d`, `exec` (also of a missing and
//! of a non-executable program, whose codes podman derives from the runtime's words), `--read-only` with `--tmpfs`, `ps`, `pause`/`unpause`,
//! `logs`, `inspect`, `stop`, `rm`, and a memory-limited container killed by its limit (137). Every podman call
//! has its own storage, run and tmp directories and configuration files under a temporary directory, the
//! cgroupfs manager, file events and the host network (no traffic at all). Needs root, podman, runc and
//! busybox-static (scripts/test-deps.sh).
//!
//! podman's default crun refuses this kind of host's hybrid cgroup layout; runc works and is the reference.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf::image::Reference;
use wharf::image::import::{ImportOptions, import_dir};
use wharf::image::store::Store;

mod support;

const IMAGE: &str = "docker.io/library/busybox:wharf-podman-test";

/// One podman with private storage and configuration, using `runtime`.
struct Podman {
    dir: tempfile::TempDir,
    runtime: String,
}

/// What one podman call gave.
#[derive(Debug, PartialEq)]
struct Out {
    code: i32,
    stdout: String,
}

impl Podman {
    fn new(runtime: &str) -> Podman {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (podman's cgroups, overlay storage); run them as root"
        );
        assert!(
            Path::new("/usr/bin/podman").is_file(),
            "Debian's podman is required (apt-get install podman)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["root", "runroot", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("root").display(),
                d.join("runroot").display()
            ),
        )
        .unwrap();
        // Root here lacks CAP_SYS_RESOURCE: podman's default limits (nofile and nproc raised to the kernel's
        // maximum) are refused to runc and wharf alike, so the containers keep limits below this host's.
        std::fs::write(
            d.join("containers.conf"),
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\n[containers]\nnetns = \"host\"\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n",
        )
        .unwrap();
        std::fs::write(d.join("registries.conf"), "unqualified-search-registries = []\n").unwrap();
        Podman {
            dir,
            runtime: runtime.to_owned(),
        }
    }

    /// `podman` with this instance's global flags and `args`, bounded in time.
    fn call(&self, args: &[&str]) -> Out {
        let d = self.dir.path();
        let (o, e) = (d.join("out"), d.join("err"));
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--runtime", &self.runtime])
            .args(args)
            // conmon writes an `oom` file into its working directory when the container is OOM-killed.
            .current_dir(d)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .stdin(Stdio::null())
            // Files, not pipes: conmon outlives `run -d` and would keep a pipe's reader waiting.
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap());
        let status = c.status().expect("cannot run timeout(1) podman");
        let out = Out {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&o).unwrap(),
        };
        let stderr = std::fs::read_to_string(&e).unwrap();
        assert_ne!(
            out.code, 124,
            "podman {args:?} hung (runtime {}): {stderr}",
            self.runtime
        );
        if out.code != 0 {
            eprintln!(
                "podman {args:?} (runtime {}) exited {}: {stderr}",
                self.runtime, out.code
            );
        }
        out
    }

    /// A call that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.call(args);
        assert_eq!(out.code, 0, "podman {args:?} failed (runtime {})", self.runtime);
        out.stdout
    }

    /// Waits (bounded) until `podman logs NAME` shows `text`.
    fn wait_logs(&self, name: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ok(&["logs", name]).contains(text) {
            assert!(
                Instant::now() < deadline,
                "{name} never logged {text:?} (runtime {})",
                self.runtime
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed test left running goes, with its conmon, cgroups and overlay mounts.
        let _ = self.call(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.call(&["system", "reset", "--force"]);
    }
}

/// The busybox image as a docker archive written by wharf-image, with a non-executable file `/noexec`.
fn busybox_archive(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is required (apt-get install busybox-static)");
    for cmd in ["sh", "echo", "sleep", "true", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(cmd)).unwrap();
    }
    std::fs::write(rootfs.join("noexec"), "#!/bin/sh\necho ran\n").unwrap();
    let store = Store::open(dir.join("store")).unwrap();
    let reference: Reference = IMAGE.parse().unwrap();
    import_dir(&store, &rootfs, &reference, &ImportOptions::default()).unwrap();
    let out = dir.join("busybox.tar");
    let f = std::fs::File::create(&out).unwrap();
    wharf::image::archive::save(&store, &[reference], &wharf::image::Platform::host(), f).unwrap();
    out
}

/// Every step of the scenario through `p`, each with what it gave (runtime-specific values left out).
fn scenario(p: &Podman) -> Vec<(&'static str, Out)> {
    let archive = busybox_archive(p.dir.path());
    p.ok(&["load", "--input", archive.to_str().unwrap()]);
    let mut steps = Vec::new();
    let mut step = |name: &'static str, out: Out| steps.push((name, out));

    step(
        "run --rm",
        p.call(&["run", "--rm", IMAGE, "sh", "-c", "echo hello from pid $$; exit 3"]),
    );
    // --read-only and --tmpfs: tmpfs mounts with runc's tmpcopyup, over directories with nothing to copy.
    let ro = "touch /a 2>/dev/null || echo ro; touch /tmp/a /x/a && echo tmpfs-rw";
    step(
        "run --rm --read-only --tmpfs",
        p.call(&["run", "--rm", "--read-only", "--tmpfs", "/x", IMAGE, "sh", "-c", ro]),
    );
    step(
        "run --rm missing program",
        p.call(&["run", "--rm", IMAGE, "/nonexistent"]),
    );
    step("run --rm directory", p.call(&["run", "--rm", IMAGE, "/tmp"]));

    let script = "echo started; trap 'echo term; exit 7' TERM; while :; do sleep 0.1; done";
    let run_d = p.call(&["run", "-d", "--name", "d", IMAGE, "sh", "-c", script]);
    step(
        "run -d",
        Out {
            stdout: String::new(),
            ..run_d
        },
    );
    p.wait_logs("d", "started");
    step("exec", p.call(&["exec", "d", "sh", "-c", "echo in exec; exit 4"]));
    step("exec missing program", p.call(&["exec", "d", "/nonexistent"]));
    step("exec non-executable", p.call(&["exec", "d", "/noexec"]));
    step(
        "exec bad cwd",
        p.call(&["exec", "--workdir", "/nonexistent", "d", "true"]),
    );
    step(
        "ps",
        p.call(&["ps", "--filter", "status=running", "--format", "{{.Names}}"]),
    );
    let inspect = [
        "inspect",
        "d",
        "--format",
        "{{.State.Status}} {{.State.Running}} {{.State.Paused}}",
    ];
    step("inspect running", p.call(&inspect));
    let runtime = p.ok(&["inspect", "d", "--format", "{{.OCIRuntime}}"]);
    assert_eq!(runtime.trim(), p.runtime, "podman did not use the runtime it was given");
    let pid: i32 = p
        .ok(&["inspect", "d", "--format", "{{.State.Pid}}"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "inspect's pid {pid} is no process"
    );
    step("pause", p.call(&["pause", "d"]));
    step("inspect paused", p.call(&inspect));
    step(
        "ps paused",
        p.call(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"]),
    );
    step("exec paused", p.call(&["exec", "d", "true"]));
    step("unpause", p.call(&["unpause", "d"]));
    step("exec after unpause", p.call(&["exec", "d", "echo", "thawed"]));
    step("logs", p.call(&["logs", "d"]));
    step("stop", p.call(&["stop", "--time", "10", "d"]));
    let exited = ["inspect", "d", "--format", "{{.State.Status}} {{.State.ExitCode}}"];
    step("inspect stopped", p.call(&exited));
    step("logs stopped", p.call(&["logs", "d"]));
    step("exec stopped", p.call(&["exec", "d", "true"]));
    step("rm", p.call(&["rm", "d"]));
    step("ps after rm", p.call(&["ps", "--all", "--format", "{{.Names}}"]));

    // Over its limit: the kernel's OOM killer ends it; podman reports 137.
    let hog = "x=0123456789; while :; do x=$x$x; done";
    step(
        "run --rm --memory",
        p.call(&[
            "run",
            "--rm",
            "--memory",
            "32m",
            "--memory-swap",
            "32m",
            IMAGE,
            "sh",
            "-c",
            hog,
        ]),
    );
    let run_d = p.call(&[
        "run",
        "-d",
        "--name",
        "m",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        IMAGE,
        "sh",
        "-c",
        hog,
    ]);
    step(
        "run -d --memory",
        Out {
            stdout: String::new(),
            ..run_d
        },
    );
    step("wait --memory", p.call(&["wait", "m"]));
    step(
        "inspect --memory",
        p.call(&["inspect", "m", "--format", "{{.State.Status}} {{.State.ExitCode}}"]),
    );
    step("rm --memory", p.call(&["rm", "m"]));
    steps
}

/// What runc gives for each step (checked first, so a changed podman or runc shows as such).
const EXPECTED: &[(&str, i32, &str)] = &[
    ("run --rm", 3, "hello from pid 1\n"),
    ("run --rm --read-only --tmpfs", 0, "ro\ntmpfs-rw\n"),
    ("run --rm missing program", 127, ""),
    ("run --rm directory", 126, ""),
    ("run -d", 0, ""),
    ("exec", 4, "in exec\n"),
    ("exec missing program", 127, ""),
    ("exec non-executable", 126, ""),
    ("exec bad cwd", 127, ""),
    ("ps", 0, "d\n"),
    ("inspect running", 0, "running true false\n"),
    ("pause", 0, "d\n"),
    ("inspect paused", 0, "paused false true\n"),
    ("ps paused", 0, "d\n"),
    ("exec paused", 255, ""),
    ("unpause", 0, "d\n"),
    ("exec after unpause", 0, "thawed\n"),
    ("logs", 0, "started\n"),
    ("stop", 0, "d\n"),
    ("inspect stopped", 0, "exited 7\n"),
    ("logs stopped", 0, "started\nterm\n"),
    ("exec stopped", 255, ""),
    ("rm", 0, "d\n"),
    ("ps after rm", 0, ""),
    ("run --rm --memory", 137, ""),
    ("run -d --memory", 0, ""),
    ("wait --memory", 0, "137\n"),
    ("inspect --memory", 0, "exited 137\n"),
    ("rm --memory", 0, "m\n"),
];

fn check(runtime: &str, got: &[(&'static str, Out)]) {
    let names: Vec<&str> = got.iter().map(|(n, _)| *n).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(n, ..)| *n).collect();
    assert_eq!(names, expected);
    for ((name, out), (_, code, stdout)) in got.iter().zip(EXPECTED) {
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (*code, *stdout),
            "{name} with runtime {runtime}"
        );
    }
}

#[test]
fn podman_runs_the_same_steps_on_runc_and_on_wharfs_runtime() {
    let reference = Podman::new(support::runtime_env::runc());
    let theirs = scenario(&reference);
    check("runc", &theirs);
    drop(reference);

    let ours = Podman::new(support::runtime_env::runtime_bin().to_str().unwrap());
    let got = scenario(&ours);
    check("wharf", &got);
}

//! A real client drives the runtime example: Debian's containerd 1.6, started here on a private socket, state and
//! root directory, runs a busybox image (built here and written with `wharf_image::archive::save`) through
//! `ctr run --runc-binary <examples/runtime>` with the io.containerd.runc.v2 shim. Needs root, containerd (with
//! ctr and containerd-shim-runc-v2) and busybox-static (scripts/test-deps.sh).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf::image::Reference;
use wharf::image::import::{ImportOptions, import_dir};
use wharf::image::store::Store;

mod support;

use support::containerd::Containerd;

/// The runtime example.
fn runtime_bin() -> &'static Path {
    support::example_bin("runtime")
}

const IMAGE: &str = "docker.io/library/busybox:wharf-runtime-test";

/// A private containerd with the busybox image imported.
fn with_busybox() -> Containerd {
    let c = Containerd::start();
    let archive = busybox_archive(&c);
    c.ok(&["image", "import", archive.to_str().unwrap()]);
    c
}

/// A busybox image written as a docker archive by wharf-image.
fn busybox_archive(c: &Containerd) -> PathBuf {
    let rootfs = c.dir.path().join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is required (apt-get install busybox-static)");
    for cmd in ["sh", "cat", "echo", "sleep", "true", "id", "hostname"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(cmd)).unwrap();
    }
    let store = Store::open(c.dir.path().join("store")).unwrap();
    let reference: Reference = IMAGE.parse().unwrap();
    import_dir(&store, &rootfs, &reference, &ImportOptions::default()).unwrap();
    let out = c.dir.path().join("busybox.tar");
    let f = std::fs::File::create(&out).unwrap();
    wharf::image::archive::save(&store, &[reference], &wharf::image::Platform::host(), f).unwrap();
    out
}

#[test]
fn ctr_run_brings_back_output_and_exit_code() {
    let c = with_busybox();
    let rt = runtime_bin().to_str().unwrap();
    let out = c.ctr(&[
        "run",
        "--runc-binary",
        rt,
        "--rm",
        IMAGE,
        "r1",
        "sh",
        "-c",
        "echo hello from pid $$; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from pid 1\n");
    let out = c.ctr(&["run", "--runc-binary", rt, "--rm", IMAGE, "r2", "true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.ok(&["c", "ls", "-q"]), "", "--rm left a container");
    assert!(!c.runtime_root().join("r1").exists(), "runtime state of r1 left behind");
}

#[test]
fn ctr_task_kill_exec_ps_metrics_and_cleanup() {
    let c = with_busybox();
    let rt = runtime_bin().to_str().unwrap();
    c.ok(&["run", "-d", "--runc-binary", rt, IMAGE, "t1", "sleep", "1000"]);
    let ls = c.ok(&["task", "ls"]);
    let line = ls
        .lines()
        .find(|l| l.starts_with("t1 "))
        .unwrap_or_else(|| panic!("no t1 in {ls}"));
    assert!(line.ends_with("RUNNING"), "{line}");
    let pid: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The runtime's own view agrees.
    let root = c.runtime_root();
    let st = Command::new(rt)
        .args(["--root", root.to_str().unwrap(), "state", "t1"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
    let cgroups: Vec<PathBuf> = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            let ctrl = ctrl.split(',').find(|c| !c.starts_with("name="))?;
            Some(
                Path::new("/sys/fs/cgroup")
                    .join(ctrl)
                    .join(path.trim_start_matches('/')),
            )
        })
        .filter(|p| p.is_dir() && p.ends_with("t1"))
        .collect();
    assert!(!cgroups.is_empty(), "no cgroup of t1 found");

    // exec: output and exit code come back.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "t1",
        "sh",
        "-c",
        "echo in-exec; cat /proc/1/cmdline; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).replace('\0', " "),
        "in-exec\nsleep 1000 "
    );

    let ps = c.ok(&["task", "ps", "t1"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );

    let metrics = c.ok(&["task", "metrics", "t1"]);
    assert!(metrics.contains("pids.current"), "{metrics}");

    c.ok(&["task", "pause", "t1"]);
    assert!(c.ok(&["task", "ls"]).contains("PAUSED"));
    c.ok(&["task", "resume", "t1"]);

    c.ok(&["task", "kill", "-s", "KILL", "t1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.ok(&["task", "ls"]).contains("STOPPED") {
        assert!(Instant::now() < deadline, "t1 never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.ok(&["task", "rm", "t1"]);
    c.ok(&["c", "rm", "t1"]);
    assert_eq!(c.ok(&["c", "ls", "-q"]), "");
    assert!(!root.join("t1").exists(), "runtime state left behind");
    for cg in &cgroups {
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
}

#[test]
fn ctr_run_with_a_terminal_gets_the_pty_through_the_console_socket() {
    let c = with_busybox();
    let rt = runtime_bin().to_str().unwrap();
    // ctr -t needs a terminal of its own: script(1) gives it one.
    let ctr = format!(
        "ctr --address {} --namespace {} run -t --runc-binary {rt} --rm {IMAGE} tty1 sh -c '[ -t 0 ] && echo via-console; exit 5'",
        c.dir.path().join("containerd.sock").display(),
        c.namespace
    );
    let out = Command::new("script")
        .args(["-qec", &ctr, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) is required (Debian's bsdutils)");
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("via-console\r"),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(c.ok(&["c", "ls", "-q"]), "");
}

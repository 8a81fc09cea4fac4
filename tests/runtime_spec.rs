//! The runtime spec cases runc accepts, run through Debian's `runc` and through the runtime example
//! (`examples/runtime`) with the same bundle, comparing what the container sees: a mount namespace joined by path,
//! runc's device-list cases, namespace type checks, updates that leave other limits alone. And the state
//! directory's concurrent first use. Needs root, busybox-static and runc (scripts/test-deps.sh).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;

use support::runtime_env::{Env, Out};

/// Both runs succeeded and printed the same.
fn same_output(theirs: &Out, ours: &Out) -> String {
    assert!(
        theirs.status.success(),
        "runc failed: {}{}",
        theirs.stdout,
        theirs.stderr
    );
    assert!(
        ours.status.success(),
        "the runtime failed: {}{}",
        ours.stdout,
        ours.stderr
    );
    assert_eq!(
        ours.stdout, theirs.stdout,
        "the container saw something else than under runc"
    );
    ours.stdout.clone()
}

/// A process holding a new, private mount namespace (`unshare -m`), killed on drop.
struct MountNs(Child);

impl MountNs {
    /// With a tmpfs on `dir` inside it holding `marker` (`hello`).
    fn with_tmpfs_on(dir: &Path) -> MountNs {
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs marker {d} && echo hello > {d}/marker && echo ready && exec sleep 1000",
                d = dir.display()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) is required");
        let mut ns = MountNs(child);
        let mut line = [0u8; 6];
        std::io::Read::read_exact(ns.0.stdout.as_mut().unwrap(), &mut line).unwrap();
        assert_eq!(&line, b"ready\n");
        ns
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/mnt", self.0.id())
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `mount` entry of `linux.namespaces` with a path: the container's mounts and pivot_root happen in that
/// namespace (runc's behaviour), so it sees what was mounted there, and the caller's namespace is untouched.
#[test]
fn joins_a_mount_namespace_by_path_as_runc_does() {
    let env = Env::new();
    let b = env.bundle("b", &["cat", "/mnt/marker"], |_| {});
    let mnt = b.join("rootfs/mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    // pivot_root changes the root of the namespace it happens in: one holder per runtime.
    let (for_runc, for_wharf) = (MountNs::with_tmpfs_on(&mnt), MountNs::with_tmpfs_on(&mnt));
    let with_ns = |path: String| {
        move |v: &mut serde_json::Value| {
            let list = v["linux"]["namespaces"].as_array_mut().unwrap();
            for n in list.iter_mut().filter(|n| n["type"] == "mount") {
                n["path"] = json!(path);
            }
        }
    };
    env.bundle_json(&b, with_ns(for_runc.path()));
    let theirs = env.runc(&[
        "run",
        "--bundle",
        b.to_str().unwrap(),
        &format!("mntns-runc-{}", std::process::id()),
    ]);
    env.bundle_json(&b, with_ns(for_wharf.path()));
    let ours = env.rt(&[
        "run",
        "--bundle",
        b.to_str().unwrap(),
        &format!("mntns-wharf-{}", std::process::id()),
    ]);
    assert_eq!(same_output(&theirs, &ours), "hello\n");
    assert!(
        !mnt.join("marker").exists(),
        "the tmpfs leaked into the caller's mount namespace"
    );
}

/// Without a /dev mount the nodes are made in the rootfs's /dev (the defaults and the spec's); with /dev
/// bind-mounted nothing is made in it. /dev/ptmx stays the symlink to pts/ptmx.
#[test]
fn device_lists_as_runc_makes_them() {
    let env = Env::new();
    let list = "ls -ln /dev | grep -v '^total' | awk '{print $1, $3, $4, $5, $6, $NF}' | sort";
    let devices = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 0, "gid": 0},
        {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2},
        {"path": "/dev/sub/loop9", "type": "b", "major": 7, "minor": 9, "fileMode": 432}
    ]);
    let no_dev_mount = |v: &mut serde_json::Value| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        v["linux"]["devices"] = devices.clone();
        // runc drops its default allow rule for a node the spec lists again (/dev/null): allow the listed nodes as a
        // real config does (containerd writes these rules).
        v["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        ]);
    };
    // Each runtime gets its own rootfs: the nodes land in it.
    let (b1, b2) = (
        env.bundle("plain-runc", &["sh", "-c", list], |_| {}),
        env.bundle("plain-wharf", &["sh", "-c", list], |_| {}),
    );
    env.bundle_json(&b1, no_dev_mount);
    env.bundle_json(&b2, no_dev_mount);
    let pid = std::process::id();
    let theirs = env.runc(&["run", "--bundle", b1.to_str().unwrap(), &format!("dev-runc-{pid}")]);
    let ours = env.rt(&["run", "--bundle", b2.to_str().unwrap(), &format!("dev-wharf-{pid}")]);
    let seen = same_output(&theirs, &ours);
    for node in [
        "crw-rw-rw- 0 0 10, 229 fuse",
        "crw------- 0 0 1, 3 null",
        "crw-rw-rw- 0 0 1, 5 zero",
    ] {
        assert!(seen.lines().any(|l| l == node), "{node:?} missing from\n{seen}");
    }
    assert!(
        seen.lines().any(|l| l.starts_with('l') && l.ends_with("pts/ptmx")),
        "{seen}"
    );

    // /dev bound from a directory of ours: nothing may be made in it.
    let host_dev = env.dir.path().join("host-dev");
    std::fs::create_dir_all(&host_dev).unwrap();
    std::fs::write(host_dev.join("only-this"), "").unwrap();
    // runc needs a /dev/null in it (it fixes up stdio with it).
    let made = Command::new("mknod")
        .arg(host_dev.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod of a null device failed");
    let b = env.bundle("bound", &["ls", "/dev"], |_| {});
    env.bundle_json(&b, |v| {
        no_dev_mount(v);
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/dev", "type": "bind", "source": host_dev, "options": ["rbind"]}));
    });
    let (theirs, ours) = env.run_both(&b, "devbind");
    assert_eq!(same_output(&theirs, &ours), "null\nonly-this\n");
    let mut left: Vec<_> = std::fs::read_dir(&host_dev)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["null", "only-this"]);
}

/// runc's namespace checks: a path of another namespace type is refused by both; net.* sysctls in a network
/// namespace joined by path are accepted by both. Mappings without a user namespace: refused (runc ignores them).
#[test]
fn namespace_type_checks_as_runc_makes_them() {
    let env = Env::new();
    let holder = Command::new("unshare")
        .args(["--net", "--ipc", "sleep", "1000"])
        .spawn()
        .expect("unshare (util-linux) is required");
    let holder = KillOnDrop(holder);
    let pid = holder.0.id();
    // Wait until the holder is in its namespaces.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == std::fs::read_link("/proc/self/ns/net").ok() {
        assert!(Instant::now() < deadline, "unshare never entered its namespaces");
        std::thread::sleep(Duration::from_millis(10));
    }
    let set_ns = |kind: &'static str, path: String| {
        move |v: &mut serde_json::Value| {
            let list = v["linux"]["namespaces"].as_array_mut().unwrap();
            list.retain(|n| n["type"] != kind);
            list.push(json!({"type": kind, "path": path}));
        }
    };

    // network listed with the path of an IPC namespace.
    let b = env.bundle("wrongtype", &["true"], |_| {});
    env.bundle_json(&b, set_ns("network", format!("/proc/{pid}/ns/ipc")));
    let (theirs, ours) = env.run_both(&b, "wrongtype");
    assert!(!theirs.status.success(), "runc accepted an IPC namespace as network");
    assert!(
        !ours.status.success(),
        "the runtime accepted an IPC namespace as network"
    );
    assert!(
        ours.stderr.contains("linux.namespaces[") && ours.stderr.contains("not net"),
        "{}",
        ours.stderr
    );

    // uid mappings without a user namespace: runc ignores them (it reads mappings only with a user namespace) and
    // runs the container as the host's root; the runtime refuses, on purpose (see the sandbox's crate docs): a
    // config that maps ids but forgot the namespace must not silently run as real root.
    let b = env.bundle("mappings", &["true"], |_| {});
    env.bundle_json(&b, |v| {
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let ours = env.rt(&["run", "--bundle", b.to_str().unwrap(), &format!("mappings-wharf-{pid}")]);
    assert!(
        !ours.status.success(),
        "the runtime accepted mappings without a user namespace"
    );
    assert!(ours.stderr.contains("linux.uidMappings"), "{}", ours.stderr);

    // A net.* sysctl in the network namespace joined by path.
    let b = env.bundle(
        "sysctl",
        &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        |_| {},
    );
    env.bundle_json(&b, set_ns("network", format!("/proc/{pid}/ns/net")));
    env.bundle_json(&b, |v| {
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "80"});
    });
    let (theirs, ours) = env.run_both(&b, "sysctl");
    assert_eq!(same_output(&theirs, &ours), "80\n");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The limits of container `id` under cgroup path `cg`, as the host's v1 files say.
fn limits(cg: &str) -> Vec<(String, String)> {
    [
        ("memory", "memory.limit_in_bytes"),
        ("memory", "memory.memsw.limit_in_bytes"),
        ("memory", "memory.soft_limit_in_bytes"),
        ("cpu", "cpu.shares"),
        ("cpu", "cpu.cfs_quota_us"),
        ("cpu", "cpu.cfs_period_us"),
        ("pids", "pids.max"),
    ]
    .iter()
    .map(|(c, f)| {
        let p = format!("/sys/fs/cgroup/{c}/{cg}/{f}");
        let v = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        (f.to_string(), v.trim().to_owned())
    })
    .collect()
}

/// `update` changes what it names and leaves every other limit as it was, under runc and under the runtime alike;
/// raising the memory limit alone above the swap limit works and keeps the swap allowance.
#[test]
fn updates_leave_other_limits_alone_as_runc_does() {
    let env = Env::new();
    let pid = std::process::id();
    let mut ids = Vec::new();
    for who in ["runc", "wharf"] {
        let id = format!("upd-{who}-{pid}");
        let b = env.bundle(&format!("b-{who}"), &["sleep", "1000"], |_| {});
        env.bundle_json(&b, |v| {
            v["linux"]["cgroupsPath"] = json!(format!("/wharf-test/{id}"));
            v["linux"]["resources"] = json!({
                "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
                "cpu": {"shares": 512, "quota": 20000, "period": 100000},
                "pids": {"limit": 50}
            });
        });
        let bs = b.to_str().unwrap();
        let out = if who == "runc" {
            env.runc(&["run", "-d", "--bundle", bs, &id])
        } else {
            env.rt(&["run", "-d", "--bundle", bs, &id])
        };
        assert!(out.status.success(), "{who} run -d: {}", out.stderr);
        ids.push(id);
    }
    let update = |args: &[&str]| {
        for id in &ids {
            let all = [&["update"], args, &[id.as_str()]].concat();
            let out = if id.contains("-runc-") {
                env.runc(&all)
            } else {
                env.rt(&all)
            };
            assert!(out.status.success(), "{id}: update {args:?}: {}", out.stderr);
        }
        let (theirs, ours) = (
            limits(&format!("wharf-test/{}", ids[0])),
            limits(&format!("wharf-test/{}", ids[1])),
        );
        assert_eq!(ours, theirs, "after update {args:?}");
        ours
    };
    let before = update(&[]);
    let after = update(&["--cpu-share", "256"]);
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0.as_str())
        .collect();
    assert_eq!(changed, ["cpu.shares"]);
    update(&["--pids-limit", "80"]);
    update(&["--cpu-quota", "30000"]);
    // Lowering memory and swap together.
    let after = update(&["--memory", "48m", "--memory-swap", "64m"]);
    assert_eq!(after[0].1, (48u64 << 20).to_string());
    assert_eq!(after[1].1, (64u64 << 20).to_string());
    assert_eq!(after[2].1, (32u64 << 20).to_string(), "the reservation changed");

    // Memory alone above the swap limit: runc fails with EINVAL there; the runtime raises swap with it.
    let wharf_id = &ids[1];
    let out = env.rt(&["update", "--memory", "128m", wharf_id]);
    assert!(out.status.success(), "{}", out.stderr);
    let now = limits(&format!("wharf-test/{wharf_id}"));
    assert_eq!(now[0].1, (128u64 << 20).to_string());
    assert_eq!(
        now[1].1,
        (144u64 << 20).to_string(),
        "the 16 MiB swap allowance was not kept"
    );

    for id in &ids {
        if id.contains("-runc-") {
            env.runc(&["delete", "--force", id]);
        } else {
            env.rt(&["delete", "--force", id]);
        }
    }
    for c in [
        "memory", "cpu", "pids", "cpuset", "cpuacct", "blkio", "freezer", "devices",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/wharf-test"));
    }
}

/// Any number of processes may create containers in a state directory that does not exist yet (issue 15's
/// concurrent first use): six runtime processes at once, each with its own container, into a fresh `--root`, then
/// six at once with the same id: exactly one gets it.
#[test]
fn concurrent_first_use_of_a_fresh_state_root() {
    let env = Env::new();
    let b = env.bundle("b", &["true"], |_| {});
    let root = env.dir.path().join("fresh/state/root");
    let spawn = |id: String| {
        Command::new(support::runtime_env::runtime_bin())
            .args([
                "--root",
                root.to_str().unwrap(),
                "run",
                "--bundle",
                b.to_str().unwrap(),
                &id,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<Child> = (0..6).map(|i| spawn(format!("first-{i}"))).collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "state left behind: {left:?}");

    // A created container keeps its creator's stdio: files, not pipes, or reading them would wait for it.
    let b = env.bundle("sleeper", &["sleep", "1000"], |_| {});
    let err = |i: usize| env.dir.path().join(format!("create-{i}.err"));
    let create = |i: usize| {
        Command::new(support::runtime_env::runtime_bin())
            .args([
                "--root",
                root.to_str().unwrap(),
                "create",
                "--bundle",
                b.to_str().unwrap(),
                "same",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(err(i)).unwrap())
            .spawn()
            .unwrap()
    };
    // Whatever happens below, the container that won goes.
    struct DeleteOnDrop<'a>(&'a Path);
    impl Drop for DeleteOnDrop<'_> {
        fn drop(&mut self) {
            let _ = Command::new(support::runtime_env::runtime_bin())
                .args(["--root", self.0.to_str().unwrap(), "delete", "--force", "same"])
                .output();
        }
    }
    let _cleanup = DeleteOnDrop(&root);
    let children: Vec<Child> = (0..6).map(create).collect();
    let codes: Vec<bool> = children.into_iter().map(|mut c| c.wait().unwrap().success()).collect();
    let errs: Vec<String> = (0..6).map(|i| std::fs::read_to_string(err(i)).unwrap()).collect();
    assert_eq!(codes.iter().filter(|ok| **ok).count(), 1, "{errs:?}");
    for (ok, e) in codes.iter().zip(&errs) {
        assert!(*ok || e.contains("already exists"), "{e}");
    }
    let out = Command::new(support::runtime_env::runtime_bin())
        .args(["--root", root.to_str().unwrap(), "delete", "--force", "same"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

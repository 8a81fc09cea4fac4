//! The runtime example run by an unprivileged user, as `runc` runs rootless: a user namespace mapping the user to
//! root inside (and, through `newuidmap`/`newgidmap`, the user's `/etc/subuid` and `/etc/subgid` ranges for the
//! rest), no cgroup of its own unless the user may write one, and state and seccomp cache in the user's
//! `$XDG_RUNTIME_DIR`. Each case runs the same bundle through Debian's runc as the same user and compares.
//!
//! CI runs as root: the tests create the user `wharf-rootless` with ranges of its own (idempotently, under a lock,
//! since tests run in parallel) and drop to it with `setpriv`.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rustix::fs::FlockOperation;
use serde_json::{Value, json};

/// The test user, and the first id of its subordinate uid and gid range (65,536 ids).
const USER: &str = "wharf-rootless";
const RANGE: u32 = 400_000;

/// The test user's uid and gid, creating the user and its ranges first if needed.
fn user() -> (u32, u32) {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests need root to create their unprivileged user"
    );
    for (tool, package) in [
        ("useradd", "passwd"),
        ("usermod", "passwd"),
        ("setpriv", "util-linux"),
        ("newuidmap", "uidmap"),
        ("newgidmap", "uidmap"),
    ] {
        support::require(tool, package);
    }
    let lock = std::fs::File::create("/tmp/wharf-rootless-user.lock").unwrap();
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).unwrap();
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().unwrap())
    };
    if id("-u").is_none() {
        let ok = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", USER])
            .status()
            .unwrap()
            .success();
        assert!(ok, "useradd {USER} failed");
    }
    let ranges = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
    let want = format!("{USER}:{RANGE}:65536");
    if !ranges("/etc/subuid").lines().any(|l| l == want) || !ranges("/etc/subgid").lines().any(|l| l == want) {
        let r = format!("{RANGE}-{}", RANGE + 65535);
        let ok = Command::new("usermod")
            .args(["--add-subuids", &r, "--add-subgids", &r, USER])
            .status()
            .unwrap()
            .success();
        assert!(ok, "usermod --add-subuids {r} {USER} failed");
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// A directory tree the test user can use: the runtime binary copied in (the checkout may sit under a directory
/// only root can enter), the user's runtime directory, and bundles.
struct Rootless {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl Rootless {
    fn new() -> Rootless {
        let (uid, gid) = user();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("runtime");
        std::fs::copy(support::runtime_env::runtime_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let wharf = dir.path().join("wharf");
        std::fs::copy(support::example_bin("wharf"), &wharf).unwrap();
        std::fs::set_permissions(&wharf, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = Rootless { dir, uid, gid };
        for d in [r.xdg(), r.data()] {
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
            r.give(&d);
        }
        r
    }

    /// The user's `$XDG_DATA_HOME`, where its image store goes.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The user's `$XDG_RUNTIME_DIR`.
    fn xdg(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    fn give(&self, p: &Path) {
        let ok = Command::new("chown")
            .args(["-R", &format!("{}:{}", self.uid, self.gid)])
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", p.display());
    }

    /// `cmd args` as the test user, with its runtime directory set and stdio on files.
    fn run_as(&self, cmd: &str, args: &[&str]) -> Output {
        self.run_as_from(None, cmd, args)
    }

    /// As [`Rootless::run_as`], the process first moved (by root) into the cgroup whose `cgroup.procs` is `procs`.
    fn run_as_from(&self, procs: Option<&Path>, cmd: &str, args: &[&str]) -> Output {
        let mut c = match procs {
            Some(p) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("echo $$ > '{}' && exec setpriv \"$@\"", p.display()),
                    "sh",
                ]);
                c
            }
            None => Command::new("setpriv"),
        };
        c.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--init-groups",
            "--",
            cmd,
        ])
        .args(args)
        .env("XDG_RUNTIME_DIR", self.xdg())
        .env("XDG_DATA_HOME", self.data())
        .env_remove("WHARF_ROOT")
        .env("HOME", self.dir.path())
        .current_dir(self.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
    }

    /// A busybox bundle `name` with runc's rootless spec (`runc spec --rootless`, made as the user) running
    /// `script`, edited by `edit`; owned by the user.
    fn bundle(&self, name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let b = self.dir.path().join(name);
        support::busybox_rootfs(&b.join("rootfs"), &["sh", "cat", "id", "ls", "stat", "tr"]);
        self.give(&b);
        let spec = self.run_as("sh", &["-c", &format!("cd '{}' && runc spec --rootless", b.display())]);
        assert!(
            spec.status.success(),
            "runc spec --rootless: {}",
            String::from_utf8_lossy(&spec.stderr)
        );
        let p = b.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["process"]["terminal"] = json!(false);
        v["process"]["args"] = json!(["sh", "-c", script]);
        edit(&mut v);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        b
    }

    /// `run` of bundle `b` by the runtime (state under the default `--root`) and by runc: (runc's, ours).
    fn run_both(&self, b: &Path, id: &str) -> (Output, Output) {
        let bs = b.to_str().unwrap();
        let runc_root = self.xdg().join("runc");
        let theirs = self.run_as(
            support::runtime_env::runc(),
            &[
                "--root",
                runc_root.to_str().unwrap(),
                "run",
                "--bundle",
                bs,
                &format!("{id}-runc"),
            ],
        );
        let ours = self.run_ours(b, &format!("{id}-wharf"));
        (theirs, ours)
    }

    /// `run` of bundle `b` as container `id` by the runtime, its state under the default `--root`.
    fn run_ours(&self, b: &Path, id: &str) -> Output {
        let bin = self.dir.path().join("runtime");
        self.run_as(bin.to_str().unwrap(), &["run", "--bundle", b.to_str().unwrap(), id])
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_ok(o: &Output, who: &str) {
    assert!(
        o.status.success(),
        "{who} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unprivileged_user_runs_a_bundle_mapped_to_its_own_id_as_runc_does() {
    let r = Rootless::new();
    let b = r.bundle(
        "own",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /bin/busybox",
        |v| {
            // A profile, so that there is a compiled program to keep.
            v["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_ERRNO"}],
            });
        },
    );
    let (theirs, ours) = r.run_both(&b, "own");
    assert_ok(&theirs, "runc");
    assert_ok(&ours, "the runtime");
    assert_eq!(text(&ours), text(&theirs));
    assert!(text(&ours).starts_with("0\n0\n"), "not root inside: {}", text(&ours));
    // State and the seccomp program cache live in the user's runtime directory, its alone.
    let state = r.xdg().join("wharf-runtime");
    assert!(state.is_dir(), "no state under $XDG_RUNTIME_DIR/wharf-runtime");
    let cache = r.xdg().join("wharf/seccomp");
    let meta = std::fs::metadata(&cache).expect("no seccomp cache under $XDG_RUNTIME_DIR/wharf/seccomp");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (r.uid, 0o700));
    assert!(
        std::fs::read_dir(&cache).unwrap().next().is_some(),
        "the compiled profile was not kept"
    );
}

#[test]
fn the_users_subordinate_ranges_are_mapped_through_newuidmap() {
    let r = Rootless::new();
    let b = r.bundle(
        "ranges",
        "cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /owned",
        |v| {
            for key in ["uidMappings", "gidMappings"] {
                let own = v["linux"][key][0]["hostID"].clone();
                v["linux"][key] = json!([
                    {"containerID": 0, "hostID": own, "size": 1},
                    {"containerID": 1, "hostID": RANGE, "size": 65536},
                ]);
            }
        },
    );
    // A file owned by uid and gid 33 of the image: RANGE + 32 on the host.
    let owned = b.join("rootfs/owned");
    std::fs::write(&owned, b"").unwrap();
    std::os::unix::fs::chown(&owned, Some(RANGE + 32), Some(RANGE + 32)).unwrap();
    let (theirs, ours) = r.run_both(&b, "ranges");
    assert_ok(&theirs, "runc");
    assert_ok(&ours, "the runtime");
    assert_eq!(text(&ours), text(&theirs));
    assert!(text(&ours).ends_with("33:33\n"), "{}", text(&ours));
    let words = text(&ours).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!("1 {RANGE} 65536")),
        "the range is not in the map: {}",
        text(&ours)
    );
}

#[test]
fn ranges_the_user_was_not_given_are_refused_naming_the_helper() {
    let r = Rootless::new();
    let b = r.bundle("stolen", "true", |v| {
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    });
    let out = r.run_ours(&b, "stolen");
    assert!(!out.status.success(), "mapping host root was allowed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newuidmap") && err.contains("/etc/subuid"), "{err}");
}

#[test]
fn a_limit_without_a_cgroup_the_user_may_write_is_refused_naming_it() {
    let r = Rootless::new();
    let b = r.bundle("limited", "true", |v| {
        v["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
    });
    let out = r.run_ours(&b, "limited");
    assert!(!out.status.success(), "a memory limit was silently dropped");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("memory") && err.contains("rootless"), "{err}");
    // Nothing of the failed container is left in the user's state.
    let left: Vec<_> = std::fs::read_dir(r.xdg().join("wharf-runtime"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The user's copy of the wharf CLI, with image `bb:1` imported by the user from a busybox tree: its files are the
/// user's, root's inside.
fn busybox_image(r: &Rootless) -> String {
    let b = r.bundle("tree", "true", |_| {});
    let tar = r.dir.path().join("busybox.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(b.join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar of the busybox tree failed");
    let wharf = r.dir.path().join("wharf").to_str().unwrap().to_string();
    assert_ok(
        &r.run_as(&wharf, &["import", tar.to_str().unwrap(), "bb:1"]),
        "wharf import",
    );
    wharf
}

#[test]
fn the_cli_runs_an_image_as_an_unprivileged_user_in_a_store_of_its_own() {
    let r = Rootless::new();
    let wharf = busybox_image(&r);
    let wharf = wharf.as_str();
    let out = r.run_as(
        wharf,
        &[
            "run",
            "--rm",
            "bb:1",
            "sh",
            "-c",
            "id -u; stat -c %u /bin/busybox; cat /proc/self/uid_map /sys/class/net/lo/flags",
        ],
    );
    assert_ok(&out, "wharf run");
    let words: Vec<String> = text(&out).split_whitespace().map(String::from).collect();
    // The last word: `lo`'s flags, IFF_UP | IFF_LOOPBACK (its own network namespace, with `lo` up).
    assert_eq!(words, ["0", "0", "0", &r.uid.to_string(), "1", "0x9"], "{}", text(&out));
    // The container's exit code is the command's.
    let out = r.run_as(wharf, &["run", "--rm", "bb:1", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    // The store is the user's, under its XDG_DATA_HOME, and no one else may enter it.
    let store = r.data().join("wharf");
    for d in [store.clone(), store.join(".wharf/layers")] {
        let meta = std::fs::metadata(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert_eq!(
            (meta.uid(), meta.mode() & 0o077),
            (r.uid, 0),
            "{} is not the user's alone",
            d.display()
        );
    }
    // A detached container is listed, logged and removed as the user's.
    assert_ok(
        &r.run_as(
            wharf,
            &["run", "-d", "--name", "bg", "bb:1", "sh", "-c", "echo detached"],
        ),
        "wharf run -d",
    );
    let out = r.run_as(wharf, &["wait", "bg"]);
    assert_ok(&out, "wharf wait");
    assert_eq!(text(&r.run_as(wharf, &["logs", "bg"])), "detached\n");
    assert_ok(&r.run_as(wharf, &["rm", "bg"]), "wharf rm");
    // Without a cgroup of its own, a container's processes are those of its pid namespace: top lists them, and
    // kill and rm -f end them.
    assert_ok(
        &r.run_as(
            wharf,
            &[
                "run",
                "-d",
                "--name",
                "long",
                "bb:1",
                "sh",
                "-c",
                "busybox sleep 100 & exec busybox sleep 100",
            ],
        ),
        "wharf run -d",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let top = loop {
        let out = r.run_as(wharf, &["top", "long"]);
        let top = format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr));
        if top.lines().count() >= 3 || std::time::Instant::now() > deadline {
            break top;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(top.lines().count(), 3, "the header and both processes: {top}");
    assert_ok(&r.run_as(wharf, &["kill", "long"]), "wharf kill");
    assert_ok(&r.run_as(wharf, &["wait", "long"]), "wharf wait");
    assert_ok(
        &r.run_as(
            wharf,
            &["run", "-d", "--name", "forced", "bb:1", "busybox", "sleep", "100"],
        ),
        "wharf run -d",
    );
    let top = text(&r.run_as(wharf, &["top", "forced"]));
    let pid = top
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1)) // ps -ef's UID PID …, as docker top prints it
        .unwrap()
        .to_string();
    assert_ok(&r.run_as(wharf, &["rm", "-f", "forced"]), "wharf rm -f");
    // Gone, or a zombie its parent has yet to reap.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "pid {pid} still runs: {stat}");
}

#[test]
fn a_bundle_without_a_user_namespace_is_refused_saying_what_rootless_needs() {
    let r = Rootless::new();
    let b = r.bundle("rootful", "true", |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        let linux = v["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    });
    let out = r.run_ours(&b, "rootful");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("user namespace") && err.contains("rootless"), "{err}");
}

#[test]
fn a_rootless_container_gets_an_overlay_whose_changes_commit_with_whiteouts() {
    let r = Rootless::new();
    let wharf = busybox_image(&r);
    let wharf = wharf.as_str();
    // The root is an overlay the container's process mounted inside its user namespace (nothing is mounted on
    // the host, and nothing is copied).
    let out = r.run_as(
        wharf,
        &[
            "run",
            "--name",
            "c1",
            "bb:1",
            "sh",
            "-c",
            "head -1 /proc/self/mountinfo; mkdir /d; touch /d/a /d/b /gone; echo one > /etc/motd",
        ],
    );
    assert_ok(&out, "wharf run c1");
    let root = text(&out);
    assert!(root.contains(" - overlay ") && root.contains("userxattr"), "{root}");
    assert_ok(&r.run_as(wharf, &["commit", "c1", "bb:2"]), "wharf commit c1");
    // Deleting a file and replacing a directory make a whiteout and an opaque directory in the upper dir (the
    // latter marked with user.overlay.opaque), which commit turns into `.wh.` entries.
    let script = "rm /gone; rm -rf /d; mkdir /d; touch /d/c";
    assert_ok(
        &r.run_as(wharf, &["run", "--name", "c2", "bb:2", "sh", "-c", script]),
        "wharf run c2",
    );
    assert_ok(&r.run_as(wharf, &["commit", "c2", "bb:3"]), "wharf commit c2");
    let out = r.run_as(
        wharf,
        &[
            "run",
            "--rm",
            "bb:3",
            "sh",
            "-c",
            "ls /d; test -e /gone || echo no-gone; cat /etc/motd",
        ],
    );
    assert_ok(&out, "wharf run bb:3");
    assert_eq!(text(&out), "c\nno-gone\none\n");
    // On the host the layer cache holds the whiteout as a 0/0 character device and the opaque directory under
    // the user's xattr (trusted.* needs privilege), everything owned by the user.
    let layers = r.data().join("wharf/.wharf/layers/layers/sha256");
    let top = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path().join("fs"))
        .find(|fs| {
            std::fs::symlink_metadata(fs.join("gone"))
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()) && m.rdev() == 0)
        })
        .expect("no cached layer holds the whiteout of /gone as a 0/0 character device");
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(top.join("d"), "user.overlay.opaque", &mut v).unwrap();
    assert_eq!(&v[..n], b"y");
    assert_eq!(std::fs::metadata(top.join("d/c")).unwrap().uid(), r.uid);
    // A running container's files are exported through its process's root; a stopped one's cannot be reached
    // and say so.
    assert_ok(
        &r.run_as(
            wharf,
            &["run", "-d", "--name", "svc", "bb:2", "busybox", "sleep", "100"],
        ),
        "wharf run -d svc",
    );
    let tar = r.data().join("svc.tar");
    assert_ok(
        &r.run_as(wharf, &["export", "-o", tar.to_str().unwrap(), "svc"]),
        "wharf export svc",
    );
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = text(&listing);
    assert!(
        listing.lines().any(|l| l.trim_start_matches("./") == "d/a"),
        "{listing}"
    );
    assert_ok(&r.run_as(wharf, &["rm", "-f", "svc"]), "wharf rm -f svc");
    let out = r.run_as(wharf, &["export", "-o", tar.to_str().unwrap(), "c2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only reachable while it runs"), "{err}");
    // Removal takes the container's directories, the work dir overlayfs left without permissions included.
    for c in ["c1", "c2"] {
        assert_ok(&r.run_as(wharf, &["rm", c]), "wharf rm");
    }
    let left = std::fs::read_dir(r.data().join("wharf/.wharf/rootfs")).unwrap().count();
    assert_eq!(left, 0, "container directories left behind");
}

#[test]
fn exec_enters_a_rootless_containers_namespaces_pid_namespace_included() {
    let r = Rootless::new();
    let wharf = busybox_image(&r);
    let wharf = wharf.as_str();
    assert_ok(
        &r.run_as(
            wharf,
            &["run", "-d", "--name", "svc", "bb:1", "busybox", "sleep", "100"],
        ),
        "wharf run -d",
    );
    // The exec'd process is root in the container's user namespace, and a process of its pid namespace: not
    // pid 1, with the container's first process as pid 1 (an unprivileged caller's thread cannot join that
    // namespace; its child joins it with the user namespace and forks once more).
    let out = r.run_as(
        wharf,
        &[
            "exec",
            "svc",
            "sh",
            "-c",
            "id -u; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo",
        ],
    );
    assert_ok(&out, "wharf exec");
    let lines: Vec<String> = text(&out).lines().map(String::from).collect();
    assert_eq!(lines[0], "0", "{lines:?}");
    assert_ne!(lines[1], "1", "{lines:?}");
    assert!(lines[1].parse::<u32>().unwrap() < 100, "a host pid: {lines:?}");
    assert_eq!(lines[2].trim(), "busybox sleep 100");
    // Exit codes come back, and a missing program is docker's 127.
    let out = r.run_as(wharf, &["exec", "svc", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let out = r.run_as(wharf, &["exec", "svc", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ok(&r.run_as(wharf, &["rm", "-f", "svc"]), "wharf rm -f");
}

#[test]
fn a_rootless_user_moves_images_through_a_registry_and_archives_and_gets_a_terminal() {
    support::require("script", "bsdutils");
    let r = Rootless::new();
    let wharf = busybox_image(&r);
    let wharf = wharf.as_str();
    // Push to and pull back from Debian's registry on the loopback.
    let registry = support::Registry::start();
    let remote = registry.image("rootless/bb:1");
    assert_ok(&r.run_as(wharf, &["tag", "bb:1", &remote]), "wharf tag");
    assert_ok(&r.run_as(wharf, &["push", &remote]), "wharf push");
    assert_ok(&r.run_as(wharf, &["rmi", &remote, "bb:1"]), "wharf rmi");
    assert_ok(&r.run_as(wharf, &["prune"]), "wharf prune");
    assert_ok(&r.run_as(wharf, &["pull", &remote]), "wharf pull");
    let out = r.run_as(wharf, &["run", "--rm", &remote, "id", "-u"]);
    assert_ok(&out, "wharf run of the pulled image");
    assert_eq!(text(&out), "0\n");
    // A docker-save archive out and back in.
    let archive = r.data().join("bb.tar");
    assert_ok(
        &r.run_as(wharf, &["save", "-o", archive.to_str().unwrap(), &remote]),
        "wharf save",
    );
    assert_ok(&r.run_as(wharf, &["rmi", &remote]), "wharf rmi");
    assert_ok(
        &r.run_as(wharf, &["load", "-i", archive.to_str().unwrap()]),
        "wharf load",
    );
    let out = r.run_as(wharf, &["run", "--rm", &remote, "id", "-u"]);
    assert_ok(&out, "wharf run of the loaded image");
    assert_eq!(text(&out), "0\n");
    // `run -it` on a terminal (script gives one): the container's standard streams are a terminal of its own.
    let cmd = format!("{wharf} run --rm -it {remote} sh -c 'tty; id -u'");
    let out = r.run_as("script", &["-qec", &cmd, "/dev/null"]);
    assert_ok(&out, "script wharf run -it");
    let seen = text(&out).replace('\r', "");
    assert!(seen.contains("/dev/pts/0\n0\n"), "{seen:?}");
}

#[test]
fn hostile_layers_imported_by_a_rootless_user_write_nothing_outside_its_store() {
    let r = Rootless::new();
    let wharf = r.dir.path().join("wharf");
    let wharf = wharf.to_str().unwrap();
    // A place the user may write, so that an escape would show.
    let outside = r.data().join("outside");
    std::fs::create_dir(&outside).unwrap();
    r.give(&outside);
    let tar = r.data().join("hostile.tar");
    // Each case, and what running its image says: the layer is extracted (into the cache, as the user) when the
    // first container is made.
    let cases = [
        // A path that climbs out of the root lands inside it, as containerd's and docker's cleaning puts it (the
        // image has no programs: it is extracted, then nothing can run).
        (
            "climb",
            r#"add("../../../../" + outside.lstrip("/") + "/climbed")"#,
            "not found in the container",
        ),
        // A symlink to the outside, then a file through it.
        (
            "symlink",
            r#"add("link", type=tarfile.SYMTYPE, linkname=outside); add("link/through")"#,
            "leads outside of the root filesystem",
        ),
        // A hard link to a file outside the layer.
        (
            "hardlink",
            r#"add("hl", type=tarfile.LNKTYPE, linkname=outside + "/target")"#,
            "is not in this layer",
        ),
    ];
    for (case, entries, says) in cases {
        let py = format!(
            r#"
import io, tarfile, sys
out, outside = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w") as t:
    def add(name, **kw):
        i = tarfile.TarInfo(name)
        for k, v in kw.items():
            setattr(i, k, v)
        i.size = 1 if i.type == tarfile.REGTYPE else 0
        t.addfile(i, io.BytesIO(b"x") if i.type == tarfile.REGTYPE else None)
    {entries}
"#
        );
        let ok = Command::new("python3")
            .args(["-c", &py, tar.to_str().unwrap(), outside.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 could not write the {case} tar");
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        let image = format!("hostile/{case}:1");
        assert_ok(
            &r.run_as(wharf, &["import", tar.to_str().unwrap(), &image]),
            "wharf import",
        );
        let out = r.run_as(wharf, &["run", "--rm", &image, "/bin/true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{case}: {err}");
        let left: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{case} wrote outside the store: {left:?}");
    }
}

/// A cgroup v2 subtree delegated to the test user, as systemd's `user@UID.service` is (the directory and its
/// files the user's); removed on drop.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(r: &Rootless) -> Delegated {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = info
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                right
                    .starts_with("cgroup2 ")
                    .then(|| left.split(' ').nth(4).map(PathBuf::from))?
            })
            .expect("these tests need a cgroup2 hierarchy mounted (CI has one at /sys/fs/cgroup/unified)");
        let dir = mount.join(format!("wharf-rootless-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        r.give(&dir);
        Delegated { dir }
    }

    /// `cmd args` as the test user, its process moved into the subtree first (by root: where a login session's
    /// would be).
    fn run_as(&self, r: &Rootless, cmd: &str, args: &[&str]) -> Output {
        r.run_as_from(Some(&self.dir.join("cgroup.procs")), cmd, args)
    }

    fn tree(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    out.push(e.path());
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let mut dirs = self.tree();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs.iter().chain([&self.dir]) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn a_delegated_cgroup_v2_subtree_holds_the_users_containers() {
    let r = Rootless::new();
    let wharf = busybox_image(&r);
    let wharf = wharf.as_str();
    let cg = Delegated::new(&r);
    assert_ok(
        &cg.run_as(
            &r,
            wharf,
            &["run", "-d", "--name", "svc", "bb:1", "busybox", "sleep", "100"],
        ),
        "wharf run -d",
    );
    let top = text(&cg.run_as(&r, wharf, &["top", "svc"]));
    let pid = top
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{top}"))
        .to_string();
    // The container's cgroup is SUBTREE/wharf/ID, and its process is in it.
    let cgroups: Vec<PathBuf> = cg
        .tree()
        .into_iter()
        .filter(|d| d.parent().and_then(Path::file_name) == Some("wharf".as_ref()))
        .collect();
    assert_eq!(cgroups.len(), 1, "{cgroups:?}");
    let procs = std::fs::read_to_string(cgroups[0].join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == pid),
        "{pid} not in {}: {procs}",
        cgroups[0].display()
    );
    // A limit goes through the subtree's controllers; a controller it lacks (this hybrid host's cgroup2 has
    // none) is refused, naming it.
    let out = cg.run_as(
        &r,
        wharf,
        &[
            "run", "-d", "--name", "limited", "--memory", "16m", "bb:1", "sleep", "100",
        ],
    );
    let controllers = std::fs::read_to_string(cg.dir.join("cgroup.controllers")).unwrap();
    if controllers.split_whitespace().any(|c| c == "memory") {
        assert_ok(&out, "wharf run --memory in a subtree with the memory controller");
        let max = cg.tree().into_iter().find_map(|d| {
            std::fs::read_to_string(d.join("memory.max"))
                .ok()
                .filter(|m| m.trim() == "16777216")
        });
        assert!(max.is_some(), "no cgroup of the subtree has memory.max 16777216");
        assert_ok(&cg.run_as(&r, wharf, &["rm", "-f", "limited"]), "wharf rm -f");
    } else {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("memory"), "{err}");
    }
    // Removal takes the container's cgroup with it.
    assert_ok(&cg.run_as(&r, wharf, &["rm", "-f", "svc"]), "wharf rm -f");
    assert!(!cgroups[0].exists(), "{} left behind", cgroups[0].display());
}

//! End to end, across the crates, through the example CLI as a user runs it: a real registry on
//! 127.0.0.1, real overlayfs, real namespaces and cgroups. Needs root, Debian's docker-registry
//! and busybox-static (scripts/test-deps.sh installs them).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::Registry;
use support::cli::{Env, wharf_bin};

#[test]
fn push_remove_pull_run_shows_output_and_exit_code() {
    let env = Env::new();
    let reg = Registry::start();
    let name = reg.image("e2e/busybox:1");
    env.busybox_image(&name, "e2e release 1\n");
    env.ok(&["push", &name]);
    env.ok(&["rmi", &name]);
    assert!(!env.ok(&["images"]).contains("e2e/busybox"));
    let pulled = env.ok(&["pull", &name]);
    assert!(pulled.contains("Digest: sha256:"), "{pulled}");

    let out = env.wharf(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "32",
        "--hostname",
        "e2e",
        &name,
        "sh",
        "-c",
        "cat /etc/release; hostname; echo pid=$$; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "e2e release 1\ne2e\npid=1\n");
    // --rm leaves no container, no mount.
    assert!(!env.ok(&["ps", "-a"]).contains("e2e"));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.store().to_str().unwrap()),
        "a mount was left behind"
    );
}

#[test]
fn save_load_round_trip_then_run() {
    let env = Env::new();
    env.busybox_image("saved/busybox:1", "saved\n");
    let archive = env.dir.path().join("saved.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "saved/busybox:1"]);
    env.ok(&["rmi", "saved/busybox:1"]);
    let loaded = env.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: saved/busybox:1");
    let out = env.ok(&["run", "--rm", "saved/busybox:1", "cat", "/etc/release"]);
    assert_eq!(out, "saved\n");
}

#[test]
fn two_containers_from_one_image_do_not_see_each_others_writes() {
    let env = Env::new();
    env.busybox_image("shared/busybox:1", "shared\n");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "shared/busybox:1",
        "sh",
        "-c",
        "echo from-a > /data/f; sleep 60",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "shared/busybox:1",
        "sh",
        "-c",
        "echo from-b > /data/f; sleep 60",
    ]);
    // Each sees its own write, and a third container sees neither.
    let deadline = Instant::now() + Duration::from_secs(10);
    // A container's filesystem lives under its id.
    let id = |name: &str| {
        let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
        info[0]["Id"].as_str().unwrap().to_string()
    };
    let (id_a, id_b) = (id("a"), id("b"));
    let read = |name: &str| {
        let id = if name == "a" { &id_a } else { &id_b };
        let dir = env.store().join(".wharf/rootfs").join(id).join("rootfs/data/f");
        std::fs::read_to_string(dir).unwrap_or_default()
    };
    while (read("a").is_empty() || read("b").is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read("a"), "from-a\n");
    assert_eq!(read("b"), "from-b\n");
    let out = env.wharf(&["run", "--rm", "shared/busybox:1", "cat", "/data/f"]);
    assert_ne!(out.status.code(), Some(0), "a fresh container saw another's write");
    env.ok(&["rm", "-f", "a"]);
    env.ok(&["rm", "-f", "b"]);
}

#[test]
fn net_container_shares_the_network_namespace_and_none_does_not() {
    let env = Env::new();
    env.busybox_image("net/busybox:1", "net\n");
    env.ok(&["run", "-d", "--name", "db", "net/busybox:1", "sleep", "60"]);
    let ns = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["net/busybox:1", "readlink", "/proc/self/ns/net"]);
        env.ok(&all).trim().to_string()
    };
    let shared = ns(&["--net", "container:db"]);
    let pid = std::fs::read_to_string(env.store().join(".wharf/sandbox/db/state.json")).unwrap();
    let pid: serde_json::Value = serde_json::from_str(&pid).unwrap();
    let db_ns = std::fs::read_link(format!("/proc/{}/ns/net", pid["pid"])).unwrap();
    assert_eq!(shared, db_ns.to_string_lossy());
    let private = ns(&[]);
    assert_ne!(private, shared);
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(private, host.to_string_lossy());
    assert_eq!(ns(&["--net", "host"]), host.to_string_lossy());
    env.ok(&["rm", "-f", "db"]);
}

#[test]
fn registry_delete_and_restore_bring_back_the_same_digest() {
    let env = Env::new();
    let reg = Registry::start();
    let name = reg.image("e2e/deleted:1");
    env.busybox_image(&name, "deleted\n");
    let pushed = env.ok(&["push", &name]);
    assert!(env.ok(&["registry", "tags", &reg.image("e2e/deleted")]).contains('1'));
    env.ok(&["registry", "delete", &name]);
    assert!(!env.ok(&["registry", "tags", &reg.image("e2e/deleted")]).contains('1'));
    let restored = env.ok(&["registry", "restore", &name]);
    let digest = pushed.split("digest: ").nth(1).unwrap().split(' ').next().unwrap();
    assert!(restored.contains(digest), "restored {restored:?}, pushed {pushed:?}");
    assert!(env.ok(&["registry", "tags", &reg.image("e2e/deleted")]).contains('1'));
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit_code() {
    let env = Env::new();
    let unreachable = format!(
        "127.0.0.1:{}/x/y:1",
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    for (args, needle) in [
        (vec!["inspect", "missing/image:1"], "no such object: missing/image:1"),
        (vec!["run", "--rm", "Bad//Reference"], "invalid reference"),
        (vec!["pull", unreachable.as_str()], "127.0.0.1"),
        (vec!["rm", "nosuch"], "no such container"),
        (
            vec!["run", "--rm", "--name", "../../escape", "missing/image:1", "true"],
            "invalid container name",
        ),
        (vec!["rm", "../rootfs"], "invalid container name"),
    ] {
        let out = env.wharf(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = lines.last().copied().unwrap_or_default();
        assert!(last.starts_with("Error: "), "{args:?}: {err}");
        assert!(last.to_lowercase().contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Backtrace"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn run_with_a_terminal_gives_the_container_a_tty_of_the_callers_size() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let env = Env::new();
    env.busybox_image("tty/busybox:1", "tty\n");
    // The CLI's terminal is a pty this test holds the master of.
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave_name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_name.to_str().unwrap())
        .unwrap();
    let size = rustix::termios::Winsize {
        ws_row: 33,
        ws_col: 77,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, size).unwrap();
    let mut child = Command::new(wharf_bin())
        .arg("--root")
        .arg(env.store())
        .args([
            "run",
            "--rm",
            "-t",
            "tty/busybox:1",
            "sh",
            "-c",
            "test -t 1 && echo is-a-tty; stty size; exit 5",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    drop(slave);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The slave is closed on our side and the child's: read what is buffered, then EIO.
    while let Ok(n) = rustix::io::read(&master, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("is-a-tty"), "{out:?}");
    assert!(out.contains("33 77"), "{out:?}");
}

#[test]
fn exec_top_and_logs_reach_a_detached_container() {
    let env = Env::new();
    env.busybox_image("exec/busybox:1", "exec\n");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "exec/busybox:1",
        "sh",
        "-c",
        "echo started; exec sleep 60",
    ]);
    let out = env.wharf(&[
        "exec",
        "-e",
        "FOO=bar",
        "svc",
        "sh",
        "-c",
        "echo FOO=$FOO host=$(hostname); exit 9",
    ]);
    assert_eq!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "FOO=bar host=svc\n");
    let top = env.ok(&["top", "svc"]);
    let row = top
        .lines()
        .find(|l| l.ends_with("sleep 60"))
        .unwrap_or_else(|| panic!("{top}"));
    // docker's top: the host's ps -ef lines of the container's processes, host pids.
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "svc"])).unwrap();
    let pid = info[0]["State"]["Pid"].to_string();
    assert_eq!(row.split_whitespace().nth(1), Some(&pid[..]), "{top}");
    assert_eq!(
        env.ok(&["exec", "svc", "cat", "/proc/1/comm"]),
        "sleep\n",
        "sleep is pid 1 inside"
    );
    // The first process's output went to the container's log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.ok(&["logs", "svc"]).contains("started") {
        assert!(Instant::now() < deadline, "no log output");
        std::thread::sleep(Duration::from_millis(50));
    }
    let missing = env.wharf(&["exec", "svc", "/no/such/binary"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    env.ok(&["stop", "svc"]);
    assert!(env.ok(&["ps", "-a"]).contains("Exited ("));
    env.ok(&["rm", "svc"]);
    assert!(!env.ok(&["ps", "-a"]).contains("svc"));
}

#[test]
fn commit_makes_an_image_with_the_containers_changes_and_export_writes_its_tree() {
    let env = Env::new();
    env.busybox_image("base/busybox:1", "base\n");
    env.ok(&[
        "run",
        "--name",
        "builder",
        "base/busybox:1",
        "sh",
        "-c",
        "echo built > /data/artifact; rm /etc/release",
    ]);
    env.ok(&["commit", "builder", "derived/busybox:1"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "derived/busybox:1",
        "sh",
        "-c",
        "cat /data/artifact; ls /etc",
    ]);
    assert_eq!(
        out, "built\npasswd\n",
        "the new file is there and the deleted one is gone"
    );
    assert_eq!(
        env.ok(&["history", "derived/busybox:1"]).lines().count(),
        3,
        "header + import + commit"
    );

    let tar = env.dir.path().join("exported.tar");
    env.ok(&["export", "builder", "-o", tar.to_str().unwrap()]);
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "data/artifact"),
        "{names}"
    );
    assert!(
        !names.lines().any(|l| l.trim_start_matches("./") == "etc/release"),
        "{names}"
    );
    let id = env.ok(&["ps", "-aq", "--no-trunc", "--filter", "name=builder"]);
    assert!(env.store().join(".wharf/rootfs").join(id.trim()).exists());
    env.ok(&["rm", "builder"]);
    assert!(!env.store().join(".wharf/rootfs").join(id.trim()).exists());
}

#[test]
fn run_flags_env_workdir_user_volumes_read_only_init_and_entrypoint() {
    let env = Env::new();
    env.busybox_image("flags/busybox:1", "flags\n");
    let host = env.dir.path().join("volume");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from the host\n").unwrap();
    let vol_ro = format!("{}:/mnt/ro:ro", host.display());
    let vol_rw = format!("{}:/mnt/rw", host.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        "-v",
        &vol_ro,
        "-v",
        &vol_rw,
        "--read-only",
        "--init",
        "flags/busybox:1",
        "sh",
        "-c",
        "echo $GREETING; pwd; id -u; cat /mnt/ro/in; touch /mnt/ro/x 2>/dev/null || echo ro-refused; \
         touch /etc/x 2>/dev/null || echo root-refused; echo self=$$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..6],
        ["hi", "/tmp", "65534", "from the host", "ro-refused", "root-refused"],
        "{out}"
    );
    assert!(
        !lines[6].contains("sh -c"),
        "with --init, pid 1 is the init, not the command: {out}"
    );
    // The writable volume wrote through to the host.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &vol_rw,
        "flags/busybox:1",
        "sh",
        "-c",
        "echo back > /mnt/rw/out",
    ]);
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "back\n");
    let out = env.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/echo",
        "flags/busybox:1",
        "replaced",
    ]);
    assert_eq!(out, "replaced\n");
    let bad = env.wharf(&["run", "--rm", "--memory", "lots", "flags/busybox:1", "true"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid size"));
}

/// `pull --unpack`, and `run` of an image that is not local, extract each layer into the layer cache while it
/// downloads: afterwards every layer is cached with nothing half-made beside it, and a container starts from them. A
/// layer that unpacking refuses (entries after the end-of-archive marker) fails the pull and leaves the cache as it
/// was: the extraction is the pull's check.
#[test]
fn pull_unpack_and_run_extract_layers_while_they_download() {
    use wharf::image::{Platform, Store};
    let env = Env::new();
    let reg = Registry::start();
    let name = reg.image("e2e/streamed:1");
    env.busybox_image(&name, "streamed\n");
    env.ok(&["push", &name]);
    let cache = wharf::rootfs::LayerCache::open(env.store().join(".wharf/layers")).unwrap();
    let diff_ids = Store::open(env.store())
        .unwrap()
        .image(&name.parse().unwrap(), &Platform::host())
        .unwrap()
        .config
        .diff_ids()
        .unwrap();
    let cache_is_empty = |cache: &wharf::rootfs::LayerCache| {
        cache.list().unwrap().is_empty()
            && std::fs::read_dir(cache.root().join("tmp")).map_or(true, |mut d| d.next().is_none())
    };
    for pull in [
        &["pull", "--unpack", &name][..],
        &["run", "--rm", &name, "cat", "/etc/release"][..],
    ] {
        env.ok(&["rmi", &name]);
        env.ok(&["prune"]);
        assert!(cache_is_empty(&cache), "prune left layers: {:?}", cache.list().unwrap());
        env.ok(pull);
        for d in &diff_ids {
            assert!(cache.contains(d), "{pull:?} did not extract {d}");
        }
        assert_eq!(cache.list().unwrap().len(), diff_ids.len());
        assert_eq!(env.ok(&["run", "--rm", &name, "cat", "/etc/release"]), "streamed\n");
    }

    // A refused layer, pulled through the library with the engine's sink.
    let mut layer = tar_of("etc/ok", b"fine");
    layer.extend_from_slice(&tar_of("etc/hidden", b"unseen"));
    let store = Store::open(env.store()).unwrap();
    let bad = reg.image("e2e/refused:1");
    let (digest, diff_id) = put_one_layer_image(&store, &bad, &layer);
    env.ok(&["push", &bad]);
    env.ok(&["rmi", &bad]);
    env.ok(&["prune"]);
    let before = cache.list().unwrap();
    // A plain pull checks it at unpacking's speed (wharf_rootfs::check_layer), and refuses it too.
    let plain = env.wharf(&["pull", &bad]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success() && stderr.contains("layer refused"), "{stderr}");
    let engine = wharf::engine::Engine::open(env.store()).unwrap();
    let err = engine.pull(&bad.parse().unwrap()).unwrap_err().to_string();
    assert!(err.contains("layer refused") && err.contains("end"), "{err}");
    assert!(!cache.contains(&diff_id), "the refused layer was extracted");
    assert_eq!(cache.list().unwrap(), before);
    assert!(std::fs::read_dir(cache.root().join("tmp")).map_or(true, |mut d| d.next().is_none()));
    assert!(!store.has_blob(&digest), "the refused layer was stored");
    assert!(!env.ok(&["images"]).contains("e2e/refused"));
}

/// A tar holding one file.
fn tar_of(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

/// Stores and tags `name` as an image of one gzip layer of `layer` (as given, unchecked); returns the layer's blob
/// digest and diff_id.
fn put_one_layer_image(
    store: &wharf::image::Store,
    name: &str,
    layer: &[u8],
) -> (wharf::image::Digest, wharf::image::Digest) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, layer).unwrap();
    let blob = gz.finish().unwrap();
    let digest = store.put_bytes(&blob).unwrap();
    let diff_id = wharf::image::Digest::sha256(layer);
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#,
        wharf::image::Platform::host().architecture()
    );
    let cd = store.put_bytes(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{cd}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{},"digest":"{digest}"}}]}}"#,
        config.len(),
        blob.len()
    );
    let (desc, _) = store.put_manifest(manifest.as_bytes(), None).unwrap();
    store.tag(&name.parse().unwrap(), &desc).unwrap();
    (digest, diff_id)
}

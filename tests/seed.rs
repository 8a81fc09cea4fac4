//! The seed scenario of Docker's walkthroughs, through the example CLI with real processes: a
//! service started detached, a sidecar that joins its network, pid and IPC namespaces and reaches
//! it on 127.0.0.1, `exec` and `top` on the service, then `stop` and `rm`. The service is busybox
//! `httpd` (Debian's busybox-static) bound to 127.0.0.1 only, so every answer crossed a loopback
//! interface: the service's own new network namespace must have `lo` up, as docker's and podman's
//! do. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

mod support;

use support::cli::Env;

const IMAGE: &str = "seed/busybox:1";
const ANSWER: &str = "the seed answer: 42\n";
const URL: &str = "http://127.0.0.1:8080/";

/// A busybox image whose `/www/index.html` is [`ANSWER`].
fn server_image(env: &Env) {
    let tree = env.busybox_tree(IMAGE, "seed\n");
    std::fs::create_dir_all(tree.join("www")).unwrap();
    std::fs::write(tree.join("www/index.html"), ANSWER).unwrap();
    env.ok(&["import", tree.to_str().unwrap(), IMAGE, "--cmd", "/bin/sh"]);
}

/// `wget` of [`URL`] with `args` before the image: its output and whether it succeeded.
fn fetch_from(env: &Env, args: &[&str]) -> (bool, String) {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    // (busybox 1.35's wget crashes with -T: no timeout; a refused connection fails at once.)
    all.extend_from_slice(&[IMAGE, "wget", "-q", "-O", "-", URL]);
    let out = env.wharf(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn service_and_sidecar_share_network_pid_and_ipc_then_stop_and_rm() {
    let env = Env::new();
    server_image(&env);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "127.0.0.1:8080",
        "-h",
        "/www",
    ]);

    // exec reaches the service from inside (and tells when it listens).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env.wharf(&["exec", "db", "wget", "-q", "-O", "-", URL]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), ANSWER);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service never answered exec's wget: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A sidecar in the service's network namespace gets the answer on 127.0.0.1; one in a
    // network namespace of its own does not.
    let (ok, out) = fetch_from(&env, &["--net", "container:db"]);
    assert!(ok, "the sidecar could not reach the service: {out}");
    assert_eq!(out, ANSWER);
    let (ok, out) = fetch_from(&env, &[]);
    assert!(!ok, "a container with its own network reached the service: {out}");

    // top lists the service's process by its host pid, as docker's does; it is pid 1 inside.
    let top = env.ok(&["top", "db"]);
    let row = top
        .lines()
        .find(|l| l.contains("httpd -f"))
        .unwrap_or_else(|| panic!("top does not list httpd: {top}"));
    let pid = row.split_whitespace().nth(1).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{top}\n{nspid}");

    // A sidecar in the service's pid namespace sees httpd as pid 1.
    let ps = env.ok(&["run", "--rm", "--pid", "container:db", IMAGE, "ps", "-o", "pid,args"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..2] == ["1", "httpd"]),
        "{ps}"
    );
    let own = env.ok(&["run", "--rm", IMAGE, "ps", "-o", "pid,args"]);
    assert!(!own.contains("httpd"), "a private pid namespace saw the service: {own}");

    // A message queue the service makes is visible to a sidecar in its IPC namespace only.
    env.ok(&["exec", "db", "touch", "/dev/mqueue/seed-queue"]);
    let shared = env.ok(&["run", "--rm", "--ipc", "container:db", IMAGE, "ls", "/dev/mqueue"]);
    assert!(shared.contains("seed-queue"), "{shared}");
    let private = env.ok(&["run", "--rm", IMAGE, "ls", "/dev/mqueue"]);
    assert!(!private.contains("seed-queue"), "{private}");

    env.ok(&["stop", "db"]);
    assert!(!env.ok(&["ps"]).contains("db"), "ps lists a stopped container");
    assert_eq!(
        env.ok(&["stop", "db"]),
        "db\n",
        "stop of a stopped container succeeds, as docker's"
    );
    assert!(env.ok(&["ps", "-a"]).contains("Exited ("));
    let (ok, out) = fetch_from(&env, &["--net", "container:db"]);
    assert!(!ok && out.contains("db is not running"), "{out}");
    env.ok(&["rm", "db"]);
    assert!(env.listed().is_empty());
    assert_eq!(env.mounts_below_store(), Vec::<String>::new());
}

/// A container's new network namespace has `lo` up (`--net none` and the default alike): a
/// server on 127.0.0.1 inside it answers.
#[test]
fn new_network_namespaces_have_loopback_up() {
    let env = Env::new();
    server_image(&env);
    for net in [&[][..], &["--net", "none"]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(net);
        args.extend_from_slice(&[
            IMAGE,
            "sh",
            "-c",
            // httpd goes to the background before it listens: try for up to 5 s.
            "httpd -p 127.0.0.1:8080 -h /www && for i in $(seq 50); do \
             wget -q -O - http://127.0.0.1:8080/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1",
        ]);
        assert_eq!(env.ok(&args), ANSWER, "{net:?}");
    }
}

#[test]
fn namespace_flags_refuse_unknown_values_and_missing_peers() {
    let env = Env::new();
    server_image(&env);
    for (args, needle) in [
        (["--pid", "container:nosuch"], "nosuch is not running"),
        (["--ipc", "sideways"], "invalid --ipc"),
        (["--net", "container:../x"], "invalid container name"),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&[IMAGE, "true"]);
        let out = env.wharf(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(env.listed().is_empty(), "a refused run left a container");
}

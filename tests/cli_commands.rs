//! docker's commands over the engine in the example CLI (issue 18, item 5): `update`, `cp`, `diff`, `stats`, `top`, `rename`,
//! checked against docker's documented behaviour and formats. Real containers of a busybox image, driven through
//! the CLI as a user runs it. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;

use support::cli::Env;

/// A store with a busybox image `bb` and a detached `sleep 1000` called `name` in it.
fn env_with_sleeper(name: &str) -> Env {
    let env = Env::new();
    env.busybox_image("bb", "files\n");
    env.ok(&["run", "-d", "--name", name, "bb", "sleep", "1000"]);
    env
}

/// The host pid of a running container, from its inspect.
fn pid_of(env: &Env, name: &str) -> i32 {
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    i32::try_from(info[0]["State"]["Pid"].as_i64().unwrap()).unwrap()
}

/// The file of `controller` (v1) or the unified hierarchy (v2) holding the limit of process `pid`'s cgroup:
/// `v1_file` or `v2_file` in its directory.
fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in lines.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup").join(controller).join(path).join(v1_file);
        }
        if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Path::new("/sys/fs/cgroup").join(path).join(v2_file);
        }
    }
    panic!("no {controller} cgroup for {pid} in\n{lines}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn update_changes_a_running_containers_limits_in_its_cgroup() {
    let env = env_with_sleeper("web");
    let pid = pid_of(&env, "web");
    let memory = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file(pid, "pids", "pids.max", "pids.max");
    let cpu = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert_eq!(read(&pids), "max");

    // docker prints each container as it was named; the cgroup has the new limits at once.
    assert_eq!(
        env.ok(&[
            "update",
            "--memory",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "web"
        ]),
        "web\n"
    );
    assert_eq!(read(&memory), (32 << 20).to_string());
    assert_eq!(read(&pids), "50");
    let quota = read(&cpu);
    assert!(quota == "50000" || quota == "50000 100000", "cpu quota {quota:?}");
    // A limit not given stays; inspect shows the new ones.
    env.ok(&["update", "--pids-limit", "60", "web"]);
    assert_eq!(read(&memory), (32 << 20).to_string());
    assert_eq!(read(&pids), "60");
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "web"])).unwrap();
    assert_eq!(info[0]["HostConfig"]["Memory"], 32 << 20);
    assert_eq!(info[0]["HostConfig"]["PidsLimit"], 60);

    // No flag, a bad size, a stopped container: docker's refusals, exit 125.
    let refused = |args: &[&str], said: &str| env.refused(args, said);
    refused(&["update", "web"], "you must provide one or more flags");
    refused(&["update", "--memory", "lots", "web"], "invalid size \"lots\"");
    refused(&["update", "--memory", "32m", "nosuch"], "No such container: nosuch");
    // A stopped container's limits are recorded and apply when it starts again, as docker's.
    env.ok(&["run", "-d", "--name", "later", "bb", "sleep", "1000"]);
    env.ok(&["kill", "later"]);
    env.ok(&["wait", "later"]);
    assert_eq!(env.ok(&["update", "--memory", "48m", "later"]), "later\n");
    env.ok(&["restart", "later"]);
    let memory = cgroup_file(pid_of(&env, "later"), "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read(&memory), (48 << 20).to_string());
}

#[test]
fn cp_copies_in_and_out_where_docker_puts_the_copy() {
    let env = env_with_sleeper("box");
    let host = env.dir.path().join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/a"), "a\n").unwrap();
    std::fs::write(host.join("tree/sub/b"), "b\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", host.join("tree/link")).unwrap();
    std::os::unix::fs::chown(host.join("tree/a"), Some(1000), Some(1000)).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    let sh = |script: &str| env.ok(&["exec", "box", "sh", "-c", script]);

    // In: a directory into an existing one keeps its name; SRC/. copies the contents; onto a new path the copy
    // takes that name; files copied in are root's (docker's cp without -a); a symlink stays a symlink.
    env.ok(&["cp", &h("tree"), "box:/data"]);
    env.ok(&["cp", &format!("{}/.", h("tree")), "box:/tmp"]);
    env.ok(&["cp", &h("tree/a"), "box:/etc/renamed"]);
    env.ok(&["cp", &h("tree"), "box:/newdir"]);
    assert_eq!(
        sh("cat /data/tree/a /data/tree/sub/b /tmp/a /tmp/sub/b /etc/renamed /newdir/sub/b"),
        "a\nb\na\nb\na\nb\n"
    );
    assert_eq!(sh("stat -c %u:%g /data/tree/a /etc/renamed"), "0:0\n0:0\n");
    assert_eq!(sh("readlink /data/tree/link"), "/etc/passwd\n");
    // A file onto an existing file replaces it.
    env.ok(&["cp", &h("tree/sub/b"), "box:/etc/renamed"]);
    assert_eq!(sh("cat /etc/renamed"), "b\n");

    // Out: the same rules on the host; files copied out are the caller's.
    env.ok(&["cp", "box:/etc/release", &h("release")]);
    assert_eq!(std::fs::read_to_string(host.join("release")).unwrap(), "files\n");
    std::fs::create_dir(host.join("out")).unwrap();
    env.ok(&["cp", "box:/data/tree", &h("out")]);
    assert_eq!(std::fs::read_to_string(host.join("out/tree/sub/b")).unwrap(), "b\n");
    assert_eq!(
        std::fs::read_link(host.join("out/tree/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    env.ok(&["cp", "box:/data/tree/.", &h("contents")]);
    assert_eq!(std::fs::read_to_string(host.join("contents/a")).unwrap(), "a\n");
    sh("echo mine > /data/owned && chown 1000:1000 /data/owned");
    env.ok(&["cp", "box:/data/owned", &h("owned")]);
    use std::os::unix::fs::MetadataExt;
    let owned = std::fs::metadata(host.join("owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (0, 0));
    // -a (archive) keeps the owners, both ways.
    env.ok(&["cp", "-a", "box:/data/owned", &h("kept")]);
    let kept = std::fs::metadata(host.join("kept")).unwrap();
    assert_eq!((kept.uid(), kept.gid()), (1000, 1000));
    env.ok(&["cp", "-a", &h("tree/a"), "box:/data/a-kept"]);
    assert_eq!(sh("stat -c %u:%g /data/a-kept"), "1000:1000\n");

    // `-`: a tar on standard output, and one read from standard input into a directory.
    let tar = env
        .command(&["cp", "box:/data/tree", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut names: Vec<String> = tar::Archive::new(&tar.stdout[..])
        .entries()
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            path.trim_end_matches('/').to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["tree", "tree/a", "tree/link", "tree/sub", "tree/sub/b"]);
    let mut child = env
        .command(&["cp", "-", "box:/data"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = tar::Builder::new(child.stdin.take().unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    b.append_data(&mut header, "from-stdin", &b"stdin\n"[..]).unwrap();
    b.into_inner().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(sh("cat /data/from-stdin"), "stdin\n");

    // A symlink in the container that points out of its root resolves inside it: the copy lands in the
    // container, never in the host directory the link names.
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    sh(&format!("mkdir -p {0} && ln -s {0} /data/escape", outside.display()));
    env.ok(&["cp", &h("tree/a"), "box:/data/escape/a"]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "a copy went out of the container"
    );
    assert_eq!(sh(&format!("cat {}/a", outside.display())), "a\n");

    // docker's refusals, exit 125.
    let refused = |args: &[&str], said: &str| env.refused(args, said);
    refused(
        &["cp", "box:/nope", &h("x")],
        "Could not find the file /nope in container box",
    );
    refused(&["cp", "box:/data", &h("release")], "cannot copy a directory to a file");
    refused(
        &["cp", &h("tree"), "box:/etc/release"],
        "cannot copy a directory to a file",
    );
    refused(&["cp", &h("tree/a"), "box:/nodir/"], "must exist");
    refused(&["cp", "box:/etc/release", &h("nodir/x")], "must exist");
    refused(&["cp", &h("tree"), &h("other")], "must specify at least one container");
    refused(
        &["cp", "box:/a", "box:/b"],
        "copying between containers is not supported",
    );
    refused(&["cp", "nosuch:/a", &h("x")], "No such container: nosuch");
    // A name the layer reader takes for a whiteout is refused both ways rather than deleting its namesake.
    std::fs::write(host.join("tree/.wh.a"), "").unwrap();
    refused(&["cp", &h("tree"), "box:/data"], "a name starting with .wh.");
    assert_eq!(sh("cat /data/tree/a"), "a\n");
    sh("touch /data/tree/.wh.a");
    refused(&["cp", "box:/data/tree", &h("out")], "a name starting with .wh.");
    assert_eq!(std::fs::read_to_string(host.join("out/tree/a")).unwrap(), "a\n");
}

#[test]
fn diff_lists_dockers_a_c_d_lines() {
    let env = env_with_sleeper("box");
    env.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo new > /data/new && echo more >> /etc/release && rm /bin/vi",
    ]);
    let diff = env.ok(&["diff", "box"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "C /data",
        "A /data/new",
        "C /etc",
        "C /etc/release",
        "C /bin",
        "D /bin/vi",
    ] {
        assert!(lines.contains(&want), "no {want:?} in\n{diff}");
    }
    assert!(
        lines
            .iter()
            .all(|l| ["A /", "C /", "D /"].iter().any(|p| l.starts_with(p))),
        "{diff}"
    );
    let out = env.wharf(&["diff", "nosuch"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such container: nosuch\n"
    );
}

/// docker's `BytesSize`: up to four significant digits and a binary unit.
fn is_bytes_size(s: &str) -> bool {
    let unit = ["KiB", "MiB", "GiB", "TiB", "B"].iter().find(|u| s.ends_with(*u));
    unit.is_some_and(|u| {
        let n = &s[..s.len() - u.len()];
        n.parse::<f64>().is_ok() && n.chars().filter(char::is_ascii_digit).count() <= 4
    })
}

/// Splits a table line at the header's column starts.
fn cells(header: &str, line: &str, titles: &[&str]) -> Vec<String> {
    let starts: Vec<usize> = titles.iter().map(|t| header.find(t).unwrap()).collect();
    (0..starts.len())
        .map(|i| {
            let end = starts.get(i + 1).copied().unwrap_or(line.len()).min(line.len());
            line[starts[i]..end].trim().to_string()
        })
        .collect()
}

const STATS: &[&str] = &[
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

#[test]
fn stats_prints_dockers_table_once_or_streams_it() {
    let env = env_with_sleeper("web");
    env.ok(&["update", "--memory", "64m", "web"]);
    let id = env.ok(&["ps", "-q", "--filter", "name=web"]).trim().to_string();

    let once = env.ok(&["stats", "--no-stream", "web"]);
    let lines: Vec<&str> = once.lines().collect();
    assert_eq!(lines.len(), 2, "{once}");
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{once}"
    );
    let row = cells(lines[0], lines[1], STATS);
    assert_eq!(row[0], id);
    assert_eq!(row[1], "web");
    assert!(
        row[2].ends_with('%') && row[2][..row[2].len() - 1].parse::<f64>().is_ok(),
        "CPU {:?}",
        row[2]
    );
    let (usage, limit) = row[3].split_once(" / ").unwrap();
    assert!(is_bytes_size(usage), "usage {usage:?}");
    assert_eq!(limit, "64MiB");
    assert!(row[4].ends_with('%'), "MEM % {:?}", row[4]);
    assert_eq!(row[7], "1");
    // Its own network namespace has only lo, which docker does not count; block I/O in docker's decimal units.
    assert_eq!(row[5], "0B / 0B");
    let (read, written) = row[6].split_once(" / ").unwrap();
    for n in [read, written] {
        let digits = n.trim_end_matches(char::is_alphabetic);
        assert!(
            n.ends_with('B') && digits.parse::<f64>().is_ok(),
            "BLOCK I/O {:?}",
            row[6]
        );
    }
    // Without names: every running container.
    env.ok(&["run", "-d", "--name", "other", "bb", "sleep", "1000"]);
    let all = env.ok(&["stats", "--no-stream"]);
    assert_eq!(all.lines().count(), 3, "{all}");

    // Streaming: a table a second, until the reader goes (quietly, as a process killed by SIGPIPE) …
    let mut child = env
        .command(&["stats", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut headers = 0;
    let mut line = String::new();
    while headers < 3 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "stats ended");
        headers += usize::from(line.starts_with("CONTAINER ID"));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "three tables in {:?}",
        started.elapsed()
    );
    drop(out);
    let status = child.wait_with_output().unwrap();
    assert_eq!(status.status.code(), Some(141));
    assert!(status.stderr.is_empty(), "{}", String::from_utf8_lossy(&status.stderr));

    // … or the container stops.
    env.ok(&["run", "-d", "--name", "brief", "bb", "sleep", "4"]);
    let started = Instant::now();
    let brief = env.ok(&["stats", "brief"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(brief.contains(" brief "), "{brief}");
}

#[test]
fn top_runs_ps_with_its_options_on_the_containers_processes() {
    support::require("ps", "procps");
    let env = env_with_sleeper("web");
    let pid = pid_of(&env, "web");
    // docker's default: ps -ef, only the container's lines.
    let top = env.ok(&["top", "web"]);
    let lines: Vec<&str> = top.lines().collect();
    assert_eq!(lines.len(), 2, "{top}");
    let titles: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(titles, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    assert!(lines[1].starts_with("root "), "{top}");
    assert!(lines[1].ends_with(" sleep 1000"), "{top}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some(&pid.to_string()[..]));
    // ps options, as docker passes them.
    let top = env.ok(&["top", "web", "-o", "pid,comm"]);
    assert_eq!(
        top.lines()
            .map(|l| l.split_whitespace().collect())
            .collect::<Vec<Vec<&str>>>(),
        [vec!["PID", "COMMAND"], vec![&pid.to_string()[..], "sleep"]]
    );
    let out = env.wharf(&["top", "web", "-o", "comm"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Couldn't find PID field in ps output"));
}

#[test]
fn containers_of_one_name_in_two_roots_have_cgroups_of_their_own() {
    let (a, b) = (env_with_sleeper("twin"), env_with_sleeper("twin"));
    let (pa, pb) = (pid_of(&a, "twin"), pid_of(&b, "twin"));
    let cgroup = |pid: i32| cgroup_file(pid, "pids", "pids.max", "pids.max");
    assert_ne!(cgroup(pa), cgroup(pb));
    // Limits and removal reach one root's container only.
    a.ok(&["update", "--pids-limit", "30", "twin"]);
    assert_eq!(read(&cgroup(pb)), "max");
    a.ok(&["rm", "-f", "twin"]);
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}} {{.State}}"]), "twin running\n");
    assert!(Path::new(&format!("/proc/{pb}")).exists());
    assert_eq!(
        b.ok(&["top", "twin", "-o", "pid"]).lines().nth(1).map(str::trim),
        Some(&pb.to_string()[..])
    );
}

#[test]
fn rename_gives_a_stopped_container_a_new_name_and_keeps_its_id() {
    let env = Env::new();
    env.busybox_image("bb", "files\n");
    let script = "echo hello > /data/kept; echo out";
    env.ok(&["run", "-d", "--name", "first", "bb", "sh", "-c", script]);
    assert_eq!(env.ok(&["wait", "first"]), "0\n");
    let id = env
        .ok(&["ps", "-aq", "--no-trunc", "--filter", "name=first"])
        .trim()
        .to_string();
    assert_eq!(env.ok(&["rename", "first", "second"]), "");
    assert_eq!(
        env.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]),
        format!("{id} second\n")
    );
    // Its filesystem, logs and settings came along; it starts again under its new name.
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "second"])).unwrap();
    assert_eq!(
        (info[0]["Id"].as_str(), info[0]["Name"].as_str()),
        (Some(&id[..]), Some("/second"))
    );
    assert!(env.ok(&["diff", "second"]).contains("A /data/kept\n"));
    env.ok(&["restart", "second"]);
    assert_eq!(env.ok(&["wait", "second"]), "0\n");
    assert_eq!(env.ok(&["logs", "second"]), "out\nout\n");
    let cp = env.command(&["cp", "second:/data/kept", "-"]).output().unwrap();
    assert!(cp.status.success() && String::from_utf8_lossy(&cp.stdout).contains("hello"));
    // By short id too; the old name is free for another container, which then cannot be taken.
    env.ok(&["rename", &id[..12], "third"]);
    env.ok(&["run", "-d", "--name", "second", "bb", "sleep", "1000"]);
    let refused = |args: &[&str], said: &str| env.refused(args, said);
    refused(
        &["rename", "third", "second"],
        "the container name \"second\" is already in use",
    );
    refused(
        &["rename", "second", "fourth"],
        "container second is running: stop it to rename it",
    );
    refused(&["rename", "nosuch", "fourth"], "No such container: nosuch");
    refused(&["rename", "third", "no/slash"], "invalid container name");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 2);
    // Removal finds its filesystem where the record says.
    env.ok(&["rm", "-f", "second"]);
    env.ok(&["rm", "third"]);
    let left: Vec<_> = std::fs::read_dir(env.store().join(".wharf/rootfs")).unwrap().collect();
    assert!(left.is_empty(), "filesystems left: {left:?}");
    assert!(
        env.mounts_below_store().iter().all(|m| !m.contains("/rootfs/")),
        "{:?}",
        env.mounts_below_store()
    );
}

#[test]
fn stop_kill_and_rm_take_several_containers_and_go_on_past_a_missing_one() {
    let env = env_with_sleeper("a");
    // One that ignores TERM: `stop -t 1` kills it after a second (137), as docker's does.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "bb",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    env.ok(&["run", "-d", "--name", "c", "bb", "sleep", "1000"]);
    assert_eq!(env.ok(&["stop", "-t", "1", "a", "b"]), "a\nb\n");
    assert_eq!(env.ok(&["wait", "b"]), "137\n");
    // (KILL: a `sleep` that is pid 1 has no handler for TERM, so TERM would do nothing, with docker too.)
    assert_eq!(env.ok(&["kill", "c"]), "c\n");
    assert_eq!(env.ok(&["wait", "c"]), "137\n");
    // A missing name is said, and the others are still removed; the exit code is wharf's own.
    let out = env.wharf(&["rm", "a", "missing", "b", "c"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such container: missing\n"
    );
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
}

//! docker's habits in the example CLI (issue 18, item 5), checked against docker's documented formats: `ps`'s
//! columns, words, filters and `--format`; short ids accepted wherever a name is. Real containers of a busybox
//! image, driven through the CLI as a user runs it. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

mod support;

use support::cli::Env;

/// A store with a busybox image `bb`.
fn env_with_busybox() -> Env {
    let env = Env::new();
    env.busybox_image("bb", "habits\n");
    env
}

/// Splits a `ps` table line at docker's column starts (the header's words), trimming the padding.
fn columns(header: &str, line: &str) -> Vec<String> {
    let starts: Vec<usize> = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .iter()
    .map(|h| {
        header
            .find(h)
            .unwrap_or_else(|| panic!("no {h} in the header {header:?}"))
    })
    .collect();
    let chars: Vec<char> = line.chars().collect();
    (0..starts.len())
        .map(|i| {
            let end = starts.get(i + 1).copied().unwrap_or(chars.len()).min(chars.len());
            chars[starts[i].min(chars.len())..end]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect()
}

/// "Less than a second", "N seconds", "About a minute" — what docker says of the few seconds a test takes.
fn is_short_duration(s: &str) -> bool {
    s == "Less than a second"
        || s == "1 second"
        || s == "About a minute"
        || s.strip_suffix(" seconds")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (2..60).contains(&n)))
}

#[test]
fn ps_prints_docker_columns_words_ids_filters_and_formats() {
    let env = env_with_busybox();
    env.ok(&[
        "run", "-d", "--name", "sleeper", "-l", "tier=web", "bb", "sleep", "1000",
    ]);
    let out = env.wharf(&["run", "--name", "done", "bb", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "long",
        "bb",
        "sh",
        "-c",
        "echo aaaaaaaaaaaaaaaaaaaaaaaa; sleep 1000",
    ]);
    std::thread::sleep(Duration::from_millis(1100));

    // The table: docker's header, and columns padded as its tabwriter does (3 spaces after the widest cell).
    let table = env.ok(&["ps"]);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    assert!(
        header.starts_with("CONTAINER ID   IMAGE ")
            && header.contains("   COMMAND ")
            && header.ends_with("PORTS     NAMES"),
        "not docker's header: {header:?}"
    );
    assert_eq!(lines.len(), 3, "ps lists the two running containers only:\n{table}");
    let row = |name: &str, text: &str| {
        let found = text.lines().skip(1).find(|l| l.ends_with(&format!(" {name}")));
        columns(
            text.lines().next().unwrap(),
            found.unwrap_or_else(|| panic!("{name} not in\n{text}")),
        )
    };
    let sleeper = row("sleeper", &table);
    let id = sleeper[0].clone();
    assert!(
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "not a short id: {id:?}"
    );
    assert_eq!(sleeper[1], "bb");
    assert_eq!(sleeper[2], "\"sleep 1000\"");
    let created = sleeper[3].strip_suffix(" ago").unwrap_or_default();
    assert!(is_short_duration(created), "CREATED {:?}", sleeper[3]);
    let up = sleeper[4].strip_prefix("Up ").unwrap_or_default();
    assert!(is_short_duration(up), "STATUS {:?}", sleeper[4]);
    assert_eq!(sleeper[5], "");
    // A long command is cut at 20 characters, the last an ellipsis, then quoted.
    assert_eq!(row("long", &table)[2], "\"sh -c echo aaaaaaaa…\"");

    // -a adds the exited one in docker's words; -q prints the ids alone.
    let all = env.ok(&["ps", "-a"]);
    let done = row("done", &all);
    let status = done[4].strip_prefix("Exited (3) ").and_then(|s| s.strip_suffix(" ago"));
    assert!(status.is_some_and(is_short_duration), "STATUS {:?}", done[4]);
    let quiet = env.ok(&["ps", "-q"]);
    assert_eq!(quiet.lines().count(), 2);
    assert!(quiet.lines().any(|l| l == id), "{id} not in ps -q:\n{quiet}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 3);

    // The id is the container's for its life: the same on every listing, and after a restart.
    let full = env.ok(&["ps", "-q", "--no-trunc", "--filter", "name=sleeper"]);
    assert!(full.trim().len() == 64 && full.starts_with(&id), "{full:?}");
    env.ok(&["restart", "-t", "0", &id]);
    assert_eq!(env.ok(&["ps", "-q", "--filter", "name=sleeper"]).trim(), id);

    // Filters: a status filter looks at every container (as docker's does), name matches a part, label a key or
    // a key and value.
    let names = |args: &[&str]| {
        let mut all = vec!["ps", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&all).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["--filter", "status=exited"]), ["done"]);
    assert_eq!(names(&["--filter", "status=running"]), ["long", "sleeper"]);
    assert_eq!(names(&["-a", "--filter", "name=lee"]), ["sleeper"]);
    assert_eq!(names(&["-a", "--filter", "label=tier"]), ["sleeper"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=web"]), ["sleeper"]);
    assert!(names(&["-a", "--filter", "label=tier=db"]).is_empty());
    assert_eq!(names(&["-a", "--filter", &format!("id={}", &id[..6])]), ["sleeper"]);
    assert_eq!(
        names(&["-a", "--filter", "ancestor=bb", "--filter", "status=exited"]),
        ["done"]
    );
    let bad = env.wharf(&["ps", "--filter", "colour=red"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid filter 'colour'"));

    // --format: a Go-template of the fields (with `table` for a header), or json.
    assert_eq!(
        env.ok(&[
            "ps",
            "--filter",
            "name=sleeper",
            "--format",
            "{{.ID}} {{.Names}} {{ .State }}"
        ]),
        format!("{id} sleeper running\n")
    );
    let t = env.ok(&[
        "ps",
        "--filter",
        "name=sleeper",
        "--format",
        "table {{.Names}}\\t{{.Labels}}",
    ]);
    assert_eq!(t, "NAMES     LABELS\nsleeper   tier=web\n");
    let bad = env.wharf(&["ps", "--format", "{{.Colour}}"]);
    assert_eq!(bad.status.code(), Some(125));
    let json = env.ok(&["ps", "-a", "--format", "json"]);
    let objects: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3);
    let done = objects.iter().find(|o| o["Names"] == "done").unwrap();
    assert_eq!(done["State"], "exited");
    assert_eq!(done["Command"], "\"sh -c exit 3\"");
    assert!(done["Status"].as_str().unwrap().starts_with("Exited (3) "));
    for key in ["ID", "Image", "CreatedAt", "RunningFor", "Ports", "Labels"] {
        assert!(done[key].is_string(), "no {key} in {done}");
    }

    // The short id (or a prefix of it) names the container wherever a name does.
    let top = env.ok(&["top", &id[..5]]);
    assert!(top.contains("sleep 1000"), "{top}");
    assert_eq!(env.ok(&["kill", &id[..5]]), format!("{}\n", &id[..5]));
    assert_eq!(env.ok(&["wait", &id]), "137\n");
    assert_eq!(env.ok(&["rm", &id]), format!("{id}\n"));
    assert!(!env.listed().contains(&"sleeper".to_string()));
}

#[test]
fn a_restarting_container_is_listed_as_docker_words_it() {
    let env = env_with_busybox();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "exit 1",
    ]);
    // Between two runs (the supervisor backs off) docker's ps, without -a, shows "Restarting (1) N seconds ago".
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let status = env.ok(&["ps", "--filter", "name=flaky", "--format", "{{.Status}}|{{.State}}"]);
        let status = status.trim().to_string();
        if let Some(rest) = status.strip_prefix("Restarting (1) ") {
            let (ago, state) = rest.split_once('|').unwrap();
            assert!(
                is_short_duration(ago.strip_suffix(" ago").unwrap_or_default()),
                "{status}"
            );
            assert_eq!(state, "restarting");
            break;
        }
        seen.push(status);
        assert!(Instant::now() < deadline, "never listed as restarting; seen {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        env.ok(&["ps", "-q", "--filter", "status=restarting"]).lines().count(),
        1
    );
    env.ok(&["rm", "-f", "flaky"]);
}

#[test]
fn run_exits_with_dockers_codes_for_its_own_and_the_commands_failures() {
    let env = env_with_busybox();
    let code = |args: &[&str]| {
        let out = env.wharf(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        (out.status.code(), err)
    };
    // The container's own code passes through.
    assert_eq!(code(&["run", "--rm", "bb", "sh", "-c", "exit 3"]).0, Some(3));
    // 127: the command is not found (by path, or on the PATH), in the foreground or detached.
    for args in [
        &["run", "--rm", "bb", "/nonexistent"][..],
        &["run", "--rm", "bb", "nosuchcommand"],
        &["run", "-d", "bb", "/nonexistent"],
    ] {
        let (status, err) = code(args);
        assert_eq!(status, Some(127), "{args:?}: {err}");
        assert!(
            err.starts_with("Error: ") && err.contains("not found"),
            "{args:?}: {err}"
        );
    }
    // 126: it is there but cannot be invoked (a directory, a file without x).
    for args in [
        &["run", "--rm", "bb", "/etc"][..],
        &["run", "--rm", "bb", "/etc/passwd"],
        &["run", "-d", "bb", "/etc"],
    ] {
        let (status, err) = code(args);
        assert_eq!(status, Some(126), "{args:?}: {err}");
    }
    // 125: wharf's own failures — a bad flag, an image it cannot get, a bad setting.
    for args in [
        &["run", "--rm", "--no-such-flag", "bb"][..],
        &["run", "--rm", "127.0.0.1:1/none:1", "true"],
        &["run", "--rm", "--memory", "lots", "bb", "true"],
    ] {
        let (status, err) = code(args);
        assert_eq!(status, Some(125), "{args:?}: {err}");
    }
    assert_eq!(code(&["--help"]).0, Some(0));
    assert!(
        env.listed().is_empty(),
        "failed runs left containers: {:?}",
        env.listed()
    );
}

#[test]
fn missing_and_stopped_containers_get_dockers_words_not_store_paths() {
    let env = env_with_busybox();
    // A stopped one is "not running" for what needs a process, never a path of the store.
    env.ok(&["run", "--name", "stopped", "bb", "true"]);
    for command in ["top", "stats", "attach", "exec"] {
        let mut args = vec![command, "stopped"];
        if command == "exec" {
            args.push("true");
        }
        let out = env.wharf(&args);
        assert_eq!(out.status.code(), Some(125), "{command}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "Error: container stopped is not running\n",
            "{command}"
        );
    }
    for command in ["rm", "logs", "stop", "kill", "wait", "top", "restart", "port", "attach"] {
        let out = env.wharf(&[command, "nosuch"]);
        assert_eq!(out.status.code(), Some(125), "{command}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "Error: No such container: nosuch\n",
            "{command}"
        );
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let env = env_with_busybox();
    env.ok(&["run", "--name", "chatty", "-d", "bb", "seq", "1", "100000"]);
    assert_eq!(env.ok(&["wait", "chatty"]), "0\n");
    for args in [
        &["images"][..],
        &["inspect", "bb"],
        &["ps", "-a"],
        &["ps", "-a", "--format", "json"],
        &["logs", "chatty"],
        &["logs", "-f", "chatty"],
    ] {
        // The reader is gone before the CLI writes a byte, as `| head -0` would leave it.
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let out = env
            .command(args)
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?} said {err:?}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: ends as if killed by SIGPIPE");
    }
}

#[test]
fn inspect_shows_containers_in_dockers_shape_and_images_too() {
    let env = env_with_busybox();
    let host = env.dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    let volume = format!("{}:/shared:ro", host.display());
    env.ok(&[
        "run", "-d", "--name", "web", "-l", "tier=web", "-e", "X=1", "-v", &volume, "--memory", "64m", "bb", "sleep",
        "1000",
    ]);
    let out = env.wharf(&["run", "--name", "done", "bb", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4));

    let parse = |args: &[&str]| -> Vec<serde_json::Value> { serde_json::from_str(&env.ok(args)).unwrap() };
    let web = &parse(&["inspect", "web"])[0];
    let id = web["Id"].as_str().unwrap();
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "Id {id:?}");
    assert_eq!(web["Name"], "/web");
    assert_eq!(web["Path"], "sleep");
    assert_eq!(web["Args"], serde_json::json!(["1000"]));
    let state = &web["State"];
    assert_eq!(state["Status"], "running");
    assert_eq!(state["Running"], true);
    assert_eq!(state["Restarting"], false);
    assert_eq!(state["OOMKilled"], false);
    assert_eq!(state["ExitCode"], 0);
    assert_eq!(state["FinishedAt"], "0001-01-01T00:00:00Z");
    let pid = state["Pid"].as_i64().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Pid {pid} is no process"
    );
    assert!(state["StartedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(web["RestartCount"], 0);
    assert_eq!(web["Config"]["Image"], "bb");
    assert_eq!(web["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(web["Config"]["Env"], serde_json::json!(["X=1"]));
    assert_eq!(web["Config"]["Labels"]["tier"], "web");
    assert_eq!(web["HostConfig"]["Memory"], 64 << 20);
    let mount = &web["Mounts"][0];
    assert_eq!(mount["Type"], "bind");
    assert_eq!(mount["Source"], host.to_str().unwrap());
    assert_eq!(mount["Destination"], "/shared");
    assert_eq!(mount["RW"], false);
    assert!(web["Image"].as_str().unwrap().starts_with("sha256:"));

    // By short id too; an exited container says how it ended; a container and an image in one array.
    let both = parse(&["inspect", &id[..12], "done", "bb"]);
    assert_eq!(both.len(), 3);
    assert_eq!(both[0]["Id"], id);
    let done = &both[1]["State"];
    assert_eq!(done["Status"], "exited");
    assert_eq!(done["Running"], false);
    assert_eq!(done["ExitCode"], 4);
    assert_eq!(done["Pid"], 0);
    assert_ne!(done["FinishedAt"], "0001-01-01T00:00:00Z");
    assert!(
        both[2]["RepoTags"].is_array() && both[2]["Layers"].is_array(),
        "{}",
        both[2]
    );

    // --type limits the lookup; a name that is neither is docker's "No such object".
    let out = env.wharf(&["inspect", "--type", "container", "bb"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: No such container: bb\n");
    assert_eq!(parse(&["inspect", "--type", "image", "bb"]).len(), 1);
    let out = env.wharf(&["inspect", "nothing"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: No such object: nothing\n");
}

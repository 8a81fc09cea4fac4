//! The engine (`wharf::engine`) driving real containers through the library: a busybox-static image imported
//! into a fresh store, run to completion, detached, stopped, inspected, listed, exec'd into, removed, from one
//! engine and from two on one root, and waited for from async code. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::time::{Duration, Instant};

use wharf::engine::{
    BindMount, ContainerSettings, Engine, EngineOptions, Error, ExecSettings, Filter, Limits, ListOptions, PullPolicy,
    RestartPolicy, State, Supervisor,
};
use wharf::image::Store;
use wharf::image::import::{ContainerConfig, ImportOptions, import_dir};
use wharf::sandbox::{ExitStatus, StdioConfig};

mod support;

use support::Registry;
use support::cli::{Env, wharf_bin};

const IMAGE: &str = "engine/busybox:1";

/// An engine on `env`'s store whose detached containers the example CLI supervises (a test harness cannot be
/// run again as a supervisor: its `main` is libtest's).
fn engine_on(env: &Env) -> Engine {
    let options = EngineOptions {
        supervisor: Supervisor::Program(wharf_bin().into()),
        ..Default::default()
    };
    Engine::with_store(Store::open(env.store()).unwrap(), options).unwrap()
}

/// A fresh store with the busybox image, and an engine on it. Dropping it removes whatever containers a failed
/// test left, through the engine.
struct Root {
    engine: Engine,
    env: Env,
}

impl Root {
    fn new() -> Root {
        let env = Env::new();
        let tree = env.busybox_tree(IMAGE, "engine\n");
        let engine = engine_on(&env);
        let opts = ImportOptions {
            config: ContainerConfig {
                cmd: vec!["/bin/sh".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        import_dir(engine.store(), &tree, &IMAGE.parse().unwrap(), &opts).unwrap();
        Root { engine, env }
    }

    /// Settings that never pull, with `command`.
    fn settings(command: &[&str]) -> wharf::engine::ContainerSettingsBuilder {
        ContainerSettings::builder()
            .command(command.iter().copied())
            .pull(PullPolicy::Never)
    }

    /// Waits until `name`'s log has `needle` on stdout.
    fn wait_for_log(&self, name: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&self.engine.logs(name).unwrap().stdout).contains(needle) {
            assert!(Instant::now() < deadline, "{name} never logged {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn all(&self) -> Vec<String> {
        let all = ListOptions {
            all: true,
            ..Default::default()
        };
        self.engine.list(&all).into_iter().map(|c| c.name).collect()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for name in self.all() {
            let _ = self.engine.remove(&name, true);
        }
        // The store's mounts are gone with the containers.
        assert!(self.env.mounts_below_store().is_empty() || std::thread::panicking());
    }
}

#[test]
fn run_to_completion_captures_output_and_exit_code() {
    let root = Root::new();
    let engine = &root.engine;
    let data = root.env.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "from the host\n").unwrap();
    let settings = Root::settings(&["sh", "-c", "cat /mnt/f; echo to-err >&2; exit 3"])
        .mount(BindMount {
            source: data,
            target: "/mnt".into(),
            read_only: true,
        })
        .build();
    let name = engine.run(IMAGE, &settings).unwrap();
    let exit = engine.wait(&name).unwrap();
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (Some(3), None, false));
    let logs = engine.logs(&name).unwrap();
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "from the host\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "to-err\n");
    let info = engine.inspect(&name).unwrap();
    assert_eq!(info.state, State::Exited);
    assert_eq!(info.exit, Some(exit));
    assert!(info.started.is_some() && info.finished.is_some() && info.pid.is_none());
    assert_eq!(info.command, ["sh", "-c", "cat /mnt/f; echo to-err >&2; exit 3"]);
    // Waiting again gives the same recorded exit.
    assert_eq!(engine.wait(&name).unwrap(), exit);
    engine.remove(&name, false).unwrap();
    assert!(matches!(engine.inspect(&name), Err(Error::NoSuchContainer(n)) if n == name));
    assert!(root.all().is_empty());
}

#[test]
fn created_then_started_detached_with_logs_then_waited_for() {
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sh", "-c", "echo started; sleep 1; exit 7"])
        .name("later")
        .build();
    let name = engine.create(IMAGE, &settings).unwrap();
    assert_eq!(name, "later");
    assert_eq!(engine.inspect("later").unwrap().state, State::Created);
    assert!(
        engine.list(&ListOptions::default()).is_empty(),
        "a created container is not running"
    );
    assert!(matches!(engine.wait("later"), Err(Error::NotStarted(_))));
    let started = engine.start("later").unwrap();
    assert!(started.pid > 0 && started.terminal.is_none());
    assert!(matches!(engine.start("later"), Err(Error::AlreadyRunning(_))));
    root.wait_for_log("later", "started");
    let running = engine.list(&ListOptions::default());
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].state, running[0].pid), (State::Running, Some(started.pid)));
    assert_eq!(engine.wait("later").unwrap().code, Some(7));
    assert_eq!(engine.inspect("later").unwrap().state, State::Exited);
    // Started again: the same filesystem, the log appended to, a new exit.
    engine.start("later").unwrap();
    assert_eq!(engine.inspect("later").unwrap().exit, None);
    assert_eq!(engine.wait("later").unwrap().code, Some(7));
    assert_eq!(
        String::from_utf8_lossy(&engine.logs("later").unwrap().stdout),
        "started\nstarted\n"
    );
    // Stopping a stopped container succeeds; removing it needs no force.
    engine.stop("later", Duration::from_secs(1)).unwrap();
    engine.remove("later", false).unwrap();
}

#[test]
fn stop_kills_a_container_that_ignores_sigterm_once_the_timeout_passed() {
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sh", "-c", "trap '' TERM; echo ready; sleep 60"]).build();
    let name = engine.run(IMAGE, &settings).unwrap();
    root.wait_for_log(&name, "ready");
    let begin = Instant::now();
    engine.stop(&name, Duration::from_millis(1500)).unwrap();
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "stopped after {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    let info = engine.inspect(&name).unwrap();
    assert_eq!(info.state, State::Exited);
    assert_eq!(info.exit.map(|e| (e.code, e.signal)), Some((None, Some(9))), "{info:?}");
    assert_eq!(info.exit.and_then(|e| e.status()), Some(137));
    engine.remove(&name, false).unwrap();
}

#[test]
fn a_running_container_is_inspected_listed_filtered_exec_top_stats_and_removed() {
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sleep", "60"])
        .name("svc")
        .hostname("box")
        .env("GREETING=hello")
        .memory(64 << 20)
        .label("team", "ci")
        .restart(RestartPolicy::OnFailure(Some(2)))
        .build();
    engine.run(IMAGE, &settings).unwrap();
    let other = Root::settings(&["true"]).name("other").build();
    engine.create(IMAGE, &other).unwrap();

    let info = engine.inspect("svc").unwrap();
    assert_eq!(info.state, State::Running);
    assert!(info.pid.is_some() && info.exit.is_none() && info.image_id.is_some());
    assert_eq!(
        info.image,
        IMAGE.parse::<wharf::image::Reference>().unwrap().to_string()
    );
    let recorded = info.settings.unwrap();
    assert_eq!(recorded.limits.memory, Some(64 << 20));
    assert_eq!(recorded.restart, RestartPolicy::OnFailure(Some(2)));

    let names = |filters: Vec<Filter>| -> Vec<String> {
        let options = ListOptions { all: true, filters };
        engine.list(&options).into_iter().map(|c| c.name).collect()
    };
    assert_eq!(names(vec![Filter::Label("team".into(), Some("ci".into()))]), ["svc"]);
    assert_eq!(
        names(vec![Filter::Label("team".into(), Some("qa".into()))]),
        Vec::<String>::new()
    );
    assert_eq!(names(vec![Filter::State(State::Created)]), ["other"]);
    assert_eq!(names(vec![Filter::Name("oth".into())]), ["other"]);
    assert_eq!(names(vec![Filter::Image(IMAGE.into())]).len(), 2);

    let exec = ExecSettings {
        command: vec!["sh".into(), "-c".into(), "echo $GREETING $(hostname); exit 4".into()],
        ..Default::default()
    };
    let mut handle = engine.exec("svc", &exec, StdioConfig::piped()).unwrap();
    let mut out = String::new();
    handle.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(handle.wait().unwrap(), ExitStatus::Exited(4));
    assert_eq!(out, "hello box\n");

    let top = engine.top("svc").unwrap();
    assert!(
        top.iter().any(|p| p.container_pid == 1 && p.cmdline == ["sleep", "60"]),
        "{top:?}"
    );
    let stats = engine.stats("svc").unwrap();
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert!(stats.pids_current >= 1);
    // A limit changed live reaches the cgroup and the record; the others stay.
    let lower = Limits {
        memory: Some(32 << 20),
        ..Default::default()
    };
    engine.update("svc", &lower).unwrap();
    assert_eq!(engine.stats("svc").unwrap().memory_limit, Some(32 << 20));
    let limits = engine.inspect("svc").unwrap().settings.unwrap().limits;
    assert_eq!((limits.memory, limits.pids), (Some(32 << 20), None));
    // A stopped one's are recorded for its next start, as docker's.
    engine.update("other", &lower).unwrap();
    assert_eq!(
        engine.inspect("other").unwrap().settings.unwrap().limits.memory,
        Some(32 << 20)
    );

    assert!(matches!(engine.remove("svc", false), Err(Error::Running(_))));
    engine.remove("svc", true).unwrap();
    engine.remove("other", false).unwrap();
    assert!(root.all().is_empty());
}

#[test]
fn errors_name_the_container_image_or_setting() {
    let root = Root::new();
    let engine = &root.engine;
    let missing = |r: Result<(), Error>| match r {
        Err(e @ Error::NoSuchContainer(_)) => assert_eq!(e.to_string(), "No such container: nosuch"),
        other => panic!("expected no such container, got {other:?}"),
    };
    missing(engine.inspect("nosuch").map(drop));
    missing(engine.wait("nosuch").map(drop));
    missing(engine.logs("nosuch").map(drop));
    missing(engine.start("nosuch").map(drop));
    missing(engine.stop("nosuch", Duration::from_secs(1)));
    missing(engine.kill("nosuch", 9));
    missing(engine.remove("nosuch", true));
    missing(engine.top("nosuch").map(drop));
    assert!(matches!(engine.inspect("../x"), Err(Error::InvalidName(_))));
    let named = Root::settings(&["true"]).name("../x").build();
    assert!(matches!(engine.create(IMAGE, &named), Err(Error::InvalidName(_))));
    let never = Root::settings(&["true"]).build();
    let err = engine.create("engine/absent:1", &never).unwrap_err();
    assert!(matches!(err, Error::ImageMissing(_)), "{err}");
    let bad_ns = Root::settings(&["true"])
        .pid("container:nosuch".parse().unwrap())
        .build();
    let err = engine.run(IMAGE, &bad_ns).unwrap_err();
    assert!(err.to_string().contains("container nosuch is not running"), "{err}");
    let no_source = Root::settings(&["true"])
        .mount("/no/such/dir:/mnt".parse().unwrap())
        .build();
    let err = engine.create(IMAGE, &no_source).unwrap_err();
    assert!(
        err.to_string().contains("invalid volume \"/no/such/dir:/mnt\""),
        "{err}"
    );
    let bad_program = Root::settings(&["/no/such/program"]).build();
    let err = engine.run(IMAGE, &bad_program).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    // Nothing of a refused or failed run stays.
    assert!(root.all().is_empty());
    assert!(root.env.mounts_below_store().is_empty());
}

#[test]
fn two_engines_on_one_root_share_the_containers() {
    let root = Root::new();
    let a = &root.engine;
    let b = engine_on(&root.env);
    // Racing for one name: one wins, the other is told the name is in use.
    let same = Root::settings(&["sleep", "60"]).name("same").build();
    let results: Vec<_> = std::thread::scope(|s| {
        let ta = s.spawn(|| a.run(IMAGE, &same));
        let tb = s.spawn(|| b.run(IMAGE, &same));
        vec![ta.join().unwrap(), tb.join().unwrap()]
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::NameInUse(n)) if n == "same"))
    );
    assert_eq!(b.inspect("same").unwrap().state, State::Running);
    assert_eq!(a.inspect("same").unwrap().state, State::Running);
    // A container `a` started, stopped by `b`: the exit `a` records is what `b` waits for.
    let started_by_a = Root::settings(&["sleep", "60"]).name("by-a").build();
    a.run(IMAGE, &started_by_a).unwrap();
    b.stop("by-a", Duration::from_millis(500)).unwrap();
    let seen_by_b = b.wait("by-a").unwrap();
    assert_eq!(seen_by_b, a.wait("by-a").unwrap());
    assert_eq!(seen_by_b.signal, Some(9), "sleep as pid 1 ignores TERM: {seen_by_b:?}");
    b.remove("by-a", false).unwrap();
    a.remove("same", true).unwrap();
    assert!(
        b.list(&ListOptions {
            all: true,
            ..Default::default()
        })
        .is_empty()
    );
}

#[test]
fn a_dropped_wait_future_leaves_the_container_managed() {
    let root = Root::new();
    let engine = root.engine.clone();
    let settings = Root::settings(&["sleep", "60"]).name("async").build();
    engine.run(IMAGE, &settings).unwrap();
    // One worker thread: if waiting blocked it, the timeout could never fire.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Futures dropped again and again (a wait with a timeout in a loop).
        for _ in 0..5 {
            let waited = tokio::time::timeout(Duration::from_millis(40), engine.wait_async("async")).await;
            assert!(waited.is_err(), "the wait ended early: {waited:?}");
        }
        // The dropped future changed nothing: the container runs, listed, and is stopped and reaped as usual.
        assert_eq!(engine.inspect("async").unwrap().state, State::Running);
        let stopper = engine.clone();
        let stop = tokio::task::spawn_blocking(move || stopper.stop("async", Duration::from_millis(200)));
        // Another engine on the root waits for the same exit, from the record.
        let other = engine_on(&root.env);
        let (exit, seen_by_other) = tokio::join!(engine.wait_async("async"), other.wait_async("async"));
        let exit = exit.unwrap();
        assert_eq!(exit.signal, Some(9));
        assert_eq!(seen_by_other.unwrap(), exit);
        stop.await.unwrap().unwrap();
    });
    assert_eq!(engine.inspect("async").unwrap().state, State::Exited);
    engine.remove("async", false).unwrap();
}

#[test]
fn auto_remove_goes_once_stopped_and_an_oom_kill_is_flagged() {
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sh", "-c", "exit 2"]).auto_remove(true).build();
    let name = engine.run(IMAGE, &settings).unwrap();
    assert_eq!(engine.wait(&name).unwrap().code, Some(2));
    assert!(matches!(engine.inspect(&name), Err(Error::NoSuchContainer(_))));
    // dd's 64 MiB buffer does not fit in 16 MiB.
    let settings = Root::settings(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
        .memory(16 << 20)
        .build();
    let name = engine.run(IMAGE, &settings).unwrap();
    let exit = engine.wait(&name).unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(9));
    engine.remove(&name, false).unwrap();
}

#[test]
fn a_container_another_process_started_is_seen_and_started_again() {
    let root = Root::new();
    let engine = &root.engine;
    // The example CLI is that other process: it starts the container and exits before it does.
    root.env.ok(&[
        "run",
        "-d",
        "--name",
        "cli-made",
        IMAGE,
        "sh",
        "-c",
        "sleep 2; echo hi; exit 5",
    ]);
    assert_eq!(engine.inspect("cli-made").unwrap().state, State::Running);
    // The CLI has ended; the container's supervisor lives on and records its exit.
    let exit = engine.wait("cli-made").unwrap();
    assert_eq!(exit.code, Some(5));
    let info = engine.inspect("cli-made").unwrap();
    assert_eq!((info.state, info.exit), (State::Exited, Some(exit)));
    // Started again by this engine, under a supervisor of its own.
    engine.start("cli-made").unwrap();
    assert_eq!(engine.wait("cli-made").unwrap().code, Some(5));
    assert_eq!(
        String::from_utf8_lossy(&engine.logs("cli-made").unwrap().stdout),
        "hi\nhi\n"
    );
    root.env.ok(&["rm", "cli-made"]);
    assert!(root.all().is_empty());
}

#[test]
fn pull_policies_against_a_real_registry_and_a_run_from_async_code() {
    let reg = Registry::start();
    let seed = Env::new();
    let image = reg.image("engine/pulled:1");
    seed.busybox_image(&image, "first\n");
    seed.ok(&["push", &image]);
    let root = Root::new();
    let engine = root.engine.clone();
    let cat = |policy| {
        Root::settings(&["cat", "/etc/release"])
            .pull(policy)
            .auto_remove(true)
            .build()
    };
    let err = engine.create(&image, &cat(PullPolicy::Never)).unwrap_err();
    assert!(matches!(err, Error::ImageMissing(_)), "{err}");

    // From async code: the blocking run (and its pull) on spawn_blocking, the wait as a future.
    let run = |policy: PullPolicy| -> String {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let settings = Root::settings(&["cat", "/etc/release"]).pull(policy).build();
            let (e, i) = (engine.clone(), image.clone());
            let name = tokio::task::spawn_blocking(move || e.run(&i, &settings))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(engine.wait_async(&name).await.unwrap().code, Some(0));
            let out = String::from_utf8_lossy(&engine.logs(&name).unwrap().stdout).into_owned();
            engine.remove(&name, false).unwrap();
            out
        })
    };
    assert_eq!(run(PullPolicy::Missing), "first\n");
    // The tag moves on the registry.
    seed.busybox_image("local/second:1", "second\n");
    seed.ok(&["tag", "local/second:1", &image]);
    seed.ok(&["push", &image]);
    assert_eq!(
        run(PullPolicy::Missing),
        "first\n",
        "missing: the store's image is used"
    );
    assert_eq!(run(PullPolicy::Never), "first\n");
    assert_eq!(
        run(PullPolicy::Always),
        "second\n",
        "always: the registry's newest image"
    );
    assert!(root.all().is_empty());
}

#[test]
fn logs_are_followed_and_stats_streamed_while_the_container_runs() {
    let root = Root::new();
    let engine = &root.engine;
    // The same container twice: once for its stats, once for its logs.
    let settings = Root::settings(&[
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done",
    ])
    .name("talker")
    .build();
    engine.run(IMAGE, &settings).unwrap();
    let samples: Vec<_> = engine
        .stats_stream("talker", Duration::from_millis(100))
        .unwrap()
        .collect();
    // It ran about 0.9 s: the stream ended with it, after several samples.
    assert!((3..=20).contains(&samples.len()), "{} samples", samples.len());
    assert!(samples.iter().all(|s| s.pids_current >= 1));
    engine.remove("talker", false).unwrap();

    engine.run(IMAGE, &settings).unwrap();
    let begin = Instant::now();
    let mut err = engine.follow_logs("talker", wharf::engine::LogStream::Stderr).unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let mut out = String::new();
    let mut follower = engine.follow_logs("talker", wharf::engine::LogStream::Stdout).unwrap();
    follower.read_to_string(&mut out).unwrap();
    assert!(
        begin.elapsed() >= Duration::from_millis(500),
        "the follower ended before the container"
    );
    assert_eq!(out, "out1\nout2\nout3\n");
    assert_eq!(errors.join().unwrap(), "err1\nerr2\nerr3\n");
    assert_eq!(engine.inspect("talker").unwrap().state, State::Exited);
    // An exited container's log is read and ends at once.
    let mut again = String::new();
    engine
        .follow_logs("talker", wharf::engine::LogStream::Stdout)
        .unwrap()
        .read_to_string(&mut again)
        .unwrap();
    assert_eq!(again, out);
    assert_eq!(root.env.ok(&["logs", "-f", "talker"]), out);
    engine.remove("talker", false).unwrap();
}

/// The entries of a tar: (path, content of a regular file, or the target of a link).
fn tar_entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = String::new();
            match e.link_name().unwrap() {
                Some(target) => content = target.to_string_lossy().into_owned(),
                None => drop(e.read_to_string(&mut content)),
            }
            (path, content)
        })
        .collect()
}

#[test]
fn copy_in_and_out_resolve_inside_the_container_and_diff_lists_its_changes() {
    use wharf::engine::ChangeKind::{Added, Changed, Deleted};
    let root = Root::new();
    let engine = &root.engine;
    let script = "echo new > /tmp/added; echo changed >> /etc/release; rm /etc/passwd; mkdir -p /data/sub; \
                  echo x > /data/sub/y; ln -s /etc /data/escape; echo ready; exec sleep 60";
    let settings = Root::settings(&["sh", "-c", script]).name("files").build();
    engine.run(IMAGE, &settings).unwrap();
    root.wait_for_log("files", "ready");

    let changes: Vec<_> = engine
        .diff("files")
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.path))
        .collect();
    for expected in [
        (Added, "/tmp/added"),
        (Changed, "/tmp"),
        (Changed, "/etc/release"),
        (Deleted, "/etc/passwd"),
        (Changed, "/data"),
        (Added, "/data/sub"),
        (Added, "/data/sub/y"),
        (Added, "/data/escape"),
    ] {
        assert!(
            changes.contains(&(expected.0, expected.1.to_string())),
            "{expected:?} not in {changes:?}"
        );
    }
    assert!(!changes.iter().any(|(_, p)| p.starts_with("/bin")), "{changes:?}");

    let out = |path: &str| {
        let mut tar = Vec::new();
        engine.copy_out("files", path, &mut tar).unwrap();
        tar_entries(&tar)
    };
    assert_eq!(
        out("/etc/release"),
        [("release".to_string(), "engine\nchanged\n".to_string())]
    );
    let data = out("/data");
    assert_eq!(
        data.iter().map(|(p, _)| p.trim_end_matches('/')).collect::<Vec<_>>(),
        ["data", "data/escape", "data/sub", "data/sub/y"]
    );
    assert_eq!(data[1].1, "/etc", "a symlink is copied as the link");
    // The container's absolute symlink leads to its own /etc, not the host's.
    assert_eq!(out("/data/escape/release"), out("/etc/release"));
    let err = engine.copy_out("files", "/nope/x", &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("/nope/x"), "{err}");

    // In through the same symlink: into the container's /etc, nothing on the host's.
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "wharf-engine-cp-test", &b"in\n"[..])
        .unwrap();
    let archive = archive.into_inner().unwrap();
    engine.copy_in("files", "/data/escape", archive.as_slice()).unwrap();
    assert!(
        !std::path::Path::new("/etc/wharf-engine-cp-test").exists(),
        "written on the host"
    );
    let exec = ExecSettings {
        command: vec!["cat".into(), "/etc/wharf-engine-cp-test".into()],
        ..Default::default()
    };
    let mut handle = engine.exec("files", &exec, StdioConfig::piped()).unwrap();
    let mut seen = String::new();
    handle.stdout.take().unwrap().read_to_string(&mut seen).unwrap();
    assert_eq!(handle.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(seen, "in\n");
    assert!(
        engine
            .diff("files")
            .unwrap()
            .iter()
            .any(|c| c.path == "/etc/wharf-engine-cp-test" && c.kind == Added)
    );
    let err = engine.copy_in("files", "/etc/release", archive.as_slice()).unwrap_err();
    assert!(err.to_string().contains("/etc/release"), "not a directory: {err}");
    engine.remove("files", true).unwrap();
}

#[test]
fn a_detached_terminal_is_logged() {
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sh", "-c", "test -t 1 && echo is-a-tty; seq 1 2000 | tail -n 1"])
        .tty(true)
        .build();
    let (name, started) = engine.run_attached(IMAGE, &settings).unwrap();
    assert!(started.terminal.is_none(), "the engine reads the terminal itself");
    assert_eq!(engine.wait(&name).unwrap().code, Some(0));
    // Everything the terminal showed is in the log once the wait returns (a terminal ends lines with CR LF).
    let out = String::from_utf8_lossy(&engine.logs(&name).unwrap().stdout).into_owned();
    assert_eq!(out, "is-a-tty\r\n2000\r\n");
    engine.remove(&name, false).unwrap();
}

#[test]
fn piped_output_hands_the_streams_to_the_caller() {
    use std::io::Write;
    let root = Root::new();
    let engine = &root.engine;
    let settings = Root::settings(&["sh", "-c", "read line; echo got:$line; echo to-err >&2; exit 6"])
        .output(wharf::engine::Output::Piped)
        .stdin_open(true)
        .build();
    let (name, mut started) = engine.run_attached(IMAGE, &settings).unwrap();
    let mut stdin = started.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    started.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    started.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("got:hello\n", "to-err\n"));
    assert_eq!(engine.wait(&name).unwrap().code, Some(6));
    assert_eq!(
        engine.logs(&name).unwrap(),
        wharf::engine::Logs::default(),
        "nothing is logged"
    );
    engine.remove(&name, false).unwrap();
}

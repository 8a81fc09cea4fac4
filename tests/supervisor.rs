//! Supervised detached containers (`wharf::engine::supervisor`) with real containers: exits recorded after the
//! starting process ended, restart policies with their count, log rotation, attach, a killed supervisor, and the
//! CLI's `run -d`, `wait`, `logs -f`, `restart`, `attach`. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use wharf::engine::{
    AttachEvent, ContainerInfo, ContainerSettings, Engine, EngineOptions, ExitInfo, ListOptions, LogOptions, LogStream,
    PullPolicy, RestartPolicy, State, Supervisor,
};
use wharf::image::Store;
use wharf::image::import::{ContainerConfig, ImportOptions, import_dir};

mod support;

use support::cli::{Env, wharf_bin};

const IMAGE: &str = "supervised/busybox:1";

/// A fresh store with the busybox image and an engine whose supervisor is the example CLI (a test harness cannot
/// be run again as one).
struct Root {
    engine: Engine,
    env: Env,
}

impl Root {
    fn new() -> Root {
        let env = Env::new();
        let tree = env.busybox_tree(IMAGE, "supervised\n");
        let options = EngineOptions {
            supervisor: Supervisor::Program(wharf_bin().into()),
            ..Default::default()
        };
        let engine = Engine::with_store(Store::open(env.store()).unwrap(), options).unwrap();
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

    fn settings(command: &[&str]) -> wharf::engine::ContainerSettingsBuilder {
        ContainerSettings::builder()
            .command(command.iter().copied())
            .pull(PullPolicy::Never)
    }

    /// Polls `name`'s inspect until `done` holds (at most `secs`).
    fn until(&self, name: &str, secs: u64, done: impl Fn(&ContainerInfo) -> bool) -> ContainerInfo {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let info = self.engine.inspect(name).unwrap();
            if done(&info) {
                return info;
            }
            assert!(Instant::now() < deadline, "{name} never got there: {info:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.engine.logs(name).unwrap().stdout).into_owned()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let all = ListOptions {
            all: true,
            ..Default::default()
        };
        for c in self.engine.list(&all) {
            let _ = self.engine.remove(&c.name, true);
        }
    }
}

/// The pid of container `name`'s supervisor (its `argv[0]` names it).
fn supervisor_pid(name: &str) -> Option<i32> {
    let wanted = format!("wharf-supervisor {name}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let argv0 = cmdline.split(|b| *b == 0).next()?;
        (argv0 == wanted.as_bytes()).then_some(pid)
    })
}

/// Whether `pid` exists (a zombie does).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_detached_container_outlives_the_cli_that_ran_it_and_its_exit_is_recorded() {
    let root = Root::new();
    let env = &root.env;
    // The CLI process runs it detached and ends at once.
    let name = env.ok(&[
        "run",
        "-d",
        IMAGE,
        "sh",
        "-c",
        "echo one; sleep 1; echo two >&2; exit 3",
    ]);
    let name = name.trim();
    let supervisor = supervisor_pid(name).expect("a supervisor");
    // Detached: a session of its own (no terminal's ^C or hang-up reaches it), standard streams on /dev/null.
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/stat")).unwrap();
    let session: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(session, supervisor, "{stat}");
    for fd in [0, 1] {
        let target = std::fs::read_link(format!("/proc/{supervisor}/fd/{fd}")).unwrap();
        assert_eq!(target, std::path::Path::new("/dev/null"));
    }
    // `logs -f` follows it to its end, then returns.
    let followed = env.command(&["logs", "-f", name]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "one\n");
    assert_eq!(String::from_utf8_lossy(&followed.stderr), "two\n");
    // `wait` (another CLI process) and the library read the exit its supervisor recorded.
    assert_eq!(env.ok(&["wait", name]), "3\n");
    let exit = root.engine.wait(name).unwrap();
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (Some(3), None, false));
    let info = root.engine.inspect(name).unwrap();
    assert_eq!(
        (info.state, info.exit, info.restart_count),
        (State::Exited, Some(exit), 0)
    );
    assert!(info.finished.is_some());
    // Its supervisor has ended with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while supervisor_pid(name).is_some() {
        assert!(Instant::now() < deadline, "the supervisor outlived its container");
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["rm", name]);
}

#[test]
fn the_supervisor_restarts_a_container_after_the_cli_that_ran_it_ended() {
    let root = Root::new();
    let env = &root.env;
    env.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo try; exit 9",
    ]);
    let info = root.until("again", 20, |i| {
        i.restart_count == 2 && !i.restarting && i.state == State::Exited && i.exit.is_some()
    });
    assert_eq!(info.exit.and_then(|e| e.code), Some(9));
    assert_eq!(env.ok(&["wait", "again"]), "9\n");
    assert_eq!(env.ok(&["logs", "again"]), "try\n".repeat(3));
    let bad = env.wharf(&["run", "-d", "--restart", "sometimes", IMAGE, "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("restart policy"),
        "{bad:?}"
    );
}

#[test]
fn on_failure_3_restarts_three_times_then_stays_exited() {
    let root = Root::new();
    let settings = Root::settings(&["sh", "-c", "echo run; exit 1"])
        .name("flaky")
        .restart(RestartPolicy::OnFailure(Some(3)))
        .build();
    root.engine.run(IMAGE, &settings).unwrap();
    // Back-off: 100 + 200 + 400 ms.
    let info = root.until("flaky", 20, |i| {
        i.restart_count == 3 && i.state == State::Exited && !i.restarting && i.exit.is_some()
    });
    assert_eq!(info.exit.and_then(|e| e.code), Some(1));
    // Run once and restarted three times, as docker's on-failure:3.
    assert_eq!(root.stdout("flaky"), "run\n".repeat(4));
    std::thread::sleep(Duration::from_millis(1500));
    let later = root.engine.inspect("flaky").unwrap();
    assert_eq!((later.restart_count, later.state), (3, State::Exited), "{later:?}");
    // A start by the user applies the policy afresh.
    root.engine.start("flaky").unwrap();
    root.until("flaky", 20, |i| {
        i.restart_count == 3 && !i.restarting && i.state == State::Exited && i.exit.is_some()
    });
    assert_eq!(root.stdout("flaky"), "run\n".repeat(8));
    // docker restart: stop, then start; a new process and the count from zero.
    let settings = Root::settings(&["sleep", "60"]).name("steady").build();
    let first = root
        .engine
        .start(&root.engine.create(IMAGE, &settings).unwrap())
        .unwrap();
    let second = root.engine.restart("steady", Duration::from_millis(100)).unwrap();
    assert_ne!(first.pid, second.pid);
    let info = root.engine.inspect("steady").unwrap();
    assert_eq!(
        (info.state, info.pid, info.restart_count),
        (State::Running, Some(second.pid), 0)
    );
    assert_eq!(root.engine.wait("flaky").unwrap().code, Some(1));
}

#[test]
fn always_restarts_after_a_crash_but_not_after_a_stop() {
    let root = Root::new();
    let settings = Root::settings(&["sh", "-c", "echo up; exec sleep 60"])
        .name("always")
        .restart(RestartPolicy::Always)
        .build();
    let started = root
        .engine
        .start(&root.engine.create(IMAGE, &settings).unwrap())
        .unwrap();
    // A crash: killed from outside the engine.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(started.pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let info = root.until("always", 10, |i| i.restart_count == 1 && i.state == State::Running);
    assert_ne!(info.pid, Some(started.pid), "a new process");
    assert_eq!(
        root.engine.inspect("always").unwrap().settings.unwrap().restart,
        RestartPolicy::Always
    );
    root.until("always", 10, |_| root.stdout("always") == "up\nup\n");
    // A stop by the user is never undone.
    root.engine.stop("always", Duration::from_millis(200)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let info = root.engine.inspect("always").unwrap();
    assert_eq!(
        (info.state, info.restart_count, info.restarting),
        (State::Exited, 1, false),
        "{info:?}"
    );
    assert_eq!(info.exit.and_then(|e| e.signal), Some(9), "sleep as pid 1 ignores TERM");
    // Nor is a KILL.
    root.engine.start("always").unwrap();
    root.until("always", 10, |i| i.state == State::Running);
    root.engine.kill("always", 9).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let info = root.engine.inspect("always").unwrap();
    assert_eq!((info.state, info.restart_count), (State::Exited, 0), "{info:?}");
}

#[test]
fn logs_rotate_to_at_most_max_file_files_of_at_most_max_size() {
    let root = Root::new();
    let settings = Root::settings(&["sh", "-c", "seq 1 1000; seq 1 100 >&2"])
        .name("chatty")
        .log(LogOptions {
            max_size: Some(1000),
            max_files: 3,
        })
        .build();
    root.engine.run(IMAGE, &settings).unwrap();
    assert_eq!(root.engine.wait("chatty").unwrap().code, Some(0));
    let dir = root.env.store().join(".wharf/containers/chatty");
    for (stream, kept) in [("stdout.log", 3), ("stderr.log", 1)] {
        let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(stream))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        files.sort();
        // Each kept file has its times beside it, rotated with it.
        let (times, logs): (Vec<_>, Vec<_>) = files.into_iter().partition(|(n, _)| n.ends_with(".times"));
        assert_eq!(logs.len(), kept, "{logs:?}");
        assert!(logs.iter().all(|(_, size)| *size <= 1000), "{logs:?}");
        let mut with_times: Vec<String> = logs.iter().map(|(n, _)| format!("{n}.times")).collect();
        with_times.sort();
        assert_eq!(times.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), with_times);
    }
    // The logs are the kept files, oldest first: the last 3000 bytes or less of `seq 1 1000`.
    let seq: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    let logs = root.engine.logs("chatty").unwrap();
    let out = String::from_utf8(logs.stdout).unwrap();
    assert!(out.len() > 2000 && seq.ends_with(&out), "{out:?}");
    assert_eq!(
        logs.stderr.len(),
        (1..=100).map(|i: i32| i.to_string().len() + 1).sum::<usize>()
    );
    // The CLI takes docker's --log-opt.
    let name = root.env.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        IMAGE,
        "seq",
        "1",
        "2000",
    ]);
    let name = name.trim();
    assert_eq!(root.env.ok(&["wait", name]), "0\n");
    let followed = root.env.ok(&["logs", name]);
    assert!(
        followed.len() <= 2048 && followed.ends_with("1999\n2000\n"),
        "{followed:?}"
    );
    let bad = root
        .env
        .wharf(&["run", "-d", "--log-opt", "max-size=lots", IMAGE, "true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("max-size=lots"),
        "{bad:?}"
    );
}

#[test]
fn a_killed_supervisor_leaves_the_container_listed_stoppable_and_removable() {
    let root = Root::new();
    let started = start_orphan(&root, "orphan");
    let deadline = Instant::now() + Duration::from_secs(5);
    while supervisor_pid("orphan").is_some() {
        assert!(Instant::now() < deadline, "the supervisor did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still listed, and running while its process lives.
    let running = root.engine.list(&ListOptions::default());
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].state, running[0].pid), (State::Running, Some(started.pid)));
    // Another process (the CLI) lists it too.
    assert!(root.env.ok(&["ps"]).contains("orphan"));
    // Stoppable: its exit is unknown, nobody saw it.
    root.engine.stop("orphan", Duration::from_millis(200)).unwrap();
    assert_eq!(root.engine.wait("orphan").unwrap(), ExitInfo::UNKNOWN);
    let info = root.engine.inspect("orphan").unwrap();
    assert_eq!((info.state, info.exit), (State::Exited, Some(ExitInfo::UNKNOWN)));
    // Removable, and no zombie is left (the host's init reaps it; it may take it a while).
    root.engine.remove("orphan", false).unwrap();
    assert_reaped(started.pid);
    // A second one, removed with force while it runs.
    let started = start_orphan(&root, "orphan2");
    root.env.ok(&["rm", "-f", "orphan2"]);
    assert!(root.env.listed().is_empty());
    assert_reaped(started.pid);
}

/// Starts a detached `sleep 60` named `name` and SIGKILLs its supervisor.
/// Creates `/tmp/go` in container `name` (through exec), which the scripts here wait for, and waits for that.
fn touch_go(root: &Root, name: &str) {
    let exec = wharf::engine::ExecSettings {
        command: vec!["touch".into(), "/tmp/go".into()],
        ..Default::default()
    };
    let mut touch = root
        .engine
        .exec(name, &exec, wharf::sandbox::StdioConfig::inherit())
        .unwrap();
    touch.wait().unwrap();
}

fn start_orphan(root: &Root, name: &str) -> wharf::engine::Started {
    let settings = Root::settings(&["sleep", "60"]).name(name).build();
    let started = root
        .engine
        .start(&root.engine.create(IMAGE, &settings).unwrap())
        .unwrap();
    let supervisor = supervisor_pid(name).expect("a supervisor");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(supervisor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    started
}

/// Waits (30 s at most: the host's init reaps orphans lazily) until process `pid` is gone.
fn assert_reaped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while exists(pid) {
        assert!(Instant::now() < deadline, "container process {pid} was never reaped");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn attach_sees_output_written_after_it_connected_and_forwards_input() {
    let root = Root::new();
    let settings = Root::settings(&[
        "sh",
        "-c",
        "echo before; read line; echo got:$line; echo bye >&2; exit 4",
    ])
    .name("talk")
    .stdin_open(true)
    .build();
    root.engine.run(IMAGE, &settings).unwrap();
    root.until("talk", 10, |_| root.stdout("talk") == "before\n");
    let mut attached = root.engine.attach("talk").unwrap();
    attached.input().unwrap().write_all(b"hello\n").unwrap();
    let mut events = Vec::new();
    while let Some(e) = attached.next_event().unwrap() {
        events.push(e);
    }
    let out: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            AttachEvent::Output(LogStream::Stdout, b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(String::from_utf8_lossy(&out), "got:hello\n", "{events:?}");
    assert!(events.contains(&AttachEvent::Output(LogStream::Stderr, b"bye\n".to_vec())));
    assert!(
        matches!(events.last(), Some(AttachEvent::Exited(e)) if e.code == Some(4)),
        "{events:?}"
    );
    assert_eq!(root.stdout("talk"), "before\ngot:hello\n");
    // Nothing to attach to once it has stopped.
    assert!(matches!(
        root.engine.attach("talk"),
        Err(wharf::engine::Error::NotRunning(_))
    ));
}

#[test]
fn cli_restart_gives_a_new_process_and_attach_streams_until_the_end() {
    let root = Root::new();
    let env = &root.env;
    env.ok(&["run", "-d", "--name", "svc", IMAGE, "sleep", "60"]);
    let before = root.engine.inspect("svc").unwrap().pid.unwrap();
    assert_eq!(env.ok(&["restart", "-t", "0", "svc"]), "svc\n");
    let after = root.engine.inspect("svc").unwrap();
    assert_eq!(after.state, State::Running);
    assert_ne!(after.pid, Some(before), "restart gives a new process");
    // `attach` shows what it writes after attaching, and ends with its exit code.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        IMAGE,
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do echo tick; sleep 0.1; done; echo after; exit 6",
    ]);
    let mut client = env
        .command(&["attach", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(client.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "tick", "attached and streaming");
    touch_go(&root, "ticker");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest.last().map(String::as_str), Some("after"), "{rest:?}");
    assert!(rest[..rest.len() - 1].iter().all(|l| l == "tick"), "{rest:?}");
    assert_eq!(client.wait().unwrap().code(), Some(6));
    // ^P^Q detaches; the container runs on.
    let mut client = env
        .command(&["attach", "svc"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(b"\x10\x11").unwrap();
    let out = client.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "read escape sequence\n");
    assert_eq!(root.engine.inspect("svc").unwrap().state, State::Running);
    env.ok(&["rm", "-f", "svc"]);
}

#[test]
fn a_supervisor_program_that_cannot_run_fails_the_start_and_leaves_nothing() {
    let root = Root::new();
    let options = EngineOptions {
        supervisor: Supervisor::Program("/nonexistent/wharf".into()),
        ..Default::default()
    };
    let engine = Engine::with_store(Store::open(root.env.store()).unwrap(), options).unwrap();
    let settings = Root::settings(&["true"]).name("unsupervised").build();
    match engine.run(IMAGE, &settings) {
        Err(e @ wharf::engine::Error::Supervisor { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("/nonexistent/wharf") && text.contains("unsupervised"),
                "{text}"
            );
        }
        other => panic!("expected a supervisor error, got {other:?}"),
    }
    assert!(
        engine
            .list(&ListOptions {
                all: true,
                ..Default::default()
            })
            .is_empty()
    );
    assert!(root.env.mounts_below_store().is_empty());
    // The start error the supervisor reports is the sandbox's, as an in-process start's would be.
    let missing = Root::settings(&["/no/such/program"]).name("missing").build();
    let err = root.engine.run(IMAGE, &missing).unwrap_err();
    assert!(matches!(err, wharf::engine::Error::Supervisor { .. }), "{err:?}");
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn a_detached_terminal_is_resized_and_attached_to() {
    let root = Root::new();
    let settings = Root::settings(&[
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; stty size; exit 3",
    ])
    .name("term")
    .tty(true)
    .build();
    root.engine.run(IMAGE, &settings).unwrap();
    root.engine.resize("term", 40, 100).unwrap();
    let mut attached = root.engine.attach("term").unwrap();
    let exec = wharf::engine::ExecSettings {
        command: vec!["touch".into(), "/tmp/go".into()],
        ..Default::default()
    };
    let mut touch = root
        .engine
        .exec("term", &exec, wharf::sandbox::StdioConfig::inherit())
        .unwrap();
    touch.wait().unwrap();
    let mut shown = Vec::new();
    let mut exit = None;
    while let Some(event) = attached.next_event().unwrap() {
        match event {
            AttachEvent::Output(_, bytes) => shown.extend(bytes),
            AttachEvent::Exited(e) => exit = Some(e),
        }
    }
    // A terminal ends lines with CR LF.
    assert_eq!(String::from_utf8_lossy(&shown), "40 100\r\n");
    assert_eq!(exit.and_then(|e| e.code), Some(3));
    assert_eq!(root.stdout("term"), "40 100\r\n");
    // Nothing to resize once it has stopped, nor in a container without a terminal.
    assert!(matches!(
        root.engine.resize("term", 1, 1),
        Err(wharf::engine::Error::NotRunning(_))
    ));
    let plain = Root::settings(&["sleep", "60"]).name("plain").build();
    root.engine.run(IMAGE, &plain).unwrap();
    assert!(matches!(
        root.engine.resize("plain", 1, 1),
        Err(wharf::engine::Error::NotRunning(_))
    ));
}

#[test]
fn logs_since_and_tail_cut_what_the_supervisor_kept() {
    let root = Root::new();
    let env = &root.env;
    env.ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        IMAGE,
        "sh",
        "-c",
        "echo early; echo early-err >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; \
         echo late; echo late-err >&2; exec sleep 60",
    ]);
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&root.engine.logs("svc").unwrap().stdout).contains(want) {
            assert!(std::time::Instant::now() < deadline, "no {want:?} in the logs");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("early");
    // A time between the two writes, well clear of the times' resolution on both sides.
    std::thread::sleep(Duration::from_millis(100));
    let mid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    touch_go(&root, "svc");
    wait_for("late");
    let since = format!("{mid:.6}");
    let out = env.wharf(&["logs", "--since", &since, "svc"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "late-err\n");
    // A time ago takes everything of the last hour; --tail cuts each stream to its last lines.
    assert_eq!(env.ok(&["logs", "--since", "1h", "svc"]), "early\nlate\n");
    assert_eq!(env.ok(&["logs", "--tail", "1", "svc"]), "late\n");
    assert_eq!(env.ok(&["logs", "--since", "1h", "-n", "1", "svc"]), "late\n");
    // Following from a time gives what came after it, and ends with the container.
    env.ok(&["kill", "svc"]);
    env.ok(&["wait", "svc"]);
    assert_eq!(env.ok(&["logs", "-f", "--since", &since, "svc"]), "late\n");
    assert_eq!(env.ok(&["logs", "-f", "-n", "1", "svc"]), "late\n");
    assert_eq!(env.ok(&["logs", "-f", "svc"]), "early\nlate\n");
    // Nonsense is wharf's own error, naming the value.
    let out = env.wharf(&["logs", "--since", "yesterday", "svc"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"yesterday\""));
}

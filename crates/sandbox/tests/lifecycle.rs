//! exec, processes, timeouts, pty, init, and state shared between processes (run as root).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::time::Duration;

use common::{rootfs, sh, spec};
use wharf_sandbox::oci_spec::runtime::Process;
use wharf_sandbox::{Container, ExitStatus, SpawnOptions, StateDir, Status, StdioConfig};

fn process(args: &[&str]) -> Process {
    let mut p = spec(args).process().clone().unwrap();
    p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    p
}

#[test]
fn exec_joins_the_running_container() {
    let root = rootfs();
    let mut c = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let mut p = c
        .exec(
            &process(&[
                "sh",
                "-c",
                "hostname; echo $$; readlink /proc/self/ns/net; grep -E '^(Seccomp|CapEff):' /proc/self/status",
            ]),
            StdioConfig::piped(),
        )
        .unwrap();
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(p.wait().unwrap(), ExitStatus::Exited(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "wharf-test");
    assert_ne!(lines[1], "1", "exec'd process must not be pid 1");
    assert_eq!(
        lines[2],
        std::fs::read_link(format!("/proc/{}/ns/net", c.pid()))
            .unwrap()
            .to_string_lossy()
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["CapEff:", "00000000a80425fb"]
    );
    assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["Seccomp:", "2"]);
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

#[test]
fn exec_of_a_missing_program_is_a_typed_error() {
    let root = rootfs();
    let mut c = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let e = c.exec(&process(&["nope"]), StdioConfig::piped()).unwrap_err();
    assert!(matches!(e, wharf_sandbox::Error::ExecNotFound { .. }), "{e:?}");
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

#[test]
fn processes_lists_host_and_container_pids() {
    let root = rootfs();
    let mut c = Container::spawn(
        &sh("sleep 100 & sleep 100 & echo ready; wait"),
        root.path(),
        StdioConfig::piped(),
    )
    .unwrap();
    let mut out = c.take_stdout().unwrap();
    let mut b = [0u8; 6];
    out.read_exact(&mut b).unwrap();
    // The two children may not have executed `sleep` yet: poll until they have (bounded).
    let mut ps = c.processes();
    for _ in 0..500 {
        if ps.len() == 3
            && ps[1..]
                .iter()
                .all(|p| p.cmdline.first().map(String::as_str) == Some("sleep"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        ps = c.processes();
    }
    assert_eq!(ps.len(), 3, "{ps:?}");
    assert_eq!(ps[0].container_pid, 1);
    assert_eq!(ps[0].host_pid, c.pid());
    assert_eq!(ps[0].cmdline[0], "sh");
    assert!(
        ps[1..]
            .iter()
            .all(|p| p.cmdline == ["sleep", "100"] && p.container_pid > 1 && p.host_pid != p.container_pid),
        "{ps:?}"
    );
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

#[test]
fn timeout_kills_the_whole_container() {
    let root = rootfs();
    let mut c = Container::spawn(&sh("sleep 1000 & sleep 1000"), root.path(), StdioConfig::piped()).unwrap();
    let exit = c.wait_or_kill(Duration::from_millis(200)).unwrap();
    assert!(exit.timed_out);
    assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(!c.cgroup().exists());
}

#[test]
fn init_reaps_and_forwards_signals() {
    let root = rootfs();
    let opts = SpawnOptions {
        init: true,
        ..Default::default()
    };
    let mut c = Container::spawn_with(&sh("echo $$; sleep 1000"), root.path(), StdioConfig::piped(), opts).unwrap();
    let mut out = c.take_stdout().unwrap();
    let mut b = [0u8; 2];
    out.read_exact(&mut b).unwrap();
    // The program is pid 2: pid 1 is the init.
    assert_eq!(&b, b"2\n");
    let ps = c.processes();
    assert_eq!(ps[0].container_pid, 1);
    // pid 1 runs host code (it never executes anything): it is non-dumpable, so the container cannot open or
    // read the host binary through /proc/1/exe (CVE-2019-5736).
    let mut p = c
        .exec(
            &process(&[
                "sh",
                "-c",
                "readlink /proc/1/exe; cat /proc/1/exe > /dev/null; echo rc=$?",
            ]),
            StdioConfig::piped(),
        )
        .unwrap();
    let (mut o, mut e) = (String::new(), String::new());
    p.stdout.take().unwrap().read_to_string(&mut o).unwrap();
    p.stderr.take().unwrap().read_to_string(&mut e).unwrap();
    p.wait().unwrap();
    assert_eq!(o, "rc=1\n", "{e}");
    assert!(e.contains("Permission denied"), "{e}");
    // Without an init, pid 1 ignores SIGTERM; the init forwards it and exits with 128+15.
    c.kill(libc::SIGTERM).unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(128 + libc::SIGTERM));
}

#[test]
fn terminal_gives_a_pty() {
    let root = rootfs();
    let mut s = sh(
        "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; t=$(tty); [ -c \"$t\" ] && echo \"$t\"; \
         [ \"$(stat -L -c %t:%T /dev/console)\" = \"$(stat -L -c %t:%T $t)\" ] && stat -c %t /dev/console",
    );
    s.process_mut().as_mut().unwrap().set_terminal(Some(true));
    let mut c = Container::spawn(&s, root.path(), StdioConfig::inherit()).unwrap();
    let mut master = c.take_pty_master().unwrap();
    let exit = c.wait().unwrap();
    assert_eq!(exit.status, ExitStatus::Exited(0));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"88\r\n") {
        let n = master.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // The pty is the container's own (its name exists inside: allocated from the container's devpts, as runc
    // does), and /dev/console is that pty (major 136 = 0x88).
    assert_eq!(String::from_utf8_lossy(&got), "is-a-tty\r\n/dev/pts/0\r\n88\r\n");
}

/// `exec` with a terminal gets a pty of the container's devpts too (what `kubectl exec -it` needs for `tty`,
/// `sudo` or `tmux` to work inside).
#[test]
fn exec_with_a_terminal_gets_a_pty_of_the_container() {
    let root = rootfs();
    let c = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let mut p = process(&["sh", "-c", "t=$(tty); [ -c \"$t\" ] && echo \"tty=$t\"; ls /dev/pts"]);
    p.set_terminal(Some(true));
    let mut h = c.exec(&p, StdioConfig::inherit()).unwrap();
    let mut master = h.pty_master.take().expect("no pty master");
    assert_eq!(h.wait().unwrap(), ExitStatus::Exited(0));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("ptmx") {
        let n = master.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&got);
    assert!(out.starts_with("tty=/dev/pts/0\r\n"), "{out}");
}

#[test]
fn created_container_starts_from_another_handle_via_the_state_dir() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("lifecycle-{}", std::process::id());
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        created_only: true,
        ..Default::default()
    };
    let mut c =
        Container::spawn_with(&sh("echo started; sleep 1000"), root.path(), StdioConfig::piped(), opts).unwrap();
    // What another process sees: the state on disk.
    let sd = StateDir::new(states.path()).unwrap();
    assert_eq!(sd.list(), vec![id.clone()]);
    assert_eq!(sd.status(&id).unwrap(), Status::Created);
    assert_eq!(sd.load(&id).unwrap().pid, c.pid());
    sd.start(&id).unwrap();
    let mut out = c.take_stdout().unwrap();
    let mut b = [0u8; 8];
    out.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"started\n");
    assert_eq!(sd.status(&id).unwrap(), Status::Running);
    sd.kill(&id, libc::SIGKILL, false).unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(sd.list().is_empty(), "state remains after exit");
}

#[test]
fn detached_container_is_deleted_by_id() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("detached-{}", std::process::id());
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        ..Default::default()
    };
    let c = Container::spawn_with(&spec(&["sleep", "1000"]), root.path(), StdioConfig::piped(), opts).unwrap();
    let cg = c.cgroup().clone();
    c.detach();
    let sd = StateDir::new(states.path()).unwrap();
    assert_eq!(sd.status(&id).unwrap(), Status::Running);
    let ps = sd.processes(&id).unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].container_pid, 1);
    // Another handle (as a runtime CLI invoked again would) runs a process in it.
    let mut p = sd
        .exec(&id, &process(&["sh", "-c", "hostname; echo $$"]), StdioConfig::piped())
        .unwrap();
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(p.wait().unwrap(), ExitStatus::Exited(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "wharf-test");
    assert!(lines[1].parse::<i32>().unwrap() > 1, "{out}");
    assert!(
        sd.delete(&id, false).is_err(),
        "deleting a running container needs force"
    );
    sd.delete(&id, true).unwrap();
    assert!(!cg.exists());
    assert!(sd.list().is_empty());
}

#[test]
fn in_process_create_then_start() {
    let root = rootfs();
    let opts = SpawnOptions {
        created_only: true,
        ..Default::default()
    };
    let mut c = Container::spawn_with(&spec(&["echo", "go"]), root.path(), StdioConfig::piped(), opts).unwrap();
    c.start().unwrap();
    let (out, _) = common::read_all(&mut c);
    assert_eq!(out, "go\n");
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
}

#[test]
fn duplicate_id_is_refused() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let opts = || SpawnOptions {
        id: Some("dup".into()),
        state_dir: Some(states.path().to_owned()),
        ..Default::default()
    };
    let mut a = Container::spawn_with(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped(), opts()).unwrap();
    let e = Container::spawn_with(&spec(&["true"]), root.path(), StdioConfig::piped(), opts()).unwrap_err();
    assert!(matches!(e, wharf_sandbox::Error::AlreadyExists(_)), "{e:?}");
    a.kill(libc::SIGKILL).unwrap();
    a.wait().unwrap();
}

#[test]
fn pause_and_resume() {
    let root = rootfs();
    let mut c = Container::spawn(
        &sh("read x; echo got $x"),
        root.path(),
        StdioConfig {
            stdin: wharf_sandbox::Stdio::Piped,
            ..StdioConfig::piped()
        },
    )
    .unwrap();
    c.pause(true).unwrap();
    let state = |c: &Container| {
        let (name, dir) = c
            .cgroup()
            .dirs
            .iter()
            .find(|(n, _)| n == "freezer" || n.is_empty())
            .unwrap();
        let file = if name.is_empty() {
            "cgroup.freeze"
        } else {
            "freezer.state"
        };
        std::fs::read_to_string(dir.join(file)).unwrap().trim().to_owned()
    };
    // FREEZING until every task has stopped.
    let mut st = state(&c);
    for _ in 0..500 {
        if st != "FREEZING" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        st = state(&c);
    }
    assert!(["FROZEN", "1"].contains(&st.as_str()), "{st}");
    c.pause(false).unwrap();
    assert!(["THAWED", "0"].contains(&state(&c).as_str()));
    std::io::Write::write_all(&mut c.take_stdin().unwrap(), b"it\n").unwrap();
    let (out, _) = common::read_all(&mut c);
    assert_eq!(out, "got it\n");
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
}

#[test]
fn spawning_from_many_threads_at_once_is_safe() {
    // Fork safety: other threads allocate and hold locks while containers are cloned.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<String> = (0..200).map(|i| i.to_string()).collect();
                    std::hint::black_box(v);
                }
            })
        })
        .collect();
    let root = rootfs();
    let path = root.path().to_owned();
    let spawners: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let (exit, out, err) = common::run(&sh(&format!("echo {t}-{i}")), &path);
                    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
                    assert_eq!(out, format!("{t}-{i}\n"));
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in churn {
        c.join().unwrap();
    }
}

#[test]
fn stdio_to_and_from_files() {
    let root = rootfs();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in"), "line from a file\n").unwrap();
    let stdio = StdioConfig {
        stdin: std::fs::File::open(dir.path().join("in")).unwrap().into(),
        stdout: std::fs::File::create(dir.path().join("out")).unwrap().into(),
        stderr: std::fs::File::create(dir.path().join("err")).unwrap().into(),
        extra_fds: Vec::new(),
    };
    let mut c = Container::spawn(&sh("read l; echo \"got $l\"; echo oops >&2"), root.path(), stdio).unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "got line from a file\n"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("err")).unwrap(), "oops\n");
}

#[test]
fn exec_into_a_user_namespaced_container() {
    let root = rootfs();
    let mut s = spec(&["sleep", "100"]);
    common::with_user_namespace(&mut s, 500000, 65536);
    let mut c = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap();
    let mut p = c
        .exec(
            &process(&["sh", "-c", "id -u; cat /proc/self/uid_map"]),
            StdioConfig::piped(),
        )
        .unwrap();
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(p.wait().unwrap(), ExitStatus::Exited(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "500000", "65536"]
    );
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

#[test]
fn creating_a_container_whose_program_is_a_directory_fails_at_create_as_runc_does() {
    // access(X_OK) grants a searchable directory; execve (and runc's check before `create` returns) refuse it
    // with EACCES. A `create` that succeeded would leave the failure to after `start`, where podman and
    // containerd only see a process that vanished.
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("dir-{}", std::process::id());
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        created_only: true,
        ..Default::default()
    };
    let err = Container::spawn_with(&spec(&["/tmp"]), root.path(), StdioConfig::piped(), opts)
        .expect_err("create must fail for a directory as the program");
    assert!(
        matches!(&err, wharf_sandbox::Error::Exec { program, source }
            if program == "/tmp" && source.raw_os_error() == Some(libc::EACCES)),
        "{err:?}"
    );
    assert!(
        StateDir::new(states.path()).unwrap().list().is_empty(),
        "no state is left"
    );
}

#[test]
fn creating_a_container_whose_program_is_missing_fails_at_create_as_runc_does() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("missing-{}", std::process::id());
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        created_only: true,
        ..Default::default()
    };
    let err = Container::spawn_with(&spec(&["/no/such/program"]), root.path(), StdioConfig::piped(), opts)
        .expect_err("create must fail for a missing program");
    assert!(matches!(err, wharf_sandbox::Error::ExecNotFound { .. }), "{err:?}");
    assert!(
        StateDir::new(states.path()).unwrap().list().is_empty(),
        "no state is left"
    );
}

/// The hook point before `pivot_root`: the callback sees the container's process with its own mount namespace but
/// the host's root still in place, the state says `Creating`, and what it writes into the rootfs is there when the
/// program runs.
#[test]
fn before_pivot_runs_with_mounts_in_place_and_state_creating() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("hook-{}", std::process::id());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (sd_path, id2, root_path, seen2) = (
        states.path().to_owned(),
        id.clone(),
        root.path().to_owned(),
        seen.clone(),
    );
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        before_pivot: Some(wharf_sandbox::BeforePivot(Box::new(move |pid| {
            let status = StateDir::new(&sd_path).unwrap().status(&id2).unwrap();
            let own_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap()
                != std::fs::read_link("/proc/self/ns/mnt").unwrap();
            let root_link = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
            std::fs::write(root_path.join("hooked"), format!("{pid}\n")).map_err(|e| e.to_string())?;
            *seen2.lock().unwrap() = Some((status, own_mnt, root_link));
            Ok(())
        }))),
        ..Default::default()
    };
    let mut c = Container::spawn_with(&sh("cat /hooked"), root.path(), StdioConfig::piped(), opts).unwrap();
    // Once spawned, the state is no longer "creating".
    assert_ne!(
        StateDir::new(states.path()).unwrap().status(&id).unwrap(),
        Status::Creating
    );
    let mut out = String::new();
    c.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
    assert_eq!(out, format!("{}\n", c.pid()));
    let (status, own_mnt, root_link) = seen.lock().unwrap().take().expect("the callback did not run");
    assert_eq!(status, Status::Creating);
    assert!(own_mnt, "the process should already be in its own mount namespace");
    assert_eq!(
        root_link,
        std::path::PathBuf::from("/"),
        "pivot_root should not have happened yet"
    );
}

/// A failing callback fails the spawn with its message and leaves nothing: no process, no state, no cgroup.
#[test]
fn before_pivot_failure_removes_the_container() {
    let root = rootfs();
    let states = tempfile::tempdir().unwrap();
    let id = format!("hook-fail-{}", std::process::id());
    let pid_seen = std::sync::Arc::new(std::sync::Mutex::new(0));
    let pid2 = pid_seen.clone();
    let opts = SpawnOptions {
        id: Some(id.clone()),
        state_dir: Some(states.path().to_owned()),
        before_pivot: Some(wharf_sandbox::BeforePivot(Box::new(move |pid| {
            *pid2.lock().unwrap() = pid;
            Err("createRuntime hook /bin/false failed".into())
        }))),
        ..Default::default()
    };
    let err = Container::spawn_with(&spec(&["true"]), root.path(), StdioConfig::piped(), opts).unwrap_err();
    assert!(
        matches!(&err, wharf_sandbox::Error::BeforePivot { id: i, reason } if *i == id && reason.contains("/bin/false")),
        "{err:?}"
    );
    let pid = *pid_seen.lock().unwrap();
    assert!(pid > 0);
    // The process was killed and reaped: its pid is gone (or reused by something that is not a child of ours).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        !stat.contains(&format!(" {} ", std::process::id())) || stat.is_empty(),
        "{stat}"
    );
    assert!(StateDir::new(states.path()).unwrap().list().is_empty());
    assert!(!states.path().join(&id).exists());
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids/wharf/{id}")).exists());
}

/// Each container gets a session keyring of its own, `_ses.ID` (as runc), unless asked to keep the caller's.
#[test]
fn container_joins_its_own_session_keyring() {
    let keys = |id: &str| {
        std::fs::read_to_string("/proc/keys")
            .expect("this test needs /proc/keys (CONFIG_KEYS)")
            .lines()
            .filter(|l| l.contains(&format!("_ses.{id}:")))
            .count()
    };
    let root = rootfs();
    for no_new_keyring in [false, true] {
        let id = format!("keyring-{}-{no_new_keyring}", std::process::id());
        let opts = SpawnOptions {
            id: Some(id.clone()),
            no_new_keyring,
            ..Default::default()
        };
        let mut c = Container::spawn_with(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped(), opts).unwrap();
        let want = if no_new_keyring { 0 } else { 1 };
        assert_eq!(keys(&id), want, "no_new_keyring={no_new_keyring}");
        // A process exec'd into the container joins the same keyring rather than making another.
        let mut p = c.exec(&process(&["true"]), StdioConfig::piped()).unwrap();
        p.wait().unwrap();
        assert_eq!(keys(&id), want);
        c.kill(libc::SIGKILL).unwrap();
        c.wait().unwrap();
    }
}

/// A detached exec'd process outlives its handle (a dropped handle kills one that was not waited for).
#[test]
fn detached_exec_outlives_its_handle() {
    let root = rootfs();
    let mut c = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let alive = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    let dropped = c.exec(&process(&["sleep", "100"]), StdioConfig::piped()).unwrap();
    let dropped_pid = dropped.pid();
    drop(dropped);
    assert!(!alive(dropped_pid), "a dropped handle should kill its process");
    let kept = c.exec(&process(&["sleep", "100"]), StdioConfig::piped()).unwrap();
    let pid = kept.pid();
    kept.detach();
    assert!(alive(pid), "the detached process was killed");
    assert!(c.processes().iter().any(|p| p.host_pid == pid));
    // It is still this process's child: reaping it is now the caller's business (the container's pid 1 cannot
    // finish exiting while a process of its namespace is an unreaped zombie).
    // SAFETY: plain kill/waitpid on our own child.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
        assert_eq!(libc::waitpid(pid, std::ptr::null_mut(), 0), pid);
    }
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

/// A created container waiting to be started holds none of its creator's fds (a lock, a socket): only its stdio
/// and what the sandbox handed it. Regression: a created container of a test harness kept the harness's build
/// lock (an inherited `flock` fd) for as long as it waited.
#[test]
fn created_container_holds_none_of_the_callers_fds() {
    let root = rootfs();
    let marker = tempfile::NamedTempFile::new().unwrap();
    let held = std::fs::File::open(marker.path()).unwrap();
    let opts = SpawnOptions {
        created_only: true,
        ..Default::default()
    };
    let mut c = Container::spawn_with(&spec(&["true"]), root.path(), StdioConfig::piped(), opts).unwrap();
    let links: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", c.pid()))
        .unwrap()
        .map(|e| std::fs::read_link(e.unwrap().path()).unwrap())
        .collect();
    assert!(!links.iter().any(|l| l == marker.path()), "{links:?}");
    assert!(links.len() <= 10, "more fds than the sandbox hands over: {links:?}");
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
    drop(held);
}

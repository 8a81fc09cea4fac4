//! The commands containerd's shim and CRI-O call (`state`, `start`, `kill`, `delete`, `ps`, `update`, `exec`,
//! `pause`, `resume`, `events`), in every state a container can be in, through Debian's `runc` and through
//! wharf's runtime (`examples/runtime`): the same outcome, and where runc refuses, wharf's error carries runc's
//! words — containerd decides what an error means by them ("container not running", "does not exist"), and
//! after a container exits it sends `kill --all ID 9`, which must succeed. Needs root, busybox-static and runc.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

mod support;

use support::runtime_env::{Env, Out};

/// What one call gave: its exit code, and the error message (runc's `msg="…"` without its command prefix).
#[derive(Debug)]
struct Outcome {
    code: i32,
    msg: String,
}

impl From<Out> for Outcome {
    fn from(out: Out) -> Outcome {
        let stderr = out.stderr.trim();
        // runc logs `time="…" level=error msg="…"`; wharf's runtime prints the message alone.
        let msg = match stderr.find("msg=\"") {
            Some(i) => stderr[i + 5..].trim_end_matches('"').to_owned(),
            None => stderr.to_owned(),
        };
        // Go's %q escapes quotes inside runc's quoted msg.
        let msg = msg.replace("\\\"", "\"");
        let msg = ["exec failed: ", "runc create failed: "]
            .iter()
            .fold(msg, |m, p| m.strip_prefix(p).map(str::to_owned).unwrap_or(m));
        Outcome { code: out.code(), msg }
    }
}

/// Waits (bounded) until runc reports `id` stopped.
fn wait_runc_stopped(env: &Env, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = env.runc(&["state", id]);
        assert!(out.status.success(), "runc state {id}: {}", out.stderr);
        let st: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        if st["status"] == "stopped" {
            return;
        }
        assert!(Instant::now() < deadline, "runc: {id} never stopped: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `steps` through runc and the runtime, in order, and compares each outcome (exit code, and runc's error
/// words) with runc's.
fn compare(env: &Env, id: &str, steps: &[&[&str]]) {
    compare_with(env, id, steps, true)
}

/// As [`compare`], the exit codes only (where runc's words come from Go's libraries, not from runc).
fn compare_codes(env: &Env, id: &str, steps: &[&[&str]]) {
    compare_with(env, id, steps, false)
}

fn compare_with(env: &Env, id: &str, steps: &[&[&str]], words: bool) {
    for step in steps {
        let args: Vec<&str> = step.iter().map(|a| if *a == "ID" { id } else { a }).collect();
        let reference = Outcome::from(env.runc(&args));
        let ours = Outcome::from(env.rt(&args));
        assert_eq!(
            reference.code, ours.code,
            "{args:?}: runc {reference:?}, wharf {ours:?}"
        );
        if words && reference.code != 0 && !reference.msg.is_empty() {
            assert!(
                ours.msg.contains(&reference.msg),
                "{args:?}: wharf's error {:?} lacks runc's words {:?}",
                ours.msg,
                reference.msg
            );
        }
    }
}

/// Creates `id` from `bundle` through runc and the runtime (`Env` deletes both when dropped).
fn create(env: &Env, id: &str, bundle: &str) {
    let args = ["create", "--bundle", bundle, id];
    let out = env.runc(&args);
    assert!(out.status.success(), "runc create {id}: {}", out.stderr);
    env.ok(&args);
}

#[test]
fn a_missing_container_is_refused_in_runcs_words() {
    let env = Env::new();
    compare(
        &env,
        "nosuch",
        &[
            &["state", "ID"],
            &["start", "ID"],
            &["kill", "ID", "9"],
            &["kill", "--all", "ID", "9"],
            &["delete", "ID"],
            &["delete", "--force", "ID"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["exec", "ID", "true"],
            &["pause", "ID"],
            &["resume", "ID"],
            &["events", "--stats", "ID"],
        ],
    );
}

#[test]
fn a_stopped_container_takes_kill_all_and_refuses_the_rest_in_runcs_words() {
    let env = Env::new();
    let b = env.bundle("b", &["true"], |_| {});
    let b = b.to_str().unwrap();
    create(&env, "gone", b);
    assert!(env.runc(&["start", "gone"]).status.success(), "runc start");
    env.ok(&["start", "gone"]);
    wait_runc_stopped(&env, "gone");
    env.wait_status("gone", "stopped");
    compare(
        &env,
        "gone",
        &[
            &["kill", "ID", "9"],
            &["kill", "--all", "ID", "9"],
            &["kill", "--all", "ID", "KILL"],
            &["start", "ID"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["exec", "ID", "true"],
            &["pause", "ID"],
            &["resume", "ID"],
            &["events", "--stats", "ID"],
            &["create", "--bundle", b, "ID"],
            &["delete", "ID"],
            &["state", "ID"],
        ],
    );
}

#[test]
fn created_running_and_paused_containers_answer_as_runc_does() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "100"], |_| {});
    create(&env, "live", b.to_str().unwrap());
    compare(
        &env,
        "live",
        &[
            // created
            &["resume", "ID"],
            &["pause", "ID"],
            &["start", "ID"],
            &["resume", "ID"],
            &["kill", "ID", "0"],
            &["start", "ID"],
            // running
            &["start", "ID"],
            &["resume", "ID"],
            &["kill", "ID", "0"],
            &["exec", "ID", "true"],
            &["ps", "ID"],
            &["update", "--memory", "100M", "ID"],
            &["delete", "ID"],
            &["pause", "ID"],
            // paused
            &["pause", "ID"],
            &["start", "ID"],
            &["exec", "ID", "true"],
            &["delete", "ID"],
            &["resume", "ID"],
            // running again
            &["kill", "ID", "KILL"],
        ],
    );
    wait_runc_stopped(&env, "live");
    env.wait_status("live", "stopped");
    assert!(env.runc(&["delete", "live"]).status.success(), "runc delete");
    env.ok(&["delete", "live"]);
}

#[test]
fn exec_failures_exit_255_in_runcs_words() {
    // containerd passes exec's code on; podman reads runc's words to tell "not found" (its 127) and "permission
    // denied" (126) from other failures (255).
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "100"], |_| {});
    std::fs::write(b.join("rootfs/noexec"), "#!/bin/sh\n").unwrap();
    create(&env, "execs", b.to_str().unwrap());
    compare(
        &env,
        "execs",
        &[
            &["start", "ID"],
            &["exec", "ID", "/nonexistent"],
            &["exec", "ID", "nosuchcmd"],
            &["exec", "ID", "/noexec"],
            &["exec", "ID", "/tmp"],
            &["exec", "--cwd", "/nonexist", "ID", "true"],
            &["exec", "ID", "sh", "-c", "exit 7"],
            &["exec", "ID", "sh", "-c", "exit 255"],
            &["exec", "nosuch", "true"],
            &["pause", "ID"],
            &["exec", "ID", "true"],
            &["resume", "ID"],
        ],
    );
    compare_codes(
        &env,
        "execs",
        &[
            &["exec", "--process", "/nonexistent.json", "ID"],
            &["exec", "ID"],
            &["exec", "--user", "nobody", "ID", "true"],
            &["kill", "ID", "KILL"],
        ],
    );
}

#[test]
fn create_of_a_program_that_cannot_start_fails_in_runcs_words() {
    let env = Env::new();
    let b = env.bundle("b", &["sleep", "100"], |_| {});
    std::fs::write(b.join("rootfs/noexec"), "#!/bin/sh\n").unwrap();
    let bs = b.to_str().unwrap();
    for program in ["/nonexistent", "nosuchcmd", "/noexec", "/tmp"] {
        env.bundle_json(&b, |v| v["process"]["args"] = serde_json::json!([program]));
        compare(
            &env,
            "cannotstart",
            &[&["create", "--bundle", bs, "ID"], &["state", "ID"]],
        );
    }
}

//! Container records under faults, through real processes of the example CLI: runs killed with
//! SIGKILL at moments spread over their whole life (issue 15: "killed runs leave nothing
//! listed"), and many CLI processes creating, listing and removing containers in one fresh
//! `--root` at once. A real `docker-registry` on 127.0.0.1 serves the image, so first runs pull
//! and unpack it. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod support;

use support::Registry;
use support::cli::Env;

/// The registry and an image pushed to it.
fn registry_with_image(repo: &str) -> (Registry, Env, String) {
    let reg = Registry::start();
    let seed = Env::new();
    let image = reg.image(repo);
    seed.busybox_image(&image, "records\n");
    seed.ok(&["push", &image]);
    (reg, seed, image)
}

/// A pseudo-random fraction in [0, 1) from the clock (printed, so a failure can be replayed).
fn jitter(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 1000) as f64 / 1000.0
}

/// Entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Cgroup directories of container `name` in any hierarchy.
fn cgroups_of(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in entries(Path::new("/sys/fs/cgroup"))
        .into_iter()
        .map(|h| Path::new("/sys/fs/cgroup").join(h))
        .chain([PathBuf::from("/sys/fs/cgroup")])
    {
        let d = base.join("wharf").join(name);
        if d.is_dir() {
            out.push(d);
        }
    }
    out
}

/// Every record directory is whole: a visible name has its `container.json`.
fn assert_no_half_records(env: &Env) {
    let dir = env.store().join(".wharf/containers");
    for name in entries(&dir) {
        if !name.starts_with('.') {
            assert!(
                dir.join(&name).join("container.json").is_file(),
                "record directory {name} has no container.json: {:?}",
                entries(&dir.join(&name))
            );
        }
    }
}

/// Nothing of any container is left: no record (not even a scratch directory), filesystem,
/// sandbox state, mount or cgroup.
fn assert_nothing_left(env: &Env, names: &[String]) {
    let wharf = env.store().join(".wharf");
    for sub in ["containers", "rootfs", "sandbox"] {
        assert_eq!(entries(&wharf.join(sub)), Vec::<String>::new(), "left in .wharf/{sub}");
    }
    assert_eq!(env.mounts_below_store(), Vec::<String>::new(), "mounts left");
    for name in names {
        assert_eq!(cgroups_of(name), Vec::<PathBuf>::new(), "cgroup of {name} left");
    }
}

/// Runs `args` to the end once and returns how long that took.
fn time_of(env: &Env, args: &[&str]) -> Duration {
    let start = Instant::now();
    env.ok(args);
    start.elapsed()
}

/// Starts `args` and SIGKILLs the CLI process after `delay` (or lets it finish first).
fn kill_after(env: &Env, args: &[&str], delay: Duration) {
    let mut child = env
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

/// Waits until `ps -a` lists nothing but `keep` (the next commands collect what killed runs left).
fn wait_until_listed_only(env: &Env, keep: &[String], why: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_no_half_records(env);
        let listed = env.listed();
        if listed.iter().all(|n| keep.contains(n)) {
            return listed;
        }
        assert!(Instant::now() < deadline, "{why}: still listed {listed:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fault: `run --rm`, `run -d` and the first run of an image (pull, unpack, mount, spawn) killed
/// with SIGKILL at moments spread over the whole run. Afterwards `ps -a` lists only containers
/// that `rm -f` removes, killed `--rm` containers go once they stop, nothing else stays (no
/// record directory, mount, sandbox state or cgroup), and the next run succeeds.
#[test]
fn runs_killed_at_any_moment_leave_nothing_that_cannot_be_removed() {
    let (_reg, _seed, image) = registry_with_image("records/killed:1");
    let env = Env::new();
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill-point seed {seed}");
    const POINTS: u32 = 8;
    let mut names: Vec<String> = Vec::new();

    // The first run of an image: pull, unpack into the layer cache, mount, spawn.
    let first = |name: &str| -> Vec<String> {
        ["run", "--rm", "--name", name, image.as_str(), "sh", "-c", "sleep 0.3"]
            .map(String::from)
            .to_vec()
    };
    let full = time_of(
        &env,
        &first("first-timing").iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for k in 0..POINTS {
        // A run killed before its pull ended left no image to remove.
        let _ = env.wharf(&["rmi", &image]);
        env.ok(&["prune"]);
        let name = format!("first-{k}");
        let delay = full.mul_f64((f64::from(k) + jitter(&mut seed)) / f64::from(POINTS));
        kill_after(
            &env,
            &first(&name).iter().map(String::as_str).collect::<Vec<_>>(),
            delay,
        );
        names.push(name);
    }
    wait_until_listed_only(&env, &[], "killed first runs with --rm");

    // run --rm with the image at hand.
    let full = time_of(&env, &["run", "--rm", &image, "sh", "-c", "sleep 0.3"]);
    for k in 0..POINTS {
        let name = format!("rm-{k}");
        let delay = full.mul_f64((f64::from(k) + jitter(&mut seed)) / f64::from(POINTS));
        kill_after(
            &env,
            &["run", "--rm", "--name", &name, &image, "sh", "-c", "sleep 0.3"],
            delay,
        );
        names.push(name);
    }
    wait_until_listed_only(&env, &[], "killed runs with --rm");

    // run -d: a container the run had made whole stays (as docker's would), and is removable.
    let full = time_of(&env, &["run", "-d", "--name", "d-timing", &image, "sleep", "0.3"]);
    env.ok(&["rm", "-f", "d-timing"]);
    let mut detached = Vec::new();
    for k in 0..POINTS {
        let name = format!("d-{k}");
        let delay = full.mul_f64((f64::from(k) + jitter(&mut seed)) / f64::from(POINTS));
        kill_after(&env, &["run", "-d", "--name", &name, &image, "sleep", "0.3"], delay);
        detached.push(name.clone());
        names.push(name);
    }
    for name in wait_until_listed_only(&env, &detached, "killed detached runs") {
        env.ok(&["rm", "-f", &name]);
    }
    assert_eq!(env.listed(), Vec::<String>::new());
    // The names are free again, and a run succeeds.
    let out = env.ok(&["run", "--rm", "--name", "d-0", &image, "echo", "after"]);
    assert_eq!(out, "after\n");
    assert_nothing_left(&env, &names);
}

/// Fault: many CLI processes creating, listing and removing containers in one `--root` that does
/// not exist yet: first runs that pull at once, several runs racing for one `--name` (exactly one
/// wins, the others are told the name is in use), `ps -a` while records come and go (never a
/// failure or a half record), and removals racing each other.
#[test]
fn concurrent_cli_processes_create_list_and_remove_containers_in_one_fresh_root() {
    let (_reg, _seed, image) = registry_with_image("records/concurrent:1");
    let env = Env::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let listers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut rounds = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let out = env.wharf(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
                        let err = String::from_utf8_lossy(&out.stderr);
                        assert!(out.status.success(), "ps -a failed: {err}");
                        for row in String::from_utf8_lossy(&out.stdout).lines() {
                            let status = row.split_whitespace().nth(1).unwrap_or_default();
                            assert!(["creating", "running", "exited"].contains(&status), "odd row {row:?}");
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();

        // First runs into the fresh root, and four runs racing for one name, all at once.
        let spawn = |args: Vec<String>| {
            env.command(&args.iter().map(String::as_str).collect::<Vec<_>>())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let firsts: Vec<_> = (0..4)
            .map(|i| {
                let name = format!("first-{i}");
                let args = ["run", "--rm", "--name", &name, &image, "echo", &name];
                spawn(args.map(String::from).to_vec())
            })
            .collect();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                spawn(
                    ["run", "-d", "--name", "same", &image, "sleep", "30"]
                        .map(String::from)
                        .to_vec(),
                )
            })
            .collect();
        for (i, c) in firsts.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "first run {i} failed: {err}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("first-{i}\n"));
        }
        let mut winners = 0;
        for c in racers {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                winners += 1;
            } else {
                assert_eq!(out.status.code(), Some(125), "{err}");
                assert!(err.contains("the container name \"same\" is already in use"), "{err}");
            }
        }
        assert_eq!(winners, 1, "exactly one run gets the name");
        assert_eq!(env.listed(), vec!["same".to_string()]);

        // Three removals of one container race: one removes it, the others find it gone.
        let removers: Vec<_> = (0..3)
            .map(|_| spawn(["rm", "-f", "same"].map(String::from).to_vec()))
            .collect();
        let outs: Vec<_> = removers.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        assert_eq!(
            outs.iter().filter(|o| o.status.success()).count(),
            1,
            "one rm removes it"
        );
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert!(String::from_utf8_lossy(&o.stderr).contains("No such container: same"));
        }

        // Containers made and removed side by side.
        std::thread::scope(|inner| {
            for i in 0..4 {
                let env = &env;
                let image = &image;
                inner.spawn(move || {
                    let name = format!("pair-{i}");
                    env.ok(&["run", "-d", "--name", &name, image, "sleep", "30"]);
                    env.ok(&["rm", "-f", &name]);
                });
            }
        });
        stop.store(true, Ordering::Relaxed);
        for l in listers {
            assert!(l.join().unwrap() > 0);
        }
    });
    let mut names: Vec<String> = (0..4).map(|i| format!("first-{i}")).collect();
    names.extend((0..4).map(|i| format!("pair-{i}")));
    names.push("same".into());
    assert_eq!(env.listed(), Vec::<String>::new());
    assert_nothing_left(&env, &names);
}

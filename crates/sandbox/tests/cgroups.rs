//! Resource limits through real cgroups (run as root).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{rootfs, sh, spec};
use wharf_sandbox::cgroup::{CgroupDriver, CgroupVersion};
use wharf_sandbox::oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, Spec};
use wharf_sandbox::{Container, ExitStatus, StdioConfig};

fn with_resources(mut s: Spec, r: LinuxResources) -> Spec {
    s.linux_mut().as_mut().unwrap().set_resources(Some(r));
    s
}

fn file(c: &Container, controller: &str, name: &str) -> String {
    let dir = c
        .cgroup()
        .dirs
        .iter()
        .find(|(n, _)| n == controller || n.is_empty())
        .map(|(_, d)| d.clone())
        .unwrap();
    std::fs::read_to_string(dir.join(name)).unwrap().trim().to_owned()
}

#[test]
fn detects_a_usable_hierarchy() {
    let d = CgroupDriver::detect().unwrap();
    // This project's machines: v1 controllers plus a controller-less cgroup2 at /sys/fs/cgroup/unified.
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        assert_eq!(d.version, CgroupVersion::V1);
    } else {
        assert_eq!(d.version, CgroupVersion::V2);
    }
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    let root = rootfs();
    let mut mem = LinuxMemory::default();
    mem.set_limit(Some(32 << 20));
    mem.set_swap(Some(32 << 20));
    let mut r = LinuxResources::default();
    r.set_memory(Some(mem));
    // Hold 256 MiB in the shell's memory.
    let s = with_resources(
        sh("a=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived ${#a}"),
        r,
    );
    let mut c = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap();
    let (out, _) = common::read_all(&mut c);
    let exit = c.wait().unwrap();
    assert!(!out.contains("survived"), "{out}");
    assert!(exit.oom_kills >= 1, "no OOM kill reported: {exit:?}");
    assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    let root = rootfs();
    let mut p = LinuxPids::default();
    p.set_limit(16);
    let mut r = LinuxResources::default();
    r.set_pids(Some(p));
    let s = with_resources(
        sh("i=0; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done; echo forked; sleep 1000"),
        r,
    );
    let mut c = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap();
    let mut err = c.take_stderr().unwrap();
    // Wait until the shell has reported a failed fork.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&buf).contains("can't fork") {
        let n = std::io::Read::read(&mut err, &mut chunk).unwrap();
        assert!(
            n > 0,
            "stderr closed without a fork failure: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let stats = c.stats();
    assert!(stats.pids_current <= 16, "{stats:?}");
    assert_eq!(file(&c, "pids", "pids.max"), "16");
    assert!(c.processes().len() <= 16);
    // The host is fine: it can still start processes.
    assert!(std::process::Command::new("true").status().unwrap().success());
    // The shell gives up after a failed fork, or is killed here: either way the whole cgroup goes.
    c.wait_or_kill(Duration::from_millis(100)).unwrap();
    assert!(!c.cgroup().exists());
}

#[test]
fn limits_are_written_and_updated_on_a_running_container() {
    let root = rootfs();
    let mut mem = LinuxMemory::default();
    mem.set_limit(Some(64 << 20));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(512));
    cpu.set_quota(Some(50_000));
    cpu.set_period(Some(100_000));
    cpu.set_cpus(Some("0".into()));
    let mut pids = LinuxPids::default();
    pids.set_limit(100);
    let mut r = LinuxResources::default();
    r.set_memory(Some(mem));
    r.set_cpu(Some(cpu));
    r.set_pids(Some(pids));
    let s = with_resources(spec(&["sleep", "100"]), r);
    let mut c = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap();
    match c.cgroup().version {
        CgroupVersion::V1 => {
            assert_eq!(file(&c, "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
            assert_eq!(file(&c, "cpu", "cpu.shares"), "512");
            assert_eq!(file(&c, "cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(file(&c, "cpuset", "cpuset.cpus"), "0");
        }
        CgroupVersion::V2 => {
            assert_eq!(file(&c, "", "memory.max"), (64u64 << 20).to_string());
            assert_eq!(file(&c, "", "cpu.max"), "50000 100000");
        }
    }
    assert_eq!(file(&c, "pids", "pids.max"), "100");

    // Like `echo 8000000 > memory.limit_in_bytes` on a running container.
    let mut mem = LinuxMemory::default();
    mem.set_limit(Some(8_000_000));
    let mut r = LinuxResources::default();
    r.set_memory(Some(mem));
    c.update(&r).unwrap();
    let stats = c.stats();
    // The kernel rounds to pages.
    assert_eq!(stats.memory_limit, Some(8_000_000 / 4096 * 4096), "{stats:?}");
    assert!(stats.memory_usage > 0);
    assert_eq!(stats.pids_current, 1);
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

#[test]
fn blkio_weight_is_refused_clearly_or_applied() {
    let root = rootfs();
    let mut b = LinuxBlockIo::default();
    b.set_weight(Some(300));
    let mut r = LinuxResources::default();
    r.set_block_io(Some(b));
    let s = with_resources(spec(&["true"]), r);
    match Container::spawn(&s, root.path(), StdioConfig::piped()) {
        Ok(mut c) => {
            assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
        }
        // Without a proportional IO scheduler the weight files do not exist: a clear error, not a silent skip.
        Err(e) => assert!(matches!(e, wharf_sandbox::Error::CgroupUnavailable { .. }), "{e:?}"),
    }
}

#[test]
fn cpu_usage_is_counted() {
    let root = rootfs();
    let mut c = Container::spawn(
        &sh("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100"),
        root.path(),
        StdioConfig::piped(),
    )
    .unwrap();
    // Poll until the busy loop has used some CPU.
    while c.stats().cpu_usage_ns == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

/// The v2 code path on this host's controller-less cgroup2 mount: create, attach, list, kill, delete work; a
/// limit whose controller is missing is a clear error.
#[test]
fn v2_hierarchy_create_attach_kill_delete() {
    use wharf_sandbox::cgroup::{Cgroup, CgroupDriver};
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .expect("this test needs a cgroup2 mount (hybrid hosts have one at /sys/fs/cgroup/unified)");
    let driver = CgroupDriver {
        version: CgroupVersion::V2,
        mounts: vec![(String::new(), mount.into())],
    };
    let rel = std::path::PathBuf::from(format!("wharf-v2-test/{}", std::process::id()));
    let cg = Cgroup::create(&driver, &rel, None).unwrap();
    assert!(cg.exists());
    let mut child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    cg.attach(child.id() as i32).unwrap();
    assert_eq!(cg.pids(), vec![child.id() as i32]);
    let mut mem = LinuxMemory::default();
    mem.set_limit(Some(1 << 20));
    let mut r = LinuxResources::default();
    r.set_memory(Some(mem));
    let available = std::fs::read_to_string(std::path::Path::new(mount).join("cgroup.controllers")).unwrap();
    if !available.split_whitespace().any(|c| c == "memory") {
        let e = cg.update(&r).unwrap_err();
        assert!(matches!(e, wharf_sandbox::Error::CgroupUnavailable { .. }), "{e:?}");
    }
    cg.kill_all(Duration::from_secs(5));
    assert!(child.wait().unwrap().signal().is_some());
    cg.delete().unwrap();
    assert!(!cg.exists());
    let _ = std::fs::remove_dir(std::path::Path::new(mount).join("wharf-v2-test"));
}

/// The cgroup v2 device filter (an eBPF program) on the host's cgroup2 mount: a process in the cgroup may use
/// /dev/zero and /dev/null but not a block device, and may mknod anything.
#[test]
fn v2_device_filter_denies_nodes_outside_the_default_set() {
    use std::io::{Read, Write};
    use wharf_sandbox::cgroup::{Cgroup, CgroupDriver};
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .expect("this test needs a cgroup2 mount (hybrid hosts have one at /sys/fs/cgroup/unified)");
    let driver = CgroupDriver {
        version: CgroupVersion::V2,
        mounts: vec![(String::new(), mount.into())],
    };
    let rel = std::path::PathBuf::from(format!("wharf-v2-dev-test/{}", std::process::id()));
    let cg = Cgroup::create(&driver, &rel, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "read go; head -c1 /dev/zero | wc -c; head -c1 /dev/loop0; echo loop=$?; mknod {0}/blk b 7 0 && echo mknod-ok; head -c1 {0}/blk; echo blk=$?",
        dir.path().display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cg.attach(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    cg.delete().unwrap();
    let _ = std::fs::remove_dir(std::path::Path::new(mount).join("wharf-v2-dev-test"));
    assert_eq!(out, "1\nloop=1\nmknod-ok\nblk=1\n", "{err}");
    assert_eq!(err.matches("Operation not permitted").count(), 2, "{err}");
}

/// Where the container's processes are, read from the host: the cgroup paths in `/proc/PID/cgroup`.
fn host_cgroups(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

/// A container and a process exec'd into it enter the container's cgroup by themselves (v1 `tasks`, v2
/// `CLONE_INTO_CGROUP`): on every hierarchy, before they run the program, and they see it as their cgroup
/// namespace's root.
#[test]
fn container_and_exec_enter_their_cgroup_on_v1_and_v2() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2 = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .expect("this test needs a cgroup2 mount (hybrid hosts have one at /sys/fs/cgroup/unified)");
    let drivers = [
        CgroupDriver::detect().unwrap(),
        CgroupDriver {
            version: CgroupVersion::V2,
            mounts: vec![(String::new(), v2.into())],
        },
    ];
    for driver in drivers {
        let root = rootfs();
        let id = format!("cg-enter-{}-{:?}", std::process::id(), driver.version);
        let opts = wharf_sandbox::SpawnOptions {
            id: Some(id.clone()),
            cgroup_driver: Some(driver.clone()),
            ..Default::default()
        };
        let mut c = Container::spawn_with(
            &sh("cat /proc/self/cgroup; exec sleep 100"),
            root.path(),
            StdioConfig::piped(),
            opts,
        )
        .unwrap();
        let mut out = c.take_stdout().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut out), &mut line).unwrap();
        // Inside its own cgroup namespace, the container is at the root of every hierarchy.
        assert!(line.ends_with(":/\n"), "{driver:?}: {line:?}");
        let mut p = wharf_sandbox::oci_spec::runtime::Process::default();
        p.set_args(Some(vec!["sleep".into(), "100".into()]));
        let mut e = c.exec(&p, StdioConfig::inherit()).unwrap();
        for pid in [c.pid(), e.pid()] {
            let host = host_cgroups(pid);
            for (controller, dir) in &c.cgroup().dirs {
                let mount = driver.mounts.iter().find(|(n, _)| n == controller).unwrap().1.clone();
                let rel = dir.strip_prefix(&mount).unwrap();
                let want = format!("/{}", rel.display());
                assert!(
                    host.lines().any(|l| l.ends_with(&format!(":{want}"))
                        && (controller.is_empty() || l.contains(controller.as_str()))),
                    "{driver:?}: pid {pid} is not in {want} ({controller}):\n{host}"
                );
            }
            assert!(c.cgroup().pids().contains(&pid), "{driver:?}: {pid} not listed");
        }
        e.kill(libc::SIGKILL).unwrap();
        e.wait().unwrap();
        c.kill(libc::SIGKILL).unwrap();
        c.wait().unwrap();
    }
}

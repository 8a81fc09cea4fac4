//! Resource limits through real cgroups (run as root).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{rootfs, sh, spec};
use wharf_sandbox::cgroup::{CgroupDriver, CgroupVersion};
use wharf_sandbox::oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxPids, LinuxResources, Spec,
};
use wharf_sandbox::{Container, ExitStatus, StdioConfig};

/// The host's cgroup2 mount point (hybrid hosts have one at /sys/fs/cgroup/unified).
fn cgroup2_mount() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .expect("this test needs a cgroup2 mount (hybrid hosts have one at /sys/fs/cgroup/unified)")
        .to_owned()
}

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
    let mount = cgroup2_mount();
    let mount = mount.as_str();
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
    let mount = cgroup2_mount();
    let mount = mount.as_str();
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
    let v2 = cgroup2_mount();
    let v2 = v2.as_str();
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

/// The host's cgroup2 mount, which must offer the hugetlb controller (on this project's hybrid hosts hugetlb is not
/// mounted as a v1 hierarchy, so the kernel gives it to cgroup2).
fn v2_mount_with_hugetlb() -> std::path::PathBuf {
    let mount = cgroup2_mount();
    let mount = mount.as_str();
    let offered = std::fs::read_to_string(std::path::Path::new(mount).join("cgroup.controllers")).unwrap();
    assert!(
        offered.split_whitespace().any(|c| c == "hugetlb"),
        "this test needs the hugetlb controller on the cgroup2 mount {mount}; its cgroup.controllers: {offered:?}"
    );
    assert!(
        std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists(),
        "this test needs 2 MB huge pages (/sys/kernel/mm/hugepages/hugepages-2048kB)"
    );
    mount.into()
}

fn hugepage_limits(limits: &[(&str, i64)]) -> LinuxResources {
    let mut r = LinuxResources::default();
    r.set_hugepage_limits(Some(
        limits
            .iter()
            .map(|(size, limit)| {
                let mut l = LinuxHugepageLimit::default();
                l.set_page_size(size.to_string());
                l.set_limit(*limit);
                l
            })
            .collect(),
    ));
    r
}

fn read_trimmed(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Huge page limits on cgroup v2: the fault and reservation limits are written for each page size, updated on a
/// live cgroup, and a page size the kernel does not offer or a malformed one is refused before anything is written.
#[test]
fn v2_hugepage_limits_are_written_updated_and_checked() {
    use wharf_sandbox::cgroup::Cgroup;
    let mount = v2_mount_with_hugetlb();
    let driver = CgroupDriver {
        version: CgroupVersion::V2,
        mounts: vec![(String::new(), mount.clone())],
    };
    let parent = format!("wharf-v2-hugetlb-test-{}", std::process::id());
    let rel = std::path::PathBuf::from(format!("{parent}/a"));
    let cg = Cgroup::create(&driver, &rel, Some(&hugepage_limits(&[("2MB", 4 << 20)]))).unwrap();
    let dir = mount.join(&rel);
    assert_eq!(read_trimmed(&dir.join("hugetlb.2MB.max")), (4u64 << 20).to_string());
    // Linux 5.7+ has reservation limits; runc writes them too.
    if dir.join("hugetlb.2MB.rsvd.max").exists() {
        assert_eq!(
            read_trimmed(&dir.join("hugetlb.2MB.rsvd.max")),
            (4u64 << 20).to_string()
        );
    }

    // A running container's limits change (runc update); -1 means unlimited.
    cg.update(&hugepage_limits(&[("2MB", 0)])).unwrap();
    assert_eq!(read_trimmed(&dir.join("hugetlb.2MB.max")), "0");
    cg.update(&hugepage_limits(&[("2MB", -1)])).unwrap();
    assert_eq!(read_trimmed(&dir.join("hugetlb.2MB.max")), "max");
    cg.update(&hugepage_limits(&[("2MB", 2 << 20)])).unwrap();

    // A size this kernel does not offer: a clear error naming it, and the good entry before it is not written.
    let e = cg.update(&hugepage_limits(&[("2MB", 0), ("3MB", 0)])).unwrap_err();
    assert!(
        matches!(&e, wharf_sandbox::Error::CgroupUnavailable { controller, reason }
            if controller == "hugetlb" && reason.contains("3MB") && reason.contains("2MB")),
        "{e:?}"
    );
    assert_eq!(read_trimmed(&dir.join("hugetlb.2MB.max")), (2u64 << 20).to_string());
    // Not a page size at all (and not a way to write another cgroup file).
    for bad in ["../memory", "2M", "MB", "2 MB", "2MB.rsvd"] {
        let e = cg.update(&hugepage_limits(&[(bad, 0)])).unwrap_err();
        assert!(
            matches!(&e, wharf_sandbox::Error::InvalidSpec { field, reason }
                if field == "linux.resources.hugepageLimits[0].pageSize" && reason.contains(bad)),
            "{bad}: {e:?}"
        );
    }
    cg.delete().unwrap();

    // At create, a bad size leaves no cgroup behind.
    let rel_b = std::path::PathBuf::from(format!("{parent}/b"));
    let e = Cgroup::create(&driver, &rel_b, Some(&hugepage_limits(&[("3MB", 0)]))).unwrap_err();
    assert!(
        matches!(&e, wharf_sandbox::Error::CgroupUnavailable { controller, .. } if controller == "hugetlb"),
        "{e:?}"
    );
    assert!(!mount.join(&rel_b).exists());
    std::fs::remove_dir(mount.join(&parent)).unwrap();
}

/// Reserves 2 MB huge pages on the host for a test and puts the old count back on drop.
struct HugePagePool {
    old: u64,
}

impl HugePagePool {
    const FILE: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

    fn reserve(n: u64) -> HugePagePool {
        let old: u64 = read_trimmed(std::path::Path::new(Self::FILE)).parse().unwrap();
        if old < n {
            std::fs::write(Self::FILE, n.to_string()).unwrap();
        }
        let got: u64 = read_trimmed(std::path::Path::new(Self::FILE)).parse().unwrap();
        let pool = HugePagePool { old };
        assert!(
            got >= n,
            "could not reserve {n} 2 MB huge pages ({} says {got}): the host's memory is too fragmented",
            Self::FILE
        );
        pool
    }
}

impl Drop for HugePagePool {
    fn drop(&mut self) {
        let now: u64 = read_trimmed(std::path::Path::new(Self::FILE)).parse().unwrap_or(0);
        if now != self.old {
            let _ = std::fs::write(Self::FILE, self.old.to_string());
        }
    }
}

/// A container on cgroup v2 gets its `hugepageLimits`: with 0 for 2 MB pages it cannot allocate one (fallocate on a
/// hugetlbfs mounted in the container fails with ENOSPC), with 4 MB it can. The host's huge page pool is grown to 4
/// pages for the test and put back after.
#[test]
fn container_cannot_exceed_its_hugepage_limit_on_v2() {
    let mount = v2_mount_with_hugetlb();
    let _pool = HugePagePool::reserve(4);
    let driver = CgroupDriver {
        version: CgroupVersion::V2,
        mounts: vec![(String::new(), mount)],
    };
    let mut outcomes = Vec::new();
    for limit in [0i64, 4 << 20] {
        let root = rootfs();
        std::os::unix::fs::symlink("busybox", root.path().join("bin/fallocate")).unwrap();
        std::fs::create_dir(root.path().join("hugepages")).unwrap();
        let mut s = with_resources(
            sh("fallocate -l 2097152 /hugepages/f; echo rc=$?; exec sleep 100"),
            hugepage_limits(&[("2MB", limit), ("1GB", 0)]),
        );
        let mut mounts = s.mounts().clone().unwrap();
        let mut m = wharf_sandbox::oci_spec::runtime::Mount::default();
        m.set_destination("/hugepages".into());
        m.set_typ(Some("hugetlbfs".into()));
        m.set_source(Some("hugetlbfs".into()));
        m.set_options(Some(vec!["pagesize=2M".into(), "nosuid".into(), "nodev".into()]));
        mounts.push(m);
        s.set_mounts(Some(mounts));
        let opts = wharf_sandbox::SpawnOptions {
            id: Some(format!("hugetlb-{}-{limit}", std::process::id())),
            cgroup_driver: Some(driver.clone()),
            ..Default::default()
        };
        let mut c = Container::spawn_with(&s, root.path(), StdioConfig::piped(), opts).unwrap();
        let mut err = c.take_stderr().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(c.take_stdout().unwrap()), &mut line).unwrap();
        assert_eq!(file(&c, "", "hugetlb.2MB.max"), limit.to_string());
        assert_eq!(file(&c, "", "hugetlb.1GB.max"), "0");
        // While the container lives, the page it got is charged to its cgroup.
        let charged = file(&c, "", "hugetlb.2MB.current");
        c.kill(libc::SIGKILL).unwrap();
        c.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
        outcomes.push((limit, line.trim().to_owned(), stderr, charged));
    }
    let [
        (_, denied, denied_err, denied_charge),
        (_, allowed, allowed_err, allowed_charge),
    ] = &outcomes[..]
    else {
        unreachable!()
    };
    assert_eq!(denied, "rc=1", "limit 0: {denied_err}");
    assert!(denied_err.contains("No space left on device"), "{denied_err}");
    assert_eq!(denied_charge, "0");
    assert_eq!(allowed, "rc=0", "limit 4 MB: {allowed_err}");
    assert_eq!(allowed_charge, "2097152");
}

/// With the default driver on this host (cgroup v1, no v1 hugetlb hierarchy), hugepage limits cannot be applied:
/// the container is refused with an error naming hugetlb, and no cgroup is left behind.
#[test]
fn hugepage_limits_are_refused_without_a_hugetlb_hierarchy() {
    let driver = CgroupDriver::detect().unwrap();
    assert!(
        driver.version == CgroupVersion::V1 && !driver.mounts.iter().any(|(c, _)| c == "hugetlb"),
        "this test expects the project's hybrid host: cgroup v1 controllers without a v1 hugetlb hierarchy; found \
         {driver:?}"
    );
    let root = rootfs();
    let id = format!("hugetlb-refused-{}", std::process::id());
    let opts = wharf_sandbox::SpawnOptions {
        id: Some(id.clone()),
        ..Default::default()
    };
    let s = with_resources(spec(&["true"]), hugepage_limits(&[("2MB", 0)]));
    let e = Container::spawn_with(&s, root.path(), StdioConfig::piped(), opts).unwrap_err();
    assert!(
        matches!(&e, wharf_sandbox::Error::CgroupUnavailable { controller, .. } if controller == "hugetlb"),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot set hugetlb limit"), "{e}");
    for (_, m) in &driver.mounts {
        assert!(!m.join("wharf").join(&id).exists(), "cgroup left in {}", m.display());
    }
}

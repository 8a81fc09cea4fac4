//! Real containers (run as root): namespaces, filesystem, process attributes, spawn errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::{rootfs, run, sh, spec};
use wharf_sandbox::oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Mount, User};
use wharf_sandbox::{Container, Error, ExitStatus, StdioConfig};

#[test]
fn sees_itself_as_pid_1_and_only_its_own_processes() {
    let root = rootfs();
    let (exit, out, err) = run(
        &sh("echo $$; for p in /proc/[0-9]*; do echo ${p#/proc/}; done"),
        root.path(),
    );
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "1\n1\n");
}

#[test]
fn hostname_domainname_and_oom_score_adj_are_the_specs() {
    let root = rootfs();
    let mut s = sh("hostname; cat /proc/sys/kernel/domainname /proc/self/oom_score_adj");
    s.set_domainname(Some("example.test".into()));
    s.process_mut().as_mut().unwrap().set_oom_score_adj(Some(500));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "wharf-test\nexample.test\n500\n");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "wharf-test"
    );
}

#[test]
fn namespaced_sysctls_are_written_and_host_ones_refused() {
    let root = rootfs();
    let mut s = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    let sysctl = [
        ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
        ("kernel.shmmni".to_owned(), "1234".to_owned()),
    ];
    s.linux_mut()
        .as_mut()
        .unwrap()
        .set_sysctl(Some(sysctl.into_iter().collect()));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "1\n1234\n");
    let mut s = spec(&["true"]);
    s.linux_mut().as_mut().unwrap().set_sysctl(Some(
        [("kernel.panic".to_owned(), "1".to_owned())].into_iter().collect(),
    ));
    let e = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidSpec { field, .. } if field.contains("kernel.panic")),
        "{e:?}"
    );
}

#[test]
fn unsupported_fields_are_refused() {
    let root = rootfs();
    let mut s = spec(&["true"]);
    let linux = s.linux_mut().as_mut().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    let mut time = LinuxNamespace::default();
    time.set_typ(LinuxNamespaceType::Time);
    nss.push(time);
    linux.set_namespaces(Some(nss));
    let e = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::InvalidSpec { .. }), "{e:?}");
    let mut s = spec(&["true"]);
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_selinux_label(Some("system_u:system_r:container_t".into()));
    let e = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidSpec { field, .. } if field == "process.selinuxLabel"),
        "{e:?}"
    );
}

#[test]
fn devices_cgroup_denies_nodes_outside_the_default_set() {
    let root = rootfs();
    let (exit, out, err) = run(
        &sh("mknod /dev/loopx b 7 0 && head -c1 /dev/loopx; echo rc=$?; head -c1 /dev/zero | wc -c"),
        root.path(),
    );
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out, "rc=1\n1\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn cgroup_mount_is_read_only() {
    let root = rootfs();
    let mut s = sh(
        "mkdir /sys/fs/cgroup/x 2>/dev/null || echo RO; cut -d' ' -f5,6 /proc/self/mountinfo | grep '^/sys/fs/cgroup '",
    );
    let mut mounts = s.mounts().clone().unwrap();
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/sys/fs/cgroup"));
    m.set_typ(Some("cgroup".into()));
    m.set_source(Some(PathBuf::from("cgroup")));
    m.set_options(Some(vec![
        "nosuid".into(),
        "noexec".into(),
        "nodev".into(),
        "relatime".into(),
        "ro".into(),
    ]));
    mounts.push(m);
    s.set_mounts(Some(mounts));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("RO"));
    assert!(
        lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{out}"
    );
}

#[test]
fn exit_codes_come_back_exactly() {
    let root = rootfs();
    for code in [0, 1, 42, 255] {
        let (exit, _, _) = run(&sh(&format!("exit {code}")), root.path());
        assert_eq!(exit.status, ExitStatus::Exited(code));
    }
}

#[test]
fn signals_come_back_exactly() {
    let root = rootfs();
    let mut c = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap().status, ExitStatus::Signaled(libc::SIGKILL));
    // A non-init process killed by a signal: the shell reports 128+signal for it.
    let (exit, out, _) = run(&sh("sleep 100 & kill -USR1 $!; wait $!; echo $?"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0));
    assert_eq!(out.trim(), (128 + libc::SIGUSR1).to_string());
}

/// The test harness, like every Rust program, ignores SIGPIPE; the container's program must not inherit that (a
/// writer into a closed pipe dies of SIGPIPE, as under docker and runc), while other ignored signals stay ignored
/// across exec (nohup).
#[test]
fn sigpipe_is_default_in_the_container_and_other_ignored_signals_stay_ignored() {
    let root = rootfs();
    // SAFETY: the test process ignores SIGHUP for the spawn (and restores it); no handler is involved.
    let old = unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let result = run(
        &sh("grep SigIgn /proc/self/status; yes | head -1 >/dev/null"),
        root.path(),
    );
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGHUP, old) };
    let (exit, out, err) = result;
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    let mask = u64::from_str_radix(out.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored in the container: {out}"
    );
    assert_ne!(
        mask & (1 << (libc::SIGHUP - 1)),
        0,
        "SIGHUP was not kept ignored: {out}"
    );
    assert!(
        err.is_empty(),
        "yes saw a write error instead of dying of SIGPIPE: {err}"
    );
}

#[test]
fn mounts_are_the_specs() {
    let root = rootfs();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("hello"), "from the host\n").unwrap();
    let mut s = sh("cat /data/hello; cut -d' ' -f5 /proc/self/mountinfo; echo x > /data/new && echo WROTE");
    let mut mounts = s.mounts().clone().unwrap();
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/data"));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(vol.path().to_owned()));
    m.set_options(Some(vec!["rbind".into(), "ro".into()]));
    mounts.push(m);
    s.set_mounts(Some(mounts.clone()));
    let (exit, out, err) = run(&s, root.path());
    assert!(out.starts_with("from the host\n"), "{out} {err}");
    assert!(!out.contains("WROTE"), "a read-only bind mount was writable");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(exit.status, ExitStatus::Exited(1));
    let points: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(points[0], "/", "{points:?}");
    let linux = s.linux().clone().unwrap();
    let allowed: Vec<String> = mounts
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .chain(linux.masked_paths().clone().unwrap())
        .chain(linux.readonly_paths().clone().unwrap())
        .chain(["/".to_owned()])
        .collect();
    for p in &points {
        assert!(allowed.iter().any(|a| a == p), "unexpected mount {p} in {points:?}");
    }
    for m in &mounts {
        let d = m.destination().to_string_lossy();
        assert!(points.contains(&d.as_ref()), "spec mount {d} missing from {points:?}");
    }
}

#[test]
fn proc_sys_is_read_only_and_kcore_is_masked() {
    let root = rootfs();
    let (exit, out, err) = run(
        &sh("echo 1 > /proc/sys/kernel/domainname || echo DENIED; \
             for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && stat -c '%n %t:%T %s' $f; done; \
             ls /sys/firmware | wc -l"),
        root.path(),
    );
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // Masked files are /dev/null inside (this machine's kernel has no /proc/kcore: then it is absent inside too).
    let mut expect = vec!["DENIED".to_owned()];
    for f in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if Path::new(f).exists() {
            expect.push(format!("{f} 1:3 0"));
        }
    }
    assert!(
        expect.len() >= 3,
        "the host has none of the masked /proc files to check"
    );
    expect.push("0".into());
    assert_eq!(out.lines().collect::<Vec<_>>(), expect, "{err}");
}

#[test]
fn sys_is_read_only() {
    let root = rootfs();
    let (exit, out, _) = run(&sh("touch /sys/x 2>/dev/null || echo RO"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0));
    assert_eq!(out.trim(), "RO");
}

#[test]
fn default_devices_exist() {
    let root = rootfs();
    let (exit, out, err) = run(
        &sh(
            "for d in null zero full random urandom tty; do stat -c '%n %t:%T' /dev/$d; done; head -c 3 /dev/zero | wc -c; readlink /dev/ptmx; ls -d /dev/pts /dev/shm /dev/mqueue",
        ),
        root.path(),
    );
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    let expect = "/dev/null 1:3\n/dev/zero 1:5\n/dev/full 1:7\n/dev/random 1:8\n/dev/urandom 1:9\n/dev/tty 5:0\n3\npts/ptmx\n/dev/mqueue\n/dev/pts\n/dev/shm\n";
    assert_eq!(out, expect);
}

#[test]
fn env_cwd_user_groups_umask_and_rlimits_are_applied() {
    let root = rootfs();
    std::fs::create_dir(root.path().join("work")).unwrap();
    let mut s = sh("pwd; echo $FOO; id -u; id -g; id -G; umask; ulimit -n");
    let p = s.process_mut().as_mut().unwrap();
    p.set_env(Some(vec!["PATH=/bin".into(), "FOO=bar baz".into()]));
    p.set_cwd(PathBuf::from("/work"));
    let mut u = User::default();
    u.set_uid(1000);
    u.set_gid(1001);
    u.set_additional_gids(Some(vec![10, 20]));
    u.set_umask(Some(0o027));
    p.set_user(u);
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out, "/work\nbar baz\n1000\n1001\n1001 10 20\n0027\n1024\n");
}

#[test]
fn read_only_root() {
    let root = rootfs();
    let mut s = sh("touch /x 2>/dev/null || echo RO; touch /tmp/x 2>/dev/null || echo TMP-RO");
    s.root_mut().as_mut().unwrap().set_readonly(Some(true));
    let (exit, out, _) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0));
    assert_eq!(out, "RO\nTMP-RO\n");
    assert!(!root.path().join("x").exists());
}

#[test]
fn exec_not_found_is_a_typed_error() {
    let root = rootfs();
    let e = Container::spawn(&spec(&["no-such-program"]), root.path(), StdioConfig::piped()).unwrap_err();
    assert!(
        matches!(&e, Error::ExecNotFound { program } if program == "no-such-program"),
        "{e:?}"
    );
    let e = Container::spawn(&spec(&["/bin/nope"]), root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::ExecNotFound { .. }), "{e:?}");
}

#[test]
fn exec_permission_denied_is_a_typed_error() {
    let root = rootfs();
    std::fs::write(root.path().join("bin/notexec"), "#!/bin/sh\n").unwrap();
    let e = Container::spawn(&spec(&["/bin/notexec"]), root.path(), StdioConfig::piped()).unwrap_err();
    assert!(
        matches!(&e, Error::Exec { source, .. } if source.raw_os_error() == Some(libc::EACCES)),
        "{e:?}"
    );
}

#[test]
fn a_missing_cwd_is_made_beneath_the_root_and_a_bad_one_is_a_typed_error() {
    let root = rootfs();
    let with_cwd = |cwd: &str| {
        let mut s = sh("pwd -P");
        s.process_mut().as_mut().unwrap().set_cwd(PathBuf::from(cwd));
        s
    };
    // As runc: a working directory the root lacks is made (0755), beneath the root.
    let (exit, out, err) = run(&with_cwd("/does/not/exist"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "/does/not/exist\n");
    use std::os::unix::fs::PermissionsExt;
    let made = std::fs::metadata(root.path().join("does/not/exist")).unwrap();
    assert_eq!(made.permissions().mode() & 0o7777, 0o755);
    // A symlink on the way resolves inside the root, a relative one climbing above it too.
    std::os::unix::fs::symlink("../../../..", root.path().join("up")).unwrap();
    let (exit, out, err) = run(&with_cwd("/up/climbed"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "/climbed\n");
    assert!(root.path().join("climbed").is_dir());
    // An absolute symlink to a host directory, dangling inside the root, is refused as runc refuses it: nothing
    // is made through it on the host.
    let host = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), root.path().join("out")).unwrap();
    let e = Container::spawn(&with_cwd("/out/x"), root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::Cwd { .. }), "{e:?}");
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
    // A component that is a file.
    std::fs::write(root.path().join("file"), "").unwrap();
    let e = Container::spawn(&with_cwd("/file/x"), root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::Cwd { .. }), "{e:?}");
}

#[test]
fn cwd_through_a_leaked_fd_is_refused_cve_2024_21626() {
    let root = rootfs();
    // A host directory fd without close-on-exec, as a careless embedder might leak it.
    let host_dir = std::fs::File::open("/").unwrap();
    let fd = host_dir.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on our own fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let mut s = spec(&["true"]);
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_cwd(PathBuf::from(format!("/proc/self/fd/{fd}")));
    let e = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::Cwd { .. }), "{e:?}");
}

#[test]
fn no_fd_above_2_is_open_unless_passed() {
    let root = rootfs();
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    // SAFETY: clearing FD_CLOEXEC on our own fd: the container must still not get it.
    unsafe { libc::fcntl(leaked.as_raw_fd(), libc::F_SETFD, 0) };
    let (exit, out, err) = run(&sh("ls /proc/1/fd; true"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"]);

    let passed = tempfile::tempfile().unwrap();
    let mut stdio = StdioConfig::piped();
    stdio.extra_fds.push(passed.into());
    let mut c = Container::spawn(&sh("ls /proc/1/fd; echo via-3 >&3; true"), root.path(), stdio).unwrap();
    let (out, _) = common::read_all(&mut c);
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2", "3"]);
}

fn ns_of(pid: i32, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
}

#[test]
fn two_containers_share_a_net_namespace_only_when_asked() {
    let root = rootfs();
    let mut a = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let a_net = ns_of(a.pid(), "net");
    assert_ne!(a_net, std::fs::read_link("/proc/self/ns/net").unwrap());

    let (_, separate, _) = run(&spec(&["readlink", "/proc/self/ns/net"]), root.path());
    assert_ne!(separate.trim(), a_net.to_string_lossy());

    let mut s = spec(&["readlink", "/proc/self/ns/net"]);
    let linux = s.linux_mut().as_mut().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss.iter_mut() {
        if ns.typ() == LinuxNamespaceType::Network {
            ns.set_path(Some(PathBuf::from(format!("/proc/{}/ns/net", a.pid()))));
        }
    }
    linux.set_namespaces(Some(nss));
    let (exit, shared, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(shared.trim(), a_net.to_string_lossy());
    a.kill(libc::SIGKILL).unwrap();
    a.wait().unwrap();
}

#[test]
fn user_namespace_maps_root() {
    let root = rootfs();
    let mut s = sh("id -u; cat /proc/self/uid_map; hostname");
    common::with_user_namespace(&mut s, 200000, 65536);
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    assert_eq!(lines[2], "wharf-test");
}

#[test]
fn unmapped_user_is_a_typed_error() {
    let root = rootfs();
    let mut s = spec(&["true"]);
    let mut u = User::default();
    u.set_uid(5000);
    s.process_mut().as_mut().unwrap().set_user(u);
    common::with_user_namespace(&mut s, 300000, 1000);
    let e = Container::spawn(&s, root.path(), StdioConfig::piped()).unwrap_err();
    assert!(matches!(&e, Error::User { uid: 5000, .. }), "{e:?}");
}

#[test]
fn nothing_remains_after_exit() {
    let root = rootfs();
    let mut c = Container::spawn(&spec(&["true"]), root.path(), StdioConfig::piped()).unwrap();
    let cg = c.cgroup().clone();
    assert!(cg.exists());
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0));
    assert!(!cg.exists(), "cgroup directories remain: {:?}", cg.dirs);
    let root_s = root.path().canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(root_s.to_str().unwrap())),
        "a mount of the rootfs remains on the host"
    );
}

#[test]
fn missing_rootfs_is_a_typed_error() {
    let e = Container::spawn(&spec(&["true"]), Path::new("/nonexistent/rootfs"), StdioConfig::piped()).unwrap_err();
    assert!(matches!(e, Error::Rootfs { .. }), "{e:?}");
}

#[test]
fn no_pivot_falls_back_to_move_and_chroot() {
    let root = rootfs();
    std::fs::write(root.path().join("etc/marker"), "inside\n").unwrap();
    let opts = wharf_sandbox::SpawnOptions {
        no_pivot: true,
        ..Default::default()
    };
    let (exit, out, err) = common::run_with(&sh("cat /etc/marker; hostname; echo $$"), root.path(), opts);
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out, "inside\nwharf-test\n1\n");
}

#[test]
fn user_namespaced_container_joins_another_containers_net_namespace() {
    let root = rootfs();
    let mut a = Container::spawn(&spec(&["sleep", "100"]), root.path(), StdioConfig::piped()).unwrap();
    let a_net = ns_of(a.pid(), "net");
    let mut s = spec(&["readlink", "/proc/self/ns/net"]);
    let linux = s.linux_mut().as_mut().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss.iter_mut() {
        if ns.typ() == LinuxNamespaceType::Network {
            ns.set_path(Some(PathBuf::from(format!("/proc/{}/ns/net", a.pid()))));
        }
    }
    linux.set_namespaces(Some(nss));
    common::with_user_namespace(&mut s, 400000, 65536);
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out.trim(), a_net.to_string_lossy());
    a.kill(libc::SIGKILL).unwrap();
    a.wait().unwrap();
}

#[test]
fn loopback_is_up_in_a_new_network_namespace_only_when_asked() {
    let root = rootfs();
    // /sys/class/net/lo/flags: IFF_LOOPBACK (0x8), plus IFF_UP (0x1) when up.
    let probe = "cat /sys/class/net/lo/flags; nc -l -p 4321 & sleep 0.2; \
                 echo hello | nc -w 1 127.0.0.1 4321; wait";
    let opts = wharf_sandbox::SpawnOptions {
        loopback_up: true,
        ..Default::default()
    };
    let (exit, out, err) = common::run_with(&sh(probe), root.path(), opts);
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "0x9\nhello\n", "stderr: {err}");
    // The default is runc's: lo stays down.
    let (exit, out, err) = run(&sh("cat /sys/class/net/lo/flags"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "0x8\n");
}

#[test]
fn a_root_mount_is_made_inside_the_container_only_and_a_refused_one_is_named() {
    let lower = rootfs();
    let dir = tempfile::tempdir().unwrap();
    let (upper, work, mnt) = (
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("rootfs"),
    );
    for d in [&upper, &work, &mnt] {
        std::fs::create_dir(d).unwrap();
    }
    let overlay = |fstype: &str| wharf_sandbox::RootMount {
        fstype: fstype.into(),
        params: vec![
            wharf_sandbox::MountParam::String("lowerdir+".into(), lower.path().into()),
            wharf_sandbox::MountParam::String("upperdir".into(), upper.clone().into()),
            wharf_sandbox::MountParam::String("workdir".into(), work.clone().into()),
        ],
    };
    let opts = |m| wharf_sandbox::SpawnOptions {
        root_mount: Some(m),
        ..Default::default()
    };
    // The container runs on the overlay, its write lands in the upper dir, and the host sees nothing mounted.
    let mut writes = sh("grep ' / / ' /proc/self/mountinfo | grep -c ' - overlay '; echo new > /written");
    writes.root_mut().as_mut().unwrap().set_readonly(Some(false));
    let (exit, out, err) = common::run_with(&writes, &mnt, opts(overlay("overlay")));
    assert_eq!(exit.status, ExitStatus::Exited(0), "stderr: {err}");
    assert_eq!(out, "1\n");
    assert_eq!(std::fs::read_to_string(upper.join("written")).unwrap(), "new\n");
    assert_eq!(
        std::fs::read_dir(&mnt).unwrap().count(),
        0,
        "something is mounted on the host"
    );
    // A filesystem the kernel refuses is an error of its own, the caller's cue to fall back.
    let refused = Container::spawn_with(
        &sh("true"),
        &mnt,
        StdioConfig::inherit(),
        opts(overlay("wharf-no-such-fs")),
    );
    match refused {
        Err(Error::RootMount { fstype, source }) => {
            assert_eq!(fstype, "wharf-no-such-fs");
            assert_eq!(source.raw_os_error(), Some(libc::ENODEV), "{source}");
        }
        other => panic!("expected Error::RootMount, got {other:?}"),
    }
    // Without a mount namespace of its own there is nowhere to make it but the host's: refused before cloning.
    let mut host_mounts = sh("true");
    let linux = host_mounts.linux_mut().as_mut().unwrap();
    let nss: Vec<LinuxNamespace> = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Mount)
        .collect();
    linux.set_namespaces(Some(nss));
    let err = Container::spawn_with(&host_mounts, &mnt, StdioConfig::inherit(), opts(overlay("overlay"))).unwrap_err();
    assert!(err.to_string().contains("mount namespace"), "{err}");
}

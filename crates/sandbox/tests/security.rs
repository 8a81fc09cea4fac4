//! Capabilities, seccomp and no_new_privs in real containers (run as root).
#![allow(clippy::unwrap_used)]

mod common;

use common::{rootfs, run, run_with, sh};
use wharf_sandbox::oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};
use wharf_sandbox::{DefaultSeccomp, ExitStatus, SpawnOptions};

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn docker_default_caps_and_seccomp_mode_2() {
    let root = rootfs();
    let (exit, out, err) = run(&sh("cat /proc/self/status"), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(status_field(&out, "CapEff:"), "00000000a80425fb");
    assert_eq!(status_field(&out, "CapPrm:"), "00000000a80425fb");
    assert_eq!(status_field(&out, "CapBnd:"), "00000000a80425fb");
    assert_eq!(status_field(&out, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000000");
    assert_eq!(status_field(&out, "Seccomp:"), "2");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");
}

#[test]
fn configured_capability_sets_are_exact() {
    let root = rootfs();
    let mut s = sh("cat /proc/self/status");
    let mut caps = LinuxCapabilities::default();
    let kill: std::collections::HashSet<Capability> = [Capability::Kill, Capability::NetBindService].into();
    let only_kill: std::collections::HashSet<Capability> = [Capability::Kill].into();
    caps.set_bounding(Some(kill.clone()));
    caps.set_permitted(Some(kill.clone()));
    caps.set_effective(Some(only_kill.clone()));
    caps.set_inheritable(Some(kill.clone()));
    caps.set_ambient(Some(only_kill));
    let p = s.process_mut().as_mut().unwrap();
    p.set_capabilities(Some(caps));
    p.set_no_new_privileges(Some(false));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    // As root, execve makes permitted and effective the whole bounding set (the kernel treats root's files as
    // fully capable), exactly as with runc.
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000000420");
    assert_eq!(status_field(&out, "CapInh:"), "0000000000000420");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000020");
    assert_eq!(status_field(&out, "CapPrm:"), "0000000000000420");
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000420");
    assert_eq!(status_field(&out, "NoNewPrivs:"), "0");
    assert_eq!(status_field(&out, "Seccomp:"), "2");

    // As an unprivileged user, only the ambient set survives execve into permitted and effective.
    let mut u = wharf_sandbox::oci_spec::runtime::User::default();
    u.set_uid(1000);
    u.set_gid(1000);
    s.process_mut().as_mut().unwrap().set_user(u);
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(status_field(&out, "CapBnd:"), "0000000000000420");
    assert_eq!(status_field(&out, "CapInh:"), "0000000000000420");
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000020");
    assert_eq!(status_field(&out, "CapPrm:"), "0000000000000020");
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000020");
}

#[test]
fn blocked_syscalls_fail_with_eperm() {
    let root = rootfs();
    // unshare(CLONE_NEWUSER) needs no capability at all: only seccomp stops it. mount: no CAP_SYS_ADMIN, and the
    // profile blocks it too.
    let script = "unshare -U true; echo unshare=$?; mount -t tmpfs none /tmp; echo mount=$?";
    let (exit, out, err) = run(&sh(script), root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out, "unshare=1\nmount=1\n", "{err}");
    assert!(err.contains("unshare(0x10000000): Operation not permitted"), "{err}");
    // busybox's wording for EPERM from mount(2).
    assert!(err.contains("mount: permission denied"), "{err}");

    // The same without seccomp: unshare -U works, which shows the filter made the difference.
    let mut s = sh("unshare -U true; echo unshare=$?");
    s.process_mut().as_mut().unwrap().set_no_new_privileges(Some(true));
    let opts = SpawnOptions {
        default_seccomp: DefaultSeccomp::Unconfined,
        ..Default::default()
    };
    let (exit, out, err) = run_with(&s, root.path(), opts);
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out.trim(), "unshare=0", "{err}");
}

#[test]
fn spec_provided_profile_is_loaded() {
    let root = rootfs();
    let mut s = sh("mkdir /tmp/d; echo mkdir=$?; echo still-running");
    let mut deny = LinuxSyscall::default();
    deny.set_names(vec!["mkdir".into(), "mkdirat".into()]);
    deny.set_action(LinuxSeccompAction::ScmpActErrno);
    deny.set_errno_ret(Some(libc::EACCES as u32));
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
    profile.set_syscalls(Some(vec![deny]));
    s.linux_mut().as_mut().unwrap().set_seccomp(Some(profile));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    assert_eq!(out, "mkdir=1\nstill-running\n");
    assert!(err.contains("Permission denied"), "{err}");
}

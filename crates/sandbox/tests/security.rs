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

/// A minimal static x86-64 ELF that makes one system call `nr(a0, a1, 0, 0)` and exits with the negated return
/// value (so the exit code is the errno, or 0 on success). Lets the tests see exactly what the kernel answers.
fn syscall_probe(nr: u32, a0: u64, a1: u64) -> Vec<u8> {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the syscall probe is an x86-64 program"
    );
    let mut code = vec![0xB8];
    code.extend_from_slice(&nr.to_le_bytes()); // mov eax, nr
    code.extend_from_slice(&[0x48, 0xBF]);
    code.extend_from_slice(&a0.to_le_bytes()); // mov rdi, a0
    code.extend_from_slice(&[0x48, 0xBE]);
    code.extend_from_slice(&a1.to_le_bytes()); // mov rsi, a1
    code.extend_from_slice(&[0x31, 0xD2, 0x45, 0x31, 0xD2, 0x0F, 0x05]); // xor edx,edx; xor r10d,r10d; syscall
    code.extend_from_slice(&[0xF7, 0xD8, 0x89, 0xC7]); // neg eax; mov edi, eax
    code.extend_from_slice(&[0xB8, 60, 0, 0, 0, 0x0F, 0x05]); // mov eax, 60 (exit); syscall
    let base: u64 = 0x400000;
    let total = (64 + 56 + code.len()) as u64;
    let mut elf = vec![0x7F, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3Eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(base + 64 + 56).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0, base, base, total, total, 0x1000] {
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(&code);
    elf
}

fn probe(root: &std::path::Path, nr: u32, a0: u64, a1: u64, seccomp: DefaultSeccomp) -> ExitStatus {
    use std::os::unix::fs::PermissionsExt;
    let name = format!("probe-{nr}-{a0:x}");
    let path = root.join("bin").join(&name);
    std::fs::write(&path, syscall_probe(nr, a0, a1)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = SpawnOptions {
        default_seccomp: seccomp,
        ..Default::default()
    };
    let (exit, _, err) = run_with(&common::spec(&[&format!("/bin/{name}")]), root, opts);
    assert!(err.is_empty(), "{err}");
    exit.status
}

#[test]
fn docker_profile_answers_enosys_for_clone3_and_eperm_for_blocked_calls() {
    let root = rootfs();
    let r = root.path();
    let docker = DefaultSeccomp::Docker;
    let none = DefaultSeccomp::Unconfined;
    // clone3(NULL, 0): the kernel says EINVAL; Docker's profile says ENOSYS so that libcs fall back to clone.
    assert_eq!(
        probe(r, libc::SYS_clone3 as u32, 0, 0, none),
        ExitStatus::Exited(libc::EINVAL)
    );
    assert_eq!(
        probe(r, libc::SYS_clone3 as u32, 0, 0, docker),
        ExitStatus::Exited(libc::ENOSYS)
    );
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING): blocked.
    assert_eq!(
        probe(r, libc::SYS_keyctl as u32, 0, (-3i64) as u64, docker),
        ExitStatus::Exited(libc::EPERM)
    );
    // unshare(CLONE_NEWUSER) needs no capability: only the profile refuses it.
    assert_eq!(
        probe(r, libc::SYS_unshare as u32, libc::CLONE_NEWUSER as u64, 0, none),
        ExitStatus::Exited(0)
    );
    assert_eq!(
        probe(r, libc::SYS_unshare as u32, libc::CLONE_NEWUSER as u64, 0, docker),
        ExitStatus::Exited(libc::EPERM)
    );
    // clone with a namespace flag is refused by the argument filter, plain getpid is allowed.
    assert_eq!(
        probe(r, libc::SYS_clone as u32, libc::CLONE_NEWUSER as u64, 0, docker),
        ExitStatus::Exited(libc::EPERM)
    );
    assert_eq!(probe(r, libc::SYS_getppid as u32, 0, 0, docker), ExitStatus::Exited(0));
}

#[test]
fn ambient_capabilities_outside_the_inheritable_set_are_left_out_as_runc_does() {
    // The capability sets `runc spec` writes: ambient caps that are not inheritable.
    let root = rootfs();
    let mut s = sh("cat /proc/self/status");
    let three: std::collections::HashSet<Capability> =
        [Capability::AuditWrite, Capability::Kill, Capability::NetBindService].into();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(three.clone()));
    caps.set_permitted(Some(three.clone()));
    caps.set_effective(Some(three.clone()));
    caps.set_inheritable(Some([Capability::Kill].into()));
    caps.set_ambient(Some(three));
    s.process_mut().as_mut().unwrap().set_capabilities(Some(caps));
    let (exit, out, err) = run(&s, root.path());
    assert_eq!(exit.status, ExitStatus::Exited(0), "{err}");
    // Only KILL (bit 5) is both inheritable and permitted, so only it is ambient.
    assert_eq!(status_field(&out, "CapAmb:"), "0000000000000020");
}

/// A spec whose profile allows everything but `mkdir`, which fails with `errno`.
fn mkdir_denied_with(errno: i32) -> wharf_sandbox::oci_spec::runtime::Spec {
    let mut s = sh("mkdir /tmp/d; echo mkdir=$?");
    let mut deny = LinuxSyscall::default();
    deny.set_names(vec!["mkdir".into(), "mkdirat".into()]);
    deny.set_action(LinuxSeccompAction::ScmpActErrno);
    deny.set_errno_ret(Some(errno as u32));
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
    profile.set_syscalls(Some(vec![deny]));
    s.linux_mut().as_mut().unwrap().set_seccomp(Some(profile));
    s
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

/// Compiled programs are stored in the cache directory and what is stored there is what a later spawn loads: an
/// entry that holds another profile's program is obeyed (so the directory must be trusted), a damaged one is
/// compiled again and rewritten, and a directory or entry someone else could have written is refused.
#[test]
fn seccomp_programs_are_cached_on_disk_and_only_trusted_entries_are_used() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = rootfs();
    let base = tempfile::tempdir().unwrap();
    let opts = |dir: &std::path::Path| SpawnOptions {
        seccomp_cache: Some(dir.to_owned()),
        ..Default::default()
    };
    // A fresh directory is made 0700 and gets one entry.
    let a = base.path().join("a/cache");
    let (exit, out, err) = run_with(&mkdir_denied_with(libc::EACCES), root.path(), opts(&a));
    assert_eq!(
        (exit.status, out.as_str()),
        (ExitStatus::Exited(0), "mkdir=1\n"),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(std::fs::metadata(&a).unwrap().mode() & 0o777, 0o700);
    let [eacces] = entries(&a).try_into().unwrap();
    let c = base.path().join("c");
    let (_, _, err) = run_with(&mkdir_denied_with(libc::EPERM), root.path(), opts(&c));
    assert!(err.contains("Operation not permitted"), "{err}");
    let [eperm] = entries(&c).try_into().unwrap();

    // Under the EACCES profile's name, the EPERM program: a spawn with the EACCES profile loads it from disk.
    let b = base.path().join("b");
    std::fs::create_dir(&b).unwrap();
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(&eperm, b.join(eacces.file_name().unwrap())).unwrap();
    let (_, _, err) = run_with(&mkdir_denied_with(libc::EACCES), root.path(), opts(&b));
    assert!(
        err.contains("Operation not permitted"),
        "the stored program was not used: {err}"
    );

    // A truncated entry is compiled again and rewritten whole.
    let d = base.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let whole = std::fs::read(&eacces).unwrap();
    let entry = d.join(eacces.file_name().unwrap());
    std::fs::write(&entry, &whole[..whole.len() - 8]).unwrap();
    let (_, _, err) = run_with(&mkdir_denied_with(libc::EACCES), root.path(), opts(&d));
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(std::fs::read(&entry).unwrap(), whole);

    // A directory others can write, and an entry owned by someone else, are refused with a clear error.
    let e = base.path().join("e");
    std::fs::create_dir(&e).unwrap();
    std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = wharf_sandbox::Container::spawn_with(
        &mkdir_denied_with(libc::EACCES),
        root.path(),
        wharf_sandbox::StdioConfig::piped(),
        opts(&e),
    )
    .unwrap_err();
    assert!(
        matches!(&err, wharf_sandbox::Error::Seccomp { reason } if reason.contains("writable by group or others")),
        "{err:?}"
    );
    let f = base.path().join("f");
    std::fs::create_dir(&f).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o700)).unwrap();
    let planted = f.join(eacces.file_name().unwrap());
    std::fs::copy(&eacces, &planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let err = wharf_sandbox::Container::spawn_with(
        &mkdir_denied_with(libc::EACCES),
        root.path(),
        wharf_sandbox::StdioConfig::piped(),
        opts(&f),
    )
    .unwrap_err();
    assert!(
        matches!(&err, wharf_sandbox::Error::Seccomp { reason } if reason.contains("owned by uid 65534")),
        "{err:?}"
    );
}

/// An AppArmor profile is applied at exec where AppArmor is enabled (the container runs confined by it) and is a
/// clear error where it is not, as for runc: never a container silently run without it.
#[test]
fn apparmor_profile_is_applied_or_refused_clearly() {
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'));
    let root = rootfs();
    let mut s = sh("cat /proc/self/attr/current");
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_apparmor_profile(Some("unconfined".into()));
    let r =
        wharf_sandbox::Container::spawn_with(&s, root.path(), wharf_sandbox::StdioConfig::piped(), Default::default());
    if enabled {
        let mut c = r.unwrap();
        let (out, err) = common::read_all(&mut c);
        assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(0), "{err}");
        assert_eq!(out.trim(), "unconfined");
    } else {
        let e = r.unwrap_err();
        assert!(
            matches!(&e, wharf_sandbox::Error::InvalidSpec { field, reason }
                if field == "process.apparmorProfile" && reason.contains("AppArmor is not enabled")),
            "{e:?}"
        );
    }
}

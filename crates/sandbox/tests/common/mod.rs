//! Shared fixtures: a busybox rootfs and a Docker-like spec.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use wharf_sandbox::oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, Spec};
use wharf_sandbox::{Container, Exit, SpawnOptions, StdioConfig, caps};

pub const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "ls", "hostname", "sleep", "true", "false", "id", "grep", "head", "tail", "env", "pwd",
    "kill", "wc", "touch", "mkdir", "stat", "readlink", "test", "dd", "tr", "unshare", "mount", "seq", "ps", "umask",
    "tty", "ulimit", "cut", "nc",
];

/// A root filesystem with Debian's static busybox and applet symlinks.
pub fn rootfs() -> tempfile::TempDir {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "these tests need Debian's busybox-static at /bin/busybox (apt-get install busybox-static)"
    );
    let dir = tempfile::Builder::new()
        .prefix("wharf-sandbox-rootfs")
        .tempdir()
        .unwrap();
    let r = dir.path();
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "data"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    dir
}

/// runc's default spec (namespaces, /proc, /dev, devpts, shm, mqueue, masked and readonly paths) with Docker's
/// default capabilities, a hostname, a read-only /sys and `args`.
pub fn spec(args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    let p = spec.process_mut().as_mut().unwrap();
    p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    p.set_capabilities(Some(caps::docker_default()));
    spec.set_hostname(Some("wharf-test".into()));
    let mut mounts = spec.mounts().clone().unwrap();
    if !mounts.iter().any(|m| m.destination() == Path::new("/sys")) {
        let mut sys = Mount::default();
        sys.set_destination(PathBuf::from("/sys"));
        sys.set_typ(Some("sysfs".into()));
        sys.set_source(Some(PathBuf::from("sysfs")));
        sys.set_options(Some(vec![
            "nosuid".into(),
            "noexec".into(),
            "nodev".into(),
            "ro".into(),
        ]));
        mounts.push(sys);
    }
    spec.set_mounts(Some(mounts));
    spec
}

/// Run to completion with piped output; returns (exit, stdout, stderr).
pub fn run(spec: &Spec, rootfs: &Path) -> (Exit, String, String) {
    run_with(spec, rootfs, SpawnOptions::default())
}

pub fn run_with(spec: &Spec, rootfs: &Path, opts: SpawnOptions) -> (Exit, String, String) {
    let mut c = Container::spawn_with(spec, rootfs, StdioConfig::piped(), opts).unwrap();
    let (out, err) = read_all(&mut c);
    let exit = c.wait().unwrap();
    (exit, out, err)
}

pub fn read_all(c: &mut Container) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    let mut so = c.take_stdout().unwrap();
    let mut se = c.take_stderr().unwrap();
    let t = std::thread::spawn(move || {
        let mut e = String::new();
        se.read_to_string(&mut e).unwrap();
        e
    });
    so.read_to_string(&mut out).unwrap();
    err.push_str(&t.join().unwrap());
    (out, err)
}

pub fn sh(script: &str) -> Spec {
    spec(&["sh", "-c", script])
}

/// Give `spec` a new user namespace mapping container ids 0.. onto host ids `host_id..host_id+size`.
pub fn with_user_namespace(spec: &mut Spec, host_id: u32, size: u32) {
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    let mut user = LinuxNamespace::default();
    user.set_typ(LinuxNamespaceType::User);
    nss.push(user);
    linux.set_namespaces(Some(nss));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host_id)
        .size(size)
        .build()
        .unwrap();
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
}

//! wharf-sandbox benchmark: from `Container::spawn` to the reaped exit of `/bin/true` in full
//! isolation — pid, net, ipc, uts, mount and cgroup namespaces, a cgroup with memory and pids
//! limits, Docker's default seccomp profile and capabilities, masked and read-only paths — from an
//! already-assembled busybox root filesystem. `benches/peers.sh` compares the same work with
//! `runc run` as whole processes.
//!
//! `cargo bench --bench sandbox` as root, with Debian's busybox-static installed; otherwise it
//! panics saying what is missing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use divan::Bencher;
use wharf::sandbox::oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, Spec,
};
use wharf::sandbox::{Container, DefaultSeccomp, ExitStatus, SpawnOptions, Stdio, StdioConfig, caps};

fn main() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "benches/sandbox.rs must run as root: it creates namespaces and cgroups"
    );
    divan::main();
}

/// A root filesystem holding Debian's static busybox as /bin/true (and /bin/sh).
static ROOTFS: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "benches/sandbox.rs needs Debian's busybox-static at /bin/busybox (apt-get install busybox-static)"
    );
    let dir = tempfile::Builder::new().prefix("wharf-bench-rootfs").tempdir().unwrap();
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.path().join("bin/busybox")).unwrap();
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", dir.path().join("bin").join(applet)).unwrap();
    }
    dir
});

/// runc's default spec (its namespaces plus cgroup, /proc, /dev, devpts, shm, mqueue, masked and
/// read-only paths, read-only root) with Docker's capabilities, a read-only /sys and limits.
fn spec() -> Spec {
    let mut spec = Spec::default();
    let p = spec.process_mut().as_mut().unwrap();
    p.set_args(Some(vec!["/bin/true".into()]));
    p.set_terminal(Some(false));
    p.set_capabilities(Some(caps::docker_default()));
    spec.set_hostname(Some("bench".into()));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if !mounts.iter().any(|m| m.destination() == Path::new("/sys")) {
        let mut sys = Mount::default();
        sys.set_destination(PathBuf::from("/sys"));
        sys.set_typ(Some("sysfs".into()));
        sys.set_source(Some(PathBuf::from("sysfs")));
        sys.set_options(Some(["nosuid", "noexec", "nodev", "ro"].map(String::from).to_vec()));
        mounts.push(sys);
    }
    spec.set_mounts(Some(mounts));
    let default_linux = spec
        .linux()
        .clone()
        .unwrap_or_else(|| LinuxBuilder::default().build().unwrap());
    let mut namespaces = default_linux.namespaces().clone().unwrap_or_default();
    let cgroup_ns = wharf::sandbox::oci_spec::runtime::LinuxNamespaceType::Cgroup;
    if !namespaces.iter().any(|n| n.typ() == cgroup_ns) {
        let mut ns = wharf::sandbox::oci_spec::runtime::LinuxNamespace::default();
        ns.set_typ(cgroup_ns);
        namespaces.push(ns);
    }
    let mut linux = default_linux;
    linux.set_namespaces(Some(namespaces));
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(512i64 << 20).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(1024i64).build().unwrap())
            .build()
            .unwrap(),
    ));
    spec.set_linux(Some(linux));
    spec
}

fn null_stdio() -> StdioConfig {
    StdioConfig {
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Null,
        extra_fds: Vec::new(),
    }
}

fn spawn_to_exit(bencher: Bencher<'_, '_>, seccomp: DefaultSeccomp) {
    let spec = spec();
    let rootfs = ROOTFS.path();
    bencher.bench_local(|| {
        let opts = SpawnOptions {
            default_seccomp: seccomp,
            ..SpawnOptions::default()
        };
        let mut c = Container::spawn_with(&spec, rootfs, null_stdio(), opts)
            .unwrap_or_else(|e| panic!("spawn failed (namespaces, cgroups and seccomp must be available): {e}"));
        let exit = c.wait().unwrap();
        assert_eq!(exit.status, ExitStatus::Exited(0));
    });
}

/// Everything: namespaces, cgroup with limits, Docker's seccomp profile, capabilities.
#[divan::bench(sample_count = 100, sample_size = 1)]
fn full_isolation(bencher: Bencher<'_, '_>) {
    spawn_to_exit(bencher, DefaultSeccomp::Docker);
}

/// The same without a seccomp filter, to show what compiling and loading the profile costs.
#[divan::bench(sample_count = 100, sample_size = 1)]
fn without_seccomp(bencher: Bencher<'_, '_>) {
    spawn_to_exit(bencher, DefaultSeccomp::Unconfined);
}

//! Seccomp: Docker's default profile resolved into OCI `linux.seccomp` form, and compilation of any OCI profile
//! into a BPF program with libseccomp.
//!
//! The BPF program is compiled in the parent, before the container's child is forked: libseccomp allocates, and
//! nothing may allocate between fork and exec. The child only makes the `seccomp(2)` system call with the
//! already-built program.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, Capabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Docker's (moby's) default seccomp profile, as shipped by moby, carried by this crate.
pub const DOCKER_DEFAULT_PROFILE_JSON: &str = include_str!("../data/docker-seccomp-default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// The architecture the profile is resolved for: its seccomp name and Go's name (which moby's `arches` use).
fn native_arch() -> Option<(Arch, &'static str)> {
    Some(match std::env::consts::ARCH {
        "x86_64" => (Arch::ScmpArchX86_64, "amd64"),
        "x86" => (Arch::ScmpArchX86, "386"),
        "aarch64" => (Arch::ScmpArchAarch64, "arm64"),
        "arm" => (Arch::ScmpArchArm, "arm"),
        "riscv64" => (Arch::ScmpArchRiscv64, "riscv64"),
        "s390x" => (Arch::ScmpArchS390x, "s390x"),
        "powerpc64" => (Arch::ScmpArchPpc64le, "ppc64le"),
        "loongarch64" => (Arch::ScmpArchLoongarch64, "loong64"),
        _ => return None,
    })
}

/// A kernel version `major.minor`, parsed from `uname -r` style text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32);

impl KernelVersion {
    /// Parse `"6.18.44-foo"` or `"4.8"` into `(6, 18)` / `(4, 8)`.
    pub fn parse(s: &str) -> Option<KernelVersion> {
        let mut parts = s.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(KernelVersion(major, minor))
    }

    /// The running kernel's version.
    pub fn running() -> Option<KernelVersion> {
        let uts = rustix_uname_release()?;
        KernelVersion::parse(&uts)
    }
}

fn rustix_uname_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Resolve Docker's default profile for a container whose bounding capability set is `caps`, on this machine's
/// architecture and `kernel`, into OCI `linux.seccomp` form, as moby does when it builds a container's spec.
///
/// # Errors
/// [`Error::Seccomp`] if the shipped profile cannot be parsed or the architecture is unknown to it.
pub fn docker_default(caps: &Capabilities, kernel: KernelVersion) -> Result<LinuxSeccomp> {
    let profile: DockerProfile = serde_json::from_str(DOCKER_DEFAULT_PROFILE_JSON).map_err(|e| Error::Seccomp {
        reason: format!("shipped Docker profile does not parse: {e}"),
    })?;
    let (arch, go_arch) = native_arch().ok_or_else(|| Error::Seccomp {
        reason: format!("unsupported architecture {}", std::env::consts::ARCH),
    })?;
    let cap_names: HashSet<String> = caps
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();

    let mut arches = vec![arch];
    if let Some(m) = profile.arch_map.iter().find(|m| m.architecture == arch) {
        arches.extend(m.sub_architectures.iter().flatten().copied());
    }

    let mut syscalls = Vec::new();
    for call in profile.syscalls {
        if let Some(inc) = &call.includes {
            if let Some(need) = &inc.caps {
                if !need.iter().all(|c| cap_names.contains(c)) {
                    continue;
                }
            }
            if let Some(a) = &inc.arches {
                if !a.is_empty() && !a.iter().any(|x| x == go_arch) {
                    continue;
                }
            }
            if let Some(min) = inc.min_kernel.as_deref().and_then(KernelVersion::parse) {
                if kernel < min {
                    continue;
                }
            }
        }
        if let Some(exc) = &call.excludes {
            if exc.caps.iter().flatten().any(|c| cap_names.contains(c)) {
                continue;
            }
            if exc.arches.iter().flatten().any(|x| x == go_arch) {
                continue;
            }
        }
        let mut s = LinuxSyscall::default();
        s.set_names(call.names);
        s.set_action(call.action);
        s.set_errno_ret(call.errno_ret);
        s.set_args(call.args);
        syscalls.push(s);
    }

    let mut out = LinuxSeccomp::default();
    out.set_default_action(profile.default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures(Some(arches));
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

/// A compiled seccomp filter, ready to be loaded by the child with one system call.
#[derive(Clone)]
pub struct SeccompProgram {
    pub(crate) filter: Vec<libc::sock_filter>,
    pub(crate) flags: libc::c_uint,
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.filter.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl SeccompProgram {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }
    /// Whether the program is empty (it never is once compiled).
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: Option<u32>) -> Result<ScmpAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.or(default_errno).unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.or(default_errno).unwrap_or(0) as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp {
                reason: "SCMP_ACT_NOTIFY (seccomp user notification) is not supported".into(),
            });
        }
    })
}

fn compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

fn scmp(reason: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| Error::Seccomp {
        reason: format!("{reason}: {e}"),
    }
}

/// BPF instructions from their in-memory form (8 bytes each, native endian), as libseccomp exports them.
pub(crate) fn filter_from_bytes(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Compile an OCI seccomp profile into a BPF program with libseccomp.
///
/// Syscall names that libseccomp does not know on this architecture are skipped (as runc does), so one profile can
/// name syscalls of newer kernels. Rules whose action equals the default action are redundant and skipped.
///
/// # Errors
/// [`Error::Seccomp`] for an unsupported action (`SCMP_ACT_NOTIFY`), an unknown architecture, or a libseccomp
/// failure.
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompProgram> {
    let default_errno = profile.default_errno_ret();
    let default = action(profile.default_action(), None, default_errno)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(scmp("create filter"))?;
    for arch in profile.architectures().iter().flatten() {
        let a = ScmpArch::from_str(&arch.to_string()).map_err(scmp("architecture"))?;
        if !ctx.is_arch_present(a).map_err(scmp("architecture"))? {
            ctx.add_arch(a).map_err(scmp("add architecture"))?;
        }
    }
    for call in profile.syscalls().iter().flatten() {
        let act = action(call.action(), call.errno_ret(), default_errno)?;
        if act == default {
            continue;
        }
        let cmps: Vec<ScmpArgCompare> = call.args().iter().flatten().map(compare).collect();
        for name in call.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else { continue };
            ctx.add_rule_conditional(act, nr, &cmps).map_err(|e| Error::Seccomp {
                reason: format!("rule for {name}: {e}"),
            })?;
        }
    }
    // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"wharf-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Os {
            what: "memfd_create for seccomp export",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(scmp("export BPF"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(Error::os("read exported seccomp BPF"))?;
    let filter = filter_from_bytes(&bytes);
    if filter.is_empty() {
        return Err(Error::Seccomp {
            reason: "libseccomp exported an empty program".into(),
        });
    }
    let mut flags = 0;
    for f in profile.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0, // the child is single-threaded
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
        } as libc::c_uint;
    }
    Ok(SeccompProgram { filter, flags })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::caps;

    fn names(p: &LinuxSeccomp) -> Vec<(String, LinuxSeccompAction, Option<u32>)> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().map(move |n| (n.clone(), s.action(), s.errno_ret())))
            .collect()
    }

    #[test]
    fn default_caps_block_clone3_with_enosys_and_omit_admin_calls() {
        let set: Capabilities = caps::DOCKER_DEFAULT.iter().copied().collect();
        let p = docker_default(&set, KernelVersion(6, 18)).unwrap();
        let n = names(&p);
        assert!(n.contains(&("clone3".into(), LinuxSeccompAction::ScmpActErrno, Some(38))));
        assert!(
            !n.iter()
                .any(|(s, _, _)| s == "mount" || s == "unshare" || s == "keyctl")
        );
        assert!(n.iter().any(|(s, _, _)| s == "read"));
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.architectures().as_ref().unwrap()[0], native_arch().unwrap().0);
    }

    #[test]
    fn sys_admin_unlocks_mount_and_clone3() {
        let mut set: Capabilities = caps::DOCKER_DEFAULT.iter().copied().collect();
        set.insert(oci_spec::runtime::Capability::SysAdmin);
        let n = names(&docker_default(&set, KernelVersion(6, 18)).unwrap());
        assert!(n.contains(&("mount".into(), LinuxSeccompAction::ScmpActAllow, None)));
        assert!(n.contains(&("clone3".into(), LinuxSeccompAction::ScmpActAllow, None)));
    }

    #[test]
    fn min_kernel_excludes_ptrace_on_old_kernels() {
        let set: Capabilities = caps::DOCKER_DEFAULT.iter().copied().collect();
        let old = names(&docker_default(&set, KernelVersion(4, 4)).unwrap());
        let new = names(&docker_default(&set, KernelVersion(4, 8)).unwrap());
        assert!(!old.iter().any(|(s, _, _)| s == "ptrace"));
        assert!(new.iter().any(|(s, _, _)| s == "ptrace"));
    }

    #[test]
    fn compiles_docker_default() {
        let set: Capabilities = caps::DOCKER_DEFAULT.iter().copied().collect();
        let p = compile(&docker_default(&set, KernelVersion(6, 18)).unwrap()).unwrap();
        assert!(p.len() > 100);
    }

    #[test]
    fn notify_is_refused() {
        let mut p = LinuxSeccomp::default();
        p.set_default_action(LinuxSeccompAction::ScmpActNotify);
        assert!(matches!(compile(&p), Err(Error::Seccomp { .. })));
    }

    #[test]
    fn kernel_version_parse() {
        assert_eq!(KernelVersion::parse("6.18.44-fc-v595"), Some(KernelVersion(6, 18)));
        assert_eq!(KernelVersion::parse("4.8"), Some(KernelVersion(4, 8)));
        assert_eq!(KernelVersion::parse("x"), None);
    }
}

//! Turning an OCI runtime spec into the parts of a child's plan: every allocation happens here, before the clone.
//! The process part is here ([`ProcPlan`]), the filesystem part in `fs.rs`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use oci_spec::runtime::{PosixRlimitType, Process, Spec};

use crate::caps::{self, CapMasks};
use crate::cgroup::CgroupVersion;
use crate::cgroup::limits::refuse;
use crate::error::{Error, Result};
use crate::plan::InPath;

mod fs;

pub use fs::mount_options;
pub(crate) use fs::{fs_plan, root_mount_op};

pub(crate) fn cstring(field: &str, s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref()).map_err(|_| Error::spec(field, "contains a NUL byte"))
}

/// A container path (`/proc/sys`) prepared for the child.
pub(crate) fn in_path(field: &str, p: &Path) -> Result<InPath> {
    let mut names = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => names.push(n.as_bytes().to_vec()),
            Component::ParentDir => names.push(b"..".to_vec()),
            _ => {}
        }
    }
    let mut prefixes = Vec::new();
    let mut acc: Vec<u8> = Vec::new();
    for n in &names {
        if !acc.is_empty() {
            acc.push(b'/');
        }
        acc.extend_from_slice(n);
        prefixes.push(cstring(field, &acc)?);
    }
    let rel = if acc.is_empty() {
        cstring(field, ".")?
    } else {
        cstring(field, &acc)?
    };
    let names = names.iter().map(|n| cstring(field, n)).collect::<Result<_>>()?;
    Ok(InPath { rel, prefixes, names })
}

/// The process part of the plan (shared by spawn and exec).
pub(crate) struct ProcPlan {
    pub rlimits: Vec<(libc::c_int, libc::rlimit64)>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub caps: CapMasks,
    pub no_new_privs: bool,
    pub umask: libc::mode_t,
    pub cwd: InPath,
    pub exec_paths: Vec<CString>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub program: String,
    /// `exec PROFILE`, to write to the AppArmor exec attribute before `execve`.
    pub apparmor: Option<CString>,
}

/// Whether AppArmor is enabled on this host.
pub(crate) fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'))
}

pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn proc_plan(p: &Process) -> Result<ProcPlan> {
    let args = p.args().clone().unwrap_or_default();
    let program = args
        .first()
        .cloned()
        .ok_or_else(|| Error::spec("process.args", "empty: nothing to run"))?;
    if program.is_empty() {
        return Err(Error::spec("process.args", "args[0] is empty"));
    }
    let env = p.env().clone().unwrap_or_default();
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    let exec_paths = if program.contains('/') {
        vec![cstring("process.args", &program)?]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstring("process.env PATH", format!("{}/{program}", d.trim_end_matches('/'))))
            .collect::<Result<_>>()?
    };
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        return Err(Error::spec("process.cwd", format!("{} is not absolute", cwd.display())));
    }
    let mut rlimits = Vec::new();
    for r in p.rlimits().iter().flatten() {
        use PosixRlimitType as R;
        let res = match r.typ() {
            R::RlimitCpu => libc::RLIMIT_CPU,
            R::RlimitFsize => libc::RLIMIT_FSIZE,
            R::RlimitData => libc::RLIMIT_DATA,
            R::RlimitStack => libc::RLIMIT_STACK,
            R::RlimitCore => libc::RLIMIT_CORE,
            R::RlimitRss => libc::RLIMIT_RSS,
            R::RlimitNproc => libc::RLIMIT_NPROC,
            R::RlimitNofile => libc::RLIMIT_NOFILE,
            R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            R::RlimitAs => libc::RLIMIT_AS,
            R::RlimitLocks => libc::RLIMIT_LOCKS,
            R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
            R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
            R::RlimitNice => libc::RLIMIT_NICE,
            R::RlimitRtprio => libc::RLIMIT_RTPRIO,
            R::RlimitRttime => libc::RLIMIT_RTTIME,
        };
        if r.soft() > r.hard() {
            return Err(Error::spec(
                "process.rlimits",
                format!("{:?}: soft limit above hard limit", r.typ()),
            ));
        }
        rlimits.push((
            res as libc::c_int,
            libc::rlimit64 {
                rlim_cur: r.soft(),
                rlim_max: r.hard(),
            },
        ));
    }
    let user = p.user();
    let caps = p.capabilities().clone().unwrap_or_else(caps::docker_default);
    Ok(ProcPlan {
        rlimits,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        caps: CapMasks::from_spec(&caps),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        umask: user.umask().unwrap_or(0o022) as libc::mode_t,
        cwd: in_path("process.cwd", cwd)?,
        exec_paths,
        args: args.iter().map(|a| cstring("process.args", a)).collect::<Result<_>>()?,
        env: env.iter().map(|e| cstring("process.env", e)).collect::<Result<_>>()?,
        program,
        apparmor: match p.apparmor_profile().as_deref() {
            Some(name) if !name.is_empty() => Some(cstring("process.apparmorProfile", format!("exec {name}"))?),
            _ => None,
        },
    })
}

/// Refuse process fields this crate does not implement.
pub(crate) fn check_process_supported(p: &Process) -> Result<()> {
    if p.apparmor_profile().as_deref().is_some_and(|s| !s.is_empty()) && !apparmor_enabled() {
        // As runc: a profile that cannot be applied is an error, not a container without one.
        return Err(Error::spec(
            "process.apparmorProfile",
            "AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled)",
        ));
    }
    refuse(
        "process.selinuxLabel",
        p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()),
    )?;
    refuse("process.ioPriority", p.io_priority().is_some())?;
    refuse("process.scheduler", p.scheduler().is_some())?;
    refuse("process.execCPUAffinity", p.exec_cpu_affinity().is_some())
}

/// Refuse spec fields this crate does not implement, so nothing is silently ignored.
pub(crate) fn check_supported(spec: &Spec, cgroup_version: CgroupVersion) -> Result<()> {
    if let Some(p) = spec.process() {
        check_process_supported(p)?;
    }
    refuse(
        "hooks (run them in the runtime that drives the sandbox)",
        spec.hooks().as_ref().is_some_and(|h| {
            h.prestart().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
                || h.create_container().as_ref().is_some_and(|v| !v.is_empty())
                || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
                || h.poststart().as_ref().is_some_and(|v| !v.is_empty())
                || h.poststop().as_ref().is_some_and(|v| !v.is_empty())
        }),
    )?;
    let Some(linux) = spec.linux() else { return Ok(()) };
    refuse("linux.intelRdt", linux.intel_rdt().is_some())?;
    refuse("linux.personality", linux.personality().is_some())?;
    refuse(
        "linux.timeOffsets",
        linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
    )?;
    refuse("linux.memoryPolicy", linux.memory_policy().is_some())?;
    refuse(
        "linux.netDevices",
        linux.net_devices().as_ref().is_some_and(|t| !t.is_empty()),
    )?;
    refuse(
        "linux.mountLabel",
        linux.mount_label().as_deref().is_some_and(|s| !s.is_empty()),
    )?;
    if let Some(p) = linux.cgroups_path() {
        refuse(
            "linux.cgroupsPath (with '..')",
            p.components().any(|c| matches!(c, Component::ParentDir)),
        )?;
    }
    match linux.resources() {
        Some(r) => crate::cgroup::limits::check_supported(r, cgroup_version),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn in_path_splits_components() {
        let p = in_path("x", Path::new("/proc/sys/")).unwrap();
        assert_eq!(p.rel.as_bytes(), b"proc/sys");
        assert_eq!(
            p.prefixes.iter().map(|c| c.as_bytes().to_vec()).collect::<Vec<_>>(),
            vec![b"proc".to_vec(), b"proc/sys".to_vec()]
        );
        assert_eq!(in_path("x", Path::new("/")).unwrap().rel.as_bytes(), b".");
    }

    #[test]
    fn unsupported_fields_are_refused_not_ignored() {
        let mut spec = Spec::default();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_apparmor_profile(Some("docker-default".into()));
        // A profile is applied where AppArmor is enabled and refused where it is not.
        match check_supported(&spec, CgroupVersion::V1) {
            Ok(()) => assert!(apparmor_enabled()),
            Err(e) => assert!(
                !apparmor_enabled()
                    && matches!(&e, Error::InvalidSpec { field, reason } if field == "process.apparmorProfile"
                        && reason.contains("not enabled")),
                "{e:?}"
            ),
        }
        let mut spec = Spec::default();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
        let e = check_supported(&spec, CgroupVersion::V1).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidSpec { field, .. } if field == "process.selinuxLabel"),
            "{e:?}"
        );
        let mut spec = Spec::default();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_cgroups_path(Some("/a/../../b".into()));
        assert!(check_supported(&spec, CgroupVersion::V1).is_err());
        assert!(check_supported(&Spec::default(), CgroupVersion::V1).is_ok());
    }

    #[test]
    fn empty_args_are_refused() {
        let mut p = Process::default();
        p.set_args(Some(vec![]));
        assert!(matches!(proc_plan(&p), Err(Error::InvalidSpec { .. })));
    }
}

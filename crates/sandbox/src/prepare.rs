//! Turning an OCI runtime spec into a child [`Plan`]: every allocation happens here, before the clone.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use libc::c_ulong;
use oci_spec::runtime::{LinuxDeviceType, Mount, PosixRlimitType, Process, Spec};

use crate::caps::{self, CapMasks};
use crate::cgroup::CgroupVersion;
use crate::child::{DeviceOp, FsPlan, InPath, MountKind, MountOp};
use crate::error::{Error, Result};

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

/// Parse a mount's options like mount(8) and runc: flags, propagation, and the rest as filesystem data.
fn mount_flags(options: &[String]) -> (c_ulong, c_ulong, Vec<String>, bool, bool) {
    let mut flags: c_ulong = 0;
    let mut prop: c_ulong = 0;
    let mut data = Vec::new();
    let mut bind = false;
    let mut rbind = false;
    for o in options {
        let (set, clear): (c_ulong, c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "defaults" => (0, 0),
            "bind" => {
                bind = true;
                (0, 0)
            }
            "rbind" => {
                bind = true;
                rbind = true;
                (0, 0)
            }
            "private" => {
                prop = libc::MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                prop = libc::MS_PRIVATE | libc::MS_REC;
                (0, 0)
            }
            "shared" => {
                prop = libc::MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                prop = libc::MS_SHARED | libc::MS_REC;
                (0, 0)
            }
            "slave" => {
                prop = libc::MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                prop = libc::MS_SLAVE | libc::MS_REC;
                (0, 0)
            }
            "unbindable" => {
                prop = libc::MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                prop = libc::MS_UNBINDABLE | libc::MS_REC;
                (0, 0)
            }
            other => {
                data.push(other.to_owned());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data, bind, rbind)
}

fn mount_op(i: usize, m: &Mount, cgroup_version: CgroupVersion) -> Result<MountOp> {
    let field = format!("mounts[{i}]");
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::spec(
            &field,
            format!("destination {} is not absolute", dest.display()),
        ));
    }
    let target = in_path(&field, dest)?;
    let (flags, propagation, data, bind_opt, rbind) = mount_flags(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let data = if data.is_empty() {
        None
    } else {
        Some(cstring(&field, data.join(","))?)
    };
    if typ == "bind" || bind_opt {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::spec(&field, "bind mount without a source"))?;
        if !src.is_absolute() {
            return Err(Error::spec(
                &field,
                format!("bind source {} is not absolute", src.display()),
            ));
        }
        let meta =
            std::fs::metadata(src).map_err(|e| Error::spec(&field, format!("bind source {}: {e}", src.display())))?;
        let extra = flags & !(libc::MS_BIND | libc::MS_REC);
        return Ok(MountOp {
            target,
            file_target: !meta.is_dir(),
            kind: MountKind::Bind {
                source: cstring(&field, src.as_os_str().as_bytes())?,
                recursive: rbind,
            },
            flags: libc::MS_BIND,
            data: None,
            remount: if extra != 0 { Some(extra) } else { None },
            propagation,
        });
    }
    let (fstype, source, flags) = match typ {
        // On a v1 host the container sees an empty, read-only /sys/fs/cgroup; on v2, its own cgroup2 view.
        "cgroup" | "cgroup2" if cgroup_version == CgroupVersion::V1 => ("tmpfs", "tmpfs", flags | libc::MS_RDONLY),
        "cgroup" => ("cgroup2", "cgroup2", flags),
        "" => return Err(Error::spec(&field, "mount without a type (and not a bind mount)")),
        t => (t, m.source().as_ref().and_then(|s| s.to_str()).unwrap_or(t), flags),
    };
    Ok(MountOp {
        target,
        file_target: false,
        kind: MountKind::Fs {
            fstype: cstring(&field, fstype)?,
            source: cstring(&field, source)?,
        },
        flags,
        data,
        remount: None,
        propagation,
    })
}

/// The device nodes every container with a tmpfs /dev gets (as runc and Docker create them).
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn device_op(
    field: &str,
    path: &Path,
    mode: libc::mode_t,
    major: u32,
    minor: u32,
    uid: u32,
    gid: u32,
) -> Result<DeviceOp> {
    let ip = in_path(field, path)?;
    let parent = match path.parent() {
        Some(p) if p.components().count() > 1 => Some(in_path(field, p)?),
        _ => None,
    };
    let name = ip
        .names
        .last()
        .cloned()
        .ok_or_else(|| Error::spec(field, "empty device path"))?;
    Ok(DeviceOp {
        path: ip,
        parent,
        name,
        mode,
        dev: libc::makedev(major, minor),
        uid,
        gid,
        host: cstring(field, path.as_os_str().as_bytes())?,
    })
}

/// The mount-namespace part of the plan.
/// Whether sysctl `k` belongs to a namespace the container has its own of (runc's rule): anything else would
/// change the host.
fn sysctl_is_namespaced(k: &str, ns: libc::c_int) -> bool {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    (ns & libc::CLONE_NEWIPC != 0 && (ipc.contains(&k) || k.starts_with("fs.mqueue.")))
        || (ns & libc::CLONE_NEWNET != 0 && k.starts_with("net."))
        || (ns & libc::CLONE_NEWUTS != 0 && (k == "kernel.hostname" || k == "kernel.domainname"))
}

pub(crate) fn fs_plan(
    spec: &Spec,
    rootfs: &Path,
    cgroup_version: CgroupVersion,
    unshare_flags: libc::c_int,
) -> Result<FsPlan> {
    let linux = spec.linux().clone().unwrap_or_default();
    // New or joined by path: like runc, a hostname is set in the UTS namespace the container is in, as long as it
    // is not the host's (a pod's containers join the sandbox's and set the same name).
    let own_uts = unshare_flags & libc::CLONE_NEWUTS != 0
        || linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts);
    let mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    let ops = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount_op(i, m, cgroup_version))
        .collect::<Result<Vec<_>>>()?;
    let dev_tmpfs = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs"));
    let mut devices = Vec::new();
    if dev_tmpfs {
        for (p, maj, min) in DEFAULT_DEVICES {
            devices.push(device_op(
                "linux.devices",
                Path::new(p),
                libc::S_IFCHR | 0o666,
                maj,
                min,
                0,
                0,
            )?);
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::spec(&field, "device type 'a' cannot be created")),
        };
        let mode = kind | d.file_mode().unwrap_or(0o666);
        let (maj, min) = (u32::try_from(d.major()), u32::try_from(d.minor()));
        let (Ok(maj), Ok(min)) = (maj, min) else {
            return Err(Error::spec(&field, "negative major/minor"));
        };
        devices.retain(|x: &DeviceOp| {
            x.path.rel.as_bytes() != in_path(&field, d.path()).map(|p| p.rel).unwrap_or_default().as_bytes()
        });
        devices.push(device_op(
            &field,
            d.path(),
            mode,
            maj,
            min,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )?);
    }
    let masked = linux
        .masked_paths()
        .iter()
        .flatten()
        .map(|p| in_path("linux.maskedPaths", Path::new(p)))
        .collect::<Result<_>>()?;
    let readonly = linux
        .readonly_paths()
        .iter()
        .flatten()
        .map(|p| in_path("linux.readonlyPaths", Path::new(p)))
        .collect::<Result<_>>()?;
    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") | Some("rprivate") | Some("private") => libc::MS_PRIVATE,
        Some("rslave") | Some("slave") => libc::MS_SLAVE,
        Some("rshared") | Some("shared") => libc::MS_SHARED,
        Some("runbindable") | Some("unbindable") => libc::MS_UNBINDABLE,
        Some(o) => return Err(Error::spec("linux.rootfsPropagation", format!("unknown value {o:?}"))),
    };
    let mut sysctl = Vec::new();
    let mut keys: Vec<_> = linux.sysctl().iter().flatten().collect();
    keys.sort();
    for (k, v) in keys {
        let field = format!("linux.sysctl[{k:?}]");
        if !sysctl_is_namespaced(k, unshare_flags) {
            return Err(Error::spec(
                &field,
                "not a sysctl of a namespace this container has its own of",
            ));
        }
        if k.contains('/') || k.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(Error::spec(&field, "invalid name"));
        }
        sysctl.push((
            cstring(&field, format!("proc/sys/{}", k.replace('.', "/")))?,
            cstring(&field, v)?,
        ));
    }
    let hostname = spec.hostname().as_ref().filter(|h| !h.is_empty());
    let domainname = spec.domainname().as_ref().filter(|h| !h.is_empty());
    if (hostname.is_some() || domainname.is_some()) && !own_uts {
        return Err(Error::spec(
            "hostname",
            "setting a hostname needs a UTS namespace in linux.namespaces (not the host's)",
        ));
    }
    Ok(FsPlan {
        rootfs: cstring("root.path", rootfs.as_os_str().as_bytes())?,
        propagation,
        mounts: ops,
        devices,
        dev_symlinks: dev_tmpfs,
        masked,
        readonly,
        root_readonly: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
        hostname: hostname.map(|h| cstring("hostname", h)).transpose()?,
        domainname: domainname.map(|h| cstring("domainname", h)).transpose()?,
        sysctl,
        console: -1,
        console_host: CString::default(),
        no_pivot: false,
        console_path: in_path("console", Path::new("/dev/console"))?,
    })
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

fn refuse(field: &str, set: bool) -> Result<()> {
    if set {
        Err(Error::spec(
            field,
            "not supported by wharf-sandbox (refused rather than ignored)",
        ))
    } else {
        Ok(())
    }
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
    fn options_parse() {
        let o: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data, bind, rbind) = mount_flags(&o);
        assert_eq!(flags, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(prop, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(data, vec!["mode=755".to_owned()]);
        assert!(bind && rbind);
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
    fn default_spec_plan() {
        let mut spec = Spec::default();
        spec.set_hostname(Some("h".into()));
        let ns = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
        let plan = fs_plan(&spec, Path::new("/r"), CgroupVersion::V1, ns).unwrap();
        assert_eq!(plan.propagation, libc::MS_PRIVATE);
        assert_eq!(plan.mounts.len(), spec.mounts().as_ref().unwrap().len());
        assert_eq!(plan.mounts[0].target.rel.as_bytes(), b"proc");
        // The default device nodes are created in the tmpfs /dev, with the /dev/fd... symlinks.
        let devs: Vec<&[u8]> = plan.devices.iter().map(|d| d.path.rel.as_bytes()).collect();
        assert_eq!(
            devs,
            [
                &b"dev/null"[..],
                b"dev/zero",
                b"dev/full",
                b"dev/random",
                b"dev/urandom",
                b"dev/tty"
            ]
        );
        assert!(
            plan.devices
                .iter()
                .all(|d| d.name.as_bytes() == &d.path.rel.as_bytes()[4..])
        );
        assert!(plan.dev_symlinks);
        assert!(plan.masked.iter().any(|m| m.rel.as_bytes() == b"proc/kcore"));
        assert!(plan.readonly.iter().any(|m| m.rel.as_bytes() == b"proc/sys"));
        // A hostname needs a UTS namespace that is not the host's: listed in the spec (new or joined by path).
        let mut no_uts = spec.clone();
        let namespaces: Vec<_> = no_uts
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Uts)
            .collect();
        no_uts.linux_mut().as_mut().unwrap().set_namespaces(Some(namespaces));
        assert!(fs_plan(&no_uts, Path::new("/r"), CgroupVersion::V1, libc::CLONE_NEWNS).is_err());
        assert!(fs_plan(&spec, Path::new("/r"), CgroupVersion::V1, libc::CLONE_NEWNS).is_ok());
    }

    #[test]
    fn relative_and_typeless_mounts_are_refused() {
        let mut spec = Spec::default();
        let mut m = Mount::default();
        m.set_destination("relative".into());
        m.set_typ(Some("tmpfs".into()));
        spec.set_mounts(Some(vec![m.clone()]));
        assert!(fs_plan(&spec, Path::new("/r"), CgroupVersion::V1, libc::CLONE_NEWUTS).is_err());
        m.set_destination("/x".into());
        m.set_typ(None);
        spec.set_mounts(Some(vec![m]));
        assert!(fs_plan(&spec, Path::new("/r"), CgroupVersion::V1, libc::CLONE_NEWUTS).is_err());
    }

    #[test]
    fn empty_args_are_refused() {
        let mut p = Process::default();
        p.set_args(Some(vec![]));
        assert!(matches!(proc_plan(&p), Err(Error::InvalidSpec { .. })));
    }
}

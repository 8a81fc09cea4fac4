//! The mount-namespace part of a child's plan ([`FsPlan`]): mounts, device nodes, masked and read-only paths,
//! sysctls, hostname.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libc::c_ulong;
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use super::{cstring, in_path};
use crate::cgroup::CgroupVersion;
use crate::error::{Error, Result};
use crate::options::{MountParam, RootMount};
use crate::plan::{DeviceOp, FsPlan, MountKind, MountOp, RootMountOp};

/// Options that set (second) or clear (third) a mount flag, as mount(8) reads them (`defaults`: neither).
const FLAG_OPTIONS: &[(&str, c_ulong, c_ulong)] = &[
    ("ro", libc::MS_RDONLY, 0),
    ("rw", 0, libc::MS_RDONLY),
    ("nosuid", libc::MS_NOSUID, 0),
    ("suid", 0, libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV, 0),
    ("dev", 0, libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC, 0),
    ("exec", 0, libc::MS_NOEXEC),
    ("sync", libc::MS_SYNCHRONOUS, 0),
    ("async", 0, libc::MS_SYNCHRONOUS),
    ("dirsync", libc::MS_DIRSYNC, 0),
    ("mand", libc::MS_MANDLOCK, 0),
    ("nomand", 0, libc::MS_MANDLOCK),
    ("atime", 0, libc::MS_NOATIME),
    ("noatime", libc::MS_NOATIME, 0),
    ("diratime", 0, libc::MS_NODIRATIME),
    ("nodiratime", libc::MS_NODIRATIME, 0),
    ("relatime", libc::MS_RELATIME, 0),
    ("norelatime", 0, libc::MS_RELATIME),
    ("strictatime", libc::MS_STRICTATIME, 0),
    ("nostrictatime", 0, libc::MS_STRICTATIME),
    ("acl", libc::MS_POSIXACL, 0),
    ("noacl", 0, libc::MS_POSIXACL),
    ("lazytime", libc::MS_LAZYTIME, 0),
    ("nolazytime", 0, libc::MS_LAZYTIME),
    ("iversion", libc::MS_I_VERSION, 0),
    ("noiversion", 0, libc::MS_I_VERSION),
    ("silent", libc::MS_SILENT, 0),
    ("loud", 0, libc::MS_SILENT),
    ("nosymfollow", libc::MS_NOSYMFOLLOW, 0),
    ("symfollow", 0, libc::MS_NOSYMFOLLOW),
    ("defaults", 0, 0),
];

/// Options that set the mount's propagation.
const PROPAGATION_OPTIONS: &[(&str, c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// Options read beside the flags and propagation: bind mounts, and runc's `tmpcopyup` (taken by `mount_op`).
const OTHER_OPTIONS: &[&str] = &["bind", "rbind", "tmpcopyup"];

/// Every mount option this crate recognises, sorted. Any other option is passed to the filesystem as data,
/// except runc's recursive attributes and `remount`, which are refused. A runtime's `features` lists these.
///
/// # Examples
/// ```
/// let options = wharf_sandbox::mount_options();
/// assert!(options.contains(&"nosuid") && options.contains(&"rprivate") && options.contains(&"bind"));
/// assert!(!options.contains(&"rro"));
/// ```
pub fn mount_options() -> Vec<&'static str> {
    let mut all: Vec<&str> = FLAG_OPTIONS
        .iter()
        .map(|(o, ..)| *o)
        .chain(PROPAGATION_OPTIONS.iter().map(|(o, _)| *o))
        .chain(OTHER_OPTIONS.iter().copied())
        .collect();
    all.sort_unstable();
    all
}

/// Parse a mount's options like mount(8) and runc: flags, propagation, and the rest as filesystem data.
fn mount_flags(options: &[String]) -> (c_ulong, c_ulong, Vec<String>, bool, bool) {
    let mut flags: c_ulong = 0;
    let mut prop: c_ulong = 0;
    let mut data = Vec::new();
    let mut bind = false;
    let mut rbind = false;
    for o in options {
        if let Some(&(_, set, clear)) = FLAG_OPTIONS.iter().find(|(name, ..)| name == o) {
            flags = (flags | set) & !clear;
        } else if let Some(&(_, p)) = PROPAGATION_OPTIONS.iter().find(|(name, _)| name == o) {
            prop = p;
        } else {
            match o.as_str() {
                "bind" => bind = true,
                "rbind" => {
                    bind = true;
                    rbind = true;
                }
                other => data.push(other.to_owned()),
            }
        }
    }
    (flags, prop, data, bind, rbind)
}

/// Options runc implements and this crate does not: the recursive mount attributes (`rro`, `rnosuid`, … set
/// with `mount_setattr(AT_RECURSIVE)`) and `remount`. Taken as filesystem data they would be dropped on a bind
/// mount — `rro` leaving it writable — so they are refused.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnoatime",
    "ratime",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "remount",
];

/// Whether the directory `dest` of the rootfs (resolved inside it) is missing or empty: then runc's `tmpcopyup`
/// (copy what the rootfs has there into the new tmpfs) has nothing to copy.
fn nothing_to_copy_up(rootfs: &Path, dest: &Path) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat2(&root, rel, flags, Mode::empty(), ResolveFlags::IN_ROOT) {
        Err(rustix::io::Errno::NOENT) => true,
        Err(_) => false,
        Ok(dir) => rustix::fs::Dir::read_from(&dir).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
        }),
    }
}

fn mount_op(i: usize, m: &Mount, rootfs: &Path, cgroup_version: CgroupVersion) -> Result<MountOp> {
    let field = format!("mounts[{i}]");
    let options = m.options().clone().unwrap_or_default();
    if let Some(o) = options.iter().find(|o| UNSUPPORTED_OPTIONS.contains(&o.as_str())) {
        return Err(Error::spec(
            &format!("{field}.options"),
            format!("{o:?} is not supported (recursive mount attributes and remount are not implemented)"),
        ));
    }
    // podman asks for it on every tmpfs of --tmpfs and --read-only; copying in the child is not implemented, so
    // it is taken where there is nothing to copy and refused where there is.
    let copy_up = options.iter().any(|o| o == "tmpcopyup");
    if copy_up && !nothing_to_copy_up(rootfs, m.destination()) {
        return Err(Error::spec(
            &format!("{field}.options"),
            format!(
                "\"tmpcopyup\" is supported only where the rootfs has nothing at {} to copy into the tmpfs",
                m.destination().display()
            ),
        ));
    }
    let options: Vec<String> = options.into_iter().filter(|o| o != "tmpcopyup").collect();
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::spec(
            &field,
            format!("destination {} is not absolute", dest.display()),
        ));
    }
    let target = in_path(&field, dest)?;
    let (flags, propagation, data, bind_opt, rbind) = mount_flags(&options);
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
            dest: dest.to_path_buf(),
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
        dest: dest.to_path_buf(),
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
        dest: path.to_path_buf(),
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
    own_ns: libc::c_int,
) -> Result<FsPlan> {
    let linux = spec.linux().clone().unwrap_or_default();
    // New or joined by path: like runc, a hostname is set in the UTS namespace the container is in, as long as it
    // is not the host's (a pod's containers join the sandbox's and set the same name).
    let own_uts = own_ns & libc::CLONE_NEWUTS != 0
        || linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts);
    let mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    let ops = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount_op(i, m, rootfs, cgroup_version))
        .collect::<Result<Vec<_>>>()?;
    // runc's rule: unless /dev is bind-mounted (the devices then come from its source, which must not be changed),
    // the default nodes, the spec's and the /dev symlinks are made in the container's /dev, be it a tmpfs or the
    // rootfs's own directory.
    let dev_bind = mounts.iter().any(|m| {
        m.destination().components().eq(Path::new("/dev").components())
            && (m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    });
    let mut devices = Vec::new();
    if !dev_bind {
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
        // /dev/ptmx is the symlink to pts/ptmx made below (runc skips such an entry too); with /dev bind-mounted, no
        // node is made (runc).
        if dev_bind || d.path().components().eq(Path::new("/dev/ptmx").components()) {
            continue;
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::spec(&field, "device type 'a' cannot be created")),
        };
        // The type comes from `type`, whatever bits of it `fileMode` carries (runc masks them too).
        let mode = kind | (d.file_mode().unwrap_or(0o666) & !libc::S_IFMT);
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
        if !sysctl_is_namespaced(k, own_ns) {
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
        dev_symlinks: !dev_bind,
        dev_core: Path::new("/proc/kcore").exists(),
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
        root_mount: None,
    })
}

/// The child's form of a [`RootMount`]: every string checked for NUL bytes here, where an error can be returned.
pub(crate) fn root_mount_op(m: &RootMount) -> Result<RootMountOp> {
    let field = "root mount";
    let params = m
        .params
        .iter()
        .map(|p| match p {
            MountParam::String(k, v) => Ok((cstring(field, k.as_bytes())?, Some(cstring(field, v.as_bytes())?))),
            MountParam::Flag(k) => Ok((cstring(field, k.as_bytes())?, None)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RootMountOp {
        fstype: cstring(field, m.fstype.as_bytes())?,
        params,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let o: Vec<String> = ["nosymfollow", "lazytime", "acl", "silent", "iversion", "runbindable"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data, ..) = mount_flags(&o);
        let want = libc::MS_NOSYMFOLLOW | libc::MS_LAZYTIME | libc::MS_POSIXACL | libc::MS_SILENT | libc::MS_I_VERSION;
        assert_eq!((flags, prop, data), (want, libc::MS_UNBINDABLE | libc::MS_REC, vec![]));
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

    fn device(path: &str, typ: LinuxDeviceType, major: i64, minor: i64, mode: u32) -> oci_spec::runtime::LinuxDevice {
        let mut d = oci_spec::runtime::LinuxDevice::default();
        d.set_path(path.into());
        d.set_typ(typ);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(mode));
        d
    }

    fn nodes(plan: &FsPlan) -> Vec<(String, libc::mode_t)> {
        plan.devices
            .iter()
            .map(|d| (String::from_utf8_lossy(d.path.rel.as_bytes()).into_owned(), d.mode))
            .collect()
    }

    /// runc's device-list cases: nodes (defaults and the spec's) unless /dev is bind-mounted, in a tmpfs /dev or the
    /// rootfs's own; /dev/ptmx left to the symlink; the spec's entry replacing a default; type bits in fileMode.
    #[test]
    fn device_nodes_follow_runc() {
        let ns = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
        let mut spec = Spec::default();
        spec.linux_mut().as_mut().unwrap().set_devices(Some(vec![
            device("/dev/fuse", LinuxDeviceType::C, 10, 229, 0o20666),
            device("/dev/null", LinuxDeviceType::C, 1, 3, 0o600),
            device("/dev/ptmx", LinuxDeviceType::C, 5, 2, 0o666),
            device("/dev/sda", LinuxDeviceType::B, 8, 0, 0o660),
        ]));
        let plan = fs_plan(&spec, Path::new("/r"), CgroupVersion::V1, ns).unwrap();
        let got = nodes(&plan);
        assert!(got.contains(&("dev/fuse".into(), libc::S_IFCHR | 0o666)), "{got:?}");
        assert!(got.contains(&("dev/null".into(), libc::S_IFCHR | 0o600)), "{got:?}");
        assert!(got.contains(&("dev/sda".into(), libc::S_IFBLK | 0o660)), "{got:?}");
        assert_eq!(got.iter().filter(|(p, _)| p == "dev/null").count(), 1);
        assert!(!got.iter().any(|(p, _)| p == "dev/ptmx"));
        assert_eq!(got.len(), 6 + 2);
        assert!(plan.dev_symlinks);

        // No /dev mount at all: the nodes go to the rootfs's /dev, as runc makes them.
        let mut no_dev = spec.clone();
        let mounts: Vec<Mount> = no_dev
            .mounts()
            .clone()
            .unwrap()
            .into_iter()
            .filter(|m| m.destination() != Path::new("/dev"))
            .collect();
        no_dev.set_mounts(Some(mounts.clone()));
        let plan = fs_plan(&no_dev, Path::new("/r"), CgroupVersion::V1, ns).unwrap();
        assert_eq!(nodes(&plan).len(), 8);

        // /dev bind-mounted: nothing is made in it (it is someone else's directory).
        let mut bind = Mount::default();
        bind.set_destination("/dev/".into());
        bind.set_typ(Some("none".into()));
        bind.set_source(Some("/".into()));
        bind.set_options(Some(vec!["rbind".into(), "ro".into()]));
        let mut dev_bound = no_dev.clone();
        dev_bound.set_mounts(Some([vec![bind], mounts].concat()));
        let plan = fs_plan(&dev_bound, Path::new("/r"), CgroupVersion::V1, ns).unwrap();
        assert!(plan.devices.is_empty());
        assert!(!plan.dev_symlinks);
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
}

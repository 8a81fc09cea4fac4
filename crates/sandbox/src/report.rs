//! What the child reports through its error pipe, and the typed [`Error`] the parent makes of it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cgroup::JoinFds;
use crate::error::Error;
use crate::error::Result;
use crate::plan::{FsPlan, InPath, MountOp};
use crate::prepare::ProcPlan;

/// Declares `Stage` and its conversion back from the number the child reports, from one list.
macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident $(= $value:literal)?,)*) => {
        /// Setup steps, as reported through the error pipe.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub(crate) enum Stage {
            $($(#[$doc])* $name $(= $value)?,)*
        }

        impl Stage {
            pub(crate) fn from_u32(v: u32) -> Option<Stage> {
                [$(Stage::$name),*].into_iter().find(|s| *s as u32 == v)
            }
        }
    };
}

stages! {
    Sync = 1,
    CgroupJoin,
    Setns,
    Unshare,
    UserRoot,
    Propagation,
    RootBind,
    RootOpen,
    MountTarget,
    Mount,
    MountRemount,
    MountPropagation,
    Device,
    DevNull,
    Mask,
    Readonly,
    Hostname,
    Domainname,
    Pivot,
    RootReadonly,
    Rlimit,
    Tty,
    Stdio,
    Cwd,
    User,
    CapBounding,
    Seccomp,
    Capset,
    Ambient,
    NoNewPrivs,
    Init,
    Hold,
    Sysctl,
    Console,
    ExecNotFound,
    Exec,
    Keyring,
    Paused,
    AppArmor,
    Loopback,
    RootMount,
    /// Not an error: the mounts are in place and the child waits before `pivot_root` (the hook point).
    Mounted = 98,
    /// Not an error: the container is set up and waits to be started.
    Ready = 99,
}

/// The record the child writes on failure (or `Ready`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    pub stage: u32,
    pub index: u32,
    pub errno: i32,
}

pub(crate) const REPORT_LEN: usize = std::mem::size_of::<Report>();

impl Report {
    pub(crate) fn new(stage: Stage, index: usize, errno: i32) -> Report {
        Report {
            stage: stage as u32,
            index: index as u32,
            errno,
        }
    }

    /// The record as the pipe carries it (native byte order, as [`read_report`] reads it).
    pub(crate) fn to_bytes(self) -> [u8; REPORT_LEN] {
        let mut b = [0u8; REPORT_LEN];
        b[0..4].copy_from_slice(&self.stage.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.errno.to_ne_bytes());
        b
    }
}

/// Read the child's report: `None` when the pipe closed (the program was executed).
pub(crate) fn read_report(pipe: &mut File) -> Result<Option<Report>> {
    let mut buf = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < REPORT_LEN {
        match pipe.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Os {
                    what: "read child error pipe",
                    source: e,
                });
            }
        }
    }
    if got < REPORT_LEN {
        return Ok(None);
    }
    let word = |i: usize| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
    Ok(Some(Report {
        stage: u32::from_ne_bytes(word(0)),
        index: u32::from_ne_bytes(word(4)),
        errno: i32::from_ne_bytes(word(8)),
    }))
}

/// The error of the child's report `r`. A step's index is into the list of the plan it ran (`fs`, the new
/// container's mount-namespace setup, absent for exec), whose entries carry the path the spec gave them.
pub(crate) fn report_error(r: Report, pp: &ProcPlan, cgroup: &JoinFds, fs: Option<&FsPlan>) -> Error {
    let source = std::io::Error::from_raw_os_error(r.errno);
    let i = r.index as usize;
    let mount_target = |what: &'static str, target: Option<PathBuf>| Error::Mount {
        target: target.unwrap_or_default(),
        what,
        source: std::io::Error::from_raw_os_error(r.errno),
    };
    let mount = |f: fn(&FsPlan) -> &[MountOp]| fs.and_then(|fs| f(fs).get(i)).map(|m| m.dest.clone());
    let in_root = |f: fn(&FsPlan) -> &[InPath]| {
        fs.and_then(|fs| f(fs).get(i))
            .map(|p| Path::new("/").join(p.rel.to_string_lossy().as_ref()))
    };
    match Stage::from_u32(r.stage) {
        Some(Stage::ExecNotFound) => Error::ExecNotFound {
            program: pp.program.clone(),
        },
        Some(Stage::Exec) => Error::Exec {
            program: pp.program.clone(),
            source,
        },
        Some(Stage::Cwd) => Error::Cwd {
            cwd: PathBuf::from(std::ffi::OsStr::new(&*String::from_utf8_lossy(pp.cwd.rel.as_bytes()))),
            source,
        },
        Some(Stage::User) => Error::User {
            uid: pp.uid,
            gid: pp.gid,
            source,
        },
        Some(Stage::MountTarget) => mount_target("create mount point", mount(|fs| &fs.mounts)),
        Some(Stage::Mount) => mount_target("mount", mount(|fs| &fs.mounts)),
        Some(Stage::MountRemount) => mount_target("remount with flags", mount(|fs| &fs.mounts)),
        Some(Stage::MountPropagation) => mount_target("set propagation", mount(|fs| &fs.mounts)),
        Some(Stage::Mask) => mount_target("mask path", in_root(|fs| &fs.masked)),
        Some(Stage::Readonly) => mount_target("make path read-only", in_root(|fs| &fs.readonly)),
        Some(Stage::Device) => mount_target(
            "create device node",
            fs.and_then(|fs| fs.devices.get(i)).map(|d| d.dest.clone()),
        ),
        Some(Stage::RootMount) => Error::RootMount {
            fstype: fs
                .and_then(|fs| fs.root_mount.as_ref())
                .map(|m| m.fstype.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source,
        },
        Some(Stage::CgroupJoin) => Error::Cgroup {
            path: cgroup.tasks.get(i).map(|(p, _)| p.clone()).unwrap_or_default(),
            what: "attach process",
            source,
        },
        Some(s) => Error::Setup {
            step: stage_name(s),
            source,
        },
        None => Error::Setup {
            step: "unknown",
            source,
        },
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Sync => "sync",
        Stage::CgroupJoin => "join cgroup",
        Stage::Setns => "setns",
        Stage::Unshare => "unshare",
        Stage::UserRoot => "become root in user namespace",
        Stage::Propagation => "make mounts private",
        Stage::RootBind => "bind rootfs",
        Stage::RootOpen => "open rootfs",
        Stage::DevNull => "verify /dev/null",
        Stage::Hostname => "sethostname",
        Stage::Domainname => "setdomainname",
        Stage::Pivot => "pivot_root",
        Stage::RootReadonly => "read-only root",
        Stage::Rlimit => "setrlimit",
        Stage::Tty => "controlling terminal",
        Stage::Stdio => "stdio",
        Stage::CapBounding => "drop bounding capabilities",
        Stage::Seccomp => "load seccomp filter",
        Stage::Capset => "capset",
        Stage::Ambient => "ambient capabilities",
        Stage::NoNewPrivs => "no_new_privs",
        Stage::Init => "init process",
        Stage::Hold => "wait for start",
        Stage::Sysctl => "write sysctl",
        Stage::Console => "set up the terminal (/dev/console, pty)",
        Stage::Keyring => "join session keyring",
        Stage::Loopback => "bring the loopback interface up",
        Stage::RootMount => "mount the root filesystem",
        Stage::Paused => "wait before pivot_root",
        Stage::AppArmor => "set AppArmor profile",
        _ => "setup",
    }
}

//! Failure injection: a failed call at each setup step ends the child with a report naming that step, which the
//! parent turns into an error naming the spec's field, without root.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Mount, Spec};

use super::{creds, fs};
use crate::cgroup::{CgroupVersion, JoinFds};
use crate::error::Error;
use crate::namespaces::Namespaces;
use crate::plan::{Plan, PlanBuilder};
use crate::prepare::{self, ProcPlan};
use crate::report::{Report, Stage, report_error};
use crate::stdio::StdioConfig;
use crate::sys::Recorder;

const NS: libc::c_int = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET;

/// A spec with one of each: a bind mount at /data, the default masked and read-only paths, a hostname, a user
/// with groups, a joined IPC namespace (joined by the parent: no user namespace), new UTS and mount ones.
fn spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("box".into()));
    let mut m = Mount::default();
    m.set_destination("/data".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some("/".into()));
    m.set_options(Some(vec!["rbind".into(), "ro".into(), "rslave".into()]));
    spec.set_mounts(Some(vec![m]));
    let p = spec.process_mut().as_mut().unwrap();
    let mut user = p.user().clone();
    user.set_uid(1000);
    user.set_gid(1001);
    user.set_additional_gids(Some(vec![10]));
    p.set_user(user);
    let mut ipc = LinuxNamespace::default();
    ipc.set_typ(LinuxNamespaceType::Ipc);
    ipc.set_path(Some("/proc/self/ns/ipc".into()));
    let new = |typ| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n
    };
    let namespaces = vec![ipc, new(LinuxNamespaceType::Uts), new(LinuxNamespaceType::Mount)];
    spec.linux_mut().as_mut().unwrap().set_namespaces(Some(namespaces));
    spec
}

struct Setup {
    spec: Spec,
    pp: ProcPlan,
    plan: Plan,
    _ns: Namespaces,
}

fn setup() -> Setup {
    let spec = spec();
    let ns = Namespaces::from_spec(spec.linux().as_ref().unwrap()).unwrap();
    let process = spec.process().clone().unwrap();
    let pp = prepare::proc_plan(&process).unwrap();
    let mut b = PlanBuilder::new(&spec, &process, &pp, StdioConfig::inherit(), None).unwrap();
    b.namespaces(&ns).unwrap();
    b.plan.fs = Some(prepare::fs_plan(&spec, Path::new("/rootfs"), CgroupVersion::V2, NS).unwrap());
    let plan = b.finish().0;
    Setup {
        spec,
        pp,
        plan,
        _ns: ns,
    }
}

/// Every privileged step of the child, in order, against `rec`.
fn run_all(s: &Setup, rec: &Recorder) -> Result<(), Report> {
    rec.run(|| {
        creds::enter(rec, &s.plan);
        fs::setup_fs(rec, &s.plan, s.plan.fs.as_ref().unwrap());
        creds::drop_bounding(rec, &s.plan);
        creds::switch_user(rec, &s.plan);
    })
}

/// The report and the parent's error when the `nth` call of `call` fails with EACCES.
fn failing(call: &'static str, nth: usize) -> (Report, Error) {
    let s = setup();
    let rec = Recorder::with(&["/rootfs/data"], &[]).failing(call, nth, libc::EACCES);
    let report = run_all(&s, &rec).unwrap_err();
    assert_eq!(report.errno, libc::EACCES, "{report:?}");
    (
        report,
        report_error(report, &s.pp, &JoinFds::default(), s.plan.fs.as_ref()),
    )
}

fn stage(r: &Report) -> Stage {
    Stage::from_u32(r.stage).unwrap()
}

#[test]
fn the_whole_setup_succeeds_against_the_double() {
    let s = setup();
    let rec = Recorder::with(&["/rootfs/data"], &[]);
    run_all(&s, &rec).unwrap();
}

#[test]
fn a_failed_bind_mount_names_its_destination() {
    // Mounts: propagation of /, the root onto itself, then /data's bind, its read-only remount, its propagation.
    for (nth, st, what) in [
        (3, Stage::Mount, "mount"),
        (4, Stage::MountRemount, "remount with flags"),
        (5, Stage::MountPropagation, "set propagation"),
    ] {
        let (r, e) = failing("mount", nth);
        assert_eq!((stage(&r), r.index), (st, 0));
        match e {
            Error::Mount { target, what: w, .. } => assert_eq!((target.as_path(), w), (Path::new("/data"), what)),
            e => panic!("{e}"),
        }
    }
    // The missing mount point cannot be made.
    let (r, e) = failing("mkdirat", 1);
    assert_eq!(stage(&r), Stage::MountTarget);
    assert!(e.to_string().contains("\"/data\""), "{e}");
}

#[test]
fn a_failed_device_node_names_its_path() {
    let s = setup();
    let devices = &s.plan.fs.as_ref().unwrap().devices;
    for nth in [1, devices.len()] {
        let (r, e) = failing("mknodat", nth);
        assert_eq!((stage(&r), r.index as usize), (Stage::Device, nth - 1));
        match e {
            Error::Mount { target, what, .. } => {
                assert_eq!((target, what), (devices[nth - 1].dest.clone(), "create device node"))
            }
            e => panic!("{e}"),
        }
    }
}

#[test]
fn failed_masked_and_read_only_paths_name_the_path() {
    let s = setup();
    let linux = s.spec.linux().as_ref().unwrap();
    let masked = linux.masked_paths().as_ref().unwrap();
    let ro = linux.readonly_paths().as_ref().unwrap();
    // The first masked path (a file here: /dev/null is bound over it) and the first read-only path, by where
    // their mounts come in a run that succeeds.
    let calls = {
        let rec = Recorder::with(&["/rootfs/data"], &[]);
        run_all(&s, &rec).unwrap();
        rec.mounts()
    };
    let nth_of = |target: &str| calls.iter().position(|m| m.1 == format!("/rootfs{target}")).unwrap() + 1;
    let (r, e) = failing("mount", nth_of(&masked[0]));
    assert_eq!((stage(&r), r.index), (Stage::Mask, 0));
    assert!(e.to_string().contains(&format!("{:?}", masked[0])), "{e}");
    let (r, e) = failing("mount", nth_of(&ro[0]));
    assert_eq!((stage(&r), r.index), (Stage::Readonly, 0));
    assert!(e.to_string().contains(&format!("{:?}", ro[0])), "{e}");
}

#[test]
fn failed_namespace_hostname_user_and_capability_steps_are_named() {
    let (r, _) = failing("unshare", 1);
    assert_eq!(stage(&r), Stage::Unshare);
    let (r, e) = failing("sethostname", 1);
    assert_eq!(stage(&r), Stage::Hostname);
    assert!(e.to_string().contains("sethostname"), "{e}");
    for (call, index) in [("keep_caps", 0), ("setgroups", 1), ("setresgid", 2), ("setresuid", 3)] {
        let (r, e) = failing(call, 1);
        assert_eq!((stage(&r), r.index), (Stage::User, index), "{call}");
        assert!(e.to_string().contains("user 1000:1001"), "{e}");
    }
    let (r, _) = failing("drop_bounding", 1);
    assert_eq!((stage(&r), r.index), (Stage::CapBounding, 0));
    let (r, _) = failing("capset", 1);
    assert_eq!(stage(&r), Stage::Capset);
    let (r, _) = failing("pivot_root", 1);
    assert_eq!(stage(&r), Stage::Pivot);
}

/// Calls whose failure the child deliberately gets over, each with what it does instead: `(call, which one of
/// them or all, what then)`. The numbers are those of [`spec`]'s run.
const TOLERATED: &[(&str, Option<usize>, &str)] = &[
    (
        "unlinkat",
        None,
        "a stale device node is replaced by mknod, which fails if the unlink mattered",
    ),
    (
        "symlinkat",
        None,
        "the /dev symlinks (fd, stdin, ptmx, ...) are best effort",
    ),
    (
        "open_in_root",
        Some(17),
        "no /dev in the root to put the symlinks in: none are made",
    ),
    (
        "open_in_root",
        Some(18),
        "the root's /dev/null cannot be opened: the host's masks paths instead",
    ),
    (
        "fstat",
        Some(1),
        "the root's /dev/null is not the null device: the host's masks paths instead",
    ),
    (
        "clear_ambient",
        None,
        "where ambient capabilities do not exist there is nothing to clear",
    ),
];

#[test]
fn every_failed_call_is_reported_or_deliberately_tolerated() {
    let s = setup();
    let counts = {
        let rec = Recorder::with(&["/rootfs/data"], &[]);
        run_all(&s, &rec).unwrap();
        rec.counts()
    };
    assert!(counts.len() > 10, "{counts:?}");
    let mut reported = 0;
    let mut unnoticed = Vec::new();
    for (call, n) in counts {
        for nth in 1..=n {
            let rec = Recorder::with(&["/rootfs/data"], &[]).failing(call, nth, libc::EACCES);
            match run_all(&s, &rec) {
                Err(r) => {
                    assert_eq!(r.errno, libc::EACCES, "{call} #{nth}: {r:?}");
                    let e = report_error(r, &s.pp, &JoinFds::default(), s.plan.fs.as_ref()).to_string();
                    assert!(!e.contains("\"unknown\""), "{call} #{nth}: {e}");
                    reported += 1;
                }
                Ok(())
                    if TOLERATED
                        .iter()
                        .any(|(c, n, _)| *c == call && n.is_none_or(|n| n == nth)) => {}
                Ok(()) => unnoticed.push((call, nth)),
            }
        }
    }
    assert!(unnoticed.is_empty(), "failures that went unnoticed: {unnoticed:#?}");
    assert!(reported > 50, "{reported}");
}

#[test]
fn terminal_steps_are_made_in_order_and_each_failure_is_reported() {
    use crate::sys::{Call, Sys};
    let mut s = setup();
    s.plan.pty_sock = 7;
    s.plan.winsize.ws_row = 24;
    s.plan.winsize.ws_col = 80;
    let pty = |rec: &Recorder| {
        let root = rec.open(c"/rootfs", libc::O_PATH);
        rec.run(|| super::tty::alloc_pty(rec, &s.plan, root))
    };
    let rec = Recorder::default();
    assert!(pty(&rec).unwrap() >= 0);
    let ptmx = "/rootfs/dev/pts/ptmx".to_owned();
    assert_eq!(
        rec.calls(),
        [
            Call::PtyPeer(ptmx.clone()),
            Call::Winsize(ptmx.clone(), 24, 80),
            Call::SendFd(7, ptmx)
        ]
    );
    // The ptmx opened in the root, checked to be the ptmx device, its peer opened, the master sent.
    for (call, nth, index) in [
        ("open_in_root", 1, 2),
        ("fstat", 1, 2),
        ("pty_peer", 1, 3),
        ("send_fd", 1, 4),
    ] {
        let rec = Recorder::default().failing(call, nth, libc::EACCES);
        let r = pty(&rec).unwrap_err();
        assert_eq!(
            (stage(&r), r.index, r.errno),
            (Stage::Console, index, libc::EACCES),
            "{call}"
        );
    }
}

//! The child's privileged steps against the recording double: the mounts, namespace joins and credential calls a
//! spec produces, without root.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use super::{creds, fs};
use crate::cgroup::CgroupVersion;
use crate::namespaces::Namespaces;
use crate::plan::{Plan, PlanBuilder};
use crate::prepare;
use crate::stdio::StdioConfig;
use crate::sys::{Call, Recorder};

const NS: libc::c_int = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET;

/// The plan of `spec` for a root at /rootfs, with its namespaces (kept alive by the caller).
fn plan_of(spec: &Spec, ns: &Namespaces) -> Plan {
    let process = spec.process().clone().unwrap();
    let pp = prepare::proc_plan(&process).unwrap();
    let mut b = PlanBuilder::new(spec, &process, &pp, StdioConfig::inherit(), None).unwrap();
    b.namespaces(ns).unwrap();
    b.plan.fs = Some(prepare::fs_plan(spec, Path::new("/rootfs"), CgroupVersion::V1, NS).unwrap());
    b.finish().0
}

fn position(calls: &[Call], want: impl Fn(&Call) -> bool) -> usize {
    calls
        .iter()
        .position(want)
        .unwrap_or_else(|| panic!("not found in {calls:#?}"))
}

#[test]
fn default_spec_mounts_in_order_then_pivots() {
    let mut spec = Spec::default();
    spec.set_hostname(Some("box".into()));
    spec.set_root(Some(
        oci_spec::runtime::RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    let plan = plan_of(&spec, &Namespaces::default());
    // proc/acpi is a directory (an empty tmpfs masks it); proc/scsi does not exist (skipped).
    let rec = Recorder::with(&["/rootfs/proc/scsi"], &["/rootfs/proc/acpi"]);
    assert_eq!(fs::setup_fs(&rec, &plan, plan.fs.as_ref().unwrap()), -1);
    let mounts = rec.mounts();
    // Propagation first, then the root bound onto itself, then the spec's mounts in order, by path in the root.
    assert_eq!(mounts[0], (None, "/".into(), None, libc::MS_REC | libc::MS_PRIVATE));
    assert_eq!(
        mounts[1],
        (
            Some("/rootfs".into()),
            "/rootfs".into(),
            None,
            libc::MS_BIND | libc::MS_REC
        )
    );
    assert_eq!(
        mounts[2],
        (Some("proc".into()), "/rootfs/proc".into(), Some("proc".into()), 0)
    );
    assert_eq!(mounts[3].1, "/rootfs/dev");
    assert_eq!(mounts[3].2.as_deref(), Some("tmpfs"));
    // On a v1 host /sys/fs/cgroup is an empty read-only tmpfs.
    assert!(mounts.contains(&(
        Some("tmpfs".into()),
        "/rootfs/sys/fs/cgroup".into(),
        Some("tmpfs".into()),
        libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV | libc::MS_RELATIME | libc::MS_RDONLY
    )));
    let calls = rec.calls();
    // Device nodes in the tmpfs /dev, each chmodded to its mode and chowned.
    let null = position(&calls, |c| {
        *c == Call::Mknod {
            path: "/rootfs/dev/null".into(),
            mode: libc::S_IFCHR | 0o666,
            dev: libc::makedev(1, 3),
        }
    });
    assert_eq!(calls[null + 1], Call::Chmod("/rootfs/dev/null".into(), 0o666));
    assert_eq!(calls[null + 2], Call::Chown("/rootfs/dev/null".into(), 0, 0));
    // Masked paths: files get the verified /dev/null bound over them, directories an empty tmpfs, missing ones
    // nothing; read-only paths are bound onto themselves and remounted read-only.
    let kcore = position(&calls, |c| match c {
        Call::Mount {
            source: Some(s),
            target,
            ..
        } => s == "/rootfs/dev/null" && target == "/rootfs/proc/kcore",
        _ => false,
    });
    assert!(kcore > null);
    assert!(
        mounts
            .iter()
            .any(|m| m.1 == "/rootfs/proc/acpi" && m.2.as_deref() == Some("tmpfs"))
    );
    assert!(!mounts.iter().any(|m| m.1 == "/rootfs/proc/scsi"));
    let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    assert!(mounts.contains(&(None, "/rootfs/proc/sys".into(), None, ro)));
    // Hostname, then pivot_root from inside the root, the old root detached; the read-only root last.
    let host = position(&calls, |c| *c == Call::Sethostname("box".into()));
    let pivot = position(&calls, |c| *c == Call::PivotRoot);
    assert!(kcore < host && host < pivot);
    assert_eq!(calls[pivot - 1], Call::Chdir("/rootfs".into()));
    assert_eq!(calls[pivot + 1], Call::Umount(".".into()));
    assert_eq!(calls[pivot + 2], Call::Chdir("/".into()));
    assert_eq!(mounts.last().unwrap(), &(None, "/".into(), None, ro));
}

#[test]
fn a_root_mount_is_made_first_and_the_root_bound_onto_it() {
    let spec = Spec::default();
    let mut plan = plan_of(&spec, &Namespaces::default());
    let overlay = crate::RootMount {
        fstype: "overlay".into(),
        params: vec![
            crate::MountParam::String("lowerdir+".into(), "/layers/a".into()),
            crate::MountParam::String("upperdir".into(), "/c/upper".into()),
            crate::MountParam::Flag("userxattr".into()),
        ],
    };
    plan.fs.as_mut().unwrap().root_mount = Some(prepare::root_mount_op(&overlay).unwrap());
    let rec = Recorder::with(&[], &[]);
    fs::setup_fs(&rec, &plan, plan.fs.as_ref().unwrap());
    let calls = rec.calls();
    // After the propagation change (so the new mount stays in the container's namespace), before the root's bind.
    assert_eq!(
        calls[1],
        Call::Mount {
            source: None,
            target: "/rootfs".into(),
            fstype: Some("overlay".into()),
            flags: 0,
            data: Some("lowerdir+=/layers/a,upperdir=/c/upper,userxattr".into()),
        }
    );
    let mounts = rec.mounts();
    assert_eq!(mounts[0], (None, "/".into(), None, libc::MS_REC | libc::MS_PRIVATE));
    assert_eq!(mounts[2].0.as_deref(), Some("/rootfs"));
    assert_eq!(mounts[2].3, libc::MS_BIND | libc::MS_REC);
    // A NUL byte is refused before any process exists.
    let bad = crate::RootMount {
        fstype: "overlay".into(),
        params: vec![crate::MountParam::String("upperdir".into(), "/a\0b".into())],
    };
    assert!(prepare::root_mount_op(&bad).is_err());
}

#[test]
fn bind_mounts_go_through_the_source_fd_and_remount_with_their_flags() {
    let mut spec = Spec::default();
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/data".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some("/".into()));
    m.set_options(Some(vec![
        "rbind".into(),
        "ro".into(),
        "nosuid".into(),
        "rslave".into(),
    ]));
    spec.set_mounts(Some(vec![m]));
    let plan = plan_of(&spec, &Namespaces::default());
    let rec = Recorder::with(&["/rootfs/data"], &[]);
    fs::setup_fs(&rec, &plan, plan.fs.as_ref().unwrap());
    let calls = rec.calls();
    // The missing target is created (a directory: the source is one) inside the root.
    assert!(calls.contains(&Call::Mkdir("/rootfs/data".into())));
    let mounts = rec.mounts();
    assert_eq!(
        mounts[2],
        (
            Some("/".into()),
            "/rootfs/data".into(),
            None,
            libc::MS_BIND | libc::MS_REC
        )
    );
    assert_eq!(
        mounts[3],
        (
            None,
            "/rootfs/data".into(),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID
        )
    );
    assert_eq!(
        mounts[4],
        (None, "/rootfs/data".into(), None, libc::MS_SLAVE | libc::MS_REC)
    );
    // No tmpfs /dev mount: the device nodes go to the rootfs's own /dev (runc's rule).
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Mknod { path, .. } if path == "/rootfs/dev/zero"))
    );
}

fn namespace(typ: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path.map(Into::into));
    n
}

#[test]
fn joined_namespaces_are_entered_user_first_mount_last() {
    use LinuxNamespaceType as T;
    let mut spec = Spec::default();
    let linux = spec.linux_mut().as_mut().unwrap();
    linux.set_namespaces(Some(vec![
        namespace(T::Mount, Some("/proc/self/ns/mnt")),
        namespace(T::Ipc, Some("/proc/self/ns/ipc")),
        namespace(T::User, Some("/proc/self/ns/user")),
        namespace(T::Uts, None),
        namespace(T::Pid, None),
    ]));
    let ns = Namespaces::from_spec(spec.linux().as_ref().unwrap()).unwrap();
    let plan = plan_of(&spec, &ns);
    let rec = Recorder::default();
    creds::enter(&rec, &plan);
    let types: Vec<_> = rec
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::Setns(_, t) => ("setns", t),
            Call::Unshare(f) => ("unshare", f),
            c => panic!("{c:?}"),
        })
        .collect();
    // Inside the joined user namespace, ipc is joined by the child too; the mount namespace last; then the new
    // UTS namespace (pid is made by clone3 itself).
    assert_eq!(
        types,
        [
            ("setns", libc::CLONE_NEWUSER),
            ("setns", libc::CLONE_NEWIPC),
            ("setns", libc::CLONE_NEWNS),
            ("unshare", libc::CLONE_NEWUTS)
        ]
    );
    assert_eq!(ns.clone_flags, libc::CLONE_NEWPID as u64);
}

#[test]
fn user_groups_and_capabilities_are_switched_in_order() {
    let mut spec = Spec::default();
    let p = spec.process_mut().as_mut().unwrap();
    let mut user = p.user().clone();
    user.set_uid(1000);
    user.set_gid(1001);
    user.set_additional_gids(Some(vec![10, 20]));
    p.set_user(user);
    let plan = plan_of(&spec, &Namespaces::default());
    let rec = Recorder::default();
    creds::drop_bounding(&rec, &plan);
    creds::switch_user(&rec, &plan);
    let calls = rec.calls();
    let drops: Vec<u8> = calls
        .iter()
        .filter_map(|c| match c {
            Call::DropBounding(cap) => Some(*cap),
            _ => None,
        })
        .collect();
    // Everything outside the bounding set (runc's default spec: AUDIT_WRITE, KILL, NET_BIND_SERVICE).
    assert!(
        !drops.contains(&5) && !drops.contains(&10) && !drops.contains(&29),
        "{drops:?}"
    );
    assert!(drops.contains(&21), "CAP_SYS_ADMIN kept: {drops:?}");
    let rest: Vec<Call> = calls.into_iter().skip(drops.len()).collect();
    assert_eq!(
        rest[..6],
        [
            Call::KeepCaps,
            Call::Setgroups(vec![10, 20]),
            Call::Setresgid(1001),
            Call::Setresuid(1000),
            Call::Capset(plan.caps),
            Call::ClearAmbient,
        ]
    );
    // Ambient capabilities that are permitted and inheritable are raised; runc's default lists them in all sets.
    let raised: Vec<_> = rest[6..].iter().collect();
    assert!(raised.iter().all(|c| matches!(c, Call::RaiseAmbient(_))), "{raised:?}");
}

#[test]
fn a_child_that_must_fork_into_a_joined_pid_namespace_forks_after_its_joins() {
    use LinuxNamespaceType as T;
    let mut spec = Spec::default();
    let linux = spec.linux_mut().as_mut().unwrap();
    linux.set_namespaces(Some(vec![
        namespace(T::User, Some("/proc/self/ns/user")),
        namespace(T::Mount, Some("/proc/self/ns/mnt")),
    ]));
    let ns = Namespaces::from_spec(spec.linux().as_ref().unwrap()).unwrap();
    let mut plan = plan_of(&spec, &ns);
    plan.fork_w = 200;
    let rec = Recorder::default();
    creds::enter(&rec, &plan);
    // The recorder goes on as the new process: both joins, then the fork, and nothing is written (that is the
    // go-between's part).
    let calls = rec.calls();
    assert!(
        matches!(calls[..], [Call::Setns(_, _), Call::Setns(_, _), Call::Fork]),
        "{calls:?}"
    );
}

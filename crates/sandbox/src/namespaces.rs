//! The container's namespaces: which are new, which are joined by path (and how), and the checks runc makes on
//! `linux.namespaces`.
//!
//! A namespace listed with a `path` is joined; one without is created. Where each is joined depends on what it
//! belongs to: pid, net, ipc, uts and cgroup namespaces are joined by a short-lived helper thread just before the
//! clone (they belong to a thread, and the child starts in them); the user namespace and the mount namespace are
//! joined by the child itself (a thread of a multithreaded process cannot change its mount namespace, and what
//! follows a joined user namespace must be joined from inside it). A joined mount namespace gets the container's
//! mounts and `pivot_root`, as runc does: whoever holds it sees them.
//!
//! The checks, as runc makes them: each type at most once; every path opened and checked to be a namespace of the
//! listed type (`NS_GET_NSTYPE`), so a wrong path is an error naming the entry rather than a failed `setns`; uid and
//! gid mappings only with a user namespace, and a new user namespace only with them.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::error::{Error, Result};

/// The `CLONE_NEW*` flag of a namespace type.
pub(crate) fn flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The name of a namespace type under `/proc/PID/ns/`.
pub(crate) fn name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        _ => "time",
    }
}

/// The inode of `/proc/PID/ns/NAME` (`pid` may be `self`).
pub(crate) fn inode(pid: &str, name: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{name}"))
        .ok()
        .map(|m| m.ino())
}

/// The namespaces of a new container, with the fds of those joined by path.
#[derive(Debug, Default)]
pub(crate) struct Namespaces {
    /// New namespaces made by `clone3` itself (pid and user).
    pub clone_flags: u64,
    /// New namespaces made by `unshare` in the child.
    pub unshare: libc::c_int,
    /// Every namespace the container has of its own, new or joined (not the caller's): what sysctls and a
    /// hostname may be set in.
    pub own: libc::c_int,
    /// A user namespace to join (in the child, first).
    pub join_user: Option<OwnedFd>,
    /// A mount namespace to join (in the child, after the user namespace).
    pub join_mount: Option<OwnedFd>,
    /// Other namespaces to join: by the helper thread, or by the child when it joins a user namespace first.
    pub join_other: Vec<(OwnedFd, libc::c_int)>,
    /// A pid namespace to join (by the helper thread: the child is born in it).
    pub pid_ns: Option<OwnedFd>,
    /// `clone3` makes a new user namespace: the parent writes its mappings.
    pub new_userns: bool,
}

/// The checks on `linux.namespaces` that need no file: types listed once, a mount namespace, the user namespace
/// and its mappings together.
///
/// # Errors
/// [`Error::InvalidSpec`] naming the entry at fault.
pub(crate) fn check(linux: &Linux) -> Result<()> {
    let mut seen = 0;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let f = flag(ns.typ());
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(Error::spec(
                &format!("linux.namespaces[{i}]"),
                "time namespaces are not supported",
            ));
        }
        if seen & f != 0 {
            return Err(Error::spec(
                &format!("linux.namespaces[{i}]"),
                format!("namespace type {} listed twice", name(f)),
            ));
        }
        seen |= f;
    }
    if seen & libc::CLONE_NEWNS == 0 {
        return Err(Error::spec(
            "linux.namespaces",
            "a mount namespace is required (new, or joined by path): pivot_root happens in it",
        ));
    }
    let user = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    let mappings = linux.uid_mappings().is_some() || linux.gid_mappings().is_some();
    match user {
        None if mappings => Err(Error::spec(
            "linux.uidMappings",
            "uid/gid mappings without a user namespace in linux.namespaces",
        )),
        Some(u) if u.path().is_none() && (linux.uid_mappings().is_none() || linux.gid_mappings().is_none()) => Err(
            Error::spec("linux.uidMappings", "a new user namespace needs uid and gid mappings"),
        ),
        _ => Ok(()),
    }
}

/// Open `path` and check that it is a namespace of type `f`.
fn open(field: &str, path: &std::path::Path, f: libc::c_int) -> Result<OwnedFd> {
    let fd = OwnedFd::from(File::open(path).map_err(Error::io("open namespace", path))?);
    // SAFETY: an ioctl without arguments on an fd we own.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if t < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::spec(
            field,
            format!("{} is not a namespace ({e})", path.display()),
        ));
    }
    if t != f {
        return Err(Error::spec(
            field,
            format!("{} is a {} namespace, not {}", path.display(), name(t), name(f)),
        ));
    }
    Ok(fd)
}

impl Namespaces {
    /// Check `linux.namespaces` and open the namespaces to join.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] from [`check`] or for a path that is not a namespace of its type; [`Error::Io`] when
    /// a path cannot be opened.
    pub(crate) fn from_spec(linux: &Linux) -> Result<Namespaces> {
        check(linux)?;
        let mut ns = Namespaces::default();
        for (i, entry) in linux.namespaces().iter().flatten().enumerate() {
            let f = flag(entry.typ());
            match entry.path() {
                Some(p) => {
                    let fd = open(&format!("linux.namespaces[{i}].path"), p, f)?;
                    // Joining the caller's own namespace gives the container nothing of its own (runc's check for
                    // net.* sysctls).
                    let st = std::fs::metadata(p).map_err(Error::io("open namespace", p))?;
                    if inode("self", name(f)) != Some(st.ino()) {
                        ns.own |= f;
                    }
                    match f {
                        libc::CLONE_NEWPID => ns.pid_ns = Some(fd),
                        libc::CLONE_NEWUSER => ns.join_user = Some(fd),
                        libc::CLONE_NEWNS => ns.join_mount = Some(fd),
                        _ => ns.join_other.push((fd, f)),
                    }
                }
                None => {
                    ns.own |= f;
                    match f {
                        libc::CLONE_NEWPID | libc::CLONE_NEWUSER => ns.clone_flags |= f as u64,
                        _ => ns.unshare |= f,
                    }
                }
            }
        }
        ns.new_userns = ns.clone_flags & libc::CLONE_NEWUSER as u64 != 0;
        Ok(ns)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace};

    use super::*;

    fn linux(entries: &[(LinuxNamespaceType, Option<&str>)]) -> Linux {
        let mut l = Linux::default();
        l.set_namespaces(Some(
            entries
                .iter()
                .map(|(t, p)| {
                    let mut n = LinuxNamespace::default();
                    n.set_typ(*t);
                    n.set_path(p.map(Into::into));
                    n
                })
                .collect(),
        ));
        l
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidSpec { field, .. } => field,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn namespace_types_are_checked_as_runc_checks_them() {
        use LinuxNamespaceType as T;
        assert!(check(&linux(&[(T::Mount, None), (T::Pid, None)])).is_ok());
        // Twice the same type, no mount namespace, time namespaces.
        assert_eq!(
            field_of(
                check(&linux(&[
                    (T::Mount, None),
                    (T::Network, None),
                    (T::Network, Some("/x"))
                ]))
                .unwrap_err()
            ),
            "linux.namespaces[2]"
        );
        assert_eq!(
            field_of(check(&linux(&[(T::Pid, None)])).unwrap_err()),
            "linux.namespaces"
        );
        assert_eq!(
            field_of(check(&linux(&[(T::Mount, None), (T::Time, None)])).unwrap_err()),
            "linux.namespaces[1]"
        );
        // A mount namespace joined by path is enough.
        assert!(check(&linux(&[(T::Mount, Some("/proc/1/ns/mnt"))])).is_ok());
        // Mappings without a user namespace; a new user namespace without mappings; a joined one needs none.
        let mut l = linux(&[(T::Mount, None)]);
        l.set_uid_mappings(Some(vec![LinuxIdMapping::default()]));
        assert_eq!(field_of(check(&l).unwrap_err()), "linux.uidMappings");
        assert_eq!(
            field_of(check(&linux(&[(T::Mount, None), (T::User, None)])).unwrap_err()),
            "linux.uidMappings"
        );
        assert!(check(&linux(&[(T::Mount, None), (T::User, Some("/proc/1/ns/user"))])).is_ok());
    }

    #[test]
    fn a_path_must_be_a_namespace_of_the_listed_type() {
        use LinuxNamespaceType as T;
        let e =
            Namespaces::from_spec(&linux(&[(T::Mount, None), (T::Network, Some("/proc/self/ns/ipc"))])).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidSpec { field, reason }
                if field == "linux.namespaces[1].path" && reason.contains("is a ipc namespace, not net")),
            "{e:?}"
        );
        let e =
            Namespaces::from_spec(&linux(&[(T::Mount, None), (T::Network, Some("/proc/self/status"))])).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidSpec { reason, .. } if reason.contains("is not a namespace")),
            "{e:?}"
        );
        // The caller's own namespace joined by path is not the container's own.
        let ns = Namespaces::from_spec(&linux(&[(T::Mount, None), (T::Ipc, Some("/proc/self/ns/ipc"))])).unwrap();
        assert_eq!(ns.own, libc::CLONE_NEWNS);
        assert_eq!(ns.unshare, libc::CLONE_NEWNS);
        assert_eq!(ns.join_other.len(), 1);
    }
}

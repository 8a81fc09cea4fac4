//! [`Container::spawn_with`]: a new container from a spec and a root filesystem.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::Spec;

use crate::cgroup::{Cgroup, CgroupDriver};
use crate::clone::{clone_child, settle};
use crate::container::Container;
use crate::error::{Error, Result};
use crate::fds::pipe;
use crate::filter::resolve_seccomp;
use crate::namespaces::Namespaces;
use crate::options::{BeforePivot, DefaultSeccomp, SpawnOptions};
use crate::plan::{FsPlan, PlanBuilder};
use crate::prepare::{self, ProcPlan};
use crate::process::ProcessHandle;
use crate::report::{Stage, read_report, report_error};
use crate::seccomp::SeccompProgram;
use crate::state::{self, ContainerState, StateDir};
use crate::stdio::StdioConfig;

/// `KEY_USR_SEARCH` and `KEY_OTH_SEARCH` of `<linux/keyctl.h>`.
const KEY_USR_SEARCH: u32 = 0x0008_0000;
const KEY_OTH_SEARCH: u32 = 0x0000_0008;

/// The session keyring a container's processes join: `_ses.ID`, as runc names it.
pub(crate) fn session_keyring(id: &str) -> Result<std::ffi::CString> {
    prepare::cstring("session keyring", format!("_ses.{id}").as_bytes())
}

/// What the state directory records for a container.
fn state_record(
    id: &str,
    pid: i32,
    rootfs: &Path,
    cgroup: &Cgroup,
    spec: &Spec,
    opts: &SpawnOptions,
    creating: bool,
) -> ContainerState {
    ContainerState {
        id: id.to_owned(),
        pid,
        pid_start_time: state::pid_start_time(pid).unwrap_or(0),
        rootfs: rootfs.to_owned(),
        cgroup: cgroup.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        annotations: spec.annotations().clone().unwrap_or_default(),
        seccomp_unconfined: opts.default_seccomp == DefaultSeccomp::Unconfined,
        seccomp_cache: opts.seccomp_cache.clone(),
        no_new_keyring: opts.no_new_keyring,
        creating,
    }
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Container {
    /// Run `spec.process` in a new container rooted at `rootfs`, with default [`SpawnOptions`].
    ///
    /// # Errors
    /// See [`Container::spawn_with`].
    pub fn spawn(spec: &Spec, rootfs: &Path, stdio: StdioConfig) -> Result<Container> {
        Container::spawn_with(spec, rootfs, stdio, SpawnOptions::default())
    }

    /// Run `spec.process` in a new container rooted at `rootfs`.
    ///
    /// The namespaces are those of `linux.namespaces` (a `path` joins an existing one; a mount namespace is
    /// required). The cgroup is created and the process attached before it runs anything of its own.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] for a spec this crate cannot honour; the typed setup errors ([`Error::ExecNotFound`],
    /// [`Error::Cwd`], [`Error::User`], [`Error::Mount`], [`Error::Setup`]) reported by the child; cgroup and
    /// seccomp errors.
    pub fn spawn_with(spec: &Spec, rootfs: &Path, stdio: StdioConfig, mut opts: SpawnOptions) -> Result<Container> {
        let before_pivot = opts.before_pivot.take();
        let id = match &opts.id {
            Some(id) => id.clone(),
            None => format!(
                "wharf-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        state::check_id(&id)?;
        let rootfs = std::fs::canonicalize(rootfs).map_err(|source| Error::Rootfs {
            path: rootfs.to_owned(),
            source,
        })?;
        if !rootfs.is_dir() {
            return Err(Error::Rootfs {
                path: rootfs,
                source: std::io::ErrorKind::NotADirectory.into(),
            });
        }
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| Error::spec("process", "missing"))?;
        let linux = spec.linux().clone().unwrap_or_default();
        let pp = prepare::proc_plan(&process)?;

        let ns = Namespaces::from_spec(&linux)?;
        // Making namespaces needs CAP_SYS_ADMIN, which an unprivileged caller has only in a user namespace of its
        // own: say so rather than let clone3 answer EPERM.
        if !ns.new_userns && ns.join_user.is_none() && !rustix::process::geteuid().is_root() {
            return Err(Error::spec(
                "linux.namespaces",
                "a rootless container needs a user namespace (a `user` entry with linux.uidMappings and \
                 linux.gidMappings, as `runc spec --rootless` writes): without one, making namespaces needs root",
            ));
        }

        let driver = match &opts.cgroup_driver {
            Some(d) => d.clone(),
            None => CgroupDriver::detect()?,
        };
        prepare::check_supported(spec, driver.version)?;
        let mut fs = prepare::fs_plan(spec, &rootfs, driver.version, ns.own)?;
        if let Some(m) = &opts.root_mount {
            if ns.own & libc::CLONE_NEWNS == 0 {
                return Err(Error::spec(
                    "linux.namespaces",
                    "a root mount is made in the container's own mount namespace: add a `mount` entry without a path",
                ));
            }
            fs.root_mount = Some(prepare::root_mount_op(m)?);
        }
        let seccomp = resolve_seccomp(spec, opts.default_seccomp, opts.seccomp_cache.as_deref())?;

        let state_dir = opts.state_dir.as_ref().map(StateDir::new).transpose()?;
        if let Some(sd) = &state_dir {
            sd.reserve(&id)?;
        }
        let cleanup_state = |sd: &Option<StateDir>| {
            if let Some(sd) = sd {
                let _ = state::remove_state(&sd.dir(&id));
            }
        };
        let cg_rel = linux
            .cgroups_path()
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("wharf/{id}")));
        let cgroup = match Cgroup::create(&driver, &cg_rel, linux.resources().as_ref()) {
            Ok(c) => c,
            Err(e) => {
                cleanup_state(&state_dir);
                return Err(e);
            }
        };
        let new = New {
            spec,
            id: &id,
            rootfs: &rootfs,
            opts: &opts,
            state_dir: &state_dir,
            cgroup: &cgroup,
        };
        let res = new.launch(pp, fs, seccomp, stdio, before_pivot, ns);
        match res {
            Ok(mut c) => {
                c.cgroup = cgroup;
                c.state_dir = state_dir;
                if let Some(sd) = &c.state_dir {
                    let st = state_record(&id, c.process.pid, &rootfs, &c.cgroup, spec, &opts, false);
                    let cfg = sd.dir(&id).join("config.json");
                    spec.save(&cfg).map_err(|e| Error::State {
                        id: id.clone(),
                        reason: format!("{}: {e}", cfg.display()),
                    })?;
                    sd.save(&st)?;
                }
                Ok(c)
            }
            Err(e) => {
                let _ = cgroup.delete();
                cleanup_state(&state_dir);
                Err(e)
            }
        }
    }
}

/// A container being made: what its launch needs besides the plan's parts.
struct New<'a> {
    spec: &'a Spec,
    id: &'a str,
    rootfs: &'a Path,
    opts: &'a SpawnOptions,
    state_dir: &'a Option<StateDir>,
    cgroup: &'a Cgroup,
}

impl New<'_> {
    /// Build the plan, clone the child, set it up from the parent's side, release it and read its report.
    fn launch(
        &self,
        pp: ProcPlan,
        mut fs: FsPlan,
        seccomp: Option<SeccompProgram>,
        stdio: StdioConfig,
        before_pivot: Option<BeforePivot>,
        ns: Namespaces,
    ) -> Result<Container> {
        let New {
            spec,
            id,
            rootfs,
            opts,
            state_dir,
            cgroup,
        } = *self;
        let process = spec.process().clone().unwrap_or_default();
        let linux = spec.linux().clone().unwrap_or_default();
        let mut b = PlanBuilder::new(spec, &process, &pp, stdio, seccomp.clone())?;
        fs.console = b.io.pty_slave;
        fs.no_pivot = opts.no_pivot;
        fs.console_host = b.io.pty_path.clone().unwrap_or_default();
        let thread_joins = b.namespaces(&ns)?;
        // The start gate: a FIFO in the state dir (so another process can start us), or a pipe.
        let mut start_pipe = None;
        if opts.created_only {
            b.plan.hold_fifo = match state_dir {
                Some(sd) => {
                    let p = sd.fifo_path(id);
                    let cp = prepare::cstring("state dir", p.as_os_str().as_encoded_bytes())?;
                    // SAFETY: mkfifo with a valid path.
                    if unsafe { libc::mkfifo(cp.as_ptr(), 0o600) } < 0 {
                        return Err(Error::io("mkfifo", &p)(std::io::Error::last_os_error()));
                    }
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(libc::O_CLOEXEC)
                        .open(&p)
                        .map_err(Error::io("open start FIFO", &p))?;
                    b.keep(&f)?
                }
                None => {
                    let (r, w) = pipe()?;
                    start_pipe = Some(File::from(w));
                    b.keep(&r)?
                }
            };
        }
        let cg_join = cgroup.join_fds()?;
        b.cgroup(&cg_join)?;
        let mut pause_w = None;
        if before_pivot.is_some() {
            let (r, w) = pipe()?;
            pause_w = Some(File::from(w));
            b.plan.pause_r = b.keep(&r)?;
        }
        if !opts.no_new_keyring {
            // Searchable by the container's own user: by "other" when a user namespace maps it (runc does the same).
            let in_userns = ns.new_userns || ns.join_user.is_some();
            b.plan.keyring = Some(session_keyring(id)?);
            b.plan.keyring_perm_add = if in_userns { KEY_OTH_SEARCH } else { KEY_USR_SEARCH };
        }
        b.plan.fs = Some(fs);
        b.plan.init = opts.init;
        b.plan.loopback_up = opts.loopback_up && ns.unshare & libc::CLONE_NEWNET != 0;
        let (plan, mut io, parent) = b.finish();
        let (pid, pidfd, in_cgroup) = clone_child(&plan, ns.clone_flags, &thread_joins, cg_join.v2_dir.as_ref())?;
        drop(parent.fds);
        let (sync_w, err_r) = (parent.sync_w, parent.err_r);
        let mut handle = ProcessHandle {
            pid,
            pidfd,
            status: None,
            stdin: None,
            stdout: None,
            stderr: None,
            pty_master: None,
            detached: false,
        };
        let [i, o, e] = std::mem::take(&mut io.parent_ends);
        (handle.stdin, handle.stdout, handle.stderr) = (i, o, e);
        // From here on, a failure kills the child (ProcessHandle's Drop).
        let parent_setup = || -> Result<()> {
            if ns.new_userns {
                crate::idmap::write_maps(
                    pid,
                    linux.uid_mappings().as_deref().unwrap_or_default(),
                    linux.gid_mappings().as_deref().unwrap_or_default(),
                )?;
            }
            settle(cgroup, pid, in_cgroup, process.oom_score_adj())
        };
        parent_setup()?;
        let mut sync_w = File::from(sync_w);
        std::io::Write::write_all(&mut sync_w, &[1]).map_err(Error::os("release child"))?;
        drop(sync_w);
        let mut err_r = File::from(err_r);
        let mut report = read_report(&mut err_r)?;
        if let (Some(r), Some(hook), Some(mut go)) = (report, before_pivot, pause_w) {
            if r.stage == Stage::Mounted as u32 {
                if let Some(sd) = state_dir {
                    sd.save(&state_record(id, pid, rootfs, cgroup, spec, opts, true))?;
                }
                (hook.0)(pid).map_err(|reason| Error::BeforePivot {
                    id: id.to_owned(),
                    reason,
                })?;
                std::io::Write::write_all(&mut go, &[1]).map_err(Error::os("resume child"))?;
                report = read_report(&mut err_r)?;
            }
        }
        let program = pp.program.clone();
        if report.is_none() || report.is_some_and(|r| r.stage == Stage::Ready as u32) {
            handle.pty_master = io.take_master()?;
        }
        match report {
            None => {}
            Some(r) if r.stage == Stage::Ready as u32 => {}
            Some(r) => {
                let _ = handle.wait();
                return Err(report_error(r, &pp, &cg_join, plan.fs.as_ref()));
            }
        }
        let created = report.is_some();
        Ok(Container {
            id: id.to_owned(),
            process: handle,
            cgroup: cgroup.clone(),
            state_dir: None,
            start_pipe,
            error_pipe: if created { Some(err_r) } else { None },
            spec: spec.clone(),
            seccomp,
            program,
            exit: None,
            init: opts.init,
            detached: false,
            no_new_keyring: opts.no_new_keyring,
        })
    }
}

//! Lifecycle hooks, with the container's state JSON on their stdin.
//!
//! Where each kind runs (see the report in `main.rs`'s docs for what differs from runc):
//! - `prestart`, `createRuntime`: in the runtime's namespaces during `create`, when the container's namespaces and
//!   mounts exist and its process waits before `pivot_root` (the state says `creating`).
//! - `createContainer`: right after those, in the container's namespaces (see [`run_in_namespaces`]).
//! - `startContainer`: at `start`, inside the container (through the sandbox's exec) before the program runs.
//! - `poststart`: in the runtime's namespaces after the program was released; `poststop`: after `delete`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wharf::sandbox::oci_spec::runtime::{Hook, ProcessBuilder};
use wharf::sandbox::{StateDir, StdioConfig};

use crate::error::{Error, Result};

fn hook_error(kind: &'static str, h: &Hook, reason: impl Into<String>) -> Error {
    Error::Hook {
        kind,
        path: h.path().clone(),
        reason: reason.into(),
    }
}

/// Run `hooks` in order on the host, each with `state` on stdin; the first failure stops the rest.
///
/// # Errors
/// [`Error::Hook`] when one cannot be started, exits non-zero, is killed or outlives its timeout.
pub fn run_host(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    run(kind, hooks, state, &[])
}

/// Run `createContainer` hooks in the namespaces of the container's process `pid`, which waits before its
/// `pivot_root`: the mount namespace (where the host's files are still visible, as for runc), and the user,
/// network, IPC, UTS and cgroup namespaces it does not share with this process. The pid namespace applies to what
/// a hook starts, not to the hook itself (joining one only affects children).
///
/// # Errors
/// [`Error::Hook`] as [`run_host`], also when a namespace cannot be opened.
pub fn run_in_namespaces(kind: &'static str, hooks: &[Hook], state: &[u8], pid: i32) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let mut fds = Vec::new();
    for (name, flag) in [
        ("user", libc::CLONE_NEWUSER),
        ("mnt", libc::CLONE_NEWNS),
        ("net", libc::CLONE_NEWNET),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("pid", libc::CLONE_NEWPID),
    ] {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        if std::fs::read_link(&theirs).ok() == std::fs::read_link(&ours).ok() {
            continue;
        }
        let f = std::fs::File::open(&theirs).map_err(|e| hook_error(kind, &hooks[0], format!("{theirs}: {e}")))?;
        fds.push((std::os::fd::OwnedFd::from(f), flag));
    }
    run(kind, hooks, state, &fds)
}

fn run(
    kind: &'static str,
    hooks: &[Hook],
    state: &[u8],
    namespaces: &[(std::os::fd::OwnedFd, libc::c_int)],
) -> Result<()> {
    for h in hooks {
        crate::log::debug(&format!("running {kind} hook {}", h.path().display()));
        let mut cmd = Command::new(h.path());
        if !namespaces.is_empty() {
            let joins: Vec<(libc::c_int, libc::c_int)> = namespaces
                .iter()
                .map(|(f, t)| (std::os::fd::AsRawFd::as_raw_fd(f), *t))
                .collect();
            // SAFETY: between fork and exec the closure only makes setns system calls on fds that stay open.
            unsafe {
                cmd.pre_exec(move || {
                    for (fd, typ) in &joins {
                        if libc::setns(*fd, *typ) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let args = h.args().clone().unwrap_or_default();
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
        cmd.env_clear();
        for kv in h.env().iter().flatten() {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| hook_error(kind, h, e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook need not read its stdin.
            let _ = stdin.write_all(state);
        }
        let deadline = h
            .timeout()
            .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(hook_error(kind, h, e.to_string())),
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(hook_error(
                    kind,
                    h,
                    format!("timed out after {}s", h.timeout().unwrap_or(0)),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !status.success() {
            return Err(hook_error(kind, h, format!("failed: {status}")));
        }
    }
    Ok(())
}

/// Run `startContainer` hooks inside container `id` (its namespaces, cgroup and security settings).
///
/// # Errors
/// [`Error::Hook`] as [`run_host`]; the sandbox's exec errors (program not found in the container, ...).
pub fn run_in_container(sd: &StateDir, id: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    let kind = "startContainer";
    for h in hooks {
        let mut args = vec![h.path().to_string_lossy().into_owned()];
        args.extend(h.args().iter().flatten().skip(1).cloned());
        let process = ProcessBuilder::default()
            .args(args)
            .env(h.env().clone().unwrap_or_default())
            .cwd("/")
            .build()
            .map_err(|e| hook_error(kind, h, e.to_string()))?;
        let (r, mut w) = {
            let (r, w) = rustix::pipe::pipe().map_err(|e| hook_error(kind, h, e.to_string()))?;
            (r, std::fs::File::from(w))
        };
        let _ = w.write_all(state);
        drop(w);
        let stdio = StdioConfig {
            stdin: r.into(),
            stdout: wharf::sandbox::Stdio::Null,
            stderr: wharf::sandbox::Stdio::Inherit,
            extra_fds: Vec::new(),
        };
        let mut p = sd.exec(id, &process, stdio)?;
        let timeout = h.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
        match p.wait_timeout(timeout)? {
            Some(s) if s.code() == Some(0) => {}
            Some(s) => return Err(hook_error(kind, h, format!("failed: {s:?}"))),
            None => {
                let _ = p.kill(9);
                let _ = p.wait();
                return Err(hook_error(kind, h, "timed out"));
            }
        }
    }
    Ok(())
}

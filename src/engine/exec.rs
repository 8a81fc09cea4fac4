//! Another process in a running container (`docker exec`).

use std::path::Path;

use wharf_image::oci_spec::runtime::Spec;
use wharf_image::user::{self, RootfsUsers};
use wharf_sandbox::{ProcessHandle, StdioConfig};

use super::Engine;
use super::error::{Error, Result};

/// What [`Engine::exec`] runs (`docker exec [-e] [-w] [-u]`): everything else (security settings, namespaces,
/// cgroup) is the container's, and so are the user, environment and directory unless these say otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSettings {
    /// The command and its arguments (required).
    pub command: Vec<String>,
    /// `KEY=VALUE` entries over the container's environment.
    pub env: Vec<String>,
    /// Its working directory, an absolute path in the container; default: the container's.
    pub workdir: Option<String>,
    /// Its user, as `run -u` takes it (`name`, `uid`, `name:group`, `uid:gid`, …), names resolved in the
    /// running container's `/etc/passwd` and `/etc/group`; `HOME` becomes the user's home unless `env` sets it.
    /// Default: the container's user.
    pub user: Option<String>,
    /// Give it a terminal (its master is the handle's `pty_master`).
    pub tty: bool,
}

impl Engine {
    /// Runs another process in running container `name`, with the container's environment, user and security
    /// settings; the caller waits on the handle (`handle.wait()` blocks).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`], [`Error::NotRunning`]; the sandbox's typed errors (program not found, …).
    pub fn exec(&self, name: &str, settings: &ExecSettings, stdio: StdioConfig) -> Result<ProcessHandle> {
        self.records().get(name)?;
        let states = self.layout().state_dir()?;
        let config = states.dir(name).join("config.json");
        if !config.exists() {
            return Err(Error::NotRunning(name.to_string()));
        }
        let spec = Spec::load(&config)?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(settings.command.clone()));
        process.set_terminal(Some(settings.tty));
        if let Some(dir) = &settings.workdir {
            if !dir.starts_with('/') {
                return Err(Error::InvalidSetting {
                    setting: "exec working directory",
                    value: dir.clone(),
                    reason: "it must be an absolute path".into(),
                });
            }
            process.set_cwd(dir.into());
        }
        let mut env = process.env().clone().unwrap_or_default();
        if let Some(spec) = &settings.user {
            // The container's own view of its files: its first process's root, never a path out of it.
            let pid = states.load(name)?.pid;
            let bad = |reason: String| Error::InvalidSetting {
                setting: "exec user",
                value: spec.clone(),
                reason,
            };
            let users = RootfsUsers::read(Path::new(&format!("/proc/{pid}/root"))).map_err(|e| bad(e.to_string()))?;
            let resolved = user::resolve(spec, Some(&users)).map_err(|e| bad(e.to_string()))?;
            let mut u = process.user().clone();
            u.set_uid(resolved.uid);
            u.set_gid(resolved.gid);
            u.set_additional_gids(Some(resolved.additional_gids).filter(|g| !g.is_empty()));
            process.set_user(u);
            env.retain(|x| !x.starts_with("HOME="));
            env.push(format!("HOME={}", resolved.home.as_deref().unwrap_or("/")));
        }
        for e in &settings.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        process.set_env(Some(env));
        Ok(states.exec(name, &process, stdio)?)
    }
}

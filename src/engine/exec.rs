//! Another process in a running container (`docker exec`).

use wharf_image::oci_spec::runtime::Spec;
use wharf_sandbox::{ProcessHandle, StdioConfig};

use super::Engine;
use super::error::{Error, Result};

/// What [`Engine::exec`] runs: everything else (user, security settings, namespaces, cgroup) is the
/// container's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSettings {
    /// The command and its arguments (required).
    pub command: Vec<String>,
    /// `KEY=VALUE` entries over the container's environment.
    pub env: Vec<String>,
    /// Its working directory; default: the container's.
    pub workdir: Option<String>,
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
            process.set_cwd(dir.into());
        }
        let mut env = process.env().clone().unwrap_or_default();
        for e in &settings.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        process.set_env(Some(env));
        Ok(states.exec(name, &process, stdio)?)
    }
}

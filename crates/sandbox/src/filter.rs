//! Which seccomp filter a container gets, compiled once per profile (in memory, and on disk with a cache
//! directory).

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::bpf_cache;
use crate::caps;
use crate::error::{Error, Result};
use crate::options::DefaultSeccomp;
use crate::seccomp::{self, KernelVersion, SeccompProgram};

/// Compiled filters by profile: compiling Docker's profile with libseccomp takes milliseconds (hundreds of names on
/// three architectures), far more than the rest of a spawn, and the same few profiles are used over and over.
static SECCOMP_CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, SeccompProgram>>> =
    std::sync::LazyLock::new(Default::default);

fn cached(key: String, disk: Option<&Path>, build: impl FnOnce() -> Result<SeccompProgram>) -> Result<SeccompProgram> {
    let lock = || SECCOMP_CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Per cache directory: what a directory holds is what spawns that name it get.
    let mem_key = match disk {
        Some(dir) => format!("{}\0{key}", dir.display()),
        None => key.clone(),
    };
    if let Some(p) = lock().get(&mem_key) {
        return Ok(p.clone());
    }
    let p = match disk {
        Some(dir) => bpf_cache::get_or_build(dir, &key, build)?,
        None => build()?,
    };
    let mut cache = lock();
    if cache.len() >= 32 {
        cache.clear();
    }
    cache.insert(mem_key, p.clone());
    Ok(p)
}

pub(crate) fn resolve_seccomp(
    spec: &Spec,
    default: DefaultSeccomp,
    disk: Option<&Path>,
) -> Result<Option<SeccompProgram>> {
    if let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let key = serde_json::to_string(profile).map_err(|e| Error::Seccomp { reason: e.to_string() })?;
        return cached(key, disk, || seccomp::compile(profile)).map(Some);
    }
    match default {
        DefaultSeccomp::Unconfined => Ok(None),
        DefaultSeccomp::Docker => {
            let bounding = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().clone())
                .unwrap_or_else(caps::docker_default)
                .bounding()
                .clone()
                .unwrap_or_default();
            let kernel = KernelVersion::running().unwrap_or(KernelVersion(0, 0));
            let key = format!("docker:{:x}:{}.{}", caps::mask(Some(&bounding)), kernel.0, kernel.1);
            cached(key, disk, || {
                seccomp::compile(&seccomp::docker_default(&bounding, kernel)?)
            })
            .map(Some)
        }
    }
}

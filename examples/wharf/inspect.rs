//! `inspect` of containers and images, as docker's: each name is looked up as a container first, then as an
//! image, and the answers are printed as one JSON array.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wharf::engine::{ContainerInfo, State};

use crate::{Ctx, Result};

/// docker's time for "never": Go's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `docker inspect NAME…`: containers (by name or id) and images, as one JSON array; `--type` limits the lookup.
pub fn inspect(ctx: &Ctx, names: &[String], kind: Option<&str>) -> Result<()> {
    if let Some(k) = kind
        && !["container", "image"].contains(&k)
    {
        return Err(format!("\"{k}\" is not a valid value for --type").into());
    }
    let mut out = Vec::new();
    for name in names {
        let container = match kind {
            Some("image") => None,
            _ => ctx.engine.resolve(name).ok().and_then(|n| ctx.engine.inspect(&n).ok()),
        };
        match (container, kind) {
            (Some(c), _) => out.push(container_json(&c)),
            (None, Some("container")) => return Err(format!("No such container: {name}").into()),
            (None, _) => match crate::images::inspect_json(ctx, name) {
                Ok(image) => out.push(image),
                Err(_) if kind.is_none() => return Err(format!("No such object: {name}").into()),
                Err(e) => return Err(e),
            },
        }
    }
    crate::print(&(serde_json::to_string_pretty(&out)? + "\n"))
}

fn time(t: Option<SystemTime>) -> String {
    t.filter(|t| *t > UNIX_EPOCH)
        .map_or(ZERO_TIME.to_string(), wharf::image::config::rfc3339)
}

/// A container as docker's inspect shapes it (the fields wharf knows).
fn container_json(c: &ContainerInfo) -> Value {
    let settings = c.settings.clone().unwrap_or_default();
    let running = c.state == State::Running;
    let status = match c.state {
        _ if c.restarting => "restarting",
        State::Creating => "created",
        s => s.as_str(),
    };
    let exit = c.exit.filter(|_| !running);
    let mounts: Vec<Value> = settings
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": "bind",
                "Source": m.source,
                "Destination": m.target,
                "Mode": if m.read_only { "ro" } else { "" },
                "RW": !m.read_only,
                "Propagation": "rprivate",
            })
        })
        .collect();
    let cmd = if settings.command.is_empty() {
        c.command.clone()
    } else {
        settings.command.clone()
    };
    json!({
        "Id": c.id,
        "Created": time(Some(c.created)),
        "Path": c.command.first().cloned().unwrap_or_default(),
        "Args": c.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": running || c.restarting,
            "Paused": false,
            "Restarting": c.restarting,
            "OOMKilled": exit.is_some_and(|e| e.oom_killed),
            "Dead": false,
            "Pid": c.pid.unwrap_or(0),
            "ExitCode": exit.and_then(|e| e.status()).unwrap_or(0),
            "StartedAt": time(c.started),
            "FinishedAt": time(c.finished.filter(|_| !running)),
        },
        "Image": c.image_id.clone().unwrap_or_default(),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Mounts": mounts,
        "Config": {
            "Hostname": settings.hostname.clone().unwrap_or_else(|| c.name.clone()),
            "User": settings.user.clone().unwrap_or_default(),
            "Tty": settings.tty,
            "Env": settings.env,
            "Cmd": cmd,
            "Image": crate::ps::short_image(&c.image),
            "WorkingDir": settings.workdir.clone().unwrap_or_default(),
            "Entrypoint": settings.entrypoint,
            "Labels": settings.labels,
        },
        "HostConfig": {
            "Memory": settings.limits.memory.unwrap_or(0),
            "NanoCpus": settings.limits.cpus.map_or(0, |c| (c * 1e9) as i64),
            "PidsLimit": settings.limits.pids,
            "ReadonlyRootfs": settings.read_only,
            "Init": settings.init,
        },
        "NetworkSettings": {
            "Ports": c.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
    })
}

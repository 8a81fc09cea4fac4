//! Kubernetes' view of the runtime: pods through containerd's CRI plugin (Debian's containerd 1.6, started here on
//! its own socket, root and state), spoken to over gRPC as a kubelet does. Every scenario runs once with the
//! handler `runc` (Debian's runc: the reference) and once with `wharf` (the runtime example, through the same runc
//! v2 shim), with the same assertions. Needs root, containerd, runc, docker-registry, busybox-static and gcc with a
//! static libc (scripts/test-deps.sh).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use k8s_cri::v1::*;

#[path = "support/cri.rs"]
mod cri;
mod support;

use cri::Cri;

/// `scenario` against each handler, as one test per handler.
macro_rules! both {
    ($scenario:ident: $runc:ident, $wharf:ident) => {
        #[test]
        fn $runc() {
            $scenario("runc");
        }
        #[test]
        fn $wharf() {
            $scenario("wharf");
        }
    };
}

both!(pod_lifecycle: pod_lifecycle_runc, pod_lifecycle_wharf);
both!(over_memory_limit: over_memory_limit_runc, over_memory_limit_wharf);

/// The namespaces a process of container `id` is in, as `readlink /proc/self/ns/*` shows them.
fn namespaces(c: &Cri, id: &str) -> Vec<String> {
    let (out, err, code) = c.exec_sync(
        id,
        &[
            "sh",
            "-c",
            "for n in ipc uts net pid; do readlink /proc/self/ns/$n; done",
        ],
    );
    assert_eq!(code, 0, "readlink in {id}: {err}");
    out.lines().map(str::to_string).collect()
}

/// The lines of a CRI log file: (stream, tag, message), each line's timestamp checked.
fn cri_log(path: &std::path::Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (time, stream, tag, msg) = (
                parts.next().unwrap(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            // RFC 3339 with nanoseconds, e.g. 2026-12-03T09:41:07.123456789Z.
            assert!(
                time.len() >= 20 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b'T',
                "not a CRI log line: {l:?}"
            );
            (stream.to_string(), tag.to_string(), msg.to_string())
        })
        .collect()
}

/// Waits (bounded) until `path` holds a CRI log line `(stream, "F", msg)`.
fn wait_log_line(path: &std::path::Path, stream: &str, msg: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = (stream.to_string(), "F".to_string(), msg.to_string());
    while !cri_log(path).contains(&want) {
        assert!(
            Instant::now() < deadline,
            "no {want:?} in {}: {:?}",
            path.display(),
            std::fs::read_to_string(path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid of a running container, from its verbose status.
fn pid_of(c: &Cri, id: &str) -> i32 {
    let st = c.status(id);
    let info: serde_json::Value = serde_json::from_str(st.info.get("info").expect("verbose status has info")).unwrap();
    info["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {info}")) as i32
}

/// The memory cgroup (v1) directory of process `pid`, as the host sees it.
fn memory_cgroup(pid: i32) -> std::path::PathBuf {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cg
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrl.split(',').any(|c| c == "memory").then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no memory cgroup in {cg}"));
    std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'))
}

/// A pod of two containers, the whole lifecycle: RunPodSandbox, PullImage, CreateContainer, StartContainer,
/// ContainerStatus, ListContainers, ExecSync and streaming Exec, ContainerStats, UpdateContainerResources, logs and ReopenContainerLog,
/// StopContainer (one leaving on SIGTERM, one ignoring it until SIGKILL after its grace period), RemoveContainer,
/// StopPodSandbox, RemovePodSandbox; nothing left behind.
fn pod_lifecycle(handler: &str) {
    let c = Cri::start();
    let image_ref = c.pull_busybox();
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let pod_config = c.pod_config("life");
    let pod = c.run_pod(&pod_config, handler);
    let mut rs = c.rs();

    // a: logs a line on each stream, then one each time /tmp/tick appears; leaves on SIGTERM.
    let a = c.start_container(
        &pod,
        &pod_config,
        c.container_config(
            "a",
            &[
                "sh",
                "-c",
                "trap 'exit 0' TERM; echo out-line; echo err-line >&2; \
                 while true; do if [ -e /tmp/tick ]; then rm /tmp/tick; echo tick; fi; sleep 0.1; done",
            ],
        ),
    );
    // b: ignores SIGTERM.
    let b = c.start_container(
        &pod,
        &pod_config,
        c.container_config("b", &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]),
    );
    for id in [&a, &b] {
        let st = c.status(id).status.unwrap();
        assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
        assert!(st.started_at > 0, "{st:?}");
    }
    let listed = c
        .block(rs.list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        }))
        .unwrap()
        .into_inner()
        .containers;
    let mut names: Vec<_> = listed
        .iter()
        .map(|c| c.metadata.as_ref().unwrap().name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);

    // Namespaces: IPC and UTS shared by the pod, the host's network, each container its own PID namespace.
    let (na, nb) = (namespaces(&c, &a), namespaces(&c, &b));
    assert_eq!(na.len(), 4, "{na:?}");
    assert_eq!(na[..3], nb[..3], "ipc, uts and net differ between the pod's containers");
    assert_ne!(na[3], nb[3], "the containers share a PID namespace");
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        na[2],
        host_net.to_str().unwrap(),
        "a host-network pod is not on the host's network"
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_ne!(
        na[0],
        host_ipc.to_str().unwrap(),
        "the pod has the host's IPC namespace"
    );
    let (out, _, code) = c.exec_sync(&b, &["cat", "/proc/1/cmdline"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("sh\0-c\0trap '' TERM"),
        "pid 1 of b is not b's command: {out:?}"
    );

    // ExecSync: output on both streams, the exit code.
    let (out, err, code) = c.exec_sync(&a, &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("to-out\n", "to-err\n", 3));
    // Streaming Exec (over the stream server's WebSocket): the same.
    let (out, err, code) = c.exec_stream(&a, &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("to-out\n", "to-err\n", 3));
    let (out, _, code) = c.exec_stream(&a, &["cat", "/proc/1/cmdline"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("sh\0-c\0trap 'exit 0' TERM"), "{out:?}");

    // ContainerStats.
    let stats = c
        .block(rs.container_stats(ContainerStatsRequest {
            container_id: a.clone(),
        }))
        .unwrap_or_else(|e| panic!("ContainerStats: {e}\n{}", c.log()))
        .into_inner()
        .stats
        .unwrap();
    let mem = stats.memory.unwrap();
    assert!(mem.working_set_bytes.unwrap().value > 0, "{mem:?}");
    assert!(
        stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0,
        "no CPU time counted"
    );

    // UpdateContainerResources: the new memory limit reaches the container's cgroup.
    let limit = 96 << 20;
    c.block(rs.update_container_resources(UpdateContainerResourcesRequest {
        container_id: a.clone(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: limit,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", c.log()));
    let cg = memory_cgroup(pid_of(&c, &a));
    assert_eq!(
        std::fs::read_to_string(cg.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        limit.to_string(),
        "{}",
        cg.display()
    );

    // Logs in the CRI format; ReopenContainerLog starts a new file after rotation.
    let logs = std::path::Path::new(&pod_config.log_directory);
    wait_log_line(&logs.join("a.log"), "stdout", "out-line");
    wait_log_line(&logs.join("a.log"), "stderr", "err-line");
    std::fs::rename(logs.join("a.log"), logs.join("a.log.1")).unwrap();
    c.block(rs.reopen_container_log(ReopenContainerLogRequest {
        container_id: a.clone(),
    }))
    .unwrap_or_else(|e| panic!("ReopenContainerLog: {e}\n{}", c.log()));
    assert_eq!(c.exec_sync(&a, &["touch", "/tmp/tick"]).2, 0);
    wait_log_line(&logs.join("a.log"), "stdout", "tick");
    assert!(
        !std::fs::read_to_string(logs.join("a.log.1")).unwrap().contains("tick"),
        "written to the rotated file"
    );

    // StopContainer: a leaves on SIGTERM (exit 0), b is killed after its 2 s grace period (137).
    let t = Instant::now();
    c.block(rs.stop_container(StopContainerRequest {
        container_id: a.clone(),
        timeout: 10,
    }))
    .unwrap_or_else(|e| panic!("StopContainer a: {e}\n{}", c.log()));
    assert!(t.elapsed() < Duration::from_secs(8), "a took {:?} to stop", t.elapsed());
    let st = c.wait_exited(&a);
    assert_eq!(st.exit_code, 0, "{st:?}");
    let t = Instant::now();
    c.block(rs.stop_container(StopContainerRequest {
        container_id: b.clone(),
        timeout: 2,
    }))
    .unwrap_or_else(|e| panic!("StopContainer b: {e}\n{}", c.log()));
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "b stopped before its grace period ended"
    );
    let st = c.wait_exited(&b);
    assert_eq!(st.exit_code, 137, "{st:?}");
    assert!(st.finished_at >= st.started_at, "{st:?}");

    for id in [&a, &b] {
        c.block(rs.remove_container(RemoveContainerRequest {
            container_id: id.to_string(),
        }))
        .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}\n{}", c.log()));
    }
    c.block(rs.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log()));
    c.block(rs.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log()));

    // Nothing left: no containers, no pods, no runtime state, no containers' cgroups.
    let left = c
        .block(rs.list_containers(ListContainersRequest::default()))
        .unwrap()
        .into_inner()
        .containers;
    assert!(left.is_empty(), "{left:?}");
    let pods = c
        .block(rs.list_pod_sandbox(ListPodSandboxRequest::default()))
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let root = c.runtime_root(handler);
    let state: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left in {}: {state:?}", root.display());
    for parent in c.parents() {
        for cg in Cri::cgroups_of(&parent) {
            let children: Vec<_> = std::fs::read_dir(&cg)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect();
            assert!(children.is_empty(), "cgroups left in {}: {children:?}", cg.display());
        }
    }
}

/// A container over its memory limit: EXITED, reason OOMKilled, exit code 137; then it and its pod go.
fn over_memory_limit(handler: &str) {
    let c = Cri::start();
    c.pull_busybox();
    let pod_config = c.pod_config("oom");
    let pod = c.run_pod(&pod_config, handler);
    let mut config = c.container_config("hog", &["sh", "-c", "x=$(yes | tr -d '\\n')"]);
    config.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        memory_swap_limit_in_bytes: 32 << 20,
        ..Default::default()
    });
    let id = c.start_container(&pod, &pod_config, config);
    let st = c.wait_exited(&id);
    assert_eq!((st.reason.as_str(), st.exit_code), ("OOMKilled", 137), "{st:?}");
    let mut rs = c.rs();
    c.block(rs.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    }))
    .unwrap_or_else(|e| panic!("RemoveContainer: {e}\n{}", c.log()));
    c.block(rs.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log()));
    c.block(rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }))
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log()));
    let state: Vec<_> = std::fs::read_dir(c.runtime_root(handler))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
}

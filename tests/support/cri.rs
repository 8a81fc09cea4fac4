//! containerd's CRI plugin as a Kubernetes node runs it: Debian's containerd 1.6 with the CRI on (its own socket,
//! root and state), two runtime handlers — `runc` (Debian's runc, the reference) and `wharf` (the runtime example),
//! both through the runc v2 shim — a pause image built here (a static C program) and a busybox image, both pushed
//! to a docker-registry on 127.0.0.1 that containerd reaches over plain http, and host-network pods (no CNI).
//! The tests speak the CRI over gRPC (the `k8s-cri` crate) on containerd's unix socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

// Declared by the test that uses it (`#[path = "support/cri.rs"] mod cri;`), not in support/mod.rs: the other test
// binaries need no gRPC client.
use crate::support::Registry;
use crate::support::cli::Env as Cli;
use crate::support::containerd::Containerd;

/// The pause program: waits for a signal and reaps the children it inherits (what Kubernetes' pause does).
const PAUSE_C: &str = r#"#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
"#;

/// The runtime handlers every CRI test runs against: the reference first.
pub const HANDLERS: [&str; 2] = ["runc", "wharf"];

/// A private containerd with the CRI on, a registry holding the pause and busybox images, and a CRI client.
pub struct Cri {
    /// Dropped first: its Drop cleans up through the CRI.
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// The busybox image the containers run.
    pub busybox: String,
    /// Pod cgroup parents handed out, removed at the end.
    parents: Mutex<Vec<String>>,
    /// Holds the images' sources and the pods' logs.
    pub work: tempfile::TempDir,
    /// containerd.
    pub containerd: Containerd,
    _registry: Registry,
}

impl Cri {
    /// Starts the registry and containerd, builds and pushes the images, and connects.
    pub fn start() -> Cri {
        for (tool, package) in [("gcc", "gcc"), ("runc", "runc")] {
            crate::support::require(tool, package);
        }
        let registry = Registry::start();
        let cli = Cli::new();
        let work = tempfile::tempdir().unwrap();

        // The pause image: one static binary.
        let pause_root = work.path().join("pause-rootfs");
        std::fs::create_dir_all(&pause_root).unwrap();
        let src = work.path().join("pause.c");
        std::fs::write(&src, PAUSE_C).unwrap();
        let gcc = Command::new("gcc")
            .args(["-static", "-Os", "-o"])
            .arg(pause_root.join("pause"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            gcc.status.success(),
            "gcc -static pause.c failed (Debian's gcc and libc6-dev are needed): {}",
            String::from_utf8_lossy(&gcc.stderr)
        );
        let pause = registry.image("wharf-test/pause:1");
        cli.ok(&["import", pause_root.to_str().unwrap(), &pause, "--cmd", "/pause"]);
        cli.ok(&["push", &pause]);
        let busybox = registry.image("wharf-test/busybox:1");
        cli.busybox_image(&busybox, "cri\n");
        cli.ok(&["push", &busybox]);

        let wharf = crate::support::example_bin("runtime").to_path_buf();
        let host = format!("localhost:{}", registry.port);
        let config = move |d: &Path| cri_config(d, &pause, &host, &wharf);
        let mut containerd = Containerd::start_with(Some(&config));
        // CRI's containers live in containerd namespace k8s.io: containerd's Drop cleans up there.
        containerd.namespace = "k8s.io".to_string();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sock = containerd.socket();
        let channel = rt.block_on(async move {
            Endpoint::try_from("http://[::]:50051")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let sock = sock.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
                }))
                .await
                .unwrap()
        });
        let cri = Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            busybox,
            parents: Mutex::new(Vec::new()),
            work,
            containerd,
            _registry: registry,
        };
        // The CRI plugin comes up after containerd's API: wait until it answers Status.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut rs = cri.runtime.clone();
            match cri.rt.block_on(rs.status(StatusRequest { verbose: false })) {
                Ok(_) => break,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "containerd's CRI did not come up: {e}\n{}",
                    std::fs::read_to_string(cri.containerd.dir.path().join("containerd.err")).unwrap_or_default()
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cri
    }

    /// Runs one CRI call to completion.
    pub fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// The runtime service client.
    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The image service client.
    pub fn is(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// The state directory the shim gives handler `handler`'s runtime (`--root`): the handler's `Root` option
    /// and the containerd namespace.
    pub fn runtime_root(&self, handler: &str) -> PathBuf {
        self.containerd
            .dir
            .path()
            .join(format!("{handler}-root"))
            .join("k8s.io")
    }

    /// containerd's error log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.containerd.dir.path().join("containerd.err")).unwrap_or_default()
    }

    /// Pulls the busybox image through the CRI; returns its image reference.
    pub fn pull_busybox(&self) -> String {
        let mut is = self.is();
        let r = self
            .block(is.pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: self.busybox.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .unwrap_or_else(|e| panic!("PullImage {}: {e}", self.busybox));
        r.into_inner().image_ref
    }

    /// The config of a host-network pod `name`: IPC shared by its containers, each container its own PID namespace,
    /// logs under the work directory, its own cgroup parent.
    pub fn pod_config(&self, name: &str) -> PodSandboxConfig {
        // Unique per pod: the tests of one binary run at once, and each checks that its parent ends up empty.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parent = format!("/wharf-cri-{}-{n}-{name}", std::process::id());
        self.parents.lock().unwrap().push(parent.clone());
        let logs = self.work.path().join("pods").join(name);
        std::fs::create_dir_all(&logs).unwrap();
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("uid-{name}"),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            // A host-network pod has the host's UTS namespace: no hostname of its own (runc refuses one).
            log_directory: logs.to_str().unwrap().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: parent,
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Runs pod `config` with `handler`; returns its id.
    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> String {
        let mut rs = self.rs();
        self.block(rs.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox with {handler}: {e}\n{}", self.log()))
        .into_inner()
        .pod_sandbox_id
    }

    /// A container `name` of the busybox image running `args` (`sh -c` when given one string), logging to
    /// `name.log` in its pod's log directory.
    pub fn container_config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.busybox.clone(),
                ..Default::default()
            }),
            command: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                // As a kubelet sends them for the pod of pod_config: the host's network, the pod's IPC, the
                // container's own PID namespace.
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates and starts `config` in pod `pod`; returns the container's id.
    pub fn start_container(&self, pod: &str, pod_config: &PodSandboxConfig, config: ContainerConfig) -> String {
        let mut rs = self.rs();
        let name = config.metadata.as_ref().unwrap().name.clone();
        let id = self
            .block(rs.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_string(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", self.log()))
            .into_inner()
            .container_id;
        self.block(rs.start_container(StartContainerRequest {
            container_id: id.clone(),
        }))
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", self.log()));
        id
    }

    /// ContainerStatus of `id` (verbose: its `info` has the pid).
    pub fn status(&self, id: &str) -> ContainerStatusResponse {
        let mut rs = self.rs();
        self.block(rs.container_status(ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        }))
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .into_inner()
    }

    /// Waits (bounded) until container `id` is EXITED; returns its status.
    pub fn wait_exited(&self, id: &str) -> ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = self.status(id).status.unwrap();
            if st.state == ContainerState::ContainerExited as i32 {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} never exited: {st:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// ExecSync `cmd` in `id`: (stdout, stderr, exit code).
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (String, String, i32) {
        let mut rs = self.rs();
        let r = self
            .block(rs.exec_sync(ExecSyncRequest {
                container_id: id.to_string(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 30,
            }))
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}\n{}", self.log()))
            .into_inner();
        (
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
            r.exit_code,
        )
    }

    /// Streaming Exec of `cmd` in `id` (no stdin, no tty): asks the CRI for the URL, then speaks the kubelet's
    /// streaming protocol to containerd's stream server over WebSocket (`v4.channel.k8s.io`: each frame's first byte
    /// names the channel, 1 stdout, 2 stderr, 3 the final status). Returns (stdout, stderr, exit code).
    pub fn exec_stream(&self, id: &str, cmd: &[&str]) -> (String, String, i32) {
        use std::io::{Read, Write};
        let mut rs = self.rs();
        let url = self
            .block(rs.exec(ExecRequest {
                container_id: id.to_string(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }))
            .unwrap_or_else(|e| panic!("Exec {cmd:?} in {id}: {e}\n{}", self.log()))
            .into_inner()
            .url;
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not a plain-http stream URL: {url}"));
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut tcp = std::net::TcpStream::connect(host).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: d2hhcmYtY3JpLXRlc3Qtaw==\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        .unwrap();
        let mut reader = std::io::BufReader::new(tcp);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8];
            reader.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "the stream server did not upgrade: {head}"
        );
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let mut h = [0u8; 2];
            if reader.read_exact(&mut h).is_err() {
                break;
            }
            let opcode = h[0] & 0x0f;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    reader.read_exact(&mut l).unwrap();
                    u16::from_be_bytes(l) as usize
                }
                127 => {
                    let mut l = [0u8; 8];
                    reader.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            reader.read_exact(&mut payload).unwrap();
            if opcode == 8 {
                break;
            }
            if let Some((&channel, data)) = payload.split_first() {
                match channel {
                    1 => out.extend_from_slice(data),
                    2 => err.extend_from_slice(data),
                    3 => status.extend_from_slice(data),
                    _ => {}
                }
            }
        }
        // Success, or a Failure whose cause "ExitCode" carries the code.
        let code = if status.is_empty() {
            panic!("no status on the stream of {cmd:?}")
        } else {
            let v: serde_json::Value = serde_json::from_slice(&status).unwrap();
            if v["status"] == "Success" {
                0
            } else {
                v["details"]["causes"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
                    .and_then(|c| c["message"].as_str()?.parse().ok())
                    .unwrap_or_else(|| panic!("no exit code in the stream's status {v}"))
            }
        };
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
            code,
        )
    }

    /// Stops and removes every pod (and so its containers) the CRI still lists.
    pub fn remove_all(&self) {
        let mut rs = self.rs();
        let Ok(pods) = self.block(rs.list_pod_sandbox(ListPodSandboxRequest::default())) else {
            return;
        };
        for p in pods.into_inner().items {
            let _ = self.block(rs.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: p.id.clone(),
            }));
            let _ = self.block(rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: p.id }));
        }
    }

    /// The cgroup directories (one per v1 hierarchy, or the unified one) of pod cgroup parent `parent` that exist.
    pub fn cgroups_of(parent: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let p = e.path().join(parent.trim_start_matches('/'));
                if p.is_dir() {
                    found.push(p);
                }
            }
        }
        let unified = Path::new("/sys/fs/cgroup").join(parent.trim_start_matches('/'));
        if unified.is_dir() && !found.contains(&unified) {
            found.push(unified);
        }
        found
    }

    /// The pod cgroup parents handed out so far.
    pub fn parents(&self) -> Vec<String> {
        self.parents.lock().unwrap().clone()
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        self.remove_all();
        // The runtime creates the pods' parent cgroups on the way to the containers'; they are the test's to remove.
        for parent in self.parents() {
            for cg in Cri::cgroups_of(&parent) {
                let _ = std::fs::remove_dir(cg);
            }
        }
    }
}

/// The CRI plugin's section of containerd's config (after its `[plugins."io.containerd.grpc.v1.cri"]` line) for a
/// containerd in `dir`: the pause image, the plain-http registry `host`, the handlers `runc` and `wharf` (the runtime
/// at `wharf`), each with its own state directory, an empty CNI configuration (host-network pods only).
fn cri_config(dir: &Path, pause: &str, host: &str, wharf: &Path) -> String {
    let cni = dir.join("cni");
    std::fs::create_dir_all(cni.join("bin")).unwrap();
    std::fs::create_dir_all(cni.join("conf")).unwrap();
    let runtime = |name: &str, binary: &str| {
        format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}]\n\
             \x20 runtime_type = \"io.containerd.runc.v2\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.options]\n\
             \x20 BinaryName = \"{binary}\"\n\
             \x20 Root = \"{root}\"\n",
            root = dir.join(format!("{name}-root")).display()
        )
    };
    format!(
        "  sandbox_image = \"{pause}\"\n\
         \x20 restrict_oom_score_adj = true\n\
         \x20 stream_server_address = \"127.0.0.1\"\n\
         \x20 stream_server_port = \"0\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
         \x20 default_runtime_name = \"runc\"\n\
         {runc}{wharf}\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         \x20 bin_dir = \"{bin}\"\n\
         \x20 conf_dir = \"{conf}\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n\
         \x20 endpoint = [\"http://{host}\"]\n",
        runc = runtime("runc", "/usr/sbin/runc"),
        wharf = runtime("wharf", wharf.to_str().unwrap()),
        bin = cni.join("bin").display(),
        conf = cni.join("conf").display(),
    )
}

/// The namespaces of this support's pods, as a kubelet sends them for pod and containers alike: the host's network,
/// the pod's IPC, each container's own PID namespace.
fn pod_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

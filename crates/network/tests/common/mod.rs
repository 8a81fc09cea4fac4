//! Every test runs on a thread inside a network namespace it creates itself (its "host"): the bridges,
//! veths, addresses, iptables rules and published ports exist only there, and connections "from the host"
//! are made from inside it. Containers are pinned namespaces with busybox processes in them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::thread::UnshareFlags;
use wharf_network::{NetNs, Networks, NetworksConfig};

/// Runs `f` on a new thread in a new network namespace with `lo` up, and returns what it returns.
pub fn in_own_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: NEWNET does not unshare the file table.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }
                .expect("unshare(CLONE_NEWNET): the network tests need root (CAP_SYS_ADMIN)");
            sh(&["ip", "link", "set", "lo", "up"]);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Runs a command to success and returns its stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{} missing ({e}); install it with scripts/test-deps.sh", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with what is missing when the machine lacks the CNI plugins or busybox.
pub fn require_tools() {
    for p in [
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/portmap",
        "/usr/lib/cni/loopback",
        "/bin/busybox",
    ] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: run scripts/test-deps.sh (containernetworking-plugins, busybox-static)"
        );
    }
}

/// A state directory and a place for the test's container namespaces.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub nets: Networks,
}

impl Env {
    pub fn new() -> Env {
        require_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let nets = Networks::open(dir.path().join("state"), NetworksConfig::default()).expect("open");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join("index.html"), "hello from the container\n").expect("index");
        Env { dir, nets }
    }

    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// A container: a pinned network namespace, with `busybox httpd` on port 80 in it when `httpd`.
    pub fn container(&self, id: &str, httpd: bool) -> Ctr {
        let ns = NetNs::create(self.dir.path().join("netns").join(id)).expect("netns");
        let child = httpd.then(|| {
            let www = self.www();
            Command::new("nsenter")
                .arg(format!("--net={}", ns.path().display()))
                .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
                .arg(www)
                .stdin(Stdio::null())
                .spawn()
                .expect("nsenter busybox httpd")
        });
        Ctr { ns, child }
    }

    /// Asserts that nothing of the container is left: no record, no files, no lease, no rule naming it.
    pub fn assert_clean(&self, id: &str) {
        assert!(
            self.nets.attachments(id).expect("records").is_empty(),
            "records left for {id}"
        );
        assert!(!self.nets.hosts_path(id).exists(), "hosts file left for {id}");
        let rules = sh(&["iptables-save"]);
        assert!(
            !rules.contains(&format!("id: \"{id}\"")),
            "iptables rules left for {id}:\n{rules}"
        );
        for net in self.nets.list().expect("list") {
            let leases = self.nets.ipam_dir().join(&net.name);
            if let Ok(rd) = std::fs::read_dir(&leases) {
                for e in rd {
                    let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                    if name == "lock" || name.starts_with("last_reserved_ip") {
                        continue;
                    }
                    let holder = std::fs::read_to_string(leases.join(&name)).unwrap_or_default();
                    assert!(!holder.contains(id), "lease {name} left for {id}");
                }
            }
        }
    }
}

/// No veth is left in the test's namespace.
pub fn assert_no_veth() {
    let links = sh(&["ip", "-o", "link", "show", "type", "veth"]);
    assert!(links.trim().is_empty(), "veths left: {links}");
}

/// A test container: a pinned namespace and maybe a server in it.
pub struct Ctr {
    pub ns: NetNs,
    pub child: Option<Child>,
}

impl Ctr {
    pub fn path(&self) -> &Path {
        self.ns.path()
    }

    /// Runs curl inside the container with `hosts` bind-mounted at /etc/hosts in a private mount namespace
    /// (so names resolve through glibc as in a real container; `-4` keeps glibc from asking DNS for an IPv6
    /// address the hosts file does not have); returns the body or what went wrong.
    pub fn get(&self, hosts: &Path, url: &str) -> Result<String, String> {
        let script = format!(
            "mount --bind {} /etc/hosts && exec curl -4 {} {url}",
            hosts.display(),
            CURL.join(" ")
        );
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .args(["unshare", "--mount", "sh", "-c", &script]);
        output(&mut cmd, url)
    }

    /// Stops the server and unpins the namespace.
    pub fn stop(mut self) {
        self.kill();
        NetNs::remove(self.ns.path()).expect("remove netns");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        self.kill();
        let _ = NetNs::remove(self.ns.path());
    }
}

/// `curl` from the test's own namespace (the "host").
pub fn host_get(url: &str) -> Result<String, String> {
    output(Command::new("curl").args(CURL).arg(url), url)
}

/// curl, quiet but for errors, never through a proxy, never for long.
const CURL: &[&str] = &["-sS", "--noproxy", "*", "--max-time", "5"];

fn output(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} ({e}): run scripts/test-deps.sh"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Retries `f` for up to two seconds (a server in a fresh namespace may need a moment).
pub fn eventually<T>(mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() > deadline => panic!("gave up: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

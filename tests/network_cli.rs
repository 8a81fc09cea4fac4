//! `wharf run --network`, `-p`, `port`, `ps` PORTS and `network …` through the example CLI, each test
//! inside a network namespace it creates first: the bridge, veths, rules and published ports exist only
//! there, and "the host" the test connects from is that namespace. Needs root, busybox-static, curl and
//! Debian's containernetworking-plugins (scripts/test-deps.sh installs them).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

fn wharf_bin() -> &'static Path {
    support::example_bin("wharf")
}

/// Runs `f` on a new thread in a new network namespace with `lo` up; every process it starts is there too.
fn in_own_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    assert!(rustix::process::geteuid().is_root(), "these tests need root");
    for p in [
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/portmap",
        "/bin/busybox",
        "/usr/bin/curl",
    ] {
        assert!(Path::new(p).exists(), "{p} is missing: run scripts/test-deps.sh");
    }
    let _ = wharf_bin(); // built before the namespace, so cargo's own network use is the host's
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: NEWNET does not unshare the file table.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.unwrap();
            assert!(
                Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status()
                    .unwrap()
                    .success()
            );
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        // A busybox image with a web root.
        let root = env.dir.path().join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for cmd in ["sh", "cat", "httpd", "true", "ip", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(cmd)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), "served by wharf\n").unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        env.ok(&["import", root.to_str().unwrap(), "net/busybox:1", "--cmd", "/bin/sh"]);
        env
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn wharf(&self, args: &[&str]) -> Output {
        Command::new(wharf_bin())
            .arg("--root")
            .arg(self.store())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        support::cli::succeeded(args, self.wharf(args))
    }

    fn err(&self, args: &[&str]) -> String {
        let out = self.wharf(args);
        assert!(!out.status.success(), "wharf {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.store().join(".wharf/containers")) {
            for e in entries.flatten() {
                let _ = self.wharf(&["rm", "-f", &e.file_name().to_string_lossy()]);
            }
        }
    }
}

fn curl(url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "5", url])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn eventually(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match curl(url) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("{url}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_web_server_on_a_user_network_is_published_named_and_cleaned_up() {
    in_own_netns(|| {
        let env = Env::new();
        assert_eq!(
            env.ok(&["network", "create", "--subnet", "10.77.0.0/24", "app"]),
            "app\n"
        );
        assert!(env.ok(&["network", "ls"]).contains("10.77.0.0/24"));
        let web = [
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "app",
            "--network-alias",
            "www",
            "-p",
            "8080:80",
            "net/busybox:1",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ];
        assert_eq!(env.ok(&web), "web\n");
        assert_eq!(eventually("http://127.0.0.1:8080/"), "served by wharf\n");
        assert_eq!(env.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:8080\n");
        assert!(env.ok(&["ps"]).contains("0.0.0.0:8080->80/tcp"));
        let inspect = env.ok(&["network", "inspect", "app"]);
        assert!(
            inspect.contains("\"Name\": \"web\"") && inspect.contains("10.77.0."),
            "{inspect}"
        );

        // A second container sees the first by name and alias in its /etc/hosts, and has lo up.
        let hosts = env.ok(&[
            "run",
            "--rm",
            "--name",
            "client",
            "--net",
            "app",
            "net/busybox:1",
            "cat",
            "/etc/hosts",
        ]);
        assert!(hosts.contains("\tweb www\n"), "{hosts}");
        assert!(hosts.contains("\tclient\n"), "{hosts}");
        let lo = env.ok(&[
            "run",
            "--rm",
            "--net",
            "app",
            "net/busybox:1",
            "ip",
            "-o",
            "link",
            "show",
            "lo",
        ]);
        assert!(lo.contains(",UP"), "{lo}");

        assert!(env.err(&["network", "rm", "app"]).contains("has containers attached"));
        assert!(
            env.err(&["run", "--rm", "-p", "8081:80", "net/busybox:1", "true"])
                .contains("need a bridge or user network")
        );
        // The port is taken now: a clear error, and the failed run leaves nothing behind.
        let taken = env.err(&["run", "--rm", "--net", "app", "-p", "8080:80", "net/busybox:1", "true"]);
        assert!(taken.contains("already in use by container web"), "{taken}");

        env.ok(&["stop", "web"]);
        assert!(
            curl("http://127.0.0.1:8080/").is_err(),
            "the published port is gone with the stopped container"
        );
        assert_eq!(env.ok(&["port", "web"]), "");
        env.ok(&["rm", "web"]);
        assert_eq!(env.ok(&["network", "rm", "app"]), "app\n");
        assert!(
            sh(&["ip", "-o", "link", "show", "type", "veth"]).trim().is_empty(),
            "no veth left"
        );
        let rules = sh(&["iptables-save"]);
        assert!(
            !rules.contains("id: \"web\"") && !rules.contains("id: \"client\""),
            "{rules}"
        );
        assert!(
            std::fs::read_dir(env.store().join(".wharf/netns"))
                .unwrap()
                .next()
                .is_none(),
            "no namespace left"
        );
    });
}

#[test]
fn the_default_bridge_network_publishes_a_random_port() {
    in_own_netns(|| {
        let env = Env::new();
        let args = [
            "run",
            "-d",
            "--name",
            "rnd",
            "--net",
            "bridge",
            "-p",
            "80",
            "net/busybox:1",
            "httpd",
            "-f",
            "-h",
            "/www",
        ];
        env.ok(&args);
        let line = env.ok(&["port", "rnd"]);
        let port = line.trim().rsplit(':').next().unwrap().to_string();
        assert!(line.starts_with("80/tcp -> 0.0.0.0:") && port != "0", "{line}");
        assert_eq!(eventually(&format!("http://127.0.0.1:{port}/")), "served by wharf\n");
        assert!(env.ok(&["network", "ls"]).contains("10.88.0.0/16"));
        env.ok(&["rm", "-f", "rnd"]);
        assert!(
            sh(&["ip", "-o", "link", "show", "type", "veth"]).trim().is_empty(),
            "no veth left"
        );
    });
}

/// `-P` publishes every port the image exposes, each on a free host port, as docker does; the image's ports come
/// from `import -c 'EXPOSE …'` (docker import's --change), whose mistakes are clear errors.
#[test]
fn publish_all_publishes_every_port_the_image_exposes() {
    in_own_netns(|| {
        let env = Env::new();
        let root = env.dir.path().join("rootfs");
        let root = root.to_str().unwrap();
        let err = env.err(&["import", root, "net/bad:1", "-c", "EXPOSE eighty"]);
        assert!(err.contains("\"eighty\" is not PORT"), "{err}");
        let err = env.err(&["import", root, "net/bad:1", "-c", "RUN true"]);
        assert!(err.contains("RUN is not an instruction import takes"), "{err}");
        env.ok(&[
            "import",
            root,
            "net/exposed:1",
            "-c",
            "CMD [\"httpd\", \"-f\", \"-h\", \"/www\"]",
            "-c",
            "EXPOSE 80 8125/udp",
        ]);
        env.ok(&["run", "-d", "--name", "all", "--net", "bridge", "-P", "net/exposed:1"]);
        let ports = env.ok(&["port", "all"]);
        let tcp = ports
            .lines()
            .find(|l| l.starts_with("80/tcp -> 0.0.0.0:"))
            .unwrap_or_else(|| panic!("80/tcp not published: {ports}"));
        assert!(ports.lines().any(|l| l.starts_with("8125/udp -> 0.0.0.0:")), "{ports}");
        assert_eq!(ports.lines().count(), 2, "{ports}");
        let port = tcp.rsplit(':').next().unwrap();
        assert_eq!(eventually(&format!("http://127.0.0.1:{port}/")), "served by wharf\n");
        // stats' NET I/O counts what went through its interface (docker's "1.2kB / 648B"): a request in, a page
        // out.
        let stats = env.ok(&["stats", "--no-stream", "all"]);
        let header = stats.lines().next().unwrap();
        let row = stats.lines().nth(1).unwrap_or_else(|| panic!("{stats}"));
        let (start, end) = (header.find("NET I/O").unwrap(), header.find("BLOCK I/O").unwrap());
        let (rx, tx) = row[start..end]
            .trim()
            .split_once(" / ")
            .unwrap_or_else(|| panic!("{stats}"));
        for n in [rx, tx] {
            assert!(
                n != "0B" && (n.ends_with("kB") || n.ends_with('B')),
                "NET I/O {rx} / {tx}:\n{stats}"
            );
        }
        env.ok(&["rm", "-f", "all"]);
        assert!(
            sh(&["ip", "-o", "link", "show", "type", "veth"]).trim().is_empty(),
            "no veth left"
        );
    });
}

//! Containers on networks through the real CNI plugins, each test in its own network namespace.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Env, assert_no_veth, eventually, host_get, in_own_netns};
use wharf_network::{AttachOptions, Error, NetworkOptions, Networks, NetworksConfig};

fn ports(specs: &[&str]) -> AttachOptions {
    AttachOptions {
        ports: specs.iter().map(|s| s.parse().expect("port")).collect(),
        ..AttachOptions::default()
    }
}

#[test]
fn busybox_httpd_answers_through_published_ports() {
    in_own_netns(|| {
        let env = Env::new();
        let web = env.container("web1", true);
        let att = env
            .nets
            .attach("web1", web.path(), "bridge", &ports(&["8080:80", "127.0.0.1::80"]))
            .expect("attach");
        let ip = att.ip().expect("an address");
        let lo = common::sh(&[
            "nsenter",
            &format!("--net={}", web.path().display()),
            "ip",
            "-o",
            "link",
            "show",
            "lo",
        ]);
        assert!(lo.contains(",UP"), "the loopback plugin brought lo up: {lo}");
        assert!(env.nets.network("bridge").expect("default network").subnet.contains(ip));
        // Straight to the container's address on the test's bridge, and through each published port.
        let body = eventually(|| host_get(&format!("http://{ip}/")));
        assert_eq!(body, "hello from the container\n");
        assert_eq!(eventually(|| host_get("http://127.0.0.1:8080/")), body);
        let random = att.ports[1];
        assert_ne!(random.host_port, 0, "a free host port was chosen");
        assert_eq!(
            eventually(|| host_get(&format!("http://127.0.0.1:{}/", random.host_port))),
            body
        );

        env.nets.detach("web1", "bridge").expect("detach");
        assert!(host_get("http://127.0.0.1:8080/").is_err(), "the port mapping is gone");
        web.stop();
        env.assert_clean("web1");
        assert_no_veth();
    });
}

#[test]
fn two_containers_reach_each_other_by_name_and_alias() {
    in_own_netns(|| {
        let env = Env::new();
        let opts = NetworkOptions {
            subnet: Some("10.77.0.0/24".parse().expect("subnet")),
            ..Default::default()
        };
        let net = env.nets.create("app", &opts).expect("create");
        assert_eq!(net.gateway.to_string(), "10.77.0.1");
        let web = env.container("c-web", true);
        let client = env.container("c-client", false);
        let web_opts = AttachOptions {
            name: Some("web".into()),
            aliases: vec!["www".into()],
            ..Default::default()
        };
        let web_att = env
            .nets
            .attach("c-web", web.path(), "app", &web_opts)
            .expect("attach web");
        let client_opts = AttachOptions {
            name: Some("client".into()),
            ..Default::default()
        };
        let client_att = env
            .nets
            .attach("c-client", client.path(), "app", &client_opts)
            .expect("attach client");

        // CHECK on attachments without published ports: Debian's portmap 1.1.1 fails CHECK on IPv4-only
        // containers (containernetworking/plugins#819, fixed upstream in 1.2.0).
        env.nets
            .check("c-web", "app")
            .expect("CHECK passes on a working attachment");
        let client_hosts = env.nets.hosts_path("c-client");
        for url in ["http://web/", "http://www/"] {
            assert_eq!(
                eventually(|| client.get(&client_hosts, url)),
                "hello from the container\n",
                "{url}"
            );
        }
        // The web container's file was rewritten when the client joined, and is again when it leaves.
        let web_hosts = std::fs::read_to_string(env.nets.hosts_path("c-web")).expect("hosts");
        let client_ip = client_att.ip().expect("client ip").to_string();
        assert!(web_hosts.contains(&format!("{client_ip}\tclient\n")), "{web_hosts}");
        assert!(
            web_hosts.contains(&format!("{}\tweb www\n", web_att.ip().expect("ip"))),
            "{web_hosts}"
        );
        env.nets.detach("c-client", "app").expect("detach client");
        let web_hosts = std::fs::read_to_string(env.nets.hosts_path("c-web")).expect("hosts");
        assert!(!web_hosts.contains("client"), "{web_hosts}");

        assert!(
            matches!(env.nets.remove("app"), Err(Error::NetworkInUse { containers, .. }) if containers == ["c-web"])
        );
        env.nets.detach("c-web", "app").expect("detach web");
        env.nets.remove("app").expect("remove network");
        assert!(
            !sh_ok(&["ip", "link", "show", &net.bridge]),
            "bridge {} removed with its network",
            net.bridge
        );
        web.stop();
        client.stop();
        env.assert_clean("c-web");
        env.assert_clean("c-client");
        assert_no_veth();
    });
}

fn sh_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_container_detached_and_attached_again_keeps_working() {
    in_own_netns(|| {
        let env = Env::new();
        let web = env.container("again", true);
        for round in 0..2 {
            let att = env
                .nets
                .attach("again", web.path(), "bridge", &ports(&["8090:80"]))
                .expect("attach");
            let ip = att.ip().expect("ip");
            assert_eq!(
                eventually(|| host_get("http://127.0.0.1:8090/")),
                "hello from the container\n",
                "round {round}"
            );
            assert_eq!(
                eventually(|| host_get(&format!("http://{ip}/"))),
                "hello from the container\n"
            );
            env.nets.detach("again", "bridge").expect("detach");
        }
        web.stop();
        env.assert_clean("again");
        assert_no_veth();
    });
}

#[test]
fn a_port_in_use_is_a_clear_error_and_leaves_nothing() {
    in_own_netns(|| {
        let env = Env::new();
        let _holder = std::net::TcpListener::bind("0.0.0.0:8081").expect("bind 8081 in the test's namespace");
        let c = env.container("busy", false);
        match env.nets.attach("busy", c.path(), "bridge", &ports(&["8081:80"])) {
            Err(e @ Error::PortInUse { holder: None, .. }) => {
                assert_eq!(
                    e.to_string(),
                    "host port 0.0.0.0:8081->80/tcp is already in use on the host"
                );
            }
            other => panic!("{other:?}"),
        }
        env.assert_clean("busy");

        // Another container's published port.
        env.nets
            .attach("first", c.path(), "bridge", &ports(&["127.0.0.1:8082:80"]))
            .expect("attach first");
        let d = env.container("second", false);
        match env.nets.attach("second", d.path(), "bridge", &ports(&["8082:80/tcp"])) {
            Err(Error::PortInUse { holder: Some(h), .. }) => assert_eq!(h, "first"),
            other => panic!("{other:?}"),
        }
        env.nets
            .attach("second", d.path(), "bridge", &ports(&["8082:80/udp"]))
            .expect("udp is another port");
        env.nets.detach_all("first").expect("detach");
        env.nets.detach_all("second").expect("detach");
        env.assert_clean("first");
        env.assert_clean("second");
        assert_no_veth();
    });
}

#[test]
fn overlapping_subnets_are_refused() {
    in_own_netns(|| {
        let env = Env::new();
        let subnet = |s: &str| NetworkOptions {
            subnet: Some(s.parse().expect("subnet")),
            ..Default::default()
        };
        env.nets.create("a", &subnet("10.90.0.0/16")).expect("create a");
        match env.nets.create("b", &subnet("10.90.5.0/24")) {
            Err(e @ Error::SubnetOverlap { .. }) => assert_eq!(
                e.to_string(),
                "subnet 10.90.5.0/24 of network \"b\" overlaps subnet 10.90.0.0/16 of network \"a\""
            ),
            other => panic!("{other:?}"),
        }
        env.nets.default_network().expect("default");
        assert!(
            matches!(env.nets.create("c", &subnet("10.88.1.0/24")), Err(Error::SubnetOverlap { other, .. }) if other == "bridge")
        );
        assert!(matches!(
            env.nets.create("a", &subnet("10.91.0.0/24")),
            Err(Error::NetworkExists(_))
        ));
        // Without a subnet: the pool's first free /24, clear of every other network.
        let auto = env.nets.create("auto", &NetworkOptions::default()).expect("auto");
        assert_eq!(auto.subnet.to_string(), "10.89.0.0/24");
        let names: Vec<_> = env.nets.list().expect("list").into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a", "auto", "bridge"]);
        assert!(matches!(env.nets.remove("bridge"), Err(Error::DefaultNetwork(_))));
        env.nets.remove("a").expect("remove");
        env.nets
            .create("b", &subnet("10.90.5.0/24"))
            .expect("free once a is gone");
    });
}

#[test]
fn a_plugin_error_carries_its_cni_code_and_the_failed_add_is_undone() {
    in_own_netns(|| {
        let env = Env::new();
        let opts = NetworkOptions {
            subnet: Some("10.78.0.0/24".parse().expect("subnet")),
            ..Default::default()
        };
        env.nets.create("fixed", &opts).expect("create");
        let ip = Some("10.78.0.50".parse().expect("ip"));
        let a = env.container("fixed-a", false);
        let att = env
            .nets
            .attach(
                "fixed-a",
                a.path(),
                "fixed",
                &AttachOptions {
                    ip,
                    ..Default::default()
                },
            )
            .expect("--ip");
        assert_eq!(att.ip(), ip);
        let b = env.container("fixed-b", false);
        match env.nets.attach(
            "fixed-b",
            b.path(),
            "fixed",
            &AttachOptions {
                ip,
                ..Default::default()
            },
        ) {
            Err(Error::Plugin {
                plugin,
                command,
                code,
                msg,
                ..
            }) => {
                assert_eq!((plugin.as_str(), command), ("bridge", "ADD"));
                assert!(code > 0, "a CNI code");
                assert!(msg.contains("10.78.0.50"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        env.assert_clean("fixed-b");
        assert!(matches!(
            env.nets.attach(
                "fixed-b",
                b.path(),
                "bridge",
                &AttachOptions {
                    ip,
                    ..Default::default()
                }
            ),
            Err(Error::BadAddress { .. })
        ));
        env.nets.detach("fixed-a", "fixed").expect("detach");
        env.assert_clean("fixed-a");
        assert_no_veth();
    });
}

const CHILD_ENV: &str = "WHARF_NETWORK_TEST_CHILD";

/// The process the next test kills: attaches (state dir and namespace from the environment), says so, and
/// waits to be killed. Run only by `del_after_sigkill_of_the_attaching_process`.
#[test]
#[ignore = "child process of del_after_sigkill_of_the_attaching_process"]
fn child_attach_then_wait() {
    let spec = std::env::var(CHILD_ENV).expect("run by del_after_sigkill_of_the_attaching_process");
    let (state, netns) = spec.split_once('|').expect("state|netns");
    let nets = Networks::open(state, NetworksConfig::default()).expect("open");
    let att = nets
        .attach("killed", netns.as_ref(), "bridge", &ports(&["8083:80"]))
        .expect("attach");
    println!("attached {}", att.ip().expect("ip"));
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn del_after_sigkill_of_the_attaching_process() {
    in_own_netns(|| {
        let env = Env::new();
        let web = env.container("killed", true);
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_attach_then_wait",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{}|{}", env.nets.root().display(), web.path().display()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the attaching process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ip = loop {
            let line = lines.next().expect("the child said nothing").expect("read");
            // libtest prints "test NAME ... " before the child's own output, on the same line.
            if let Some((_, ip)) = line.split_once("attached ") {
                break ip.to_string();
            }
        };
        assert_eq!(
            eventually(|| host_get("http://127.0.0.1:8083/")),
            "hello from the container\n"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        // The container dies too (kill -9 of everything); its pinned namespace stays for the clean-up.
        let mut web = web;
        let mut server = web.child.take().expect("httpd");
        server.kill().expect("SIGKILL httpd");
        server.wait().expect("wait");

        let nets = Networks::open(env.nets.root(), NetworksConfig::default()).expect("reopen");
        let report = nets.gc(|_| false).expect("gc");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.detached.len(), 1);
        assert_eq!(report.detached[0].ip().map(|i| i.to_string()), Some(ip));
        web.stop();
        env.assert_clean("killed");
        assert_no_veth();
        assert!(host_get("http://127.0.0.1:8083/").is_err());
    });
}

//! Image config → runtime spec conversion, user resolution in an untrusted rootfs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use wharf_image::oci_spec::runtime::Spec;
use wharf_image::runtime::{DEFAULT_PATH, RuntimeError, VOLUMES_ANNOTATION};
use wharf_image::user::{MAX_DB_SIZE, RootfsUsers, UserError};
use wharf_image::{ImageConfig, RuntimeOverrides, runtime_spec};

/// Docker's default PATH, written out independently of the library's constant.
const DOCKER_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin
app:x:1000:1000:App User:/home/app:/bin/sh
";

const GROUP: &str = "\
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
wheel:x:10:root,app
nginx:x:101:nginx
staff:x:50:app
audio:x:29:app,nginx
app:x:1000:
";

/// A rootfs with the passwd/group above, in its own temp dir.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
    fs::write(dir.path().join("etc/group"), GROUP).unwrap();
    dir
}

fn fixture(name: &str) -> ImageConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()));
    ImageConfig::parse(&bytes).unwrap()
}

/// A config with just these execution parameters (a JSON `config` object body).
fn config(exec: &str) -> ImageConfig {
    let json = format!(r#"{{"architecture":"amd64","os":"linux","config":{{{exec}}},"rootfs":{{"type":"layers"}}}}"#);
    ImageConfig::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn process(spec: &Spec) -> &wharf_image::oci_spec::runtime::Process {
    spec.process().as_ref().unwrap()
}

fn env_of(spec: &Spec) -> Vec<String> {
    process(spec).env().clone().unwrap_or_default()
}

fn annotations_of(spec: &Spec) -> BTreeMap<String, String> {
    spec.annotations().clone().unwrap_or_default().into_iter().collect()
}

#[test]
fn entrypoint_and_cmd_follow_docker_override_rules() {
    let both = r#""Entrypoint":["/ep","--flag"],"Cmd":["c1","c2"]"#;
    let cmd_only = r#""Cmd":["sh"]"#;
    let neither = r#""Entrypoint":null,"Cmd":null"#;
    type Case<'a> = (
        &'a str,
        Option<&'a [&'a str]>,
        Option<&'a [&'a str]>,
        Option<&'a [&'a str]>,
    );
    let cases: &[Case<'_>] = &[
        // (image, entrypoint override, cmd override, expected args; None = NoCommand)
        (both, None, None, Some(&["/ep", "--flag", "c1", "c2"])),
        (both, None, Some(&["x"]), Some(&["/ep", "--flag", "x"])),
        (both, None, Some(&[]), Some(&["/ep", "--flag"])),
        (both, Some(&["/other"]), None, Some(&["/other"])),
        (both, Some(&["/other"]), Some(&["y"]), Some(&["/other", "y"])),
        (both, Some(&[]), Some(&["y", "z"]), Some(&["y", "z"])),
        (both, Some(&[]), None, None),
        (cmd_only, None, None, Some(&["sh"])),
        (cmd_only, None, Some(&["ls", "-l"]), Some(&["ls", "-l"])),
        (cmd_only, Some(&["/bin/busybox"]), None, Some(&["/bin/busybox"])),
        (neither, None, None, None),
        (neither, None, Some(&["true"]), Some(&["true"])),
        (neither, Some(&["/init"]), None, Some(&["/init"])),
    ];
    for (i, (image, ep, cmd, expected)) in cases.iter().enumerate() {
        let overrides = RuntimeOverrides {
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        };
        let got = runtime_spec(&config(image), &overrides);
        match expected {
            Some(args) => {
                let spec = got.unwrap_or_else(|e| panic!("case {i}: {e}"));
                assert_eq!(process(&spec).args().as_deref(), Some(&v(args)[..]), "case {i}");
            }
            None => assert!(matches!(got, Err(RuntimeError::NoCommand)), "case {i}: {got:?}"),
        }
    }
}

#[test]
fn env_merges_by_key_and_adds_defaults() {
    type Case<'a> = (&'a str, &'a [&'a str], RuntimeOverrides, &'a [&'a str]);
    let image = r#""Cmd":["sh"],"Env":["PATH=/opt/bin:/bin","A=1","B=2"]"#;
    let cases: Vec<Case<'_>> = vec![
        (
            image,
            &[],
            RuntimeOverrides::default(),
            &["PATH=/opt/bin:/bin", "A=1", "B=2", "HOME=/"],
        ),
        // Override wins by key, in place; new keys are appended.
        (
            image,
            &["A=9", "C=3", "B="],
            RuntimeOverrides::default(),
            &["PATH=/opt/bin:/bin", "A=9", "B=", "C=3", "HOME=/"],
        ),
        // No PATH anywhere: Docker's default, first.
        (
            r#""Cmd":["sh"],"Env":null"#,
            &["X=a=b"],
            RuntimeOverrides::default(),
            &[DOCKER_PATH, "X=a=b", "HOME=/"],
        ),
        // The caller's PATH replaces the image's.
        (
            image,
            &["PATH=/mine"],
            RuntimeOverrides::default(),
            &["PATH=/mine", "A=1", "B=2", "HOME=/"],
        ),
        // A duplicate key in the image keeps the last value at the first place.
        (
            r#""Cmd":["sh"],"Env":["A=1","PATH=/p","A=2"]"#,
            &[],
            RuntimeOverrides::default(),
            &["A=2", "PATH=/p", "HOME=/"],
        ),
        // Terminal and hostname add TERM and HOSTNAME unless the image set them.
        (
            image,
            &[],
            RuntimeOverrides {
                terminal: true,
                hostname: Some("box".into()),
                ..Default::default()
            },
            &[
                "PATH=/opt/bin:/bin",
                "A=1",
                "B=2",
                "HOSTNAME=box",
                "TERM=xterm",
                "HOME=/",
            ],
        ),
        (
            r#""Cmd":["sh"],"Env":["TERM=dumb","HOME=/data","HOSTNAME=fixed"]"#,
            &[],
            RuntimeOverrides {
                terminal: true,
                hostname: Some("box".into()),
                ..Default::default()
            },
            &[DOCKER_PATH, "TERM=dumb", "HOME=/data", "HOSTNAME=fixed"],
        ),
    ];
    assert_eq!(format!("PATH={DEFAULT_PATH}"), DOCKER_PATH);
    for (i, (image, env, mut overrides, expected)) in cases.into_iter().enumerate() {
        overrides.env = v(env);
        let spec = runtime_spec(&config(image), &overrides).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(env_of(&spec), v(expected), "case {i}");
    }

    for bad in ["NOEQUALS", "=value", ""] {
        let overrides = RuntimeOverrides {
            env: v(&[bad]),
            ..Default::default()
        };
        let got = runtime_spec(&config(r#""Cmd":["sh"]"#), &overrides);
        assert!(
            matches!(&got, Err(RuntimeError::Env { entry }) if entry == bad),
            "{bad:?}: {got:?}"
        );
    }
    let got = runtime_spec(
        &config(r#""Cmd":["sh"],"Env":["BROKEN"]"#),
        &RuntimeOverrides::default(),
    );
    assert!(
        matches!(&got, Err(RuntimeError::Env { entry }) if entry == "BROKEN"),
        "{got:?}"
    );
}

#[test]
fn working_dir_from_image_override_or_root() {
    let image = config(r#""Cmd":["sh"],"WorkingDir":"/srv""#);
    let cwd = |c: &ImageConfig, o: RuntimeOverrides| {
        runtime_spec(c, &o).map(|s| process(&s).cwd().to_string_lossy().into_owned())
    };
    assert_eq!(cwd(&image, RuntimeOverrides::default()).unwrap(), "/srv");
    let o = RuntimeOverrides {
        working_dir: Some("/tmp/x".into()),
        ..Default::default()
    };
    assert_eq!(cwd(&image, o).unwrap(), "/tmp/x");
    assert_eq!(
        cwd(&config(r#""Cmd":["sh"],"WorkingDir":"""#), RuntimeOverrides::default()).unwrap(),
        "/"
    );
    let o = RuntimeOverrides {
        working_dir: Some("relative/dir".into()),
        ..Default::default()
    };
    assert!(matches!(cwd(&image, o), Err(RuntimeError::WorkingDir { path }) if path == "relative/dir"));
}

#[test]
fn user_forms_resolve_against_the_rootfs() {
    let root = rootfs();
    // (User, uid, gid, additional gids, HOME)
    let cases: &[(&str, u32, u32, &[u32], &str)] = &[
        ("", 0, 0, &[0, 1, 2, 10], "/root"),
        ("root", 0, 0, &[0, 1, 2, 10], "/root"),
        ("app", 1000, 1000, &[10, 50, 29], "/home/app"),
        // A numeric uid found in passwd gets its entry's gid and groups, as in Docker.
        ("1000", 1000, 1000, &[10, 50, 29], "/home/app"),
        ("nginx", 101, 101, &[101, 29], "/var/cache/nginx"),
        // A group given: no supplementary groups.
        ("1000:1000", 1000, 1000, &[], "/home/app"),
        ("app:staff", 1000, 50, &[], "/home/app"),
        ("app:29", 1000, 29, &[], "/home/app"),
        ("nginx:", 101, 101, &[101, 29], "/var/cache/nginx"),
        // Numeric ids not in the databases are taken verbatim; gid defaults to 0.
        ("4242", 4242, 0, &[], "/"),
        ("4242:4343", 4242, 4343, &[], "/"),
        ("4242:audio", 4242, 29, &[], "/"),
        (":staff", 0, 50, &[], "/root"),
    ];
    for (user, uid, gid, gids, home) in cases {
        let overrides = RuntimeOverrides {
            user: Some(user.to_string()),
            rootfs: Some(root.path().to_path_buf()),
            ..Default::default()
        };
        let spec = runtime_spec(&config(r#""Cmd":["id"]"#), &overrides).unwrap_or_else(|e| panic!("{user:?}: {e}"));
        let u = process(&spec).user();
        assert_eq!((u.uid(), u.gid()), (*uid, *gid), "{user:?}");
        assert_eq!(
            u.additional_gids().clone().unwrap_or_default(),
            gids.to_vec(),
            "{user:?}"
        );
        assert!(
            env_of(&spec).contains(&format!("HOME={home}")),
            "{user:?}: {:?}",
            env_of(&spec)
        );
    }

    // The image's User is used when not overridden.
    let image = fixture("oci-buildkit.json"); // User "app:staff"
    let o = RuntimeOverrides {
        rootfs: Some(root.path().to_path_buf()),
        ..Default::default()
    };
    let spec = runtime_spec(&image, &o).unwrap();
    assert_eq!((process(&spec).user().uid(), process(&spec).user().gid()), (1000, 50));
}

#[test]
fn unknown_users_and_groups_are_errors() {
    let root = rootfs();
    let with_root = |user: &str| RuntimeOverrides {
        user: Some(user.into()),
        rootfs: Some(root.path().to_path_buf()),
        ..Default::default()
    };
    let image = config(r#""Cmd":["id"]"#);
    let err = |o: RuntimeOverrides| match runtime_spec(&image, &o) {
        Err(RuntimeError::User { user, source }) => (user, source),
        other => panic!("expected a user error, got {other:?}"),
    };
    let (user, e) = err(with_root("nobody"));
    assert_eq!(user, "nobody");
    assert!(matches!(e, UserError::UnknownUser { user } if user == "nobody"));
    assert!(matches!(err(with_root("app:nogroup")).1, UserError::UnknownGroup { group } if group == "nogroup"));
    assert!(matches!(err(with_root("2147483648")).1, UserError::OutOfRange { .. }));
    assert!(matches!(err(with_root("-1")).1, UserError::UnknownUser { .. }));

    // Without a rootfs, names cannot be resolved; numbers can.
    let no_root = |user: &str| RuntimeOverrides {
        user: Some(user.into()),
        ..Default::default()
    };
    assert!(matches!(err(no_root("app")).1, UserError::NoRootfs { name } if name == "app"));
    assert!(matches!(err(no_root("1000:staff")).1, UserError::NoRootfs { name } if name == "staff"));
    let spec = runtime_spec(&image, &no_root("1000:1001")).unwrap();
    let u = process(&spec).user();
    assert_eq!((u.uid(), u.gid(), u.additional_gids().clone()), (1000, 1001, None));
    let spec = runtime_spec(&image, &no_root("")).unwrap();
    assert_eq!((process(&spec).user().uid(), process(&spec).user().gid()), (0, 0));

    // A rootfs without /etc/passwd: names fail, numbers work.
    let empty = tempfile::tempdir().unwrap();
    let o = RuntimeOverrides {
        user: Some("root".into()),
        rootfs: Some(empty.path().to_path_buf()),
        ..Default::default()
    };
    assert!(matches!(err(o).1, UserError::UnknownUser { .. }));
    let o = RuntimeOverrides {
        user: Some("7".into()),
        rootfs: Some(empty.path().to_path_buf()),
        ..Default::default()
    };
    assert_eq!(process(&runtime_spec(&image, &o).unwrap()).user().uid(), 7);

    // A rootfs that does not exist.
    let o = RuntimeOverrides {
        rootfs: Some(empty.path().join("missing")),
        ..Default::default()
    };
    assert!(matches!(err(o).1, UserError::Rootfs { path, .. } if path.ends_with("missing")));
}

/// A hostile image makes /etc/passwd a symlink to an absolute host path: it must resolve
/// inside the rootfs, never to the host file.
#[test]
fn passwd_symlink_to_host_file_resolves_inside_rootfs() {
    let host = tempfile::tempdir().unwrap();
    let host_passwd = host.path().join("host-passwd");
    fs::write(&host_passwd, "evil:x:4242:4242::/evil:/bin/sh\n").unwrap();
    let host_group = host.path().join("host-group");
    fs::write(&host_group, "evilgrp:x:4343:evil,app\n").unwrap();
    assert!(host_passwd.is_absolute());

    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    symlink(&host_passwd, root.path().join("etc/passwd")).unwrap();
    // And a relative escape for group: far more ../ than the rootfs is deep.
    let up = "../".repeat(40);
    let rel = format!("{up}{}", host_group.strip_prefix("/").unwrap().display());
    symlink(&rel, root.path().join("etc/group")).unwrap();
    // Sanity: the links do reach the host files when followed naively.
    assert!(
        fs::read_to_string(root.path().join("etc/passwd"))
            .unwrap()
            .contains("evil")
    );
    assert!(
        fs::read_to_string(root.path().join("etc/group"))
            .unwrap()
            .contains("evilgrp")
    );

    let users = RootfsUsers::read(root.path()).unwrap();
    assert!(users.passwd.is_empty(), "host passwd was read: {users:?}");
    assert!(users.group.is_empty(), "host group was read: {users:?}");

    let image = config(r#""Cmd":["id"],"User":"evil""#);
    let o = RuntimeOverrides {
        rootfs: Some(root.path().to_path_buf()),
        ..Default::default()
    };
    match runtime_spec(&image, &o) {
        Err(RuntimeError::User {
            source: UserError::UnknownUser { user },
            ..
        }) => assert_eq!(user, "evil"),
        other => panic!("host /etc/passwd content leaked into the spec: {other:?}"),
    }

    // The same targets, created inside the rootfs, are what the links mean.
    let inside = root.path().join(host_passwd.strip_prefix("/").unwrap());
    fs::create_dir_all(inside.parent().unwrap()).unwrap();
    fs::write(&inside, "evil:x:7:7::/inside:/bin/sh\napp:x:8:8::/:/bin/sh\n").unwrap();
    fs::write(
        root.path().join(host_group.strip_prefix("/").unwrap()),
        "inner:x:77:evil\n",
    )
    .unwrap();
    let spec = runtime_spec(&image, &o).unwrap();
    let u = process(&spec).user();
    assert_eq!((u.uid(), u.gid()), (7, 7));
    assert_eq!(u.additional_gids().clone(), Some(vec![77]));
    assert!(env_of(&spec).contains(&"HOME=/inside".to_string()));
}

/// /etc inside the rootfs is a symlink out of it (`etc -> /some/host/dir`).
#[test]
fn etc_directory_symlink_stays_inside_rootfs() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("passwd"), "evil:x:4242:4242::/evil:/bin/sh\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    symlink(host.path(), root.path().join("etc")).unwrap();
    let users = RootfsUsers::read(root.path()).unwrap();
    assert!(users.passwd.is_empty(), "host passwd was read through /etc: {users:?}");
}

#[test]
fn hostile_database_files_are_refused() {
    let image = config(r#""Cmd":["id"],"User":"app""#);
    let check = |setup: &dyn Fn(&Path), want: &dyn Fn(&UserError) -> bool| {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/group"), GROUP).unwrap();
        setup(root.path());
        let o = RuntimeOverrides {
            rootfs: Some(root.path().to_path_buf()),
            ..Default::default()
        };
        match runtime_spec(&image, &o) {
            Err(RuntimeError::User { source, .. }) => assert!(want(&source), "unexpected {source:?}"),
            other => panic!("expected a user error, got {other:?}"),
        }
    };
    // A FIFO would block a naive open forever.
    check(
        &|r| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                r.join("etc/passwd"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap()
        },
        &|e| matches!(e, UserError::NotAFile { file: "/etc/passwd" }),
    );
    check(&|r| fs::create_dir(r.join("etc/passwd")).unwrap(), &|e| {
        matches!(e, UserError::NotAFile { file: "/etc/passwd" })
    });
    check(
        &|r| {
            let mut big = PASSWD.to_string();
            while (big.len() as u64) <= MAX_DB_SIZE {
                big.push_str("filler:x:5000:5000::/:/bin/false\n");
            }
            fs::write(r.join("etc/passwd"), big).unwrap()
        },
        &|e| matches!(e, UserError::TooLarge { file: "/etc/passwd", limit } if *limit == MAX_DB_SIZE),
    );
    check(
        &|r| symlink("passwd", r.join("etc/passwd")).unwrap(),
        &|e| matches!(e, UserError::Read { file: "/etc/passwd", source } if source.raw_os_error() == Some(40)),
    );
}

#[test]
fn annotations_follow_conversion_rules() {
    let root = rootfs(); // the image runs as app:staff
    let o = RuntimeOverrides {
        rootfs: Some(root.path().to_path_buf()),
        ..Default::default()
    };
    let spec = runtime_spec(&fixture("oci-buildkit.json"), &o).unwrap();
    let a = annotations_of(&spec);
    let expected: BTreeMap<String, String> = [
        ("org.opencontainers.image.os", "linux"),
        ("org.opencontainers.image.architecture", "arm64"),
        ("org.opencontainers.image.variant", "v8"),
        ("org.opencontainers.image.author", "wharf tests <tests@example.invalid>"),
        ("org.opencontainers.image.created", "2024-03-14T09:12:45.123456789Z"),
        // The label wins over Config.StopSignal ("SIGTERM").
        ("org.opencontainers.image.stopSignal", "SIGINT"),
        ("org.opencontainers.image.exposedPorts", "443/tcp,53/udp,8080/tcp"),
        ("org.opencontainers.image.source", "https://example.invalid/app"),
        ("com.example.tier", "backend"),
        (VOLUMES_ANNOTATION, "/data,/var/lib/app"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(a, expected);

    let nginx = runtime_spec(&fixture("docker-nginx.json"), &RuntimeOverrides::default()).unwrap();
    let a = annotations_of(&nginx);
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT");
    assert_eq!(a["org.opencontainers.image.exposedPorts"], "80/tcp");
    assert_eq!(a["maintainer"], "NGINX Docker Maintainers <docker-maint@nginx.com>");
    assert!(!a.contains_key(VOLUMES_ANNOTATION));
    assert!(!a.contains_key("org.opencontainers.image.author"));

    // The caller's annotations come last.
    let o = RuntimeOverrides {
        annotations: [("org.opencontainers.image.stopSignal".to_string(), "SIGKILL".to_string())].into(),
        ..Default::default()
    };
    let a = annotations_of(&runtime_spec(&fixture("docker-nginx.json"), &o).unwrap());
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGKILL");
}

#[test]
fn spec_keeps_runc_defaults_and_sets_root_hostname_terminal() {
    let image = fixture("docker-nginx.json");
    let spec = runtime_spec(&image, &RuntimeOverrides::default()).unwrap();
    let p = process(&spec);
    assert_eq!(
        p.args().as_deref(),
        Some(&v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])[..])
    );
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(spec.hostname(), &None);
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("rootfs"));
    assert_eq!(root.readonly(), Some(false));
    let mounts = spec.mounts().clone().unwrap_or_default();
    for dest in ["/proc", "/dev", "/dev/pts", "/sys"] {
        assert!(
            mounts.iter().any(|m| m.destination() == Path::new(dest)),
            "no {dest} mount"
        );
    }
    let linux = spec.linux().as_ref().unwrap();
    assert!(!linux.namespaces().clone().unwrap_or_default().is_empty());
    assert!(!linux.masked_paths().clone().unwrap_or_default().is_empty());
    assert!(p.capabilities().is_some());

    let o = RuntimeOverrides {
        hostname: Some("web-1".into()),
        terminal: true,
        root_path: Some("/var/lib/wharf/containers/x/merged".into()),
        readonly_rootfs: true,
        ..Default::default()
    };
    let spec = runtime_spec(&image, &o).unwrap();
    assert_eq!(spec.hostname().as_deref(), Some("web-1"));
    assert_eq!(process(&spec).terminal(), Some(true));
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/var/lib/wharf/containers/x/merged"));
    assert_eq!(root.readonly(), Some(true));
    // It serialises as a runtime config.json.
    let json = serde_json::to_string(&spec).unwrap();
    assert!(
        json.contains(r#""args":["/docker-entrypoint.sh","nginx","-g","daemon off;"]"#),
        "{json}"
    );
}

fn umoci(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("umoci")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("umoci is required for this test (Debian package umoci): {e}"));
    assert!(
        out.status.success(),
        "umoci {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The config umoci wrote for `tag` in the layout `lay`, parsed through its descriptor.
fn umoci_config(dir: &Path, tag: &str) -> ImageConfig {
    let index = json_file(&dir.join("lay/index.json"));
    let blob = |digest: &serde_json::Value| dir.join("lay/blobs/sha256").join(&digest.as_str().unwrap()[7..]);
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let manifest = json_file(&blob(&desc["digest"]));
    let media_type = wharf_image::oci_spec::image::MediaType::from(manifest["config"]["mediaType"].as_str().unwrap());
    ImageConfig::parse_as(&media_type, &fs::read(blob(&manifest["config"]["digest"])).unwrap()).unwrap()
}

/// umoci implements the same conversion (`umoci raw runtime-config`): on an image umoci made
/// itself, both must agree on args, cwd, user, environment and annotations.
#[test]
fn umoci_agrees_on_conversion() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    fs::create_dir_all(dir.join("rfs/etc")).unwrap();
    fs::write(dir.join("rfs/etc/passwd"), PASSWD).unwrap();
    fs::write(dir.join("rfs/etc/group"), GROUP).unwrap();
    umoci(dir, &["init", "--layout", "lay"]);
    umoci(dir, &["new", "--image", "lay:base"]);
    #[rustfmt::skip]
    umoci(dir, &[
        "config", "--image", "lay:base", "--tag", "conf",
        "--config.exposedports", "80/tcp", "--config.exposedports", "53/udp",
        "--config.env", "A=1", "--config.env", "PATH=/bin",
        "--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.cmd", "echo hi",
        "--config.volume", "/data", "--config.label", "com.example.k=v",
        "--config.workingdir", "/srv", "--config.stopsignal", "SIGINT",
        "--author", "wharf tests", "--history.created_by", "umoci config",
    ]);
    for (i, user) in ["app", "app:staff", "1000", "4242", "4242:audio", "nginx", "root"]
        .iter()
        .enumerate()
    {
        let tag = format!("u{i}");
        umoci(
            dir,
            &["config", "--image", "lay:conf", "--tag", &tag, "--config.user", user],
        );
        let out = format!("{tag}.json");
        umoci(
            dir,
            &[
                "raw",
                "runtime-config",
                "--image",
                &format!("lay:{tag}"),
                "--rootfs",
                "rfs",
                &out,
            ],
        );
        let theirs = json_file(&dir.join(&out));

        let config = umoci_config(dir, &tag);
        assert_eq!(config.user(), Some(*user));
        let o = RuntimeOverrides {
            rootfs: Some(dir.join("rfs")),
            ..Default::default()
        };
        let ours = serde_json::to_value(runtime_spec(&config, &o).unwrap()).unwrap();

        for field in ["args", "cwd", "user"] {
            assert_eq!(
                ours["process"][field], theirs["process"][field],
                "{user}: process.{field}"
            );
        }
        // umoci always allocates a terminal (TERM), sets HOME only for users in passwd and
        // moves PATH first; the rest must match.
        let env = |spec: &serde_json::Value| -> std::collections::BTreeSet<String> {
            spec["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .filter(|e| !e.starts_with("TERM="))
                .filter(|e| e != "HOME=/")
                .collect()
        };
        assert_eq!(env(&ours), env(&theirs), "{user}: process.env");
        let mut ours_annotations = ours["annotations"].as_object().unwrap().clone();
        assert_eq!(
            ours_annotations.remove(VOLUMES_ANNOTATION),
            Some(serde_json::Value::from("/data"))
        );
        assert_eq!(
            serde_json::Value::Object(ours_annotations),
            theirs["annotations"],
            "{user}: annotations"
        );
    }
}

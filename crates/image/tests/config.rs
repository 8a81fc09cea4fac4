//! Image config parsing (OCI and Docker), validation and building.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use wharf_image::config::{ConfigError, Healthcheck};
use wharf_image::oci_spec::image::{ConfigBuilder, HistoryBuilder};
use wharf_image::{Digest, ImageConfig, Platform};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()))
}

fn parse(name: &str) -> ImageConfig {
    ImageConfig::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn docker_hub_config_with_nulls_and_port_map() {
    let c = parse("docker-nginx.json");
    assert_eq!(c.os(), "linux");
    assert_eq!(c.architecture(), "amd64");
    assert_eq!(c.variant(), None);
    assert_eq!(c.platform(), Platform::new("linux", "amd64", None));
    assert_eq!(c.created(), Some("2023-11-01T05:28:21.387930453Z"));
    assert_eq!(c.entrypoint(), Some(&strings(&["/docker-entrypoint.sh"])[..]));
    assert_eq!(c.cmd(), Some(&strings(&["nginx", "-g", "daemon off;"])[..]));
    assert_eq!(c.env().len(), 4);
    assert_eq!(c.env()[1], "NGINX_VERSION=1.25.3");
    // Docker writes "" for an unset user and working dir.
    assert_eq!(c.user(), None);
    assert_eq!(c.working_dir(), None);
    assert_eq!(c.exposed_ports(), ["80/tcp"]);
    assert!(c.volumes().is_empty(), "\"Volumes\": null is no volumes");
    assert_eq!(
        c.labels().get("maintainer"),
        Some(&"NGINX Docker Maintainers <docker-maint@nginx.com>")
    );
    assert_eq!(c.stop_signal(), Some("SIGQUIT"));
    assert_eq!(c.healthcheck(), None);
    assert_eq!(c.shell(), None);
    assert!(c.on_build().is_empty());

    let h = c.history();
    assert_eq!(h.len(), 9);
    assert_eq!(h[1].empty_layer(), Some(true));
    assert_eq!(h[0].empty_layer(), None);
    assert_eq!(h.iter().filter(|h| h.empty_layer() != Some(true)).count(), 3);
    assert!(h[3].created_by().as_deref().unwrap().contains("useradd"));

    let ids = c.diff_ids().unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids[0].to_string(),
        "sha256:ec983b16636050e69677eb81537e955ab927757c23aaf73971ecf5f71fcc262a"
    );
}

#[test]
fn oci_config_every_field() {
    let c = parse("oci-buildkit.json");
    assert_eq!(c.architecture(), "arm64");
    assert_eq!(c.variant(), Some("v8"));
    // containerd drops arm64's default v8 variant.
    assert_eq!(c.platform(), Platform::new("linux", "arm64", None));
    assert_eq!(c.author(), Some("wharf tests <tests@example.invalid>"));
    assert_eq!(c.user(), Some("app:staff"));
    assert_eq!(c.working_dir(), Some("/opt/app"));
    assert_eq!(c.exposed_ports(), ["443/tcp", "53/udp", "8080/tcp"]);
    assert_eq!(c.volumes(), ["/data", "/var/lib/app"]);
    assert_eq!(
        c.env(),
        strings(&["PATH=/opt/app/bin:/usr/bin:/bin", "APP_ENV=production", "EMPTY="])
    );
    assert_eq!(c.entrypoint(), Some(&strings(&["/opt/app/bin/server"])[..]));
    assert_eq!(c.cmd(), Some(&strings(&["--listen", ":8080"])[..]));
    assert_eq!(
        c.labels().into_iter().collect::<Vec<_>>(),
        [
            ("com.example.tier", "backend"),
            ("org.opencontainers.image.source", "https://example.invalid/app"),
            ("org.opencontainers.image.stopSignal", "SIGINT"),
        ]
    );
    assert_eq!(c.stop_signal(), Some("SIGTERM"));
    let h = c.history();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].comment().as_deref(), Some("buildkit.dockerfile.v0"));
    assert_eq!(h[2].author().as_deref(), Some("ci"));
    let ids = c.diff_ids().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1].algorithm(), wharf_image::Algorithm::Sha512);
}

#[test]
fn docker_only_fields_and_missing_diff_ids() {
    let c = parse("docker-healthcheck.json");
    assert_eq!(
        c.healthcheck(),
        Some(&Healthcheck {
            test: Some(strings(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"])),
            interval: Some(30_000_000_000),
            timeout: Some(5_000_000_000),
            start_period: Some(10_000_000_000),
            start_interval: None,
            retries: Some(3),
        })
    );
    assert_eq!(c.shell(), Some(&strings(&["/bin/bash", "-o", "pipefail", "-c"])[..]));
    assert_eq!(c.on_build(), strings(&["RUN echo child build"]));
    // Nulls everywhere are "not set", not errors.
    assert_eq!(c.cmd(), None);
    assert_eq!(c.entrypoint(), None);
    assert!(c.env().is_empty());
    assert!(c.labels().is_empty());
    assert!(c.exposed_ports().is_empty());
    assert!(c.history().is_empty());
    // A Go map value written as null still names the volume.
    assert_eq!(c.volumes(), ["/srv/data"]);
    assert_eq!(c.user(), Some("1000:1000"));
    // Docker leaves diff_ids out when there are no layers.
    assert!(c.diff_ids().unwrap().is_empty());
}

#[test]
fn empty_strings_are_unset() {
    let c = ImageConfig::parse(
        br#"{"architecture":"arm64","os":"linux","variant":"","author":"","os.version":"",
             "config":{"User":"","WorkingDir":"","StopSignal":""},"rootfs":{"type":"layers"}}"#,
    )
    .unwrap();
    assert_eq!(
        (
            c.variant(),
            c.author(),
            c.os_version(),
            c.user(),
            c.working_dir(),
            c.stop_signal()
        ),
        (None, None, None, None, None, None)
    );
    assert_eq!(c.platform(), Platform::new("linux", "arm64", None));
}

#[test]
fn minimal_oci_config_has_no_execution_parameters() {
    let c = parse("oci-minimal.json");
    assert_eq!(c.cmd(), None);
    assert!(c.env().is_empty());
    assert!(c.labels().is_empty());
    assert_eq!(c.created(), None);
    assert_eq!(c.diff_ids().unwrap().len(), 1);
}

type Check = Box<dyn Fn(&ConfigError) -> bool>;

#[test]
fn malformed_configs_get_typed_errors() {
    let bad_hex = "sha256:NOTHEX".parse::<Digest>().unwrap_err();
    let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>().unwrap_err();
    let cases: Vec<(&str, Check)> = vec![
        (
            "bad-truncated.json",
            Box::new(|e| matches!(e, ConfigError::Malformed { .. })),
        ),
        ("bad-array.json", Box::new(|e| *e == ConfigError::NotAnObject)),
        (
            "bad-no-rootfs.json",
            Box::new(|e| *e == ConfigError::MissingField { field: "rootfs" }),
        ),
        (
            "bad-no-rootfs-type.json",
            Box::new(|e| *e == ConfigError::MissingField { field: "rootfs.type" }),
        ),
        (
            "bad-rootfs-type.json",
            Box::new(|e| *e == ConfigError::RootfsType { found: "tar".into() }),
        ),
        (
            "bad-no-architecture.json",
            Box::new(|e| *e == ConfigError::MissingField { field: "architecture" }),
        ),
        (
            "bad-diff-id.json",
            Box::new(move |e| {
                *e == ConfigError::DiffId {
                    index: 1,
                    value: "sha256:NOTHEX".into(),
                    source: bad_hex.clone(),
                }
            }),
        ),
        (
            "bad-diff-id-algorithm.json",
            Box::new(move |e| matches!(e, ConfigError::DiffId { index: 0, source, .. } if *source == md5)),
        ),
        (
            "bad-cmd-string.json",
            Box::new(|e| matches!(e, ConfigError::Malformed { reason } if reason.contains("expected a sequence"))),
        ),
    ];
    for (name, check) in cases {
        let err = ImageConfig::parse(&fixture(name)).expect_err(name);
        assert!(check(&err), "{name}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(ImageConfig::parse(b""), Err(ConfigError::Malformed { .. })));
    assert!(matches!(
        ImageConfig::parse(br#"{"architecture":"amd64","os":"linux","rootfs":"layers"}"#),
        Err(ConfigError::Malformed { .. })
    ));
}

#[test]
fn to_bytes_round_trips_and_is_deterministic() {
    for name in [
        "docker-nginx.json",
        "oci-buildkit.json",
        "docker-healthcheck.json",
        "oci-minimal.json",
    ] {
        let c = parse(name);
        let bytes = c.to_bytes().unwrap();
        let again = ImageConfig::parse(&bytes).unwrap();
        assert_eq!(again, c, "{name} changed in a round trip");
        assert_eq!(again.to_bytes().unwrap(), bytes, "{name}: serialisation is not stable");
        // Keys are sorted at every level, so the hash map behind labels and ports cannot
        // reorder them.
        let text = String::from_utf8(bytes).unwrap();
        if name == "oci-buildkit.json" {
            let p443 = text.find("443/tcp").unwrap();
            let p53 = text.find("53/udp").unwrap();
            let p8080 = text.find("8080/tcp").unwrap();
            assert!(p443 < p53 && p53 < p8080, "ports not sorted in {text}");
            assert!(text.starts_with(r#"{"architecture":"arm64","author":"#), "{text}");
        }
        if name == "docker-healthcheck.json" {
            assert!(text.contains(r#""Healthcheck":{"Interval":30000000000,"#), "{text}");
            assert!(text.contains(r#""OnBuild":["RUN echo child build"]"#), "{text}");
        }
    }
}

#[test]
fn builder_makes_a_config_for_layers() {
    let l1 = Digest::sha256(b"layer one");
    let l2 = Digest::sha256(b"layer two");
    let exec = ConfigBuilder::default()
        .entrypoint(strings(&["/bin/sh", "-c"]))
        .cmd(strings(&["echo hi"]))
        .env(strings(&["A=1"]))
        .exposed_ports(strings(&["80/tcp"]))
        .build()
        .unwrap();
    let history = vec![
        HistoryBuilder::default().created_by("import one").build().unwrap(),
        HistoryBuilder::default().created_by("import two").build().unwrap(),
    ];
    let platform = Platform::new("linux", "arm", Some("v7"));
    let c = ImageConfig::new_for_layers(&platform, &[l1.clone(), l2.clone()], Some(exec), history);
    assert_eq!(c.diff_ids().unwrap(), [l1.clone(), l2.clone()]);
    assert_eq!(c.platform(), platform);
    assert_eq!(c.variant(), Some("v7"));
    assert_eq!(c.history().len(), 2);
    assert_eq!(c.exposed_ports(), ["80/tcp"]);

    let bytes = c.to_bytes().unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.contains(r#""rootfs":{"diff_ids":["#), "{text}");
    assert!(text.contains(r#""type":"layers""#), "{text}");
    assert!(text.contains(r#""ExposedPorts":{"80/tcp":{}}"#), "{text}");
    assert_eq!(ImageConfig::parse(&bytes).unwrap(), c);
    // Same inputs, same bytes, same digest.
    let c2 = ImageConfig::new_for_layers(
        &platform,
        &[l1.clone(), l2.clone()],
        c.inner().config().clone(),
        c.history().to_vec(),
    );
    assert_eq!(Digest::sha256(&c2.to_bytes().unwrap()), Digest::sha256(&bytes));
}

#[test]
fn with_added_layer_appends_diff_id_and_history() {
    let base = parse("docker-nginx.json");
    let top = Digest::sha256(b"committed changes");
    let entry = HistoryBuilder::default()
        .created("2025-01-01T00:00:00Z")
        .created_by("wharf commit")
        .empty_layer(true)
        .build()
        .unwrap();
    let next = base.with_added_layer(&top, entry);
    let ids = next.diff_ids().unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[..3], base.diff_ids().unwrap()[..]);
    assert_eq!(ids[3], top);
    assert_eq!(next.history().len(), 10);
    let last = next.history().last().unwrap();
    assert_eq!(last.created_by().as_deref(), Some("wharf commit"));
    assert_eq!(
        last.empty_layer(),
        None,
        "a layer's history entry cannot be empty_layer"
    );
    assert_eq!(next.created(), Some("2025-01-01T00:00:00Z"));
    // Everything else is kept, and the base is untouched.
    assert_eq!(next.cmd(), base.cmd());
    assert_eq!(next.labels(), base.labels());
    assert_eq!(base.diff_ids().unwrap().len(), 3);

    let changed = next.with_container_config(ConfigBuilder::default().cmd(strings(&["true"])).build().unwrap());
    assert_eq!(changed.cmd(), Some(&strings(&["true"])[..]));
    assert_eq!(changed.diff_ids().unwrap(), ids);
}

#[test]
fn parse_as_checks_the_media_type() {
    use wharf_image::oci_spec::image::MediaType;
    let bytes = fixture("docker-nginx.json");
    let docker = MediaType::from("application/vnd.docker.container.image.v1+json");
    assert_eq!(
        ImageConfig::parse_as(&docker, &bytes).unwrap(),
        parse("docker-nginx.json")
    );
    let oci = MediaType::ImageConfig;
    assert_eq!(
        ImageConfig::parse_as(&oci, &fixture("oci-buildkit.json")).unwrap(),
        parse("oci-buildkit.json")
    );
    for wrong in [
        MediaType::ImageManifest,
        MediaType::ImageLayerGzip,
        MediaType::from("application/vnd.cncf.helm.config.v1+json"),
    ] {
        assert_eq!(
            ImageConfig::parse_as(&wrong, &bytes),
            Err(ConfigError::MediaType {
                found: wrong.to_string()
            })
        );
    }
    // A right media type does not excuse bad content.
    assert!(matches!(
        ImageConfig::parse_as(&oci, b"{"),
        Err(ConfigError::Malformed { .. })
    ));
}

#[test]
fn from_inner_validates() {
    let mut inner = parse("oci-minimal.json").into_inner();
    inner.rootfs_mut().diff_ids_mut().push("sha256:short".into());
    assert!(matches!(
        ImageConfig::from_inner(inner.clone()),
        Err(ConfigError::DiffId { index: 1, .. })
    ));
    inner.rootfs_mut().diff_ids_mut().pop();
    inner.rootfs_mut().set_typ("tar".into());
    assert_eq!(
        ImageConfig::from_inner(inner),
        Err(ConfigError::RootfsType { found: "tar".into() })
    );
}

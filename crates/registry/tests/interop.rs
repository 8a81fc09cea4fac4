//! Interoperability with other clients: skopeo (Debian's) and oci-client, both directions,
//! through a real `docker-registry`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Auth, Registry, build_image, reference, tar_of};
use wharf_image::{Digest, Platform, Store};
use wharf_registry::{PullOptions, PushOptions};

const SKOPEO: &str = "skopeo";

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(SKOPEO)
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo (apt-get install skopeo): {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A skopeo `dir:` image: manifest.json, blobs named by hex digest, version file.
fn write_dir_image(dir: &Path, manifest: &[u8], blobs: &[Vec<u8>]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    for b in blobs {
        std::fs::write(dir.join(Digest::sha256(b).hex()), b).unwrap();
    }
}

#[tokio::test]
async fn what_skopeo_pushes_wharf_pulls() {
    let reg = Registry::start(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let layer = common::gzip(&tar_of(&[("from/skopeo", b"hello from skopeo")]));
    let diff = Digest::sha256(&tar_of(&[("from/skopeo", b"hello from skopeo")]));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/true"]}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{},"digest":"{}"}}]}}"#,
        config.len(),
        Digest::sha256(&config),
        layer.len(),
        Digest::sha256(&layer)
    );
    let src = tmp.path().join("src");
    write_dir_image(&src, manifest.as_bytes(), &[config.clone(), layer.clone()]);
    let dest = format!("docker://{}/skopeo/img:v1", reg.host);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("dir:{}", src.display()),
        &dest,
    ]);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]);

    let store = Store::open(tmp.path().join("store")).unwrap();
    let c = common::default_client();
    let r = reference(&format!("{}/skopeo/img:v1", reg.host));
    let pulled = c.pull(&r, &store, &PullOptions::default()).await.unwrap();
    assert_eq!(
        pulled.digest,
        Digest::sha256(&raw),
        "wharf and skopeo disagree on the manifest"
    );
    assert_eq!(store.read_blob(&Digest::sha256(&layer), 1 << 20).unwrap(), layer);
    assert_eq!(store.read_blob(&Digest::sha256(&config), 1 << 20).unwrap(), config);
    let image = store.image(&r, &Platform::new("linux", "amd64", None)).unwrap();
    assert_eq!(image.config.diff_ids().unwrap(), [diff]);
}

#[tokio::test]
async fn what_wharf_pushes_skopeo_inspects_and_copies() {
    let reg = Registry::start(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let c = common::default_client();
    for (docker, name) in [(false, "wharf/oci"), (true, "wharf/docker")] {
        let built = build_image(
            &store,
            ("linux", "amd64"),
            &[
                (&tar_of(&[("a", name.as_bytes())]), "gzip"),
                (&tar_of(&[("b", b"second layer")]), if docker { "gzip" } else { "zstd" }),
            ],
            docker,
        );
        let local = reference(&format!("local.test/{name}:v1"));
        store
            .tag(
                &local,
                &store.resolve(&local.with_digest(built.digest.clone())).unwrap(),
            )
            .unwrap();
        let target = reference(&format!("{}/{name}:v1", reg.host));
        c.push(&store, &local, &target, &PushOptions::default()).await.unwrap();

        let dest = format!("docker://{}/{name}:v1", reg.host);
        let inspect: serde_json::Value =
            serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
        assert_eq!(inspect["Digest"], built.digest.to_string());
        let layers: Vec<String> = built.layers.iter().map(Digest::to_string).collect();
        assert_eq!(inspect["Layers"], serde_json::json!(layers));
        assert_eq!(skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]), built.bytes);

        // skopeo copies it out (dir: keeps everything byte for byte) and verifies digests.
        let out = tmp.path().join(name.replace('/', "-"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &dest,
            &format!("dir:{}", out.display()),
        ]);
        assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), built.bytes);
        for d in built.layers.iter().chain([&built.config]) {
            assert_eq!(
                std::fs::read(out.join(d.hex())).unwrap(),
                store.read_blob(d, 1 << 20).unwrap()
            );
        }
    }
}

fn oci_client() -> oci_client::Client {
    // oci-client is built without a TLS provider of its own: give the process ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    })
}

#[tokio::test]
async fn what_wharf_pushes_oci_client_pulls_byte_identical() {
    let reg = Registry::start(Auth::None);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let built = build_image(
        &store,
        ("linux", "amd64"),
        &[
            (&tar_of(&[("x", b"for oci-client")]), "gzip"),
            (&tar_of(&[("y", &[1u8; 50_000])]), "zstd"),
        ],
        false,
    );
    let local = reference("local.test/oc:v1");
    store
        .tag(
            &local,
            &store.resolve(&local.with_digest(built.digest.clone())).unwrap(),
        )
        .unwrap();
    let target = reference(&format!("{}/interop/oc:v1", reg.host));
    common::default_client()
        .push(&store, &local, &target, &PushOptions::default())
        .await
        .unwrap();

    let oc = oci_client();
    let r: oci_client::Reference = format!("{}/interop/oc:v1", reg.host).parse().unwrap();
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let (raw, digest) = oc
        .pull_manifest_raw(&r, &auth, &["application/vnd.oci.image.manifest.v1+json"])
        .await
        .unwrap();
    assert_eq!(raw.as_ref(), built.bytes.as_slice());
    assert_eq!(digest, built.digest.to_string());
    for d in built.layers.iter().chain([&built.config]) {
        let mut out: Vec<u8> = Vec::new();
        oc.pull_blob(&r, d.to_string().as_str(), &mut out).await.unwrap();
        assert_eq!(out, store.read_blob(d, 1 << 20).unwrap());
    }
}

#[tokio::test]
async fn what_oci_client_pushes_wharf_pulls_byte_identical() {
    let reg = Registry::start(Auth::None);
    let oc = oci_client();
    let r: oci_client::Reference = format!("{}/interop/from-oc:v1", reg.host).parse().unwrap();
    let tar = tar_of(&[("oc/file", b"pushed by oci-client")]);
    let layer = common::gzip(&tar);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::sha256(&tar)
    )
    .into_bytes();
    oc.push(
        &r,
        &[oci_client::client::ImageLayer::new(
            layer.clone(),
            "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            None,
        )],
        oci_client::client::Config::new(config.clone(), "application/vnd.oci.image.config.v1+json".into(), None),
        &oci_client::secrets::RegistryAuth::Anonymous,
        None,
    )
    .await
    .unwrap();
    let (raw, _) = oc
        .pull_manifest_raw(
            &r,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let target = reference(&format!("{}/interop/from-oc:v1", reg.host));
    let pulled = common::default_client()
        .pull(&target, &store, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.digest, Digest::sha256(&raw));
    assert_eq!(store.read_blob(&pulled.digest, 1 << 20).unwrap(), raw.as_ref());
    assert_eq!(store.read_blob(&Digest::sha256(&layer), 1 << 20).unwrap(), layer);
    assert_eq!(store.read_blob(&pulled.config_digest, 1 << 20).unwrap(), config);
}

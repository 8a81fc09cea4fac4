//! Validation of documents and OCI image layouts against the image-spec.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use wharf_image::validate::{self, DocumentKind, Problem};
use wharf_image::{Digest, Error};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn check(kind: DocumentKind, v: &Value) -> Vec<Problem> {
    validate::document(kind, v.to_string().as_bytes())
}

fn sorted_paths(problems: &[Problem]) -> Vec<String> {
    let mut p: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    p.sort();
    p
}

fn desc(media_type: &str, content: &[u8]) -> Value {
    json!({"mediaType": media_type, "size": content.len(), "digest": Digest::sha256(content).to_string()})
}

fn oci_config() -> Value {
    json!({
        "created": "2024-03-01T12:00:00.123456789Z",
        "author": "wharf tests",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "1000:1000",
            "ExposedPorts": {"80/tcp": {}},
            "Env": ["PATH=/usr/bin:/bin"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": null,
            "Volumes": {"/data": {}},
            "WorkingDir": "/srv",
            "Labels": {"org.opencontainers.image.title": "t"},
            "StopSignal": "SIGTERM",
            "ArgsEscaped": true
        },
        "rootfs": {"type": "layers", "diff_ids": [EMPTY]},
        "history": [{"created": "2024-03-01T12:00:00Z", "created_by": "ADD x /", "empty_layer": false}]
    })
}

/// A Docker config as `docker build` writes it, with its extra fields.
fn docker_config() -> Value {
    json!({
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2023-11-20T10:11:12.5+01:00",
        "docker_version": "24.0.7",
        "container_config": {"Hostname": "", "Cmd": null},
        "config": {
            "Hostname": "", "User": "", "AttachStdin": false, "Tty": false,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["nginx", "-g", "daemon off;"], "Image": "", "Volumes": null,
            "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null
        },
        "rootfs": {"type": "layers", "diff_ids": [EMPTY, EMPTY]}
    })
}

fn oci_manifest(config: &[u8], layers: &[&[u8]]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
        "annotations": {"org.opencontainers.image.created": "2024-03-01T12:00:00Z"}
    })
}

#[test]
fn valid_documents_have_no_problems() {
    let config = serde_json::to_vec(&oci_config()).unwrap();
    let manifest = oci_manifest(&config, &[b"layer one", b"layer two"]);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "size": manifest_bytes.len(), "digest": Digest::sha256(&manifest_bytes).to_string(),
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7", "os.features": ["x"]}},
            {"mediaType": OCI_INDEX, "size": 7, "digest": EMPTY, "annotations": {"org.opencontainers.image.ref.name": "v1"}}
        ]
    });
    let docker_manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": 1469, "digest": EMPTY},
        "layers": [{"mediaType": DOCKER_LAYER, "size": 2_479_040, "digest": EMPTY}]
    });
    let docker_list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "size": 528, "digest": EMPTY,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "features": ["sse4"]}}]
    });
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "data": "e30="},
        "layers": [{"mediaType": "application/spdx+json", "size": 3, "digest": EMPTY}],
        "subject": {"mediaType": OCI_MANIFEST, "size": 10, "digest": EMPTY}
    });
    let sha512 = Digest::of(wharf_image::Algorithm::Sha512, b"x").to_string();
    let cases = [
        (DocumentKind::Config, oci_config()),
        (DocumentKind::Config, docker_config()),
        (DocumentKind::Manifest, manifest),
        (DocumentKind::Manifest, docker_manifest),
        (DocumentKind::Manifest, artifact),
        (DocumentKind::Index, index),
        (DocumentKind::Index, docker_list),
        (DocumentKind::Index, json!({"schemaVersion": 2, "manifests": []})),
        (
            DocumentKind::Descriptor,
            json!({"mediaType": "a/b", "size": 0, "digest": sha512, "urls": ["https://example.com/b"]}),
        ),
        (DocumentKind::LayoutHeader, json!({"imageLayoutVersion": "1.0.0"})),
        // Non-ASCII annotation keys and values match the schema's `.{1,}` key pattern.
        (
            DocumentKind::Descriptor,
            json!({"mediaType": "a/b", "size": 0, "digest": EMPTY, "annotations": {"org.example.ключ": "значение ✓"}}),
        ),
    ];
    for (kind, doc) in cases {
        assert_eq!(check(kind, &doc), [], "{kind}: {doc}");
    }
}

#[test]
fn manifest_with_many_faults_reports_each() {
    let m = json!({
        "schemaVersion": 3,
        "mediaType": OCI_INDEX,
        "config": {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": -1, "digest": "sha256:abc"},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "size": 10, "digest": "md5:0123456789abcdef0123456789abcdef"},
            {"mediaType": "not a media type", "size": 1, "digest": EMPTY},
            {"mediaType": OCI_LAYER_GZIP, "size": "12", "digest": "sha256:" },
            {"mediaType": OCI_LAYER_GZIP, "digest": EMPTY, "urls": ["not a uri"]}
        ],
        "annotations": {"a": 1, "b": "ok"}
    });
    let problems = check(DocumentKind::Manifest, &m);
    assert_eq!(
        sorted_paths(&problems),
        [
            "/annotations/a",      // not a string
            "/config/digest",      // sha256 with 3 hex characters
            "/config/mediaType",   // a layer type where a config type belongs
            "/config/size",        // negative
            "/layers/0/digest",    // md5 is not verifiable
            "/layers/1/mediaType", // not a media type at all
            "/layers/2/digest",    // no encoded part
            "/layers/2/size",      // a string
            "/layers/3/size",      // missing
            "/layers/3/urls/0",    // not a URI
            "/mediaType",          // an index type on a manifest
            "/schemaVersion",      // 3
        ],
        "{problems:#?}"
    );
    let by_path = |p: &str| problems.iter().find(|x| x.path == p).unwrap().message.clone();
    assert_eq!(by_path("/schemaVersion"), "3 is more than the maximum 2");
    assert!(
        by_path("/layers/0/digest").contains("unsupported algorithm"),
        "{problems:#?}"
    );
    assert!(by_path("/config/digest").contains("64"), "{problems:#?}");
    assert_eq!(by_path("/layers/3/size"), "required property is missing");
    assert_eq!(by_path("/annotations/a"), "expected string, found integer");
}

#[test]
fn missing_required_fields_are_each_reported() {
    assert_eq!(
        sorted_paths(&check(DocumentKind::Manifest, &json!({}))),
        ["/config", "/layers", "/schemaVersion"]
    );
    assert_eq!(
        sorted_paths(&check(DocumentKind::Index, &json!({"manifests": [{}]}))),
        [
            "/manifests/0/digest",
            "/manifests/0/mediaType",
            "/manifests/0/size",
            "/schemaVersion"
        ]
    );
    let p = check(
        DocumentKind::Manifest,
        &json!({"schemaVersion": 2, "config": desc(OCI_CONFIG, b"{}"), "layers": []}),
    );
    assert_eq!(p, [Problem::new("/layers", "has 0 items, at least 1 required")]);
    assert_eq!(
        check(DocumentKind::LayoutHeader, &json!({"imageLayoutVersion": "2.0.0"})).len(),
        1
    );
    assert_eq!(
        check(DocumentKind::Manifest, &json!([]))[0].to_string(),
        "(document): expected object, found array"
    );
}

#[test]
fn config_with_many_faults_reports_each() {
    let mut c = oci_config();
    c.as_object_mut().unwrap().remove("os");
    c["architecture"] = json!(64);
    c["created"] = json!("last tuesday");
    c["rootfs"] = json!({"type": "tarball", "diff_ids": [EMPTY, "sha256:nothex"]});
    c["config"]["Entrypoint"] = json!("/bin/sh");
    c["config"]["Labels"] = json!({"ok": "x", "bad": true});
    c["config"]["Env"] = json!(["A=1", 2]);
    c["history"] = json!([{"empty_layer": "yes"}]);
    let problems = check(DocumentKind::Config, &c);
    assert_eq!(
        sorted_paths(&problems),
        [
            "/architecture",
            "/config/Entrypoint",
            "/config/Env/1",
            "/config/Labels/bad",
            "/created",
            "/history/0/empty_layer",
            "/os",
            "/rootfs/diff_ids/1",
            "/rootfs/type",
        ],
        "{problems:#?}"
    );
    let entry = problems.iter().find(|p| p.path == "/config/Entrypoint").unwrap();
    assert_eq!(entry.message, "expected array or null, found string");
}

#[test]
fn index_entries_must_be_manifests() {
    let ix = json!({
        "schemaVersion": 2,
        "manifests": [
            desc(OCI_LAYER_GZIP, b"x"),
            {"mediaType": OCI_MANIFEST, "size": -5, "digest": EMPTY, "platform": {"architecture": "amd64"}},
            desc(DOCKER_MANIFEST, b"y"),
        ]
    });
    let problems = check(DocumentKind::Index, &ix);
    assert_eq!(
        sorted_paths(&problems),
        [
            "/manifests/0/mediaType",
            "/manifests/1/platform/os",
            "/manifests/1/size"
        ],
        "{problems:#?}"
    );
}

#[test]
fn embedded_data_must_match_size_and_digest() {
    let ok = json!({"mediaType": "application/json", "size": 2, "digest": Digest::sha256(b"{}").to_string(), "data": "e30="});
    assert_eq!(check(DocumentKind::Descriptor, &ok), []);
    let mut not_base64 = ok.clone();
    not_base64["data"] = json!("e30");
    let mut wrong_size = ok.clone();
    wrong_size["data"] = json!("e30K");
    let mut wrong_digest = ok.clone();
    wrong_digest["data"] = json!("W10=");
    let m = json!({"schemaVersion": 2, "config": ok, "layers": [not_base64, wrong_size, wrong_digest],
        "artifactType": "application/x"});
    let problems = check(DocumentKind::Manifest, &m);
    let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "/layers/0/data: is not valid base64".to_string(),
            "/layers/1/data: decodes to 3 bytes, but size says 2".to_string(),
            format!(
                "/layers/2/data: decodes to content with digest {}, but digest says {}",
                Digest::sha256(b"[]"),
                Digest::sha256(b"{}")
            ),
        ]
    );
}

#[test]
fn non_ascii_annotation_keys_are_checked() {
    let d = json!({"mediaType": "a/b", "size": 0, "digest": EMPTY, "annotations": {"ключ": 1, "ok": "✓"}});
    let problems = check(DocumentKind::Descriptor, &d);
    assert_eq!(
        problems,
        [Problem::new("/annotations/ключ", "expected string, found integer")]
    );
}

#[test]
fn malformed_json_is_one_problem() {
    let p = validate::document(DocumentKind::Manifest, b"{\"schemaVersion\": 2,");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "");
    assert!(p[0].message.starts_with("not valid JSON"), "{p:?}");
}

/// An OCI image layout written by the test.
struct Layout {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layout");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { _tmp: tmp, root }
    }

    fn blob_path(&self, content: &[u8]) -> PathBuf {
        self.root.join(blob_rel(content))
    }

    /// Stores a blob and returns its descriptor.
    fn blob(&self, media_type: &str, content: &[u8]) -> Value {
        fs::write(self.blob_path(content), content).unwrap();
        desc(media_type, content)
    }

    fn json_blob(&self, media_type: &str, doc: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(doc).unwrap())
    }

    fn index(&self, manifests: Vec<Value>) {
        let ix = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(self.root.join("index.json"), serde_json::to_vec(&ix).unwrap()).unwrap();
    }

    /// An image of a config and the given layers (uncompressed content, stored gzipped, with
    /// their diff IDs in the config); returns the manifest descriptor.
    fn image(&self, layers: &[&[u8]]) -> Value {
        let layers: Vec<(&str, Vec<u8>, Digest)> = layers
            .iter()
            .map(|l| (OCI_LAYER_GZIP, gzip(l), Digest::sha256(l)))
            .collect();
        self.image_of(oci_config(), &layers)
    }

    /// An image from a config template and (media type, stored bytes, diff ID) layers.
    fn image_of(&self, mut config: Value, layers: &[(&str, Vec<u8>, Digest)]) -> Value {
        config["rootfs"]["diff_ids"] = layers.iter().map(|(_, _, id)| json!(id.to_string())).collect();
        let config = self.json_blob(OCI_CONFIG, &config);
        let layers: Vec<Value> = layers.iter().map(|(mt, bytes, _)| self.blob(mt, bytes)).collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers});
        self.json_blob(OCI_MANIFEST, &manifest)
    }

    fn problems(&self) -> Vec<Problem> {
        validate::layout(&self.root).unwrap()
    }
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(content).unwrap();
    enc.finish().unwrap()
}

fn zstd(content: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(content, 3).unwrap()
}

fn blob_rel(content: &[u8]) -> String {
    format!("blobs/sha256/{}", Digest::sha256(content).hex())
}

#[test]
fn valid_layout_has_no_problems() {
    let l = Layout::new();
    // A nested index with two platform images, and a Docker-typed image beside it.
    let amd64 = l.image(&[b"amd64 layer 1", b"amd64 layer 2"]);
    let arm64 = l.image(&[b"arm64 layer"]);
    let nested = l.json_blob(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd64, arm64]}),
    );
    let docker_config = l.json_blob(DOCKER_CONFIG, &docker_config());
    let docker_layer = l.blob(DOCKER_LAYER, &gzip(b""));
    let docker_manifest = l.json_blob(
        DOCKER_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": docker_config, "layers": [docker_layer.clone(), docker_layer]}),
    );
    let mut tagged = nested.clone();
    tagged["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    l.index(vec![tagged, docker_manifest, nested]);
    assert_eq!(l.problems(), []);
}

#[test]
fn layout_reports_missing_wrong_size_and_corrupted_blobs() {
    let l = Layout::new();
    let (missing, short, corrupt) = (
        gzip(b"missing layer"),
        gzip(b"truncated layer"),
        gzip(b"corrupted layer"),
    );
    let layers: Vec<(&str, Vec<u8>, Digest)> = [
        (&missing, "missing layer"),
        (&short, "truncated layer"),
        (&corrupt, "corrupted layer"),
    ]
    .into_iter()
    .map(|(gz, raw)| (OCI_LAYER_GZIP, gz.clone(), Digest::sha256(raw.as_bytes())))
    .collect();
    let manifest = l.image_of(oci_config(), &layers);
    l.index(vec![manifest]);
    assert_eq!(l.problems(), [], "the layout is valid before it is damaged");

    fs::remove_file(l.blob_path(&missing)).unwrap();
    fs::write(l.blob_path(&short), &short[..5]).unwrap();
    let mut flipped = corrupt.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x20;
    fs::write(l.blob_path(&corrupt), &flipped).unwrap();

    let problems = l.problems();
    let mut expected = vec![blob_rel(&missing), blob_rel(&short), blob_rel(&corrupt)];
    expected.sort();
    assert_eq!(sorted_paths(&problems), expected, "{problems:#?}");
    let msg = |c: &[u8]| problems.iter().find(|p| p.path == blob_rel(c)).unwrap().message.clone();
    assert!(
        msg(&missing).starts_with("missing: referenced by blobs/sha256/"),
        "{problems:#?}"
    );
    assert!(msg(&missing).ends_with("#/layers/0"), "{problems:#?}");
    assert!(msg(&short).starts_with("is 5 bytes, but"), "{problems:#?}");
    assert!(
        msg(&short).ends_with(&format!("#/layers/1 says {}", short.len())),
        "{problems:#?}"
    );
    assert_eq!(
        msg(&corrupt),
        format!("corrupted: content hashes to {}", Digest::sha256(&flipped))
    );
}

#[test]
fn layout_reports_problems_in_its_files_and_documents() {
    let l = Layout::new();
    fs::write(l.root.join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    // A config missing "os", behind a manifest whose own mediaType disagrees with its descriptor.
    let mut bad_config = oci_config();
    bad_config.as_object_mut().unwrap().remove("os");
    bad_config["rootfs"]["diff_ids"] = json!([Digest::sha256(b"layer").to_string()]);
    let config = l.json_blob(OCI_CONFIG, &bad_config);
    let layer = l.blob(OCI_LAYER_GZIP, &gzip(b"layer"));
    let manifest_doc = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config, "layers": [layer]});
    let manifest = l.json_blob(OCI_MANIFEST, &manifest_doc);
    // An entry that says "manifest" but whose blob is not JSON.
    let not_json = l.blob(OCI_MANIFEST, b"\x00\x01 definitely not json");
    let mut bad_entry = desc(OCI_MANIFEST, b"x");
    bad_entry["digest"] = json!("sha256:XYZ");
    l.index(vec![manifest.clone(), not_json, bad_entry]);

    let problems = l.problems();
    let m = blob_rel(&serde_json::to_vec(&manifest_doc).unwrap());
    let c = blob_rel(&serde_json::to_vec(&bad_config).unwrap());
    let mut expected = vec![
        "oci-layout#/imageLayoutVersion".to_string(),
        "index.json#/manifests/2/digest".to_string(),
        format!("{m}#/mediaType"),
        format!("{c}#/os"),
        blob_rel(b"\x00\x01 definitely not json"),
    ];
    expected.sort();
    assert_eq!(sorted_paths(&problems), expected, "{problems:#?}");
    let mt = problems.iter().find(|p| p.path == format!("{m}#/mediaType")).unwrap();
    assert_eq!(
        mt.message,
        format!("is {DOCKER_MANIFEST}, but index.json#/manifests/0 says {OCI_MANIFEST}")
    );
}

#[test]
fn layout_without_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let problems = validate::layout(tmp.path()).unwrap();
    assert_eq!(
        sorted_paths(&problems),
        ["blobs", "index.json", "oci-layout"],
        "{problems:#?}"
    );
    assert!(
        problems.iter().all(|p| p.message.starts_with("missing")),
        "{problems:#?}"
    );

    fs::write(tmp.path().join("index.json"), b"not json").unwrap();
    let problems = validate::layout(tmp.path()).unwrap();
    let ix = problems.iter().find(|p| p.path == "index.json").unwrap();
    assert!(ix.message.starts_with("not valid JSON"), "{problems:#?}");
}

#[test]
fn a_blob_referenced_twice_is_reported_once() {
    let l = Layout::new();
    let manifest = l.image(&[b"shared", b"shared"]);
    l.index(vec![manifest.clone(), manifest]);
    fs::remove_file(l.blob_path(&gzip(b"shared"))).unwrap();
    assert_eq!(sorted_paths(&l.problems()), [blob_rel(&gzip(b"shared"))]);
}

#[test]
fn unreadable_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert!(matches!(validate::layout(&missing), Err(Error::Io { path, .. }) if path == missing));
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(validate::layout(&file), Err(Error::Io { .. })));
}

#[test]
fn layers_must_match_the_configs_diff_ids() {
    let l = Layout::new();
    let tar = b"plain tar content".to_vec();
    let good = [
        (OCI_LAYER_GZIP, gzip(b"gz"), Digest::sha256(b"gz")),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd(b"zst"),
            Digest::sha256(b"zst"),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar",
            tar.clone(),
            Digest::sha256(&tar),
        ),
    ];
    let image = l.image_of(oci_config(), &good);
    l.index(vec![image]);
    assert_eq!(l.problems(), []);

    // A wrong diff ID, a "gzip" layer that is not gzip, and one layer more than diff IDs.
    let l = Layout::new();
    let not_gzip = b"plain bytes".to_vec();
    let bad = [
        (OCI_LAYER_GZIP, gzip(b"one"), Digest::sha256(b"other")),
        (OCI_LAYER_GZIP, not_gzip.clone(), Digest::sha256(&not_gzip)),
    ];
    let image = l.image_of(oci_config(), &bad);
    let mut manifest: Value = serde_json::from_slice(
        &fs::read(l.root.join(format!(
            "blobs/sha256/{}",
            image["digest"].as_str().unwrap().trim_start_matches("sha256:")
        )))
        .unwrap(),
    )
    .unwrap();
    let config_rel = format!(
        "blobs/sha256/{}",
        manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(l.blob(OCI_LAYER_GZIP, &gzip(b"extra")));
    let image = l.json_blob(OCI_MANIFEST, &manifest);
    let manifest_rel = blob_rel(&serde_json::to_vec(&manifest).unwrap());
    l.index(vec![image]);

    let problems = l.problems();
    let mut expected = vec![
        format!("{config_rel}#/rootfs/diff_ids/0"),
        blob_rel(&not_gzip),
        format!("{manifest_rel}#/layers"),
    ];
    expected.sort();
    assert_eq!(sorted_paths(&problems), expected, "{problems:#?}");
    let msg = |p: &str| problems.iter().find(|x| x.path == p).unwrap().message.clone();
    assert_eq!(
        msg(&format!("{config_rel}#/rootfs/diff_ids/0")),
        format!(
            "is {}, but layer {} uncompresses to {}",
            Digest::sha256(b"other"),
            blob_rel(&gzip(b"one")),
            Digest::sha256(b"one")
        )
    );
    assert!(
        msg(&blob_rel(&not_gzip)).starts_with("is not valid gzip"),
        "{problems:#?}"
    );
    assert!(
        msg(&format!("{manifest_rel}#/layers")).starts_with("has 3 layers, but the config"),
        "{problems:#?}"
    );
}

/// Runs a tool the test needs; fails, naming the package, if it is not installed.
fn run(tool: &str, args: &[&str], cwd: &std::path::Path) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("this test needs `{tool}` (Debian package {tool}): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn layouts_written_by_umoci_and_skopeo_are_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("hello.txt"), b"hello from wharf\n").unwrap();
    run("umoci", &["init", "--layout", "umoci"], dir);
    run("umoci", &["new", "--image", "umoci:t"], dir);
    run(
        "umoci",
        &["insert", "--rootless", "--image", "umoci:t", "hello.txt", "/hello.txt"],
        dir,
    );
    run(
        "umoci",
        &[
            "config",
            "--image",
            "umoci:t",
            "--config.cmd",
            "/bin/true",
            "--config.env",
            "A=1",
        ],
        dir,
    );
    assert_eq!(validate::layout(&dir.join("umoci")).unwrap(), []);

    run("skopeo", &["copy", "--quiet", "oci:umoci:t", "oci:skopeo:v1"], dir);
    assert_eq!(validate::layout(&dir.join("skopeo")).unwrap(), []);

    // Remove the layer umoci wrote: exactly that blob is reported.
    let index: Value = serde_json::from_slice(&fs::read(dir.join("skopeo/index.json")).unwrap()).unwrap();
    let manifest_hex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.join("skopeo/blobs/sha256").join(&manifest_hex)).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let layer_hex = layers[layers.len() - 1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    fs::remove_file(dir.join("skopeo/blobs/sha256").join(layer_hex)).unwrap();
    let problems = validate::layout(&dir.join("skopeo")).unwrap();
    assert_eq!(
        sorted_paths(&problems),
        [format!("blobs/sha256/{layer_hex}")],
        "{problems:#?}"
    );
}

#[test]
fn images_wharf_imports_into_its_store_validate() {
    use wharf_image::Store;
    use wharf_image::import::{ImportOptions, import_dir};
    use wharf_image::media::Compression;

    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/hostname"), b"wharf\n").unwrap();
    fs::write(rootfs.join("hello.txt"), b"hello\n").unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let mut images = Vec::new();
    for (tag, compression) in [
        ("gz", Compression::Gzip),
        ("zst", Compression::Zstd),
        ("tar", Compression::None),
    ] {
        let opts = ImportOptions {
            compression,
            ..ImportOptions::default()
        };
        let reference = format!("localhost/validate:{tag}").parse().unwrap();
        images.push(import_dir(&store, &rootfs, &reference, &opts).unwrap());
    }
    assert_eq!(validate::layout(store.root()).unwrap(), []);

    // Damage the zstd image's layer: exactly that blob is reported.
    let layer = Digest::from_oci(images[1].manifest.layers()[0].digest()).unwrap();
    let path = store.blob_path(&layer);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let problems = validate::layout(store.root()).unwrap();
    assert_eq!(
        sorted_paths(&problems),
        [format!("blobs/sha256/{}", layer.hex())],
        "{problems:#?}"
    );
    assert!(problems[0].message.starts_with("corrupted"), "{problems:#?}");
}

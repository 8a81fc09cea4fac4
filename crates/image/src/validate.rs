//! Checks manifests, indexes, configs, descriptors and whole OCI image layouts against the
//! image-spec's rules, reporting every problem found rather than stopping at the first.
//!
//! Two layers of rules are applied:
//!
//! 1. The image-spec's own JSON schemas (image-spec `schema/*.json`, commit 13cff54,
//!    Apache-2.0, carried in this crate's `schema/` folder and embedded at build time),
//!    evaluated by a small draft-04 evaluator that covers the keywords those schemas use.
//! 2. Rules the schemas cannot express: descriptor digests use an algorithm wharf can
//!    verify (sha256, sha512) with well-formed hex; sizes are not negative; a manifest's
//!    config descriptor names a config media type (unless the manifest is an artifact with
//!    `artifactType`); index entries name manifests or indexes; and in a layout, every
//!    blob reachable from `index.json` exists with the size and digest its descriptor says.
//!
//! Docker's media types are accepted wherever the image-spec accepts a media type, so
//! Docker v2 schema 2 manifests, manifest lists and configs validate too.
//!
//! ```
//! use wharf_image::validate::{self, DocumentKind};
//!
//! let manifest = br#"{"schemaVersion": 2, "config": {"mediaType": "text/plain", "size": -1,
//!     "digest": "md5:d41d8cd98f00b204e9800998ecf8427e"}}"#;
//! let problems = validate::document(DocumentKind::Manifest, manifest);
//! let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
//! assert_eq!(paths, ["/layers", "/config/size", "/config/digest", "/config/mediaType"]);
//! assert_eq!(problems[0].to_string(), "/layers: required property is missing");
//! ```

mod layout;
mod schema;

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

pub use layout::layout;

use crate::Digest;
use crate::media::{self, Kind};

/// The empty descriptor's media type that artifacts use for a config with no content.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// What a JSON document is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// An image manifest (OCI or Docker v2 schema 2).
    Manifest,
    /// An image index (OCI) or manifest list (Docker).
    Index,
    /// An image config (OCI or Docker).
    Config,
    /// A single content descriptor.
    Descriptor,
    /// The `oci-layout` file of an image layout.
    LayoutHeader,
}

impl DocumentKind {
    /// The kind of document a media type names, for manifests, indexes and configs.
    pub fn for_media_type(media_type: &str) -> Option<DocumentKind> {
        match media::kind(&media::parse(media_type)) {
            Kind::Manifest => Some(DocumentKind::Manifest),
            Kind::Index => Some(DocumentKind::Index),
            Kind::Config => Some(DocumentKind::Config),
            Kind::Layer(_) | Kind::Other => None,
        }
    }

    fn schema_file(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "image-manifest-schema.json",
            DocumentKind::Index => "image-index-schema.json",
            DocumentKind::Config => "config-schema.json",
            DocumentKind::Descriptor => "content-descriptor.json",
            DocumentKind::LayoutHeader => "image-layout-schema.json",
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocumentKind::Manifest => "image manifest",
            DocumentKind::Index => "image index",
            DocumentKind::Config => "image config",
            DocumentKind::Descriptor => "descriptor",
            DocumentKind::LayoutHeader => "oci-layout file",
        })
    }
}

/// One violation of the image-spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Where: a JSON pointer into the document (`/layers/0/digest`, empty for the document
    /// itself); for a layout, a path relative to the layout directory, followed by `#` and
    /// a JSON pointer when the problem is inside a JSON file (`index.json#/manifests/0/size`).
    pub path: String,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "(document)" } else { &self.path };
        write!(f, "{path}: {}", self.message)
    }
}

fn schemas() -> &'static Result<schema::Schemas, String> {
    static SCHEMAS: OnceLock<Result<schema::Schemas, String>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        schema::Schemas::new(&[
            ("config-schema.json", include_str!("../schema/config-schema.json")),
            (
                "content-descriptor.json",
                include_str!("../schema/content-descriptor.json"),
            ),
            ("defs-descriptor.json", include_str!("../schema/defs-descriptor.json")),
            ("defs.json", include_str!("../schema/defs.json")),
            (
                "image-index-schema.json",
                include_str!("../schema/image-index-schema.json"),
            ),
            (
                "image-layout-schema.json",
                include_str!("../schema/image-layout-schema.json"),
            ),
            (
                "image-manifest-schema.json",
                include_str!("../schema/image-manifest-schema.json"),
            ),
        ])
    })
}

/// Checks a JSON document of the given kind; an empty list means it is valid.
///
/// Schema problems come first, then those of the rules the schemas cannot express; a rule
/// is not reported again for a value the schema already rejected.
pub fn document(kind: DocumentKind, bytes: &[u8]) -> Vec<Problem> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => json(kind, &v),
        Err(e) => vec![Problem::new("", format!("not valid JSON: {e}"))],
    }
}

/// Like [`document`], for a value already parsed.
pub fn json(kind: DocumentKind, value: &Value) -> Vec<Problem> {
    let mut problems = match schemas() {
        Ok(s) => s.validate(kind.schema_file(), value),
        Err(e) => vec![Problem::new("", format!("internal: embedded schema is broken: {e}"))],
    };
    let mut extra = Vec::new();
    match kind {
        DocumentKind::Manifest => manifest_rules(value, &mut extra),
        DocumentKind::Index => index_rules(value, &mut extra),
        DocumentKind::Config => config_rules(value, &mut extra),
        DocumentKind::Descriptor => descriptor_rules(value, "", &mut extra),
        DocumentKind::LayoutHeader => {}
    }
    extra.retain(|p| !problems.iter().any(|q| q.path == p.path));
    problems.extend(extra);
    problems
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn media_kind(media_type: &str) -> Kind {
    media::kind(&media::parse(media_type))
}

/// Digest algorithm and hex must be verifiable; size must not be negative; embedded `data`
/// must be base64 of content with the descriptor's size and digest.
fn descriptor_rules(d: &Value, path: &str, out: &mut Vec<Problem>) {
    let digest = str_at(d, "digest").map(str::parse::<Digest>);
    if let Some(Err(e)) = &digest {
        out.push(Problem::new(format!("{path}/digest"), e.to_string()));
    }
    if let Some(size) = d.get("size").and_then(Value::as_i64)
        && size < 0
    {
        out.push(Problem::new(format!("{path}/size"), format!("size {size} is negative")));
    }
    if let Some(data) = str_at(d, "data") {
        let at = format!("{path}/data");
        match base64_decode(data) {
            None => out.push(Problem::new(at, "is not valid base64")),
            Some(bytes) => {
                let size = d.get("size").and_then(Value::as_u64);
                if let Some(size) = size.filter(|&s| s != bytes.len() as u64) {
                    out.push(Problem::new(
                        at,
                        format!("decodes to {} bytes, but size says {size}", bytes.len()),
                    ));
                } else if let Some(Ok(digest)) = digest {
                    let actual = Digest::of(digest.algorithm(), &bytes);
                    if actual != digest {
                        out.push(Problem::new(
                            at,
                            format!("decodes to content with digest {actual}, but digest says {digest}"),
                        ));
                    }
                }
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 section 4), as Go encodes `[]byte` in JSON.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let chunks = b.len() / 4;
    let mut out = Vec::with_capacity(chunks * 3);
    for (ci, chunk) in b.chunks(4).enumerate() {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if ci + 1 == chunks && i >= 2 => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            if pad > 0 && c != b'=' {
                return None;
            }
            n = (n << 6) | u32::from(v);
        }
        let [_, hi, mid, lo] = n.to_be_bytes();
        out.push(hi);
        if pad < 2 {
            out.push(mid);
        }
        if pad < 1 {
            out.push(lo);
        }
    }
    Some(out)
}

fn each_item<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = (String, &'v Value)> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(move |(i, item)| (format!("/{key}/{i}"), item))
}

fn manifest_rules(m: &Value, out: &mut Vec<Problem>) {
    if let Some(mt) = str_at(m, "mediaType")
        && media_kind(mt) != Kind::Manifest
    {
        out.push(Problem::new(
            "/mediaType",
            format!("{mt} is not an image manifest media type"),
        ));
    }
    if let Some(config) = m.get("config").filter(|c| c.is_object()) {
        descriptor_rules(config, "/config", out);
        let is_artifact = m.get("artifactType").is_some();
        match str_at(config, "mediaType") {
            Some(EMPTY_MEDIA_TYPE) if !is_artifact => out.push(Problem::new(
                "/config/mediaType",
                "the config is the empty descriptor, so the manifest must set artifactType",
            )),
            Some(mt) if !is_artifact && media_kind(mt) != Kind::Config => out.push(Problem::new(
                "/config/mediaType",
                format!("{mt} is not an image config media type (an artifact would set artifactType)"),
            )),
            _ => {}
        }
    }
    for (path, layer) in each_item(m, "layers") {
        descriptor_rules(layer, &path, out);
    }
    if let Some(subject) = m.get("subject") {
        descriptor_rules(subject, "/subject", out);
    }
}

fn index_rules(ix: &Value, out: &mut Vec<Problem>) {
    if let Some(mt) = str_at(ix, "mediaType")
        && media_kind(mt) != Kind::Index
    {
        out.push(Problem::new(
            "/mediaType",
            format!("{mt} is not an image index media type"),
        ));
    }
    for (path, entry) in each_item(ix, "manifests") {
        descriptor_rules(entry, &path, out);
        if let Some(mt) = str_at(entry, "mediaType")
            && !matches!(media_kind(mt), Kind::Manifest | Kind::Index)
        {
            out.push(Problem::new(
                format!("{path}/mediaType"),
                format!("{mt} is not a manifest or index media type"),
            ));
        }
    }
    if let Some(subject) = ix.get("subject") {
        descriptor_rules(subject, "/subject", out);
    }
}

fn config_rules(c: &Value, out: &mut Vec<Problem>) {
    if let Some(rootfs) = c.get("rootfs") {
        for (path, id) in each_item(rootfs, "diff_ids") {
            if let Some(s) = id.as_str()
                && let Err(e) = s.parse::<Digest>()
            {
                out.push(Problem::new(format!("/rootfs{path}"), e.to_string()));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_parse_and_resolve() {
        assert!(schemas().is_ok());
        // Every $ref in every schema resolves: an empty object exercises required-only paths,
        // so check a document that reaches each referenced definition.
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/x",
            "config": {"mediaType": "a/b", "size": 0, "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "urls": ["https://x/y"], "data": "", "annotations": {"k": "v"}},
            "subject": {"mediaType": "a/b", "size": 0, "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            "layers": [{"mediaType": "a/b", "size": 0, "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
            "annotations": {"k": "v"}
        });
        assert_eq!(json(DocumentKind::Manifest, &m), []);
    }

    #[test]
    fn base64() {
        let cases: [(&str, Option<&[u8]>); 9] = [
            ("", Some(b"")),
            ("e30=", Some(b"{}")),
            ("YQ==", Some(b"a")),
            ("YWJj", Some(b"abc")),
            ("+/+/", Some(&[0xfb, 0xff, 0xbf])),
            ("YQ=", None),
            ("YQ=a", None),
            ("Y===", None),
            ("e30=e30=", None),
        ];
        for (input, want) in cases {
            assert_eq!(base64_decode(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn media_type_kinds() {
        assert_eq!(
            DocumentKind::for_media_type("application/vnd.oci.image.index.v1+json"),
            Some(DocumentKind::Index)
        );
        assert_eq!(
            DocumentKind::for_media_type(media::DOCKER_CONFIG),
            Some(DocumentKind::Config)
        );
        assert_eq!(DocumentKind::for_media_type(media::DOCKER_LAYER_GZIP), None);
    }
}

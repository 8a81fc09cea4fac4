//! Image manifests and indexes, OCI and Docker v2 schema 2, parsed into one model.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::Digest;
use crate::media::{self, Kind};
use crate::platform::{self, Platform};

/// Manifests larger than this are refused (the limit registries and containerd apply).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// Manifests listing more layers, or indexes listing more manifests, than this are refused
/// before they are parsed: a hostile manifest within [`MAX_MANIFEST_SIZE`] could otherwise
/// list some 20,000 layers and cost a pull ~100 MiB of memory before anything failed. No
/// real image comes near it: overlayfs stacks at most 500 layers (the kernel's
/// `OVL_MAX_STACK`), and Docker builds refuse more than 125. containerd has no such limit;
/// this one is deliberate.
pub const MAX_DESCRIPTORS: usize = 1000;

/// Why a manifest or index was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest is {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Not JSON, or not of the manifest's shape.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `schemaVersion` is not 2 (Docker schema 1 among them).
    #[error("unsupported manifest schemaVersion {0} (only 2 is supported)")]
    SchemaVersion(u64),
    /// A media type that is not a manifest or index.
    #[error("media type {0:?} is not an image manifest or index")]
    NotAManifest(String),
    /// The `mediaType` field and the announced content type disagree.
    #[error("manifest declares media type {body:?} but was served as {announced:?}")]
    MediaTypeMismatch {
        /// `mediaType` in the body.
        body: String,
        /// The `Content-Type` (or descriptor media type) it arrived under.
        announced: String,
    },
    /// The manifest lists more than [`MAX_DESCRIPTORS`] layers (or an index more manifests).
    #[error("manifest lists {count} {what}, over the limit of {MAX_DESCRIPTORS}")]
    TooManyDescriptors {
        /// `layers` or `manifests`.
        what: &'static str,
        /// How many it lists.
        count: usize,
    },
    /// A descriptor in the manifest has a digest wharf cannot use.
    #[error("manifest references an invalid digest: {0}")]
    Digest(#[from] crate::DigestError),
}

/// A parsed manifest: a single-platform image, or an index of them.
///
/// The media type is kept, so Docker manifests stay Docker manifests when pushed on.
// Parsed once per document and matched by value; boxing would only add noise to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// An OCI image manifest or Docker v2 schema 2 manifest.
    Image {
        /// Its media type (OCI or Docker).
        media_type: MediaType,
        /// The manifest.
        manifest: ImageManifest,
    },
    /// An OCI image index or Docker manifest list.
    Index {
        /// Its media type (OCI or Docker).
        media_type: MediaType,
        /// The index.
        index: ImageIndex,
    },
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Count>,
    layers: Option<Count>,
    config: Option<serde::de::IgnoredAny>,
}

/// The length of a JSON array, counted without keeping its elements (so counting a hostile
/// array costs no memory).
struct Count(usize);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

impl Manifest {
    /// Parses a manifest or index.
    ///
    /// `announced` is the media type it arrived under (HTTP `Content-Type`, or a
    /// descriptor's `mediaType`), when known; it must agree with the body's `mediaType`.
    /// Without either, the shape decides (`manifests` → index, `config` → manifest).
    ///
    /// # Errors
    /// [`ManifestError`] for oversize, malformed JSON, schema version other than 2,
    /// media types that are not manifests, and disagreeing media types.
    pub fn parse(bytes: &[u8], announced: Option<&str>) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let malformed = |what| move |source| ManifestError::Malformed { what, source };
        let probe: Probe = serde_json::from_slice(bytes).map_err(malformed("manifest"))?;
        for (what, count) in [("layers", &probe.layers), ("manifests", &probe.manifests)] {
            if let Some(Count(count)) = count
                && *count > MAX_DESCRIPTORS
            {
                return Err(ManifestError::TooManyDescriptors { what, count: *count });
            }
        }
        match probe.schema_version {
            Some(2) => {}
            Some(v) => return Err(ManifestError::SchemaVersion(v)),
            None => return Err(ManifestError::SchemaVersion(0)),
        }
        // Content types may carry parameters (`; charset=utf-8`).
        let announced = announced
            .map(|a| a.split(';').next().unwrap_or("").trim())
            .filter(|a| !a.is_empty() && *a != "application/json" && *a != "application/octet-stream");
        if let (Some(body), Some(a)) = (&probe.media_type, announced)
            && body != a
        {
            return Err(ManifestError::MediaTypeMismatch {
                body: body.clone(),
                announced: a.to_string(),
            });
        }
        let declared = probe.media_type.as_deref().or(announced);
        let is_index = match declared {
            Some(t) => match media::kind(&media::parse(t)) {
                Kind::Index => true,
                Kind::Manifest => false,
                _ => return Err(ManifestError::NotAManifest(t.to_string())),
            },
            None if probe.manifests.is_some() => true,
            None if probe.config.is_some() => false,
            None => return Err(ManifestError::NotAManifest("(none)".to_string())),
        };
        let parsed = if is_index {
            let index: ImageIndex = serde_json::from_slice(bytes).map_err(malformed("image index"))?;
            let media_type = declared.map_or(MediaType::ImageIndex, media::parse);
            Manifest::Index { media_type, index }
        } else {
            let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(malformed("image manifest"))?;
            let media_type = declared.map_or(MediaType::ImageManifest, media::parse);
            Manifest::Image { media_type, manifest }
        };
        // Every referenced digest must be one we can verify.
        for d in parsed.descriptors() {
            Digest::from_oci(d.digest())?;
        }
        Ok(parsed)
    }

    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
        }
    }

    /// Every descriptor the document references directly (config and layers, or the
    /// index's manifests; plus `subject`).
    pub fn descriptors(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image { manifest, .. } => std::iter::once(manifest.config())
                .chain(manifest.layers())
                .chain(manifest.subject())
                .collect(),
            Manifest::Index { index, .. } => index.manifests().iter().chain(index.subject()).collect(),
        }
    }

    /// For an index, the entry for `platform` (containerd's matching rules); for an
    /// image manifest, `None`.
    pub fn choose(&self, platform: &Platform) -> Option<&Descriptor> {
        match self {
            Manifest::Index { index, .. } => platform::choose(index.manifests(), platform),
            Manifest::Image { .. } => None,
        }
    }
}

/// The bytes of a new OCI image manifest with this config and these layers (bottom first):
/// what import, load and commit store.
///
/// # Errors
/// Only if serialisation fails, which descriptors do not.
pub fn oci_image(config: &Descriptor, layers: &[Descriptor]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    }))
}

/// Digest of a descriptor, validated.
///
/// # Errors
/// When the descriptor's digest uses an algorithm or form wharf cannot verify.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, crate::DigestError> {
    Digest::from_oci(d.digest())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// Fault: a hostile manifest within the size cap listing 20,000 layers.
    #[test]
    fn a_manifest_with_too_many_layers_is_refused_before_parsing() {
        let layer = format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":1,"digest":"{D1}"}}"#);
        let doc = |n: usize| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"{D2}"}},"layers":[{}]}}"#,
                vec![layer.as_str(); n].join(",")
            )
        };
        let hostile = doc(20_000);
        assert!(hostile.len() < MAX_MANIFEST_SIZE);
        match Manifest::parse(hostile.as_bytes(), None) {
            Err(ManifestError::TooManyDescriptors {
                what: "layers",
                count: 20_000,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Manifest::parse(doc(MAX_DESCRIPTORS).as_bytes(), None).is_ok());
    }

    fn docker_manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":7023,"digest":"{D1}"}},
            "layers":[{{"mediaType":"{}","size":32654,"digest":"{D2}"}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP
        )
    }

    #[test]
    fn parses_docker_manifest() {
        let m = Manifest::parse(docker_manifest().as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap();
        let Manifest::Image { media_type, manifest } = &m else {
            panic!("not an image: {m:?}")
        };
        assert_eq!(media_type, &media::parse(media::DOCKER_MANIFEST));
        assert_eq!(manifest.layers().len(), 1);
        assert_eq!(
            media::kind(manifest.layers()[0].media_type()),
            Kind::Layer(media::Compression::Gzip)
        );
        assert_eq!(m.descriptors().len(), 2);
    }

    #[test]
    fn parses_oci_index_and_docker_list_and_chooses() {
        for mt in ["application/vnd.oci.image.index.v1+json", media::DOCKER_MANIFEST_LIST] {
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{mt}","manifests":[
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{D1}","platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{D2}","platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
            );
            let m = Manifest::parse(body.as_bytes(), None).unwrap();
            assert!(matches!(m, Manifest::Index { .. }));
            assert_eq!(m.choose(&Platform::default()).unwrap().digest().to_string(), D2);
            assert_eq!(
                m.choose(&"linux/arm64".parse().unwrap()).unwrap().digest().to_string(),
                D1
            );
            assert!(m.choose(&"linux/s390x".parse().unwrap()).is_none());
        }
    }

    #[test]
    fn infers_kind_without_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"{D1}"}},"layers":[]}}"#
        );
        assert!(matches!(
            Manifest::parse(body.as_bytes(), None).unwrap(),
            Manifest::Image { .. }
        ));
    }

    #[test]
    fn refuses_bad_manifests() {
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            Manifest::parse(&big, None),
            Err(ManifestError::TooLarge { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"{not json", None),
            Err(ManifestError::Malformed { .. })
        ));
        let v1 = format!(
            r#"{{"schemaVersion":1,"mediaType":"{}","name":"x"}}"#,
            media::DOCKER_MANIFEST_SCHEMA1
        );
        assert!(matches!(
            Manifest::parse(v1.as_bytes(), None),
            Err(ManifestError::SchemaVersion(1))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#, None),
            Err(ManifestError::SchemaVersion(0))
        ));
        let cfg = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.config.v1+json"}"#;
        assert!(matches!(
            Manifest::parse(cfg.as_bytes(), None),
            Err(ManifestError::NotAManifest(_))
        ));
        assert!(matches!(
            Manifest::parse(
                docker_manifest().as_bytes(),
                Some("application/vnd.oci.image.manifest.v1+json")
            ),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let bad_digest = docker_manifest().replace(D2, "sha256:abc");
        assert!(Manifest::parse(bad_digest.as_bytes(), None).is_err());
        let md5 = docker_manifest().replace(D2, "md5:d41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(
            Manifest::parse(md5.as_bytes(), None),
            Err(ManifestError::Digest(_))
        ));
    }
}

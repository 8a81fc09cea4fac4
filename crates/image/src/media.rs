//! Media types of the OCI image spec and of Docker's image format v2 schema 2.
//!
//! wharf keeps oci-spec's [`MediaType`] as the type that crosses
//! APIs; Docker's media types appear in it as `Other(..)` and are named by the constants here.

use oci_spec::image::MediaType;

/// Docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 schema 2 manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip-compressed layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (rare, but valid).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker zstd-compressed layer (as containerd writes it).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker v2 schema 1 manifest: recognised only to be refused clearly.
pub const DOCKER_MANIFEST_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker v2 schema 1 signed manifest: recognised only to be refused clearly.
pub const DOCKER_MANIFEST_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The manifest media types wharf understands, most preferred first: what a registry
/// client sends in `Accept`.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Detects the compression of a blob from its first bytes (magic numbers).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What kind of object a media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A single-platform image manifest (OCI or Docker).
    Manifest,
    /// An index / manifest list (OCI or Docker).
    Index,
    /// An image config (OCI or Docker).
    Config,
    /// A filesystem layer, with its compression.
    Layer(Compression),
    /// Anything else (artifacts, signatures, unknown types).
    Other,
}

/// Classifies a media type.
pub fn kind(media_type: &MediaType) -> Kind {
    match media_type {
        MediaType::ImageManifest => Kind::Manifest,
        MediaType::ImageIndex => Kind::Index,
        MediaType::ImageConfig => Kind::Config,
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Kind::Layer(Compression::None),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => Kind::Layer(Compression::Gzip),
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => Kind::Layer(Compression::Zstd),
        MediaType::Other(s) => match s.as_str() {
            DOCKER_MANIFEST => Kind::Manifest,
            DOCKER_MANIFEST_LIST => Kind::Index,
            DOCKER_CONFIG => Kind::Config,
            DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => Kind::Layer(Compression::Gzip),
            DOCKER_LAYER_TAR => Kind::Layer(Compression::None),
            DOCKER_LAYER_ZSTD => Kind::Layer(Compression::Zstd),
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// The compression a layer's media type names; `None` when it is not a layer type (a
/// foreign or unknown type), where unpacking detects the compression from the first bytes.
///
/// # Examples
/// ```
/// use wharf_image::media::{self, Compression, layer_compression};
/// assert_eq!(layer_compression(&media::parse(media::DOCKER_LAYER_GZIP)), Some(Compression::Gzip));
/// assert_eq!(layer_compression(&media::parse("application/octet-stream")), None);
/// ```
pub fn layer_compression(media_type: &MediaType) -> Option<Compression> {
    match kind(media_type) {
        Kind::Layer(c) => Some(c),
        _ => None,
    }
}

/// Parses a media type string into oci-spec's type (`Other` for Docker and unknown types).
pub fn parse(s: &str) -> MediaType {
    MediaType::from(s)
}

/// True for Docker's (not OCI's) media types.
pub fn is_docker(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::Other(s) if s.starts_with("application/vnd.docker."))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_oci_and_docker_types() {
        let cases = [
            ("application/vnd.oci.image.manifest.v1+json", Kind::Manifest),
            (DOCKER_MANIFEST, Kind::Manifest),
            ("application/vnd.oci.image.index.v1+json", Kind::Index),
            (DOCKER_MANIFEST_LIST, Kind::Index),
            ("application/vnd.oci.image.config.v1+json", Kind::Config),
            (DOCKER_CONFIG, Kind::Config),
            ("application/vnd.oci.image.layer.v1.tar", Kind::Layer(Compression::None)),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Kind::Layer(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Kind::Layer(Compression::Zstd),
            ),
            (DOCKER_LAYER_GZIP, Kind::Layer(Compression::Gzip)),
            (DOCKER_LAYER_ZSTD, Kind::Layer(Compression::Zstd)),
            ("application/vnd.example.sbom+json", Kind::Other),
        ];
        for (s, k) in cases {
            assert_eq!(kind(&parse(s)), k, "{s}");
        }
        assert!(is_docker(&parse(DOCKER_CONFIG)));
        assert!(!is_docker(&MediaType::ImageConfig));
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"etc/\0\0"), Compression::None);
    }
}

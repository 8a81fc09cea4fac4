//! Image configs (OCI and Docker).
//!
//! OWNER: config helper.

use crate::Digest;

/// Why an image config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not of the config's shape.
    #[error("malformed image config: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A `rootfs.diff_ids` entry is not a digest wharf can verify.
    #[error("image config has an invalid diff_id: {0}")]
    DiffId(#[from] crate::DigestError),
}

/// A parsed image config (OCI `application/vnd.oci.image.config.v1+json` or Docker's).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    inner: oci_spec::image::ImageConfiguration,
}

impl ImageConfig {
    /// Parses an OCI or Docker image config.
    ///
    /// # Errors
    /// [`ConfigError`] on malformed JSON or invalid diff_ids.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let inner: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(bytes).map_err(ConfigError::Malformed)?;
        let c = ImageConfig { inner };
        c.diff_ids()?;
        Ok(c)
    }
    /// The oci-spec model.
    pub fn inner(&self) -> &oci_spec::image::ImageConfiguration {
        &self.inner
    }
    /// Creation time (RFC 3339), if recorded.
    pub fn created(&self) -> Option<&str> {
        self.inner.created().as_deref()
    }
    /// `rootfs.diff_ids`, validated.
    ///
    /// # Errors
    /// When a diff_id is not a sha256/sha512 digest.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ConfigError> {
        self.inner
            .rootfs()
            .diff_ids()
            .iter()
            .map(|s| Ok(s.parse::<Digest>()?))
            .collect()
    }
}

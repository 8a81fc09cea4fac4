//! Image references as Docker users write them, parsed and normalised.
//!
//! OWNER: reference helper — the parser below is a placeholder to be replaced.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// The registry a reference without a domain names.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest names.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference: registry, repository, and a tag and/or digest.
///
/// Display gives the fully qualified form (`docker.io/library/nginx:latest`), which parses
/// back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Which part of a reference is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference: empty")]
    Empty,
}

impl Reference {
    /// The registry host (and port), e.g. `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// The repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The same repository with this tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
    /// The same repository pinned to a digest (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        Err(ReferenceError::Empty)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

//! The crate's error type.

use std::io;
use std::path::PathBuf;

use crate::{Digest, DigestError, ManifestError, ReferenceError, config::ConfigError};

/// Everything that can go wrong in wharf-image's store, archive and import operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A malformed digest, or content that did not match its digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A manifest or index was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An image config was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `rename`, …).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The directory is not an OCI image layout wharf can use.
    #[error("{} is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A blob is not in the store.
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    /// No image is stored under this reference.
    #[error("image {0} not found")]
    ImageNotFound(String),
    /// Stored or incoming content is not what its digest says; it was not kept.
    #[error("blob {digest} failed verification: {source}")]
    Corrupt {
        /// The digest it should have.
        digest: Digest,
        /// How it failed.
        #[source]
        source: DigestError,
    },
    /// An archive (docker save / OCI layout) is malformed or hostile.
    #[error("archive {}: {reason}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A document that should be JSON of a given shape is not.
    #[error("malformed {what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An argument or document is invalid for the operation.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The error of a verifying read or write: [`Error::Corrupt`] when the content did not match
    /// `digest` (the verification failure travels inside the `io::Error`), else an IO error on `path`.
    pub fn verification(e: io::Error, digest: &Digest, op: &'static str, path: impl Into<PathBuf>) -> Error {
        match DigestError::from_io(&e) {
            Some(source) => Error::Corrupt {
                digest: digest.clone(),
                source: source.clone(),
            },
            None => Error::io(op, path)(e),
        }
    }

    /// An IO error with its operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

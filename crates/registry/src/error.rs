//! The crate's error type.

use std::fmt;

use reqwest::{Method, StatusCode};
use wharf_image::Digest;

/// One entry of a registry's JSON error body (`{"errors":[{"code":…,"message":…,"detail":…}]}`).
///
/// Codes are kept as strings: registries send codes beyond the distribution spec's list
/// (`TOOMANYREQUESTS`, `PAGINATION_NUMBER_INVALID`, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RegistryError {
    /// The error code, e.g. `MANIFEST_UNKNOWN`, `DENIED`, `UNSUPPORTED`.
    pub code: String,
    /// The human-readable message, if any.
    #[serde(default)]
    pub message: String,
    /// The `detail` field, re-serialised as JSON, if any.
    #[serde(
        default,
        deserialize_with = "detail_as_json",
        skip_serializing_if = "Option::is_none"
    )]
    pub detail: Option<String>,
}

fn detail_as_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = serde::Deserialize::deserialize(d)?;
    Ok(v.filter(|v| !v.is_null()).map(|v| v.to_string()))
}

/// The registry's error entries, displayed as `CODE: message; CODE: message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryErrors(pub Vec<RegistryError>);

impl RegistryErrors {
    /// Decodes a JSON error body; anything else gives no entries.
    pub fn decode(body: &[u8]) -> RegistryErrors {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryError>,
        }
        RegistryErrors(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    /// True if any entry has this code.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }

    /// The codes, in order.
    pub fn codes(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.code.as_str()).collect()
    }
}

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", e.code)?;
            if !e.message.is_empty() {
                write!(f, ": {}", e.message)?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be sent or the response not read (connection refused, reset,
    /// TLS failure, timeout), after the configured retries.
    #[error("{method} {url}: {source}")]
    Transport {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status; its JSON error body is decoded.
    #[error("{method} {url}: HTTP {status}: {errors}")]
    Status {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The registry's error entries.
        errors: RegistryErrors,
    },
    /// Authentication failed: wrong credentials, or access denied even after
    /// re-authenticating with the needed scope.
    #[error("{url}: authentication failed (HTTP {status}): {errors}")]
    Unauthorized {
        /// The URL whose request was refused.
        url: String,
        /// 401 or 403.
        status: StatusCode,
        /// The registry's error entries (`UNAUTHORIZED`, `DENIED`, …).
        errors: RegistryErrors,
    },
    /// The token endpoint refused to issue a token or answered with something unusable.
    #[error("token request to {realm} failed: {reason}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// Why.
        reason: String,
    },
    /// The registry does not support the operation (HTTP 405 or `UNSUPPORTED`), e.g.
    /// deletion is disabled.
    #[error("{method} {url}: the registry does not support this operation (HTTP {status}): {errors}")]
    Unsupported {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The registry's error entries.
        errors: RegistryErrors,
    },
    /// Content did not hash to the digest it was requested or announced by.
    #[error("{url}: content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where it came from.
        url: String,
        /// The digest asked for (or announced in `Docker-Content-Digest`).
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// Content had another size than its descriptor or `Content-Length` said.
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Where it came from.
        url: String,
        /// The announced size.
        expected: u64,
        /// What arrived (for an oversized stream: at least this many).
        actual: u64,
    },
    /// A layer blob matched its digest but is one unpacking would refuse (a tar that
    /// [`wharf_image::check_layer`] refuses, or a diff_id other than the config lists): it is
    /// not stored, and the image is not named.
    #[error("{url}: layer refused: {reason}")]
    LayerRefused {
        /// Where it came from.
        url: String,
        /// The layer's blob digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// A manifest over [`wharf_image::manifest::MAX_MANIFEST_SIZE`] was refused.
    #[error("{url}: manifest of {size} bytes or more refused (limit {limit})")]
    ManifestTooLarge {
        /// Where it came from.
        url: String,
        /// Its announced size, or the bytes read before giving up.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A manifest was malformed or of a kind wharf does not handle.
    #[error("{url}: {source}")]
    Manifest {
        /// Where it came from.
        url: String,
        /// What is wrong.
        #[source]
        source: wharf_image::ManifestError,
    },
    /// The registry broke the protocol (missing or malformed header, body of the wrong shape,
    /// a pagination loop, too many redirects, …).
    #[error("{url}: protocol violation: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// Plain `http://` was refused: the registry is not marked insecure.
    #[error(
        "registry {registry} would need plain http, but it is not marked insecure (only localhost, 127.0.0.1 and \
         configured insecure registries use http)"
    )]
    Insecure {
        /// The registry host.
        registry: String,
    },
    /// A registry name, repository or tag cannot be turned into a URL.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What it is (`registry`, `repository`, `tag`, …).
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Credentials could not be read (docker `config.json`, a credential helper, …).
    #[error("credentials from {source_name}: {reason}")]
    Credentials {
        /// Where they were read from (a path, or `docker-credential-NAME`).
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// No manifest of an index matches the requested platform.
    #[error("{reference}: no manifest for platform {platform} (available: {available})")]
    PlatformNotFound {
        /// The image.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms of the index.
        available: String,
    },
    /// A blob download failed after the configured number of resume attempts; the last
    /// failure is the source.
    #[error("{url}: download of {digest} interrupted after {attempts} attempts")]
    Interrupted {
        /// The blob URL.
        url: String,
        /// The blob.
        digest: Digest,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },
    /// A time limit of [`ClientConfig`](crate::ClientConfig) was reached: connecting (TLS
    /// included), waiting for the response headers, or the whole request.
    #[error("{method} {url}: {phase} took longer than {limit:?} ({} received)", human_bytes(.received))]
    TimedOut {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// What was being waited for: `connecting`, `response headers` or `the request`.
        phase: &'static str,
        /// The limit.
        limit: std::time::Duration,
        /// Body bytes received by then.
        received: u64,
    },
    /// The body arrived slower than [`ClientConfig::low_speed_limit`](crate::ClientConfig::low_speed_limit)
    /// bytes per second over [`ClientConfig::low_speed_time`](crate::ClientConfig::low_speed_time)
    /// (a stalled or trickling server).
    #[error(
        "{method} {url}: transfer below {limit} bytes/s for {time:?} ({} received, {window} in the last {time:?})",
        human_bytes(.received)
    )]
    TooSlow {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// Body bytes received in all.
        received: u64,
        /// Bytes received during the last `time`.
        window: u64,
        /// The limit, in bytes per second.
        limit: u64,
        /// Over how long.
        time: std::time::Duration,
    },
    /// The connection broke while the body was read; the network error is the source.
    #[error("{method} {url}: connection closed after {}", human_bytes(.received))]
    Broken {
        /// The request method.
        method: Method,
        /// The URL.
        url: String,
        /// Body bytes received before it broke.
        received: u64,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The transfer was stopped because another transfer of the same pull failed.
    #[error("cancelled because another transfer failed")]
    Cancelled,
    /// The local image store failed.
    #[error(transparent)]
    Store(#[from] wharf_image::Error),
    /// A local file operation (outside the store) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } | Error::Unauthorized { status, .. } | Error::Unsupported { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The registry's error entries, for errors that carry them.
    pub fn registry_errors(&self) -> Option<&RegistryErrors> {
        match self {
            Error::Status { errors, .. } | Error::Unauthorized { errors, .. } | Error::Unsupported { errors, .. } => {
                Some(errors)
            }
            _ => None,
        }
    }

    /// True for a 404 (unknown manifest, blob, repository or tag).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

/// `1.5 MiB`, `300 bytes`.
pub(crate) fn human_bytes(n: impl std::borrow::Borrow<u64>) -> String {
    let n = *n.borrow();
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_registry_error_bodies() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},
            {"code":"TOOMANYREQUESTS","message":""}]}"#;
        let e = RegistryErrors::decode(body);
        assert_eq!(e.codes(), ["MANIFEST_UNKNOWN", "TOOMANYREQUESTS"]);
        assert_eq!(e.0[0].detail.as_deref(), Some(r#"{"Tag":"x"}"#));
        assert!(e.has("TOOMANYREQUESTS"));
        assert_eq!(e.to_string(), "MANIFEST_UNKNOWN: manifest unknown; TOOMANYREQUESTS");
        assert!(RegistryErrors::decode(b"<html>").0.is_empty());
        assert!(RegistryErrors::decode(b"").0.is_empty());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(300), "300 bytes");
        assert_eq!(human_bytes(1024 * 1024), "1.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

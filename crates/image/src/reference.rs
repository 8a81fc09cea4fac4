//! Image references as Docker users write them, parsed and normalised.
//!
//! The grammar is the one of the distribution project's `reference` package:
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]
//! host       := domain-name | "[" ipv6 "]"
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator  := "." | "_" | "__" | "-"+
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! with Docker's normalisation on top: the first path element is a registry only if it
//! contains `.` or `:`, is `localhost`, or has upper-case letters (repositories never do);
//! otherwise the registry is [`DEFAULT_REGISTRY`]. `index.docker.io` is the legacy name of
//! `docker.io`. A Docker Hub repository of a single element lives under `library/`. A
//! reference with neither tag nor digest gets [`DEFAULT_TAG`]; one with both keeps both.
//!
//! The parser is hand-written rather than one regular expression so that an error can say
//! which part is wrong and why.
//!
//! ```
//! use wharf_image::Reference;
//!
//! let r: Reference = "nginx".parse()?;
//! assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
//! assert_eq!(r.familiar(), "nginx:latest");
//!
//! let r: Reference = "localhost:5000/team/app:v1".parse()?;
//! assert_eq!((r.registry(), r.repository(), r.tag()), ("localhost:5000", "team/app", Some("v1")));
//!
//! let err = "Nginx:latest".parse::<Reference>().unwrap_err();
//! assert_eq!(err.to_string(), "invalid reference: repository name \"Nginx\" must be lowercase");
//! # Ok::<(), wharf_image::ReferenceError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::{Digest, DigestError};

/// The registry a reference without a domain names.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest names.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (`registry/repository`, after normalisation) the grammar allows.
pub const NAME_MAX_LEN: usize = 255;
/// The longest tag the grammar allows.
pub const TAG_MAX_LEN: usize = 128;

/// Docker Hub's legacy name, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";

/// A parsed, normalised image reference: registry, repository, and a tag and/or digest.
///
/// Display gives the fully qualified form (`docker.io/library/nginx:latest`), which parses
/// back to an equal value; [`familiar`](Self::familiar) gives the short form Docker prints.
/// Serde goes through the same string forms.
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
    /// The name (registry and repository, normalised) is longer than [`NAME_MAX_LEN`].
    #[error("invalid reference: name {name:?} is {len} characters long, at most 255 are allowed")]
    TooLong {
        /// The normalised name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// 64 hex characters alone look like an image ID, which is not a reference.
    #[error("invalid reference {0:?}: a 64-character hexadecimal string is an image ID, not a repository name")]
    Identifier(String),
    /// The registry part (host and optional port) is malformed.
    #[error("invalid reference: registry {domain:?} {reason}")]
    Domain {
        /// The registry part as written.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository path is malformed.
    #[error("invalid reference: repository name {repository:?} {reason}")]
    Repository {
        /// The repository path as written (before `library/` is added).
        repository: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository path has upper-case letters.
    #[error("invalid reference: repository name {repository:?} must be lowercase")]
    UppercaseRepository {
        /// The repository path as written.
        repository: String,
    },
    /// The tag is malformed.
    #[error("invalid reference: tag {tag:?} {reason}")]
    Tag {
        /// The tag as written.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The digest after `@` is malformed or uses an unsupported algorithm.
    #[error("invalid reference: {0}")]
    Digest(#[from] DigestError),
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
    ///
    /// The tag is taken as given: check one that comes from outside with
    /// [`validate_tag`] first, or the result will not parse back from its Display form.
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

    /// True when the registry is Docker Hub ([`DEFAULT_REGISTRY`]).
    pub fn is_default_registry(&self) -> bool {
        self.registry == DEFAULT_REGISTRY
    }

    /// The short form Docker prints: without `docker.io/`, and without `library/` for
    /// official images (`nginx:latest`, `user/app:1`, `localhost:5000/a/b:tag`).
    ///
    /// The familiar form parses back to an equal reference.
    pub fn familiar(&self) -> String {
        let mut s = String::new();
        if self.is_default_registry() {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => s.push_str(rest),
                _ => s.push_str(&self.repository),
            }
        } else {
            s.push_str(&self.registry);
            s.push('/');
            s.push_str(&self.repository);
        }
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        s
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
}

/// Checks a tag against the grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
///
/// # Errors
/// [`ReferenceError::Tag`] saying what is wrong.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bad = |reason: String| {
        Err(ReferenceError::Tag {
            tag: tag.to_string(),
            reason,
        })
    };
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let Some(first) = tag.chars().next() else {
        return bad("is empty (remove the ':' or name a tag)".into());
    };
    if !word(first) {
        return bad(format!("must start with a letter, digit or '_', not {first:?}"));
    }
    if let Some(c) = tag.chars().find(|&c| !(word(c) || c == '.' || c == '-')) {
        return bad(format!(
            "contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"
        ));
    }
    if tag.len() > TAG_MAX_LEN {
        return bad(format!(
            "is {} characters long, at most {TAG_MAX_LEN} are allowed",
            tag.len()
        ));
    }
    Ok(())
}

/// Checks a registry host with optional port: a DNS-like name, an IPv4 address or a
/// bracketed IPv6 address.
fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = |reason: String| {
        Err(ReferenceError::Domain {
            domain: domain.to_string(),
            reason,
        })
    };
    let port = if let Some(rest) = domain.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return bad("has '[' without a closing ']'".into());
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return bad(format!("has an invalid IPv6 address {addr:?}"));
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return bad(format!("has {after:?} after the IPv6 address; expected ':port'")),
            },
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        for component in host.split('.') {
            if component.is_empty() {
                return bad("has an empty host name component (leading, trailing or double '.')".into());
            }
            if let Some(c) = component.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
                return bad(format!("contains {c:?}; a host name has letters, digits, '-' and '.'"));
            }
            if component.starts_with('-') || component.ends_with('-') {
                return bad(format!("has component {component:?} that starts or ends with '-'"));
            }
        }
        port
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("has an invalid port {port:?}; a port is a number"));
        }
        if port.parse::<u16>().is_err() {
            return bad(format!("has port {port} which is larger than 65535"));
        }
    }
    Ok(())
}

/// Checks a repository path (already known to be lower-case).
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    let bad = |reason: String| {
        Err(ReferenceError::Repository {
            repository: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("is empty".into());
    }
    for component in path.split('/') {
        if component.is_empty() {
            return bad("has an empty path component (leading, trailing or double '/')".into());
        }
        let mut chars = component.char_indices().peekable();
        let mut last_alnum = false;
        while let Some((i, c)) = chars.next() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                last_alnum = true;
                continue;
            }
            if !matches!(c, '.' | '_' | '-') {
                return bad(format!(
                    "contains {c:?}; only a-z, 0-9 and the separators '.', '_', '__', '-' are allowed"
                ));
            }
            // A run of separators between two alphanumerics.
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !matches!(d, '.' | '_' | '-') {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let sep = &component[i..end];
            if !last_alnum {
                return bad(format!(
                    "has component {component:?} that starts with separator {sep:?}"
                ));
            }
            if chars.peek().is_none() {
                return bad(format!("has component {component:?} that ends with separator {sep:?}"));
            }
            let valid = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
            if !valid {
                return bad(format!(
                    "has separator {sep:?} in {component:?}; allowed are '.', '_', '__' or dashes"
                ));
            }
            last_alnum = false;
        }
    }
    Ok(())
}

/// Splits the name into registry and repository as Docker does.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        None => (DEFAULT_REGISTRY, name),
        Some((first, rest)) => {
            let is_domain =
                first == "localhost" || first.contains(['.', ':']) || first.chars().any(|c| c.is_uppercase());
            if is_domain {
                (first, rest)
            } else {
                (DEFAULT_REGISTRY, name)
            }
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ReferenceError::Identifier(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // The tag separator is a ':' after the last '/', so a port is never taken for a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        let (domain, path) = split_domain(name);
        validate_domain(domain)?;
        if path.chars().any(char::is_uppercase) {
            return Err(ReferenceError::UppercaseRepository {
                repository: path.to_string(),
            });
        }
        validate_path(path)?;

        let registry = if domain == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            domain
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        let len = registry.len() + 1 + repository.len();
        if len > NAME_MAX_LEN {
            return Err(ReferenceError::TooLong {
                name: format!("{registry}/{repository}"),
                len,
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_separators() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a/b/c", "0/1"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a..b", "a___b", "a._b", "-a", "a-", "a/", "/a", "a//b", "a b", "é"] {
            assert!(
                matches!(validate_path(bad), Err(ReferenceError::Repository { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn domains() {
        for ok in ["a", "a.b", "a-b.c", "Foo", "1.2.3.4:5000", "[::1]", "[::1]:5000", "x:0"] {
            assert_eq!(validate_domain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "a..b", ".a", "a.", "-a.b", "a-.b", "a:", "a:b", "a:70000", "[::1", "[]", "[x]", "[::1]x", "a_b.c",
        ] {
            assert!(
                matches!(validate_domain(bad), Err(ReferenceError::Domain { .. })),
                "{bad}"
            );
        }
    }
}

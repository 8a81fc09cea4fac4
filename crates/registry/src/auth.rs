//! Authentication: `WWW-Authenticate` challenges, credentials, and the bearer token flow.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials: anonymous access (a token may still be needed, and is requested
    /// without credentials).
    #[default]
    Anonymous,
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic …` header value, if these are basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
    }
}

// Never print passwords.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, <password>)"),
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass on, if any.
        service: Option<String>,
        /// The scopes the registry asks for (space-separated in the header).
        scope: Vec<String>,
        /// The `error` parameter (`insufficient_scope`, `invalid_token`), if any.
        error: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` for schemes wharf does not speak.
    ///
    /// ```
    /// use wharf_registry::auth::Challenge;
    /// let c = Challenge::parse(r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull""#);
    /// assert!(matches!(c, Some(Challenge::Bearer { ref realm, .. }) if realm == "https://auth.example/token"));
    /// ```
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope")
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
                error: get("error"),
            })
        } else {
            None
        }
    }
}

/// `k=v, k="quoted \" v"` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        if !key.trim().is_empty() {
            out.push((key.trim().to_string(), value));
        }
        if chars.peek().is_none() {
            return out;
        }
    }
}

/// Merges scope strings (`repository:NAME:ACTIONS`), uniting the actions of equal resources.
pub(crate) fn merge_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut by_resource: Vec<(String, BTreeSet<String>)> = Vec::new();
    for s in scopes {
        let Some((resource, actions)) = s.rsplit_once(':') else {
            continue;
        };
        let entry = match by_resource.iter_mut().position(|(r, _)| r == resource) {
            Some(i) => &mut by_resource[i].1,
            None => {
                by_resource.push((resource.to_string(), BTreeSet::new()));
                let last = by_resource.len() - 1;
                &mut by_resource[last].1
            }
        };
        entry.extend(actions.split(',').filter(|a| !a.is_empty()).map(str::to_string));
    }
    let mut out: Vec<String> = by_resource
        .into_iter()
        .map(|(r, a)| format!("{r}:{}", a.into_iter().collect::<Vec<_>>().join(",")))
        .collect();
    out.sort();
    out
}

/// A bearer token with its expiry.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires: Instant,
}

/// What the client knows about one registry's authentication.
#[derive(Default)]
pub(crate) struct RegistryAuth {
    /// The last challenge seen (none until the registry first answered 401).
    pub(crate) challenge: Option<Challenge>,
    /// Tokens by their (merged, sorted) scope list.
    pub(crate) tokens: HashMap<String, Token>,
    /// Resolved credentials (looked up once).
    pub(crate) credentials: Option<Credentials>,
}

impl RegistryAuth {
    /// A valid cached token covering exactly `scope_key`.
    pub(crate) fn token(&self, scope_key: &str) -> Option<&Token> {
        self.tokens.get(scope_key).filter(|t| t.expires > Instant::now())
    }
}

/// The token endpoint's answer.
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime (60 s when not given, as the token spec says; a little
    /// slack is taken off so a token is not used at the edge of its life).
    pub(crate) fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let secs = self.expires_in.unwrap_or(60).max(1);
        let life = Duration::from_secs(secs).saturating_sub(Duration::from_secs(secs.min(10) / 2));
        Some(Token {
            value,
            expires: Instant::now() + life,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_challenges() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: vec!["repository:samalba/my-app:pull,push".into()],
                    error: None,
                }),
            ),
            (
                r#"bearer realm="http://127.0.0.1:1/t", error="insufficient_scope", scope="repository:a:pull repository:b:push""#,
                Some(Challenge::Bearer {
                    realm: "http://127.0.0.1:1/t".into(),
                    service: None,
                    scope: vec!["repository:a:pull".into(), "repository:b:push".into()],
                    error: Some("insufficient_scope".into()),
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            ("Basic", Some(Challenge::Basic)),
            (r#"Bearer realm=plain,service="a\"b""#, None),
            (r#"Bearer service="x""#, None),
            ("Negotiate abc", None),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            let got = Challenge::parse(h);
            if i == 4 {
                // Unquoted realm and an escaped quote.
                let Some(Challenge::Bearer { realm, service, .. }) = got else {
                    panic!("{h}: {got:?}")
                };
                assert_eq!(realm, "plain");
                assert_eq!(service.as_deref(), Some("a\"b"));
                continue;
            }
            assert_eq!(got, want, "{h}");
        }
    }

    #[test]
    fn merges_scopes() {
        assert_eq!(
            merge_scopes([
                "repository:a/b:pull",
                "repository:a/b:push,pull",
                "registry:catalog:*",
                "repository:c:pull",
            ]),
            ["registry:catalog:*", "repository:a/b:pull,push", "repository:c:pull"]
        );
    }

    #[test]
    fn token_expiry_and_fields() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        let t = t.into_token().unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.expires > Instant::now() + Duration::from_secs(290));
        let none: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(none.into_token().is_none());
        assert_eq!(
            format!("{:?}", Credentials::basic("u", "secret")),
            r#"Basic("u", <password>)"#
        );
    }
}

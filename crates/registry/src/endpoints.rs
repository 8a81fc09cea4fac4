//! The distribution-spec endpoints: ping, manifests, blobs, tags, catalog, referrers.

use std::collections::HashSet;

use oci_spec::image::{Descriptor, ImageIndex};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use wharf_image::manifest::MAX_MANIFEST_SIZE;
use wharf_image::media::{self, Kind};
use wharf_image::{Digest, Manifest, Reference};

use crate::client::{Client, Req, ReqBody, read_limited, repo_scope, status_error};
use crate::error::{Error, Result};

/// A repository on a registry: `localhost:5000` + `library/busybox`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    registry: String,
    name: String,
}

impl Repository {
    /// A repository, its name checked against the distribution spec's grammar
    /// (lower-case components of `[a-z0-9]` joined by `.`, `_`, `__` or dashes, separated by `/`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty registry or a malformed name.
    pub fn new(registry: &str, name: &str) -> Result<Repository> {
        let bad = |reason: &str| Error::Invalid {
            what: "repository",
            value: name.to_string(),
            reason: reason.to_string(),
        };
        if registry.is_empty() {
            return Err(Error::Invalid {
                what: "registry",
                value: String::new(),
                reason: "empty".into(),
            });
        }
        if name.is_empty() || name.len() > 255 {
            return Err(bad("must be 1 to 255 characters"));
        }
        for comp in name.split('/') {
            let ok = !comp.is_empty()
                && comp
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
                && comp.as_bytes()[0].is_ascii_alphanumeric()
                && comp.as_bytes()[comp.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(bad(
                    "components must be lower-case letters and digits, joined by '.', '_' or '-'",
                ));
            }
        }
        Ok(Repository {
            registry: registry.to_string(),
            name: name.to_string(),
        })
    }

    /// The repository of an image reference.
    ///
    /// # Errors
    /// As [`Repository::new`].
    pub fn of(reference: &Reference) -> Result<Repository> {
        Repository::new(reference.registry(), reference.repository())
    }

    /// The registry host\[:port\].
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// What a manifest is addressed by: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl ManifestRef {
    /// Parses `sha256:…` as a digest, anything else as a tag (checked against
    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed tag or digest.
    pub fn parse(s: &str) -> Result<ManifestRef> {
        if s.contains(':') {
            return s.parse().map(ManifestRef::Digest).map_err(|e| Error::Invalid {
                what: "digest",
                value: s.to_string(),
                reason: format!("{e}"),
            });
        }
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return Err(Error::Invalid {
                what: "tag",
                value: s.to_string(),
                reason: "must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".into(),
            });
        }
        Ok(ManifestRef::Tag(s.to_string()))
    }

    /// The manifest reference of an image reference: its digest if it has one, else its tag.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the reference has neither.
    pub fn of(reference: &Reference) -> Result<ManifestRef> {
        if let Some(d) = reference.digest() {
            return Ok(ManifestRef::Digest(d.clone()));
        }
        match reference.tag() {
            Some(t) => ManifestRef::parse(t),
            None => Err(Error::Invalid {
                what: "reference",
                value: reference.to_string(),
                reason: "has neither tag nor digest".into(),
            }),
        }
    }
}

impl std::fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestRef::Tag(t) => f.write_str(t),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A manifest as fetched: its exact bytes (verified against its digest), media type and
/// parsed form.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The body, byte for byte.
    pub bytes: Vec<u8>,
    /// The media type (`Content-Type`, else the body's `mediaType`).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The parsed manifest or index.
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            media::parse(&self.media_type),
            self.bytes.len() as u64,
            self.digest.to_oci(),
        )
    }
}

/// What a `HEAD` of a manifest tells, as far as the registry sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`.
    pub digest: Option<Digest>,
    /// `Content-Length`.
    pub size: Option<u64>,
    /// `Content-Type`.
    pub media_type: Option<String>,
}

/// One page of a tag list or catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The names on this page.
    pub items: Vec<String>,
    /// The next page's URL, from the `Link` header.
    pub next: Option<Url>,
}

/// Most pages followed through `Link` headers before giving up.
pub const MAX_PAGES: usize = 100_000;

impl Client {
    /// `GET /v2/`: checks the registry speaks the distribution API, authenticating
    /// (anonymously if no credentials) when it asks to.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when the credentials are refused; transport and status errors.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let url = self.base_url(registry)?;
        self.execute_ok(&Req::new(Method::GET, url, registry, vec![])).await?;
        Ok(())
    }

    pub(crate) fn repo_url(&self, repo: &Repository, tail: &str) -> Result<Url> {
        let base = self.base_url(repo.registry())?;
        base.join(&format!("{}/{tail}", repo.name()))
            .map_err(|e| Error::Invalid {
                what: "repository",
                value: repo.to_string(),
                reason: e.to_string(),
            })
    }

    /// `GET` a manifest by tag or digest, with the OCI and Docker media types in `Accept`.
    ///
    /// The body is refused over 4 MiB (by `Content-Length` and while reading), verified
    /// against the requested digest and against `Docker-Content-Digest` when sent, and parsed.
    ///
    /// # Errors
    /// [`Error::ManifestTooLarge`], [`Error::DigestMismatch`], [`Error::Manifest`];
    /// a 404 as [`Error::Status`] (see [`Error::is_not_found`]).
    pub async fn get_manifest(&self, repo: &Repository, reference: &ManifestRef) -> Result<FetchedManifest> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(
            Method::GET,
            url.clone(),
            repo.registry(),
            vec![repo_scope(repo.name(), "pull")],
        )
        .header(header::ACCEPT, &media::MANIFEST_MEDIA_TYPES.join(", "));
        let resp = self.execute_ok(&req).await?;
        let content_type = content_type(resp.headers());
        let announced = header_digest(resp.headers(), &url)?;
        let limit = MAX_MANIFEST_SIZE as u64;
        let bytes = read_limited(&self.inner.config, resp, &Method::GET, limit, |size| {
            Error::ManifestTooLarge {
                url: url.to_string(),
                size,
                limit,
            }
        })
        .await?;
        let digest = verify_manifest_digest(&url, &bytes, reference, announced.as_ref())?;
        let declared = content_type
            .as_deref()
            .filter(|ct| matches!(media::kind(&media::parse(ct)), Kind::Manifest | Kind::Index));
        let manifest = Manifest::parse(&bytes, declared).map_err(|source| Error::Manifest {
            url: url.to_string(),
            source,
        })?;
        let media_type = declared.map_or_else(|| manifest.media_type().to_string(), str::to_string);
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            manifest,
        })
    }

    /// Sends a `HEAD` request: `None` on 404, the response on success, the registry's
    /// error otherwise.
    async fn head(&self, req: &Req) -> Result<Option<Response>> {
        let resp = self.execute(req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(&self.inner.config, &Method::HEAD, resp).await);
        }
        Ok(Some(resp))
    }

    /// `HEAD` a manifest: what the registry says about it, or `None` when it does not
    /// have it.
    ///
    /// # Errors
    /// Transport, auth and status errors other than 404.
    pub async fn head_manifest(&self, repo: &Repository, reference: &ManifestRef) -> Result<Option<ManifestHead>> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(
            Method::HEAD,
            url.clone(),
            repo.registry(),
            vec![repo_scope(repo.name(), "pull")],
        )
        .header(header::ACCEPT, &media::MANIFEST_MEDIA_TYPES.join(", "));
        let Some(resp) = self.head(&req).await? else {
            return Ok(None);
        };
        Ok(Some(ManifestHead {
            digest: header_digest(resp.headers(), &url)?,
            size: content_length(resp.headers()),
            media_type: content_type(resp.headers()),
        }))
    }

    /// `PUT` a manifest under a tag or digest; returns its digest. The registry's
    /// `Docker-Content-Digest`, when sent, must match.
    ///
    /// # Errors
    /// Over 4 MiB; a registry that refuses it (e.g. `MANIFEST_BLOB_UNKNOWN`) as
    /// [`Error::Status`]; [`Error::DigestMismatch`].
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let (digest, subject_handled) = self.put_manifest_once(repo, reference, bytes, media_type).await?;
        if !subject_handled && let Some((subject, entry)) = referrer_entry(bytes, media_type, &digest) {
            self.add_referrer(repo, &subject, entry).await?;
        }
        Ok(digest)
    }

    /// Adds `entry` to the referrers tag schema index of `subject` (`sha256-<hex>`), for
    /// registries without the referrers API [end-12b].
    async fn add_referrer(&self, repo: &Repository, subject: &Digest, entry: serde_json::Value) -> Result<()> {
        let tag = ManifestRef::Tag(format!("{}-{}", subject.algorithm(), subject.hex()));
        let mut index = match self.get_manifest(repo, &tag).await {
            Ok(f) => serde_json::from_slice::<serde_json::Value>(&f.bytes).map_err(|e| Error::Protocol {
                url: self
                    .repo_url(repo, &format!("manifests/{tag}"))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                reason: format!("referrers index is not JSON: {e}"),
            })?,
            Err(e) if e.is_not_found() => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": INDEX_MEDIA_TYPE,
                "manifests": [],
            }),
            Err(e) => return Err(e),
        };
        let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
            return Err(Error::Protocol {
                url: self.repo_url(repo, &format!("manifests/{tag}"))?.to_string(),
                reason: "referrers index has no manifests list".into(),
            });
        };
        if list.iter().any(|d| d.get("digest") == entry.get("digest")) {
            return Ok(());
        }
        list.push(entry);
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Protocol {
            url: String::new(),
            reason: e.to_string(),
        })?;
        self.put_manifest_once(repo, &tag, &bytes, INDEX_MEDIA_TYPE).await?;
        Ok(())
    }

    /// One `PUT`; returns the digest and whether the registry handled the `subject`
    /// itself (`OCI-Subject` header).
    async fn put_manifest_once(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, bool)> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge {
                url: url.to_string(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE as u64,
            });
        }
        let digest = match reference {
            ManifestRef::Digest(d) => {
                let actual = Digest::of(d.algorithm(), bytes);
                if &actual != d {
                    return Err(Error::DigestMismatch {
                        url: url.to_string(),
                        expected: d.clone(),
                        actual,
                    });
                }
                actual
            }
            ManifestRef::Tag(_) => Digest::sha256(bytes),
        };
        let req = Req::new(
            Method::PUT,
            url.clone(),
            repo.registry(),
            vec![repo_scope(repo.name(), "pull,push")],
        )
        .header(header::CONTENT_TYPE, media_type)
        .body(ReqBody::Bytes(bytes.to_vec()));
        let resp = self.execute_ok(&req).await?;
        if let Some(announced) = header_digest(resp.headers(), &url)? {
            let actual = Digest::of(announced.algorithm(), bytes);
            if announced != actual {
                return Err(Error::DigestMismatch {
                    url: url.to_string(),
                    expected: announced,
                    actual,
                });
            }
        }
        Ok((digest, resp.headers().contains_key("oci-subject")))
    }

    /// `DELETE` a manifest by digest (registries refuse deletion by tag).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the registry has deletion disabled (405 / `UNSUPPORTED`);
    /// a 404 as [`Error::Status`].
    pub async fn delete_manifest(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        let url = self.repo_url(repo, &format!("manifests/{digest}"))?;
        let req = Req::new(
            Method::DELETE,
            url,
            repo.registry(),
            vec![repo_scope(repo.name(), "delete")],
        );
        self.execute_ok(&req).await?;
        Ok(())
    }

    /// `HEAD` a blob: its size, or `None` when the repository does not have it.
    ///
    /// # Errors
    /// Transport, auth and status errors other than 404.
    pub async fn head_blob(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(
            Method::HEAD,
            url,
            repo.registry(),
            vec![repo_scope(repo.name(), "pull")],
        );
        let Some(resp) = self.head(&req).await? else {
            return Ok(None);
        };
        Ok(Some(content_length(resp.headers()).unwrap_or(0)))
    }

    /// `GET` a whole blob of at most `max` bytes into memory, verified. For configs and
    /// other small blobs; layers are streamed by pulls.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] over `max`; [`Error::DigestMismatch`].
    pub async fn get_blob_bytes(&self, repo: &Repository, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let resp = self.blob_response(repo, digest, None).await?;
        let url = resp.url().clone();
        let bytes = read_limited(&self.inner.config, resp, &Method::GET, max, |actual| {
            Error::SizeMismatch {
                url: url.to_string(),
                expected: max,
                actual,
            }
        })
        .await?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                url: url.to_string(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// `GET` a blob (following redirects), from byte `from` on with a `Range` header.
    pub(crate) async fn blob_response(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: Option<u64>,
    ) -> Result<Response> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let mut req = Req::new(Method::GET, url, repo.registry(), vec![repo_scope(repo.name(), "pull")]);
        if let Some(from) = from {
            req = req.header(header::RANGE, &format!("bytes={from}-"));
        }
        let resp = self.execute(&req).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(status_error(&self.inner.config, &Method::GET, resp).await)
        }
    }

    /// `DELETE` a blob.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when deletion is disabled; a 404 as [`Error::Status`].
    pub async fn delete_blob(&self, repo: &Repository, digest: &Digest) -> Result<()> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(
            Method::DELETE,
            url,
            repo.registry(),
            vec![repo_scope(repo.name(), "delete")],
        );
        self.execute_ok(&req).await?;
        Ok(())
    }

    /// One page of the repository's tags: `n` per page, after `last`.
    ///
    /// # Errors
    /// Transport, auth and status errors; a body that is not a tag list.
    pub async fn tags_page(&self, repo: &Repository, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        let mut url = self.repo_url(repo, "tags/list")?;
        set_paging(&mut url, n, last);
        self.page(repo.registry(), vec![repo_scope(repo.name(), "pull")], url, "tags")
            .await
    }

    /// Every tag of the repository, following `Link` pagination with pages of `n`
    /// (the registry's default when `None`).
    ///
    /// # Errors
    /// As [`Client::tags_page`]; [`Error::Protocol`] when the `Link` chain loops.
    pub async fn list_tags(&self, repo: &Repository, n: Option<usize>) -> Result<Vec<String>> {
        let first = self.tags_page(repo, n, None).await?;
        self.follow_pages(repo.registry(), vec![repo_scope(repo.name(), "pull")], first, "tags")
            .await
    }

    /// One page of the registry's catalog.
    ///
    /// # Errors
    /// As [`Client::tags_page`].
    pub async fn catalog_page(&self, registry: &str, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        let mut url = self.base_url(registry)?.join("_catalog").map_err(|e| Error::Invalid {
            what: "registry",
            value: registry.to_string(),
            reason: e.to_string(),
        })?;
        set_paging(&mut url, n, last);
        self.page(registry, vec!["registry:catalog:*".into()], url, "repositories")
            .await
    }

    /// Every repository in the registry's catalog, following `Link` pagination.
    ///
    /// # Errors
    /// As [`Client::list_tags`].
    pub async fn catalog(&self, registry: &str, n: Option<usize>) -> Result<Vec<String>> {
        let first = self.catalog_page(registry, n, None).await?;
        self.follow_pages(registry, vec!["registry:catalog:*".into()], first, "repositories")
            .await
    }

    async fn follow_pages(&self, registry: &str, scopes: Vec<String>, first: Page, field: &str) -> Result<Vec<String>> {
        let mut items = first.items;
        let mut next = first.next;
        let mut seen = HashSet::new();
        while let Some(url) = next {
            if !seen.insert(url.clone()) || seen.len() > MAX_PAGES {
                return Err(Error::Protocol {
                    url: url.to_string(),
                    reason: "the Link pagination chain loops or does not end".into(),
                });
            }
            let page = self.page(registry, scopes.clone(), url, field).await?;
            items.extend(page.items);
            next = page.next;
        }
        Ok(items)
    }

    async fn page(&self, registry: &str, scopes: Vec<String>, url: Url, field: &str) -> Result<Page> {
        let req = Req::new(Method::GET, url.clone(), registry, scopes);
        let resp = self.execute_ok(&req).await?;
        let next = next_link(resp.headers(), &url);
        let bytes = read_limited(&self.inner.config, resp, &Method::GET, 16 * 1024 * 1024, |size| {
            Error::Protocol {
                url: url.to_string(),
                reason: format!("list page of {size} bytes or more"),
            }
        })
        .await?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            url: url.to_string(),
            reason: format!("malformed {field} list: {e}"),
        })?;
        let items = match v.get(field) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Protocol {
                    url: url.to_string(),
                    reason: format!("{field} holds a non-string"),
                })?,
            Some(_) => {
                return Err(Error::Protocol {
                    url: url.to_string(),
                    reason: format!("{field} is not a list"),
                });
            }
        };
        if let Some(n) = &next
            && !(n.scheme() == url.scheme() && n.host_str() == url.host_str() && n.port() == url.port())
        {
            return Err(Error::Protocol {
                url: url.to_string(),
                reason: format!("Link header points to another origin: {n}"),
            });
        }
        Ok(Page { items, next })
    }

    /// The referrers of a manifest [end-12a], filtered by artifact type; falls back to the
    /// referrers tag schema (`sha256-<hex>`) when the registry has no referrers API.
    ///
    /// # Errors
    /// Transport, auth and status errors; a malformed index.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        let mut url = self.repo_url(repo, &format!("referrers/{digest}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let req = Req::new(
            Method::GET,
            url.clone(),
            repo.registry(),
            vec![repo_scope(repo.name(), "pull")],
        )
        .header(header::ACCEPT, "application/vnd.oci.image.index.v1+json");
        let resp = self.execute(&req).await?;
        let index = if resp.status() == StatusCode::NOT_FOUND {
            drop(resp);
            let tag = ManifestRef::Tag(format!("{}-{}", digest.algorithm(), digest.hex()));
            match self.get_manifest(repo, &tag).await {
                Ok(FetchedManifest {
                    manifest: Manifest::Index { index, .. },
                    ..
                }) => index,
                Ok(_) => {
                    return Err(Error::Protocol {
                        url: url.to_string(),
                        reason: format!("referrers tag {tag} is not an index"),
                    });
                }
                Err(e) if e.is_not_found() => empty_index(),
                Err(e) => return Err(e),
            }
        } else if resp.status().is_success() {
            let bytes = read_limited(
                &self.inner.config,
                resp,
                &Method::GET,
                MAX_MANIFEST_SIZE as u64,
                |size| Error::ManifestTooLarge {
                    url: url.to_string(),
                    size,
                    limit: MAX_MANIFEST_SIZE as u64,
                },
            )
            .await?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                url: url.to_string(),
                reason: format!("malformed referrers index: {e}"),
            })?
        } else {
            return Err(status_error(&self.inner.config, &Method::GET, resp).await);
        };
        let mut index = index;
        if let Some(t) = artifact_type {
            let kept: Vec<Descriptor> = index
                .manifests()
                .iter()
                .filter(|d| d.artifact_type().as_ref().is_some_and(|a| a.to_string() == t))
                .cloned()
                .collect();
            index.set_manifests(kept);
        }
        Ok(index)
    }
}

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// For a manifest with a `subject`: the subject's digest and the descriptor that lists
/// this manifest among its referrers (artifact type and annotations included).
fn referrer_entry(bytes: &[u8], media_type: &str, digest: &Digest) -> Option<(Digest, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let subject: Digest = v.get("subject")?.get("digest")?.as_str()?.parse().ok()?;
    let artifact_type = v
        .get("artifactType")
        .or_else(|| v.get("config").and_then(|c| c.get("mediaType")))
        .cloned();
    let mut entry = serde_json::json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": bytes.len(),
    });
    if let Some(t) = artifact_type {
        entry["artifactType"] = t;
    }
    if let Some(a) = v.get("annotations") {
        entry["annotations"] = a.clone();
    }
    Some((subject, entry))
}

fn empty_index() -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_manifests(Vec::new());
    index.set_media_type(Some(oci_spec::image::MediaType::ImageIndex));
    index
}

fn set_paging(url: &mut Url, n: Option<usize>, last: Option<&str>) {
    if n.is_none() && last.is_none() {
        return;
    }
    let mut q = url.query_pairs_mut();
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    if let Some(l) = last {
        q.append_pair("last", l);
    }
}

/// `Link: </v2/…?n=10&last=x>; rel="next"` → absolute URL.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for v in headers.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            let Some(end) = part.find('>') else { continue };
            let Some(target) = part[..end].strip_prefix('<') else {
                continue;
            };
            let params = &part[end + 1..];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

/// The `Content-Type` without parameters.
/// The `Content-Length` header as sent. Read from the header itself: for `HEAD` the body
/// length is 0 whatever it says.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next().unwrap_or(v).trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// `Docker-Content-Digest`, parsed.
pub(crate) fn header_digest(headers: &HeaderMap, url: &Url) -> Result<Option<Digest>> {
    let Some(v) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| Error::Protocol {
        url: url.to_string(),
        reason: "Docker-Content-Digest is not ASCII".into(),
    })?;
    s.trim().parse().map(Some).map_err(|e| Error::Protocol {
        url: url.to_string(),
        reason: format!("bad Docker-Content-Digest {s:?}: {e}"),
    })
}

fn verify_manifest_digest(
    url: &Url,
    bytes: &[u8],
    reference: &ManifestRef,
    announced: Option<&Digest>,
) -> Result<Digest> {
    for expected in [
        match reference {
            ManifestRef::Digest(d) => Some(d),
            ManifestRef::Tag(_) => None,
        },
        announced,
    ]
    .into_iter()
    .flatten()
    {
        let actual = Digest::of(expected.algorithm(), bytes);
        if &actual != expected {
            return Err(Error::DigestMismatch {
                url: url.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(match reference {
        ManifestRef::Digest(d) => d.clone(),
        ManifestRef::Tag(_) => Digest::sha256(bytes),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn validates_repository_names_and_tags() {
        for ok in ["library/busybox", "a", "a-b/c.d/e__f", "x1/y--2"] {
            assert!(Repository::new("r", ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a//b", "-a", "a-", "a/b/", "a b", "a:b"] {
            assert!(matches!(Repository::new("r", bad), Err(Error::Invalid { .. })), "{bad}");
        }
        assert_eq!(
            ManifestRef::parse("v1.0_rc-1").unwrap(),
            ManifestRef::Tag("v1.0_rc-1".into())
        );
        assert!(matches!(
            ManifestRef::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            ManifestRef::Digest(_)
        ));
        for bad in ["", ".a", "-a", "a/b", "sha256:zz", &"t".repeat(129)] {
            assert!(ManifestRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_link_headers() {
        let base = Url::parse("http://127.0.0.1:5000/v2/a/tags/list?n=2").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            r#"</v2/a/tags/list?last=b&n=2>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=b&n=2"
        );
        h.insert(header::LINK, r#"<http://x/prev>; rel="prev""#.parse().unwrap());
        assert_eq!(next_link(&h, &base), None);
    }

    #[test]
    fn verifies_manifest_digests() {
        let url = Url::parse("http://127.0.0.1/v2/a/manifests/x").unwrap();
        let body = b"{}";
        let good = Digest::sha256(body);
        let bad = Digest::sha256(b"other");
        let tag = ManifestRef::Tag("x".into());
        assert_eq!(verify_manifest_digest(&url, body, &tag, None).unwrap(), good);
        assert_eq!(verify_manifest_digest(&url, body, &tag, Some(&good)).unwrap(), good);
        assert!(matches!(
            verify_manifest_digest(&url, body, &tag, Some(&bad)),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_manifest_digest(&url, body, &ManifestRef::Digest(bad.clone()), None),
            Err(Error::DigestMismatch { .. })
        ));
    }
}

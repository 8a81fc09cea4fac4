//! Blob uploads: monolithic [end-4a, end-6], chunked [end-5] and cross-repository mount
//! [end-11].

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use wharf_image::Digest;

use crate::client::{Client, Req, ReqBody, repo_scope, status_error};
use crate::endpoints::Repository;
use crate::error::{Error, Result};

/// Where the bytes of a blob come from; re-readable, so a request can be retried.
#[derive(Clone)]
pub enum BlobSource {
    /// Bytes in memory (configs, small blobs).
    Bytes(Arc<Vec<u8>>),
    /// A file, opened anew for each request.
    File(Arc<dyn Fn() -> std::io::Result<std::fs::File> + Send + Sync>),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            BlobSource::File(_) => f.write_str("File"),
        }
    }
}

/// How a blob reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The registry already had it (`HEAD` succeeded).
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded in one request.
    Monolithic,
    /// Uploaded in this many chunks.
    Chunked(u32),
}

impl Client {
    /// Uploads a blob unless the repository already has it; mounts it from `mount_from`
    /// when given (falling back to an upload if the registry declines).
    ///
    /// Chunked when [`ClientConfig::upload_chunk_size`](crate::ClientConfig::upload_chunk_size)
    /// is set (chunks at least the registry's `OCI-Chunk-Min-Length`), else monolithic.
    ///
    /// # Errors
    /// Transport, auth and status errors; [`Error::Protocol`] when the registry's upload
    /// session answers break the protocol.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        source: &BlobSource,
        mount_from: Option<&Repository>,
    ) -> Result<Uploaded> {
        if self.head_blob(repo, digest).await?.is_some() {
            return Ok(Uploaded::Existed);
        }
        let uploads = self.repo_url(repo, "blobs/uploads/")?;
        let mut scopes = vec![repo_scope(repo.name(), "pull,push")];
        let mut url = uploads.clone();
        if let Some(from) = mount_from.filter(|f| f.registry() == repo.registry() && f.name() != repo.name()) {
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from.name());
            scopes.push(repo_scope(from.name(), "pull"));
        }
        let req = Req::new(Method::POST, url.clone(), repo.registry(), scopes.clone());
        let resp = self.execute_ok(&req).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(Uploaded::Mounted);
        }
        let min_chunk = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut location = location(resp.headers(), &url)?;
        drop(resp);

        let chunk = self
            .inner
            .config
            .upload_chunk_size
            .map(|c| c.max(min_chunk.unwrap_or(0)).max(1));
        match chunk {
            None => {
                let mut put = location;
                put.query_pairs_mut().append_pair("digest", &digest.to_string());
                let body = match source {
                    BlobSource::Bytes(b) => ReqBody::Bytes(b.as_ref().clone()),
                    BlobSource::File(open) => ReqBody::File {
                        open: open.clone(),
                        len: size,
                    },
                };
                let req = Req::new(Method::PUT, put, repo.registry(), scopes)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(body);
                self.execute_ok(&req).await?;
                Ok(Uploaded::Monolithic)
            }
            Some(chunk) => {
                let mut offset = 0u64;
                let mut chunks = 0u32;
                while offset < size {
                    let len = chunk.min(size - offset);
                    let bytes = read_range(source, offset, len).await?;
                    let req = Req::new(Method::PATCH, location.clone(), repo.registry(), scopes.clone())
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_RANGE, &format!("{}-{}", offset, offset + len - 1))
                        .body(ReqBody::Bytes(bytes));
                    let resp = self.execute(&req).await?;
                    if resp.status() != StatusCode::ACCEPTED {
                        return Err(status_error(&self.inner.config, &Method::PATCH, resp).await);
                    }
                    // The registry says how much it has: `Range: 0-<last>`.
                    if let Some(end) = resp
                        .headers()
                        .get(header::RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.rsplit('-').next())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        && end + 1 != offset + len
                    {
                        return Err(Error::Protocol {
                            url: location.to_string(),
                            reason: format!("after a chunk ending at {} the registry has 0-{end}", offset + len - 1),
                        });
                    }
                    location = location_or(resp.headers(), &location)?;
                    offset += len;
                    chunks += 1;
                }
                let mut put = location;
                put.query_pairs_mut().append_pair("digest", &digest.to_string());
                let req = Req::new(Method::PUT, put, repo.registry(), scopes);
                self.execute_ok(&req).await?;
                Ok(Uploaded::Chunked(chunks))
            }
        }
    }

    /// Uploads bytes as a blob (sha256); returns the digest.
    ///
    /// # Errors
    /// As [`Client::push_blob`].
    pub async fn push_blob_bytes(&self, repo: &Repository, bytes: Vec<u8>) -> Result<Digest> {
        let digest = Digest::sha256(&bytes);
        let size = bytes.len() as u64;
        self.push_blob(repo, &digest, size, &BlobSource::Bytes(Arc::new(bytes)), None)
            .await?;
        Ok(digest)
    }
}

async fn read_range(source: &BlobSource, offset: u64, len: u64) -> Result<Vec<u8>> {
    match source {
        BlobSource::Bytes(b) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
            let end = usize::try_from(offset + len).unwrap_or(usize::MAX).min(b.len());
            Ok(b[start..end].to_vec())
        }
        BlobSource::File(open) => {
            let open = open.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut f = open()?;
                f.seek(SeekFrom::Start(offset))?;
                let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                f.take(len).read_to_end(&mut buf)?;
                if (buf.len() as u64) < len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than its size",
                    ));
                }
                Ok(buf)
            })
            .await
            .map_err(|e| Error::Io {
                what: "reading a chunk".into(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(|source| Error::Io {
                what: format!("reading bytes {offset}+{len} of a blob"),
                source,
            })
        }
    }
}

fn location(headers: &HeaderMap, base: &Url) -> Result<Url> {
    let loc = headers.get(header::LOCATION).ok_or_else(|| Error::Protocol {
        url: base.to_string(),
        reason: "upload session answer without Location".into(),
    })?;
    loc.to_str()
        .ok()
        .and_then(|l| base.join(l).ok())
        .ok_or_else(|| Error::Protocol {
            url: base.to_string(),
            reason: format!("bad Location {loc:?}"),
        })
}

fn location_or(headers: &HeaderMap, current: &Url) -> Result<Url> {
    if headers.contains_key(header::LOCATION) {
        location(headers, current)
    } else {
        Ok(current.clone())
    }
}

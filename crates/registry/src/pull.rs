//! Pull: registry → [`Store`], streaming each blob through digest and size verification.
//!
//! Each blob is downloaded by an async task that hands chunks to a blocking thread owning
//! a [`wharf_image::store::BlobWriter`]; hashing and writing overlap with the download and
//! memory stays bounded by a small channel, whatever the blob's size.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use oci_spec::image::Descriptor;
use reqwest::StatusCode;
use reqwest::header;
use tokio::sync::{Semaphore, mpsc};
use wharf_image::{Digest, DigestError, Manifest, Platform, Reference, Store};

use crate::body::Body;
use crate::client::Client;
use crate::endpoints::{ManifestRef, Repository};
use crate::error::{Error, Result};
use crate::layers::{CheckLayers, Checker, Layer, LayerSink};
use crate::progress::{Progress, ProgressEvent};

/// Settings of one pull.
#[derive(Clone)]
pub struct PullOptions {
    /// The platform chosen from a multi-platform index. Default: the host's.
    pub platform: Platform,
    /// Called for every [`ProgressEvent`]. Default: none.
    pub progress: Progress,
    /// Receives each layer while it downloads and judges it. Default: [`CheckLayers`], which
    /// reads it as unpacking will; an engine that unpacks anyway passes a sink that extracts.
    pub layers: Arc<dyn LayerSink>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            progress: Progress::default(),
            layers: Arc::new(CheckLayers),
        }
    }
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference as pulled (tagged in the store when it has a tag).
    pub reference: Reference,
    /// Digest of the top-level manifest or index.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Digest of the single-platform image manifest (equal to `digest` without an index).
    pub manifest_digest: Digest,
    /// The config digest: the image id.
    pub config_digest: Digest,
    /// Blobs downloaded.
    pub fetched: usize,
    /// Blobs the store already had.
    pub skipped: usize,
    /// Bytes downloaded (including restarted ranges).
    pub bytes: u64,
}

/// Outcome of one blob.
enum Got {
    Fetched(u64),
    Skipped,
}

/// One blob download's parameters.
#[derive(Clone, Copy)]
struct Transfer<'a> {
    repo: &'a Repository,
    digest: &'a Digest,
    size: u64,
    url: &'a str,
    progress: &'a Progress,
    cancel: &'a AtomicBool,
}

/// A message to the writer thread.
enum Msg {
    Data(Bytes),
    /// Drop what was written and start over (the server could not resume).
    Reset,
    /// All bytes were sent: verify and commit.
    Commit,
    /// The content is wrong (the server lied about its size): remove the partial file.
    Discard,
}

/// Why streaming stopped before all bytes were handed to the writer.
enum Stop {
    /// The network or the server failed.
    Net(Error),
    /// The writer thread stopped: its own error says why.
    WriterGone,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Net(e)
    }
}

impl Client {
    /// Pulls an image into `store`: resolves the tag, chooses the platform from an index,
    /// fetches the config, then the layers in parallel (at most
    /// [`ClientConfig::max_concurrent_downloads`](crate::ClientConfig::max_concurrent_downloads)),
    /// each streamed through verification into the store (blobs already stored are
    /// skipped), stores the manifests, and tags the reference when it has a tag.
    ///
    /// Each layer of an image also goes, while it arrives, to [`PullOptions::layers`] on a
    /// thread of its own (by default [`CheckLayers`], which reads it as unpacking will): its
    /// uncompressed content must hash to the diff_id the config lists, and its tar must be one
    /// wharf-rootfs unpacks. So a pull that succeeds is an image `run` can start, as `load` and
    /// `import` promise.
    ///
    /// A store [`Lease`](wharf_image::store::Lease) is held throughout, so a concurrent
    /// `gc` cannot remove blobs before the manifest that references them is tagged.
    ///
    /// # Errors
    /// [`Error::PlatformNotFound`], [`Error::DigestMismatch`] / [`Error::SizeMismatch`] for
    /// bad content (never stored), [`Error::LayerRefused`] for a layer unpacking would refuse
    /// or whose uncompressed content is not the diff_id the image config lists (never stored;
    /// the image is not tagged), [`Error::Protocol`] for a config whose diff_ids do not pair
    /// with the manifest's layers, [`Error::Interrupted`] when resumes are exhausted, and the
    /// errors of the endpoints and of the store.
    pub async fn pull(&self, reference: &Reference, store: &Store, options: &PullOptions) -> Result<Pulled> {
        let repo = Repository::of(reference)?;
        let mref = ManifestRef::of(reference)?;
        let lease_store = store.clone();
        let _lease = blocking(move || lease_store.lease()).await?;

        let top = self.get_manifest(&repo, &mref).await?;
        let image = match &top.manifest {
            Manifest::Image { .. } => top.clone(),
            Manifest::Index { .. } => {
                let chosen = top.manifest.choose(&options.platform).ok_or_else(|| {
                    let available: Vec<String> = top
                        .manifest
                        .descriptors()
                        .iter()
                        .filter_map(|d| d.platform().as_ref().map(|p| Platform::from_oci(p).to_string()))
                        .collect();
                    Error::PlatformNotFound {
                        reference: reference.to_string(),
                        platform: options.platform.to_string(),
                        available: available.join(", "),
                    }
                })?;
                let d = Digest::from_oci(chosen.digest()).map_err(|e| Error::Invalid {
                    what: "digest",
                    value: chosen.digest().to_string(),
                    reason: e.to_string(),
                })?;
                let child = self.get_manifest(&repo, &ManifestRef::Digest(d)).await?;
                if !matches!(child.manifest, Manifest::Image { .. }) {
                    return Err(Error::Protocol {
                        url: self
                            .repo_url(&repo, &format!("manifests/{}", child.digest))?
                            .to_string(),
                        reason: "an index entry for the platform is itself an index".into(),
                    });
                }
                child
            }
        };
        let Manifest::Image { manifest, .. } = &image.manifest else {
            unreachable!("checked above")
        };
        let config_digest = descriptor_digest(manifest.config())?;

        // The config first: each layer is checked against the diff_id it lists while it
        // downloads, so a pull never stores a layer that unpacking would refuse.
        let no_cancel = AtomicBool::new(false);
        let config_got = self
            .fetch_blob(
                &repo,
                &config_digest,
                manifest.config().size(),
                None,
                store,
                &options.progress,
                &no_cancel,
            )
            .await?;
        // An artifact (a config that is not an image config) is stored as it comes: there is
        // nothing to unpack, and `run` refuses it by its config.
        let is_image = wharf_image::media::kind(manifest.config().media_type()) == wharf_image::media::Kind::Config;
        let diff_ids = if is_image {
            let (st, d, mt) = (
                store.clone(),
                config_digest.clone(),
                manifest.config().media_type().clone(),
            );
            let config_url = self.repo_url(&repo, &format!("blobs/{config_digest}"))?.to_string();
            let bytes = blocking(move || st.read_blob(&d, wharf_image::store::MAX_DOCUMENT_SIZE)).await?;
            let bad = |reason: String| Error::Protocol {
                url: config_url.clone(),
                reason,
            };
            let config = wharf_image::ImageConfig::parse_as(&mt, &bytes).map_err(|e| bad(e.to_string()))?;
            let diff_ids = config.diff_ids().map_err(|e| bad(e.to_string()))?;
            if diff_ids.len() != manifest.layers().len() {
                return Err(bad(format!(
                    "the manifest lists {} layers but the image config {} diff_ids",
                    manifest.layers().len(),
                    diff_ids.len()
                )));
            }
            diff_ids.into_iter().map(Some).collect()
        } else {
            vec![None; manifest.layers().len()]
        };

        // Then the layers, each blob once.
        let mut blobs: Vec<(Digest, u64, Option<Layer>)> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (d, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let dg = descriptor_digest(d)?;
            let compression = wharf_image::media::layer_compression(d.media_type());
            match seen.get(&dg) {
                None => {
                    seen.insert(dg.clone(), diff_id.clone());
                    let expect = diff_id.map(|diff_id| Layer {
                        blob: dg.clone(),
                        compression,
                        diff_id,
                    });
                    blobs.push((dg, d.size(), expect));
                }
                Some(first) if *first == diff_id => {}
                Some(first) => {
                    return Err(Error::Protocol {
                        url: self.repo_url(&repo, &format!("blobs/{dg}"))?.to_string(),
                        reason: format!(
                            "the image config lists two diff_ids for this layer blob: {} and {}",
                            first.as_ref().map_or_else(String::new, Digest::to_string),
                            diff_id.as_ref().map_or_else(String::new, Digest::to_string)
                        ),
                    });
                }
            }
        }

        let sem = Arc::new(Semaphore::new(self.inner.config.max_concurrent_downloads.max(1)));
        // Set on the first failure: the other downloads stop at their next chunk and clean
        // up (their writers remove temporary files) before the pull returns.
        let cancel = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for (digest, size, expect) in blobs {
            // A task is spawned only when it may run, so memory stays bounded by the number
            // of concurrent downloads whatever the manifest lists.
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            let (client, repo, store, progress, cancel) = (
                self.clone(),
                repo.clone(),
                store.clone(),
                options.progress.clone(),
                cancel.clone(),
            );
            let layer = expect.map(|l| (options.layers.clone(), l));
            tasks.spawn(async move {
                let _permit = permit;
                let r = client
                    .fetch_blob(&repo, &digest, size, layer, &store, &progress, &cancel)
                    .await;
                match &r {
                    Err(Error::Cancelled) | Ok(_) => {}
                    Err(e) => {
                        cancel.store(true, Ordering::SeqCst);
                        progress.emit(ProgressEvent::Failed {
                            digest: digest.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
                r
            });
        }
        let (mut fetched, mut skipped, mut bytes) = match config_got {
            Got::Fetched(n) => (1, 0, n),
            Got::Skipped => (0, 1, 0),
        };
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let got = joined.map_err(|e| Error::Io {
                what: "a blob download task".into(),
                source: std::io::Error::other(e.to_string()),
            });
            match got.and_then(|r| r) {
                Ok(Got::Fetched(n)) => {
                    fetched += 1;
                    bytes += n;
                }
                Ok(Got::Skipped) => skipped += 1,
                Err(Error::Cancelled) => {}
                Err(e) => {
                    cancel.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        // Manifests after their blobs; the index last, then the name.
        let st = store.clone();
        let (img, top2) = (image.clone(), top.clone());
        let top_desc = blocking(move || {
            st.put_manifest(&img.bytes, Some(&img.media_type))?;
            let (desc, _) = if top2.digest != img.digest {
                st.put_manifest(&top2.bytes, Some(&top2.media_type))?
            } else {
                (img.descriptor(), img.manifest.clone())
            };
            Ok(desc)
        })
        .await?;
        if let Some(tag) = reference.tag() {
            let named = reference.with_tag(tag);
            let st = store.clone();
            blocking(move || st.tag(&named, &top_desc)).await?;
        }
        Ok(Pulled {
            reference: reference.clone(),
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            manifest_digest: image.digest.clone(),
            config_digest,
            fetched,
            skipped,
            bytes,
        })
    }

    /// Downloads one blob into the store, resuming with `Range` when the connection
    /// breaks, and from the partial file an earlier (killed or interrupted) pull left. A
    /// layer goes to its sink as it arrives and is stored only if the sink accepts it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        layer: Option<(Arc<dyn LayerSink>, Layer)>,
        store: &Store,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<Got> {
        let skipped = || {
            progress.emit(ProgressEvent::Skipped {
                digest: digest.clone(),
                size,
            });
            Ok(Got::Skipped)
        };
        if store.has_blob(digest) && store.blob_size(digest).is_ok_and(|s| s == size) {
            return skipped();
        }
        progress.emit(ProgressEvent::Started {
            digest: digest.clone(),
            size,
        });
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?.to_string();

        // The writer thread: owns the partial blob, so the async side never blocks on disk
        // (nor on another process that holds the same partial file).
        let (tx, mut rx) = mpsc::channel::<Msg>(8);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Option<u64>>();
        let (st, d) = (store.clone(), digest.clone());
        let writer = tokio::task::spawn_blocking(move || -> Result<Option<(Digest, u64)>> {
            let mut w = st.partial_blob(&d, size)?;
            if st.has_blob(&d) {
                // Another process stored it while this one waited for the partial file.
                w.discard();
                let _ = ready_tx.send(None);
                return Ok(None);
            }
            let partial = st.partial_path(&d);
            let start_check = |prefix: u64| -> Result<Option<Checker>> {
                layer
                    .clone()
                    .map(|(sink, l)| Checker::start(sink, l, &partial, prefix))
                    .transpose()
                    .map_err(|source| Error::Io {
                        what: format!("checking layer {d}"),
                        source,
                    })
            };
            let mut check = start_check(w.offset())?;
            let _ = ready_tx.send(Some(w.offset()));
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Data(b) => {
                        w.write_all(&b).map_err(|e| write_error(&st, &d, e))?;
                        if let Some(c) = &check {
                            c.feed(&b);
                        }
                    }
                    Msg::Reset => {
                        w.restart()?;
                        check = start_check(0)?;
                    }
                    Msg::Commit => {
                        let mut refused = None;
                        let committed = w.commit_if(|| {
                            check
                                .take()
                                .map_or(Ok(()), Checker::finish)
                                .inspect_err(|reason| refused = Some(reason.clone()))
                        });
                        return match (committed, refused) {
                            (_, Some(reason)) => Err(Error::LayerRefused {
                                url: String::new(),
                                digest: d.clone(),
                                reason,
                            }),
                            (c, None) => Ok(Some(c?)),
                        };
                    }
                    Msg::Discard => {
                        w.discard();
                        return Ok(None);
                    }
                }
            }
            // The sender gave up (a failure, or the pull was dropped): the partial blob's
            // drop keeps what arrived for the next pull.
            Ok(None)
        });
        let writer_result = |joined: std::result::Result<_, tokio::task::JoinError>| {
            joined.map_err(|e| Error::Io {
                what: format!("writing blob {digest}"),
                source: std::io::Error::other(e.to_string()),
            })?
        };
        let Ok(ready) = ready_rx.await else {
            // The writer failed before it was ready.
            writer_result(writer.await)?;
            return Err(writer_stopped(digest));
        };
        let Some(offset) = ready else {
            writer_result(writer.await)?;
            return skipped();
        };
        let t = Transfer {
            repo,
            digest,
            size,
            url: &url,
            progress,
            cancel,
        };
        let downloaded = match self.stream_blob(t, offset, &tx).await {
            Ok(n) => n,
            Err(stop) => {
                if let Stop::Net(Error::SizeMismatch { .. }) = &stop {
                    let _ = tx.send(Msg::Discard).await;
                }
                drop(tx);
                let written = writer_result(writer.await);
                return Err(match stop {
                    Stop::Net(e) => e,
                    // The writer's own error (e.g. "No space left on device") says why.
                    Stop::WriterGone => match written {
                        Err(e) => e,
                        Ok(_) => writer_stopped(digest),
                    },
                });
            }
        };
        let sent = tx.send(Msg::Commit).await.is_ok();
        drop(tx);
        match writer_result(writer.await) {
            Ok(Some(_)) if sent => {}
            Ok(_) => return Err(writer_stopped(digest)),
            Err(Error::Store(wharf_image::Error::Corrupt { source, .. })) => {
                return Err(match source {
                    DigestError::Mismatch { expected, actual } => Error::DigestMismatch { url, expected, actual },
                    DigestError::SizeMismatch { expected, actual, .. } => Error::SizeMismatch { url, expected, actual },
                    other => Error::Store(wharf_image::Error::Digest(other)),
                });
            }
            Err(Error::LayerRefused { digest, reason, .. }) => return Err(Error::LayerRefused { url, digest, reason }),
            Err(e) => return Err(e),
        }
        progress.emit(ProgressEvent::Verified {
            digest: digest.clone(),
            size,
        });
        Ok(Got::Fetched(downloaded))
    }

    /// Streams the blob's bytes from `offset` on to the writer, resuming (with backoff)
    /// when the body breaks, stalls or trickles; returns the bytes downloaded.
    async fn stream_blob(&self, t: Transfer<'_>, offset: u64, tx: &mpsc::Sender<Msg>) -> Result<u64, Stop> {
        let Transfer {
            repo,
            digest,
            size,
            url,
            progress,
            cancel,
        } = t;
        let max_attempts = self.inner.config.resume_attempts + 1;
        let mut received = offset; // bytes the writer holds
        let mut downloaded = 0u64;
        let mut attempts = 0u32;
        let send = |msg| async move { tx.send(msg).await.map_err(|_| Stop::WriterGone) };
        let interrupted = |attempts, last| {
            Stop::Net(Error::Interrupted {
                url: url.to_string(),
                digest: digest.clone(),
                attempts,
                last: Box::new(last),
            })
        };
        if offset > 0 {
            progress.emit(ProgressEvent::Resumed {
                digest: digest.clone(),
                offset,
            });
        }
        loop {
            if received == size {
                // Everything is there (a pull was killed just before committing).
                return Ok(downloaded);
            }
            if attempts > 0 {
                tokio::time::sleep(self.backoff(attempts - 1)).await;
            }
            attempts += 1;
            let from = (received > 0).then_some(received);
            let resp = match self.blob_response(repo, digest, from).await {
                Ok(r) => r,
                // The server cannot serve this range (e.g. the partial file is of another
                // upload of the same digest): start over.
                Err(e) if from.is_some() && e.status() == Some(StatusCode::RANGE_NOT_SATISFIABLE) => {
                    send(Msg::Reset).await?;
                    received = 0;
                    if attempts >= max_attempts {
                        return Err(interrupted(attempts, e));
                    }
                    continue;
                }
                // Transport errors and timeouts were already retried by the client; a
                // resume after a broken body gets its own attempts.
                Err(e @ (Error::Transport { .. } | Error::TimedOut { .. })) if received > 0 => {
                    if attempts >= max_attempts {
                        return Err(interrupted(attempts, e));
                    }
                    continue;
                }
                Err(e) => return Err(Stop::Net(e)),
            };
            let len = resp.content_length();
            if from.is_some() && resp.status() == StatusCode::PARTIAL_CONTENT {
                if !content_range_matches(resp.headers(), received, size) {
                    // A range we did not ask for: start over.
                    drop(resp);
                    send(Msg::Reset).await?;
                    received = 0;
                    progress.emit(ProgressEvent::Resumed {
                        digest: digest.clone(),
                        offset: 0,
                    });
                    continue;
                }
                progress.emit(ProgressEvent::Resumed {
                    digest: digest.clone(),
                    offset: received,
                });
            } else if resp.status() == StatusCode::OK {
                if received > 0 {
                    // The server ignored Range: restart from the first byte.
                    send(Msg::Reset).await?;
                    received = 0;
                    progress.emit(ProgressEvent::Resumed {
                        digest: digest.clone(),
                        offset: 0,
                    });
                }
                if let Some(len) = len
                    && len != size
                {
                    return Err(Stop::Net(Error::SizeMismatch {
                        url: url.to_string(),
                        expected: size,
                        actual: len,
                    }));
                }
            } else {
                return Err(Stop::Net(Error::Protocol {
                    url: url.to_string(),
                    reason: format!("unexpected status {} for a blob", resp.status()),
                }));
            }
            let mut body = Body::new(resp, &reqwest::Method::GET, &self.inner.config);
            let mut since_event = 0u64;
            let broke = loop {
                if cancel.load(Ordering::SeqCst) {
                    return Err(Stop::Net(Error::Cancelled));
                }
                match body.chunk().await {
                    Ok(Some(chunk)) => {
                        let n = chunk.len() as u64;
                        if received + n > size {
                            return Err(Stop::Net(Error::SizeMismatch {
                                url: url.to_string(),
                                expected: size,
                                actual: received + n,
                            }));
                        }
                        received += n;
                        downloaded += n;
                        since_event += n;
                        send(Msg::Data(chunk)).await?;
                        if since_event >= 512 * 1024 || received == size {
                            since_event = 0;
                            progress.emit(ProgressEvent::Bytes {
                                digest: digest.clone(),
                                done: received,
                                total: size,
                            });
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if received == size && broke.is_none() {
                return Ok(downloaded);
            }
            let last = broke.unwrap_or_else(|| Error::Protocol {
                url: url.to_string(),
                reason: format!(
                    "body ended after {} of {}",
                    crate::error::human_bytes(body.received()),
                    crate::error::human_bytes(size - (received - body.received()))
                ),
            });
            if attempts >= max_attempts {
                return Err(interrupted(attempts, last));
            }
        }
    }
}

fn writer_stopped(digest: &Digest) -> Error {
    Error::Io {
        what: format!("writing blob {digest}"),
        source: std::io::Error::other("the blob writer stopped early"),
    }
}

/// `Content-Range: bytes <from>-<size-1>/<size or *>`.
fn content_range_matches(headers: &header::HeaderMap, from: u64, size: u64) -> bool {
    let Some(v) = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = v.trim().strip_prefix("bytes ") else {
        return false;
    };
    let Some((range, total)) = rest.split_once('/') else {
        return false;
    };
    let Some((start, end)) = range.split_once('-') else {
        return false;
    };
    let total_ok = total.trim() == "*" || total.trim().parse::<u64>().ok() == Some(size);
    start.trim().parse::<u64>().ok() == Some(from) && end.trim().parse::<u64>().ok() == Some(size - 1) && total_ok
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Digest::from_oci(d.digest()).map_err(|e| Error::Invalid {
        what: "digest",
        value: d.digest().to_string(),
        reason: e.to_string(),
    })
}

/// A failed write into the partial blob: a verification failure, or the OS error (e.g. "No
/// space left on device") with the path.
fn write_error(st: &Store, digest: &Digest, e: std::io::Error) -> Error {
    match DigestError::from_io(&e) {
        Some(d) => Error::Store(wharf_image::Error::Corrupt {
            digest: digest.clone(),
            source: d.clone(),
        }),
        None => Error::Store(wharf_image::Error::Io {
            op: "write",
            path: st.partial_path(digest),
            source: e,
        }),
    }
}

/// Runs a store operation on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> wharf_image::error::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            what: "a store operation".into(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(Error::Store)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn checks_content_range() {
        let h = |v: &str| {
            let mut m = header::HeaderMap::new();
            m.insert(header::CONTENT_RANGE, v.parse().unwrap());
            m
        };
        assert!(content_range_matches(&h("bytes 100-999/1000"), 100, 1000));
        assert!(content_range_matches(&h("bytes 100-999/*"), 100, 1000));
        for bad in [
            "bytes 0-999/1000",
            "bytes 100-998/1000",
            "bytes 100-999/2000",
            "items 100-999/1000",
            "x",
        ] {
            assert!(!content_range_matches(&h(bad), 100, 1000), "{bad}");
        }
        assert!(!content_range_matches(&header::HeaderMap::new(), 100, 1000));
    }
}

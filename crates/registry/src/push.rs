//! Push: [`Store`] → registry. Blobs first (in parallel, skipping what the registry has,
//! mounting from a known source repository), then manifests, then the tag.

use std::sync::Arc;

use tokio::sync::Semaphore;
use wharf_image::manifest::MAX_MANIFEST_SIZE;
use wharf_image::{Digest, Manifest, Reference, Store};

use crate::client::Client;
use crate::endpoints::{ManifestRef, Repository};
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::pull::blocking;
use crate::upload::{BlobSource, Uploaded};

/// Settings of one push.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// A repository on the same registry that already has the blobs (e.g. the one the
    /// image was pulled from): blobs are mounted from it instead of uploaded. Default: none.
    pub mount_from: Option<Repository>,
    /// Called for every [`ProgressEvent`]. Default: none.
    pub progress: Progress,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("mount_from", &self.mount_from)
            .field("progress", &self.progress)
            .finish()
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Where it was pushed.
    pub reference: Reference,
    /// Digest of the top-level manifest or index.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from [`PushOptions::mount_from`].
    pub mounted: usize,
    /// Blobs the registry already had.
    pub existed: usize,
}

impl Client {
    /// Pushes the image stored under `source` to `target` (a tag, or a digest that must be
    /// the manifest's). For an index, every child manifest present in the store is pushed
    /// with its blobs; absent children must already be in the target repository.
    ///
    /// # Errors
    /// [`Error::Store`] when the image or a blob is missing locally; the endpoint errors.
    pub async fn push(
        &self,
        store: &Store,
        source: &Reference,
        target: &Reference,
        options: &PushOptions,
    ) -> Result<Pushed> {
        let repo = Repository::of(target)?;
        let mref = ManifestRef::of(target)?;
        let st = store.clone();
        let src = source.clone();
        let (_lease, top_desc, top_bytes) = blocking(move || {
            let lease = st.lease()?;
            let desc = st.resolve(&src)?;
            let d = Digest::from_oci(desc.digest())?;
            let bytes = st.read_blob(&d, MAX_MANIFEST_SIZE as u64)?;
            Ok((lease, desc, bytes))
        })
        .await?;
        let top_mt = top_desc.media_type().to_string();
        let top = Manifest::parse(&top_bytes, Some(&top_mt)).map_err(|e| Error::Store(e.into()))?;

        // (digest, bytes, media type) of each image manifest to push, and their blobs.
        let mut images: Vec<(Digest, Vec<u8>, String)> = Vec::new();
        match &top {
            Manifest::Image { .. } => images.push((Digest::sha256(&top_bytes), top_bytes.clone(), top_mt.clone())),
            Manifest::Index { index, .. } => {
                for child in index.manifests() {
                    let d = Digest::from_oci(child.digest()).map_err(|e| Error::Store(e.into()))?;
                    if store.has_blob(&d) {
                        let st = store.clone();
                        let dd = d.clone();
                        let bytes = blocking(move || st.read_blob(&dd, MAX_MANIFEST_SIZE as u64)).await?;
                        images.push((d, bytes, child.media_type().to_string()));
                    } else if self
                        .head_manifest(&repo, &ManifestRef::Digest(d.clone()))
                        .await?
                        .is_none()
                    {
                        return Err(Error::Store(wharf_image::Error::BlobNotFound(d)));
                    }
                }
            }
        }
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        for (_, bytes, mt) in &images {
            let m = Manifest::parse(bytes, Some(mt)).map_err(|e| Error::Store(e.into()))?;
            for d in m.descriptors() {
                if let Manifest::Image { manifest, .. } = &m
                    && manifest.subject().as_ref() == Some(d)
                {
                    continue;
                }
                let dg = Digest::from_oci(d.digest()).map_err(|e| Error::Store(e.into()))?;
                if !blobs.iter().any(|(b, _)| b == &dg) {
                    blobs.push((dg, d.size()));
                }
            }
        }

        let sem = Arc::new(Semaphore::new(self.inner.config.max_concurrent_uploads.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (digest, size) in blobs {
            if !store.has_blob(&digest) {
                return Err(Error::Store(wharf_image::Error::BlobNotFound(digest)));
            }
            let (client, repo, store, sem, progress, mount) = (
                self.clone(),
                repo.clone(),
                store.clone(),
                sem.clone(),
                options.progress.clone(),
                options.mount_from.clone(),
            );
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                progress.emit(ProgressEvent::Started {
                    digest: digest.clone(),
                    size,
                });
                let d = digest.clone();
                let source = BlobSource::File(Arc::new(move || {
                    store.open_blob(&d).map_err(|e| std::io::Error::other(e.to_string()))
                }));
                let r = client.push_blob(&repo, &digest, size, &source, mount.as_ref()).await;
                match &r {
                    Ok(Uploaded::Existed | Uploaded::Mounted) => progress.emit(ProgressEvent::Skipped {
                        digest: digest.clone(),
                        size,
                    }),
                    Ok(_) => progress.emit(ProgressEvent::Verified {
                        digest: digest.clone(),
                        size,
                    }),
                    Err(e) => progress.emit(ProgressEvent::Failed {
                        digest: digest.clone(),
                        reason: e.to_string(),
                    }),
                }
                r
            });
        }
        let (mut uploaded, mut mounted, mut existed) = (0, 0, 0);
        while let Some(joined) = tasks.join_next().await {
            let r = joined.map_err(|e| Error::Io {
                what: "a blob upload task".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            match r? {
                Uploaded::Existed => existed += 1,
                Uploaded::Mounted => mounted += 1,
                Uploaded::Monolithic | Uploaded::Chunked(_) => uploaded += 1,
            }
        }

        let top_digest = Digest::sha256(&top_bytes);
        for (d, bytes, mt) in &images {
            if *d != top_digest {
                self.put_manifest(&repo, &ManifestRef::Digest(d.clone()), bytes, mt)
                    .await?;
            }
        }
        let digest = self.put_manifest(&repo, &mref, &top_bytes, &top_mt).await?;
        Ok(Pushed {
            reference: target.clone(),
            digest,
            uploaded,
            mounted,
            existed,
        })
    }

    /// Deletes the manifest a tag or digest points to, returning what is needed to
    /// restore it with [`Client::restore`]: the manifest's exact bytes, media type and
    /// digest (the registry deletes by digest, which removes every tag pointing to it).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the registry has deletion disabled; a 404 as
    /// [`Error::Status`].
    pub async fn delete(&self, reference: &Reference) -> Result<crate::FetchedManifest> {
        let repo = Repository::of(reference)?;
        let saved = self.get_manifest(&repo, &ManifestRef::of(reference)?).await?;
        self.delete_manifest(&repo, &saved.digest).await?;
        Ok(saved)
    }

    /// Puts a manifest saved by [`Client::delete`] back under `reference` (a tag, or its
    /// digest). Returns its digest, which equals the saved one.
    ///
    /// # Errors
    /// The errors of [`Client::put_manifest`] (e.g. `MANIFEST_BLOB_UNKNOWN` when the
    /// registry garbage-collected its blobs meanwhile).
    pub async fn restore(&self, reference: &Reference, saved: &crate::FetchedManifest) -> Result<Digest> {
        let repo = Repository::of(reference)?;
        self.put_manifest(&repo, &ManifestRef::of(reference)?, &saved.bytes, &saved.media_type)
            .await
    }
}

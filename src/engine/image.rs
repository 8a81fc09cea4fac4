//! Images for containers: found in the store, or pulled under the [`PullPolicy`].

use wharf_image::store::Image;
use wharf_image::{Digest, Reference};
use wharf_registry::{Client, ClientConfig, PullOptions, Pulled};

use super::Engine;
use super::error::{Error, Result};
use super::settings::PullPolicy;

impl Engine {
    /// The image `r` names, for this engine's platform, from the store.
    ///
    /// # Errors
    /// [`wharf_image::Error::ImageNotFound`] (as [`Error::Image`]) when the store lacks it.
    pub fn image(&self, r: &Reference) -> Result<Image> {
        Ok(self.store().image(r, &self.options().platform)?)
    }

    /// Pulls `r` from its registry into the store (for this engine's platform), extracting each
    /// layer into the layer cache while it downloads ([`ExtractLayers`](super::ExtractLayers)): the
    /// first container of a fresh pull starts without reading the blobs again.
    ///
    /// Blocks: it runs a small tokio runtime of its own, so call it from a plain thread or
    /// `spawn_blocking`, not from inside an async task.
    ///
    /// # Errors
    /// [`Error::Registry`] naming the registry's answer; [`Error::Io`] if the runtime cannot start.
    pub fn pull(&self, r: &Reference) -> Result<Pulled> {
        let client = Client::new(ClientConfig {
            insecure_registries: self.options().insecure_registries.clone(),
            ..Default::default()
        })?;
        let options = PullOptions {
            platform: self.options().platform.clone(),
            layers: std::sync::Arc::new(super::ExtractLayers::new(self.layer_cache()?)),
            ..Default::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("start a runtime to pull", r.to_string()))?;
        Ok(runtime.block_on(client.pull(r, self.store(), &options))?)
    }

    /// The layer cache containers' layers are extracted into (and pulls with
    /// [`ExtractLayers`](super::ExtractLayers) fill).
    ///
    /// # Errors
    /// The layer cache's errors opening it.
    pub fn layer_cache(&self) -> Result<wharf_rootfs::LayerCache> {
        self.layout().layer_cache()
    }

    /// Removes the cached layers that no image in the store and no container needs; returns their diff_ids.
    /// (The store's own blobs are collected by [`Store::gc`](wharf_image::Store::gc).)
    ///
    /// # Errors
    /// The layer cache's errors.
    pub fn prune_layers(&self) -> Result<Vec<Digest>> {
        let layout = self.layout();
        let in_use = wharf_rootfs::Rootfs::layers_in_use(layout.rootfs_base())?;
        Ok(layout.layer_cache()?.prune_keeping(self.store(), &in_use)?)
    }

    /// The image for a new container under `policy`.
    pub(crate) fn image_under(&self, r: &Reference, policy: PullPolicy) -> Result<Image> {
        match (policy, self.image(r)) {
            (PullPolicy::Always, _) => {}
            (_, Ok(image)) => return Ok(image),
            (PullPolicy::Never, Err(Error::Image(wharf_image::Error::ImageNotFound(_)))) => {
                return Err(Error::ImageMissing(r.familiar()));
            }
            (PullPolicy::Missing, Err(Error::Image(wharf_image::Error::ImageNotFound(_)))) => {}
            (_, Err(e)) => return Err(e),
        }
        let pulled = self.pull(r)?;
        self.image(&r.with_digest(pulled.digest))
    }
}

//! Pulling straight into the layer cache: each layer is extracted while it downloads, so the
//! read that checks a pulled layer is the one that unpacks it, and a container starts from a
//! fresh pull without reading its blobs again.

use std::io::Read;

use wharf_registry::layers::{CheckLayers, Layer, LayerSink, Verdict};
use wharf_rootfs::{ApplyOptions, LayerCache};

/// A [`LayerSink`] that extracts each layer of a pull into a [`LayerCache`] while it
/// downloads (the cache publishes a layer only once its diff_id is verified).
///
/// A layer the cache already holds is checked as a plain pull checks it. A layer with a hard
/// link into a lower layer not extracted yet (layers arrive concurrently) is left to the
/// pull's own check and extracted later, in order, by the first container that needs it.
///
/// # Examples
/// ```no_run
/// use std::sync::Arc;
/// use wharf::engine::ExtractLayers;
/// use wharf::registry::PullOptions;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = wharf::rootfs::LayerCache::open("/var/lib/wharf/.wharf/layers")?;
/// let options = PullOptions { layers: Arc::new(ExtractLayers::new(cache)), ..PullOptions::default() };
/// # let _ = options; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ExtractLayers {
    cache: LayerCache,
    options: ApplyOptions,
}

impl ExtractLayers {
    /// Extracts into `cache` with the options containers' layers are extracted with.
    pub fn new(cache: LayerCache) -> ExtractLayers {
        ExtractLayers {
            cache,
            options: ApplyOptions::default(),
        }
    }
}

impl LayerSink for ExtractLayers {
    fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String> {
        match self.cache.ensure_from_reader(
            &layer.blob,
            layer.compression,
            &layer.diff_id,
            &mut *blob,
            &self.options,
        ) {
            Ok(Some(_)) => Ok(Verdict::Accepted),
            Ok(None) => VerifyLayers.consume(layer, blob),
            Err(wharf_rootfs::Error::LinkOutsideLayer { .. }) => Ok(Verdict::Unchecked),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A [`LayerSink`] that checks each layer with wharf-rootfs's reader
/// ([`wharf_rootfs::check_layer`]: extraction's decompression pipeline, with ISA-L inflate and the
/// diff_id's hashing on threads of their own) and writes nothing: a plain pull's check at
/// unpacking's speed. An uncompressed layer is only read (its diff_id is its blob digest).
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use wharf::engine::VerifyLayers;
/// use wharf::registry::PullOptions;
/// let options = PullOptions { layers: Arc::new(VerifyLayers), ..PullOptions::default() };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyLayers;

impl LayerSink for VerifyLayers {
    fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String> {
        if layer.compression == Some(wharf_image::media::Compression::None) {
            return CheckLayers.consume(layer, blob);
        }
        wharf_rootfs::check_layer(
            blob,
            layer.compression,
            &layer.diff_id,
            &wharf_rootfs::Limits::default(),
        )
        .map(|()| Verdict::Accepted)
        .map_err(|e| e.to_string())
    }
}

//! Pulling straight into the layer cache: each layer is extracted while it downloads, so the
//! read that checks a pulled layer is the one that unpacks it, and a container starts from a
//! fresh pull without reading its blobs again.

use std::io::Read;
use std::sync::{Arc, Mutex};

use wharf_registry::layers::{CheckLayers, Layer, LayerSink, Verdict};
use wharf_rootfs::{ApplyOptions, LayerCache};

/// A [`LayerSink`] that extracts each layer of a pull into a [`LayerCache`] while it
/// downloads (the cache publishes a layer only once its diff_id is verified).
///
/// A layer the cache already holds is checked as a plain pull checks it. A layer with a hard
/// link into a lower layer not extracted yet (layers arrive concurrently) is left to the
/// pull's own check and extracted later, in order, by the first container that needs it.
///
/// The layers of a pull are extracted concurrently (as many as the client downloads at once),
/// and the decompressed data they hold queued between their threads comes out of one memory
/// budget ([`ExtractLayers::with_memory`]; 24 MiB by default): a layer takes up to 12 MiB of
/// what is free when it starts, and at least 512 KiB, so a pull of any size stays within the
/// budget plus half a MiB per layer in flight.
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
    /// Bytes of the memory budget no layer holds.
    free: Arc<Mutex<usize>>,
}

/// The memory budget of [`ExtractLayers::new`].
const DEFAULT_MEMORY: usize = 24 << 20;

impl ExtractLayers {
    /// Extracts into `cache` with the options containers' layers are extracted with, within a
    /// 24 MiB budget for queued data.
    pub fn new(cache: LayerCache) -> ExtractLayers {
        ExtractLayers::with_memory(cache, DEFAULT_MEMORY)
    }

    /// Extracts into `cache`, with at most `bytes` of decompressed data queued across the
    /// layers in flight (plus at most 512 KiB per layer, which each gets whatever the budget).
    pub fn with_memory(cache: LayerCache, bytes: usize) -> ExtractLayers {
        ExtractLayers {
            cache,
            options: ApplyOptions::default(),
            free: Arc::new(Mutex::new(bytes)),
        }
    }

    /// Takes this layer's share of the budget; it returns when the share is dropped.
    fn share(&self) -> Share {
        let most = self.options.limits.max_queued_bytes;
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = (*free).min(most);
        *free -= bytes;
        Share {
            bytes,
            free: self.free.clone(),
        }
    }
}

/// A layer's part of an [`ExtractLayers`] budget.
struct Share {
    bytes: usize,
    free: Arc<Mutex<usize>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += self.bytes;
    }
}

impl LayerSink for ExtractLayers {
    fn consume(&self, layer: &Layer, blob: &mut (dyn Read + Send)) -> Result<Verdict, String> {
        let share = self.share();
        let mut options = self.options.clone();
        // Zero bytes left still queues one chunk: the layer always makes progress.
        options.limits.max_queued_bytes = share.bytes;
        match self
            .cache
            .ensure_from_reader(&layer.blob, layer.compression, &layer.diff_id, &mut *blob, &options)
        {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_flight_share_one_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(dir.path().join("layers")).unwrap();
        let sink = ExtractLayers::with_memory(cache, 13 << 20);
        let first = sink.share();
        let second = sink.share();
        let third = sink.share();
        // The first takes the most one layer may queue, the second what is left, the third
        // nothing (its extraction then queues a single chunk).
        assert_eq!((first.bytes, second.bytes, third.bytes), (12 << 20, 1 << 20, 0));
        drop(first);
        assert_eq!(sink.share().bytes, 12 << 20, "a finished layer's share went back");
        drop((second, third));
        assert_eq!(*sink.free.lock().unwrap(), 13 << 20, "every share went back");
    }
}

//! Looking ahead when flattening: what the layers above delete need not be written.
//!
//! A clean-up layer (`rm -rf /usr/share/doc /var/cache/apt/*.bin`) is common, and when an
//! image is flattened into one directory everything it deletes would otherwise be written
//! first and removed afterwards. [`Shadow`] holds the whiteouts, opaque directories and
//! hardlink targets of the layers above the one being applied; with it, the applier leaves
//! out an entry that one of those layers removes.
//!
//! Leaving an entry out is only done when it cannot change the result:
//! - its path is at or beneath a whiteout of a higher layer, or strictly beneath a directory
//!   a higher layer made opaque, and no higher layer has an entry at or beneath it (which
//!   could resolve through it, or keep a directory there with what it held); those remove
//!   whatever the path holds then, because
//! - every directory above the entry is a real directory when it is written (its parent is
//!   opened with `RESOLVE_NO_SYMLINKS`): with no symlink on the way, the entry lands at the
//!   place its name says, and any later change of an ancestor to something other than a
//!   directory deletes it as well;
//! - no layer above links to it (hardlink targets of every higher layer are kept), and a
//!   link within its own layer to a left-out file either is left out too or makes the
//!   applier stop with [`Error::ShadowedLinkTarget`], after which the layer is applied again
//!   without the shadow;
//! - a left-out directory or symlink that a later entry of the same layer is written
//!   beneath after all (a link target, or a path through the symlink) is created first,
//!   so that entry resolves as it would have.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::apply::{ApplyOptions, ImageBudget, OPAQUE_MARKER, WHITEOUT_PREFIX, join, normalize};
use crate::error::{Error, Result};
use crate::stream::{self, StreamLimits};
use wharf_tar::{EntryKind, ReaderLimits, TarReader};

/// What the upper layers of an image delete, read ahead of flattening the layers below
/// them ([`ApplyOptions::shadow`]). Layers are numbered from 0 (the bottom one).
#[derive(Debug, Clone)]
pub struct Shadow {
    layers: usize,
    read: Vec<bool>,
    /// A whited-out path and the highest layer whose whiteout names it.
    whiteouts: HashMap<Vec<u8>, usize>,
    /// A directory made opaque and the highest layer doing so (`""` is the root).
    opaques: HashMap<Vec<u8>, usize>,
    /// Hardlink targets of the layers read.
    link_targets: HashSet<Vec<u8>>,
    /// Entries of the layers read and their parent directories, with the highest layer
    /// having each.
    touched: HashMap<Vec<u8>, usize>,
}

impl Shadow {
    /// An empty shadow for an image of `layers` layers.
    pub fn new(layers: usize) -> Shadow {
        Shadow {
            layers,
            read: vec![false; layers],
            whiteouts: HashMap::new(),
            opaques: HashMap::new(),
            link_targets: HashSet::new(),
            touched: HashMap::new(),
        }
    }

    /// Reads layer `index` of the image (its blob, decompressed as `opts.compression` says or
    /// as sniffed, within `opts.limits`, its diff_id checked against `opts.diff_id`) and
    /// records its whiteouts, opaque directories and hardlink targets. Nothing is written.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an index beyond the image; the reading errors of
    /// [`apply_layer`](crate::apply_layer) (malformed tar, budgets, diff_id mismatch).
    pub fn add_layer<R: Read + Send>(&mut self, index: usize, blob: R, opts: &ApplyOptions) -> Result<()> {
        if index >= self.layers {
            return Err(Error::Invalid {
                what: "layer index",
                reason: format!("layer {index} of an image of {} layers", self.layers),
            });
        }
        let limits = StreamLimits {
            max_layer_bytes: opts.limits.max_layer_bytes,
            max_image_bytes: opts.limits.max_image_bytes,
            max_ratio: opts.limits.max_compression_ratio,
            // Bytes count against the image when the layer is applied, not when read ahead.
            image_used: ImageBudget::new().0,
            progress: crate::apply::Progress::default(),
            label: opts.diff_id.clone(),
            queue: crate::stream::chunks(opts.limits.max_queued_bytes),
        };
        let reader_limits = ReaderLimits {
            max_metadata: opts.limits.max_metadata_bytes,
            max_xattr_bytes: opts.limits.max_xattr_bytes,
        };
        let depth = opts.limits.max_path_depth;
        let mut found = Shadow::new(0);
        let ((), summary) = stream::run(blob, opts.compression, &limits, |chunks| {
            let mut tar = TarReader::new(chunks, reader_limits);
            while let Some(e) = tar.next_entry()? {
                let name = e.name();
                if e.kind == EntryKind::Hardlink
                    && let Some(t) = normalize(&name, &e.link, depth)?
                {
                    found.link_targets.insert(join(&t));
                }
                let Some(comps) = normalize(&name, &e.path, depth)? else {
                    continue;
                };
                for i in 1..=comps.len() {
                    found.touched.insert(join(&comps[..i]), index);
                }
                let (base, parent) = comps.split_last().map(|(b, p)| (*b, p)).unwrap_or((b"", &[]));
                if base == OPAQUE_MARKER.as_bytes() {
                    found.opaques.insert(join(parent), index);
                } else if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes())
                    // AUFS bookkeeping and malformed names delete nothing (applying fails on the latter).
                    && !target.is_empty()
                    && !target.starts_with(WHITEOUT_PREFIX.as_bytes())
                    && target != b"."
                    && target != b".."
                {
                    let mut t = parent.to_vec();
                    t.push(target);
                    found.whiteouts.insert(join(&t), index);
                }
            }
            Ok(())
        })?;
        crate::apply::check_diff_id(opts.diff_id.as_ref(), &summary.diff_id)?;
        for (k, i) in found.whiteouts {
            let e = self.whiteouts.entry(k).or_insert(i);
            *e = (*e).max(i);
        }
        for (k, i) in found.opaques {
            let e = self.opaques.entry(k).or_insert(i);
            *e = (*e).max(i);
        }
        self.link_targets.extend(found.link_targets);
        for (k, i) in found.touched {
            let e = self.touched.entry(k).or_insert(i);
            *e = (*e).max(i);
        }
        self.read[index] = true;
        Ok(())
    }

    /// Whether every layer above `layer` was read, so the shadow can be used for it.
    pub fn covers(&self, layer: usize) -> bool {
        layer < self.layers && self.read[layer + 1..].iter().all(|&r| r)
    }

    /// Whether a layer above `layer` deletes the path `key` (components joined by `/`).
    pub(crate) fn hides(&self, layer: usize, key: &[u8]) -> bool {
        if self.touched.get(key).is_some_and(|&i| i > layer) {
            // A layer above writes here or beneath (perhaps through a symlink of this one),
            // or keeps a directory here with what it held.
            return false;
        }
        let above = |m: Option<&usize>| m.is_some_and(|&i| i > layer);
        if above(self.opaques.get(&b""[..])) || above(self.whiteouts.get(key)) {
            return true;
        }
        key.iter().enumerate().filter(|&(_, &b)| b == b'/').any(|(i, _)| {
            let prefix = &key[..i];
            above(self.whiteouts.get(prefix)) || above(self.opaques.get(prefix))
        })
    }

    /// Whether a layer read links to `key`.
    pub(crate) fn is_link_target(&self, key: &[u8]) -> bool {
        self.link_targets.contains(key)
    }
}

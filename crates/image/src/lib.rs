//! The image model and the local image store of wharf.
//!
//! - [`Reference`]: what users write (`nginx`, `ghcr.io/o/r@sha256:…`), parsed and normalised.
//! - [`Digest`]: a validated content digest, with [`VerifyingReader`] / [`VerifyingWriter`]
//!   that check content while it streams.
//! - [`Manifest`]: OCI and Docker manifests and indexes in one model; [`Platform`] chooses
//!   the entry of an index as containerd does.
//! - [`ImageConfig`] and [`runtime_spec`]: the image config and its conversion into an OCI
//!   runtime spec.
//! - [`Store`]: a content-addressed store on disk in OCI image layout, safe to share
//!   between processes.
//! - [`archive`]: `docker save`/`docker load` archives and OCI layout import/export.
//! - [`validate`]: checks documents and layouts against the image-spec JSON schemas.
//!
//! oci-spec's types appear in this API, so the crate re-exports [`oci_spec`].
//!
//! # Example
//!
//! Import a directory as an image, find it by its short name, and look at what the store holds:
//!
//! ```
//! use wharf_image::{Platform, Reference, Store, import};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let rootfs = tmp.path().join("rootfs");
//! # std::fs::create_dir_all(rootfs.join("etc"))?;
//! # std::fs::write(rootfs.join("etc/release"), "hello\n")?;
//! let store = Store::open(tmp.path().join("store"))?;
//! let name: Reference = "example/hello".parse()?;
//! assert_eq!(name.to_string(), "docker.io/example/hello:latest");
//!
//! import::import_dir(&store, &rootfs, &name, &import::ImportOptions::default())?;
//! let image = store.image(&name, &Platform::host())?;
//! assert_eq!(image.config.diff_ids()?.len(), 1);
//!
//! for row in store.list()? {
//!     println!("{} {} {} bytes", row.reference.familiar(), row.id.as_ref().map_or("", |d| &d.hex()[..12]), row.size);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Design choices
//!
//! - Manifests and configs are kept as the exact bytes that were hashed; the parsed models
//!   are views. Re-serialising would change digests.
//! - Every write of content goes through a verifying writer into a temporary file and becomes
//!   visible by `rename` only after digest and size matched, so no reader ever sees a partial or
//!   wrong blob, and a failed pull, load or import leaves the store's names as they were.
//! - The store is a plain OCI image layout, so other tools (skopeo, umoci) can read it directly.

pub use oci_spec;

pub mod archive;
pub mod config;
pub mod digest;
pub mod error;
pub mod import;
pub mod layer;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;
pub mod runtime;
pub mod store;
pub mod user;
pub mod validate;

pub use config::ImageConfig;
pub use digest::{Algorithm, Digest, DigestError, Hasher, VerifyingReader, VerifyingWriter};
pub use error::Error;
pub use layer::{LAYER_MAX_PATH_DEPTH, LayerDigests, LayerWriter, check_layer};
pub use manifest::{Manifest, ManifestError};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
pub use runtime::{RuntimeError, RuntimeOverrides, runtime_spec};
pub use store::Store;

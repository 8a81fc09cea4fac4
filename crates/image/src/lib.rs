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

pub use oci_spec;

pub mod archive;
pub mod config;
pub mod digest;
pub mod error;
pub mod import;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;
pub mod runtime;
pub mod store;
pub mod validate;

pub use config::ImageConfig;
pub use digest::{Algorithm, Digest, DigestError, Hasher, VerifyingReader, VerifyingWriter};
pub use error::Error;
pub use manifest::{Manifest, ManifestError};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
pub use runtime::{RuntimeOverrides, runtime_spec};
// pub use store::Store;

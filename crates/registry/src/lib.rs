//! The OCI distribution protocol client of wharf: pull into and push from a
//! [`wharf_image::Store`], tags, catalog, delete and restore, referrers, and registry auth.
//!
//! - [`Client`] ([`ClientConfig`]): one per process; shares connections, credentials and
//!   bearer tokens among all requests. Retries with backoff (connection errors, 408, 429
//!   with `Retry-After`, 5xx), follows redirects itself so that `Authorization` never
//!   leaves the registry's origin, and re-authenticates once when a token lacks a scope.
//! - [`Repository`] and [`ManifestRef`]: what the endpoint methods address.
//! - [`auth`]: `WWW-Authenticate` challenges and [`Credentials`]; [`credentials`] reads
//!   Docker's `config.json`, credential helpers and `$REGISTRY_AUTH_FILE`.
//! - [`Client::pull`] / [`Client::push`]: between a registry and a [`wharf_image::Store`],
//!   blobs in parallel, each streamed through digest and size verification (never whole in
//!   memory), with [`ProgressEvent`]s to a [`Progress`] callback; interrupted downloads resume with `Range`.
//!   A pulled layer is also read as unpacking will while it arrives ([`wharf_image::check_layer`]) and
//!   matched with the config's diff_id: a pull that succeeds is an image `run` can unpack.
//! - [`Client::delete`] / [`Client::restore`]: delete a manifest and put it back.
//! - [`Error`]: one enum; registry JSON error bodies are decoded into [`RegistryErrors`].
//!
//! # Examples
//! ```no_run
//! use wharf_registry::{Client, ClientConfig, PullOptions, PushOptions, Reference, Store};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/wharf")?;
//! let client = Client::new(ClientConfig::default())?;
//! let image: Reference = "docker.io/library/busybox:latest".parse()?;
//! let pulled = client.pull(&image, &store, &PullOptions::default()).await?;
//! println!("{} -> {}", pulled.reference, pulled.manifest_digest);
//! let copy: Reference = "localhost:5000/busybox:mine".parse()?;
//! client.push(&store, &image, &copy, &PushOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # Why not oci-client
//! `oci-client` lacks DELETE, `Link` pagination, retries, docker credentials, re-auth on a
//! missing scope, resumable downloads and progress, and holds whole layers in memory. It is
//! kept as a dev-dependency to prove that the two interoperate.
//!
//! # Plain http
//! Only `localhost`, `127.0.0.0/8`, `[::1]` and registries listed in
//! [`ClientConfig::insecure_registries`] are reached over `http://`; a redirect or token
//! realm that would downgrade another registry to http is refused ([`Error::Insecure`]).

pub mod auth;
mod body;
mod client;
pub mod credentials;
mod endpoints;
pub mod error;
pub mod layers;
pub mod progress;
mod pull;
mod push;
mod upload;

pub use auth::Credentials;
pub use client::{Client, ClientConfig};
pub use endpoints::{FetchedManifest, MAX_PAGES, ManifestHead, ManifestRef, Page, Repository};
pub use error::{Error, RegistryError, RegistryErrors, Result};
pub use progress::{Progress, ProgressEvent};
pub use pull::{PullOptions, Pulled};
pub use push::{PushOptions, Pushed};
pub use reqwest::{StatusCode, Url};
pub use upload::{BlobSource, Uploaded};

/// The image model this API speaks in: re-exported so that users need not depend on a
/// matching wharf-image version themselves.
pub use wharf_image;
pub use wharf_image::{Digest, Manifest, Platform, Reference, Store};

//! OCI distribution client: references, auth, manifest negotiation, pull and push.
//!
//! - [`Reference`]: docker-style image references (`busybox` → `docker.io/library/busybox:latest`).
//! - [`Client`]: the distribution API client ([`ClientOptions`]: insecure registries, retries,
//!   parallelism, upload chunking; credentials from docker's `config.json` via [`AuthConfig`]).
//!   Make one per command with `Client::new(ClientOptions::load(store_root)?)` (plus any
//!   `--insecure-registry` hosts in [`ClientOptions::insecure_registries`]) and share it.
//! - [`pull`] / [`resolve`]: registry → [`cache::Store`] (index → [`Platform`] manifest →
//!   verified config and layers → tagged image).
//! - [`push`] / [`push_manifest`]: store → registry (HEAD to skip, cross-repository mount,
//!   monolithic or chunked uploads).
//! - [`Progress`] receives typed [`Event`]s; the library never prints.
//!
//! # Entry points for the builder
//!
//! **`FROM` (build runner):** [`resolve_image`] turns a reference into a single-platform image
//! in the store — manifest descriptor (its digest pins the base) and the validated manifest and
//! image config — pulling it when the store lacks it ([`PullPolicy::Missing`], docker's default)
//! or always ([`PullPolicy::Always`], `--pull`); `FROM --platform` goes in
//! [`PullOptions::platform`]:
//!
//! ```ignore
//! let reference = registry::Reference::parse("busybox:1.36")?;
//! let base = registry::resolve_image(&client, &store, &reference, &registry::PullOptions::default(),
//!     registry::PullPolicy::Missing, &progress).await?;
//! let digest = base.manifest.digest();          // pin in the cache key
//! let config = &base.image.config;              // Env, Cmd, WorkingDir, User, rootfs diff IDs
//! let layers = base.image.layers()?;            // for store.snapshots().ensure_unpacked(…)
//! ```
//!
//! **`--push` / `--output type=image,push=true` (exporter):** [`push_manifest`] uploads the
//! manifest or index already in the store under `destination` (its tag, or by digest), with its
//! config and layers; the result's `manifest.digest()` is what the registry stores:
//!
//! ```ignore
//! let pushed = registry::push_manifest(&client, &store, &manifest_descriptor, &reference, &progress).await?;
//! ```
//!
//! A blob of the manifest that the store lacks (a layer of a build cache matched but never
//! needed) is not an error when the destination has it or can mount it from a repository of the
//! same registry it is known to be in ([`record_blob_sources`]).
//!
//! Both errors name the image and the cause (render the [`std::error::Error::source`] chain).
// Libraries never print: they return values, typed errors and events for the CLI to render.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod auth;
mod blob;
mod client;
mod documents;
mod error;
mod manifest;
mod options;
mod platform;
mod progress;
mod pull;
mod push;
mod reference;
mod repair;
mod resolve;
mod sources;

pub use auth::{AuthConfig, Credentials, Removal};
pub use client::Client;
pub use documents::{FetchedManifest, fetch_blob, fetch_image_manifest, record_blob_sources};
pub use error::{Error, Result};
pub use options::{ClientOptions, REGISTRIES_FILE, read_insecure_registries};
pub use platform::Platform;
pub use progress::{BlobKind, Event, Progress, Skipped, short_digest};
pub use pull::{PullOptions, Pulled, pull, resolve};
pub use push::{Pushed, push, push_manifest};
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError, ReferenceErrorKind};
pub use repair::{Refetched, refetch};
pub use resolve::{PullPolicy, ResolvedImage, resolve_image};

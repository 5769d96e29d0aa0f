//! OCI distribution client: references, auth, manifest negotiation, pull and push.
//!
//! - [`Reference`]: docker-style image references (`busybox` → `docker.io/library/busybox:latest`).
//! - [`Client`]: the distribution API client ([`ClientOptions`]: insecure registries, retries,
//!   parallelism, upload chunking; credentials from docker-format files via [`AuthConfig`]).
//! - [`pull`] / [`resolve`]: registry → [`cache::Store`] (index → [`Platform`] manifest →
//!   verified config and layers → tagged image).
//! - [`push`] / [`push_manifest`]: store → registry (HEAD to skip, cross-repository mount,
//!   monolithic or chunked uploads).
//! - [`Progress`] receives typed [`Event`]s; the library never prints.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
mod blob;
mod client;
mod error;
mod manifest;
mod options;
mod platform;
mod progress;
mod pull;
mod push;
mod reference;
mod sources;

pub use auth::{AuthConfig, Credentials, Removal};
pub use client::Client;
pub use error::{Error, Result};
pub use options::{ClientOptions, REGISTRIES_FILE, read_insecure_registries};
pub use platform::Platform;
pub use progress::{BlobKind, Event, Progress, Skipped, short_digest};
pub use pull::{PullOptions, Pulled, pull, resolve};
pub use push::{Pushed, push, push_manifest};
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError, ReferenceErrorKind};

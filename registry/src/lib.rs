//! OCI distribution client: references, auth, manifest negotiation, pull and push.
//!
//! - [`Reference`]: docker-style image references (`busybox` → `docker.io/library/busybox:latest`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod reference;

pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError, ReferenceErrorKind};

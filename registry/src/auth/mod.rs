//! Registry authentication: credentials from docker-format config files ([`AuthConfig`]),
//! `WWW-Authenticate` challenges, and the bearer tokens fetched for them.

pub(crate) mod challenge;
mod credentials;
pub(crate) mod token;

pub use credentials::{AuthConfig, Credentials, Removal};

//! Client options and the registries config file.
//!
//! `<root>/registries.toml` (or the file in `$KILN_REGISTRIES_CONFIG`) uses the shape of
//! podman's `registries.conf` for the one setting kiln reads from it:
//!
//! ```toml
//! [[registry]]
//! location = "registry.internal:5000"   # host or host:port
//! insecure = true                        # plain HTTP, or HTTPS without certificate checks
//! ```
//!
//! Hosts marked insecure there or given with `--insecure-registry` are tried over HTTPS without
//! certificate verification first, then over plain HTTP. `localhost`, `127.0.0.0/8` and `::1`
//! are always treated so, like docker does. Every other registry is HTTPS with verification.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::error::{Error, Result};

/// Name of the registries config file under the store root.
pub const REGISTRIES_FILE: &str = "registries.toml";

/// How a [`crate::Client`] behaves. [`ClientOptions::default`] has docker-like settings and
/// credentials from the environment's default files.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host` or `host:port`) allowed over plain HTTP / unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from.
    pub auth: AuthConfig,
    /// Attempts per request for transient failures (5xx, 429, dropped connections); at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time, capped at 8 s.
    pub initial_backoff: Duration,
    /// Blobs downloaded at once.
    pub max_concurrent_downloads: usize,
    /// Blobs uploaded at once.
    pub max_concurrent_uploads: usize,
    /// Blobs up to this size are uploaded with a single PUT; larger ones in chunks.
    pub monolithic_upload_limit: u64,
    /// Size of one PATCH of a chunked upload (raised to the registry's `OCI-Chunk-Min-Length`).
    pub chunk_size: u64,
    /// Connect timeout per connection.
    pub connect_timeout: Duration,
    /// Idle read timeout: a transfer that stalls this long is retried.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            auth: AuthConfig::from_env(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            monolithic_upload_limit: 1 << 40,
            chunk_size: 64 << 20,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl ClientOptions {
    /// Defaults plus the insecure registries listed in the registries config of the store at
    /// `root` (see the module docs).
    pub fn load(root: &Path) -> Result<Self> {
        let mut options = Self::default();
        let path = match std::env::var_os("KILN_REGISTRIES_CONFIG") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => root.join(REGISTRIES_FILE),
        };
        options.insecure_registries.extend(read_insecure_registries(&path)?);
        Ok(options)
    }

    /// True if `registry` may be reached over plain HTTP or unverified TLS.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = host_of(registry);
        is_loopback(host) || self.insecure_registries.iter().any(|r| r == registry || r == host)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistriesFile {
    #[serde(default)]
    registry: Vec<RegistryEntry>,
}

#[derive(Debug, Deserialize)]
struct RegistryEntry {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// Reads the insecure registries of a registries config; a missing file means none.
pub fn read_insecure_registries(path: &Path) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("read", path, err)),
    };
    let file: RegistriesFile = toml::from_str(&text)
        .map_err(|err| Error::Config { path: path.to_owned(), problem: err.to_string() })?;
    Ok(file.registry.into_iter().filter(|r| r.insecure).map(|r| r.location).collect())
}

/// `host:port` → `host`; `[::1]:5000` → `::1`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_hosts_are_insecure() {
        let options = ClientOptions {
            insecure_registries: vec!["reg.internal:5000".into(), "other.internal".into()],
            ..ClientOptions::default()
        };
        for (registry, insecure) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.8.9.10", true),
            ("[::1]:5000", true),
            ("[::2]:5000", false),
            ("reg.internal:5000", true),
            ("reg.internal:5001", false),
            ("other.internal:443", true),
            ("docker.io", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(options.is_insecure(registry), insecure, "{registry}");
        }
    }

    #[test]
    fn reads_registries_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REGISTRIES_FILE);
        assert!(read_insecure_registries(&path).unwrap().is_empty());
        std::fs::write(
            &path,
            "[[registry]]\nlocation = \"a.internal:5000\"\ninsecure = true\n\n[[registry]]\nlocation = \"b.io\"\n",
        )
        .unwrap();
        assert_eq!(read_insecure_registries(&path).unwrap(), vec!["a.internal:5000".to_owned()]);
        std::fs::write(&path, "[[registry]]\ninsecure = true\n").unwrap();
        let err = read_insecure_registries(&path).unwrap_err().to_string();
        assert!(err.contains("registries.toml") && err.contains("location"), "{err}");
    }
}

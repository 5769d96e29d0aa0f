//! Build caches shared through a registry or a directory: `kiln build --cache-to` /
//! `--cache-from` (buildx syntax, [`spec`]).
//!
//! - [`format`]: the cache config document (cache key → layer chain, links between keys,
//!   versioned).
//! - [`export`]: a build's records ([`records_to_export`] picks them by [`spec::ExportMode`])
//!   written as a cache manifest to a registry (`type=registry`) or an OCI layout
//!   (`type=local`).
//! - [`import`]: [`RemoteCache`], the records of every `--cache-from`, consulted by
//!   [`crate::storecache::StoreCache`] after the store's own index misses. Import is lazy: the
//!   runner fetches a layer blob only when a step that runs, or the final image, needs it.

pub mod export;
pub mod format;
pub mod import;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cache::buildcache::CacheResult;
use oci_spec::image::Digest;

use crate::cachekey::{self, CacheKey, InputUse};
use crate::graph::Definition;
pub use format::{CacheConfig, ConfigBuilder};
pub use import::RemoteCache;
pub use spec::{CacheExport, CacheImport, CacheLocation, ExportMode};

/// Errors of cache import and export.
#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    #[error("cannot import the cache {location}")]
    Import {
        location: String,
        #[source]
        source: Box<RemoteCacheError>,
    },
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Store(#[from] cache::Error),
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the cache config")]
    Json(#[source] serde_json::Error),
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    #[error("not a kiln build cache (config media type {media_type:?})")]
    NotACache { media_type: String },
    #[error(
        "the cache was written with cache-key schema {found}; this kiln uses {}",
        cachekey::CACHE_KEY_SCHEMA
    )]
    KeySchema { found: u32 },
    #[error("{0}")]
    NotFound(String),
    #[error("invalid cache: {0}")]
    Invalid(String),
    #[error("blob {0} is in no imported cache")]
    BlobUnknown(Digest),
    #[error("no registry client is configured")]
    NoRegistryClient,
}

impl RemoteCacheError {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> RemoteCacheError {
        RemoteCacheError::Io { op, path: path.as_ref().to_owned(), source }
    }

    /// The cache does not exist (yet): the first build of a CI pipeline.
    pub fn is_not_found(&self) -> bool {
        match self {
            RemoteCacheError::NotFound(_) => true,
            RemoteCacheError::Registry(err) => {
                let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
                while let Some(err) = current {
                    if let Some(registry::Error::ManifestNotFound { .. }) =
                        err.downcast_ref::<registry::Error>()
                    {
                        return true;
                    }
                    current = err.source();
                }
                false
            }
            RemoteCacheError::Import { source, .. } => source.is_not_found(),
            _ => false,
        }
    }

    /// The message and its causes, `a: b: c`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let part = cause.to_string();
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = cause.source();
        }
        text
    }
}

/// One solved vertex, as the export sees it.
#[derive(Debug, Clone)]
pub struct SolvedVertex {
    pub key: CacheKey,
    /// `None` when the results cannot be cached (a local directory).
    pub results: Option<Vec<CacheResult>>,
}

/// The records of a build to export, inputs first: with [`ExportMode::Max`] every solved
/// vertex; with [`ExportMode::Min`] the target and the vertices whose whole filesystem it
/// builds on (its stage's steps and base), not the stages it only copies from.
pub fn records_to_export(
    definition: &Definition,
    solved: &HashMap<Digest, SolvedVertex>,
    mode: ExportMode,
) -> ConfigBuilder {
    let wanted: HashSet<&Digest> = match mode {
        ExportMode::Max => solved.keys().collect(),
        ExportMode::Min => {
            let index = definition.index();
            let mut wanted = HashSet::new();
            let mut stack: Vec<&Digest> = definition.targets.iter().map(|t| &t.digest).collect();
            while let Some(digest) = stack.pop() {
                if !wanted.insert(digest) {
                    continue;
                }
                let Some(vertex) = index.get(digest).and_then(|i| definition.vertices.get(*i)) else {
                    continue;
                };
                let uses = cachekey::input_uses(&vertex.op, vertex.inputs.len());
                for (input, usage) in vertex.inputs.iter().zip(uses) {
                    if usage == InputUse::Whole {
                        stack.push(&input.digest);
                    }
                }
            }
            wanted
        }
    };
    let mut builder = ConfigBuilder::new();
    for vertex in &definition.vertices {
        if !wanted.contains(&vertex.digest) {
            continue;
        }
        let Some(SolvedVertex { key, results: Some(results) }) = solved.get(&vertex.digest) else { continue };
        let inputs: Vec<Digest> =
            vertex.inputs.iter().filter_map(|i| solved.get(&i.digest)).map(|s| s.key.0.clone()).collect();
        builder.add_record(&key.0, results, &inputs, vertex.metadata.description.clone());
    }
    builder
}

#[cfg(test)]
mod tests;

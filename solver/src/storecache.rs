//! [`ResultCache`] over the store's build-cache index ([`cache::buildcache::BuildCache`]), and
//! what the store and the exporter need from a runner's results ([`StoreRef`], [`LayerChain`]).

use std::sync::Arc;

use cache::buildcache::{BuildCache, CacheRecord, CacheResult, CachedLayer};

use crate::cachekey::CacheKey;
use crate::graph::Vertex;
use crate::remotecache::RemoteCache;
use crate::scheduler::{KeyGuard, ResultCache, RunError};

/// A runner result that can be recorded in (and restored from) the build-cache index.
pub trait StoreRef: Clone + Send + Sync + 'static {
    /// The record of this result; `None` when it cannot be cached (e.g. a live local context).
    fn to_cache(&self) -> Option<CacheResult>;
    /// Restores a result; `None` when the record is not usable by this runner.
    fn from_cache(result: &CacheResult) -> Option<Self>;
}

impl StoreRef for CacheResult {
    fn to_cache(&self) -> Option<CacheResult> {
        Some(self.clone())
    }
    fn from_cache(result: &CacheResult) -> Option<Self> {
        Some(result.clone())
    }
}

/// A runner result that is (or is not) a filesystem: what the exporter needs from it.
pub trait LayerChain {
    /// The layers, bottom first; `None` when the result is not a filesystem.
    fn layers(&self) -> Option<&[CachedLayer]>;
}

impl LayerChain for CacheResult {
    fn layers(&self) -> Option<&[CachedLayer]> {
        match self {
            CacheResult::Layers { layers } => Some(layers),
            CacheResult::Blob { .. } => None,
        }
    }
}

/// The build cache of a store as a [`ResultCache`]; safe for concurrent builds on one root.
#[derive(Debug, Clone)]
pub struct StoreCache {
    index: BuildCache,
    /// `--cache-from`: looked up when the index misses.
    remote: Option<Arc<RemoteCache>>,
}

impl StoreCache {
    pub fn new(index: BuildCache) -> StoreCache {
        StoreCache { index, remote: None }
    }

    /// Also finds results in imported caches (after the store's own index).
    pub fn with_remote(mut self, remote: Option<Arc<RemoteCache>>) -> StoreCache {
        self.remote = remote;
        self
    }

    pub fn index(&self) -> &BuildCache {
        &self.index
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cache::Error> + Send + 'static,
) -> Result<T, RunError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(RunError::failed),
        Err(join) => Err(RunError::failed(join)),
    }
}

impl<R: StoreRef> ResultCache<R> for StoreCache {
    async fn load(&self, key: &CacheKey, _vertex: &Vertex) -> Result<Option<Vec<R>>, RunError> {
        let index = self.index.clone();
        let digest = key.0.clone();
        let found = blocking(move || {
            let record = index.get(&digest)?;
            if record.is_some() {
                // least-recently-used pruning reads the record's mtime
                index.touch(&digest)?;
            }
            Ok::<_, cache::Error>(record)
        });
        let Some(record) = found.await? else {
            // The blobs of a remote record are fetched lazily, when a consumer needs them;
            // layers whose plain tar the store holds are used from here.
            let store = self.index.store();
            let remote = self.remote.as_ref().and_then(|remote| remote.lookup_local(&key.0, store));
            return Ok(remote.and_then(|results| results.iter().map(R::from_cache).collect()));
        };
        Ok(record.results.iter().map(R::from_cache).collect())
    }

    async fn save(&self, key: &CacheKey, vertex: &Vertex, results: &[R]) -> Result<(), RunError> {
        let Some(results) = results.iter().map(R::to_cache).collect::<Option<Vec<_>>>() else {
            return Ok(());
        };
        let record = CacheRecord::new(key.0.clone(), results, vertex.metadata.description.clone());
        let index = self.index.clone();
        blocking(move || index.put(&record)).await
    }

    async fn lock(&self, key: &CacheKey) -> Result<Option<KeyGuard>, RunError> {
        let index = self.index.clone();
        let digest = key.0.clone();
        let lock = blocking(move || index.lock_key(&digest)).await?;
        Ok(Some(Box::new(lock)))
    }
}

//! `--cache-from`: cache manifests read into a [`RemoteCache`], whose records answer cache-key
//! lookups after the store's own index missed. Import is lazy: only the manifest and its
//! config are read up front; a layer blob is fetched ([`RemoteCache::ensure_blob`]) when a
//! step that runs needs it as input, or for the final image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cache::Store;
use cache::buildcache::CacheResult;
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};

use super::RemoteCacheError;
use super::format::{CONFIG_MEDIA_TYPE, CacheConfig};
use super::spec::{CacheImport, CacheLocation};

/// Where the blobs of one imported cache come from.
#[derive(Debug, Clone)]
enum BlobSource {
    Registry { client: registry::Client, reference: registry::Reference },
    Local { dir: PathBuf },
}

/// Counts of what the imports fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    pub blobs: u64,
    pub bytes: u64,
}

/// The records of every `--cache-from`, and where their blobs are.
#[derive(Debug, Default)]
pub struct RemoteCache {
    records: HashMap<Digest, Vec<CacheResult>>,
    checksums: HashMap<(Digest, String), Digest>,
    /// Blob digest → (source index, descriptor).
    blobs: HashMap<Digest, (usize, Descriptor)>,
    sources: Vec<BlobSource>,
    /// One fetch per blob at a time.
    fetching: std::sync::Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    fetched_blobs: AtomicU64,
    fetched_bytes: AtomicU64,
    /// Blobs that could not be fetched intact: records using them no longer match.
    refused: std::sync::Mutex<std::collections::HashSet<Digest>>,
    /// Cache mounts the imports carry (the first import naming an id wins).
    mounts: Vec<super::format::ConfigMount>,
}

/// The OCI layout file of a local cache directory.
pub(crate) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm().as_ref()).join(digest.digest())
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, RemoteCacheError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| RemoteCacheError::io("open", path, source))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RemoteCacheError::io("read", path, source))?;
    if bytes.len() as u64 > limit {
        return Err(RemoteCacheError::Invalid(format!("{} is larger than {limit} bytes", path.display())));
    }
    Ok(bytes)
}

/// Reads a blob of a local layout, checking its digest.
fn read_local_blob(dir: &Path, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>, RemoteCacheError> {
    let bytes = read_limited(&blob_path(dir, descriptor.digest()), limit)?;
    let actual = cache::sha256_digest(&bytes);
    if &actual != descriptor.digest() {
        return Err(RemoteCacheError::DigestMismatch {
            what: blob_path(dir, descriptor.digest()).display().to_string(),
            expected: descriptor.digest().clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Largest manifest or cache config read.
const MAX_DOCUMENT: u64 = 64 << 20;

impl RemoteCache {
    /// Reads every import. A missing cache (the first CI run) is a warning; any other failure
    /// is an error unless the import says `ignore-error=true`. Returns the warnings.
    pub async fn load(
        imports: &[CacheImport],
        client: Option<&registry::Client>,
        store: &Store,
    ) -> Result<(RemoteCache, Vec<String>), RemoteCacheError> {
        let mut cache = RemoteCache::default();
        let mut warnings = Vec::new();
        for import in imports {
            match cache.load_one(&import.location, client, store).await {
                Ok(()) => {}
                Err(err) if err.is_not_found() || import.ignore_error => {
                    warnings.push(format!("cache import from {} skipped: {}", import.location, err.chain()));
                }
                Err(err) => {
                    return Err(RemoteCacheError::Import {
                        location: import.location.to_string(),
                        source: Box::new(err),
                    });
                }
            }
        }
        Ok((cache, warnings))
    }

    async fn load_one(
        &mut self,
        location: &CacheLocation,
        client: Option<&registry::Client>,
        store: &Store,
    ) -> Result<(), RemoteCacheError> {
        let (source, manifest, config_bytes) = match location {
            CacheLocation::Registry(reference) => {
                let client = client.ok_or(RemoteCacheError::NoRegistryClient)?;
                let fetched = registry::fetch_image_manifest(client, reference).await?;
                let manifest = fetched.manifest;
                let inline = cache::is_config_media_type(manifest.config().media_type());
                if !inline {
                    check_config_type(&manifest)?;
                }
                if manifest.config().size() > MAX_DOCUMENT {
                    return Err(RemoteCacheError::Invalid("cache config too large".into()));
                }
                // through the verifying blob download into the store (a small blob, left to GC)
                if !store.content().contains(manifest.config().digest()) {
                    registry::fetch_blob(
                        client,
                        reference,
                        manifest.config(),
                        store,
                        &registry::Progress::none(),
                    )
                    .await?;
                }
                let mut bytes = store.content().read(manifest.config().digest())?;
                if inline {
                    bytes = inline_config(&bytes)?;
                }
                (
                    BlobSource::Registry { client: client.clone(), reference: reference.clone() },
                    manifest,
                    bytes,
                )
            }
            CacheLocation::Inline => {
                return Err(RemoteCacheError::Invalid(
                    "import an inline cache with type=registry,ref=IMAGE".into(),
                ));
            }
            CacheLocation::Local { dir, tag, digest } => {
                let dir = dir.clone();
                let (tag, digest) = (tag.clone(), digest.clone());
                tokio::task::spawn_blocking(move || read_layout(&dir, &tag, digest.as_ref()))
                    .await
                    .map_err(|err| RemoteCacheError::Invalid(format!("import task failed: {err}")))??
            }
        };
        let config = CacheConfig::parse(&config_bytes)?;
        if config.cache_key_schema != crate::cachekey::CACHE_KEY_SCHEMA {
            return Err(RemoteCacheError::KeySchema { found: config.cache_key_schema });
        }
        if let (CacheLocation::Registry(reference), Some(client)) = (location, client) {
            // a later push to another repository of this registry mounts these blobs
            let digests: Vec<&Digest> = manifest.layers().iter().map(|l| l.digest()).collect();
            if let Err(err) = registry::record_blob_sources(client, store, reference, digests).await {
                tracing::debug!(error = %err, "cannot record where the cache's blobs are");
            }
        }
        let listed: std::collections::HashSet<&Digest> =
            manifest.layers().iter().map(|l| l.digest()).collect();
        let source_index = self.sources.len();
        self.sources.push(source);
        for blob in config.blobs() {
            if !listed.contains(blob.digest()) {
                return Err(RemoteCacheError::Invalid(format!(
                    "layer {} is not in the cache manifest",
                    blob.digest()
                )));
            }
            self.blobs.entry(blob.digest().clone()).or_insert((source_index, blob));
        }
        for (key, results) in config.results() {
            self.records.entry(key).or_insert(results);
        }
        for checksum in config.checksums {
            self.checksums.entry((checksum.chain, checksum.selection)).or_insert(checksum.digest);
        }
        for mount in config.mounts {
            if !self.mounts.iter().any(|known| known.id == mount.id) {
                self.mounts.push(mount);
            }
        }
        Ok(())
    }

    /// Fills the cache mounts named in `ids` that the store lacks from the imports that carry
    /// them (fetching their layers now); returns the ids restored. A mount that cannot be
    /// fetched or applied is a warning: the build runs with an empty one.
    pub async fn restore_mounts(&self, store: &Store, ids: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut restored, mut warnings) = (Vec::new(), Vec::new());
        let Ok(index) = cache::buildcache::BuildCache::open(store) else { return (restored, warnings) };
        let mounts = index.mounts();
        for mount in self.mounts.iter().filter(|m| ids.contains(&m.id)) {
            if mounts.list().is_ok_and(|have| have.contains(&mount.id)) {
                continue;
            }
            if let Err(err) = self.ensure_blob(store, &mount.blob).await {
                warnings.push(format!("cache mount {:?} not restored: {}", mount.id, err.chain()));
                continue;
            }
            let (mounts, id, digest) = (mounts.clone(), mount.id.clone(), mount.blob.digest().clone());
            match tokio::task::spawn_blocking(move || mounts.import_layer(&id, &digest)).await {
                Ok(Ok(true)) => restored.push(mount.id.clone()),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => warnings.push(format!("cache mount {:?} not restored: {err}", mount.id)),
                Err(err) => warnings.push(format!("cache mount {:?} not restored: {err}", mount.id)),
            }
        }
        (restored, warnings)
    }

    /// The results recorded for `key`, if any import has it and none of its blobs was
    /// refused.
    pub fn lookup(&self, key: &Digest) -> Option<&Vec<CacheResult>> {
        let results = self.records.get(key)?;
        let refused = self.refused.lock().ok()?;
        let uses_refused = results.iter().any(|result| match result {
            CacheResult::Layers { layers } => layers.iter().any(|l| refused.contains(l.blob.digest())),
            CacheResult::Blob { descriptor } => refused.contains(descriptor.digest()),
        });
        (!uses_refused).then_some(results)
    }

    /// [`RemoteCache::lookup`], with every layer whose blob `store` lacks but whose plain tar
    /// (the blob named by its diffID) it holds mapped back to that local layer: an exported
    /// cache names gzip blobs, while this store keeps the layers it built uncompressed, and
    /// needs to fetch nothing for them.
    pub fn lookup_local(&self, key: &Digest, store: &Store) -> Option<Vec<CacheResult>> {
        let mut results = self.lookup(key)?.clone();
        for result in &mut results {
            if let CacheResult::Layers { layers } = result {
                for layer in layers {
                    if let Some(local) = store.local_layer(&layer.blob, &layer.diff_id) {
                        layer.blob = local;
                    }
                }
            }
        }
        Some(results)
    }

    /// The blobs refused so far (corrupt or unavailable), sorted.
    pub fn refused(&self) -> Vec<Digest> {
        let mut refused: Vec<Digest> =
            self.refused.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default();
        refused.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        refused
    }

    /// The registry (host) a blob would be fetched from, when it comes from a registry.
    pub fn blob_registry(&self, digest: &Digest) -> Option<&str> {
        let (source, _) = self.blobs.get(digest)?;
        match self.sources.get(*source)? {
            BlobSource::Registry { reference, .. } => Some(reference.registry()),
            BlobSource::Local { .. } => None,
        }
    }

    /// A content checksum an import recorded for `selection` (canonical JSON) in the chain
    /// `chain_id`.
    pub fn checksum(&self, chain_id: &Digest, selection: &str) -> Option<Digest> {
        self.checksums.get(&(chain_id.clone(), selection.to_owned())).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// What was fetched so far.
    pub fn stats(&self) -> FetchStats {
        FetchStats {
            blobs: self.fetched_blobs.load(Ordering::Relaxed),
            bytes: self.fetched_bytes.load(Ordering::Relaxed),
        }
    }

    /// Makes `descriptor`'s blob present in the store, fetching it from the import that lists
    /// it when missing. The bytes are verified against the digest; a mismatch stores nothing.
    pub async fn ensure_blob(&self, store: &Store, descriptor: &Descriptor) -> Result<(), RemoteCacheError> {
        let content = store.content();
        if content.contains(descriptor.digest()) {
            return Ok(());
        }
        let Some((source, listed)) = self.blobs.get(descriptor.digest()) else {
            return Err(RemoteCacheError::BlobUnknown(descriptor.digest().clone()));
        };
        let lock = {
            let mut fetching =
                self.fetching.lock().map_err(|_| RemoteCacheError::Invalid("lock poisoned".into()))?;
            fetching.entry(descriptor.digest().clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        if content.contains(descriptor.digest()) {
            return Ok(());
        }
        let fetched = self.fetch(*source, listed, store).await;
        if let Err(err) = fetched {
            // never offered again: the steps that produced it run instead (see `lookup`)
            if let Ok(mut refused) = self.refused.lock() {
                refused.insert(descriptor.digest().clone());
            }
            return Err(err);
        }
        self.fetched_blobs.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes.fetch_add(listed.size(), Ordering::Relaxed);
        Ok(())
    }

    async fn fetch(&self, source: usize, listed: &Descriptor, store: &Store) -> Result<(), RemoteCacheError> {
        let content = store.content();
        match &self.sources[source] {
            BlobSource::Registry { client, reference } => {
                registry::fetch_blob(client, reference, listed, store, &registry::Progress::none()).await?;
            }
            BlobSource::Local { dir } => {
                let (path, listed) = (blob_path(dir, listed.digest()), listed.clone());
                tokio::task::spawn_blocking(move || -> Result<(), RemoteCacheError> {
                    let mut file = std::fs::File::open(&path)
                        .map_err(|source| RemoteCacheError::io("open", &path, source))?;
                    content.write_from(&mut file, listed.digest(), Some(listed.size()))?;
                    Ok(())
                })
                .await
                .map_err(|err| RemoteCacheError::Invalid(format!("fetch task failed: {err}")))??;
            }
        }
        Ok(())
    }
}

/// The cache config inside an image config (`--cache-to type=inline`).
fn inline_config(image_config: &[u8]) -> Result<Vec<u8>, RemoteCacheError> {
    let value: serde_json::Value = serde_json::from_slice(image_config)
        .map_err(|err| RemoteCacheError::Invalid(format!("image config: {err}")))?;
    match value.get(super::format::INLINE_FIELD) {
        Some(config) => serde_json::to_vec(config).map_err(RemoteCacheError::Json),
        None => Err(RemoteCacheError::NotACache { media_type: "an image without an inline cache".into() }),
    }
}

fn check_config_type(manifest: &ImageManifest) -> Result<(), RemoteCacheError> {
    let media_type = manifest.config().media_type().to_string();
    if media_type != CONFIG_MEDIA_TYPE {
        return Err(RemoteCacheError::NotACache { media_type });
    }
    Ok(())
}

/// Reads the manifest named `tag` (or `digest`) and its config from an OCI layout.
fn read_layout(
    dir: &Path,
    tag: &str,
    digest: Option<&Digest>,
) -> Result<(BlobSource, ImageManifest, Vec<u8>), RemoteCacheError> {
    let index_path = dir.join("index.json");
    if !index_path.exists() {
        return Err(RemoteCacheError::NotFound(format!("{} has no index.json", dir.display())));
    }
    let index: ImageIndex = cache::from_json_slice(&read_limited(&index_path, MAX_DOCUMENT)?)
        .map_err(|err| RemoteCacheError::Invalid(format!("{}: {err}", index_path.display())))?;
    let entry = index.manifests().iter().find(|m| match digest {
        Some(digest) => m.digest() == digest,
        None => m
            .annotations()
            .as_ref()
            .and_then(|a| a.get(super::export::ANNOTATION_REF_NAME))
            .is_some_and(|name| name == tag),
    });
    let Some(entry) = entry else {
        let wanted = digest.map(ToString::to_string).unwrap_or_else(|| format!("tag {tag}"));
        return Err(RemoteCacheError::NotFound(format!("{} has no cache {wanted}", dir.display())));
    };
    let manifest_bytes = read_local_blob(dir, entry, MAX_DOCUMENT)?;
    let manifest: ImageManifest = cache::from_json_slice(&manifest_bytes)
        .map_err(|err| RemoteCacheError::Invalid(format!("manifest {}: {err}", entry.digest())))?;
    check_config_type(&manifest)?;
    let config = read_local_blob(dir, manifest.config(), MAX_DOCUMENT)?;
    Ok((BlobSource::Local { dir: dir.to_owned() }, manifest, config))
}

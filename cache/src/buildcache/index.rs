//! Cache key → result records.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use super::mounts::CacheMounts;
use crate::error::{Error, IoContext, Result};
use crate::gc::GcRoots;
use crate::snapshot::chain_ids;
use crate::store::Store;

/// Version of the record format (and of the `index-v1` directory name).
pub const INDEX_VERSION: u32 = 1;

/// One layer of a cached filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The layer blob in the content store: a plain tar for a layer this store built (then the
    /// digest is the diffID), compressed for a pulled or imported one.
    pub blob: Descriptor,
    /// Digest of the uncompressed layer tar.
    pub diff_id: Digest,
}

/// One output of a cached op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CacheResult {
    /// A filesystem as a chain of layers, bottom first (empty = scratch).
    Layers { layers: Vec<CachedLayer> },
    /// A single blob (e.g. a downloaded file).
    Blob { descriptor: Box<Descriptor> },
}

impl CacheResult {
    fn blobs(&self) -> Vec<&Digest> {
        match self {
            CacheResult::Layers { layers } => layers.iter().map(|l| l.blob.digest()).collect(),
            CacheResult::Blob { descriptor } => vec![descriptor.digest()],
        }
    }
}

/// What the index stores per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub version: u32,
    pub key: Digest,
    /// One result per op output.
    pub results: Vec<CacheResult>,
    /// RFC 3339 creation time.
    pub created: String,
    /// The vertex description, for `kiln buildx du`-style listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CacheRecord {
    pub fn new(key: Digest, results: Vec<CacheResult>, description: Option<String>) -> CacheRecord {
        CacheRecord {
            version: INDEX_VERSION,
            key,
            results,
            created: crate::image::now_rfc3339(),
            description,
        }
    }
}

/// The build-cache index of a store.
#[derive(Debug, Clone)]
pub struct BuildCache {
    store: Store,
    dir: PathBuf,
}

/// An exclusive lock on one cache key: while held, no other build computes the same key.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

fn key_hex(key: &Digest) -> Result<&str> {
    if key.algorithm().as_ref() != "sha256" {
        return Err(Error::UnsupportedDigest(key.clone()));
    }
    Ok(key.digest())
}

impl BuildCache {
    /// Opens (creating) the build cache of `store`.
    pub fn open(store: &Store) -> Result<BuildCache> {
        let dir = store.root().join("buildcache");
        for sub in ["index-v1/locks", "mounts-v1", "contenthash-v1"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).ctx("create directory", &path)?;
        }
        Ok(BuildCache { store: store.clone(), dir })
    }

    /// The store this index belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn record_path(&self, key: &Digest) -> Result<PathBuf> {
        let hex = key_hex(key)?;
        Ok(self.dir.join("index-v1").join(&hex[..2.min(hex.len())]).join(format!("{hex}.json")))
    }

    /// The record for `key`, if present, readable, of this version, and all its blobs exist.
    pub fn get(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        let path = self.record_path(key)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("read", &path, err)),
        };
        let record: CacheRecord = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unreadable build-cache record");
                return Ok(None);
            }
        };
        if record.version != INDEX_VERSION || &record.key != key {
            return Ok(None);
        }
        let content = self.store.content();
        if record.results.iter().flat_map(CacheResult::blobs).any(|d| !content.contains(d)) {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Stores a record atomically (replacing an older one for the same key).
    pub fn put(&self, record: &CacheRecord) -> Result<()> {
        let path = self.record_path(&record.key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|source| Error::Json { what: format!("build-cache record {}", record.key), source })?;
        self.store.write_file_atomic(&path, &bytes)
    }

    /// Removes the record for `key` (absent is fine).
    pub fn remove(&self, key: &Digest) -> Result<()> {
        let path = self.record_path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io("remove", &path, err)),
        }
    }

    /// Every key with a record.
    pub fn keys(&self) -> Result<Vec<Digest>> {
        let index = self.dir.join("index-v1");
        let mut keys = Vec::new();
        for shard in std::fs::read_dir(&index).ctx("read directory", &index)? {
            let shard = shard.ctx("read directory", &index)?;
            if shard.file_name() == "locks" || !shard.file_type().ctx("stat", shard.path())?.is_dir() {
                continue;
            }
            let shard_path = shard.path();
            for entry in std::fs::read_dir(&shard_path).ctx("read directory", &shard_path)? {
                let entry = entry.ctx("read directory", &shard_path)?;
                let name = entry.file_name();
                let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
                if let Ok(digest) = crate::layout::parse_digest(&format!("sha256:{hex}")) {
                    keys.push(digest);
                }
            }
        }
        keys.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(keys)
    }

    fn open_lock(&self, key: &Digest) -> Result<(File, PathBuf)> {
        let path = self.dir.join("index-v1/locks").join(format!("{}.lock", key_hex(key)?));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open", &path)?;
        Ok((file, path))
    }

    /// Waits for and takes the lock of `key` (blocking: call from a blocking thread).
    pub fn lock_key(&self, key: &Digest) -> Result<KeyLock> {
        let (file, path) = self.open_lock(key)?;
        flock(&file, FlockOperation::LockExclusive).ctx("lock", &path)?;
        Ok(KeyLock { _file: file })
    }

    /// Takes the lock of `key` if it is free.
    pub fn try_lock_key(&self, key: &Digest) -> Result<Option<KeyLock>> {
        let (file, _) = self.open_lock(key)?;
        Ok(flock(&file, FlockOperation::NonBlockingLockExclusive).ok().map(|()| KeyLock { _file: file }))
    }

    /// Persistent cache-mount directories.
    pub fn mounts(&self) -> CacheMounts {
        CacheMounts::new(self.store.clone(), self.dir.join("mounts-v1"))
    }

    /// Where the solver keeps the file-checksum cache named `name` (a hex digest of the
    /// context's identity).
    pub fn contenthash_path(&self, name: &str) -> PathBuf {
        self.dir.join("contenthash-v1").join(name)
    }

    /// The build-cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Marks the record of `key` as used now (its file's modification time: least-recently-used
    /// pruning reads it). A record that is gone is fine.
    pub fn touch(&self, key: &Digest) -> Result<()> {
        let path = self.record_path(key)?;
        match File::options().write(true).open(&path) {
            Ok(file) => file.set_modified(std::time::SystemTime::now()).ctx("touch", &path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io("open", &path, err)),
        }
    }
}

impl GcRoots for BuildCache {
    /// Every blob a record names, and the chain IDs of its layer chains (their snapshots).
    fn gc_roots(&self) -> Result<Vec<Digest>> {
        let mut roots = Vec::new();
        for key in self.keys()? {
            let Some(record) = self.get(&key)? else { continue };
            for result in &record.results {
                match result {
                    CacheResult::Layers { layers } => {
                        roots.extend(layers.iter().map(|l| l.blob.digest().clone()));
                        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
                        roots.extend(chain_ids(&diff_ids));
                    }
                    CacheResult::Blob { descriptor } => roots.push(descriptor.digest().clone()),
                }
            }
        }
        Ok(roots)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

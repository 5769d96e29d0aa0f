//! Where blobs came from, for cross-repository mounts: `<root>/registry/blob-sources-v1.json`
//! maps a blob digest to the repositories (`registry/repository`) it was pulled from or pushed
//! to, newest first, a few per blob. Pushing to another repository of the same registry then
//! asks the registry to mount the blob instead of uploading it (docker's `from=`).
//!
//! The file is a hint: it is replaced atomically, a lost concurrent update or a stale entry
//! only costs an upload, and failures to read or write it are logged, never fatal.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cache::Store;
use oci_spec::image::Digest;

/// Directory of the registry crate's files under the store root.
const DIR: &str = "registry";
const FILE: &str = "blob-sources-v1.json";
/// Repositories remembered per blob.
const PER_BLOB: usize = 4;
/// Blobs remembered in all (oldest dropped first is not tracked; the map is simply capped).
const MAX_BLOBS: usize = 20_000;

/// Access to the blob sources file of a store.
#[derive(Debug, Clone)]
pub(crate) struct BlobSources {
    store: Store,
}

impl BlobSources {
    pub(crate) fn new(store: &Store) -> Self {
        Self { store: store.clone() }
    }

    fn path(&self) -> PathBuf {
        self.store.root().join(DIR).join(FILE)
    }

    fn read(&self) -> BTreeMap<String, Vec<String>> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unreadable blob sources file");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Repositories `digest` is known to be in.
    pub(crate) fn get(&self, digest: &Digest) -> Vec<String> {
        self.read().remove(digest.as_ref()).unwrap_or_default()
    }

    /// Notes that `digests` are in `repository` (`registry/repository`).
    pub(crate) fn record<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>, repository: &str) {
        let mut map = self.read();
        for digest in digests {
            let entry = map.entry(digest.to_string()).or_default();
            entry.retain(|r| r != repository);
            entry.insert(0, repository.to_owned());
            entry.truncate(PER_BLOB);
        }
        while map.len() > MAX_BLOBS {
            let Some(first) = map.keys().next().cloned() else { break };
            map.remove(&first);
        }
        let path = self.path();
        let result = std::fs::create_dir_all(self.store.root().join(DIR))
            .map_err(|err| err.to_string())
            .and_then(|()| serde_json::to_vec(&map).map_err(|err| err.to_string()))
            .and_then(|bytes| self.store.write_file_atomic(&path, &bytes).map_err(|err| err.to_string()));
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), error = %err, "cannot record blob sources");
        }
    }
}

/// The repository to mount `digest` from when pushing to `registry`/`repository`: one of its
/// known sources on the same registry.
pub(crate) fn mount_source(sources: &[String], registry: &str, repository: &str) -> Option<String> {
    sources.iter().find_map(|source| {
        let (source_registry, source_repository) = source.split_once('/')?;
        (source_registry == registry && source_repository != repository).then(|| source_repository.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_picks_same_registry_sources() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sources = BlobSources::new(&store);
        let digest = cache::sha256_digest(b"x");
        assert!(sources.get(&digest).is_empty());
        sources.record([&digest], "localhost:5000/a");
        sources.record([&digest], "other.io/b");
        sources.record([&digest], "localhost:5000/a");
        let known = sources.get(&digest);
        assert_eq!(known, vec!["localhost:5000/a".to_owned(), "other.io/b".to_owned()]);
        assert_eq!(mount_source(&known, "localhost:5000", "c/d"), Some("a".to_owned()));
        assert_eq!(mount_source(&known, "localhost:5000", "a"), None);
        assert_eq!(mount_source(&known, "other.io", "x"), Some("b".to_owned()));
        assert_eq!(mount_source(&known, "third.io", "x"), None);
    }
}

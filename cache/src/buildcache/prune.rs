//! What the build cache holds and how it shrinks: `kiln system df`, `kiln builder prune` and the
//! GC policy applied after builds.
//!
//! Each record's *own* content is the result it added: the top layer of its chain (blob and
//! unpacked snapshot) or its single blob; lower layers belong to the records (or images) below.
//! A record whose own content an image also uses is `shared`: removing it reclaims nothing.
//! "Last used" is the record file's modification time, set when it is written and by
//! [`BuildCache::touch`] on every cache hit, so least-recently-used pruning costs no extra
//! writes. Records a build holds the key lock of are never removed; blobs and snapshots go only
//! through [`Store::gc`](crate::Store::gc), which skips its sweep while another process has the
//! store open.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use oci_spec::image::Digest;

use super::index::{BuildCache, CacheResult};
use crate::error::{IoContext, Result};
use crate::gc::GcRoots;
use crate::snapshot::{chain_ids, tree_bytes};

/// One build-cache record as `system df -v` / `builder du` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: Digest,
    pub description: Option<String>,
    /// RFC 3339 creation time.
    pub created: String,
    pub last_used: SystemTime,
    /// Bytes of the record's own content (blob plus unpacked snapshot).
    pub size: u64,
    /// An image uses the same content: removing the record reclaims none of it.
    pub shared: bool,
    own_blob: Option<Digest>,
}

/// A cache mount (`RUN --mount=type=cache`) as `system df` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: String,
    pub size: u64,
}

/// What [`BuildCache::prune`] removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also the cache mounts and the context checksum caches (`builder prune --all`).
    pub all: bool,
    /// Only records (and mounts) last used longer ago than this (`--filter until=…`).
    pub unused_for: Option<Duration>,
    /// Remove least-recently-used records only until the reclaimable size is at most this
    /// (`--keep-storage`); `None` removes every candidate.
    pub keep_storage: Option<u64>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<CacheEntry>,
    pub removed_mounts: Vec<String>,
    /// Bytes of blobs, snapshots and mounts freed.
    pub reclaimed: u64,
    /// Another process had the store open: records are gone, their space comes back with a
    /// later prune or build.
    pub sweep_skipped_busy: bool,
}

/// The reclaimable bytes of `entries`: each own blob once, shared ones not at all.
pub fn reclaimable(entries: &[CacheEntry]) -> u64 {
    let mut seen = HashSet::new();
    entries
        .iter()
        .filter(|e| !e.shared && e.own_blob.as_ref().is_none_or(|b| seen.insert(b.clone())))
        .map(|e| e.size)
        .sum()
}

impl BuildCache {
    /// Every readable record with its own size, newest use last.
    pub fn usage(&self) -> Result<Vec<CacheEntry>> {
        let store = self.store();
        let (image_blobs, _) = store.image_references()?;
        let content = store.content();
        let snapshots = store.snapshots();
        let mut entries = Vec::new();
        for key in self.keys()? {
            let Some(record) = self.get(&key)? else { continue };
            let path = self.record_path(&key)?;
            let last_used =
                std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            let (own_blob, own_chain) = match record.results.first() {
                Some(CacheResult::Layers { layers }) if !layers.is_empty() => {
                    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
                    let top = layers.last().map(|l| l.blob.digest().clone());
                    (top, chain_ids(&diff_ids).pop())
                }
                Some(CacheResult::Blob { descriptor }) => (Some(descriptor.digest().clone()), None),
                _ => (None, None),
            };
            let mut size = own_blob.as_ref().and_then(|b| content.size(b).ok()).unwrap_or(0);
            if let Some(chain) = &own_chain
                && let Ok(info) = snapshots.info(chain)
            {
                size += info.size;
            }
            let shared = own_blob.as_ref().is_some_and(|b| image_blobs.contains(b));
            entries.push(CacheEntry {
                key,
                description: record.description,
                created: record.created,
                last_used,
                size,
                shared,
                own_blob,
            });
        }
        entries.sort_by_key(|e| e.last_used);
        Ok(entries)
    }

    /// The cache mounts with their sizes.
    pub fn mounts_usage(&self) -> Result<Vec<MountEntry>> {
        let mounts = self.mounts();
        let mut out = Vec::new();
        for id in mounts.list()? {
            // data/ and private-N/ (not the id and lock files beside them)
            let dir = mounts.id_dir(&id);
            let size = std::fs::read_dir(&dir)
                .ctx("read directory", &dir)?
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| tree_bytes(&entry.path()).unwrap_or(0))
                .sum();
            out.push(MountEntry { id, size });
        }
        Ok(out)
    }

    /// Removes records (and with `all` the cache mounts), then sweeps what nothing references
    /// any more; `extra_roots` are the other keepers of content (e.g. containers' images).
    pub fn prune(&self, options: &PruneOptions, extra_roots: &[&dyn GcRoots]) -> Result<PruneReport> {
        let now = SystemTime::now();
        let old_enough = |used: SystemTime| {
            options.unused_for.is_none_or(|age| now.duration_since(used).is_ok_and(|idle| idle >= age))
        };
        let entries = self.usage()?;
        let mut report = PruneReport::default();
        // blob → records still naming it as their own content
        let mut owners: HashMap<Digest, usize> = HashMap::new();
        for blob in entries.iter().filter_map(|e| e.own_blob.clone()) {
            *owners.entry(blob).or_default() += 1;
        }
        let mut remaining = reclaimable(&entries);
        for entry in entries.into_iter().filter(|e| old_enough(e.last_used)) {
            if options.keep_storage.is_some_and(|keep| remaining <= keep) {
                break;
            }
            // a build holding the key is using (or writing) it right now
            let Some(_lock) = self.try_lock_key(&entry.key)? else { continue };
            self.remove(&entry.key)?;
            if let Some(blob) = &entry.own_blob {
                let left = owners.entry(blob.clone()).or_default();
                *left = left.saturating_sub(1);
                if *left == 0 && !entry.shared {
                    remaining = remaining.saturating_sub(entry.size);
                }
            }
            report.removed.push(entry);
        }
        if options.all {
            let mounts = self.mounts();
            for mount in self.mounts_usage()? {
                let used = std::fs::metadata(mounts.id_dir(&mount.id))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                if old_enough(used) && mounts.remove(&mount.id)? {
                    report.reclaimed += mount.size;
                    report.removed_mounts.push(mount.id);
                }
            }
            let checksums = self.dir().join("contenthash-v1");
            for file in std::fs::read_dir(&checksums).ctx("read directory", &checksums)? {
                let path = file.ctx("read directory", &checksums)?.path();
                if let Err(err) = std::fs::remove_file(&path)
                    && err.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(crate::Error::io("remove", &path, err));
                }
            }
        }
        if !report.removed.is_empty() || !report.removed_mounts.is_empty() {
            let mut roots: Vec<&dyn GcRoots> = vec![self];
            roots.extend_from_slice(extra_roots);
            let swept = self.store().gc(&roots)?;
            report.sweep_skipped_busy = swept.skipped_busy;
            report.reclaimed += swept.reclaimed;
        }
        Ok(report)
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;

use std::time::{Duration, SystemTime};

use oci_spec::image::MediaType;

use super::*;
use crate::Store;
use crate::buildcache::{CacheRecord, CachedLayer, MountSharing};
use crate::layout::sha256_digest;

fn setup() -> (tempfile::TempDir, Store, BuildCache) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = BuildCache::open(&store).unwrap();
    (dir, store, cache)
}

/// A record `name` whose chain is `base` plus an own layer of `size` bytes, last used `age` ago.
fn record(
    store: &Store,
    cache: &BuildCache,
    name: &str,
    size: usize,
    age: Duration,
) -> (Digest, CachedLayer) {
    let data = vec![name.as_bytes()[0]; size];
    let blob = store.content().write_bytes(&data, MediaType::ImageLayerGzip).unwrap();
    let layer = CachedLayer { blob, diff_id: sha256_digest(&data) };
    let key = sha256_digest(name.as_bytes());
    cache
        .put(&CacheRecord::new(key.clone(), vec![CacheResult::Layers { layers: vec![layer.clone()] }], None))
        .unwrap();
    let path = cache.record_path(&key).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    (key, layer)
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn usage_lists_own_sizes_least_recently_used_first() {
    let (_dir, store, cache) = setup();
    let (old, _) = record(&store, &cache, "old", 300, 3 * HOUR);
    let (new, _) = record(&store, &cache, "new", 100, HOUR);
    let entries = cache.usage().unwrap();
    assert_eq!(entries.iter().map(|e| &e.key).collect::<Vec<_>>(), [&old, &new]);
    assert_eq!(entries.iter().map(|e| e.size).collect::<Vec<_>>(), [300, 100]);
    assert_eq!(reclaimable(&entries), 400);
    // a hit makes `old` the most recently used
    cache.touch(&old).unwrap();
    let entries = cache.usage().unwrap();
    assert_eq!(entries.last().unwrap().key, old);
    cache.touch(&sha256_digest(b"no such record")).unwrap();
}

#[test]
fn keep_storage_removes_least_recently_used_until_under_the_limit() {
    let (_dir, store, cache) = setup();
    let (a, la) = record(&store, &cache, "a", 100, 4 * HOUR);
    let (b, lb) = record(&store, &cache, "b", 100, 3 * HOUR);
    let (c, lc) = record(&store, &cache, "c", 100, 2 * HOUR);
    let report = cache.prune(&PruneOptions { keep_storage: Some(150), ..Default::default() }, &[]).unwrap();
    assert_eq!(report.removed.iter().map(|e| &e.key).collect::<Vec<_>>(), [&a, &b]);
    assert!(!report.sweep_skipped_busy);
    assert_eq!(report.reclaimed, 200);
    assert_eq!(cache.keys().unwrap(), std::slice::from_ref(&c));
    let content = store.content();
    assert!(!content.contains(la.blob.digest()) && !content.contains(lb.blob.digest()));
    assert!(content.contains(lc.blob.digest()), "the kept record's layer stays");
    assert!(cache.get(&c).unwrap().is_some());
}

#[test]
fn unused_for_keeps_what_was_used_recently() {
    let (_dir, store, cache) = setup();
    let (stale, _) = record(&store, &cache, "stale", 10, 48 * HOUR);
    let (fresh, _) = record(&store, &cache, "fresh", 10, Duration::ZERO);
    let report =
        cache.prune(&PruneOptions { unused_for: Some(24 * HOUR), ..Default::default() }, &[]).unwrap();
    assert_eq!(report.removed.iter().map(|e| &e.key).collect::<Vec<_>>(), [&stale]);
    assert_eq!(cache.keys().unwrap(), [fresh]);
}

#[test]
fn all_takes_cache_mounts_too_but_never_a_key_in_use() {
    let (_dir, store, cache) = setup();
    let (busy, _) = record(&store, &cache, "busy", 10, HOUR);
    let (idle, _) = record(&store, &cache, "idle", 10, HOUR);
    {
        let mount = cache.mounts().acquire("apt", MountSharing::Shared).unwrap();
        std::fs::write(mount.path().join("pkg"), vec![0u8; 64]).unwrap();
    }
    assert_eq!(cache.mounts_usage().unwrap(), [MountEntry { id: "apt".into(), size: 64 }]);
    let _building = cache.lock_key(&busy).unwrap();
    // without --all the mounts stay
    let report = cache.prune(&PruneOptions::default(), &[]).unwrap();
    assert_eq!(report.removed.iter().map(|e| &e.key).collect::<Vec<_>>(), [&idle]);
    assert!(report.removed_mounts.is_empty() && cache.mounts().list().unwrap() == ["apt"]);
    let report = cache.prune(&PruneOptions { all: true, ..Default::default() }, &[]).unwrap();
    assert_eq!(report.removed_mounts, ["apt"]);
    assert!(cache.mounts().list().unwrap().is_empty());
    assert_eq!(cache.keys().unwrap(), [busy], "a build holds that key");
}

#[test]
fn records_an_image_shares_reclaim_nothing() {
    let (_dir, store, cache) = setup();
    let (_, layer) = record(&store, &cache, "x", 50, HOUR);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]}
    });
    let config = store.content().write_bytes(config.to_string().as_bytes(), MediaType::ImageConfig).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer.blob],
    });
    let manifest =
        store.content().write_bytes(manifest.to_string().as_bytes(), MediaType::ImageManifest).unwrap();
    store.images().tag("example.com/x:latest", &manifest).unwrap();
    let entries = cache.usage().unwrap();
    assert!(entries[0].shared && reclaimable(&entries) == 0, "{entries:?}");
    let report = cache.prune(&PruneOptions::default(), &[]).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(store.content().contains(layer.blob.digest()), "the image keeps its layer");
}

use oci_spec::image::MediaType;

use super::*;
use crate::layout::sha256_digest;

fn setup() -> (tempfile::TempDir, Store, BuildCache) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cache = BuildCache::open(&store).unwrap();
    (dir, store, cache)
}

fn layer(store: &Store, data: &[u8]) -> CachedLayer {
    let blob = store.content().write_bytes(data, MediaType::ImageLayerGzip).unwrap();
    CachedLayer { blob, diff_id: sha256_digest(data) }
}

#[test]
fn put_get_round_trip() {
    let (_dir, store, cache) = setup();
    let key = sha256_digest(b"key");
    assert_eq!(cache.get(&key).unwrap(), None);
    let record = CacheRecord::new(
        key.clone(),
        vec![CacheResult::Layers { layers: vec![layer(&store, b"one"), layer(&store, b"two")] }],
        Some("[1/2] RUN make".into()),
    );
    cache.put(&record).unwrap();
    assert_eq!(cache.get(&key).unwrap(), Some(record.clone()));
    assert_eq!(cache.keys().unwrap(), vec![key.clone()]);
    // A reopened store sees it.
    let reopened = BuildCache::open(&Store::open(store.root()).unwrap()).unwrap();
    assert_eq!(reopened.get(&key).unwrap(), Some(record));
    cache.remove(&key).unwrap();
    assert_eq!(cache.get(&key).unwrap(), None);
    cache.remove(&key).unwrap();
}

#[test]
fn records_with_missing_blobs_or_bad_content_are_misses() {
    let (_dir, store, cache) = setup();
    let key = sha256_digest(b"k");
    let gone = CachedLayer {
        blob: Descriptor::new(MediaType::ImageLayerGzip, 3, sha256_digest(b"never stored")),
        diff_id: sha256_digest(b"x"),
    };
    cache
        .put(&CacheRecord::new(key.clone(), vec![CacheResult::Layers { layers: vec![gone] }], None))
        .unwrap();
    assert_eq!(cache.get(&key).unwrap(), None);
    // Corrupt, wrong-key and wrong-version records are misses, not errors.
    let path = cache.record_path(&key).unwrap();
    std::fs::write(&path, b"{ not json").unwrap();
    assert_eq!(cache.get(&key).unwrap(), None);
    let mut other = CacheRecord::new(sha256_digest(b"other"), vec![], None);
    std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
    assert_eq!(cache.get(&key).unwrap(), None);
    other.key = key.clone();
    other.version = INDEX_VERSION + 1;
    std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
    assert_eq!(cache.get(&key).unwrap(), None);
    let ok =
        CacheRecord::new(key.clone(), vec![CacheResult::Layers { layers: vec![layer(&store, b"z")] }], None);
    cache.put(&ok).unwrap();
    assert_eq!(cache.get(&key).unwrap(), Some(ok));
}

#[test]
fn concurrent_writers_on_one_root() {
    let (dir, store, _cache) = setup();
    let blob = layer(&store, b"shared layer");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let root = dir.path().to_owned();
            let blob = blob.clone();
            std::thread::spawn(move || {
                // Each thread has its own Store, like a separate build process.
                let cache = BuildCache::open(&Store::open(&root).unwrap()).unwrap();
                for i in 0..50 {
                    let key = sha256_digest(format!("key-{}", i % 10).as_bytes());
                    let record = CacheRecord::new(
                        key.clone(),
                        vec![CacheResult::Layers { layers: vec![blob.clone()] }],
                        Some(format!("writer {t}")),
                    );
                    cache.put(&record).unwrap();
                    assert!(cache.get(&key).unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cache = BuildCache::open(&store).unwrap();
    assert_eq!(cache.keys().unwrap().len(), 10);
}

#[test]
fn key_locks_are_exclusive_across_opens() {
    let (dir, _store, cache) = setup();
    let key = sha256_digest(b"busy");
    let held = cache.lock_key(&key).unwrap();
    let other = BuildCache::open(&Store::open(dir.path()).unwrap()).unwrap();
    assert!(other.try_lock_key(&key).unwrap().is_none());
    assert!(other.try_lock_key(&sha256_digest(b"free")).unwrap().is_some());
    drop(held);
    assert!(other.try_lock_key(&key).unwrap().is_some());
}

#[test]
fn records_are_gc_roots() {
    let (_dir, store, cache) = setup();
    let kept = layer(&store, b"kept");
    let dropped = store.content().write_bytes(b"garbage", MediaType::ImageLayerGzip).unwrap();
    let key = sha256_digest(b"k");
    cache
        .put(&CacheRecord::new(key.clone(), vec![CacheResult::Layers { layers: vec![kept.clone()] }], None))
        .unwrap();
    let roots = cache.gc_roots().unwrap();
    assert!(roots.contains(kept.blob.digest()));
    assert!(roots.contains(&kept.diff_id), "chain ID of a one-layer chain is its diffID");
    let report = store.gc(&[&cache]).unwrap();
    assert!(!report.skipped_busy);
    assert!(store.content().contains(kept.blob.digest()));
    assert!(!store.content().contains(dropped.digest()));
    assert!(cache.get(&key).unwrap().is_some());
}

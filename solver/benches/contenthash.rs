//! Content checksums of a whole build context: cold (no per-file cache: every file is read and
//! hashed) vs warm (per-file cache loaded from the store: files are only `lstat`ed).
//!
//! `cargo bench -p kiln-solver --bench contenthash`

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use solver::contenthash::{ContentHasher, FileCache, Selection};

/// `count` files of 200–2 200 bytes, 100 per directory.
fn make_context(dir: &Path, count: usize) {
    for i in 0..count {
        let sub = dir.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        let body = format!("file {i}\n").repeat(20 + (i * 7919) % 200);
        std::fs::write(sub.join(format!("f{i}.txt")), body).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("contenthash");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let contexts: Vec<(usize, tempfile::TempDir)> = [5_000, 50_000]
        .into_iter()
        .map(|n| {
            let dir = tempfile::tempdir().unwrap();
            make_context(dir.path(), n);
            (n, dir)
        })
        .collect();
    // Files changed in the last seconds are never cached (racy stamps): let them age.
    std::thread::sleep(Duration::from_secs(3));
    let store_dir = tempfile::tempdir().unwrap();
    let store = cache::Store::open(store_dir.path()).unwrap();
    for (n, dir) in &contexts {
        let excludes = vec!["*.log".to_string()];
        group.bench_with_input(BenchmarkId::new("cold", n), dir.path(), |b, root| {
            b.iter(|| ContentHasher::new(root, &excludes).unwrap().checksum(&Selection::all()).unwrap());
        });
        let cache_file = store_dir.path().join(format!("hashes-{n}"));
        let hasher = ContentHasher::new(dir.path(), &excludes).unwrap();
        hasher.checksum(&Selection::all()).unwrap();
        assert_eq!(hasher.cache().len(), *n);
        hasher.cache().save(&store, &cache_file).unwrap();
        group.bench_with_input(BenchmarkId::new("warm", n), dir.path(), |b, root| {
            b.iter(|| {
                let hasher =
                    ContentHasher::new(root, &excludes).unwrap().with_cache(FileCache::load(&cache_file));
                let digest = hasher.checksum(&Selection::all()).unwrap();
                assert!(!hasher.cache().is_dirty());
                digest
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

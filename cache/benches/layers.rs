//! Layer unpack throughput: a layer of 5 000 small files (1–8 KiB, 50 directories) applied to
//! an empty snapshot directory, as `Snapshots::ensure_unpacked` does — from the gzip blob (the
//! usual case) and from the plain tar. Also layer creation (diff + gzip) of the same tree.
//!
//! Criterion reports bytes of uncompressed tar per second; files per second is 5 000 divided by
//! the time per iteration.
//!
//! Second group: diff + compress of a 200 MB incompressible layer (one file of pseudo-random
//! bytes), gzip and zstd on all cores and gzip on one thread (the ratio shows the core scaling).
//!
//! Run: `nice -n 19 cargo bench -p kiln-cache --bench layers` (filter with a group name).
//!
//! Measured 2026-11-22 on the shared 2-core box at load average ~5–6 (nice 19), so absolute
//! figures are pessimistic: unpack 5 000 files (26.9 MB tar) 42 MiB/s from gzip, 56 MiB/s from
//! tar (~8 000–11 000 files/s); diff+gzip of that tree 10.5 MiB/s; 200 MB incompressible:
//! gzip all cores 17.8 MiB/s, gzip 1 thread 13.7 MiB/s, zstd all cores 207 MiB/s (system
//! `gzip -6` at the same time: 24 MB/s).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use cache::apply::{ApplyMode, apply_tar};
use cache::{Compression, DiffOptions, DiffSource, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const FILES: usize = 5_000;

/// 5 000 files of 1–8 KiB of mildly compressible bytes in 50 directories.
fn make_tree(dir: &Path) -> u64 {
    let mut seed: u32 = 42;
    let mut total = 0;
    for d in 0..50 {
        let sub = dir.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..FILES / 50 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = 1024 + (seed >> 8) as usize % 7168;
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    if i % 4 == 0 { (seed >> 24) as u8 } else { b'a' + (i % 26) as u8 }
                })
                .collect();
            let mut file = std::fs::File::create(sub.join(format!("file{f:03}.txt"))).unwrap();
            file.write_all(&data).unwrap();
            total += len as u64;
        }
    }
    total
}

fn unpack(c: &mut Criterion) {
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let src = work.path().join("src");
    let payload = make_tree(&src);
    let store = Store::open(&work.path().join("store")).unwrap();
    let gz = store.content().write_layer(&src, DiffSource::PlainDir, &DiffOptions::default()).unwrap();
    let plain = store
        .content()
        .write_layer(
            &src,
            DiffSource::PlainDir,
            &DiffOptions { compression: Compression::None, ..DiffOptions::default() },
        )
        .unwrap();
    let mut gz_blob = Vec::new();
    store.content().open(gz.descriptor.digest()).unwrap().read_to_end(&mut gz_blob).unwrap();
    let mut tar_blob = Vec::new();
    store.content().open(plain.descriptor.digest()).unwrap().read_to_end(&mut tar_blob).unwrap();
    eprintln!(
        "layer: {FILES} files, {payload} bytes of file data, tar {} bytes, gzip blob {} bytes",
        gz.tar_size,
        gz_blob.len()
    );
    let dest_root = work.path().join("dest");
    std::fs::create_dir(&dest_root).unwrap();
    // Unpacked trees are kept until the end: deleting 5 000 files between iterations makes
    // ext4's inode allocator (`recently_deleted`) dominate the next iteration's file creation.
    let counter = std::cell::Cell::new(0u64);
    let fresh_dir = || {
        counter.set(counter.get() + 1);
        let dir = dest_root.join(counter.get().to_string());
        std::fs::create_dir(&dir).unwrap();
        dir
    };

    let mut group = c.benchmark_group("unpack_5000_small_files");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(gz.tar_size));
    group.bench_function("gzip", |b| {
        b.iter_batched(
            fresh_dir,
            |dir| {
                let reader = cache::compress::decompress(&gz_blob[..]).unwrap();
                apply_tar(reader, &dir, ApplyMode::Overlay).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tar", |b| {
        b.iter_batched(
            fresh_dir,
            |dir| apply_tar(&tar_blob[..], &dir, ApplyMode::Overlay).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("diff_5000_small_files");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(gz.tar_size));
    group.bench_function("gzip", |b| {
        b.iter(|| store.content().write_layer(&src, DiffSource::PlainDir, &DiffOptions::default()).unwrap())
    });
    group.finish();
}

const BIG: usize = 200_000_000;

/// 200 MB of xorshift bytes: incompressible.
fn make_big_tree(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("random.bin")).unwrap());
    let mut chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < BIG {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = (BIG - written).min(chunk.len());
        file.write_all(&chunk[..n]).unwrap();
        written += n;
    }
    file.flush().unwrap();
}

fn diff_big(c: &mut Criterion) {
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let src = work.path().join("src");
    make_big_tree(&src);
    let store = Store::open(&work.path().join("store")).unwrap();
    let mut group = c.benchmark_group("diff_200MB_incompressible");
    group.sample_size(10).measurement_time(Duration::from_secs(30)).throughput(Throughput::Bytes(BIG as u64));
    for (name, compression, threads) in [
        ("gzip_all_cores", Compression::Gzip, 0),
        ("gzip_1_thread", Compression::Gzip, 1),
        ("zstd_all_cores", Compression::Zstd, 0),
    ] {
        let options = DiffOptions { compression, threads, ..DiffOptions::default() };
        group.bench_function(name, |b| {
            b.iter(|| store.content().write_layer(&src, DiffSource::PlainDir, &options).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, unpack, diff_big);
criterion_main!(benches);

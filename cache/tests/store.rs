#![allow(clippy::unwrap_used)]
//! The store under concurrency and crashes: the image index keeps every concurrent writer's
//! update, a process killed mid-write leaves a usable store without half blobs.

use std::io::Write;
use std::process::Command;

use cache::{Store, sha256_digest};
use testkit::store::busybox_image;

#[test]
fn concurrent_taggers_lose_no_update() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let manifest = busybox_image(&store, "docker.io/library/busybox:latest").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let root = &root;
            let manifest = &manifest;
            s.spawn(move || {
                // each thread its own Store: its own lock file descriptions, like separate processes
                let store = Store::open(root).unwrap();
                for i in 0..25 {
                    store.images().tag(&format!("localhost:5000/t{t}/img:{i}"), manifest).unwrap();
                }
            });
        }
    });
    let names = store.images().list().unwrap();
    assert_eq!(names.len(), 101, "every tag of every writer is kept");
    let image_id = names[0].image_id.clone();
    assert_eq!(store.images().names_of(&image_id).unwrap().len(), 101);
}

#[test]
fn dropped_store_removes_its_temp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    {
        let store = Store::open(&root).unwrap();
        std::fs::write(store.temp_path("x"), b"scratch").unwrap();
        let clone = store.clone();
        drop(store);
        assert!(clone.temp_path("y").parent().unwrap().exists(), "a clone keeps it alive");
    }
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

/// The writer is this test binary re-run as a child process (selected by an environment
/// variable), killed with SIGKILL in the middle of a blob.
#[test]
fn killed_writer_leaves_a_usable_store() {
    if let Ok(root) = std::env::var("KILN_TEST_WRITER_ROOT") {
        // the child: write a big blob forever, never committing
        let store = Store::open(std::path::Path::new(&root)).unwrap();
        let mut writer = store.content().writer().unwrap();
        std::fs::write(format!("{root}/writer-started"), b"").unwrap();
        let chunk = vec![7u8; 1 << 20];
        loop {
            writer.write_all(&chunk).unwrap();
            writer.flush().unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let kept = store
        .content()
        .write_bytes(b"committed before the crash", oci_spec::image::MediaType::ImageConfig)
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_writer_leaves_a_usable_store", "--nocapture"])
        .env("KILN_TEST_WRITER_ROOT", &root)
        .spawn()
        .unwrap();
    let started = root.join("writer-started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "writer never started");
        assert!(child.try_wait().unwrap().is_none(), "writer exited early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // let it write a few MiB, then SIGKILL it mid-blob
    let tmp_size = || -> u64 {
        walk(&root.join("tmp")).iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum()
    };
    while tmp_size() < 4 << 20 {
        assert!(std::time::Instant::now() < deadline, "writer wrote nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(store);

    // the next open cleans the dead writer's temp files; every blob is whole and verified
    let store = Store::open(&root).unwrap();
    assert!(tmp_size() < 1 << 20, "the dead writer's temp files are removed");
    for digest in store.content().list().unwrap() {
        let bytes = store.content().read(&digest).unwrap();
        assert_eq!(sha256_digest(&bytes), digest);
    }
    assert_eq!(store.content().list().unwrap(), vec![kept.digest().clone()]);
    store.content().write_bytes(b"and it still works", oci_spec::image::MediaType::ImageConfig).unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The same 8 MiB blob, written in 64 KiB chunks.
fn shared_blob() -> Vec<u8> {
    (0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// Two separate processes (this test binary re-run, selected by an environment variable) write
/// the same blob at the same moment: both commits succeed, the blob is whole, nothing is left in
/// `tmp/`.
#[test]
fn two_processes_writing_the_same_blob_both_succeed() {
    if let Ok(root) = std::env::var("KILN_TEST_BLOB_WRITER_ROOT") {
        let store = Store::open(std::path::Path::new(&root)).unwrap();
        let data = shared_blob();
        let expected = sha256_digest(&data);
        let go = std::path::Path::new(&root).join("go");
        while !go.exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut writer = store.content().writer().unwrap();
        for chunk in data.chunks(65536) {
            writer.write_all(chunk).unwrap();
        }
        let info = writer.commit(Some(&expected)).unwrap();
        assert_eq!(info.digest, expected);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    Store::open(&root).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "two_processes_writing_the_same_blob_both_succeed", "--nocapture"])
                .env("KILN_TEST_BLOB_WRITER_ROOT", &root)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(root.join("go"), b"").unwrap();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a concurrent writer failed");
    }
    let store = Store::open(&root).unwrap();
    let data = shared_blob();
    let expected = sha256_digest(&data);
    assert_eq!(store.content().list().unwrap(), vec![expected.clone()]);
    assert_eq!(store.content().read(&expected).unwrap(), data);
    assert!(
        walk(&root.join("tmp")).iter().all(|p| p.extension().is_some_and(|e| e == "lock")),
        "no leftovers"
    );
}

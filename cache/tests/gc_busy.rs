#![allow(clippy::unwrap_used)]
//! GC while another user (a build) has the store open: the sweep is skipped, nothing it could be
//! using disappears — a blob and a snapshot no image references (as a running build's fresh
//! step result is) — and the next GC after it closed the store reclaims them. Every open store
//! holds a shared flock on `gc.lock`; two opens in one process conflict like two processes
//! (flock locks belong to the open file), so this runs in one process.

use cache::{Store, sha256_digest};
use oci_spec::image::MediaType;

#[test]
fn gc_skips_the_sweep_while_a_build_has_the_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let build = Store::open(dir.path()).unwrap();
    // what a running build has produced and still uses: unreferenced by any image or root
    let blob = build.content().write_bytes(b"a layer being built", MediaType::ImageLayerGzip).unwrap();
    let upper = dir.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    std::fs::write(upper.join("file"), b"in use").unwrap();
    let chain = sha256_digest(b"chain of the step being run");
    let snapshot = build.snapshots().commit_dir(&upper, &chain, &chain, None, 6).unwrap();

    let gc = Store::open(dir.path()).unwrap();
    let report = gc.gc(&[]).unwrap();
    assert!(report.skipped_busy, "{report:?}");
    assert!(report.removed_blobs.is_empty() && report.removed_snapshots.is_empty(), "{report:?}");
    assert!(gc.content().contains(blob.digest()));
    assert!(gc.snapshots().exists(&chain));
    assert_eq!(std::fs::read(snapshot.join("file")).unwrap(), b"in use");

    // the skipped GC kept its own shared lock: a third user still sees the store busy
    let third = Store::open(dir.path()).unwrap();
    drop(build);
    assert!(third.gc(&[]).unwrap().skipped_busy, "the GC store gave up its shared lock");
    drop(third);

    // the build is gone: the garbage goes
    let report = gc.gc(&[]).unwrap();
    assert!(!report.skipped_busy);
    assert_eq!(report.removed_blobs, vec![blob.digest().clone()]);
    assert_eq!(report.removed_snapshots, vec![chain.clone()]);
    assert!(!gc.content().contains(blob.digest()));
    assert!(!gc.snapshots().exists(&chain));
    // and the store is open (shared) again after the sweep
    let later = Store::open(dir.path()).unwrap();
    assert!(later.gc(&[]).unwrap().skipped_busy);
}

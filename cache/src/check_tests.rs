use std::io::{Seek, SeekFrom, Write};

use oci_spec::image::{ImageConfigurationBuilder, RootFsBuilder};

use super::*;
use crate::buildcache::{CacheRecord, CachedLayer};
use crate::{Compression, DiffOptions, DiffSource, LayerRef};

const NAME: &str = "docker.io/library/app:1";

/// A store with one tagged image of one gzip layer, unpacked into a snapshot.
fn setup() -> (tempfile::TempDir, Store, Descriptor, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hello"), "hello ".repeat(1000)).unwrap();
    let options = DiffOptions { compression: Compression::Gzip, source_date_epoch: Some(0), threads: 1 };
    let layer = store.content().write_layer(&tree, DiffSource::PlainDir, &options).unwrap();
    let rootfs =
        RootFsBuilder::default().typ("layers").diff_ids(vec![layer.diff_id.to_string()]).build().unwrap();
    let config = ImageConfigurationBuilder::default().rootfs(rootfs).build().unwrap();
    store.write_image_tagged(&config, std::slice::from_ref(&layer.descriptor), &[NAME]).unwrap();
    store
        .snapshots()
        .ensure_unpacked(&[LayerRef { blob: layer.descriptor.clone(), diff_id: layer.diff_id.clone() }])
        .unwrap();
    (dir, store, layer.descriptor, layer.diff_id)
}

/// Flips one byte in the middle of a blob: same size, other content.
fn corrupt(store: &Store, digest: &Digest) {
    let path = store.content().blob_path(digest).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

#[test]
fn a_healthy_store_is_consistent() {
    let (_dir, store, _, _) = setup();
    let report = store.check().unwrap();
    assert!(report.is_consistent(), "{:?}", report.damage);
    assert_eq!((report.blobs, report.snapshots, report.images), (3, 1, 1));
    assert!(report.bytes > 0);
}

#[test]
fn verify_finds_flipped_bytes_and_wrong_sizes() {
    let (_dir, store, layer, _) = setup();
    let content = store.content();
    assert_eq!(content.verify(layer.digest(), Some(layer.size())).unwrap(), BlobState::Intact);
    assert_eq!(content.verify(&sha256_digest(b"absent"), None).unwrap(), BlobState::Missing);
    assert_eq!(
        content.verify(layer.digest(), Some(layer.size() + 1)).unwrap(),
        BlobState::Damaged(BlobDamage::Size { expected: layer.size() + 1, actual: layer.size() })
    );
    corrupt(&store, layer.digest());
    assert!(matches!(
        content.verify(layer.digest(), Some(layer.size())).unwrap(),
        BlobState::Damaged(BlobDamage::Digest { .. })
    ));
}

#[test]
fn a_corrupted_layer_is_found_and_repaired() {
    let (_dir, store, layer, diff_id) = setup();
    let cache = BuildCache::open(&store).unwrap();
    let key = sha256_digest(b"key");
    let cached = CachedLayer { blob: layer.clone(), diff_id };
    cache
        .put(&CacheRecord::new(key.clone(), vec![CacheResult::Layers { layers: vec![cached] }], None))
        .unwrap();
    corrupt(&store, layer.digest());

    let report = store.check().unwrap();
    assert!(!report.is_consistent());
    let kinds: Vec<String> = report.damage.iter().map(ToString::to_string).collect();
    assert_eq!(report.damage.len(), 3, "{kinds:?}");
    assert!(
        matches!(&report.damage[0], Damage::Blob { digest, damage: BlobDamage::Digest { .. } } if digest == layer.digest())
    );
    assert!(
        matches!(&report.damage[1], Damage::Image { name, missing, .. } if name == NAME && missing == &vec![layer.clone()])
    );
    assert!(matches!(&report.damage[2], Damage::CacheRecord { key: k, .. } if *k == key));
    assert_eq!(report.needed_blobs(), vec![layer.clone()]);
    assert!(
        kinds[0].starts_with(&format!("blob {} content hashes to sha256:", layer.digest())),
        "{}",
        kinds[0]
    );

    let repaired = store.repair(&report).unwrap();
    assert_eq!(repaired.removed_blobs, vec![layer.digest().clone()]);
    assert_eq!(repaired.removed_images, vec![NAME.to_string()]);
    assert_eq!(repaired.removed_cache_records, vec![key.clone()]);
    assert!(!store.content().contains(layer.digest()));
    assert_eq!(store.images().get(NAME).unwrap(), None);
    assert_eq!(cache.get(&key).unwrap(), None);
    assert!(store.check().unwrap().is_consistent());
}

#[test]
fn a_refetched_blob_keeps_the_image() {
    let (_dir, store, layer, _) = setup();
    let good = std::fs::read(store.content().blob_path(layer.digest()).unwrap()).unwrap();
    corrupt(&store, layer.digest());
    let report = store.check().unwrap();
    let mut repaired = store.remove_damaged(&report).unwrap();
    // what the registry would do: the intact blob arrives again
    store.content().write_from(&mut good.as_slice(), layer.digest(), Some(layer.size())).unwrap();
    store.remove_incomplete_records(&mut repaired).unwrap();
    assert!(repaired.removed_images.is_empty());
    assert!(store.images().get(NAME).unwrap().is_some());
    assert!(store.check().unwrap().is_consistent());
}

#[test]
fn damaged_snapshots_are_found_and_removed() {
    let (_dir, store, _, diff_id) = setup();
    let snapshots = store.snapshots();
    // a chain ID that does not follow from its metadata, and one without its tree
    let info_path = snapshots.path(&diff_id).with_file_name("info.json");
    let mut info: SnapshotInfo = serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
    info.parent = Some(sha256_digest(b"someone else"));
    std::fs::write(&info_path, serde_json::to_vec(&info).unwrap()).unwrap();
    let bare = sha256_digest(b"bare");
    std::fs::create_dir_all(snapshots.path(&bare).parent().unwrap()).unwrap();
    std::fs::write(
        snapshots.path(&bare).with_file_name("info.json"),
        serde_json::to_vec(&SnapshotInfo {
            chain_id: bare.clone(),
            diff_id: bare.clone(),
            blob: None,
            parent: None,
            size: 0,
        })
        .unwrap(),
    )
    .unwrap();
    let garbage = sha256_digest(b"garbage");
    std::fs::create_dir_all(snapshots.path(&garbage)).unwrap();
    std::fs::write(snapshots.path(&garbage).with_file_name("info.json"), b"{not json").unwrap();

    let report = store.check().unwrap();
    let mut chains: Vec<&Digest> = report
        .damage
        .iter()
        .map(|d| match d {
            Damage::Snapshot { chain_id, .. } => chain_id,
            other => panic!("unexpected damage {other}"),
        })
        .collect();
    chains.sort_by_key(|d| d.to_string());
    let mut expected = vec![&diff_id, &bare, &garbage];
    expected.sort_by_key(|d| d.to_string());
    assert_eq!(chains, expected);
    let text: Vec<String> = report.damage.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|t| t.contains("does not follow from its parent")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("is missing")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("unreadable metadata")), "{text:?}");

    let repaired = store.repair(&report).unwrap();
    assert_eq!(repaired.removed_snapshots.len(), 3);
    assert!(repaired.removed_images.is_empty(), "snapshots are unpacked again from intact blobs");
    assert!(store.check().unwrap().is_consistent());
    let blob = store.images().get(NAME).unwrap().unwrap();
    let image = store.content().read_image(&blob.target).unwrap();
    store.snapshots().ensure_unpacked(&image.layers().unwrap()).unwrap();
    assert!(store.check().unwrap().is_consistent());
}

#[test]
fn a_damaged_manifest_loses_the_image_name() {
    let (_dir, store, _, _) = setup();
    let record = store.images().get(NAME).unwrap().unwrap();
    std::fs::write(store.content().blob_path(record.target.digest()).unwrap(), b"{}").unwrap();
    let report = store.check().unwrap();
    assert!(
        report.damage.iter().any(|d| matches!(d, Damage::Blob { damage: BlobDamage::Digest { .. }, .. }))
    );
    assert!(report.damage.iter().any(
        |d| matches!(d, Damage::Image { missing, related, .. } if missing == &vec![record.target.clone()] && related == &vec![record.image_id.clone()])
    ));
    let repaired = store.repair(&report).unwrap();
    assert_eq!(repaired.removed_images, vec![NAME.to_string()]);
    assert!(store.check().unwrap().is_consistent());
}

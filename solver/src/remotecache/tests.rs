//! Export to an OCI layout and import from it, without root: records match by key, blobs are
//! fetched only on demand and verified, a corrupt blob is refused and its records stop matching.

use cache::Store;
use cache::buildcache::{CacheResult, CachedLayer};
use oci_spec::image::MediaType;

use super::*;

fn layer(store: &Store, text: &str) -> CachedLayer {
    let blob = store.content().write_bytes(text.as_bytes(), MediaType::ImageLayerGzip).unwrap();
    CachedLayer { blob, diff_id: cache::sha256_digest(format!("diff {text}").as_bytes()) }
}

fn key(n: u8) -> Digest {
    cache::sha256_digest(&[0xee, n])
}

#[tokio::test]
async fn local_layout_round_trip_is_lazy_and_refuses_corrupt_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a")).unwrap();
    let (base, step) = (layer(&a, "base"), layer(&a, "step"));
    let mut builder = ConfigBuilder::new();
    builder.add_record(&key(1), &[CacheResult::Layers { layers: vec![base.clone()] }], &[], None);
    builder.add_record(
        &key(2),
        &[CacheResult::Layers { layers: vec![base.clone(), step.clone()] }],
        &[key(1)],
        Some("[2/2] RUN make".into()),
    );
    let mut config = builder.finish();
    let chain = cache::chain_ids(&[base.diff_id.clone(), step.diff_id.clone()]).pop().unwrap();
    config.set_checksums([(chain.clone(), "{\"path\":\"/out\"}".to_owned(), key(9))]);
    let layout = dir.path().join("layout");
    let export_spec = CacheExport::parse(&format!("type=local,dest={},tag=v1", layout.display())).unwrap();
    let exported = export::export(&export_spec, &config, &a, None, None).await.unwrap();
    assert_eq!((exported.records, exported.layers), (2, 2));

    let b = Store::open(&dir.path().join("b")).unwrap();
    let import = CacheImport::parse(&format!("type=local,src={},tag=v1", layout.display())).unwrap();
    let (remote, warnings) = RemoteCache::load(&[import], None, &b).await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(remote.len(), 2);
    assert_eq!(remote.checksum(&chain, "{\"path\":\"/out\"}"), Some(key(9)));
    let results = remote.lookup(&key(2)).unwrap().clone();
    assert_eq!(results, vec![CacheResult::Layers { layers: vec![base.clone(), step.clone()] }]);
    assert!(!b.content().contains(step.blob.digest()), "a match fetches nothing");

    remote.ensure_blob(&b, &base.blob).await.unwrap();
    assert_eq!(b.content().read(base.blob.digest()).unwrap(), b"base");
    assert_eq!(remote.stats().blobs, 1);

    // the step's blob is corrupt in the layout: refused, nothing stored, its record is gone
    std::fs::write(import::blob_path(&layout, step.blob.digest()), b"stEp").unwrap();
    let err = remote.ensure_blob(&b, &step.blob).await.unwrap_err();
    assert!(err.chain().contains("digest"), "{}", err.chain());
    assert!(!b.content().contains(step.blob.digest()));
    assert_eq!(remote.refused(), vec![step.blob.digest().clone()]);
    assert!(remote.lookup(&key(2)).is_none());
    assert!(remote.lookup(&key(1)).is_some(), "records without the blob still match");

    // a missing tag is "not found" (a warning), a later schema an error unless ignore-error
    let other = CacheImport::parse(&format!("type=local,src={},tag=v2", layout.display())).unwrap();
    let (empty, warnings) = RemoteCache::load(&[other], None, &b).await.unwrap();
    assert!(empty.is_empty() && warnings.len() == 1, "{warnings:?}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(import::blob_path(&layout, exported.manifest.digest())).unwrap(),
    )
    .unwrap();
    let config_digest = cache::parse_digest(manifest["config"]["digest"].as_str().unwrap()).unwrap();
    let later = br#"{"schemaVersion": 2}"#;
    let later_digest = cache::sha256_digest(later);
    std::fs::write(import::blob_path(&layout, &later_digest), later).unwrap();
    let text =
        String::from_utf8(std::fs::read(import::blob_path(&layout, exported.manifest.digest())).unwrap())
            .unwrap()
            .replace(config_digest.as_ref(), later_digest.as_ref());
    let new_manifest = cache::sha256_digest(text.as_bytes());
    std::fs::write(import::blob_path(&layout, &new_manifest), &text).unwrap();
    let digest_spec = format!("type=local,src={},digest={new_manifest}", layout.display());
    // index.json does not list it: add an entry by digest
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": new_manifest.to_string(),
        "size": text.len(),
    }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let err = RemoteCache::load(&[CacheImport::parse(&digest_spec).unwrap()], None, &b).await.unwrap_err();
    assert!(err.chain().contains("schema version 2 is not supported"), "{}", err.chain());
    let ignored = CacheImport::parse(&format!("{digest_spec},ignore-error=true")).unwrap();
    let (_, warnings) = RemoteCache::load(&[ignored], None, &b).await.unwrap();
    assert_eq!(warnings.len(), 1);
}

/// A layer as a build stores it: a plain tar, blob digest = diffID.
fn plain_layer(store: &Store, dir: &std::path::Path, text: &str) -> CachedLayer {
    let tree = dir.join(format!("tree-{text}"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("file"), text).unwrap();
    let options =
        cache::DiffOptions { compression: cache::Compression::None, source_date_epoch: Some(0), threads: 1 };
    let layer = store.content().write_layer(&tree, cache::DiffSource::PlainDir, &options).unwrap();
    assert_eq!(layer.descriptor.digest(), &layer.diff_id);
    CachedLayer { blob: layer.descriptor, diff_id: layer.diff_id }
}

#[tokio::test]
async fn plain_layers_are_exported_gzip_and_map_back_to_the_local_tar() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a")).unwrap();
    let (base, step) = (plain_layer(&a, dir.path(), "base"), plain_layer(&a, dir.path(), "step"));
    let mut builder = ConfigBuilder::new();
    builder.add_record(
        &key(1),
        &[CacheResult::Layers { layers: vec![base.clone(), step.clone()] }],
        &[],
        None,
    );
    let config = builder.finish();
    let layout = dir.path().join("layout");
    let export_spec = CacheExport::parse(&format!("type=local,dest={},tag=v1", layout.display())).unwrap();
    let exported = export::export(&export_spec, &config, &a, None, None).await.unwrap();

    // the manifest lists the gzip blobs (those a push of the image sends), and the layout holds them
    let manifest: oci_spec::image::ImageManifest = cache::from_json_slice(
        &std::fs::read(import::blob_path(&layout, exported.manifest.digest())).unwrap(),
    )
    .unwrap();
    let gzip: Vec<_> =
        [&base, &step].iter().map(|l| a.distributable_layer(&l.blob).unwrap()).collect::<Vec<_>>();
    assert_eq!(manifest.layers(), &gzip);
    for layer in &gzip {
        assert_eq!(layer.media_type(), &MediaType::ImageLayerGzip);
        let bytes = std::fs::read(import::blob_path(&layout, layer.digest())).unwrap();
        assert_eq!(&cache::sha256_digest(&bytes), layer.digest());
    }
    let written: CacheConfig =
        CacheConfig::parse(&std::fs::read(import::blob_path(&layout, manifest.config().digest())).unwrap())
            .unwrap();
    assert_eq!(written.blobs(), gzip, "the config names the manifest's blobs");
    assert_eq!(written.layers[1].diff_id, step.diff_id);

    // another store imports gzip layers and fetches them
    let b = Store::open(&dir.path().join("b")).unwrap();
    let import = CacheImport::parse(&format!("type=local,src={},tag=v1", layout.display())).unwrap();
    let (remote, _) = RemoteCache::load(std::slice::from_ref(&import), None, &b).await.unwrap();
    let CacheResult::Layers { layers } = &remote.lookup_local(&key(1), &b).unwrap()[0] else { panic!() };
    assert_eq!(layers.iter().map(|l| &l.blob).collect::<Vec<_>>(), gzip.iter().collect::<Vec<_>>());
    remote.ensure_blob(&b, &layers[1].blob).await.unwrap();

    // the store that built them (its gzip copies swept) uses its own tars and fetches nothing
    for layer in &gzip {
        std::fs::remove_file(a.content().blob_path(layer.digest()).unwrap()).unwrap();
    }
    let (remote, _) = RemoteCache::load(&[import], None, &a).await.unwrap();
    let results = remote.lookup_local(&key(1), &a).unwrap();
    assert_eq!(results, vec![CacheResult::Layers { layers: vec![base, step] }]);
    assert_eq!(remote.stats().blobs, 0);
}

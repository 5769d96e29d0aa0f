//! Layers leave the machine compressed: the build keeps the layers it makes as plain tars (the
//! blob digest is then the diffID, one hash and no compression on the build's critical path),
//! and pushes and OCI exports call [`Store::distributable`] to get the same image with every
//! plain-tar layer replaced by its gzip blob.
//!
//! Each compressed blob is remembered under `content/compressed-v1/gzip/<tar-hex>` (a text file
//! holding the gzip blob's digest, written atomically after the blob), so pushing the same
//! image again, or another image sharing the layer, compresses nothing. A record whose blob is
//! gone (GC sweeps blobs no image references) is ignored and the layer compressed again.
//! Compression is deterministic (see [`crate::compress`]): two stores give the same digests.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde_json::Value;

use crate::compress::{Compression, Compressor};
use crate::content::BlobInfo;
use crate::error::{Error, IoContext, Result};
use crate::image::{DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DocKind, doc_kind};
use crate::layout::{HashingReader, parse_digest};
use crate::store::Store;

/// Where the tar → gzip records live, relative to the store root.
const GZIP_RECORDS: &str = "content/compressed-v1/gzip";

/// Read size when compressing a stored tar.
const READ_CHUNK: usize = 1 << 20;

impl Store {
    /// `target` (a manifest or an index in the store) as it should leave the machine: plain-tar
    /// layers (`…layer.v1.tar`, docker's `…rootfs.diff.tar`) become gzip layers. The rewritten
    /// manifests (and index) are stored; the returned descriptor keeps `target`'s platform and
    /// annotations. When nothing needs compressing, `target` itself is returned.
    pub fn distributable(&self, target: &Descriptor) -> Result<Descriptor> {
        match doc_kind(target.media_type()) {
            Some(DocKind::Manifest) => self.distributable_manifest(target),
            Some(DocKind::Index) => self.distributable_index(target),
            None => Ok(target.clone()),
        }
    }

    /// The gzip blob of the plain-tar blob `tar` (compressed now, or found from an earlier call).
    /// The tar's digest is verified while it is compressed.
    pub fn gzip_layer(&self, tar: &Digest) -> Result<BlobInfo> {
        let content = self.content();
        let record = self.gzip_record_path(tar)?;
        if let Ok(text) = std::fs::read_to_string(&record)
            && let Ok(digest) = parse_digest(text.trim())
            && let Ok(size) = content.size(&digest)
        {
            return Ok(BlobInfo { digest, size });
        }
        let blob_path = content.blob_path(tar)?;
        let mut reader = HashingReader::new(content.open(tar)?);
        let writer = content.writer()?;
        let tmp = writer.temp_path().to_owned();
        let mut compressor = Compressor::new(writer, Compression::Gzip, 0).ctx("start compressing", &tmp)?;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::io("read", &blob_path, err)),
            };
            compressor.write_all(&buf[..n]).ctx("compress layer into", &tmp)?;
        }
        let (actual, _) = reader.digest();
        if actual != *tar {
            return Err(Error::digest_mismatch(blob_path.display().to_string(), tar, &actual));
        }
        let info = compressor.finish().ctx("compress layer into", &tmp)?.commit(None)?;
        let dir = self.root().join(GZIP_RECORDS);
        std::fs::create_dir_all(&dir).ctx("create", &dir)?;
        self.write_file_atomic(&record, format!("{}\n", info.digest).as_bytes())?;
        Ok(info)
    }

    /// One layer descriptor as it should leave the machine: a plain-tar layer of the store
    /// becomes its gzip blob ([`Store::gzip_layer`]; annotations are kept), any other
    /// descriptor is returned as it is. The plain tar must be in the store.
    pub fn distributable_layer(&self, layer: &Descriptor) -> Result<Descriptor> {
        let Some(gzip_type) = gzip_media_type(layer.media_type().as_ref()) else {
            return Ok(layer.clone());
        };
        let gzip = self.gzip_layer(layer.digest())?;
        let mut out = layer.clone();
        out.set_media_type(MediaType::from(gzip_type.as_str()));
        out.set_digest(gzip.digest);
        out.set_size(gzip.size);
        Ok(out)
    }

    /// The local form of a layer the store lacks but whose uncompressed tar it holds: a blob
    /// whose digest is the layer's `diff_id` *is* that tar (a layer this store built, or one it
    /// keeps plain). `None` when `layer` is present itself, or its tar is not here either.
    pub fn local_layer(&self, layer: &Descriptor, diff_id: &Digest) -> Option<Descriptor> {
        let content = self.content();
        if layer.digest() == diff_id || content.contains(layer.digest()) {
            return None;
        }
        let size = content.size(diff_id).ok()?;
        let media_type = match layer.media_type() {
            MediaType::Other(t) if t.starts_with(DOCKER_LAYER_TAR) => MediaType::from(DOCKER_LAYER_TAR),
            _ => MediaType::ImageLayer,
        };
        Some(Descriptor::new(media_type, size, diff_id.clone()))
    }

    fn gzip_record_path(&self, tar: &Digest) -> Result<PathBuf> {
        // blob_path refuses digests that are not sha256 (and so not a safe file name)
        self.content().blob_path(tar)?;
        Ok(self.root().join(GZIP_RECORDS).join(tar.digest()))
    }

    fn distributable_manifest(&self, target: &Descriptor) -> Result<Descriptor> {
        let mut doc = self.read_document(target)?;
        let mut changed = false;
        if let Some(layers) = doc.get_mut("layers").and_then(Value::as_array_mut) {
            for layer in layers {
                let Some(gzip_type) =
                    layer.get("mediaType").and_then(Value::as_str).and_then(gzip_media_type)
                else {
                    continue;
                };
                let digest = parse_digest(layer.get("digest").and_then(Value::as_str).unwrap_or_default())?;
                let gzip = self.gzip_layer(&digest)?;
                layer["mediaType"] = Value::from(gzip_type);
                layer["digest"] = Value::from(gzip.digest.to_string());
                layer["size"] = Value::from(gzip.size);
                changed = true;
            }
        }
        if !changed {
            return Ok(target.clone());
        }
        self.store_document(target, &doc)
    }

    fn distributable_index(&self, target: &Descriptor) -> Result<Descriptor> {
        let mut doc = self.read_document(target)?;
        let mut changed = false;
        if let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
            for entry in manifests {
                let descriptor: Descriptor = serde_json::from_value(entry.clone()).map_err(|source| {
                    Error::Json { what: format!("an entry of index {}", target.digest()), source }
                })?;
                if doc_kind(descriptor.media_type()) != Some(DocKind::Manifest) {
                    continue;
                }
                let converted = self.distributable_manifest(&descriptor)?;
                if converted.digest() != descriptor.digest() {
                    entry["digest"] = Value::from(converted.digest().to_string());
                    entry["size"] = Value::from(converted.size());
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(target.clone());
        }
        self.store_document(target, &doc)
    }

    fn read_document(&self, target: &Descriptor) -> Result<Value> {
        let bytes = self.content().read(target.digest())?;
        serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { what: format!("blob {}", target.digest()), source })
    }

    /// Stores the rewritten `doc` (compact JSON; keys keep the order they were read in) and
    /// returns `original` with the new digest and size.
    fn store_document(&self, original: &Descriptor, doc: &Value) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(doc)
            .map_err(|source| Error::Json { what: format!("copy of {}", original.digest()), source })?;
        let stored = self.content().write_bytes(&bytes, original.media_type().clone())?;
        let mut out = original.clone();
        out.set_digest(stored.digest().clone());
        out.set_size(stored.size());
        Ok(out)
    }
}

/// The gzip media type of a plain-tar layer media type; `None` for anything else.
fn gzip_media_type(media_type: &str) -> Option<String> {
    if media_type == MediaType::ImageLayer.to_string() {
        Some(MediaType::ImageLayerGzip.to_string())
    } else if media_type == DOCKER_LAYER_TAR {
        Some(DOCKER_LAYER_GZIP.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{DiffOptions, DiffSource};
    use crate::image::is_layer_media_type;

    fn plain_image(store: &Store, tree: &std::path::Path) -> (Descriptor, crate::diff::NewLayer) {
        std::fs::write(tree.join("a"), b"hello layer").unwrap();
        std::fs::create_dir(tree.join("d")).unwrap();
        std::fs::write(tree.join("d/b"), vec![7u8; 3 << 20]).unwrap();
        let options = DiffOptions { compression: Compression::None, source_date_epoch: Some(0), threads: 2 };
        let layer = store.content().write_layer(tree, DiffSource::PlainDir, &options).unwrap();
        let rootfs = oci_spec::image::RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![layer.diff_id.to_string()])
            .build()
            .unwrap();
        let config = oci_spec::image::ImageConfigurationBuilder::default().rootfs(rootfs).build().unwrap();
        (store.write_image(&config, std::slice::from_ref(&layer.descriptor)).unwrap(), layer)
    }

    #[test]
    fn plain_layers_become_gzip_with_the_same_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let (target, layer) = plain_image(&store, &tree);
        // a plain layer: its blob is the tar, its digest the diffID
        assert_eq!(layer.descriptor.digest(), &layer.diff_id);
        assert_eq!(layer.descriptor.media_type(), &MediaType::ImageLayer);

        let out = store.distributable(&target).unwrap();
        assert_ne!(out.digest(), target.digest());
        let image = store.content().read_image(&out).unwrap();
        let layers = image.layers().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].blob.media_type(), &MediaType::ImageLayerGzip);
        assert!(is_layer_media_type(layers[0].blob.media_type()));
        assert_eq!(layers[0].diff_id, layer.diff_id);
        let gz = std::fs::read(store.content().blob_path(layers[0].blob.digest()).unwrap()).unwrap();
        assert_eq!(gz.len() as u64, layers[0].blob.size());
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut tar).unwrap();
        assert_eq!(crate::layout::sha256_digest(&tar), layer.diff_id);
        // the config (image ID) is the same
        assert_eq!(image.id(), store.content().read_image(&target).unwrap().id());

        // again: the recorded blob is reused, the result identical; a gzip image is unchanged
        assert_eq!(store.distributable(&target).unwrap(), out);
        assert_eq!(store.distributable(&out).unwrap(), out);

        // one layer at a time: the same gzip blob; a gzip layer is left as it is
        let gzip = store.distributable_layer(&layer.descriptor).unwrap();
        assert_eq!(
            (gzip.media_type(), gzip.digest(), gzip.size()),
            (layers[0].blob.media_type(), layers[0].blob.digest(), layers[0].blob.size())
        );
        assert_eq!(store.distributable_layer(&gzip).unwrap(), gzip);
    }

    #[test]
    fn a_missing_gzip_layer_maps_back_to_the_local_tar() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let (_, layer) = plain_image(&store, &tree);
        let gzip = store.distributable_layer(&layer.descriptor).unwrap();
        // present (or the tar itself): nothing to map
        assert_eq!(store.local_layer(&gzip, &layer.diff_id), None);
        assert_eq!(store.local_layer(&layer.descriptor, &layer.diff_id), None);
        // another store's gzip blob of the same tar (here: the blob swept)
        std::fs::remove_file(store.content().blob_path(gzip.digest()).unwrap()).unwrap();
        let local = store.local_layer(&gzip, &layer.diff_id).unwrap();
        assert_eq!(local.digest(), &layer.diff_id);
        assert_eq!(local.size(), layer.descriptor.size());
        assert_eq!(local.media_type(), &MediaType::ImageLayer);
        let docker = Descriptor::new(MediaType::from(DOCKER_LAYER_GZIP), gzip.size(), gzip.digest().clone());
        assert_eq!(
            store.local_layer(&docker, &layer.diff_id).unwrap().media_type().to_string(),
            DOCKER_LAYER_TAR
        );
        // an unknown diffID: not here
        let unknown = crate::layout::sha256_digest(b"another tar");
        assert_eq!(store.local_layer(&gzip, &unknown), None);
    }

    #[test]
    fn two_stores_give_the_same_digests_and_a_swept_blob_is_remade() {
        let dir = tempfile::tempdir().unwrap();
        let mut results = Vec::new();
        for name in ["one", "two"] {
            let store = Store::open(&dir.path().join(name)).unwrap();
            let tree = dir.path().join(format!("tree-{name}"));
            std::fs::create_dir(&tree).unwrap();
            let (target, _) = plain_image(&store, &tree);
            let out = store.distributable(&target).unwrap();
            // the gzip blob disappears (as after a GC): the record is stale, compress again
            let image = store.content().read_image(&out).unwrap();
            let gzip = image.manifest.layers()[0].digest().clone();
            std::fs::remove_file(store.content().blob_path(&gzip).unwrap()).unwrap();
            assert_eq!(store.distributable(&target).unwrap(), out);
            assert!(store.content().contains(&gzip));
            results.push(out);
        }
        assert_eq!(results[0], results[1]);
    }

    #[test]
    fn a_corrupted_tar_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let (target, layer) = plain_image(&store, &tree);
        let path = store.content().blob_path(&layer.diff_id).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = store.distributable(&target).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }
}

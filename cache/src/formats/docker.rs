//! docker-archive: what `docker save` writes and `docker load` reads.
//!
//! kiln writes the docker 25+ form: `blobs/sha256/<config>`, one uncompressed layer tar per layer
//! at `blobs/sha256/<diffID>`, `manifest.json` and `repositories`. It reads that form and the
//! legacy one (`<id>.json`, `<id>/layer.tar`, symlinked duplicate layers); compressed layer
//! files are accepted too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};

use super::source::{Source, archive_error};
use super::{
    ExportImage, LoadedImage, append_blob, append_dir, append_file, familiar_name, layer_media_type,
    store_layer_verified, tag_of,
};
use crate::compress::{Compression, decompress, sniff};
use crate::content::ContentStore;
use crate::diff::DiffOptions;
use crate::error::{Error, IoContext, Result};
use crate::layout::{HashingWriter, parse_digest};
use crate::snapshot::LayerRef;
use crate::store::Store;

/// One entry of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes a docker-archive of `images`.
pub(super) fn save(store: &Store, images: &[ExportImage], out: &mut dyn Write) -> Result<()> {
    let content = store.content();
    let mut builder = tar::Builder::new(out);
    append_dir(&mut builder, "blobs/")?;
    append_dir(&mut builder, "blobs/sha256/")?;
    let mut written = HashSet::new();
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let read = content.read_image(&image.target)?;
        let config = read.manifest.config().digest();
        if written.insert(config.clone()) {
            append_blob(&mut builder, &content, config)?;
        }
        let mut layer_names = Vec::new();
        let layers = read.layers()?;
        for layer in &layers {
            let name = format!("blobs/sha256/{}", layer.diff_id.digest());
            if written.insert(layer.diff_id.clone()) {
                append_layer_tar(&mut builder, &content, layer, &name)?;
            }
            layer_names.push(name);
        }
        let repo_tags: Vec<String> =
            image.names.iter().filter(|n| tag_of(n).is_some()).map(|n| familiar_name(n)).collect();
        if let Some(top) = layers.last() {
            for repo_tag in &repo_tags {
                if let Some((repo, tag)) = repo_tag.rsplit_once(':') {
                    repositories
                        .entry(repo.to_owned())
                        .or_default()
                        .insert(tag.to_owned(), top.diff_id.digest().to_owned());
                }
            }
        }
        entries.push(ManifestEntry {
            config: format!("blobs/sha256/{}", config.digest()),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
            layers: layer_names,
        });
    }
    let manifest = serde_json::to_vec(&entries)
        .map_err(|source| Error::Json { what: "manifest.json".into(), source })?;
    append_file(&mut builder, "manifest.json", manifest.len() as u64, &mut &manifest[..])?;
    let repos = serde_json::to_vec(&repositories)
        .map_err(|source| Error::Json { what: "repositories".into(), source })?;
    append_file(&mut builder, "repositories", repos.len() as u64, &mut &repos[..])?;
    builder.finish().map_err(|source| Error::Tar { op: "write", what: "docker archive".into(), source })
}

/// Appends the uncompressed tar of a layer. The size must be known before the data, so the blob
/// is decompressed twice (first to count and verify the diffID), never held in memory.
fn append_layer_tar(
    builder: &mut tar::Builder<&mut dyn Write>,
    content: &ContentStore,
    layer: &LayerRef,
    name: &str,
) -> Result<()> {
    let blob_path = content.blob_path(layer.blob.digest())?;
    let mut hashing = HashingWriter::new(io::sink());
    let mut reader = decompress(content.open(layer.blob.digest())?).ctx("read layer", &blob_path)?;
    io::copy(&mut reader, &mut hashing).ctx("decompress layer", &blob_path)?;
    let (_, diff_id, size) = hashing.finish();
    if diff_id != layer.diff_id {
        return Err(Error::diff_id_mismatch(layer.blob.digest(), &layer.diff_id, &diff_id));
    }
    let mut reader = decompress(content.open(layer.blob.digest())?).ctx("read layer", &blob_path)?;
    append_file(builder, name, size, &mut reader)
}

/// Loads every image of a docker-archive.
pub(super) fn load(store: &Store, source: &Source) -> Result<Vec<LoadedImage>> {
    let entries: Vec<ManifestEntry> = source.read_json("manifest.json")?;
    let content = store.content();
    // diffID → stored layer, for layers shared by several images of the archive
    let mut stored: HashMap<Digest, Descriptor> = HashMap::new();
    let mut loaded = Vec::new();
    for entry in entries {
        let config_bytes = source.read_small(&entry.config)?;
        let config: ImageConfiguration =
            crate::config::from_json_slice(&config_bytes).map_err(|source_err| Error::Json {
                what: format!("{} in {}", entry.config, source.path().display()),
                source: source_err,
            })?;
        let diff_ids =
            config.rootfs().diff_ids().iter().map(|d| parse_digest(d)).collect::<Result<Vec<_>>>()?;
        if diff_ids.len() != entry.layers.len() {
            return Err(archive_error(
                source.path(),
                format!(
                    "{} lists {} layers but its config has {} diffIDs",
                    entry.config,
                    entry.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
            if let Some(descriptor) = stored.get(diff_id) {
                layers.push(descriptor.clone());
                continue;
            }
            let descriptor = import_layer(source, &content, path, diff_id)?;
            stored.insert(diff_id.clone(), descriptor.clone());
            layers.push(descriptor);
        }
        let config_desc = content.write_bytes(&config_bytes, MediaType::ImageConfig)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config_desc.clone())
            .layers(layers)
            .build()
            .map_err(|e| Error::InvalidImage { what: "manifest".into(), problem: e.to_string() })?;
        let manifest = content.write_json(&manifest, MediaType::ImageManifest)?;
        content.read_image(&manifest)?;
        loaded.push(LoadedImage {
            manifest,
            image_id: config_desc.digest().clone(),
            names: entry.repo_tags.unwrap_or_default(),
        });
    }
    Ok(loaded)
}

/// Stores one layer file: an uncompressed tar is gzip-compressed (entry names checked on the
/// way), a compressed one is stored as is; the diffID is verified either way.
fn import_layer(source: &Source, content: &ContentStore, path: &str, diff_id: &Digest) -> Result<Descriptor> {
    let (reader, size) = source.open_file(path)?;
    let what = format!("layer {path} in {}", source.path().display());
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf().ctx("read", &what)?;
    match sniff(head) {
        Compression::None => {
            let layer = content.write_layer_from_tar(&mut buffered, &DiffOptions::default(), &what)?;
            if layer.diff_id != *diff_id {
                return Err(Error::diff_id_mismatch(layer.descriptor.digest(), diff_id, &layer.diff_id));
            }
            Ok(layer.descriptor)
        }
        _ => {
            let (info, compression) =
                store_layer_verified(content, &mut buffered, None, Some(size), diff_id, &what)?;
            Ok(info.descriptor(layer_media_type(compression)))
        }
    }
}

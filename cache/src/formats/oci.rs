//! OCI image layout (directory) and OCI archive (the layout in a tar).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, PlatformBuilder, SCHEMA_VERSION,
};

use super::source::{Source, archive_error};
use super::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ExportImage, LoadedImage, append_blob, append_dir,
    append_file, store_layer_verified, tag_of,
};
use crate::content::ContentStore;
use crate::error::{Error, Result};
use crate::image::{DocKind, doc_kind, is_config_media_type};
use crate::layout::parse_digest;
use crate::store::Store;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes an OCI archive: `oci-layout`, the blobs, then `index.json`.
pub(super) fn save(store: &Store, images: &[ExportImage], out: &mut dyn Write) -> Result<()> {
    let content = store.content();
    let mut builder = tar::Builder::new(out);
    append_file(&mut builder, "oci-layout", OCI_LAYOUT.len() as u64, &mut &OCI_LAYOUT[..])?;
    append_dir(&mut builder, "blobs/")?;
    append_dir(&mut builder, "blobs/sha256/")?;
    let mut written = HashSet::new();
    let mut manifests = Vec::new();
    for image in images {
        // plain-tar layers of the store leave the machine gzip-compressed
        let target = store.distributable(&image.target)?;
        let read = content.read_image(&target)?;
        let digests = std::iter::once(read.manifest_descriptor.digest())
            .chain(std::iter::once(read.manifest.config().digest()))
            .chain(read.manifest.layers().iter().map(|l| l.digest()));
        for digest in digests {
            if written.insert(digest.clone()) {
                append_blob(&mut builder, &content, digest)?;
            }
        }
        let platform = PlatformBuilder::default()
            .architecture(read.config.architecture().clone())
            .os(read.config.os().clone())
            .build()
            .map_err(|e| Error::InvalidImage { what: "platform".into(), problem: e.to_string() })?;
        let mut descriptor = read.manifest_descriptor.clone();
        descriptor.set_platform(Some(platform));
        // the target's own descriptor annotations (a build's `manifest-descriptor:` ones)
        let own: HashMap<String, String> = image.target.annotations().clone().unwrap_or_default();
        descriptor.set_annotations((!own.is_empty()).then(|| own.clone()));
        if image.names.is_empty() {
            manifests.push(descriptor.clone());
        }
        for name in &image.names {
            let mut named = descriptor.clone();
            let mut annotations = own.clone();
            annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), name.clone());
            annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag_of(name).unwrap_or(name).to_owned());
            named.set_annotations(Some(annotations));
            manifests.push(named);
        }
    }
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| Error::InvalidImage { what: "index.json".into(), problem: e.to_string() })?;
    let bytes =
        serde_json::to_vec(&index).map_err(|source| Error::Json { what: "index.json".into(), source })?;
    append_file(&mut builder, "index.json", bytes.len() as u64, &mut &bytes[..])?;
    builder.finish().map_err(|source| Error::Tar { op: "write", what: "OCI archive".into(), source })
}

/// Loads every manifest `index.json` lists (for a nested index: the host platform's manifest).
pub(super) fn load(store: &Store, source: &Source) -> Result<Vec<LoadedImage>> {
    let layout: serde_json::Value = source.read_json("oci-layout")?;
    if !layout.get("imageLayoutVersion").is_some_and(|v| v.is_string()) {
        return Err(archive_error(source.path(), "oci-layout has no imageLayoutVersion"));
    }
    let index: ImageIndex = source.read_json("index.json")?;
    let content = store.content();
    let mut loaded = Vec::new();
    for entry in index.manifests() {
        let manifest = match doc_kind(entry.media_type()) {
            Some(DocKind::Manifest) => entry.clone(),
            Some(DocKind::Index) => {
                copy_blob(source, &content, entry)?;
                let mut chosen = content.platform_manifest(entry)?;
                chosen.set_annotations(entry.annotations().clone());
                chosen
            }
            None => {
                return Err(Error::UnsupportedMediaType {
                    what: format!("index.json entry {} in {}", entry.digest(), source.path().display()),
                    media_type: entry.media_type().to_string(),
                });
            }
        };
        let image_id = import_manifest(source, &content, &manifest)?;
        let mut names = Vec::new();
        if let Some(annotations) = entry.annotations() {
            if let Some(name) = annotations.get(ANNOTATION_IMAGE_NAME) {
                names.push(name.clone());
            } else if let Some(name) = annotations.get(ANNOTATION_REF_NAME)
                && (name.contains('/') || name.contains(':'))
            {
                names.push(name.clone());
            }
        }
        let mut manifest = manifest;
        manifest.set_annotations(None);
        manifest.set_platform(None);
        loaded.push(LoadedImage { manifest, image_id, names });
    }
    Ok(loaded)
}

/// Copies the blob `descriptor` names from the layout into the store, verifying size and digest.
fn copy_blob(source: &Source, content: &ContentStore, descriptor: &Descriptor) -> Result<()> {
    if content.contains(descriptor.digest()) {
        let size = content.size(descriptor.digest())?;
        if size != descriptor.size() {
            return Err(Error::size_mismatch(descriptor.digest(), descriptor.size(), size));
        }
        return Ok(());
    }
    content.blob_path(descriptor.digest())?; // refuses non-sha256 before touching the archive
    let name = format!("blobs/sha256/{}", descriptor.digest().digest());
    let (mut reader, size) = source.open_file(&name)?;
    if size != descriptor.size() {
        return Err(Error::size_mismatch(descriptor.digest(), descriptor.size(), size));
    }
    content.write_from(&mut reader, descriptor.digest(), Some(descriptor.size()))?;
    Ok(())
}

/// Imports one manifest with its config and layers; returns the image ID.
fn import_manifest(
    source: &Source,
    content: &ContentStore,
    descriptor: &Descriptor,
) -> Result<oci_spec::image::Digest> {
    copy_blob(source, content, descriptor)?;
    let manifest: ImageManifest = content.read_json(descriptor.digest())?;
    if !is_config_media_type(manifest.config().media_type()) {
        return Err(Error::UnsupportedMediaType {
            what: format!("config of manifest {}", descriptor.digest()),
            media_type: manifest.config().media_type().to_string(),
        });
    }
    copy_blob(source, content, manifest.config())?;
    let config: oci_spec::image::ImageConfiguration = content.read_json(manifest.config().digest())?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::InvalidImage {
            what: format!("manifest {}", descriptor.digest()),
            problem: format!(
                "{} layers but the config lists {} diffIDs",
                manifest.layers().len(),
                diff_ids.len()
            ),
        });
    }
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        if content.contains(layer.digest()) {
            let size = content.size(layer.digest())?;
            if size != layer.size() {
                return Err(Error::size_mismatch(layer.digest(), layer.size(), size));
            }
            continue;
        }
        content.blob_path(layer.digest())?;
        let diff_id = parse_digest(diff_id)?;
        let name = format!("blobs/sha256/{}", layer.digest().digest());
        let (mut reader, _) = source.open_file(&name)?;
        let what = format!("layer {} in {}", layer.digest(), source.path().display());
        store_layer_verified(
            content,
            &mut reader,
            Some(layer.digest()),
            Some(layer.size()),
            &diff_id,
            &what,
        )?;
    }
    // Validates media types and the layer/diffID pairing like every other reader.
    let image = content.read_image(descriptor)?;
    Ok(image.id().clone())
}

//! Exporters: the solved target's layer chain + the frontend's image config → an image in the
//! store, then the requested outputs (image store names, OCI/docker archives, flattened rootfs
//! tar or directory). Registry pushes are done by the caller with `registry::push_manifest` on
//! [`ExportedImage::manifest`] (the CLI owns the registry client and its credentials).
//!
//! - [`finalize_config`]: fills `rootfs.diff_ids`, aligns the history with the layers
//!   (BuildKit's rule), applies `--label`s and `SOURCE_DATE_EPOCH`.
//! - [`write_image`]: config + OCI manifest as canonical JSON (sorted keys), so two cold builds
//!   with the same epoch on two roots give the same manifest digest.
//! - [`output`]: `--output` parsing ([`output::Output::parse`]) and writing ([`output::write`]).

pub mod output;

use std::collections::HashMap;

use cache::Store;
use cache::buildcache::CachedLayer;
use oci_spec::image::{
    Descriptor, Digest, History, ImageConfiguration, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};

use crate::graph::canonical::to_canonical_json;

/// Comment BuildKit puts on history entries it had to invent for unaccounted layers.
const SYNTHETIC_HISTORY_COMMENT: &str = "buildkit.exporter.image.v0";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("store: {0}")]
    Store(#[from] cache::Error),
    #[error("cannot encode the image {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid image manifest: {0}")]
    Manifest(#[source] oci_spec::OciSpecError),
    #[error("invalid output `{spec}`: {problem}")]
    InvalidOutput { spec: String, problem: String },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the build result is not a filesystem (no layer chain)")]
    NotLayers,
}

/// Image settings that come from the command line rather than the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// `--label K=V` (override the Dockerfile's LABELs).
    pub labels: Vec<(String, String)>,
    /// `SOURCE_DATE_EPOCH` / `--source-date-epoch`: config and history timestamps, layer mtimes.
    pub source_date_epoch: Option<i64>,
    /// Docker-only fields of the runtime config the OCI type has no place for (`Healthcheck`,
    /// `OnBuild`, `Shell`, `ArgsEscaped`), merged into `config` when the image is written.
    pub config_extras: std::collections::BTreeMap<String, serde_json::Value>,
    /// Fields added at the top level of the image config (`--cache-to type=inline`).
    pub config_top_level: std::collections::BTreeMap<String, serde_json::Value>,
    /// `--annotation`.
    pub annotations: Annotations,
}

/// `--annotation`s of a single-platform image (BuildKit refuses index annotations there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `KEY=VALUE` / `manifest:KEY=VALUE`: in the manifest (they change its digest).
    pub manifest: std::collections::BTreeMap<String, String>,
    /// `manifest-descriptor:KEY=VALUE`: on the manifest's descriptor (an OCI archive's
    /// `index.json` entry, the metadata file's `containerimage.descriptor`).
    pub manifest_descriptor: std::collections::BTreeMap<String, String>,
}

/// An image written to the store.
#[derive(Debug, Clone)]
pub struct ExportedImage {
    /// The OCI manifest (what names point at; `containerimage.digest`).
    pub manifest: Descriptor,
    /// The config digest: the image ID (`containerimage.config.digest`).
    pub config_digest: Digest,
    /// The final config.
    pub config: ImageConfiguration,
    /// The layers, bottom first.
    pub layers: Vec<CachedLayer>,
}

pub use cache::rfc3339_from_epoch;

/// Epoch seconds of an RFC 3339 timestamp (enough to compare history times with the epoch);
/// `None` when it is not one.
fn epoch_of(timestamp: &str) -> Option<i64> {
    cache::epoch_of_rfc3339(timestamp)
}

/// Completes the frontend's image config for `layers`: diffIDs, history aligned with the
/// layers, labels, creation time.
///
/// History: when the non-empty entries outnumber the layers, the extra ones (from the top) are
/// marked `empty_layer`; when layers are unaccounted, entries are appended for them (BuildKit's
/// `normalizeLayersAndHistory`). Without an epoch, entries without a time get their layer's
/// time from `layer_times` (when it was made; an empty entry the time before it) and the image
/// is as old as its last entry, else now. With an epoch, `created` is the epoch and history
/// times after it are clamped to it; entries without a time get the image's `created`.
pub fn finalize_config(
    mut config: ImageConfiguration,
    layers: &[CachedLayer],
    layer_times: &[Option<String>],
    options: &ImageOptions,
) -> ImageConfiguration {
    config.rootfs_mut().set_diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect());

    let mut history = config.history().clone().unwrap_or_default();
    let mut counted = 0usize;
    for entry in &mut history {
        if entry.empty_layer().unwrap_or(false) {
            continue;
        }
        if counted >= layers.len() {
            entry.set_empty_layer(Some(true));
        } else {
            counted += 1;
        }
    }
    let created_fallback = options.source_date_epoch.map(rfc3339_from_epoch);
    for _ in counted..layers.len() {
        let mut entry = History::default();
        entry.set_created(created_fallback.clone().or_else(|| config.created().clone()));
        entry.set_created_by(Some("kiln".to_owned()));
        entry.set_comment(Some(SYNTHETIC_HISTORY_COMMENT.to_owned()));
        history.push(entry);
    }

    if options.source_date_epoch.is_none() {
        // a layer's entry gets the time the layer was made, an empty entry the time before it;
        // the image's time is the last of them (BuildKit's exporter)
        let mut layer = 0;
        let mut last: Option<String> = None;
        for entry in &mut history {
            if !entry.empty_layer().unwrap_or(false) {
                let made = layer_times.get(layer).cloned().flatten();
                layer += 1;
                if entry.created().is_none() {
                    entry.set_created(made);
                }
            }
            if entry.created().is_none() {
                entry.set_created(last.clone());
            }
            if entry.created().is_some() {
                last = entry.created().clone();
            }
        }
        if config.created().is_none() {
            config.set_created(last);
        }
    }
    if let Some(epoch) = options.source_date_epoch {
        let stamp = rfc3339_from_epoch(epoch);
        for entry in &mut history {
            let later = entry.created().as_deref().and_then(epoch_of).is_none_or(|t| t > epoch);
            if later {
                entry.set_created(Some(stamp.clone()));
            }
        }
        config.set_created(Some(stamp));
    } else if config.created().is_none() {
        config.set_created(Some(cache::now_rfc3339()));
    }
    // every entry gets a time, as BuildKit's exporter does: the image's creation time
    for entry in &mut history {
        if entry.created().is_none() {
            entry.set_created(config.created().clone());
        }
    }
    config.set_history(Some(history));

    if !options.labels.is_empty() {
        let mut runtime = config.config().clone().unwrap_or_default();
        let mut labels = runtime.labels().clone().unwrap_or_default();
        for (key, value) in &options.labels {
            labels.insert(key.clone(), value.clone());
        }
        runtime.set_labels(Some(labels));
        config.set_config(Some(runtime));
    }
    config
}

/// Writes `config` (already finalized) and an OCI manifest over `layers` into the content store,
/// both as canonical JSON. Nothing is named: see [`output::write`].
pub fn write_image(
    store: &Store,
    config: ImageConfiguration,
    layers: &[CachedLayer],
) -> Result<ExportedImage, ExportError> {
    write_image_with(store, config, &Default::default(), layers)
}

/// [`write_image`] with docker-only runtime config fields ([`ImageOptions::config_extras`]).
pub fn write_image_with(
    store: &Store,
    config: ImageConfiguration,
    extras: &std::collections::BTreeMap<String, serde_json::Value>,
    layers: &[CachedLayer],
) -> Result<ExportedImage, ExportError> {
    write_image_full(store, config, extras, &Default::default(), layers)
}

/// [`write_image_with`] plus fields at the top level of the config
/// ([`ImageOptions::config_top_level`]).
pub fn write_image_full(
    store: &Store,
    config: ImageConfiguration,
    extras: &std::collections::BTreeMap<String, serde_json::Value>,
    top_level: &std::collections::BTreeMap<String, serde_json::Value>,
    layers: &[CachedLayer],
) -> Result<ExportedImage, ExportError> {
    write_image_annotated(store, config, extras, top_level, &Annotations::default(), layers)
}

/// [`write_image_full`] with `--annotation`s on the manifest and its descriptor.
pub fn write_image_annotated(
    store: &Store,
    config: ImageConfiguration,
    extras: &std::collections::BTreeMap<String, serde_json::Value>,
    top_level: &std::collections::BTreeMap<String, serde_json::Value>,
    annotations: &Annotations,
    layers: &[CachedLayer],
) -> Result<ExportedImage, ExportError> {
    let content = store.content();
    for layer in layers {
        if !content.contains(layer.blob.digest()) {
            return Err(cache::Error::BlobNotFound(layer.blob.digest().clone()).into());
        }
    }
    let mut value =
        serde_json::to_value(&config).map_err(|source| ExportError::Encode { what: "config", source })?;
    if !extras.is_empty()
        && let Some(object) = value.as_object_mut()
    {
        let runtime = object.entry("config").or_insert_with(|| serde_json::json!({}));
        if let Some(runtime) = runtime.as_object_mut() {
            for (key, extra) in extras {
                runtime.insert(key.clone(), extra.clone());
            }
        }
    }
    if let Some(object) = value.as_object_mut() {
        for (key, field) in top_level {
            object.insert(key.clone(), field.clone());
        }
    }
    let config_bytes =
        to_canonical_json(&value).map_err(|source| ExportError::Encode { what: "config", source })?;
    let config_desc = content.write_bytes(&config_bytes, MediaType::ImageConfig)?;
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(layers.iter().map(|l| l.blob.clone()).collect::<Vec<_>>())
        .build()
        .map_err(ExportError::Manifest)?;
    if !annotations.manifest.is_empty() {
        manifest.set_annotations(Some(annotations.manifest.clone().into_iter().collect()));
    }
    let manifest_bytes =
        to_canonical_json(&manifest).map_err(|source| ExportError::Encode { what: "manifest", source })?;
    let mut manifest_desc = content.write_bytes(&manifest_bytes, MediaType::ImageManifest)?;
    if !annotations.manifest_descriptor.is_empty() {
        manifest_desc.set_annotations(Some(annotations.manifest_descriptor.clone().into_iter().collect()));
    }
    Ok(ExportedImage {
        manifest: manifest_desc,
        config_digest: config_desc.digest().clone(),
        config,
        layers: layers.to_vec(),
    })
}

/// The `--metadata-file` JSON (buildx's keys).
pub fn metadata_json(image: &ExportedImage, names: &[String]) -> serde_json::Value {
    let mut map: HashMap<&str, serde_json::Value> = HashMap::new();
    map.insert("containerimage.digest", image.manifest.digest().to_string().into());
    map.insert("containerimage.config.digest", image.config_digest.to_string().into());
    map.insert(
        "containerimage.descriptor",
        serde_json::json!({
            "mediaType": image.manifest.media_type().to_string(),
            "digest": image.manifest.digest().to_string(),
            "size": image.manifest.size(),
        }),
    );
    if !names.is_empty() {
        map.insert("image.name", names.join(",").into());
    }
    serde_json::json!(map)
}

#[cfg(test)]
mod tests;

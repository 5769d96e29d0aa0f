//! Reading and writing images in the store: index → platform manifest → config + layers.

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType, Os,
    SCHEMA_VERSION,
};

use crate::config::{DockerExtras, parse_image_config};
use crate::content::ContentStore;
use crate::error::{Error, Result};
use crate::layout::parse_digest;
use crate::snapshot::LayerRef;

/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer media type (docker save writes these in its OCI index).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// What kind of document a media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Index,
    Manifest,
}

/// Classifies a manifest-ish media type; `None` for anything else.
pub fn doc_kind(media_type: &MediaType) -> Option<DocKind> {
    match media_type {
        MediaType::ImageIndex => Some(DocKind::Index),
        MediaType::ImageManifest => Some(DocKind::Manifest),
        MediaType::Other(s) if s == DOCKER_MANIFEST_LIST => Some(DocKind::Index),
        MediaType::Other(s) if s == DOCKER_MANIFEST => Some(DocKind::Manifest),
        _ => None,
    }
}

/// True for layer media types kiln can unpack.
pub fn is_layer_media_type(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageLayer | MediaType::ImageLayerGzip | MediaType::ImageLayerZstd => true,
        MediaType::Other(s) => s == DOCKER_LAYER_GZIP || s == DOCKER_LAYER_TAR,
        _ => false,
    }
}

/// True for config media types kiln understands.
pub fn is_config_media_type(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageConfig => true,
        MediaType::Other(s) => s == DOCKER_CONFIG,
        _ => false,
    }
}

/// The platform kiln runs images for: linux and the host architecture.
pub fn host_platform() -> (Os, Arch) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::Other(other.to_owned()),
    };
    (Os::Linux, arch)
}

/// One image (a single-platform manifest), fully read and validated.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest actually used (for an index: the host platform's entry).
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The Docker-only runtime fields of the config (`Healthcheck`, `OnBuild`, `Shell`).
    pub docker: DockerExtras,
}

impl Image {
    /// The image ID docker shows: the config digest.
    pub fn id(&self) -> &oci_spec::image::Digest {
        self.manifest.config().digest()
    }

    /// The layers paired with their diffIDs, bottom first.
    pub fn layers(&self) -> Result<Vec<LayerRef>> {
        let diff_ids = self.config.rootfs().diff_ids();
        self.manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(blob, diff)| Ok(LayerRef { blob: blob.clone(), diff_id: parse_digest(diff)? }))
            .collect()
    }

    /// Sum of the config and layer blob sizes.
    pub fn content_size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

impl ContentStore {
    /// Reads the image `target` points at (a manifest, or an index from which the host
    /// platform's manifest is taken) and validates media types and layer counts.
    pub fn read_image(&self, target: &Descriptor) -> Result<Image> {
        let manifest_descriptor = self.platform_manifest(target)?;
        let manifest: ImageManifest = self.read_json(manifest_descriptor.digest())?;
        let what = format!("manifest {}", manifest_descriptor.digest());
        if !is_config_media_type(manifest.config().media_type()) {
            return Err(Error::UnsupportedMediaType {
                what: format!("config of {what}"),
                media_type: manifest.config().media_type().to_string(),
            });
        }
        for layer in manifest.layers() {
            if !is_layer_media_type(layer.media_type()) {
                return Err(Error::UnsupportedMediaType {
                    what: format!("layer {} of {what}", layer.digest()),
                    media_type: layer.media_type().to_string(),
                });
            }
        }
        let config_digest = manifest.config().digest();
        let (config, docker) = parse_image_config(&self.read(config_digest)?)
            .map_err(|source| Error::Json { what: format!("blob {config_digest}"), source })?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            return Err(Error::InvalidImage {
                what,
                problem: format!(
                    "{} layers but the config lists {} diffIDs",
                    manifest.layers().len(),
                    config.rootfs().diff_ids().len()
                ),
            });
        }
        for diff in config.rootfs().diff_ids() {
            parse_digest(diff)?;
        }
        Ok(Image { manifest_descriptor, manifest, config, docker })
    }

    /// For a manifest descriptor, itself; for an index, the entry for the host platform
    /// (linux/amd64 on this machine), else the only entry.
    pub fn platform_manifest(&self, target: &Descriptor) -> Result<Descriptor> {
        match doc_kind(target.media_type()) {
            Some(DocKind::Manifest) => Ok(target.clone()),
            Some(DocKind::Index) => {
                let index: ImageIndex = self.read_json(target.digest())?;
                let (os, arch) = host_platform();
                let manifests = index.manifests();
                let chosen = manifests
                    .iter()
                    .find(|m| {
                        m.platform().as_ref().is_some_and(|p| *p.os() == os && *p.architecture() == arch)
                    })
                    .or(if manifests.len() == 1 { manifests.first() } else { None })
                    .ok_or_else(|| Error::InvalidImage {
                        what: format!("index {}", target.digest()),
                        problem: format!("no manifest for {os}/{arch}"),
                    })?;
                if doc_kind(chosen.media_type()) != Some(DocKind::Manifest) {
                    return Err(Error::UnsupportedMediaType {
                        what: format!("entry {} of index {}", chosen.digest(), target.digest()),
                        media_type: chosen.media_type().to_string(),
                    });
                }
                Ok(chosen.clone())
            }
            None => Err(Error::UnsupportedMediaType {
                what: format!("image {}", target.digest()),
                media_type: target.media_type().to_string(),
            }),
        }
    }

    /// Writes an image: `config` (whose `rootfs.diff_ids` must list one diffID per layer) and an
    /// OCI manifest over `layers`, whose blobs must be present. Returns the manifest descriptor.
    pub fn write_image(&self, config: &ImageConfiguration, layers: &[Descriptor]) -> Result<Descriptor> {
        if config.rootfs().diff_ids().len() != layers.len() {
            return Err(Error::InvalidImage {
                what: "being written".into(),
                problem: format!("{} layers but {} diffIDs", layers.len(), config.rootfs().diff_ids().len()),
            });
        }
        for layer in layers {
            if !self.contains(layer.digest()) {
                return Err(Error::BlobNotFound(layer.digest().clone()));
            }
        }
        let config_desc = self.write_json(config, MediaType::ImageConfig)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(layers.to_vec())
            .build()
            .map_err(|e| Error::InvalidImage { what: "manifest".into(), problem: e.to_string() })?;
        self.write_json(&manifest, MediaType::ImageManifest)
    }
}

/// Now as an RFC 3339 timestamp (UTC, nanoseconds), written as Go's `time.RFC3339Nano` writes it
/// (docker, BuildKit, skopeo): trailing zeros of the fraction dropped, so a tool that decodes and
/// re-encodes the config writes the same bytes (and the image ID survives it).
pub fn now_rfc3339() -> String {
    rfc3339_like_go(chrono::Utc::now())
}

/// Seconds since the epoch → RFC 3339 UTC (`2000-01-01T00:00:00Z`; out of range: the epoch).
pub fn rfc3339_from_epoch(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Epoch seconds of an RFC 3339 timestamp; `None` when it is not one.
pub fn epoch_of_rfc3339(timestamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(timestamp).ok().map(|t| t.timestamp())
}

/// `time` as Go's `RFC3339Nano`: `2026-12-02T08:50:01.12Z`, `2026-12-02T08:50:01Z`.
pub fn rfc3339_like_go(time: chrono::DateTime<chrono::Utc>) -> String {
    let text = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match text.split_once('.') {
        Some((seconds, fraction)) => {
            let digits = fraction.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() { format!("{seconds}Z") } else { format!("{seconds}.{digits}Z") }
        }
        None => text,
    }
}

#[cfg(test)]
mod time_tests {
    use super::rfc3339_like_go;
    use chrono::TimeZone;

    #[test]
    fn fractions_are_written_as_go_writes_them() {
        let at = |nanos| chrono::Utc.timestamp_opt(1_795_386_175, nanos).unwrap();
        assert_eq!(rfc3339_like_go(at(0)), "2026-11-22T22:22:55Z");
        assert_eq!(rfc3339_like_go(at(120_000_000)), "2026-11-22T22:22:55.12Z");
        assert_eq!(rfc3339_like_go(at(123_456_789)), "2026-11-22T22:22:55.123456789Z");
        assert_eq!(rfc3339_like_go(at(100)), "2026-11-22T22:22:55.0000001Z");
    }
}

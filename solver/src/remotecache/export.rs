//! `--cache-to`: a [`CacheConfig`] written as a cache manifest (an OCI image manifest whose
//! config is the cache config and whose layers are every layer it names) to a registry or to an
//! OCI image layout directory.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use cache::Store;
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType};

use super::RemoteCacheError;
use super::format::{CONFIG_MEDIA_TYPE, CacheConfig};
use super::import::{RemoteCache, blob_path};
use super::spec::{CacheExport, CacheLocation};

/// The OCI annotation naming a manifest of a layout (`tag=`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The cache manifest.
    pub manifest: Descriptor,
    pub records: usize,
    pub layers: usize,
}

/// Writes `config` where `export` says. Layers the store keeps as plain tars are exported as
/// their gzip blobs ([`CacheConfig::distributable`]); blobs the store lacks (results matched
/// from an import and never needed) are fetched from `remote` first.
pub async fn export(
    export: &CacheExport,
    config: &CacheConfig,
    store: &Store,
    client: Option<&registry::Client>,
    remote: Option<&RemoteCache>,
) -> Result<Exported, RemoteCacheError> {
    let config = &{
        let (store, config) = (store.clone(), config.clone());
        tokio::task::spawn_blocking(move || config.distributable(&store))
            .await
            .map_err(|err| RemoteCacheError::Invalid(format!("export task failed: {err}")))??
    };
    let blobs = config.blobs();
    // A blob the store lacks is fetched first, unless the destination registry is the one it
    // would come from: the push finds it there, or mounts it from the imported repository.
    let same_registry = |digest: &Digest| match (&export.location, remote) {
        (CacheLocation::Registry(reference), Some(remote)) => {
            remote.blob_registry(digest) == Some(reference.registry())
        }
        _ => false,
    };
    let ensure = |all: bool| {
        let blobs = &blobs;
        async move {
            for blob in blobs {
                if store.content().contains(blob.digest()) || (!all && same_registry(blob.digest())) {
                    continue;
                }
                match remote {
                    Some(remote) => remote.ensure_blob(store, blob).await?,
                    None => return Err(RemoteCacheError::BlobUnknown(blob.digest().clone())),
                }
            }
            Ok::<(), RemoteCacheError>(())
        }
    };
    ensure(false).await?;
    let content = store.content();
    let bytes = serde_json::to_vec(config).map_err(RemoteCacheError::Json)?;
    let config_descriptor = content.write_bytes(&bytes, MediaType::Other(CONFIG_MEDIA_TYPE.into()))?;
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(blobs.clone())
        .build()
        .map_err(|err| RemoteCacheError::Invalid(format!("cannot build the cache manifest: {err}")))?;
    let manifest_descriptor = content.write_json(&manifest, MediaType::ImageManifest)?;
    match &export.location {
        CacheLocation::Registry(reference) => {
            let client = client.ok_or(RemoteCacheError::NoRegistryClient)?;
            let progress = registry::Progress::none();
            if let Err(err) =
                registry::push_manifest(client, store, &manifest_descriptor, reference, &progress).await
            {
                // a blob could be neither found nor mounted there: fetch everything, push again
                if blobs.iter().all(|b| store.content().contains(b.digest())) {
                    return Err(err.into());
                }
                tracing::debug!(error = %err, "cache push without local blobs failed; fetching them");
                ensure(true).await?;
                registry::push_manifest(client, store, &manifest_descriptor, reference, &progress).await?;
            }
        }
        CacheLocation::Inline => {
            return Err(RemoteCacheError::Invalid("an inline cache is written with the image config".into()));
        }
        CacheLocation::Local { dir, tag, .. } => {
            let (store, dir, tag) = (store.clone(), dir.clone(), tag.clone());
            let (descriptor, manifest) = (manifest_descriptor.clone(), manifest.clone());
            tokio::task::spawn_blocking(move || write_layout(&store, &dir, &tag, &descriptor, &manifest))
                .await
                .map_err(|err| RemoteCacheError::Invalid(format!("export task failed: {err}")))??;
        }
    }
    Ok(Exported { manifest: manifest_descriptor, records: config.records.len(), layers: blobs.len() })
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RemoteCacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| RemoteCacheError::io("create a temporary file in", dir, source))?;
    tmp.write_all(bytes).map_err(|source| RemoteCacheError::io("write", tmp.path(), source))?;
    tmp.as_file().sync_all().map_err(|source| RemoteCacheError::io("sync", tmp.path(), source))?;
    tmp.persist(path).map_err(|err| RemoteCacheError::io("rename to", path, err.error))?;
    Ok(())
}

/// Copies one blob of the store into the layout unless it is there.
fn copy_blob(store: &Store, dir: &Path, digest: &Digest) -> Result<(), RemoteCacheError> {
    let dest = blob_path(dir, digest);
    if dest.exists() {
        return Ok(());
    }
    let source = store.content().blob_path(digest)?;
    let parent = dest.parent().unwrap_or(dir);
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(|source| RemoteCacheError::io("create a temporary file in", parent, source))?;
    let mut file = std::fs::File::open(&source).map_err(|err| RemoteCacheError::io("open", &source, err))?;
    std::io::copy(&mut file, tmp.as_file_mut()).map_err(|err| RemoteCacheError::io("copy", &source, err))?;
    tmp.as_file().sync_all().map_err(|err| RemoteCacheError::io("sync", tmp.path(), err))?;
    tmp.persist(&dest).map_err(|err| RemoteCacheError::io("rename to", &dest, err.error))?;
    Ok(())
}

/// Writes the cache into the OCI layout `dir` as `tag`, then removes the blobs no manifest of
/// the layout references.
fn write_layout(
    store: &Store,
    dir: &Path,
    tag: &str,
    descriptor: &Descriptor,
    manifest: &ImageManifest,
) -> Result<(), RemoteCacheError> {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir)
        .map_err(|source| RemoteCacheError::io("create", &blobs_dir, source))?;
    for digest in manifest
        .layers()
        .iter()
        .map(Descriptor::digest)
        .chain([manifest.config().digest(), descriptor.digest()])
    {
        copy_blob(store, dir, digest)?;
    }
    write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_path = dir.join("index.json");
    let mut entries: Vec<Descriptor> = match std::fs::read(&index_path) {
        Ok(bytes) => match cache::from_json_slice::<ImageIndex>(&bytes) {
            Ok(index) => index.manifests().clone(),
            Err(err) => return Err(RemoteCacheError::Invalid(format!("{}: {err}", index_path.display()))),
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(RemoteCacheError::io("read", &index_path, err)),
    };
    entries.retain(|entry| {
        entry.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF_NAME)).is_none_or(|name| name != tag)
    });
    let mut entry = descriptor.clone();
    entry.set_annotations(Some([(ANNOTATION_REF_NAME.to_owned(), tag.to_owned())].into_iter().collect()));
    entries.push(entry);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    write_atomic(&index_path, &serde_json::to_vec(&index).map_err(RemoteCacheError::Json)?)?;

    // Unreferenced blobs go; if any manifest cannot be read, nothing is removed.
    let mut keep: HashSet<String> = HashSet::new();
    for entry in &entries {
        keep.insert(entry.digest().digest().to_owned());
        let Ok(bytes) = std::fs::read(blob_path(dir, entry.digest())) else { return Ok(()) };
        let Ok(manifest) = cache::from_json_slice::<ImageManifest>(&bytes) else { return Ok(()) };
        keep.insert(manifest.config().digest().digest().to_owned());
        keep.extend(manifest.layers().iter().map(|l| l.digest().digest().to_owned()));
    }
    let listing =
        std::fs::read_dir(&blobs_dir).map_err(|source| RemoteCacheError::io("read", &blobs_dir, source))?;
    for file in listing.flatten() {
        let name = file.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let path = file.path();
            std::fs::remove_file(&path).map_err(|source| RemoteCacheError::io("remove", &path, source))?;
        }
    }
    Ok(())
}

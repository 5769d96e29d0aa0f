//! Single documents and blobs by reference, for callers that are not pulling an image: the
//! build cache's manifest and config (`kiln build --cache-from type=registry`) and the layer
//! blobs it names, fetched one at a time when a build needs them.

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use cache::{BlobInfo, DocKind, Store, is_layer_media_type};
use oci_spec::image::{Descriptor, ImageManifest};

use crate::blob::Repository;
use crate::client::{Client, Scope};
use crate::error::{Error, Result};
use crate::progress::{BlobKind, Progress};
use crate::reference::Reference;
use crate::sources::BlobSources;

/// An image manifest as the registry stores it: its exact bytes, their descriptor and the
/// parsed document (any config media type is accepted: the caller checks it).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    pub manifest: ImageManifest,
}

/// Fetches the image manifest `reference` names (its digest, else its tag). An index is refused
/// ([`Error::UnsupportedMediaType`]); a missing one is [`Error::ManifestNotFound`].
pub async fn fetch_image_manifest(client: &Client, reference: &Reference) -> Result<FetchedManifest> {
    let repository =
        Repository::new(client, reference.registry(), Scope::pull(reference.repository())).await?;
    let fetched = repository.fetch_manifest(&reference.manifest_reference(), reference.digest()).await?;
    if fetched.kind != DocKind::Manifest {
        return Err(Error::UnsupportedMediaType {
            what: format!("{} (expected an image manifest)", reference.familiar()),
            media_type: fetched.media_type.clone(),
        });
    }
    let what = format!("manifest {}", fetched.digest);
    let manifest: ImageManifest = cache::from_json_slice(&fetched.bytes)
        .map_err(|err| Error::InvalidDocument { what: what.clone(), problem: err.to_string() })?;
    if let Some(layer) = manifest.layers().iter().find(|l| !is_layer_media_type(l.media_type())) {
        return Err(Error::UnsupportedMediaType {
            what: format!("layer {} of {what}", layer.digest()),
            media_type: layer.media_type().to_string(),
        });
    }
    Ok(FetchedManifest { descriptor: fetched.descriptor(), bytes: fetched.bytes.clone(), manifest })
}

/// Downloads one blob of the repository `reference` names into the store's content store,
/// verifying its size and digest: nothing is stored when the registry sends other bytes
/// ([`Error::DigestMismatch`] / [`Error::SizeMismatch`]).
pub async fn fetch_blob(
    client: &Client,
    reference: &Reference,
    descriptor: &Descriptor,
    store: &Store,
    progress: &Progress,
) -> Result<BlobInfo> {
    let repository =
        Repository::new(client, reference.registry(), Scope::pull(reference.repository())).await?;
    let cancel = AtomicBool::new(false);
    repository.download(descriptor, &store.content(), BlobKind::Layer, progress, &cancel).await
}

/// Notes that the repository `reference` names holds `digests` (e.g. the layers of an imported
/// build cache), so a later push to another repository of that registry mounts them instead of
/// downloading and uploading them.
pub async fn record_blob_sources<'a>(
    client: &Client,
    store: &Store,
    reference: &Reference,
    digests: impl IntoIterator<Item = &'a oci_spec::image::Digest>,
) -> Result<()> {
    let repository =
        Repository::new(client, reference.registry(), Scope::pull(reference.repository())).await?;
    BlobSources::new(store).record(digests, &format!("{}/{}", repository.registry(), repository.name()));
    Ok(())
}

//! Push: store → registry. Plain-tar layers (what builds store) are gzip-compressed first
//! (`cache::Store::distributable`, remembered per layer), so the pushed manifest differs from the
//! local one in its layer descriptors only: config and image ID are the same. Uploads the config
//! and layers of each manifest in parallel (skipping blobs the repository has, mounting blobs
//! known to be in another repository of the same registry), then puts the manifest — and for an
//! index, every platform manifest by digest before the index itself.

use bytes::Bytes;
use cache::{DocKind, Store, doc_kind};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::blob::Repository;
use crate::client::{Client, Scope};
use crate::error::{Error, Result};
use crate::progress::{BlobKind, Event, Progress, Skipped};
use crate::reference::Reference;
use crate::sources::{BlobSources, mount_source};

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The pushed manifest or index (its digest is what the registry stores).
    pub manifest: Descriptor,
    /// Bytes uploaded (blobs skipped or mounted not counted).
    pub uploaded: u64,
}

/// Pushes the local image named `reference` (fully qualified name in the image store, e.g.
/// `localhost:5000/app:1`) to the registry and repository the reference names.
pub async fn push(
    client: &Client,
    store: &Store,
    reference: &Reference,
    progress: &Progress,
) -> Result<Pushed> {
    let wrap = |source: Error| Error::Push { image: reference.familiar(), source: Box::new(source) };
    let name = match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.name()),
        None => reference.to_string(),
    };
    let record = match store.images().get(&name).map_err(|e| wrap(e.into()))? {
        Some(record) => record,
        None => return Err(wrap(Error::ImageNotFound(reference.familiar()))),
    };
    push_manifest(client, store, &record.target, reference, progress).await
}

/// Pushes the manifest or index `target` (in the store) as `destination` (its tag, or by digest
/// when it has none). For exporters that have a descriptor rather than a name.
pub async fn push_manifest(
    client: &Client,
    store: &Store,
    target: &Descriptor,
    destination: &Reference,
    progress: &Progress,
) -> Result<Pushed> {
    push_inner(client, store, target, destination, progress)
        .await
        .map_err(|source| Error::Push { image: destination.familiar(), source: Box::new(source) })
}

async fn push_inner(
    client: &Client,
    store: &Store,
    target: &Descriptor,
    destination: &Reference,
    progress: &Progress,
) -> Result<Pushed> {
    // Layers the store keeps as plain tars leave the machine gzip-compressed.
    let target = &{
        let (store, target) = (store.clone(), target.clone());
        tokio::task::spawn_blocking(move || store.distributable(&target))
            .await
            .map_err(|err| Error::Task(err.to_string()))??
    };
    let repository =
        Repository::new(client, destination.registry(), Scope::push(destination.repository())).await?;
    let content = store.content();
    let mut uploaded = 0;
    if doc_kind(target.media_type()) == Some(DocKind::Index) {
        let index: ImageIndex = content.read_json(target.digest())?;
        for entry in index.manifests() {
            if doc_kind(entry.media_type()) != Some(DocKind::Manifest) {
                return Err(Error::UnsupportedMediaType {
                    what: format!("entry {} of index {}", entry.digest(), target.digest()),
                    media_type: entry.media_type().to_string(),
                });
            }
            uploaded += push_blobs(&repository, store, entry, progress).await?;
            put(&repository, store, entry, entry.digest().as_ref(), progress, destination).await?;
        }
    } else if doc_kind(target.media_type()) == Some(DocKind::Manifest) {
        uploaded += push_blobs(&repository, store, target, progress).await?;
    } else {
        return Err(Error::UnsupportedMediaType {
            what: format!("image {}", target.digest()),
            media_type: target.media_type().to_string(),
        });
    }
    // pushing by digest names the manifest actually sent (compressing layers changes it)
    let tag =
        destination.digest().map(|_| target.digest().to_string()).or(destination.tag().map(str::to_owned));
    let tag = tag.unwrap_or_else(|| target.digest().to_string());
    put(&repository, store, target, &tag, progress, destination).await?;
    Ok(Pushed { manifest: target.clone(), uploaded })
}

/// Puts one manifest document under `reference` (tag or digest).
async fn put(
    repository: &Repository,
    store: &Store,
    descriptor: &Descriptor,
    reference: &str,
    progress: &Progress,
    destination: &Reference,
) -> Result<()> {
    let bytes = Bytes::from(store.content().read(descriptor.digest())?);
    let digest = repository.put_manifest(reference, descriptor.media_type().as_ref(), bytes.clone()).await?;
    let tag = (reference != digest.as_ref()).then(|| reference.to_owned());
    progress.emit(Event::ManifestPushed {
        image: destination.familiar(),
        tag,
        digest,
        size: bytes.len() as u64,
    });
    Ok(())
}

/// Uploads the config and layers of the manifest `descriptor`; returns the bytes uploaded.
async fn push_blobs(
    repository: &Repository,
    store: &Store,
    descriptor: &Descriptor,
    progress: &Progress,
) -> Result<u64> {
    let content = store.content();
    let manifest: ImageManifest = content.read_json(descriptor.digest())?;
    let mut blobs: Vec<(Descriptor, BlobKind)> = Vec::new();
    for layer in manifest.layers() {
        if !blobs.iter().any(|(d, _)| d.digest() == layer.digest()) {
            blobs.push((layer.clone(), BlobKind::Layer));
        }
    }
    blobs.push((manifest.config().clone(), BlobKind::Config));
    for (blob, _) in &blobs {
        if !content.contains(blob.digest()) {
            // must already be in the registry, or be mounted (checked by the upload)
            continue;
        }
        let size = content.size(blob.digest())?;
        if size != blob.size() {
            return Err(Error::SizeMismatch {
                digest: blob.digest().clone(),
                expected: blob.size(),
                actual: size,
            });
        }
    }
    let sources = BlobSources::new(store);
    let limit = repository.client.options().max_concurrent_uploads.max(1);
    let results: Vec<u64> = futures::stream::iter(blobs.iter().map(|(blob, kind)| {
        let (content, sources) = (&content, &sources);
        async move {
            let from = mount_source(&sources.get(blob.digest()), repository.registry(), repository.name());
            let local = content.contains(blob.digest());
            match repository.upload(blob, content, *kind, from.as_deref(), progress).await {
                Ok(None) => Ok(blob.size()),
                Ok(Some(Skipped::Mounted { .. } | Skipped::InRegistry | Skipped::InStore)) => Ok(0),
                // neither here nor mountable
                Err(_) if !local => Err(Error::Store(cache::Error::BlobNotFound(blob.digest().clone()))),
                // The mount source may be gone: upload normally.
                Err(err)
                    if from.is_some() && matches!(err, Error::Unauthorized { .. } | Error::Status { .. }) =>
                {
                    tracing::debug!(error = %err, "mount failed, uploading");
                    repository.upload(blob, content, *kind, None, progress).await.map(|_| blob.size())
                }
                Err(err) => Err(err),
            }
        }
    }))
    .buffer_unordered(limit)
    .try_collect()
    .await?;
    sources.record(
        blobs.iter().map(|(d, _)| d.digest()),
        &format!("{}/{}", repository.registry(), repository.name()),
    );
    Ok(results.iter().sum())
}

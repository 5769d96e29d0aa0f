//! Pull: registry → store. Resolves the reference (an index to the wanted platform's
//! manifest), downloads config and layers in parallel into the content store (each verified;
//! blobs already present are skipped), stores the manifest's exact bytes, then tags the image.
//! Every step is atomic, so an interrupted or failed pull leaves at most unreferenced blobs.

use cache::{BlobState, ContentStore, DocKind, Store};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use oci_spec::image::{Descriptor, Digest, ImageConfiguration};

use crate::blob::Repository;
use crate::client::{Client, Scope};
use crate::error::{Error, Result};
use crate::manifest::{Fetched, choose_platform, parse_image_manifest};
use crate::platform::Platform;
use crate::progress::{BlobKind, Event, Progress, Skipped};
use crate::reference::Reference;
use crate::sources::BlobSources;

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index; `None` means the host (linux/amd64 here).
    pub platform: Option<Platform>,
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name the image was stored under (fully qualified; `repo@digest` for digest pulls).
    pub name: String,
    /// The platform manifest stored and tagged.
    pub manifest: Descriptor,
    /// The index the manifest was chosen from, if the reference named one.
    pub index: Option<Digest>,
    /// The platform chosen from the index.
    pub platform: Option<Platform>,
    /// The image ID (config digest).
    pub config: Digest,
    /// Blobs that were in the store but damaged, and were downloaded again.
    pub repaired: Vec<Digest>,
}

impl Pulled {
    /// The digest docker prints after a pull: the index's if there was one, else the manifest's.
    pub fn repo_digest(&self) -> &Digest {
        self.index.as_ref().unwrap_or(self.manifest.digest())
    }
}

/// Pulls `reference` into `store` and tags it. Errors name the image and the cause.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    progress: &Progress,
) -> Result<Pulled> {
    pull_inner(client, store, reference, options, progress)
        .await
        .map_err(|source| Error::Pull { image: reference.familiar(), source: Box::new(source) })
}

/// Resolves `reference` to the manifest of the wanted platform without downloading blobs:
/// (platform manifest descriptor, index digest if any).
pub async fn resolve(
    client: &Client,
    reference: &Reference,
    options: &PullOptions,
) -> Result<(Descriptor, Option<Digest>)> {
    async {
        let repository =
            Repository::new(client, reference.registry(), Scope::pull(reference.repository())).await?;
        let (manifest, index, _) = resolve_manifest(&repository, reference, options).await?;
        Ok((manifest.descriptor(), index))
    }
    .await
    .map_err(|source| Error::Pull { image: reference.familiar(), source: Box::new(source) })
}

async fn resolve_manifest(
    repository: &Repository,
    reference: &Reference,
    options: &PullOptions,
) -> Result<(Fetched, Option<Digest>, Option<Platform>)> {
    let top = repository.fetch_manifest(&reference.manifest_reference(), reference.digest()).await?;
    match top.kind {
        DocKind::Manifest => Ok((top, None, None)),
        DocKind::Index => {
            let wanted = options.platform.clone().unwrap_or_else(Platform::host);
            let (entry, platform) = choose_platform(&top, &wanted)?;
            let manifest = repository.fetch_manifest(entry.digest().as_ref(), Some(entry.digest())).await?;
            if manifest.kind != DocKind::Manifest {
                return Err(Error::UnsupportedMediaType {
                    what: format!("entry {} of index {}", entry.digest(), top.digest),
                    media_type: manifest.media_type,
                });
            }
            if manifest.bytes.len() as u64 != entry.size() {
                return Err(Error::SizeMismatch {
                    digest: entry.digest().clone(),
                    expected: entry.size(),
                    actual: manifest.bytes.len() as u64,
                });
            }
            Ok((manifest, Some(top.digest), Some(platform)))
        }
    }
}

async fn pull_inner(
    client: &Client,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    progress: &Progress,
) -> Result<Pulled> {
    let repository =
        Repository::new(client, reference.registry(), Scope::pull(reference.repository())).await?;
    let (fetched, index, platform) = resolve_manifest(&repository, reference, options).await?;
    let manifest = parse_image_manifest(&fetched)?;
    progress.emit(Event::Resolved {
        image: reference.familiar(),
        digest: index.clone().unwrap_or_else(|| fetched.digest.clone()),
        platform: platform.clone(),
    });

    let content = store.content();
    if let (Some(wanted), None) = (&options.platform, &index) {
        // A single-platform image pulled with an explicit platform: check the config says so.
        let config = manifest.config();
        if !verified_present(&content, config).await? {
            repository
                .download(config, &content, BlobKind::Config, progress, &AtomicBool::new(false))
                .await?;
        }
        let image: ImageConfiguration = content.read_json(config.digest())?;
        let actual = Platform::new(
            &image.os().to_string(),
            &image.architecture().to_string(),
            image.variant().as_deref(),
        );
        if wanted.match_rank(&actual).is_none() {
            return Err(Error::NoMatchingPlatform {
                wanted: wanted.to_string(),
                available: actual.to_string(),
            });
        }
    }

    let mut blobs: Vec<(Descriptor, BlobKind)> = vec![(manifest.config().clone(), BlobKind::Config)];
    for layer in manifest.layers() {
        if !blobs.iter().any(|(d, _)| d.digest() == layer.digest()) {
            blobs.push((layer.clone(), BlobKind::Layer));
        }
    }
    let limit = client.options().max_concurrent_downloads.max(1);
    // On the first failure the other transfers are told to stop, and awaited, so that no temp
    // file outlives the pull.
    let cancel = AtomicBool::new(false);
    let repaired = std::sync::Mutex::new(Vec::new());
    let results: Vec<Result<()>> = futures::stream::iter(blobs.iter().map(|(descriptor, kind)| {
        let (repository, content, cancel, repaired) = (&repository, &content, &cancel, &repaired);
        async move {
            match verify(content, descriptor).await? {
                BlobState::Intact => {
                    progress.emit(Event::BlobSkipped {
                        digest: descriptor.digest().clone(),
                        kind: *kind,
                        size: descriptor.size(),
                        reason: Skipped::InStore,
                    });
                    return Ok(());
                }
                BlobState::Damaged(damage) => {
                    tracing::warn!(digest = %descriptor.digest(), %damage, "damaged blob in the store: downloading it again");
                    content.remove_damaged(descriptor.digest())?;
                    repaired.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(descriptor.digest().clone());
                }
                BlobState::Missing => {}
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Task("cancelled".into()));
            }
            let result = repository.download(descriptor, content, *kind, progress, cancel).await.map(|_| ());
            if result.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            result
        }
    }))
    .buffer_unordered(limit)
    .collect()
    .await;
    // Completion order: the first error is the cause, later ones are cancellations.
    results.into_iter().collect::<Result<Vec<()>>>()?;

    let mut repaired = repaired.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let descriptor = fetched.descriptor();
    if let BlobState::Damaged(_) = verify(&content, &descriptor).await? {
        // a blob writer keeps a blob that is already there: remove the damaged copy first
        content.remove_damaged(descriptor.digest())?;
        repaired.push(descriptor.digest().clone());
    }
    let stored = content.write_bytes(&fetched.bytes, descriptor.media_type().clone())?;
    if stored.digest() != descriptor.digest() {
        return Err(Error::DigestMismatch {
            what: format!("stored manifest of {}", reference.familiar()),
            expected: descriptor.digest().clone(),
            actual: stored.digest().clone(),
        });
    }
    let name = match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.name()),
        None => reference.to_string(),
    };
    let record = store.images().tag(&name, &descriptor)?;
    BlobSources::new(store).record(
        blobs.iter().map(|(d, _)| d.digest()),
        &format!("{}/{}", repository.registry(), repository.name()),
    );
    Ok(Pulled { name, manifest: descriptor, index, platform, config: record.image_id, repaired })
}

/// Verifies a blob the pull relies on (size first, then sha256) on a blocking thread.
async fn verify(content: &ContentStore, descriptor: &Descriptor) -> Result<BlobState> {
    let (content, digest, size) = (content.clone(), descriptor.digest().clone(), descriptor.size());
    tokio::task::spawn_blocking(move || content.verify(&digest, Some(size)))
        .await
        .map_err(|err| Error::Task(format!("verify blob: {err}")))?
        .map_err(Error::from)
}

/// True if the blob is present and intact; a damaged copy is removed (and false returned).
async fn verified_present(content: &ContentStore, descriptor: &Descriptor) -> Result<bool> {
    match verify(content, descriptor).await? {
        BlobState::Intact => Ok(true),
        BlobState::Missing => Ok(false),
        BlobState::Damaged(_) => {
            content.remove_damaged(descriptor.digest())?;
            Ok(false)
        }
    }
}

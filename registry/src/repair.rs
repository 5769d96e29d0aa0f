//! Fetching damaged content again, for `kiln system check --repair`: a blob the store lost is
//! downloaded from a repository it was pulled from (the store's blob sources). A manifest has no
//! recorded source of its own, so the sources of the image's other blobs (its config, its
//! layers) stand in: they were pulled from the same repository. Content whose source is not
//! known (built or loaded locally) cannot be fetched; the caller removes what needs it.

use std::sync::atomic::AtomicBool;

use cache::{DocKind, Store, doc_kind};
use oci_spec::image::{Descriptor, Digest};

use crate::blob::Repository;
use crate::client::{Client, Scope};
use crate::error::{Error, Result};
use crate::progress::{BlobKind, Progress};
use crate::sources::BlobSources;

/// The outcome for one blob.
#[derive(Debug)]
pub struct Refetched {
    pub digest: Digest,
    /// The repository (`registry/repository`) it came from, or why it could not be fetched.
    pub result: Result<String>,
}

/// Downloads each of `needed` (absent from the store) from a repository it or one of `related`
/// (other blobs of the same image) was pulled from. Sources are tried newest first.
pub async fn refetch(
    client: &Client,
    store: &Store,
    needed: &[Descriptor],
    related: &[Digest],
    progress: &Progress,
) -> Vec<Refetched> {
    let sources = BlobSources::new(store);
    let mut out = Vec::with_capacity(needed.len());
    for descriptor in needed {
        let mut candidates = sources.get(descriptor.digest());
        for digest in related {
            for source in sources.get(digest) {
                if !candidates.contains(&source) {
                    candidates.push(source);
                }
            }
        }
        let mut result = Err(Error::UnknownSource { digest: descriptor.digest().clone() });
        for source in &candidates {
            result = fetch_from(client, store, descriptor, source, progress).await.map(|()| source.clone());
            if result.is_ok() {
                break;
            }
        }
        out.push(Refetched { digest: descriptor.digest().clone(), result });
    }
    out
}

async fn fetch_from(
    client: &Client,
    store: &Store,
    descriptor: &Descriptor,
    source: &str,
    progress: &Progress,
) -> Result<()> {
    let Some((registry, repository)) = source.split_once('/') else {
        return Err(Error::InvalidSource(source.to_owned()));
    };
    let repository = Repository::new(client, registry, Scope::pull(repository)).await?;
    let content = store.content();
    match doc_kind(descriptor.media_type()) {
        Some(DocKind::Manifest | DocKind::Index) => {
            let digest = descriptor.digest();
            let fetched = repository.fetch_manifest(digest.as_ref(), Some(digest)).await?;
            let stored = content.write_bytes(&fetched.bytes, descriptor.media_type().clone())?;
            if stored.digest() != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest from {source}"),
                    expected: digest.clone(),
                    actual: stored.digest().clone(),
                });
            }
        }
        None => {
            let kind = if cache::is_config_media_type(descriptor.media_type()) {
                BlobKind::Config
            } else {
                BlobKind::Layer
            };
            repository.download(descriptor, &content, kind, progress, &AtomicBool::new(false)).await?;
        }
    }
    Ok(())
}

//! Resolving a base image for a build (`FROM`): reference → manifest digest and image config,
//! from the store when it has the image, pulling it otherwise (see [`resolve_image`]).

use cache::{Image, Store};
use oci_spec::image::{Descriptor, Digest};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::progress::Progress;
use crate::pull::{PullOptions, pull};
use crate::reference::Reference;

/// When [`resolve_image`] asks the registry (docker's `--pull` choices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Use the image in the store when the name is there (for the wanted platform); pull it
    /// otherwise. `docker build` without `--pull`.
    #[default]
    Missing,
    /// Ask the registry for the name's current manifest every time, downloading what the store
    /// lacks (`--pull`).
    Always,
    /// Never contact a registry: the image must be in the store.
    Never,
}

/// A base image ready to build on: everything it names is in the store.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The store name it is tagged under (fully qualified; `repo@digest` for digest references).
    pub name: String,
    /// The platform manifest's descriptor: its digest pins the base image (cache keys,
    /// `FROM name@digest` in provenance).
    pub manifest: Descriptor,
    /// The index the manifest was chosen from, when this call pulled from one.
    pub index: Option<Digest>,
    /// The manifest and image config, read and validated from the store.
    pub image: Image,
    /// True if this call contacted the registry and pulled (or refreshed) the image.
    pub pulled: bool,
}

/// Resolves `reference` to a single-platform image in `store`: with [`PullPolicy::Missing`]
/// the stored image is used if the name is tagged (and, when `options.platform` is set, is for
/// that platform); otherwise, or with [`PullPolicy::Always`], it is pulled first like
/// [`crate::pull`] does (blobs already in the store are not downloaded again). Errors name the
/// image and the cause.
pub async fn resolve_image(
    client: &Client,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    policy: PullPolicy,
    progress: &Progress,
) -> Result<ResolvedImage> {
    let name = match reference.digest() {
        Some(digest) => format!("{}@{digest}", reference.name()),
        None => reference.to_string(),
    };
    if policy != PullPolicy::Always
        && let Some(image) = local_image(store, &name, options.platform.as_ref())
            .map_err(|source| Error::Pull { image: reference.familiar(), source: Box::new(source) })?
    {
        return Ok(ResolvedImage {
            name,
            manifest: image.manifest_descriptor.clone(),
            index: None,
            image,
            pulled: false,
        });
    }
    if policy == PullPolicy::Never {
        return Err(Error::ImageNotFound(reference.familiar()));
    }
    let pulled = pull(client, store, reference, options, progress).await?;
    let image = store
        .content()
        .read_image(&pulled.manifest)
        .map_err(|source| Error::Pull { image: reference.familiar(), source: Box::new(source.into()) })?;
    Ok(ResolvedImage {
        name: pulled.name,
        manifest: pulled.manifest,
        index: pulled.index,
        image,
        pulled: true,
    })
}

/// The image tagged `name` in the store, if there is one for `platform` (any, if `None`).
fn local_image(store: &Store, name: &str, platform: Option<&Platform>) -> Result<Option<Image>> {
    let Some(record) = store.images().get(name)? else { return Ok(None) };
    let image = store.content().read_image(&record.target)?;
    if let Some(wanted) = platform {
        let config = &image.config;
        let actual = Platform::new(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        );
        if wanted.match_rank(&actual).is_none() {
            return Ok(None);
        }
    }
    Ok(Some(image))
}

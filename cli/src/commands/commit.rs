//! `kiln commit [-a AUTHOR] [-c INSTRUCTION]… [-m MESSAGE] [-p=false] CONTAINER [REPO[:TAG]]`:
//! a new image whose layers are the container's image's plus its writable layer (the overlay
//! upperdir, whiteouts and opaque directories translated by the cache's layer writer), with
//! the image's config changed by Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
//! USER, VOLUME, WORKDIR, STOPSIGNAL). A running container is paused meanwhile (docker's
//! default), a stopped one cannot be started meanwhile.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use executor::Rootfs;
use executor::runtime::Container;
use executor::runtime::changes::mount_point_stubs;
use executor::runtime::rootfs::{self, Access};
use oci_spec::image::{Descriptor, Digest, HistoryBuilder, MediaType, RootFsBuilder};

use super::images::{normalise, open_store};
use crate::GlobalOptions;

/// Arguments of `kiln commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config; repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause a running container while its layer is written.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// The descriptor of the manifest (or index) the container's image name pointed at.
fn image_descriptor(store: &cache::Store, container: &Container) -> anyhow::Result<Descriptor> {
    let digest: Digest = container.config.image_manifest.parse().with_context(|| {
        format!(
            "container {} was created by an older kiln that did not record its image's manifest",
            container.config.name
        )
    })?;
    let bytes = store
        .content()
        .read(&digest)
        .with_context(|| format!("cannot read the image of {}", container.config.name))?;
    let probe: serde_json::Value =
        serde_json::from_slice(&bytes).context("the container's image manifest is no JSON")?;
    let media_type = match probe["mediaType"].as_str() {
        Some(text) => MediaType::from(text),
        None if probe.get("manifests").is_some() => MediaType::ImageIndex,
        None => MediaType::ImageManifest,
    };
    Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
}

pub fn run(global: &GlobalOptions, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let reference = args.reference.as_deref().map(normalise).transpose()?;
    if reference.as_ref().is_some_and(|r| r.digest().is_some()) {
        anyhow::bail!("a committed image cannot be named with a digest");
    }
    let store = open_store(global)?;
    let runtime = super::container::open(global)?;
    let container = runtime.find(&args.container)?;
    let image = store.content().read_image(&image_descriptor(&store, &container)?)?;
    let mut image_config = image.config.clone();
    // the changes first: a typo must not cost a layer
    let mut config = image_config.config().clone().unwrap_or_default();
    for change in &args.changes {
        cache::formats::apply_change(&mut config, change)?;
    }
    let Rootfs::Overlay { upper: Some(upper), .. } = &container.config.spec.rootfs else {
        anyhow::bail!("container {} has no writable layer of its own", container.config.name);
    };
    let layer = {
        // paused (running) or locked against a start (stopped) while the layer is written
        let _view = if args.pause || container.live_pid().is_none() {
            Some(rootfs::open(&container, Access::Layers)?)
        } else {
            None
        };
        store
            .content()
            .write_layer_skipping(
                &upper.upper,
                cache::DiffSource::OverlayUpper,
                &cache::DiffOptions::default(),
                &mount_point_stubs(&container),
            )
            .with_context(|| format!("cannot write the layer of container {}", container.config.name))?
    };
    let created = cache::now_rfc3339();
    let mut diff_ids = image_config.rootfs().diff_ids().clone();
    diff_ids.push(layer.diff_id.to_string());
    image_config.set_rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build()?);
    image_config.set_config(Some(config));
    image_config.set_created(Some(created.clone()));
    if let Some(author) = &args.author {
        image_config.set_author(Some(author.clone()));
    }
    let mut history = image_config.history().clone().unwrap_or_default();
    let mut entry =
        HistoryBuilder::default().created(created).created_by(container.config.spec.process.args.join(" "));
    if let Some(author) = &args.author {
        entry = entry.author(author.clone());
    }
    if let Some(message) = &args.message {
        entry = entry.comment(message.clone());
    }
    history.push(entry.build()?);
    image_config.set_history(Some(history));
    let mut layers = image.manifest.layers().clone();
    layers.push(layer.descriptor);
    let names: Vec<String> = reference.iter().map(ToString::to_string).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let manifest = store.write_image_tagged(&image_config, &layers, &names)?;
    let committed = store.content().read_image(&manifest)?;
    writeln!(std::io::stdout().lock(), "{}", committed.id())?;
    Ok(ExitCode::SUCCESS)
}

//! `kiln tag SOURCE TARGET`: give an image another name.

use std::process::ExitCode;

use anyhow::Context;

use super::images::{normalise, open_store, resolve};
use crate::GlobalOptions;

/// Arguments of `kiln tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image: name, name@digest, or image ID.
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name.
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub async fn run(global: &GlobalOptions, args: TagArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let (records, _) = resolve(&store, &args.source)?;
    let record = records.first().ok_or_else(|| anyhow::anyhow!("no such image: {}", args.source))?;
    let target = normalise(&args.target)?;
    if target.digest().is_some() {
        anyhow::bail!("refusing to create a tag with a digest reference: {}", args.target);
    }
    store
        .images()
        .tag(&target.to_string(), &record.target)
        .with_context(|| format!("cannot tag {} as {}", args.source, args.target))?;
    Ok(ExitCode::SUCCESS)
}

//! `kiln import TARBALL [NAME] [--change …]`: a root filesystem tarball (plain, gzip or zstd;
//! `-` for stdin) → a one-layer image, like `docker import`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cache::formats::{self, ImportOptions};

use super::images::{normalise, open_store};
use crate::GlobalOptions;

/// Arguments of `kiln import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The tarball, or `-` for stdin.
    #[arg(value_name = "TARBALL")]
    pub tarball: String,
    /// Name of the new image (`busybox`, `localhost:5000/base:1`).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub name: Option<String>,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message recorded in the image history.
    #[arg(short, long)]
    pub message: Option<String>,
}

pub async fn run(global: &GlobalOptions, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let reference = args.name.as_deref().map(normalise).transpose()?;
    if reference.as_ref().is_some_and(|r| r.digest().is_some()) {
        anyhow::bail!("an imported image cannot be named with a digest");
    }
    let store = open_store(global)?;
    let options = ImportOptions {
        changes: args.changes.clone(),
        message: args.message.clone(),
        ..ImportOptions::default()
    };
    let (manifest, image_id) = if args.tarball == "-" {
        formats::import_rootfs(&store, std::io::stdin().lock(), "-", &options)
    } else {
        let file =
            std::fs::File::open(&args.tarball).with_context(|| format!("cannot open {}", args.tarball))?;
        formats::import_rootfs(&store, file, &args.tarball, &options)
    }
    .with_context(|| format!("cannot import {}", args.tarball))?;
    match &reference {
        Some(reference) => {
            store
                .images()
                .tag(&reference.to_string(), &manifest)
                .with_context(|| format!("cannot tag {reference}"))?;
        }
        None => {
            store.images().add_untagged(&manifest).context("cannot record the imported image")?;
        }
    }
    super::unpack_image(&store, &manifest)?;
    writeln!(std::io::stdout().lock(), "{image_id}")?;
    Ok(ExitCode::SUCCESS)
}

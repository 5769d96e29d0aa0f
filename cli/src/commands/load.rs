//! `kiln load [-i FILE]`: images from a docker-archive, an OCI archive or an OCI layout
//! directory (stdin by default) into the store, named as the archive says.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use cache::formats;

use super::images::{normalise, open_store};
use crate::GlobalOptions;

/// Arguments of `kiln load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from this archive file or OCI layout directory instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Do not print what was loaded.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(global: &GlobalOptions, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    // An archive is read with random access: stdin is first copied into the store's temp dir
    // (removed on exit, or by the next open if this process dies).
    let spooled;
    let path = match &args.input {
        Some(path) => path.clone(),
        None => {
            if std::io::stdin().is_terminal() {
                anyhow::bail!("no archive given: use -i FILE or pipe an archive into stdin");
            }
            spooled = store.temp_path("load");
            let mut file = std::fs::File::create(&spooled)
                .with_context(|| format!("cannot create {}", spooled.display()))?;
            std::io::copy(&mut std::io::stdin().lock(), &mut file)
                .context("cannot read the archive from stdin")?;
            spooled.clone()
        }
    };
    let what = args.input.as_ref().map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
    let result = formats::load(&store, &path).with_context(|| format!("cannot load {what}"));
    if args.input.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let loaded = result?;
    let mut out = std::io::stdout().lock();
    for image in loaded {
        super::unpack_image(&store, &image.manifest)?;
        let mut named = false;
        for name in &image.names {
            let reference = normalise(name)?;
            store
                .images()
                .tag(&reference.to_string(), &image.manifest)
                .with_context(|| format!("cannot tag {name}"))?;
            named = true;
            if !args.quiet {
                writeln!(out, "Loaded image: {}", reference.familiar())?;
            }
        }
        if !named {
            store.images().add_untagged(&image.manifest).context("cannot record the loaded image")?;
            if !args.quiet {
                writeln!(out, "Loaded image ID: {}", image.image_id)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `kiln save [-o FILE] [--format docker|oci] IMAGE…`: images → one archive (stdout by
//! default), readable by `docker load`, `kiln load`, `skopeo` and `podman`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use cache::formats::{self, ArchiveFormat, ExportImage};

use super::images::{open_store, resolve};
use crate::GlobalOptions;

/// Archive format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SaveFormat {
    /// docker-archive (`docker save` / `docker load`).
    #[default]
    Docker,
    /// OCI image layout in a tar (`oci-archive:`).
    Oci,
}

/// Arguments of `kiln save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Images to save: names, name@digest, or image IDs.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    pub format: SaveFormat,
}

pub async fn run(global: &GlobalOptions, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let mut exports: Vec<ExportImage> = Vec::new();
    for query in &args.images {
        let (records, by_name) = resolve(&store, query)?;
        let Some(first) = records.first() else { anyhow::bail!("no such image: {query}") };
        let names: Vec<String> = if by_name { vec![first.name.clone()] } else { Vec::new() };
        match exports.iter_mut().find(|e| e.target.digest() == first.target.digest()) {
            Some(existing) => {
                for name in names {
                    if !existing.names.contains(&name) {
                        existing.names.push(name);
                    }
                }
            }
            None => exports.push(ExportImage { target: first.target.clone(), names }),
        }
    }
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    match &args.output {
        Some(path) => formats::save_to_file(&store, &exports, format, path)
            .with_context(|| format!("cannot save images to {}", path.display()))?,
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                anyhow::bail!(
                    "refusing to write an image archive to a terminal: use -o FILE or redirect stdout"
                );
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            formats::save(&store, &exports, format, &mut out).context("cannot save images")?;
            out.flush().context("cannot write to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

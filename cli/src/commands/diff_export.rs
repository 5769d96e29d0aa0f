//! `kiln diff CONTAINER` (docker's `C /path`, `A /path`, `D /path` lines from the writable
//! layer) and `kiln export [-o FILE] CONTAINER` (a tar of the container's root filesystem: the
//! image's layers with the writable layer on top, no volumes, no `/proc`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use executor::runtime::changes;
use executor::runtime::rootfs::{self, Access};

use crate::GlobalOptions;

/// Arguments of `kiln diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn diff(global: &GlobalOptions, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let store = super::container::open(global)?;
    let container = store.find(&args.container)?;
    let mut out = std::io::stdout().lock();
    for change in changes::changes(&container)? {
        writeln!(out, "{} {}", change.kind.letter(), change.path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `kiln export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn export(global: &GlobalOptions, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = super::container::open(global)?;
    let container = store.find(&args.container)?;
    let stdout = std::io::stdout();
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&stdout) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let fs = rootfs::open(&container, Access::Layers)?;
    let write = |out: &mut dyn Write| -> anyhow::Result<()> {
        cache::write_tar(fs.path(), cache::DiffSource::PlainDir, None, out)
            .with_context(|| format!("cannot export container {}", args.container))?;
        Ok(())
    };
    match &args.output {
        None => {
            let mut out = std::io::BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush()?;
        }
        Some(path) => {
            // atomic: a failed export leaves no partial file behind
            let dir =
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let mut temp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            {
                let mut out = std::io::BufWriter::new(temp.as_file_mut());
                write(&mut out)?;
                out.flush()?;
            }
            temp.as_file().sync_all()?;
            temp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

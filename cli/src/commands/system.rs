//! `kiln system check [--repair]`: verify every blob (sha256 and size), snapshot (metadata
//! consistent with its chain, tree present), image record and build-cache record of the store;
//! with `--repair`, remove what is damaged, fetch lost blobs again from the registries they were
//! pulled from, and remove the image names and cache records whose content is still missing,
//! so the next pull or build restores them. Exit code 1 when damage remains.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use cache::{CheckReport, Damage, Store};
use clap::{Args, Subcommand};

use super::images::open_store;
use super::transfer_progress::{Direction, Renderer};
use crate::GlobalOptions;

/// Subcommands of `kiln system`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Verify the store (every blob, snapshot, image and build-cache record); exit code 1 when
    /// something is damaged.
    Check(CheckArgs),
}

/// Arguments of `kiln system check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove damaged content and the records that need it; fetch lost blobs again from the
    /// registry they were pulled from.
    #[arg(long)]
    pub repair: bool,
    /// Print only the damage found (and what was repaired).
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(global: &GlobalOptions, command: SystemCommand) -> anyhow::Result<ExitCode> {
    match command {
        SystemCommand::Check(args) => check(global, args).await,
    }
}

async fn check_store(store: &Store) -> anyhow::Result<CheckReport> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.check())
        .await
        .context("store check task failed")?
        .context("cannot check the store")
}

async fn check(global: &GlobalOptions, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let started = Instant::now();
    let report = check_store(&store).await?;
    if !args.quiet {
        println!(
            "checked {} blobs ({}), {} snapshots, {} images, {} build-cache records in {:.1}s",
            report.blobs,
            human_bytes(report.bytes),
            report.snapshots,
            report.images,
            report.cache_records,
            started.elapsed().as_secs_f64()
        );
    }
    for damage in &report.damage {
        println!("damaged: {damage}");
    }
    if report.is_consistent() {
        if !args.quiet {
            println!("store is consistent");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.repair {
        println!("{} problems found; run `kiln system check --repair` to fix them", report.damage.len());
        return Ok(ExitCode::FAILURE);
    }
    let mut repaired = store.remove_damaged(&report).context("cannot remove damaged content")?;
    for digest in &repaired.removed_blobs {
        println!("removed blob {digest}");
    }
    for chain_id in &repaired.removed_snapshots {
        println!("removed snapshot {chain_id}");
    }
    refetch_lost(global, &store, args.quiet).await?;
    store.remove_incomplete_records(&mut repaired).context("cannot remove incomplete records")?;
    for name in &repaired.removed_images {
        println!("removed image {name}: its content is lost (pull or build it again)");
    }
    for key in &repaired.removed_cache_records {
        println!("removed build-cache record {key}");
    }
    let after = check_store(&store).await?;
    for damage in &after.damage {
        println!("still damaged: {damage}");
    }
    if after.is_consistent() {
        println!("store repaired: consistent");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Fetches what images lack again, from the registries their blobs came from. A manifest
/// fetched again can reveal lost layers behind it, so this repeats while it makes progress.
async fn refetch_lost(global: &GlobalOptions, store: &Store, quiet: bool) -> anyhow::Result<()> {
    let mut attempted = std::collections::BTreeSet::new();
    let mut registry_client = None;
    let renderer = Renderer::new(Direction::Pull, quiet);
    loop {
        let mut progress = false;
        for damage in store.incomplete_images().context("cannot list incomplete images")? {
            let Damage::Image { missing, related, .. } = damage else { continue };
            let missing: Vec<_> =
                missing.into_iter().filter(|d| attempted.insert(d.digest().to_string())).collect();
            if missing.is_empty() {
                continue;
            }
            if registry_client.is_none() {
                registry_client = Some(super::transfer_progress::client(global)?);
            }
            let Some(client) = registry_client.as_ref() else { continue };
            for fetched in registry::refetch(client, store, &missing, &related, &renderer.progress()).await {
                match fetched.result {
                    Ok(source) => {
                        progress = true;
                        println!("fetched {} again from {source}", fetched.digest);
                    }
                    Err(err) => {
                        println!("cannot fetch {} again: {:#}", fetched.digest, anyhow::Error::new(err))
                    }
                }
            }
        }
        if !progress {
            break;
        }
    }
    renderer.finish();
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.1}{}", UNITS[unit]) }
}

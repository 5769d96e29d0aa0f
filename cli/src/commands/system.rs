//! `kiln system check [--repair]`: verify every blob (sha256 and size), snapshot (metadata
//! consistent with its chain, tree present), image record and build-cache record of the store;
//! with `--repair`, remove what is damaged, fetch lost blobs again from the registries they were
//! pulled from, and remove the image names and cache records whose content is still missing,
//! so the next pull or build restores them. Exit code 1 when damage remains.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use cache::{CheckReport, Damage, Store};
use clap::{Args, Subcommand};

use super::images::open_store;
use crate::GlobalOptions;
use crate::progress::transfer::{Direction, Renderer};

/// Subcommands of `kiln system`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Verify the store (every blob, snapshot, image and build-cache record); exit code 1 when
    /// something is damaged.
    Check(CheckArgs),
    /// Show disk usage: images, containers, volumes, build cache (docker's `system df`).
    Df(DfArgs),
}

/// Arguments of `kiln system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Output format: `table` (default) or `json` (one object per line, as docker).
    #[arg(long, default_value = "table")]
    pub format: String,
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
        SystemCommand::Df(args) => df(global, args),
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
            super::images::human_size(report.bytes),
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
                registry_client = Some(super::client(global)?);
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

/// One row of `system df`.
struct Usage {
    kind: &'static str,
    total: usize,
    active: usize,
    size: u64,
    reclaimable: u64,
}

fn df(global: &GlobalOptions, args: DfArgs) -> anyhow::Result<ExitCode> {
    use std::collections::{HashMap, HashSet};
    let store = open_store(global)?;
    let runtime = super::container::open(global)?;
    let containers = runtime.list().context("cannot list containers")?;
    let used_images: HashSet<&str> = containers.iter().map(|c| c.config.image_id.as_str()).collect();

    // images: each layer (by chain ID) counted once; reclaimable = layers no used image shares
    let mut layer_size: HashMap<oci_spec::image::Digest, u64> = HashMap::new();
    let mut kept_layers = HashSet::new();
    let mut ids = HashSet::new();
    let mut active = HashSet::new();
    for record in store.images().list().context("cannot list images")? {
        let Ok(image) = store.content().read_image(&record.target) else { continue };
        let id = image.id().to_string();
        let used = used_images.contains(id.as_str());
        if used {
            active.insert(id.clone());
        }
        ids.insert(id);
        let sizes = super::images::layer_sizes(&store, &image);
        let diff_ids: Vec<_> =
            image.layers().map(|l| l.into_iter().map(|l| l.diff_id).collect()).unwrap_or_default();
        for (chain, size) in cache::chain_ids(&diff_ids).into_iter().zip(sizes) {
            if used {
                kept_layers.insert(chain.clone());
            }
            layer_size.insert(chain, size);
        }
    }
    let images_size: u64 = layer_size.values().sum();
    let images_kept: u64 = layer_size.iter().filter(|(c, _)| kept_layers.contains(*c)).map(|(_, s)| s).sum();

    let mut containers_size = 0;
    let mut containers_reclaimable = 0;
    let mut running = 0;
    for container in &containers {
        let size = match &container.config.spec.rootfs {
            executor::Rootfs::Overlay { upper: Some(upper), .. } => {
                executor::runtime::volumes::disk_usage(&upper.upper)
            }
            _ => 0,
        };
        containers_size += size;
        if container.state.status.is_active() {
            running += 1;
        } else {
            containers_reclaimable += size;
        }
    }

    let volumes = runtime.volumes();
    let mut volume_usage = Usage { kind: "Local Volumes", total: 0, active: 0, size: 0, reclaimable: 0 };
    for volume in volumes.list().context("cannot list volumes")? {
        let size = executor::runtime::volumes::disk_usage(&volume.mountpoint);
        let in_use = !volumes.users(&runtime, &volume.name).unwrap_or_default().is_empty();
        volume_usage.total += 1;
        volume_usage.size += size;
        if in_use {
            volume_usage.active += 1;
        } else {
            volume_usage.reclaimable += size;
        }
    }

    let build_cache = cache::buildcache::BuildCache::open(&store).context("cannot open the build cache")?;
    let entries = build_cache.usage().context("cannot read the build cache")?;
    let mounts = build_cache.mounts_usage().context("cannot read the cache mounts")?;
    let mounts_size: u64 = mounts.iter().map(|m| m.size).sum();
    let shared: u64 = entries.iter().filter(|e| e.shared).map(|e| e.size).sum();
    let private = cache::buildcache::reclaimable(&entries);

    let rows = [
        Usage {
            kind: "Images",
            total: ids.len(),
            active: active.len(),
            size: images_size,
            reclaimable: images_size - images_kept,
        },
        Usage {
            kind: "Containers",
            total: containers.len(),
            active: running,
            size: containers_size,
            reclaimable: containers_reclaimable,
        },
        volume_usage,
        Usage {
            kind: "Build Cache",
            total: entries.len() + mounts.len(),
            active: 0,
            size: shared + private + mounts_size,
            reclaimable: private + mounts_size,
        },
    ];
    let mut out = std::io::stdout().lock();
    let percent = |row: &Usage| match row.size {
        0 => String::new(),
        size => format!(" ({}%)", row.reclaimable * 100 / size),
    };
    match args.format.as_str() {
        "table" => {
            let mut table =
                vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(str::to_owned).to_vec()];
            for row in &rows {
                table.push(vec![
                    row.kind.to_owned(),
                    row.total.to_string(),
                    row.active.to_string(),
                    super::images::human_size(row.size),
                    format!("{}{}", super::images::human_size(row.reclaimable), percent(row)),
                ]);
            }
            super::images::write_table(&mut out, &table)?;
        }
        "json" => {
            for row in &rows {
                let line = serde_json::json!({
                    "Type": row.kind,
                    "TotalCount": row.total.to_string(),
                    "Active": row.active.to_string(),
                    "Size": super::images::human_size(row.size),
                    "Reclaimable": format!("{}{}", super::images::human_size(row.reclaimable), percent(row)),
                });
                writeln!(out, "{line}")?;
            }
        }
        other => anyhow::bail!("unsupported --format {other:?} (table, json)"),
    }
    Ok(ExitCode::SUCCESS)
}

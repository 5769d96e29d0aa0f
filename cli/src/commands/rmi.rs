//! `kiln rmi IMAGE…`: remove image names, like `docker rmi`. A name removes that name; an ID
//! removes every name of the image (with `--force` when there are several). When an image lost
//! its last name, its blobs and snapshots are garbage-collected (what other images or the build
//! cache use stays; when another kiln process has the store open, collection waits for a later
//! run). An image a container uses is refused (docker's conflict errors); `--force` untags
//! it, and its data stays while a container needs it: containers are GC roots.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::images::{familiar, open_store, resolve};
use crate::GlobalOptions;

/// Arguments of `kiln rmi`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Images to remove: names, name@digest, or image IDs.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Remove every name of an image given by ID, even when it has several.
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(global: &GlobalOptions, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global)?;
    let containers = super::container::open(global)?.list()?;
    let user_of = |image_id: &str| containers.iter().find(|c| c.config.image_id == image_id);
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    let mut deleted = false;
    for query in &args.images {
        let result = (|| -> anyhow::Result<()> {
            let (records, by_name) = resolve(&store, query)?;
            if !args.force
                && let Some(record) = records.first()
                && let Some(container) = user_of(record.image_id.as_ref())
            {
                let image = record.image_id.digest().chars().take(12).collect::<String>();
                if by_name {
                    anyhow::bail!(
                        "conflict: unable to remove repository reference {query:?} (must force) - container {} is \
                         using its referenced image {image}",
                        container.short_id()
                    );
                }
                let state = if container.state.status.is_active() { "running" } else { "stopped" };
                anyhow::bail!(
                    "conflict: unable to delete {image} (must be forced) - image is being used by {state} container {}",
                    container.short_id()
                );
            }
            let names: Vec<_> = records.iter().filter(|r| !r.is_untagged()).collect();
            if !by_name && names.len() > 1 && !args.force {
                let id = records[0].image_id.digest().chars().take(12).collect::<String>();
                anyhow::bail!(
                    "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories"
                );
            }
            for record in &records {
                store
                    .images()
                    .untag(&record.name)
                    .with_context(|| format!("cannot remove {}", record.name))?;
                if let Some(name) = familiar(record) {
                    writeln!(out, "Untagged: {name}")?;
                }
            }
            let mut ids: Vec<_> = records.iter().map(|r| r.image_id.to_string()).collect();
            ids.sort();
            ids.dedup();
            for (id, record) in ids
                .iter()
                .filter_map(|id| records.iter().find(|r| r.image_id.as_ref() == id).map(|r| (id, r)))
            {
                let unnamed = store.images().names_of(&record.image_id)?.is_empty();
                // an image a container uses stays (a GC root) until the container goes
                if unnamed && user_of(id).is_none() {
                    writeln!(out, "Deleted: {id}")?;
                    deleted = true;
                }
            }
            Ok(())
        })();
        if let Err(err) = result {
            crate::report::error(&err, global.debug);
            failed = true;
        }
    }
    if deleted {
        let build_cache =
            cache::buildcache::BuildCache::open(&store).context("cannot open the build cache")?;
        let containers = super::container::ContainerImages::new(global)?;
        let report =
            store.gc(&[&build_cache, &containers]).context("cannot reclaim the space of removed images")?;
        tracing::debug!(
            "gc: {} blobs ({} bytes) and {} snapshots removed{}",
            report.removed_blobs.len(),
            report.reclaimed,
            report.removed_snapshots.len(),
            if report.skipped_busy { " (skipped: store busy)" } else { "" }
        );
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

//! `kiln images`: list the images of the store, like `docker images`; `kiln images prune [-a]`
//! removes dangling (or all) images and reclaims their space. Also the helpers the
//! other image commands (tag, rmi, inspect, history, save, load, import) share: opening the
//! store, resolving what the user typed, docker-style sizes and ages.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cache::{ImageRecord, Store};
use registry::Reference;

use crate::GlobalOptions;

/// Output format of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListFormat {
    /// An aligned table.
    #[default]
    Table,
    /// One JSON object per line (like `docker images --format json`).
    Json,
}

/// Arguments of `kiln images`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub command: Option<ImagesCommand>,
    /// Only show images of this repository (`busybox`, `localhost:5000/app`).
    #[arg(value_name = "REPOSITORY")]
    pub repository: Option<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the manifest digests.
    #[arg(long)]
    pub digests: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Subcommands of `kiln images`.
#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// Remove unused images: untagged ones, or every image with `--all`; then reclaim the space
    /// of blobs and snapshots nothing references any more (like `docker image prune`).
    Prune(PruneArgs),
}

/// Arguments of `kiln images prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all images, not just untagged (dangling) ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

pub async fn run(global: &GlobalOptions, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    if let Some(ImagesCommand::Prune(prune_args)) = args.command {
        return prune(global, prune_args);
    }
    let store = open_store(global)?;
    let mut records = store.images().list().context("cannot list images")?;
    if let Some(repository) = &args.repository {
        let wanted = Reference::parse_named(repository)
            .with_context(|| format!("invalid repository name {repository:?}"))?;
        records.retain(|r| !r.is_untagged() && r.repo_tag().0 == wanted.name());
        if let Some(tag) = wanted.tag() {
            records.retain(|r| r.repo_tag().1 == tag);
        }
    }
    // newest first, like docker
    records.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for record in &records {
            if seen.insert(record.image_id.clone()) {
                writeln!(out, "{}", short_id(&record.image_id, args.no_trunc))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        ListFormat::Json => {
            for record in &records {
                let (repo, tag) = display_repo_tag(record);
                let size = human_size(image_size(&store, record));
                let line = serde_json::json!({
                    "Containers": "N/A",
                    "CreatedAt": record.created.as_deref().map(created_at).unwrap_or_default(),
                    "CreatedSince": record.created.as_deref().map(since).unwrap_or_else(|| "N/A".into()),
                    "Digest": record.target.digest().to_string(),
                    "ID": short_id(&record.image_id, args.no_trunc),
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": size,
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": size,
                });
                writeln!(out, "{line}")?;
            }
        }
        ListFormat::Table => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
            for record in &records {
                let (repo, tag) = display_repo_tag(record);
                let mut row = vec![repo, tag];
                if args.digests {
                    row.push(record.target.digest().to_string());
                }
                row.push(short_id(&record.image_id, args.no_trunc));
                row.push(record.created.as_deref().map(since).unwrap_or_else(|| "N/A".into()));
                row.push(human_size(image_size(&store, record)));
                rows.push(row);
            }
            write_table(&mut out, &rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(global: &GlobalOptions, args: PruneArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if !args.force && std::io::stdin().is_terminal() {
        let what = if args.all { "all images" } else { "all dangling images" };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let store = open_store(global)?;
    let records = store.images().list().context("cannot list images")?;
    // docker's prune -a: only images no container uses
    let runtime = super::container::open(global)?;
    let in_use: std::collections::HashSet<String> =
        runtime.list()?.into_iter().map(|c| c.config.image_id).collect();
    let mut out = std::io::stdout().lock();
    let mut deleted = std::collections::BTreeSet::new();
    for record in records
        .iter()
        .filter(|r| args.all || r.is_untagged())
        .filter(|r| !in_use.contains(&r.image_id.to_string()))
    {
        store.images().untag(&record.name).with_context(|| format!("cannot remove {}", record.name))?;
        if deleted.is_empty() {
            writeln!(out, "Deleted Images:")?;
        }
        if let Some(name) = familiar(record) {
            writeln!(out, "untagged: {name}")?;
        }
        if store.images().names_of(&record.image_id)?.is_empty()
            && deleted.insert(record.image_id.to_string())
        {
            writeln!(out, "deleted: {}", record.image_id)?;
        }
    }
    let build_cache = cache::buildcache::BuildCache::open(&store).context("cannot open the build cache")?;
    let containers = super::container::ContainerImages::new(global)?;
    let report =
        store.gc(&[&build_cache, &containers]).context("cannot reclaim the space of removed images")?;
    if !deleted.is_empty() {
        writeln!(out)?;
    }
    if report.skipped_busy {
        writeln!(out, "Space not reclaimed yet: another kiln process has the store open")?;
    } else {
        writeln!(out, "Total reclaimed space: {}", human_size(report.reclaimed))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store under `--root`.
pub(crate) fn open_store(global: &GlobalOptions) -> anyhow::Result<Store> {
    let store = Store::open(&global.root)
        .with_context(|| format!("cannot open the store at {}", global.root.display()))?;
    clean_leftovers(&global.root);
    Ok(store)
}

/// Undoes what the sandboxes of SIGKILLed kiln processes left behind (cgroups, address leases,
/// state directories, container layers): every command that opens the store does it, not only
/// the next `kiln run`. Best effort: a leftover costs resources, never correctness.
fn clean_leftovers(root: &std::path::Path) {
    let state = root.join("run");
    if state.is_dir() {
        match executor::state::clean_stale(&state) {
            Ok(cleaned) if !cleaned.is_empty() => {
                tracing::debug!(?cleaned, "cleaned up after sandboxes of dead kiln processes")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!("cannot clean up after dead sandboxes in {}: {err}", state.display()),
        }
    }
    super::run::clean_abandoned_containers(&root.join("containers"));
}

/// Normalises a user-typed name (`busybox` → `docker.io/library/busybox:latest`).
pub(crate) fn normalise(name: &str) -> anyhow::Result<Reference> {
    Reference::parse(name).with_context(|| format!("invalid image name {name:?}"))
}

/// What the user typed → image records, like docker: a name (normalised), `name@digest`, an
/// image ID or a unique prefix of one. The boolean is true when the query was a name (so
/// exactly that name is meant rather than the whole image).
pub(crate) fn resolve(store: &Store, query: &str) -> anyhow::Result<(Vec<ImageRecord>, bool)> {
    if let Ok(reference) = Reference::parse(query) {
        let full = reference.to_string();
        if let Some(record) = store.images().get(&full)? {
            return Ok((vec![record], true));
        }
        if reference.digest().is_some()
            && let Ok(records) =
                store.images().resolve(&format!("{}@{}", reference.name(), reference.manifest_reference()))
        {
            return Ok((records, false));
        }
    }
    let records = store.images().resolve(query).map_err(|err| match err {
        cache::Error::ImageNotFound(_) => anyhow::anyhow!("no such image: {query}"),
        other => anyhow::Error::new(other),
    })?;
    Ok((records, false))
}

/// (repository, tag) in docker's familiar form.
pub(crate) fn display_repo_tag(record: &ImageRecord) -> (String, String) {
    let (repo, tag) = record.repo_tag();
    if record.is_untagged() {
        return (repo, tag);
    }
    let repo = Reference::parse_named(&repo).map(|r| r.familiar_name()).unwrap_or(repo);
    (repo, tag)
}

/// The familiar form of a stored name (`busybox:latest`); untagged records give `None`.
pub(crate) fn familiar(record: &ImageRecord) -> Option<String> {
    if record.is_untagged() {
        return None;
    }
    Some(Reference::parse(&record.name).map(|r| r.familiar()).unwrap_or_else(|_| record.name.clone()))
}

/// `sha256:abcdef…` → `abcdef123456` (12 hex digits), or the full digest with `no_trunc`.
/// Each layer's size as docker shows it (`images`, `history`): the bytes of its unpacked
/// regular files; a layer that is not unpacked counts its blob size.
pub(crate) fn layer_sizes(store: &Store, image: &cache::Image) -> Vec<u64> {
    let diff_ids: Vec<_> =
        image.layers().map(|l| l.into_iter().map(|l| l.diff_id).collect()).unwrap_or_default();
    let chain = cache::chain_ids(&diff_ids);
    image
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, blob)| {
            chain
                .get(i)
                .and_then(|id| store.snapshots().content_size(id).ok().flatten())
                .unwrap_or(blob.size())
        })
        .collect()
}

/// An image's size as docker shows it: the sum of [`layer_sizes`]; the recorded blob sizes
/// when the image cannot be read.
fn image_size(store: &Store, record: &ImageRecord) -> u64 {
    match store.content().read_image(&record.target) {
        Ok(image) => layer_sizes(store, &image).iter().sum(),
        Err(_) => record.size,
    }
}

pub(crate) fn short_id(id: &oci_spec::image::Digest, no_trunc: bool) -> String {
    if no_trunc { id.to_string() } else { id.digest().chars().take(12).collect() }
}

/// Docker's size display: decimal units, 3 significant digits (`1.23MB`, `512B`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text =
        if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text };
    format!("{text}{}", UNITS[unit])
}

/// Docker's "CREATED" column: `2 hours ago`, `About a minute ago`.
pub(crate) fn since(created: &str) -> String {
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(created) else { return "N/A".into() };
    let seconds = (chrono::Utc::now() - time.with_timezone(&chrono::Utc)).num_seconds();
    if seconds < 0 {
        return "Less than a second ago".into();
    }
    format!("{} ago", human_duration(seconds as u64))
}

/// Go's `units.HumanDuration`.
pub(crate) fn human_duration(seconds: u64) -> String {
    let minutes = seconds / 60;
    let hours = minutes / 60;
    match seconds {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// `2000-01-01 00:00:00 +0000 UTC`, like docker's `CreatedAt`.
pub(crate) fn created_at(created: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(created) {
        Ok(time) => time.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        Err(_) => created.to_owned(),
    }
}

/// Writes rows as columns separated by at least three spaces (docker's tabwriter look).
pub(crate) fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[index]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        for (bytes, want) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (1_234_567, "1.23MB"),
            (12_345_678, "12.3MB"),
            (999_000_000, "999MB"),
        ] {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn durations_like_docker() {
        for (secs, want) in [
            (0, "Less than a second"),
            (59, "59 seconds"),
            (61, "About a minute"),
            (7200, "2 hours"),
            (86400 * 3, "3 days"),
            (86400 * 800, "2 years"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}

//! `kiln builder prune` and `kiln builder du` (docker's `builder prune`, buildx's `du`), and the
//! GC policy kiln applies after builds (`<root>/gc.toml`, like buildkitd's gc settings).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use cache::Store;
use cache::buildcache::{BuildCache, CacheEntry, PruneOptions, PruneReport, reclaimable};
use clap::{Args, Subcommand};

use super::images::{human_duration, human_size, open_store, write_table};
use crate::GlobalOptions;

/// Subcommands of `kiln builder`.
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(PruneArgs),
    /// Show the build cache's disk usage.
    Du(DuArgs),
}

/// Arguments of `kiln builder prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all build cache: also cache mounts (`RUN --mount=type=cache`) and the context
    /// checksum caches.
    #[arg(short, long)]
    pub all: bool,
    /// `until=DURATION` (`24h`, `90m`, `1h30m`): only cache not used for that long.
    #[arg(long, value_name = "until=DURATION")]
    pub filter: Vec<String>,
    /// Remove least recently used cache only until it takes at most SIZE (`10GB`, `512MB`).
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Do not prompt for confirmation (kiln never prompts without a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// List what was removed.
    #[arg(long)]
    pub verbose: bool,
}

/// Arguments of `kiln builder du`.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// One line per record.
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(global: &GlobalOptions, command: BuilderCommand) -> anyhow::Result<ExitCode> {
    match command {
        BuilderCommand::Prune(args) => prune(global, args),
        BuilderCommand::Du(args) => du(global, args),
    }
}

fn open(global: &GlobalOptions) -> anyhow::Result<(Store, BuildCache)> {
    let store = open_store(global)?;
    let cache = BuildCache::open(&store).context("cannot open the build cache")?;
    Ok((store, cache))
}

fn prune(global: &GlobalOptions, args: PruneArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let mut options = PruneOptions { all: args.all, ..Default::default() };
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("until", value)) => options.unused_for = Some(parse_duration(value)?),
            _ => anyhow::bail!("invalid filter {filter:?}: kiln filters build cache by until=DURATION"),
        }
    }
    if let Some(size) = &args.keep_storage {
        options.keep_storage = Some(super::run::parse_bytes(size)?);
    }
    if !args.force && std::io::stdin().is_terminal() {
        eprint!(
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let (_store, cache) = open(global)?;
    // containers keep their images' layers, whatever the images' names
    let containers = super::container::ContainerImages::new(global)?;
    let report = cache.prune(&options, &[&containers]).context("cannot prune the build cache")?;
    let mut out = std::io::stdout().lock();
    if !report.removed.is_empty() || !report.removed_mounts.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for entry in &report.removed {
            writeln!(out, "{}", entry_id(entry))?;
        }
        for mount in &report.removed_mounts {
            writeln!(out, "cache mount {mount}")?;
        }
        if args.verbose {
            writeln!(out)?;
            print_entries(&mut out, &report.removed)?;
        }
        writeln!(out)?;
    }
    print_reclaimed(&mut out, &report)?;
    Ok(ExitCode::SUCCESS)
}

fn print_reclaimed(out: &mut dyn Write, report: &PruneReport) -> std::io::Result<()> {
    if report.sweep_skipped_busy {
        writeln!(out, "Space not reclaimed yet: another kiln process has the store open")
    } else {
        writeln!(out, "Total reclaimed space: {}", human_size(report.reclaimed))
    }
}

fn entry_id(entry: &CacheEntry) -> String {
    entry.key.digest().chars().take(25).collect()
}

fn last_used(entry: &CacheEntry) -> String {
    match entry.last_used.elapsed() {
        Ok(age) => format!("{} ago", human_duration(age.as_secs())),
        Err(_) => "Less than a second ago".into(),
    }
}

fn print_entries(out: &mut dyn Write, entries: &[CacheEntry]) -> std::io::Result<()> {
    let mut rows =
        vec![["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED", "DESCRIPTION"].map(str::to_owned).to_vec()];
    for entry in entries.iter().rev() {
        rows.push(vec![
            entry_id(entry),
            (!entry.shared).to_string(),
            human_size(entry.size),
            last_used(entry),
            entry.description.clone().unwrap_or_default(),
        ]);
    }
    write_table(out, &rows)
}

fn du(global: &GlobalOptions, args: DuArgs) -> anyhow::Result<ExitCode> {
    let (_store, cache) = open(global)?;
    let entries = cache.usage().context("cannot read the build cache")?;
    let mounts = cache.mounts_usage().context("cannot read the cache mounts")?;
    let mut out = std::io::stdout().lock();
    if args.verbose {
        print_entries(&mut out, &entries)?;
        for mount in &mounts {
            writeln!(out, "cache mount {}: {}", mount.id, human_size(mount.size))?;
        }
        writeln!(out)?;
    }
    let shared: u64 = entries.iter().filter(|e| e.shared).map(|e| e.size).sum();
    let mount_bytes: u64 = mounts.iter().map(|m| m.size).sum();
    let private = reclaimable(&entries);
    let rows = [
        ("Shared:", shared),
        ("Private:", private),
        ("Cache mounts:", mount_bytes),
        ("Reclaimable:", private + mount_bytes),
        ("Total:", shared + private + mount_bytes),
    ];
    for (label, bytes) in rows {
        writeln!(out, "{label:<16}{}", human_size(bytes))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Go's `time.ParseDuration` for the units docker users write: `90s`, `30m`, `24h`, `1h30m`,
/// and `d` for days.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let invalid = || anyhow::anyhow!("invalid duration {text:?} (examples: 30m, 24h, 1h30m, 7d)");
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// The GC policy after builds, from `<root>/gc.toml`:
///
/// ```toml
/// enabled = true          # default
/// keep-storage = "20GB"   # default: 10% of the store's filesystem, at most 100GB
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GcPolicy {
    pub enabled: bool,
    pub keep_storage: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GcFile {
    enabled: Option<bool>,
    keep_storage: Option<String>,
}

impl GcPolicy {
    pub(crate) const FILE: &'static str = "gc.toml";

    pub(crate) fn load(root: &Path) -> anyhow::Result<GcPolicy> {
        let path = root.join(Self::FILE);
        let file: GcFile = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                GcFile { enabled: None, keep_storage: None }
            }
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let keep_storage = match &file.keep_storage {
            Some(size) => super::run::parse_bytes(size)
                .with_context(|| format!("invalid keep-storage in {}", path.display()))?,
            None => default_keep_storage(root),
        };
        Ok(GcPolicy { enabled: file.enabled.unwrap_or(true), keep_storage })
    }
}

/// BuildKit's default: 10% of the filesystem holding the store, at most 100GB.
fn default_keep_storage(root: &Path) -> u64 {
    const MAX: u64 = 100 * 1000 * 1000 * 1000;
    let size = rustix::fs::statvfs(root).map(|s| s.f_blocks * s.f_frsize).unwrap_or(MAX * 10);
    (size / 10).min(MAX)
}

/// After a build that ran steps: prunes least recently used build cache down to the policy's
/// size. Returns what was done for the progress output, `None` when nothing was removed.
pub(crate) fn collect_after_build(
    global: &GlobalOptions,
    store: &Store,
) -> anyhow::Result<Option<(PruneReport, u64)>> {
    let policy = GcPolicy::load(store.root())?;
    if !policy.enabled {
        return Ok(None);
    }
    let cache = BuildCache::open(store).context("cannot open the build cache")?;
    let options = PruneOptions { keep_storage: Some(policy.keep_storage), ..Default::default() };
    let containers = super::container::ContainerImages::new(global)?;
    let report = cache.prune(&options, &[&containers]).context("cannot prune the build cache")?;
    Ok((!report.removed.is_empty()).then_some((report, policy.keep_storage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_docker_reads_them() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1_500));
        for bad in ["", "24", "h", "3 weeks", "1y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_gc_policy_file() {
        let dir = tempfile::tempdir().unwrap();
        let default = GcPolicy::load(dir.path()).unwrap();
        assert!(default.enabled && default.keep_storage > 0);
        std::fs::write(dir.path().join(GcPolicy::FILE), "keep-storage = \"1GB\"\n").unwrap();
        assert_eq!(GcPolicy::load(dir.path()).unwrap(), GcPolicy { enabled: true, keep_storage: 1 << 30 });
        std::fs::write(dir.path().join(GcPolicy::FILE), "enabled = false\n").unwrap();
        assert!(!GcPolicy::load(dir.path()).unwrap().enabled);
        std::fs::write(dir.path().join(GcPolicy::FILE), "keep = 1\n").unwrap();
        assert!(GcPolicy::load(dir.path()).unwrap_err().to_string().contains("gc.toml"));
    }
}

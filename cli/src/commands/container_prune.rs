//! `kiln container prune [-f] [--filter until=…|label=…|label!=…]`: removes every stopped
//! container (created, exited, dead), with docker's confirmation prompt and output
//! (`Deleted Containers:`, the ids, `Total reclaimed space: …`).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use executor::runtime::Container;

use super::images::human_size;
use crate::GlobalOptions;

/// `kiln container …`.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// Remove all stopped containers.
    Prune(PruneArgs),
}

/// Arguments of `kiln container prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// `until=<timestamp|duration>`, `label=key[=value]`, `label!=key[=value]`.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    /// Created before this time (nanoseconds since the epoch).
    Until(i64),
    Label {
        key: String,
        value: Option<String>,
        negated: bool,
    },
}

/// docker's `until`: a Go duration before now (`10m`, `24h`), Unix seconds, RFC 3339, or a
/// date and time (`2006-01-02T15:04:05`, `2006-01-02`) in UTC.
fn parse_until(text: &str, now: i64) -> Option<i64> {
    if let Some(duration) = executor::runtime::health::parse_duration(text) {
        return Some(now - duration.as_nanos() as i64);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Some((seconds * 1e9) as i64);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return time.timestamp_nanos_opt();
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .or_else(|| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0))?;
    naive.and_utc().timestamp_nanos_opt()
}

fn parse_filter(text: &str, now: i64) -> anyhow::Result<Filter> {
    if let Some(label) = text.strip_prefix("label!=") {
        let (key, value) = split_label(label);
        return Ok(Filter::Label { key, value, negated: true });
    }
    let Some((key, value)) = text.split_once('=') else {
        bail!("bad format of filter (expected name=value): {text}");
    };
    match key {
        "until" => match parse_until(value, now) {
            Some(nanos) => Ok(Filter::Until(nanos)),
            None => bail!("invalid filter 'until={value}': expected a timestamp or a duration like 10m"),
        },
        "label" => {
            let (key, value) = split_label(value);
            Ok(Filter::Label { key, value, negated: false })
        }
        other => bail!("invalid filter '{other}' (container prune takes until and label)"),
    }
}

fn split_label(text: &str) -> (String, Option<String>) {
    match text.split_once('=') {
        Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
        None => (text.to_owned(), None),
    }
}

fn selected(container: &Container, filters: &[Filter]) -> bool {
    filters.iter().all(|filter| match filter {
        Filter::Until(time) => container.config.created < *time,
        Filter::Label { key, value, negated } => {
            let has = container.config.labels.get(key).is_some_and(|v| value.as_ref().is_none_or(|w| v == w));
            has != *negated
        }
    })
}

/// Bytes of the files under `dir` (the container's writable layer), symlinks not followed.
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn run(global: &GlobalOptions, command: ContainerCommand) -> anyhow::Result<ExitCode> {
    let ContainerCommand::Prune(args) = command;
    let now = executor::runtime::record::now_nanos();
    let filters: Vec<Filter> =
        args.filters.iter().map(|f| parse_filter(f, now)).collect::<anyhow::Result<_>>()?;
    if !args.force {
        eprint!(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let store = super::container::open(global)?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    let mut failed = false;
    for mut container in store.list()? {
        if container.state.status.is_active() || !selected(&container, &filters) {
            continue;
        }
        let size = disk_usage(&container.dir.join("upper"));
        match store.remove(&mut container, false) {
            Ok(()) => {
                reclaimed += size;
                deleted.push(container.id().to_owned());
            }
            // started meanwhile: not stopped any more
            Err(executor::runtime::RuntimeError::Running(_)) => {}
            Err(err) => {
                crate::report::error(&err.into(), global.debug);
                failed = true;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if !deleted.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &deleted {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_and_labels() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_until("10m", now), Some(now - 600_000_000_000));
        assert_eq!(parse_until("1700000000", now), Some(now));
        assert_eq!(parse_until("2023-11-14T22:13:20Z", now), Some(now));
        assert_eq!(parse_until("2023-11-14T22:13:20", now), Some(now));
        assert_eq!(parse_until("2023-11-14", now), Some(now - (22 * 3600 + 13 * 60 + 20) * 1_000_000_000));
        assert_eq!(parse_until("yesterday", now), None);
        assert_eq!(
            parse_filter("label!=keep", now).expect("label!="),
            Filter::Label { key: "keep".into(), value: None, negated: true }
        );
        assert!(parse_filter("until=soon", now).is_err());
        assert!(parse_filter("status=exited", now).is_err());
    }
}

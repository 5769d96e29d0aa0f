//! `kiln ps`: docker's container table (`CONTAINER ID  IMAGE  COMMAND  CREATED  STATUS  PORTS
//! NAMES`), `-a`, `-q`, `--no-trunc`, `--filter status|name|label|ancestor|id`.

use std::process::ExitCode;

use anyhow::bail;
use executor::runtime::{Container, Status};

use super::images::{human_duration, write_table};
use crate::GlobalOptions;

/// Arguments of `kiln ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (only running ones by default).
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: `status=exited`, `name=web`, `label=key[=value]`, `ancestor=image`, `id=prefix`.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Format with a Go template: fields ID, Image, Command, CreatedAt, RunningFor, Ports,
    /// State, Status, Names, Labels, Mounts, Networks; `table` for a header; `{{json .}}`.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
}

/// Column titles of `--format 'table …'`.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
];

/// The object `--format` templates see (docker's field names, strings as docker renders them).
fn format_fields(container: &Container, no_trunc: bool) -> serde_json::Value {
    let labels: Vec<String> = container.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts: Vec<&str> = container.config.mounts.iter().map(|m| m.source.as_str()).collect();
    let created = chrono::DateTime::from_timestamp_nanos(container.config.created);
    serde_json::json!({
        "ID": if no_trunc { container.id() } else { container.short_id() },
        "Image": container.config.image,
        "Command": command_text(container, no_trunc),
        "CreatedAt": created.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        "RunningFor": format!("{} ago", human_duration(seconds_since(Some(container.config.created)))),
        "Ports": super::port::column(&container.state.ports),
        "State": container.state.status_name(),
        "Status": status_text(container),
        "Size": "",
        "Names": container.config.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": container.config.network,
    })
}

/// One `--filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Status(String),
    Name(String),
    Label(String, Option<String>),
    Ancestor(String),
    Id(String),
}

fn parse_filter(text: &str) -> anyhow::Result<Filter> {
    let Some((key, value)) = text.split_once('=') else {
        bail!("bad format of filter (expected name=value): {text}");
    };
    Ok(match key {
        "status" => {
            let known = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];
            if !known.contains(&value) {
                bail!("invalid filter 'status={value}' (expected one of {})", known.join(", "));
            }
            Filter::Status(value.to_owned())
        }
        "name" => Filter::Name(value.to_owned()),
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_owned(), Some(v.to_owned())),
            None => Filter::Label(value.to_owned(), None),
        },
        "ancestor" => Filter::Ancestor(value.to_owned()),
        "id" => Filter::Id(value.to_owned()),
        other => bail!("invalid filter '{other}'"),
    })
}

fn image_matches(container: &Container, image: &str) -> bool {
    let config = &container.config;
    let strip = |name: &str| name.strip_suffix(":latest").unwrap_or(name).to_owned();
    strip(&config.image) == strip(image)
        || config.image_id == image
        || config
            .image_id
            .strip_prefix("sha256:")
            .is_some_and(|hex| !image.is_empty() && hex.starts_with(image))
}

fn matches(container: &Container, filter: &Filter) -> bool {
    match filter {
        Filter::Status(status) => container.state.status_name() == status,
        // docker: a substring of the name
        Filter::Name(name) => container.config.name.contains(name.trim_start_matches('/')),
        Filter::Label(key, value) => {
            container.config.labels.get(key).is_some_and(|v| value.as_ref().is_none_or(|wanted| v == wanted))
        }
        Filter::Ancestor(image) => image_matches(container, image),
        Filter::Id(prefix) => container.id().starts_with(prefix.as_str()),
    }
}

/// Filters of the same key are alternatives; different keys must all match (docker's rule).
fn selected(container: &Container, filters: &[Filter]) -> bool {
    let kinds = [
        |f: &Filter| matches!(f, Filter::Status(_)),
        |f: &Filter| matches!(f, Filter::Name(_)),
        |f: &Filter| matches!(f, Filter::Ancestor(_)),
        |f: &Filter| matches!(f, Filter::Id(_)),
    ];
    let alternatives_hold = kinds.iter().all(|kind| {
        let of_kind: Vec<&Filter> = filters.iter().filter(|f| kind(f)).collect();
        of_kind.is_empty() || of_kind.iter().any(|f| matches(container, f))
    });
    // labels: every one must match
    alternatives_hold
        && filters.iter().filter(|f| matches!(f, Filter::Label(..))).all(|f| matches(container, f))
}

fn seconds_since(nanos: Option<i64>) -> u64 {
    let now = executor::runtime::record::now_nanos();
    nanos.map(|n| ((now - n).max(0) / 1_000_000_000) as u64).unwrap_or(0)
}

/// docker's STATUS column.
pub(crate) fn status_text(container: &Container) -> String {
    let state = &container.state;
    let code = state.exit_code.map_or_else(|| "-1".to_owned(), |c| c.to_string());
    match state.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let health = match state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_owned(),
                Some(status) => format!(" ({status})"),
                None => String::new(),
            };
            let paused = if state.paused { " (Paused)" } else { "" };
            format!("Up {}{health}{paused}", human_duration(seconds_since(state.started_at)))
        }
        Status::Restarting => {
            format!("Restarting ({code}) {} ago", human_duration(seconds_since(state.finished_at)))
        }
        Status::Exited => format!("Exited ({code}) {} ago", human_duration(seconds_since(state.finished_at))),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// docker's COMMAND column: the command line quoted, cut to 20 characters with `…`.
fn command_text(container: &Container, no_trunc: bool) -> String {
    let command = container.config.spec.process.args.join(" ");
    let chars: Vec<char> = command.chars().collect();
    let shown = if no_trunc || chars.len() <= 20 {
        command
    } else {
        format!("{}…", chars[..19].iter().collect::<String>())
    };
    format!("\"{shown}\"")
}

pub fn run(global: &GlobalOptions, args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters: Vec<Filter> = args.filters.iter().map(|f| parse_filter(f)).collect::<anyhow::Result<_>>()?;
    let store = super::container::open(global)?;
    let mut containers: Vec<Container> = store
        .list()?
        .into_iter()
        .filter(|c| {
            args.all || c.state.status.is_active() || filters.iter().any(|f| matches!(f, Filter::Status(_)))
        })
        .filter(|c| selected(c, &filters))
        .collect();
    // newest first, like docker
    containers.reverse();
    let mut out = std::io::stdout().lock();
    if let Some(format) = args.format.as_deref().filter(|_| !args.quiet) {
        use std::io::Write;
        let items: Vec<serde_json::Value> =
            containers.iter().map(|c| format_fields(c, args.no_trunc)).collect();
        write!(out, "{}", crate::format::Format::parse(format, HEADERS)?.render(&items)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        use std::io::Write;
        for container in &containers {
            let id = if args.no_trunc { container.id() } else { container.short_id() };
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for container in &containers {
        rows.push(vec![
            if args.no_trunc { container.id().to_owned() } else { container.short_id().to_owned() },
            container.config.image.clone(),
            command_text(container, args.no_trunc),
            format!("{} ago", human_duration(seconds_since(Some(container.config.created)))),
            status_text(container),
            super::port::column(&container.state.ports),
            container.config.name.clone(),
        ]);
    }
    write_table(&mut out, &rows)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(parse_filter("status=exited").expect("status"), Filter::Status("exited".into()));
        assert_eq!(
            parse_filter("label=app=web").expect("label"),
            Filter::Label("app".into(), Some("web".into()))
        );
        assert_eq!(parse_filter("label=app").expect("label"), Filter::Label("app".into(), None));
        assert!(parse_filter("status=sleepy").is_err());
        assert!(parse_filter("colour=red").is_err());
        assert!(parse_filter("status").is_err());
    }
}

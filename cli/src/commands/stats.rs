//! `kiln stats [--no-stream]`: a table of the containers' resource use (`CONTAINER ID  NAME
//! CPU %  MEM USAGE / LIMIT  MEM %  NET I/O  BLOCK I/O  PIDS`), the CPU percentage over the one
//! second between two samples, refreshed every second unless `--no-stream`; `--format` with
//! docker's fields.

use std::process::ExitCode;
use std::time::Duration;

use executor::runtime::Container;
use executor::runtime::stats::{self, Sample};

use super::images::write_table;
use crate::GlobalOptions;

/// Arguments of `kiln stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (only running ones by default).
    #[arg(short, long)]
    pub all: bool,
    /// Print one sample and exit (by default the table is refreshed every second until
    /// interrupted).
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Format with a Go template: fields Container, Name, ID, CPUPerc, MemUsage, MemPerc, NetIO,
    /// BlockIO, PIDs; `table` for a header; `{{json .}}`.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Time between the two samples of the CPU percentage.
const INTERVAL: Duration = Duration::from_secs(1);

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// Go's `%.<precision>g` for the magnitudes sizes have (no exponent form below 10^precision).
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let exponent = value.abs().log10().floor() as i64;
    let decimals = (precision as i64 - 1 - exponent).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

fn scaled(bytes: u64, base: f64, units: &[&str], precision: usize) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= base && unit < units.len() - 1 {
        value /= base;
        unit += 1;
    }
    format!("{}{}", go_g(value, precision), units[unit])
}

/// go-units' `BytesSize` (binary units, 4 significant digits): `1.5MiB`.
fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], 4)
}

/// go-units' `HumanSizeWithPrecision(…, 3)` (decimal units): `1.23kB`.
fn decimal_size(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], 3)
}

/// One container's row as the template fields (docker's strings).
fn fields(
    container: &Container,
    name: &str,
    sample: Option<(&Sample, &Sample)>,
    no_trunc: bool,
) -> serde_json::Value {
    let id = if no_trunc { container.id() } else { container.short_id() };
    let Some((before, after)) = sample else {
        return serde_json::json!({
            "Container": name, "Name": container.config.name, "ID": id,
            "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%",
            "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0",
        });
    };
    serde_json::json!({
        "Container": name,
        "Name": container.config.name,
        "ID": id,
        "CPUPerc": format!("{:.2}%", after.cpu_percent(before)),
        "MemUsage": format!("{} / {}", binary_size(after.memory_usage), binary_size(after.memory_limit)),
        "MemPerc": format!("{:.2}%", after.memory_percent()),
        "NetIO": format!("{} / {}", decimal_size(after.net_rx), decimal_size(after.net_tx)),
        "BlockIO": format!("{} / {}", decimal_size(after.block_read), decimal_size(after.block_write)),
        "PIDs": after.pids.to_string(),
    })
}

/// Renders one table (or `--format` output) of `items`.
fn render(
    items: &[serde_json::Value],
    format: Option<&str>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    if let Some(format) = format {
        write!(out, "{}", crate::format::Format::parse(format, HEADERS)?.render(items)?)?;
        return Ok(());
    }
    // docker's default table, with its column spacing
    let mut rows = vec![
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for item in items {
        rows.push(
            ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
                .iter()
                .map(|key| item[key].as_str().unwrap_or_default().to_owned())
                .collect(),
        );
    }
    write_table(out, &rows)?;
    Ok(())
}

pub fn run(global: &GlobalOptions, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let store = super::container::open(global)?;
    // (as named, container)
    let mut selected: Vec<(String, Container)> = Vec::new();
    if args.containers.is_empty() {
        for container in store.list()?.into_iter().filter(|c| args.all || c.state.status.is_active()) {
            selected.push((container.short_id().to_owned(), container));
        }
    } else {
        for name in &args.containers {
            selected.push((name.clone(), store.find(name)?));
        }
    }
    let mut previous: Vec<Option<Sample>> =
        selected.iter_mut().map(|(_, container)| stats::sample(container).ok()).collect();
    loop {
        std::thread::sleep(INTERVAL);
        let current: Vec<Option<Sample>> =
            selected.iter_mut().map(|(_, container)| stats::sample(container).ok()).collect();
        let items: Vec<serde_json::Value> = selected
            .iter()
            .zip(previous.iter().zip(current.iter()))
            .map(|((name, container), (before, after))| {
                fields(container, name, before.as_ref().zip(after.as_ref()), args.no_trunc)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if !args.no_stream {
            // docker's screen refresh: clear, home
            use std::io::Write;
            write!(out, "\x1b[2J\x1b[H")?;
        }
        render(&items, args.format.as_deref(), &mut out)?;
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        use std::io::Write;
        out.flush()?;
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_sizes() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(8 * 1024 * 1024 * 1024 - 1), "8GiB");
        assert_eq!(binary_size(1000), "1000B");
        assert_eq!(decimal_size(1234), "1.23kB");
        assert_eq!(decimal_size(999), "999B");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }
}

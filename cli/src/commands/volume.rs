//! `kiln volume create|ls|inspect|rm|prune`: named volumes (docker's `local` driver).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use executor::runtime::time::rfc3339_nano;
use executor::runtime::{RuntimeError, Volume};
use serde_json::json;

use super::images::{human_size, write_table};
use crate::GlobalOptions;

/// `kiln volume` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given).
    Create {
        /// Set metadata for a volume (`key=value`).
        #[arg(short, long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Volume driver (only `local`).
        #[arg(short, long, default_value = "local", value_name = "DRIVER")]
        driver: String,
        #[arg(value_name = "VOLUME")]
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only display volume names.
        #[arg(short, long)]
        quiet: bool,
        /// Format with a Go template: fields Name, Driver, Labels, Mountpoint, Scope.
        #[arg(long, value_name = "TEMPLATE")]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes (JSON).
    Inspect {
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove one or more volumes (refused while a container uses them).
    #[command(alias = "remove")]
    Rm {
        /// Accepted for compatibility (a volume in use is never removed).
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (`-a`: all unused volumes).
    Prune {
        /// Remove all unused volumes, not only anonymous ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation (kiln never prompts).
        #[arg(short, long)]
        force: bool,
    },
}

fn inspect_json(volume: &Volume) -> serde_json::Value {
    let labels: serde_json::Value =
        if volume.labels.is_empty() { serde_json::Value::Null } else { json!(volume.labels) };
    json!({
        "CreatedAt": rfc3339_nano(volume.created / 1_000_000_000 * 1_000_000_000),
        "Driver": volume.driver,
        "Labels": labels,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": volume.options,
        "Scope": "local",
    })
}

pub fn run(global: &GlobalOptions, command: VolumeCommand) -> anyhow::Result<ExitCode> {
    let store = super::container::open(global)?;
    let volumes = store.volumes();
    let mut out = std::io::stdout().lock();
    match command {
        VolumeCommand::Create { labels, driver, name } => {
            if driver != "local" {
                anyhow::bail!("volume driver {driver:?} is not supported (only local)");
            }
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|l| l.split_once('=').map_or((l.clone(), String::new()), |(k, v)| (k.into(), v.into())))
                .collect();
            let volume = volumes.create(name.as_deref(), labels, false)?;
            writeln!(out, "{}", volume.name)?;
        }
        VolumeCommand::Ls { quiet, format } => {
            let list = volumes.list()?;
            if let Some(format) = format.filter(|_| !quiet) {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|v| {
                        let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        json!({
                            "Name": v.name,
                            "Driver": v.driver,
                            "Labels": labels.join(","),
                            "Mountpoint": v.mountpoint,
                            "Scope": "local",
                        })
                    })
                    .collect();
                let headers = [("Name", "VOLUME NAME"), ("Driver", "DRIVER")];
                write!(out, "{}", crate::format::Format::parse(&format, &headers)?.render(&items)?)?;
            } else if quiet {
                for volume in &list {
                    writeln!(out, "{}", volume.name)?;
                }
            } else {
                let mut rows = vec![vec!["DRIVER".to_owned(), "VOLUME NAME".to_owned()]];
                rows.extend(list.iter().map(|v| vec![v.driver.clone(), v.name.clone()]));
                write_table(&mut out, &rows)?;
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut found = Vec::new();
            let mut failed = false;
            for name in &names {
                match volumes.get(name) {
                    Ok(volume) => found.push(inspect_json(&volume)),
                    Err(err) => {
                        crate::report::error(&err.into(), global.debug);
                        failed = true;
                    }
                }
            }
            serde_json::to_writer_pretty(&mut out, &found)?;
            writeln!(out)?;
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        VolumeCommand::Rm { force: _, names } => {
            let mut failed = false;
            for name in &names {
                match volumes.remove(&store, name) {
                    Ok(()) => writeln!(out, "{name}")?,
                    Err(err @ (RuntimeError::VolumeInUse { .. } | RuntimeError::NoSuchVolume(_))) => {
                        crate::report::error(&err.into(), global.debug);
                        failed = true;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        VolumeCommand::Prune { all, force: _ } => {
            let (removed, bytes) = volumes.prune(&store, all)?;
            if !removed.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for name in &removed {
                    writeln!(out, "{name}")?;
                }
                writeln!(out)?;
            }
            writeln!(out, "Total reclaimed space: {}", human_size(bytes))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

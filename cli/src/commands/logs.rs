//! `kiln logs [-f] [--tail N] [-t] CONTAINER`: the container's json-file log, on stdout and
//! stderr as the process wrote it; `-f` follows across restarts until the container stops.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use executor::runtime::logs::{Entry, Reader, files_oldest_first};

use crate::GlobalOptions;

/// How often `-f` looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// Arguments of `kiln logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs (`all` for every line).
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn print(entries: &[Entry], timestamps: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for entry in entries {
        let out: &mut dyn Write = if entry.stream == "stderr" { &mut stderr } else { &mut stdout };
        if timestamps {
            write!(out, "{} ", entry.time)?;
        }
        out.write_all(entry.log.as_bytes())?;
    }
    stdout.flush()?;
    stderr.flush()
}

pub fn run(global: &GlobalOptions, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n:?} (a number or all)"))?),
    };
    let store = super::container::open(global)?;
    let mut container = store.find(&args.container)?;
    let path = container.log_path();
    let mut reader = match Reader::open(&path) {
        Ok(reader) => Some(reader),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(reader) = &mut reader {
        // rotated files first, oldest first
        let mut entries = Vec::new();
        for file in files_oldest_first(&path).iter().filter(|f| **f != path) {
            if let Ok(mut old) = Reader::open(file) {
                entries.extend(old.read_new()?);
            }
        }
        entries.extend(reader.read_new()?);
        if let Some(tail) = tail {
            entries.drain(..entries.len().saturating_sub(tail));
        }
        print(&entries, args.timestamps)?;
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&mut container, reader, args.timestamps, &args.container)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what the container writes from now on until it stops (across restarts).
fn follow(
    container: &mut executor::runtime::Container,
    mut reader: Option<Reader>,
    timestamps: bool,
    name: &str,
) -> anyhow::Result<()> {
    let path = container.log_path();
    loop {
        container.refresh()?;
        let active = container.state.status.is_active();
        if reader.is_none() {
            reader = Reader::open(&path).ok();
        }
        if let Some(reader) = &mut reader {
            print(&reader.read_new()?, timestamps)?;
        }
        if !active {
            // whatever the monitor wrote before recording the exit was printed above
            return Ok(());
        }
        if !container.dir.exists() {
            bail!("container {name} was removed");
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Arguments of `kiln attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach stdin (containers that outlive the command have none so far: always so).
    #[arg(long)]
    pub no_stdin: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `kiln attach`: the running container's output from now on, on stdout and stderr as it
/// writes it, until it stops; exits with its exit code. Interrupting kiln leaves the container
/// running (docker's `--sig-proxy=false`).
pub fn attach(global: &GlobalOptions, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let store = super::container::open(global)?;
    let mut container = store.find(&args.container)?;
    if !container.state.status.is_active() {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let path = container.log_path();
    // what was written before attaching is `logs`' business
    let reader = match Reader::open(&path) {
        Ok(mut reader) => {
            reader.read_new()?;
            Some(reader)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    follow(&mut container, reader, false, &args.container)?;
    // as a shell reports it: -1 (unknown) is 255
    let code = container.state.exit_code.unwrap_or(-1);
    Ok(ExitCode::from((code & 0xff) as u8))
}

//! `kiln`: the command-line edge. Parses arguments, sets up logging, dispatches to the
//! commands in [`commands`], and renders errors. Libraries never print; this crate does.

mod commands;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A daemonless container image builder with a bundled minimal runtime.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,

    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOptions {
    /// Directory of kiln's state store (images, layers, build cache, containers).
    #[arg(long, global = true, env = "KILN_ROOT", default_value = "/var/lib/kiln", value_name = "DIR")]
    pub root: PathBuf,

    /// Verbosity of diagnostic logging on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Warn, value_name = "LEVEL")]
    pub log_level: LogLevel,

    /// Shorthand for `--log-level debug`; also shows full error chains.
    #[arg(long, global = true)]
    pub debug: bool,
}

/// Logging verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl GlobalOptions {
    fn tracing_filter(&self) -> &'static str {
        let level = if self.debug { LogLevel::Debug.max(self.log_level) } else { self.log_level };
        match level {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl PartialOrd for LogLevel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogLevel {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect kiln's internals (parser output and the like).
    #[command(subcommand)]
    Debug(commands::debug::DebugCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            report::error(
                &anyhow::Error::new(err).context("cannot start the async runtime"),
                cli.global.debug,
            );
            return ExitCode::FAILURE;
        }
    };
    let global = cli.global.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Debug(cmd) => commands::debug::run(&global, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            report::error(&err, cli.global.debug);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(global: &GlobalOptions) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(global.tracing_filter()));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

//! `kiln debug …`: views into kiln's internals.

use std::process::ExitCode;

use clap::Subcommand;

use crate::GlobalOptions;

/// Subcommands of `kiln debug`.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {}

pub async fn run(_global: &GlobalOptions, command: DebugCommand) -> anyhow::Result<ExitCode> {
    match command {}
}

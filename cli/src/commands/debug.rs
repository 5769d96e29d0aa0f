//! `kiln debug …`: views into kiln's internals.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use crate::GlobalOptions;
use crate::report::SourceError;

/// Subcommands of `kiln debug`.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Parse a Dockerfile and print its syntax tree.
    Parse(ParseArgs),
}

/// Arguments of `kiln debug parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Output format: `json` is kiln's typed AST with spans and line numbers; `buildkit` is
    /// BuildKit's parser dump, byte for byte.
    #[arg(long, value_enum, default_value_t = ParseFormat::Json)]
    pub format: ParseFormat,

    /// The Dockerfile to parse, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

/// Output formats of `kiln debug parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParseFormat {
    /// kiln's typed AST as pretty-printed JSON.
    Json,
    /// BuildKit's AST dump (the format of its parser test `result` files).
    Buildkit,
}

pub async fn run(_global: &GlobalOptions, command: DebugCommand) -> anyhow::Result<ExitCode> {
    match command {
        DebugCommand::Parse(args) => parse(args),
    }
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let (name, bytes) = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("cannot read the Dockerfile from standard input")?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes =
            std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
        (args.file.display().to_string(), bytes)
    };
    let fail = |error: parser::ParseError| {
        anyhow::Error::new(SourceError::new(
            error.with_file(&name),
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    };
    let output = match args.format {
        ParseFormat::Buildkit => parser::parse_raw_bytes(&bytes).map_err(fail)?.dump(),
        ParseFormat::Json => {
            let dockerfile = parser::parse_bytes(&bytes).map_err(fail)?;
            let mut json = dockerfile.to_json_pretty();
            json.push('\n');
            json
        }
    };
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}

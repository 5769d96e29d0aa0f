//! Dockerfile front end: pest grammar, typed AST with spans, shell-word expansion.
//!
//! Two layers, as in BuildKit:
//! - [`parse_raw`] is BuildKit's `parser.Parse`: logical lines (directives, escape character,
//!   continuations, heredocs) split into [`Node`]s of keyword, flags and arguments.
//!   [`RawDockerfile::dump`] prints BuildKit's AST dump byte for byte.
//! - [`parse`] builds the typed [`Dockerfile`] (`directives`, `global_args`, `stages`) on top,
//!   validating flags and arguments of every instruction.
//!
//! [`shell`] holds BuildKit-exact variable expansion and word splitting, used when lowering.
//! [`lint`] holds the build checks' rules, the `check=` configuration and the syntax-only checks.
//!
//! # For the Dockerfile → graph lowering
//!
//! - Entry points: [`parse_file`] (errors name the file), [`parse_bytes`], [`parse`].
//! - [`Dockerfile`]: `directives`, `escape` (pass it to the [`shell`] functions), `global_args`
//!   (ARGs before the first FROM, the only ones `FROM` may use), `stages`, `warnings`.
//! - [`Stage`]: `name` (lower-cased), `base` and `platform` (unexpanded), `location`,
//!   `instructions`. [`Dockerfile::stage`] finds one by name.
//! - [`Instruction`]: `keyword`, `location` (byte span, first/last physical line, column),
//!   `original` (the logical line, for history `created_by`), `comments`, and the typed
//!   [`Command`]: flags are already validated and typed ([`Run`] with parsed
//!   [`mount::Mount`]s, [`NetworkMode`], [`SecurityMode`]; [`Copy`](struct@Copy)/[`Add`] options;
//!   [`Healthcheck`] durations), [`CommandForm::Exec`] vs [`CommandForm::Shell`], heredocs as
//!   [`HeredocFile`] (body, `expand`, `chomp`) or [`SourceContent`] for COPY/ADD.
//! - Values stay as written; expand them with [`shell::expand_word`] and friends following
//!   the table in the [`shell`] module docs, and `RUN --mount` values with
//!   [`mount::Mount::expand`].
//! - Errors are [`ParseError`]: `location` and a typed [`ErrorKind`]; `Display` gives
//!   `file:line:col: message`.
// Libraries never print: they return values, typed errors and events for the CLI to render.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

mod ast;
mod error;
mod flags;
mod grammar;
mod health;
mod instructions;
mod json;
mod line_parsers;
mod lines;
pub mod lint;
mod location;
pub mod mount;
mod network;
mod node;
mod raw;
pub mod shell;

pub use ast::*;
pub use error::{ErrorKind, ParseError};
pub use flags::suggest;
pub use health::parse_go_duration;
pub use location::{Location, Span};
pub use network::{NetworkMode, UnknownNetworkMode};
pub use node::{Arg, Heredoc, Node, go_quote};
pub use raw::{Directive, RawDockerfile, Warning, parse_heredoc_marker, parse_raw};

/// Parses Dockerfile bytes into the untyped node list. Bytes must be UTF-8.
pub fn parse_raw_bytes(bytes: &[u8]) -> Result<RawDockerfile, ParseError> {
    parse_raw(utf8(bytes)?)
}

fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|err| {
        let valid = &bytes[..err.valid_up_to()];
        let text = std::str::from_utf8(valid).unwrap_or_default();
        let line = text.matches('\n').count() + 1;
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..].chars().count() + 1;
        let offset = err.valid_up_to();
        let location =
            Location { span: Span::new(offset, offset + 1), start_line: line, end_line: line, column };
        ParseError::new(ErrorKind::InvalidUtf8, location)
    })
}

/// Parses a Dockerfile into the typed AST.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let raw = parse_raw(text)?;
    instructions::build(raw, text)
}

/// Parses Dockerfile bytes into the typed AST. Bytes must be UTF-8.
pub fn parse_bytes(bytes: &[u8]) -> Result<Dockerfile, ParseError> {
    parse(utf8(bytes)?)
}

/// Reads and parses a Dockerfile; errors name the file.
pub fn parse_file(path: &std::path::Path) -> Result<Dockerfile, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Read { path: path.to_path_buf(), source })?;
    parse_bytes(&bytes).map_err(|err| FileError::Parse(Box::new(err.with_file(path))))
}

/// Reading or parsing a Dockerfile from disk failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(Box<ParseError>),
}

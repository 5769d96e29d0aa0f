//! Parse errors: what went wrong and where.

use std::fmt;
use std::path::PathBuf;

use crate::location::Location;
use crate::shell::ShellError;

/// A Dockerfile that could not be parsed, with the place that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The file, when the input came from one.
    pub file: Option<PathBuf>,
    /// Where the problem is (an instruction, or a narrower span inside it).
    pub location: Location,
    /// What went wrong (boxed to keep `Result<_, ParseError>` small).
    pub kind: Box<ErrorKind>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().map_or_else(|| "Dockerfile".into(), |p| p.display().to_string());
        write!(f, "{file}:{}:{}: {}", self.location.start_line, self.location.column, self.kind)
    }
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, location: Location) -> ParseError {
        ParseError { file: None, location, kind: Box::new(kind) }
    }

    /// Names the file the input came from (used in messages).
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> ParseError {
        self.file = Some(file.into());
        self
    }
}

/// The kinds of parse errors. Messages are lowercase, without a trailing period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("dockerfile is not valid utf-8")]
    InvalidUtf8,
    #[error("dockerfile line greater than max allowed size of {max}")]
    LineTooLong { max: usize },
    #[error("invalid escape token `{0}` does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("file with no instructions")]
    NoInstructions,
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    #[error("{instruction} must have two arguments")]
    MissingValue { instruction: String },
    #[error("syntax error - can't find = in {word:?}, must be of the form: name=value")]
    MissingEquals { word: String },
    #[error("unterminated heredoc `{name}`")]
    UnterminatedHeredoc { name: String },
    #[error("invalid heredoc: {0}")]
    Heredoc(#[source] ShellError),
    #[error("internal lexing of heredoc produced inconsistent results: {0}")]
    InconsistentHeredoc(String),
    /// BuildKit's text: `unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)`.
    #[error("unknown instruction: {name}{}", suggestion_text(.suggestion))]
    UnknownInstruction { name: String, suggestion: Option<String> },
    #[error("{instruction} found before any FROM: no build stage in current context")]
    NoStage { instruction: String },
    /// BuildKit's text: `unknown flag: --chmodd (did you mean chmod?)`.
    #[error("unknown flag: {flag}{}", suggestion_text(.suggestion))]
    UnknownFlag { flag: String, instruction: String, suggestion: Option<String> },
    #[error("duplicate flag `{flag}` for {instruction}")]
    DuplicateFlag { flag: String, instruction: String },
    #[error("flag `{flag}` of {instruction} needs a value")]
    MissingFlagValue { flag: String, instruction: String },
    #[error("flag `{flag}` of {instruction} expects a boolean, not `{value}`")]
    InvalidBool { flag: String, instruction: String, value: String },
    /// BuildKit's text for a `--chmod` that is neither octal (≤ 07777) nor symbolic.
    #[error("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")]
    InvalidChmod { value: String },
    #[error("invalid value `{value}` for flag `{flag}` of {instruction}: {reason}")]
    InvalidFlagValue { flag: String, instruction: String, value: String, reason: String },
    #[error("{instruction} flags must start with --: `{word}`")]
    NotAFlag { instruction: String, word: String },
    #[error("{instruction} requires {expected}")]
    ArgumentCount { instruction: String, expected: &'static str },
    #[error(
        "{instruction} requires at least two arguments, but only one was provided: destination could not be determined"
    )]
    NoDestination { instruction: String },
    #[error("bad input to {instruction}, too many arguments")]
    TooManyArguments { instruction: String },
    #[error("{instruction} names can not be blank")]
    BlankName { instruction: String },
    #[error("FROM requires either one or three arguments (`FROM image [AS name]`)")]
    FromArguments,
    #[error("invalid name for build stage: {0:?}, name can't start with a number or contain symbols")]
    InvalidStageName(String),
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("{instruction} cannot accept a heredoc as {position}")]
    HeredocNotAllowed { instruction: String, position: &'static str },
    #[error("invalid --mount `{value}`: {reason}")]
    InvalidMount { value: String, reason: String },
    #[error("{what} nested more than {limit} levels deep")]
    NestingTooDeep { what: &'static str, limit: usize },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
}

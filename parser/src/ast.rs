//! The typed Dockerfile AST. Values are kept as written (variables unexpanded, ENV/LABEL/ARG
//! quotes intact): expansion happens during lowering with [`crate::shell`], because it depends
//! on build arguments and on earlier instructions.

use std::time::Duration;

use serde::Serialize;

use crate::location::Location;
use crate::network::NetworkMode;
use crate::raw::{Directive, Warning};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or `` ` ``), also used for expansion.
    pub escape: char,
    /// `ARG` instructions before the first `FROM`.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<Warning>,
}

/// One build stage: a `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `AS name`, lower-cased as BuildKit does.
    pub name: Option<String>,
    /// The base image or stage reference, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// Location of the `FROM` instruction.
    pub location: Location,
    /// Comment lines directly above the `FROM`.
    pub comments: Vec<String>,
    pub instructions: Vec<Instruction>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The keyword as written (`RUN`, `run`…).
    pub keyword: String,
    pub location: Location,
    /// The logical line (continuations joined, comment lines removed).
    pub original: String,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
    pub command: Command,
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Command {
    /// Only inside [`Dockerfile::stages`] as the stage header is not an instruction.
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell {
        shell: Vec<String>,
    },
    Env {
        pairs: Vec<KeyValue>,
    },
    Label {
        pairs: Vec<KeyValue>,
    },
    Arg {
        args: Vec<ArgDeclaration>,
    },
    Expose {
        ports: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    User {
        user: String,
    },
    Workdir {
        path: String,
    },
    Copy(Copy),
    Add(Add),
    Healthcheck(Healthcheck),
    Onbuild(Onbuild),
    Stopsignal {
        signal: String,
    },
    Maintainer {
        maintainer: String,
    },
}

/// Arguments of RUN, CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    #[serde(flatten)]
    pub form: CommandForm,
    /// Heredocs attached to the instruction (their bodies become files or stdin).
    pub heredocs: Vec<HeredocFile>,
}

/// Exec (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "lowercase")]
pub enum CommandForm {
    Exec { args: Vec<String> },
    Shell { command: String },
}

/// A heredoc body, as RUN uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeredocFile {
    /// The delimiter word.
    pub name: String,
    /// The body; with `chomp`, leading tabs are already removed.
    pub data: String,
    /// `<<-` was used.
    pub chomp: bool,
    /// False when the delimiter was quoted (no variable expansion in the body).
    pub expand: bool,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    #[serde(flatten)]
    pub command: CommandLine,
    pub mounts: Vec<crate::mount::Mount>,
    pub network: NetworkMode,
    pub security: SecurityMode,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

/// An ENV or LABEL pair (raw: quotes and escapes still in place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Legacy `ENV key value` form (no `=`).
    pub legacy: bool,
}

/// One name of an `ARG`, with its optional default (raw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDeclaration {
    pub name: String,
    pub default: Option<String>,
}

/// A heredoc used as a COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceContent {
    /// The delimiter word, used as the file name.
    pub path: String,
    pub data: String,
    pub expand: bool,
}

/// Sources and destination of COPY and ADD (raw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
    pub destination: String,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    #[serde(flatten)]
    pub paths: SourcesAndDest,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    #[serde(flatten)]
    pub paths: SourcesAndDest,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD …`.
    Cmd {
        /// `["CMD", args…]` (exec form) or `["CMD-SHELL", command]`, as in the image config.
        test: Vec<String>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// `ONBUILD`: the trigger, validated now, stored as text in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// What goes into the image config: the line without `ONBUILD`, heredocs appended.
    pub expression: String,
    pub trigger: Box<Instruction>,
}

impl Dockerfile {
    /// The stage called `name` (case-insensitive, as stage names are lower-cased).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let name = name.to_ascii_lowercase();
        self.stages.iter().find(|s| s.name.as_deref() == Some(name.as_str()))
    }
}

impl Dockerfile {
    /// The AST as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|err| format!("{{\"error\": {:?}}}", err.to_string()))
    }
}

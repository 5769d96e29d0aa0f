//! From untyped [`Node`]s to the typed AST: BuildKit's `instructions.Parse`, with flags and
//! arguments validated per instruction.

use crate::ast::{
    Add, ArgDeclaration, Command, CommandForm, CommandLine, Copy, Dockerfile, HeredocFile, Instruction,
    KeyValue, Onbuild, Run, SecurityMode, SourceContent, SourcesAndDest, Stage,
};
use crate::error::{ErrorKind, ParseError};
use crate::flags::{FlagError, FlagKind, Flags, suggest};
use crate::location::{LineIndex, Location, Span};
use crate::mount::Mount;
use crate::network::NetworkMode;
use crate::node::{Node, go_lower};
use crate::raw::{RawDockerfile, parse_heredoc_marker};

use FlagKind::{Bool, String as Str, Strings};

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Builds the typed Dockerfile from the untyped parse of `text`.
pub(crate) fn build(raw: RawDockerfile, text: &str) -> Result<Dockerfile, ParseError> {
    let converter = Converter { text };
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &raw.nodes {
        let keyword = go_lower(&node.keyword);
        if keyword == "from" {
            stages.push(converter.stage(node)?);
            continue;
        }
        let instruction = converter.instruction(node, &node.heredocs)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if matches!(instruction.command, Command::Arg { .. }) => global_args.push(instruction),
            None => {
                return Err(ParseError::new(
                    ErrorKind::NoStage { instruction: node.keyword.to_uppercase() },
                    node.location,
                ));
            }
        }
    }
    Ok(Dockerfile {
        directives: raw.directives,
        escape: raw.escape,
        global_args,
        stages,
        warnings: raw.warnings,
    })
}

struct Converter<'a> {
    text: &'a str,
}

impl Converter<'_> {
    fn error(&self, node: &Node, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, node.location)
    }

    /// Points a flag error at the flag in the source when it can be found there.
    fn flag_error(&self, node: &Node, err: FlagError) -> ParseError {
        let name = err.word.split('=').next().unwrap_or(&err.word);
        let span = node.location.span;
        let location = self
            .text
            .get(span.start..span.end)
            .and_then(|source| source.find(name))
            .map(|offset| {
                let start = span.start + offset;
                let len = self.text[start..span.end].find(char::is_whitespace).unwrap_or(span.end - start);
                let mut location =
                    LineIndex::new(self.text).location(self.text, Span::new(start, start + len));
                location.end_line = location.start_line;
                location
            })
            .unwrap_or(node.location);
        ParseError::new(err.kind, location)
    }

    fn flags(&self, node: &Node, allowed: &[(&'static str, FlagKind)]) -> Result<Flags, ParseError> {
        if node.flags.is_empty() {
            return Ok(Flags::default());
        }
        Flags::parse(&node.keyword.to_uppercase(), &node.flags, allowed).map_err(|e| self.flag_error(node, e))
    }

    fn stage(&self, node: &Node) -> Result<Stage, ParseError> {
        let flags = self.flags(node, &[("platform", Str)])?;
        let args = node.arg_strings();
        let name = match args.as_slice() {
            [_] => None,
            [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
                let lower = name.to_lowercase();
                let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                    && lower
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                if !valid {
                    return Err(self.error(node, ErrorKind::InvalidStageName(name.clone())));
                }
                Some(lower)
            }
            _ => return Err(self.error(node, ErrorKind::FromArguments)),
        };
        Ok(Stage {
            name,
            base: args[0].clone(),
            platform: flags.string("platform").filter(|p| !p.is_empty()),
            location: node.location,
            comments: node.comments.clone(),
            instructions: Vec::new(),
        })
    }

    fn instruction(&self, node: &Node, heredocs: &[crate::node::Heredoc]) -> Result<Instruction, ParseError> {
        let name = node.keyword.to_uppercase();
        let args = node.arg_strings();
        let count = |expected: &'static str| {
            self.error(node, ErrorKind::ArgumentCount { instruction: name.clone(), expected })
        };
        let no_flags = || self.flags(node, &[]);
        let command = match go_lower(&node.keyword).as_str() {
            "run" => {
                let flags = self.flags(node, &[("mount", Strings), ("network", Str), ("security", Str)])?;
                let mut mounts = Vec::new();
                for raw in flags.strings("mount") {
                    let mount = Mount::parse(raw, None).map_err(|reason| {
                        self.flag_error(
                            node,
                            FlagError {
                                kind: ErrorKind::InvalidMount { value: raw.clone(), reason },
                                word: "--mount".into(),
                            },
                        )
                    })?;
                    mounts.push(mount);
                }
                let invalid = |flag: &str, value: String, reason: &str| {
                    self.flag_error(
                        node,
                        FlagError {
                            kind: ErrorKind::InvalidFlagValue {
                                flag: flag.into(),
                                instruction: name.clone(),
                                value,
                                reason: reason.into(),
                            },
                            word: flag.into(),
                        },
                    )
                };
                let network = match flags.string("network") {
                    None => NetworkMode::Default,
                    Some(value) => NetworkMode::parse(&value)
                        .map_err(|error| invalid("--network", error.value, error.expected))?,
                };
                let security = match flags.string("security").as_deref() {
                    None | Some("sandbox") => SecurityMode::Sandbox,
                    Some("insecure") => SecurityMode::Insecure,
                    Some(other) => {
                        return Err(invalid("--security", other.into(), "expected sandbox or insecure"));
                    }
                };
                Command::Run(Run { command: command_line(node, args, heredocs), mounts, network, security })
            }
            "cmd" => {
                no_flags()?;
                Command::Cmd(command_line(node, args, heredocs))
            }
            "entrypoint" => {
                no_flags()?;
                Command::Entrypoint(command_line(node, args, heredocs))
            }
            "shell" => {
                no_flags()?;
                if args.is_empty() {
                    return Err(count("at least one argument"));
                }
                if !node.json {
                    return Err(self.error(node, ErrorKind::ShellNotJson));
                }
                Command::Shell { shell: args }
            }
            "env" | "label" => {
                no_flags()?;
                let pairs = self.key_values(node, &name, &args)?;
                if go_lower(&node.keyword) == "env" {
                    Command::Env { pairs }
                } else {
                    Command::Label { pairs }
                }
            }
            "arg" => {
                no_flags()?;
                if args.is_empty() {
                    return Err(count("at least one argument"));
                }
                let mut decls = Vec::with_capacity(args.len());
                for arg in &args {
                    let decl = match arg.split_once('=') {
                        Some(("", _)) => {
                            return Err(self.error(node, ErrorKind::BlankName { instruction: name }));
                        }
                        Some((key, value)) => {
                            ArgDeclaration { name: key.into(), default: Some(value.into()) }
                        }
                        None => ArgDeclaration { name: arg.clone(), default: None },
                    };
                    decls.push(decl);
                }
                Command::Arg { args: decls }
            }
            "expose" => {
                no_flags()?;
                if args.is_empty() {
                    return Err(count("at least one argument"));
                }
                let mut ports = args;
                ports.sort();
                Command::Expose { ports }
            }
            "volume" => {
                no_flags()?;
                if args.is_empty() {
                    return Err(count("at least one argument"));
                }
                let mut paths = Vec::with_capacity(args.len());
                for path in &args {
                    let path = path.trim();
                    if path.is_empty() {
                        return Err(self.error(node, ErrorKind::EmptyVolume));
                    }
                    paths.push(path.to_string());
                }
                Command::Volume { paths }
            }
            "user" | "workdir" | "stopsignal" | "maintainer" => {
                no_flags()?;
                let [value] = args.as_slice() else {
                    return Err(count("exactly one argument"));
                };
                let value = value.clone();
                match go_lower(&node.keyword).as_str() {
                    "user" => Command::User { user: value },
                    "workdir" => Command::Workdir { path: value },
                    "stopsignal" => Command::Stopsignal { signal: value },
                    _ => Command::Maintainer { maintainer: value },
                }
            }
            "copy" => {
                let flags = self.flags(
                    node,
                    &[
                        ("chown", Str),
                        ("from", Str),
                        ("chmod", Str),
                        ("link", Bool),
                        ("exclude", Strings),
                        ("parents", Bool),
                    ],
                )?;
                let paths = self.sources_and_dest(node, &name, &args, heredocs)?;
                Command::Copy(Copy {
                    paths,
                    from: flags.string("from").filter(|v| !v.is_empty()),
                    chown: flags.string("chown").filter(|v| !v.is_empty()),
                    chmod: self.chmod(node, &flags)?,
                    link: flags.bool("link").unwrap_or(false),
                    parents: flags.bool("parents").unwrap_or(false),
                    excludes: flags.strings("exclude").to_vec(),
                })
            }
            "add" => {
                let flags = self.flags(
                    node,
                    &[
                        ("chown", Str),
                        ("chmod", Str),
                        ("link", Bool),
                        ("keep-git-dir", Bool),
                        ("checksum", Str),
                        ("unpack", Bool),
                        ("exclude", Strings),
                    ],
                )?;
                let paths = self.sources_and_dest(node, &name, &args, heredocs)?;
                let checksum = flags.string("checksum").filter(|v| !v.is_empty());
                if checksum.is_some() && paths.sources.len() + paths.contents.len() != 1 {
                    let err = FlagError {
                        kind: ErrorKind::InvalidFlagValue {
                            flag: "--checksum".into(),
                            instruction: name.clone(),
                            value: checksum.clone().unwrap_or_default(),
                            reason: "checksum can't be specified for multiple sources".into(),
                        },
                        word: "--checksum".into(),
                    };
                    return Err(self.flag_error(node, err));
                }
                Command::Add(Add {
                    paths,
                    chown: flags.string("chown").filter(|v| !v.is_empty()),
                    chmod: self.chmod(node, &flags)?,
                    link: flags.bool("link").unwrap_or(false),
                    keep_git_dir: flags.bool("keep-git-dir"),
                    checksum,
                    unpack: flags.bool("unpack"),
                    excludes: flags.strings("exclude").to_vec(),
                })
            }
            "healthcheck" => {
                let flags = self.flags(
                    node,
                    &[
                        ("interval", Str),
                        ("timeout", Str),
                        ("start-period", Str),
                        ("start-interval", Str),
                        ("retries", Str),
                    ],
                )?;
                let health =
                    crate::health::healthcheck(&args, node.json, &flags).map_err(|kind| match &kind {
                        ErrorKind::InvalidFlagValue { flag, .. } => {
                            let word = flag.clone();
                            self.flag_error(node, FlagError { kind, word })
                        }
                        _ => self.error(node, kind),
                    })?;
                Command::Healthcheck(health)
            }
            "onbuild" => {
                no_flags()?;
                let Some(trigger) = node.nested() else {
                    return Err(count("at least one argument"));
                };
                let trigger_name = trigger.keyword.trim().to_uppercase();
                match trigger_name.as_str() {
                    "ONBUILD" => return Err(self.error(node, ErrorKind::OnbuildChain)),
                    "MAINTAINER" | "FROM" => {
                        return Err(self.error(node, ErrorKind::OnbuildTrigger(trigger_name)));
                    }
                    _ => {}
                }
                let mut expression = strip_onbuild(&node.original).to_string();
                for heredoc in heredocs {
                    expression.push('\n');
                    expression.push_str(&heredoc.content);
                    expression.push_str(&heredoc.name);
                }
                let trigger = self.instruction(trigger, heredocs)?;
                Command::Onbuild(Onbuild { expression, trigger: Box::new(trigger) })
            }
            _ => {
                // BuildKit matches the suggestion's case to what was written (FNTRYPOINT →
                // ENTRYPOINT, fntrypoint → entrypoint, mixed case → lowercase)
                let keyword = &node.keyword;
                let suggestion = suggest(&keyword.to_uppercase(), INSTRUCTIONS.iter().copied()).map(|name| {
                    if *keyword == keyword.to_uppercase() {
                        name.to_ascii_uppercase()
                    } else {
                        name.to_ascii_lowercase()
                    }
                });
                return Err(self
                    .error(node, ErrorKind::UnknownInstruction { name: node.keyword.clone(), suggestion }));
            }
        };
        Ok(Instruction {
            keyword: node.keyword.clone(),
            location: node.location,
            original: node.original.clone(),
            comments: node.comments.clone(),
            command,
        })
    }

    fn key_values(&self, node: &Node, name: &str, args: &[String]) -> Result<Vec<KeyValue>, ParseError> {
        if args.is_empty() {
            return Err(self.error(
                node,
                ErrorKind::ArgumentCount { instruction: name.into(), expected: "at least one argument" },
            ));
        }
        if !args.len().is_multiple_of(3) {
            return Err(self.error(node, ErrorKind::TooManyArguments { instruction: name.into() }));
        }
        let mut pairs = Vec::with_capacity(args.len() / 3);
        for triple in args.chunks(3) {
            if triple[0].is_empty() {
                return Err(self.error(node, ErrorKind::BlankName { instruction: name.into() }));
            }
            pairs.push(KeyValue {
                key: triple[0].clone(),
                value: triple[1].clone(),
                legacy: triple[2].is_empty(),
            });
        }
        Ok(pairs)
    }

    fn sources_and_dest(
        &self,
        node: &Node,
        name: &str,
        args: &[String],
        heredocs: &[crate::node::Heredoc],
    ) -> Result<SourcesAndDest, ParseError> {
        let Some((destination, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(self.error(node, ErrorKind::NoDestination { instruction: name.into() }));
        };
        let marker = |word: &str| parse_heredoc_marker(word).ok().flatten();
        if marker(destination).is_some() {
            return Err(self.error(
                node,
                ErrorKind::HeredocNotAllowed { instruction: name.into(), position: "a destination" },
            ));
        }
        let mut paths =
            SourcesAndDest { sources: Vec::new(), contents: Vec::new(), destination: destination.clone() };
        for source in sources {
            match marker(source) {
                Some(doc) => {
                    let body = heredocs.iter().find(|h| h.name == doc.name);
                    let data =
                        body.map(|h| if doc.chomp { h.effective_content() } else { h.content.clone() });
                    paths.contents.push(SourceContent {
                        path: doc.name,
                        data: data.unwrap_or_default(),
                        expand: doc.expand,
                    });
                }
                None => paths.sources.push(source.clone()),
            }
        }
        Ok(paths)
    }

    /// `--chmod`: octal up to 07777 or a symbolic mode (`u+x,go-w`); values with variables are
    /// checked after expansion.
    fn chmod(&self, node: &Node, flags: &Flags) -> Result<Option<String>, ParseError> {
        let Some(value) = flags.string("chmod").filter(|v| !v.is_empty()) else { return Ok(None) };
        if value.contains('$') || valid_chmod(&value) {
            return Ok(Some(value));
        }
        let err = FlagError { kind: ErrorKind::InvalidChmod { value }, word: "--chmod".into() };
        Err(self.flag_error(node, err))
    }
}

/// Whether `value` is an octal mode up to 07777 or a symbolic `chmod` mode.
pub(crate) fn valid_chmod(value: &str) -> bool {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777);
    }
    value.split(',').all(|clause| {
        let who_len = clause.find(|c: char| !"ugoa".contains(c)).unwrap_or(clause.len());
        let mut rest = &clause[who_len..];
        if rest.is_empty() {
            return false;
        }
        while !rest.is_empty() {
            let Some(op) = rest.chars().next().filter(|c| "+-=".contains(*c)) else { return false };
            rest = &rest[op.len_utf8()..];
            let perm_len = rest.find(|c: char| !"rwxXstugo".contains(c)).unwrap_or(rest.len());
            rest = &rest[perm_len..];
        }
        true
    })
}

/// Removes `^\s*ONBUILD\s*` (case-insensitive) like BuildKit's expression regex.
fn strip_onbuild(original: &str) -> &str {
    let is_re_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let text = original.trim_start_matches(is_re_space);
    match text.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => text[7..].trim_start_matches(is_re_space),
        _ => original,
    }
}

fn command_line(node: &Node, args: Vec<String>, heredocs: &[crate::node::Heredoc]) -> CommandLine {
    let form =
        if node.json { CommandForm::Exec { args } } else { CommandForm::Shell { command: args.join(" ") } };
    let heredocs = heredocs
        .iter()
        .map(|h| HeredocFile {
            name: h.name.clone(),
            data: h.effective_content(),
            chomp: h.chomp,
            expand: h.expand,
            file_descriptor: h.file_descriptor,
        })
        .collect();
    CommandLine { form, heredocs }
}

impl Location {
    /// Whether `line` (1-based) falls inside this location.
    pub fn contains_line(&self, line: usize) -> bool {
        (self.start_line..=self.end_line).contains(&line)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chmod_values() {
        for ok in ["0644", "755", "7777", "0", "u+x", "go-w,u=rwx", "a+X", "+x", "u=g"] {
            assert!(valid_chmod(ok), "{ok}");
        }
        for bad in ["999", "10000", "64a", "u", "z+x", "", "u+x,"] {
            assert!(!valid_chmod(bad), "{bad}");
        }
    }

    #[test]
    fn onbuild_expression() {
        assert_eq!(strip_onbuild("  onbuild   RUN x"), "RUN x");
        assert_eq!(strip_onbuild("ONBUILD"), "");
    }
}

//! The build checks that need only the syntax: those BuildKit runs while parsing
//! ([`check_file`], over the untyped nodes) and those it runs per dispatched instruction
//! ([`check_instruction`], over the typed AST).

use super::{Linter, rules};
use crate::ast::{Command, Instruction};
use crate::node::{Arg, Node};
use crate::raw::RawDockerfile;

/// Stage names BuildKit reserves.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

fn texts(node: &Node) -> Vec<&str> {
    node.args
        .iter()
        .filter_map(|arg| match arg {
            Arg::Text(text) => Some(text.as_str()),
            Arg::Node(_) => None,
        })
        .collect()
}

fn is_lower(word: &str) -> bool {
    word == word.to_lowercase()
}

fn is_upper(word: &str) -> bool {
    word == word.to_uppercase()
}

/// The parse-time rules: NoEmptyContinuation, MaintainerDeprecated, StageNameCasing,
/// FromAsCasing, InvalidDefinitionDescription, ConsistentInstructionCasing, ReservedStageName
/// and DuplicateStageName.
pub fn check_file(raw: &RawDockerfile, linter: &mut Linter) {
    for warning in &raw.warnings {
        linter.report_lines(
            &rules::NO_EMPTY_CONTINUATION,
            &[],
            Some((warning.line, warning.line)),
            "Empty continuation line".into(),
        );
    }
    for node in &raw.nodes {
        check_node(node, linter);
    }
    let in_stages: Vec<&Node> =
        raw.nodes.iter().skip_while(|n| !n.keyword.eq_ignore_ascii_case("from")).collect();
    check_casing(&in_stages, linter);
    let mut names: Vec<String> = Vec::new();
    for node in in_stages.iter().filter(|n| n.keyword.eq_ignore_ascii_case("from")) {
        let args = texts(node);
        let Some(name) = args.get(2).filter(|_| args.len() == 3).map(|n| n.to_lowercase()) else { continue };
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            let message = format!("Stage name should not use the same name as reserved stage {name:?}");
            linter.report(&rules::RESERVED_STAGE_NAME, &[], &node.location, message);
        }
        if names.contains(&name) {
            let message = format!("Duplicate stage name {name:?}, stage names should be unique");
            linter.report(&rules::DUPLICATE_STAGE_NAME, &[], &node.location, message);
        }
        names.push(name);
    }
}

fn check_node(node: &Node, linter: &mut Linter) {
    let keyword = node.keyword.to_ascii_lowercase();
    let comments = &node.comments;
    match keyword.as_str() {
        "maintainer" => linter.report(
            &rules::MAINTAINER_DEPRECATED,
            comments,
            &node.location,
            "Maintainer instruction is deprecated in favor of using label".into(),
        ),
        "from" => {
            let args = texts(node);
            if args.len() == 3 && !is_lower(args[2]) {
                let message = format!("Stage name '{}' should be lowercase", args[2]);
                linter.report(&rules::STAGE_NAME_CASING, comments, &node.location, message);
            }
            // an inconsistently cased FROM is ConsistentInstructionCasing's business
            let from = node.keyword.as_str();
            if args.len() >= 3 {
                let as_word = args[1];
                let mismatch = (is_lower(from) && !is_lower(as_word))
                    || (!is_lower(from) && is_upper(from) && !is_upper(as_word));
                if mismatch {
                    let message = format!("'{as_word}' and '{from}' keywords' casing do not match");
                    linter.report(&rules::FROM_AS_CASING, comments, &node.location, message);
                }
            }
            if args.len() == 3 && args[1].eq_ignore_ascii_case("as") {
                check_description("FROM", &[args[2].to_lowercase()], node, linter);
            }
        }
        "arg" => {
            let keys: Vec<String> = texts(node)
                .into_iter()
                .map(|arg| arg.split_once('=').map_or(arg, |(key, _)| key).to_owned())
                .collect();
            check_description("ARG", &keys, node, linter);
        }
        _ => {}
    }
}

/// InvalidDefinitionDescription: the comment right above a FROM/ARG starts with its name.
fn check_description(instruction: &str, keys: &[String], node: &Node, linter: &mut Linter) {
    let (Some(last), Some(first_key)) = (node.comments.last(), keys.first()) else { return };
    let first_word = last.split(' ').next().unwrap_or_default();
    if keys.iter().any(|k| k == first_word) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { first_key.as_str() };
    let message = format!("Comment for {instruction} should follow the format: `# {example} <description>`");
    linter.report(&rules::INVALID_DEFINITION_DESCRIPTION, &node.comments, &node.location, message);
}

/// ConsistentInstructionCasing over the instructions from the first FROM on.
fn check_casing(nodes: &[&Node], linter: &mut Linter) {
    let (mut lower, mut upper) = (0usize, 0usize);
    for node in nodes {
        if is_lower(&node.keyword) {
            lower += 1;
        } else if is_upper(&node.keyword) {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in nodes {
        let keyword = &node.keyword;
        let correct = if majority_lower && !is_lower(keyword) {
            "lowercase"
        } else if !majority_lower && !is_upper(keyword) {
            "uppercase"
        } else {
            continue;
        };
        let message =
            format!("Command '{keyword}' should match the case of the command majority ({correct})");
        linter.report(&rules::CONSISTENT_INSTRUCTION_CASING, &[], &node.location, message);
    }
}

/// Whether an ARG/ENV name looks like it holds a secret (a `_`-separated word is one of
/// BuildKit's secret tokens and none of its allow tokens).
pub fn is_secret_key(key: &str) -> bool {
    const SECRET: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let words: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
    let has = |tokens: &[&str]| words.iter().any(|w| tokens.contains(&w.as_str()));
    has(&SECRET) && !has(&ALLOW)
}

/// The dispatch-time rules that need only the instruction: LegacyKeyValueFormat,
/// SecretsUsedInArgOrEnv, ExposeProtoCasing and ExposeInvalidFormat. `check=` comments above
/// the instruction apply.
pub fn check_instruction(instruction: &Instruction, linter: &mut Linter) {
    let comments = &instruction.comments;
    let at = &instruction.location;
    let legacy = |linter: &mut Linter, name: &str| {
        let message =
            format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format");
        linter.report(&rules::LEGACY_KEY_VALUE_FORMAT, comments, at, message);
    };
    let secret = |linter: &mut Linter, name: &str, key: &str| {
        if is_secret_key(key) {
            let message = format!("Do not use ARG or ENV instructions for sensitive data ({name} {key:?})");
            linter.report(&rules::SECRETS_USED_IN_ARG_OR_ENV, comments, at, message);
        }
    };
    match &instruction.command {
        Command::Env { pairs } => {
            for pair in pairs {
                if pair.legacy {
                    legacy(linter, &instruction.keyword);
                }
                secret(linter, "ENV", &pair.key);
            }
        }
        Command::Label { pairs } => {
            for _ in pairs.iter().filter(|p| p.legacy) {
                legacy(linter, &instruction.keyword);
            }
        }
        Command::Arg { args } => {
            for arg in args {
                secret(linter, "ARG", &arg.name);
            }
        }
        Command::Expose { ports } => {
            for port in ports {
                check_expose_port(port, instruction, linter);
            }
        }
        _ => {}
    }
}

/// ExposeProtoCasing and ExposeInvalidFormat for one `[ip:][host:]port[/proto]`.
fn check_expose_port(raw: &str, instruction: &Instruction, linter: &mut Linter) {
    let parts: Vec<&str> = raw.split(':').collect();
    let container = parts.last().copied().unwrap_or_default();
    let (ip, host) = match parts.len() {
        0 | 1 => ("".to_owned(), ""),
        2 => ("".to_owned(), parts[0]),
        n => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let proto = container.split_once('/').map(|(_, proto)| proto).unwrap_or_default();
    let (comments, at) = (&instruction.comments, &instruction.location);
    if !is_lower(proto) {
        let message = format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase");
        linter.report(&rules::EXPOSE_PROTO_CASING, comments, at, message);
    }
    if !ip.is_empty() || !host.is_empty() {
        let message =
            format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'");
        linter.report(&rules::EXPOSE_INVALID_FORMAT, comments, at, message);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{CheckConfig, Linter};
    use super::*;

    /// The rule names the parse-time and per-instruction checks report for `text`, with
    /// every rule (experimental ones too) enabled.
    fn found(text: &str) -> Vec<String> {
        let mut linter = Linter::new(CheckConfig { experimental_all: true, ..CheckConfig::default() });
        check_file(&crate::parse_raw(text).unwrap(), &mut linter);
        let parsed = crate::parse(text).unwrap();
        for instruction in parsed.global_args.iter().chain(parsed.stages.iter().flat_map(|s| &s.instructions))
        {
            check_instruction(instruction, &mut linter);
        }
        linter.findings().iter().map(|f| f.short()).collect()
    }

    #[track_caller]
    fn assert_rule(bad: &str, good: &str, rule: &str, expected: &str) {
        let bad_found = found(bad);
        assert!(bad_found.iter().any(|f| f == expected), "{rule}: {bad_found:?}");
        let good_found = found(good);
        assert!(!good_found.iter().any(|f| f.starts_with(&format!("{rule}:"))), "{rule}: {good_found:?}");
    }

    #[test]
    fn stage_name_casing() {
        assert_rule(
            "FROM scratch AS Bad\n",
            "FROM scratch AS good\n",
            "StageNameCasing",
            "StageNameCasing: Stage name 'Bad' should be lowercase (line 1)",
        );
    }

    #[test]
    fn from_as_casing() {
        assert_rule(
            "FROM scratch as base\n",
            "from scratch as base\n",
            "FromAsCasing",
            "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
        );
        assert_eq!(found("From scratch as base\n").iter().filter(|f| f.starts_with("FromAs")).count(), 0);
    }

    #[test]
    fn no_empty_continuation() {
        assert_rule(
            "FROM scratch\nCOPY a \\\n\n.\n",
            "FROM scratch\nCOPY a \\\n.\n",
            "NoEmptyContinuation",
            "NoEmptyContinuation: Empty continuation line (line 4)",
        );
    }

    #[test]
    fn consistent_instruction_casing() {
        assert_rule(
            "FROM scratch\ncopy a /\nCOPY b /\n",
            "from scratch\ncopy a /\n",
            "ConsistentInstructionCasing",
            "ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 2)",
        );
    }

    #[test]
    fn duplicate_and_reserved_stage_names() {
        assert_rule(
            "FROM scratch AS b\nFROM scratch AS b\n",
            "FROM scratch AS a\nFROM scratch AS b\n",
            "DuplicateStageName",
            "DuplicateStageName: Duplicate stage name \"b\", stage names should be unique (line 2)",
        );
        assert_rule(
            "FROM scratch AS context\n",
            "FROM scratch AS contexts\n",
            "ReservedStageName",
            "ReservedStageName: Stage name should not use the same name as reserved stage \"context\" (line 1)",
        );
    }

    #[test]
    fn maintainer_deprecated() {
        assert_rule(
            "FROM scratch\nMAINTAINER me\n",
            "FROM scratch\nLABEL a=b\n",
            "MaintainerDeprecated",
            "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
        );
    }

    #[test]
    fn invalid_definition_description() {
        assert_rule(
            "# a bad comment\nARG foo=bar\nFROM scratch\n",
            "# foo is the thing\nARG foo=bar\nFROM scratch\n",
            "InvalidDefinitionDescription",
            "InvalidDefinitionDescription: Comment for ARG should follow the format: `# foo <description>` (line 2)",
        );
        assert!(
            found("# x\nARG a b\nFROM scratch\n").iter().any(|f| f.contains("`# <arg_key> <description>`"))
        );
    }

    #[test]
    fn legacy_key_value_format() {
        assert_rule(
            "FROM scratch\nENV k v\n",
            "FROM scratch\nENV k=v\n",
            "LegacyKeyValueFormat",
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
        );
    }

    #[test]
    fn secrets_used_in_arg_or_env() {
        assert_rule(
            "FROM scratch\nARG GITHUB_TOKEN\n",
            "FROM scratch\nARG PUBLIC_KEY TOKEN_FILE tokens\n",
            "SecretsUsedInArgOrEnv",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\") (line 2)",
        );
        assert!(
            !found("FROM scratch\n# check=skip=SecretsUsedInArgOrEnv\nENV password=x\n")
                .iter()
                .any(|f| f.starts_with("Secrets"))
        );
    }

    #[test]
    fn expose_rules() {
        assert_rule(
            "FROM scratch\nEXPOSE 80/TCP\n",
            "FROM scratch\nEXPOSE 80/tcp 81\n",
            "ExposeProtoCasing",
            "ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase (line 2)",
        );
        assert_rule(
            "FROM scratch\nEXPOSE [::1]:80:80\n",
            "FROM scratch\nEXPOSE 80\n",
            "ExposeInvalidFormat",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:80:80' (line 2)",
        );
    }
}

//! Build checks (BuildKit's Dockerfile linter): the rules, the `check` configuration and the
//! checks that need nothing but the syntax.
//!
//! - [`rules`]: every rule with BuildKit's name, description, URL and experimental flag.
//! - [`CheckConfig`]: the `# check=skip=A,B;error=true;experimental=C` directive (or the
//!   `BUILDKIT_DOCKERFILE_CHECK` build-arg), also as a `# check=…` comment above one
//!   instruction, which then applies to that instruction only.
//! - [`Linter`]: collects [`Finding`]s, dropping the rules the configuration disables.
//! - [`check_file`]: the rules BuildKit runs while parsing (stage names, casing, descriptions,
//!   MAINTAINER, empty continuation lines); [`check_instruction`]: the syntax-only rules BuildKit
//!   runs when it dispatches an instruction (the frontend calls it for the stages it lowers).
//!
//! The rules that need ARG values, stages or the context (UndefinedVar, UndefinedArgInFrom,
//! CopyIgnoredFile, …) live in the solver's frontend.

mod syntax;

pub use syntax::{check_file, check_instruction, is_secret_key};

use crate::location::Location;

/// One build check.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
    /// The documentation page (`None` for the rules BuildKit documents nowhere).
    pub url: Option<&'static str>,
    /// Off unless enabled with `experimental=`.
    pub experimental: bool,
}

/// BuildKit's rules (`frontend/dockerfile/linter/ruleset.go`).
pub mod rules {
    use super::Rule;

    const fn rule(name: &'static str, description: &'static str, url: Option<&'static str>) -> Rule {
        Rule { name, description, url, experimental: false }
    }

    pub static STAGE_NAME_CASING: Rule = rule(
        "StageNameCasing",
        "Stage names should be lowercase",
        Some("https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"),
    );
    pub static FROM_AS_CASING: Rule = rule(
        "FromAsCasing",
        "The 'as' keyword should match the case of the 'from' keyword",
        Some("https://docs.docker.com/go/dockerfile/rule/from-as-casing/"),
    );
    pub static NO_EMPTY_CONTINUATION: Rule = rule(
        "NoEmptyContinuation",
        "Empty continuation lines will become errors in a future release",
        Some("https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"),
    );
    pub static CONSISTENT_INSTRUCTION_CASING: Rule = rule(
        "ConsistentInstructionCasing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
        Some("https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/"),
    );
    pub static DUPLICATE_STAGE_NAME: Rule = rule(
        "DuplicateStageName",
        "Stage names should be unique",
        Some("https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/"),
    );
    pub static RESERVED_STAGE_NAME: Rule = rule(
        "ReservedStageName",
        "Reserved words should not be used as stage names",
        Some("https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/"),
    );
    pub static JSON_ARGS_RECOMMENDED: Rule = rule(
        "JSONArgsRecommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
        Some("https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"),
    );
    pub static MAINTAINER_DEPRECATED: Rule = rule(
        "MaintainerDeprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
        Some("https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/"),
    );
    pub static UNDEFINED_ARG_IN_FROM: Rule = rule(
        "UndefinedArgInFrom",
        "FROM command must use declared ARGs",
        Some("https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/"),
    );
    pub static WORKDIR_RELATIVE_PATH: Rule = rule(
        "WorkdirRelativePath",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
        Some("https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/"),
    );
    pub static UNDEFINED_VAR: Rule = rule(
        "UndefinedVar",
        "Variables should be defined before their use",
        Some("https://docs.docker.com/go/dockerfile/rule/undefined-var/"),
    );
    pub static MULTIPLE_INSTRUCTIONS_DISALLOWED: Rule = rule(
        "MultipleInstructionsDisallowed",
        "Multiple instructions of the same type should not be used in the same stage",
        Some("https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/"),
    );
    pub static LEGACY_KEY_VALUE_FORMAT: Rule = rule(
        "LegacyKeyValueFormat",
        "Legacy key/value format with whitespace separator should not be used",
        Some("https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/"),
    );
    pub static INVALID_BASE_IMAGE_PLATFORM: Rule =
        rule("InvalidBaseImagePlatform", "Base image platform does not match expected target platform", None);
    pub static REDUNDANT_TARGET_PLATFORM: Rule = rule(
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        Some("https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/"),
    );
    pub static SECRETS_USED_IN_ARG_OR_ENV: Rule = rule(
        "SecretsUsedInArgOrEnv",
        "Sensitive data should not be used in the ARG or ENV commands",
        Some("https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/"),
    );
    pub static INVALID_DEFAULT_ARG_IN_FROM: Rule = rule(
        "InvalidDefaultArgInFrom",
        "Default value for global ARG results in an empty or invalid base image name",
        Some("https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/"),
    );
    pub static FROM_PLATFORM_FLAG_CONST_DISALLOWED: Rule = rule(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform flag should not use a constant value",
        Some("https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/"),
    );
    pub static COPY_IGNORED_FILE: Rule = rule(
        "CopyIgnoredFile",
        "Attempting to Copy file that is excluded by .dockerignore",
        Some("https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/"),
    );
    pub static INVALID_DEFINITION_DESCRIPTION: Rule = Rule {
        experimental: true,
        ..rule(
            "InvalidDefinitionDescription",
            "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
            Some("https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/"),
        )
    };
    pub static EXPOSE_PROTO_CASING: Rule = rule(
        "ExposeProtoCasing",
        "Protocol in EXPOSE instruction should be lowercase",
        Some("https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/"),
    );
    pub static EXPOSE_INVALID_FORMAT: Rule = rule(
        "ExposeInvalidFormat",
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
        Some("https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/"),
    );

    /// Every rule, in BuildKit's order.
    pub static ALL: [&Rule; 22] = [
        &STAGE_NAME_CASING,
        &FROM_AS_CASING,
        &NO_EMPTY_CONTINUATION,
        &CONSISTENT_INSTRUCTION_CASING,
        &DUPLICATE_STAGE_NAME,
        &RESERVED_STAGE_NAME,
        &JSON_ARGS_RECOMMENDED,
        &MAINTAINER_DEPRECATED,
        &UNDEFINED_ARG_IN_FROM,
        &WORKDIR_RELATIVE_PATH,
        &UNDEFINED_VAR,
        &MULTIPLE_INSTRUCTIONS_DISALLOWED,
        &LEGACY_KEY_VALUE_FORMAT,
        &INVALID_BASE_IMAGE_PLATFORM,
        &REDUNDANT_TARGET_PLATFORM,
        &SECRETS_USED_IN_ARG_OR_ENV,
        &INVALID_DEFAULT_ARG_IN_FROM,
        &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
        &COPY_IGNORED_FILE,
        &INVALID_DEFINITION_DESCRIPTION,
        &EXPOSE_PROTO_CASING,
        &EXPOSE_INVALID_FORMAT,
    ];
}

/// A `check` option that cannot be understood (BuildKit's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    #[error("invalid check option {0:?}")]
    Invalid(String),
    #[error("failed to parse check option {0:?}: invalid syntax")]
    Bool(String),
}

/// Which rules run and whether a finding fails the build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: Vec<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: Vec<String>,
    /// `error=true`: a finding fails the build.
    pub error: bool,
}

impl CheckConfig {
    /// Parses `skip=…;error=…;experimental=…` (at most three parts, as BuildKit).
    pub fn parse(value: &str) -> Result<CheckConfig, CheckConfigError> {
        let mut config = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(config);
        }
        for part in value.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(CheckConfigError::Invalid(part.to_owned()));
            };
            let list = |value: &str| value.split(',').map(|r| r.trim().to_owned()).collect::<Vec<_>>();
            match key.trim() {
                "skip" if value.trim() == "all" => config.skip_all = true,
                "skip" => config.skip = list(value.trim()),
                "experimental" if value.trim() == "all" => config.experimental_all = true,
                "experimental" => config.experimental = list(value.trim()),
                "error" => {
                    config.error =
                        parse_go_bool(value.trim()).ok_or_else(|| CheckConfigError::Bool(part.to_owned()))?
                }
                other => return Err(CheckConfigError::Invalid(other.to_owned())),
            }
        }
        Ok(config)
    }

    /// Whether `rule` runs: experimental rules only when enabled, others unless skipped.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !(self.skip_all || self.skip.iter().any(|r| r == rule.name))
        }
    }

    /// This configuration with the skips and experimental rules of `other` added (`error` is
    /// kept: a comment cannot change it).
    pub fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut merged = self.clone();
        merged.skip_all |= other.skip_all;
        merged.experimental_all |= other.experimental_all;
        merged.skip.extend(other.skip.iter().cloned());
        merged.experimental.extend(other.experimental.iter().cloned());
        merged
    }

    /// This configuration with the first `check=…` comment of `comments` merged in (only the
    /// text up to the first space counts: `check=skip=all // why`); an invalid one is ignored.
    pub fn with_comments(&self, comments: &[String]) -> CheckConfig {
        for comment in comments {
            let Some((name, value)) = comment.split_once('=') else { continue };
            if !name.trim().eq_ignore_ascii_case("check") {
                continue;
            }
            let value = value.trim();
            let value = value.split(' ').next().unwrap_or_default();
            return match CheckConfig::parse(value) {
                Ok(other) => self.merged(&other),
                Err(_) => self.clone(),
            };
        }
        self.clone()
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// One rule violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    /// The detail, e.g. `Stage name 'Foo' should be lowercase`.
    pub message: String,
    /// The Dockerfile lines it concerns (1-based, inclusive); `None` when it has no place.
    pub lines: Option<(usize, usize)>,
}

impl Finding {
    /// BuildKit's one-line form: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        match self.lines {
            Some((line, _)) if line > 0 => format!("{}: {} (line {line})", self.rule.name, self.message),
            _ => format!("{}: {}", self.rule.name, self.message),
        }
    }
}

/// `error=true` and a rule was violated: BuildKit's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lint violation found for rules: {}", rules.join(", "))]
pub struct LintViolation {
    /// The violated rules, each once, in the order first found.
    pub rules: Vec<String>,
}

/// Collects findings under a configuration.
#[derive(Debug, Clone, Default)]
pub struct Linter {
    config: CheckConfig,
    findings: Vec<Finding>,
}

impl Linter {
    pub fn new(config: CheckConfig) -> Linter {
        Linter { config, findings: Vec::new() }
    }

    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// Records a finding of `rule` at `location` unless the configuration, with the `check=`
    /// comments above the instruction (`comments`), disables the rule.
    pub fn report(&mut self, rule: &'static Rule, comments: &[String], location: &Location, message: String) {
        self.report_lines(rule, comments, Some((location.start_line, location.end_line)), message);
    }

    /// [`Linter::report`] with explicit lines.
    pub fn report_lines(
        &mut self,
        rule: &'static Rule,
        comments: &[String],
        lines: Option<(usize, usize)>,
        message: String,
    ) {
        let enabled = if comments.is_empty() {
            self.config.enabled(rule)
        } else {
            self.config.with_comments(comments).enabled(rule)
        };
        if enabled {
            self.findings.push(Finding { rule, message, lines });
        }
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    /// Adds findings collected elsewhere (already filtered).
    pub fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.findings.extend(findings);
    }

    /// With `error=true`, the violation when any rule was violated.
    pub fn violation(&self) -> Option<LintViolation> {
        violation(&self.config, &self.findings)
    }
}

/// With `error=true` in `config`, the violation when `findings` is not empty.
pub fn violation(config: &CheckConfig, findings: &[Finding]) -> Option<LintViolation> {
    if !config.error || findings.is_empty() {
        return None;
    }
    let mut rules: Vec<String> = Vec::new();
    for finding in findings {
        if !rules.iter().any(|r| r == finding.rule.name) {
            rules.push(finding.rule.name.to_owned());
        }
    }
    Some(LintViolation { rules })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_like_buildkit() {
        let config = CheckConfig::parse("skip=A, B;error=true;experimental=all").unwrap();
        assert_eq!(config.skip, ["A", "B"]);
        assert!(config.error && config.experimental_all && !config.skip_all);
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert_eq!(CheckConfig::parse("  ").unwrap(), CheckConfig::default());
        assert_eq!(CheckConfig::parse("bogus").unwrap_err().to_string(), "invalid check option \"bogus\"");
        assert_eq!(CheckConfig::parse("foo=bar").unwrap_err().to_string(), "invalid check option \"foo\"");
        assert!(CheckConfig::parse("error=maybe").is_err());
    }

    #[test]
    fn experimental_rules_need_enabling_and_skip_all_spares_them() {
        let skip_all = CheckConfig::parse("skip=all").unwrap();
        assert!(!skip_all.enabled(&rules::STAGE_NAME_CASING));
        assert!(!skip_all.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        let both = CheckConfig::parse("skip=all;experimental=InvalidDefinitionDescription").unwrap();
        assert!(both.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        assert!(CheckConfig::default().enabled(&rules::FROM_AS_CASING));
    }

    #[test]
    fn comments_skip_for_one_instruction() {
        let config = CheckConfig { error: true, ..CheckConfig::default() };
        let local = config.with_comments(&["check=skip=all // only here".into()]);
        assert!(local.skip_all && local.error);
        assert_eq!(config.with_comments(&["a comment".into()]), config);
        assert_eq!(config.with_comments(&["check=nonsense".into()]), config);
    }

    #[test]
    fn violation_lists_each_rule_once() {
        let mut linter = Linter::new(CheckConfig::parse("error=true").unwrap());
        let at = Location { start_line: 2, end_line: 2, ..Location::default() };
        linter.report(&rules::FROM_AS_CASING, &[], &at, "x".into());
        linter.report(&rules::FROM_AS_CASING, &[], &at, "y".into());
        linter.report(&rules::STAGE_NAME_CASING, &["check=skip=StageNameCasing".into()], &at, "z".into());
        assert_eq!(linter.findings().len(), 2);
        assert_eq!(linter.findings()[0].short(), "FromAsCasing: x (line 2)");
        assert_eq!(linter.violation().unwrap().to_string(), "lint violation found for rules: FromAsCasing");
        assert!(Linter::default().violation().is_none());
    }
}

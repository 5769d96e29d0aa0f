//! The build checks that need ARG values, stage state or the context: UndefinedArgInFrom,
//! RedundantTargetPlatform, FromPlatformFlagConstDisallowed, InvalidDefaultArgInFrom,
//! UndefinedVar, WorkdirRelativePath, MultipleInstructionsDisallowed, JSONArgsRecommended and
//! CopyIgnoredFile. The syntax-only rules are [`parser::lint`]'s; this module also runs its
//! per-instruction ones for every instruction the frontend dispatches.

use std::collections::BTreeMap;

use parser::lint::{CheckConfig, rules};
use parser::shell::{Expansion, expand_word_with_matches};
use parser::{Command, CommandForm, Dockerfile, Instruction, Location, Stage};

use super::FrontendError;
use super::ImageResolver;
use super::dispatch::StageState;
use super::plan::{Lowerer, parse_platform};
use crate::contenthash::ignore::PatternMatcher;
use crate::graph::Platform;

/// The build-arg that overrides the `check` directive.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// The check configuration of a build: the `BUILDKIT_DOCKERFILE_CHECK` build-arg when given,
/// else the `# check=` directive.
pub fn check_config(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Result<CheckConfig, FrontendError> {
    let value = match build_args.get(CHECK_BUILD_ARG) {
        Some(value) => value.as_str(),
        None => dockerfile.directives.iter().find(|d| d.name == "check").map_or("", |d| d.value.as_str()),
    };
    CheckConfig::parse(value).map_err(FrontendError::CheckConfig)
}

/// Where CMD, ENTRYPOINT and HEALTHCHECK were last set in a stage (MultipleInstructionsDisallowed).
#[derive(Debug, Clone, Default)]
pub(crate) struct SetOnce {
    cmd: Option<Location>,
    entrypoint: Option<Location>,
    healthcheck: Option<Location>,
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    /// UndefinedArgInFrom, RedundantTargetPlatform and FromPlatformFlagConstDisallowed for a
    /// stage's FROM, given the expansions of its base name and `--platform`.
    pub(super) fn lint_from(&mut self, stage: &Stage, base: &Expansion, platform: Option<&Expansion>) {
        let declared = self.declared_global.clone();
        let known =
            |name: &str| declared.iter().any(|d| d == name) || self.global.iter().any(|(k, _)| k == name);
        let candidates: Vec<String> =
            declared.iter().cloned().chain(self.global.iter().map(|(k, _)| k.clone())).collect();
        let mut undefined = Vec::new();
        for expansion in std::iter::once(base).chain(platform) {
            for name in expansion.unmatched.iter().filter(|n| !known(n)) {
                let suggestion = parser::suggest(name, candidates.iter().map(String::as_str));
                let mut message = format!("FROM argument '{name}' is not declared");
                if let Some(suggestion) = suggestion {
                    message.push_str(&format!(" (did you mean {suggestion}?)"));
                }
                undefined.push(message);
            }
        }
        for message in undefined {
            self.linter.report(&rules::UNDEFINED_ARG_IN_FROM, &stage.comments, &stage.location, message);
        }
        let (Some(expansion), Some(raw)) = (platform, stage.platform.as_deref()) else { return };
        if expansion.matched.len() == 1 && expansion.unmatched.is_empty() {
            let target = self.global.iter().rev().find(|(k, _)| k == "TARGETPLATFORM").map(|(_, v)| v);
            if expansion.matched.contains("TARGETPLATFORM") && target == Some(&expansion.value) {
                let message = format!(
                    "Setting platform to predefined {raw} in FROM is redundant as this is the default behavior"
                );
                self.linter.report(
                    &rules::REDUNDANT_TARGET_PLATFORM,
                    &stage.comments,
                    &stage.location,
                    message,
                );
            }
        }
        if expansion.matched.is_empty() && expansion.unmatched.is_empty() {
            let Some(parsed) = parse_platform(&expansion.value) else { return };
            let name = stage.name.as_deref().unwrap_or_default();
            if name.contains(&parsed.os) || name.contains(&parsed.architecture) {
                return;
            }
            let message = format!("FROM --platform flag should not use constant value {:?}", expansion.value);
            self.linter.report(
                &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                &stage.comments,
                &stage.location,
                message,
            );
        }
    }

    /// InvalidDefaultArgInFrom: with the global ARGs' defaults only (no build-args), every
    /// stage's base must still be a valid image reference.
    pub(super) fn lint_default_args(&mut self) {
        let escape = self.dockerfile.escape;
        let mut env: Vec<(String, String)> = self.predefined();
        for instruction in &self.dockerfile.global_args {
            let Command::Arg { args } = &instruction.command else { continue };
            for arg in args {
                let Some(default) = &arg.default else { continue };
                let Ok(value) = expand_word_with_matches(default, &env, escape) else { return };
                env.retain(|(k, _)| k != &arg.name);
                env.push((arg.name.clone(), value.value));
            }
        }
        let mut invalid = Vec::new();
        for stage in &self.dockerfile.stages {
            let Ok(expansion) = expand_word_with_matches(&stage.base, &env, escape) else { return };
            if registry::Reference::parse_named(&expansion.value).is_err() && expansion.value != "scratch" {
                invalid.push((
                    stage,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        stage.base
                    ),
                ));
            }
        }
        for (stage, message) in invalid {
            self.linter.report(
                &rules::INVALID_DEFAULT_ARG_IN_FROM,
                &stage.comments,
                &stage.location,
                message,
            );
        }
    }

    /// InvalidBaseImagePlatform: the resolved base image is for another OS or architecture than
    /// the stage asked for.
    pub(super) fn lint_base_platform(
        &mut self,
        stage: &Stage,
        name: &str,
        expected: &Platform,
        image: &oci_spec::image::ImageConfiguration,
    ) {
        let (os, architecture) = (image.os().to_string(), image.architecture().to_string());
        if os == expected.os && architecture == expected.architecture {
            return;
        }
        let format = |os: &str, architecture: &str, variant: Option<&str>| match variant {
            Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
            _ => format!("{os}/{architecture}"),
        };
        let actual = format(&os, &architecture, image.variant().as_deref());
        let expected = format(&expected.os, &expected.architecture, expected.variant.as_deref());
        let message = format!(
            "Base image {name} was pulled with platform {actual:?}, expected {expected:?} for current build"
        );
        self.linter.report(&rules::INVALID_BASE_IMAGE_PLATFORM, &stage.comments, &stage.location, message);
    }

    /// The per-instruction rules, before `instruction` is dispatched in `state`.
    pub(super) fn lint_instruction(&mut self, state: &mut StageState, instruction: &Instruction) {
        parser::lint::check_instruction(instruction, &mut self.linter);
        self.lint_undefined_vars(state, instruction);
        let comments = &instruction.comments;
        let keyword = instruction.keyword.as_str();
        let previous = match &instruction.command {
            Command::Cmd(_) => Some(&mut state.set_once.cmd),
            Command::Entrypoint(_) => Some(&mut state.set_once.entrypoint),
            Command::Healthcheck(_) => Some(&mut state.set_once.healthcheck),
            _ => None,
        };
        if let Some(previous) = previous {
            // the earlier one is reported: it is the one that has no effect
            if let Some(earlier) = previous.replace(instruction.location) {
                let message = format!(
                    "Multiple {keyword} instructions should not be used in the same stage because only the last one will be used"
                );
                self.linter.report(&rules::MULTIPLE_INSTRUCTIONS_DISALLOWED, comments, &earlier, message);
            }
        }
        if let Command::Cmd(line) | Command::Entrypoint(line) = &instruction.command
            && matches!(line.form, CommandForm::Shell { .. })
            && state.extras.shell.is_empty()
        {
            let message = format!(
                "JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals"
            );
            self.linter.report(&rules::JSON_ARGS_RECOMMENDED, comments, &instruction.location, message);
        }
    }

    /// WorkdirRelativePath: the first WORKDIR of a stage chain is relative.
    pub(super) fn lint_workdir(&mut self, state: &mut StageState, instruction: &Instruction, expanded: &str) {
        if !state.workdir_set && !expanded.starts_with('/') {
            let message = format!(
                "Relative workdir {expanded:?} can have unexpected results if the base image changes"
            );
            self.linter.report(
                &rules::WORKDIR_RELATIVE_PATH,
                &instruction.comments,
                &instruction.location,
                message,
            );
        }
        state.workdir_set = true;
    }

    /// The words BuildKit expands for an instruction (UndefinedVar looks at these).
    fn expanded_words(instruction: &Instruction) -> Vec<&str> {
        match &instruction.command {
            Command::Copy(copy) => {
                let paths = &copy.paths;
                paths
                    .sources
                    .iter()
                    .chain([&paths.destination])
                    .chain(&copy.chown)
                    .map(String::as_str)
                    .collect()
            }
            Command::Add(add) => {
                let paths = &add.paths;
                paths
                    .sources
                    .iter()
                    .chain([&paths.destination])
                    .chain(&add.chown)
                    .map(String::as_str)
                    .collect()
            }
            Command::Env { pairs } | Command::Label { pairs } => {
                pairs.iter().flat_map(|p| [p.key.as_str(), p.value.as_str()]).collect()
            }
            Command::Arg { args } => args.iter().filter_map(|a| a.default.as_deref()).collect(),
            Command::Expose { ports } => ports.iter().map(String::as_str).collect(),
            Command::Volume { paths } => paths.iter().map(String::as_str).collect(),
            Command::User { user } => vec![user.as_str()],
            Command::Workdir { path } => vec![path.as_str()],
            Command::Stopsignal { signal } => vec![signal.as_str()],
            _ => Vec::new(),
        }
    }

    /// UndefinedVar: variables an instruction expands that neither the stage's environment
    /// nor its declared ARGs define.
    fn lint_undefined_vars(&mut self, state: &StageState, instruction: &Instruction) {
        let mut undefined: Vec<String> = Vec::new();
        for word in Self::expanded_words(instruction) {
            let Ok(expansion) = expand_word_with_matches(word, &state.env, self.dockerfile.escape) else {
                continue;
            };
            for name in expansion.unmatched {
                let declared = state.build_args.iter().any(|(k, _)| *k == name);
                // an ARG's own name in its default is declared by that ARG
                let own = matches!(&instruction.command, Command::Arg { args } if args.iter().any(|a| a.name == name));
                if !declared && !own && !undefined.contains(&name) {
                    undefined.push(name);
                }
            }
        }
        for name in undefined {
            let suggestion = parser::suggest(&name, state.env.iter().map(|(k, _)| k.as_str()));
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(suggestion) = suggestion {
                message.push_str(&format!(" (did you mean ${suggestion}?)"));
            }
            self.linter.report(&rules::UNDEFINED_VAR, &instruction.comments, &instruction.location, message);
        }
    }

    /// CopyIgnoredFile: a context source of COPY/ADD that `.dockerignore` excludes. Not
    /// checked when the patterns hold exclusions (`!`), as BuildKit.
    pub(super) fn lint_copy_source(&mut self, instruction: &Instruction, add: bool, source: &str) {
        let Ok(matcher) = PatternMatcher::new(&self.options.dockerignore) else { return };
        if matcher.is_empty() || matcher.has_exclusions() {
            return;
        }
        let cleaned = super::format::clean(&format!("/{source}"));
        let relative = cleaned.trim_start_matches('/');
        let shown = if relative.is_empty() { "." } else { relative };
        let ignored = if relative.is_empty() {
            // the context root is only "excluded" by a pattern that excludes everything
            matcher.patterns().iter().any(|p| matches!(p.as_str(), "*" | "**" | "**/*"))
        } else {
            matcher.matches(relative)
        };
        if ignored {
            let verb = if add { "Add" } else { "Copy" };
            let message = format!("Attempting to {verb} file {shown:?} that is excluded by .dockerignore");
            self.linter.report(
                &rules::COPY_IGNORED_FILE,
                &instruction.comments,
                &instruction.location,
                message,
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::frontend::{FrontendOptions, ResolveError, ResolvedImage, lower_with_findings};

    /// Resolves every image to a busybox-like config (PATH set, no SHELL).
    struct Busybox;

    impl ImageResolver for Busybox {
        async fn resolve(
            &self,
            reference: &str,
            _platform: &Platform,
        ) -> Result<ResolvedImage, ResolveError> {
            let config = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": []}
            });
            let pinned = format!("docker.io/library/{reference}@sha256:{}", "0".repeat(64));
            Ok(ResolvedImage::from_config_json(pinned, &serde_json::to_vec(&config).unwrap()).unwrap())
        }
    }

    /// The one-line findings of lowering `text` (every stage, as `--check`).
    async fn found_with(text: &str, options: FrontendOptions) -> Vec<String> {
        let dockerfile = parser::parse(text).unwrap();
        let options = FrontendOptions {
            check: check_config(&dockerfile, &options.build_args).unwrap(),
            all_stages: true,
            ..options
        };
        let (_, findings) = lower_with_findings(&dockerfile, &options, &Busybox).await;
        findings.iter().map(|f| f.short()).collect()
    }

    async fn found(text: &str) -> Vec<String> {
        found_with(text, FrontendOptions::default()).await
    }

    #[track_caller]
    fn assert_only(found: &[String], rule: &str, expected: &[&str]) {
        let of_rule: Vec<&String> = found.iter().filter(|f| f.starts_with(&format!("{rule}:"))).collect();
        assert_eq!(of_rule, expected.iter().collect::<Vec<_>>(), "{found:?}");
    }

    #[tokio::test]
    async fn undefined_arg_in_from() {
        let bad = found("ARG tag=latest\nFROM busybox:${tag}${version}\n").await;
        assert_only(
            &bad,
            "UndefinedArgInFrom",
            &["UndefinedArgInFrom: FROM argument 'version' is not declared (line 2)"],
        );
        let hint = found("ARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\n").await;
        assert_only(
            &hint,
            "UndefinedArgInFrom",
            &["UndefinedArgInFrom: FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?) (line 2)"],
        );
        let good = found("ARG DEBUG\nFROM busybox${DEBUG}\nFROM --platform=$BUILDPLATFORM scratch\n").await;
        assert_only(&good, "UndefinedArgInFrom", &[]);
    }

    #[tokio::test]
    async fn redundant_target_platform() {
        let bad = found("FROM --platform=${TARGETPLATFORM} scratch\n").await;
        assert_only(
            &bad,
            "RedundantTargetPlatform",
            &[
                "RedundantTargetPlatform: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior (line 1)",
            ],
        );
        assert_only(&found("FROM --platform=$BUILDPLATFORM scratch\n").await, "RedundantTargetPlatform", &[]);
    }

    #[tokio::test]
    async fn from_platform_flag_const_disallowed() {
        let bad = found("FROM --platform=linux/amd64 scratch\n").await;
        assert_only(
            &bad,
            "FromPlatformFlagConstDisallowed",
            &[
                "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 1)",
            ],
        );
        let named = found("FROM --platform=linux/amd64 scratch AS build_amd64\n").await;
        assert_only(&named, "FromPlatformFlagConstDisallowed", &[]);
    }

    #[tokio::test]
    async fn invalid_default_arg_in_from() {
        let options = FrontendOptions {
            build_args: [("VERSION".to_owned(), "latest".to_owned())].into(),
            ..FrontendOptions::default()
        };
        let bad = found_with("ARG VERSION\nFROM busybox:$VERSION\n", options.clone()).await;
        assert_only(
            &bad,
            "InvalidDefaultArgInFrom",
            &[
                "InvalidDefaultArgInFrom: Default value for ARG busybox:$VERSION results in empty or invalid base image name (line 2)",
            ],
        );
        let good = found_with("ARG VERSION=latest\nFROM busybox:$VERSION\n", options).await;
        assert_only(&good, "InvalidDefaultArgInFrom", &[]);
    }

    #[tokio::test]
    async fn undefined_var() {
        let bad = found("FROM busybox\nARG DIR_ASSETS=a\nCOPY $DIR_ASSET $foo .\n").await;
        assert_only(
            &bad,
            "UndefinedVar",
            &[
                "UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?) (line 3)",
                "UndefinedVar: Usage of undefined variable '$foo' (line 3)",
            ],
        );
        let good =
            found("FROM busybox\nARG foo\nENV PATH=$PATH:/x\nCOPY $foo .\nRUN echo $undefined\n").await;
        assert_only(&good, "UndefinedVar", &[]);
    }

    #[tokio::test]
    async fn workdir_relative_path() {
        let bad = found("FROM scratch\nWORKDIR app/\n").await;
        assert_only(
            &bad,
            "WorkdirRelativePath",
            &[
                "WorkdirRelativePath: Relative workdir \"app/\" can have unexpected results if the base image changes (line 2)",
            ],
        );
        let good = found("FROM scratch AS a\nWORKDIR /app\nFROM a\nWORKDIR sub/\n").await;
        assert_only(&good, "WorkdirRelativePath", &[]);
    }

    #[tokio::test]
    async fn multiple_instructions_disallowed() {
        let bad = found("FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n").await;
        assert_only(
            &bad,
            "MultipleInstructionsDisallowed",
            &[
                "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)",
            ],
        );
        let good = found("FROM scratch AS a\nCMD [\"a\"]\nFROM a\nCMD [\"b\"]\n").await;
        assert_only(&good, "MultipleInstructionsDisallowed", &[]);
    }

    #[tokio::test]
    async fn json_args_recommended() {
        let bad = found("FROM busybox\nENTRYPOINT run me\n").await;
        assert_only(
            &bad,
            "JSONArgsRecommended",
            &[
                "JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals (line 2)",
            ],
        );
        let good =
            found("FROM scratch AS a\nSHELL [\"/bin/x\"]\nFROM a\nCMD run me\nFROM scratch\nCMD [\"x\"]\n")
                .await;
        assert_only(&good, "JSONArgsRecommended", &[]);
    }

    #[tokio::test]
    async fn copy_ignored_file() {
        let ignoring = |patterns: &[&str]| FrontendOptions {
            dockerignore: patterns.iter().map(|p| (*p).to_owned()).collect(),
            ..FrontendOptions::default()
        };
        let text = "FROM scratch\nCOPY Dockerfile .\nADD ./Dockerfile /x\n";
        let bad = found_with(text, ignoring(&["Dockerfile"])).await;
        assert_only(
            &bad,
            "CopyIgnoredFile",
            &[
                "CopyIgnoredFile: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore (line 2)",
                "CopyIgnoredFile: Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore (line 3)",
            ],
        );
        assert_only(&found_with(text, ignoring(&["**", "!Dockerfile"])).await, "CopyIgnoredFile", &[]);
        assert_only(&found_with("FROM scratch\nCOPY . .\n", ignoring(&[".*"])).await, "CopyIgnoredFile", &[]);
        let root = found_with("FROM scratch\nCOPY . .\n", ignoring(&["*"])).await;
        assert_only(
            &root,
            "CopyIgnoredFile",
            &["CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore (line 2)"],
        );
    }

    #[tokio::test]
    async fn invalid_base_image_platform() {
        let arm = Platform { os: "linux".into(), architecture: "arm64".into(), variant: None };
        let options = FrontendOptions { target_platform: arm, ..FrontendOptions::default() };
        let bad = found_with("FROM busybox\n", options).await;
        assert_only(
            &bad,
            "InvalidBaseImagePlatform",
            &[
                "InvalidBaseImagePlatform: Base image busybox was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build (line 1)",
            ],
        );
        assert_only(&found("FROM busybox\n").await, "InvalidBaseImagePlatform", &[]);
    }

    #[tokio::test]
    async fn build_arg_overrides_the_directive_and_plain_builds_skip_unneeded_stages() {
        let text = "# check=skip=all\nFROM scratch AS unused\nWORKDIR rel\nFROM scratch\n";
        let dockerfile = parser::parse(text).unwrap();
        assert!(check_config(&dockerfile, &BTreeMap::new()).unwrap().skip_all);
        let args: BTreeMap<String, String> = [(CHECK_BUILD_ARG.to_owned(), "error=true".to_owned())].into();
        let config = check_config(&dockerfile, &args).unwrap();
        assert!(!config.skip_all && config.error);
        let bad: BTreeMap<String, String> = [(CHECK_BUILD_ARG.to_owned(), "nonsense".to_owned())].into();
        assert!(matches!(check_config(&dockerfile, &bad), Err(FrontendError::CheckConfig(_))));
        // the target does not need `unused`: a plain build does not dispatch it
        let options = FrontendOptions { check: config, ..FrontendOptions::default() };
        let (plan, findings) = lower_with_findings(&dockerfile, &options, &Busybox).await;
        assert!(plan.is_ok() && findings.is_empty(), "{findings:?}");
        let all = FrontendOptions { all_stages: true, ..options };
        let (_, findings) = lower_with_findings(&dockerfile, &all, &Busybox).await;
        assert_eq!(findings.len(), 1, "{findings:?}");
    }
}

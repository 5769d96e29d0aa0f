//! Per-stage state, FROM, ONBUILD triggers and the config-only instructions (with history).

use oci_spec::image::{Config, History, ImageConfiguration, RootFs};
use parser::shell::{Env, Lexer, expand_word, expand_words};
use parser::{Command, Healthcheck, Instruction, Location};

use super::format::{go_duration, go_list, go_quoted_list};
use super::plan::{Base, Lowerer};
use super::{
    ANNOTATION_COLUMN, ANNOTATION_LINE_END, ANNOTATION_LINE_START, ANNOTATION_LINES, ANNOTATION_STAGE,
    DockerExtras, FrontendError, HealthConfig, ImageResolver, NamedContext, SourceLocation,
};
use crate::graph::{ImageSource, Input, LocalSource, Op, Platform, SourceOp, VertexMetadata};

/// The comment BuildKit puts on every history entry it writes.
pub(super) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// PATH of an image that sets none (`system.DefaultPathEnv`; the executor owns it).
pub(super) use executor::process::DEFAULT_PATH;

/// A stage while (and after) it is lowered.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub display: String,
    pub fs: Input,
    pub image: ImageConfiguration,
    pub extras: DockerExtras,
    /// The build environment: base Env, ARG values and ENV, in order (later wins).
    pub env: Vec<(String, String)>,
    /// ARGs declared in this stage, with their values (for RUN's history line).
    pub build_args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (a later ENTRYPOINT keeps it).
    pub cmd_set: bool,
    pub step: usize,
    pub total: usize,
    pub ignore_cache: bool,
    pub platform: Platform,
    /// A WORKDIR of this stage or a parent stage ran (WorkdirRelativePath).
    pub workdir_set: bool,
    /// Where CMD/ENTRYPOINT/HEALTHCHECK were set in this stage (MultipleInstructionsDisallowed).
    pub set_once: super::lint::SetOnce,
}

impl StageState {
    pub(super) fn runtime(&self) -> Config {
        self.image.config().clone().unwrap_or_default()
    }

    pub(super) fn update(&mut self, change: impl FnOnce(&mut Config)) {
        let mut config = self.runtime();
        change(&mut config);
        self.image.set_config(Some(config));
    }

    pub(super) fn workdir(&self) -> String {
        self.runtime().working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into())
    }

    pub(super) fn user(&self) -> String {
        self.runtime().user().clone().unwrap_or_default()
    }

    pub(super) fn shell(&self) -> Vec<String> {
        if self.extras.shell.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            self.extras.shell.clone()
        }
    }

    /// Sets `key` in the build environment (replacing in place, like llb's `AddEnv`).
    pub(super) fn set_env(&mut self, key: &str, value: String) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.env.push((key.to_owned(), value)),
        }
    }

    pub(super) fn history(&mut self, created_by: String, empty_layer: bool, epoch: Option<i64>) {
        let mut entry = History::default();
        entry.set_created_by(Some(created_by));
        entry.set_comment(Some(HISTORY_COMMENT.to_owned()));
        if empty_layer {
            entry.set_empty_layer(Some(true));
        }
        entry.set_created(epoch.map(crate::export::rfc3339_from_epoch));
        let mut history = self.image.history().clone().unwrap_or_default();
        history.push(entry);
        self.image.set_history(Some(history));
    }
}

fn env_pairs(config: &ImageConfiguration) -> Vec<(String, String)> {
    let env = config.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default();
    env.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

/// The config of `FROM scratch` (BuildKit's `emptyImage`).
fn empty_image(platform: &Platform) -> ImageConfiguration {
    let mut config = Config::default();
    config.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    config.set_working_dir(Some("/".into()));
    let mut image = ImageConfiguration::default();
    image.set_os(platform.os.as_str().into());
    image.set_architecture(platform.architecture.as_str().into());
    image.set_variant(platform.variant.clone());
    image.set_config(Some(config));
    let mut rootfs = RootFs::default();
    rootfs.set_typ("layers".into());
    rootfs.set_diff_ids(Vec::new());
    image.set_rootfs(rootfs);
    image.set_history(Some(Vec::new()));
    image
}

/// Does this instruction produce a vertex (counts as a numbered step)?
fn is_step(command: &Command) -> bool {
    matches!(command, Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir { .. })
}

pub(super) fn instruction_location(instruction: &Instruction) -> SourceLocation {
    let mut location = SourceLocation::from(&instruction.location);
    location.instruction = instruction.original.clone();
    location
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    pub(super) fn expand_at(
        &self,
        word: &str,
        env: &dyn Env,
        instruction: &Instruction,
    ) -> Result<String, FrontendError> {
        expand_word(word, env, self.dockerfile.escape).map_err(|source| FrontendError::Expand {
            location: instruction_location(instruction),
            source: Box::new(source),
        })
    }

    pub(super) fn expand_words_at(
        &self,
        word: &str,
        env: &dyn Env,
        instruction: &Instruction,
    ) -> Result<Vec<String>, FrontendError> {
        expand_words(word, env, self.dockerfile.escape).map_err(|source| FrontendError::Expand {
            location: instruction_location(instruction),
            source: Box::new(source),
        })
    }

    pub(super) fn error_at(&self, instruction: &Instruction, message: impl Into<String>) -> FrontendError {
        FrontendError::Instruction { location: instruction_location(instruction), message: message.into() }
    }

    /// Vertex metadata of the next numbered step: `[stage i/n] TEXT`, location annotations.
    pub(super) fn step_metadata(
        &self,
        state: &mut StageState,
        location: &Location,
        text: &str,
    ) -> VertexMetadata {
        state.step += 1;
        metadata_for(&state.display, state.step, state.total, state.ignore_cache, location, text)
    }

    /// The progress text of an instruction: its line with variables expanded (unset ones and
    /// quotes kept) and the keyword upper-cased.
    pub(super) fn progress_text(&self, state: &StageState, original: &str) -> String {
        self.progress_text_with(&state.env, original)
    }

    /// [`Self::progress_text`] with the given variables (e.g. secret variables masked).
    pub(super) fn progress_text_with(&self, env: &impl parser::shell::Env, original: &str) -> String {
        let mut lexer = Lexer::new(self.dockerfile.escape);
        lexer.raw_quotes = true;
        lexer.skip_unset_env = true;
        let text = lexer.process(original, env).map(|e| e.value).unwrap_or_else(|_| original.to_owned());
        match text.split_once(' ') {
            Some((keyword, rest)) => format!("{} {rest}", keyword.to_ascii_uppercase()),
            None => text.to_ascii_uppercase(),
        }
    }

    /// Lowers stage `index` (its dependencies are lowered already).
    pub(super) async fn lower_stage(&mut self, index: usize) -> Result<StageState, FrontendError> {
        let planned = self.stages[index].clone();
        let stage = &self.dockerfile.stages[index];
        let ignore_cache = self.options.no_cache
            || stage.name.as_ref().is_some_and(|n| self.options.no_cache_filter.iter().any(|f| f == n));
        let steps = stage.instructions.iter().filter(|i| is_step(&i.command)).count();
        let location = self.stage_location(stage);
        // an image base: `FROM image`, or a named context that is an image
        let image_base = match &planned.base {
            Base::Image(name) => Some(name.clone()),
            Base::Context(_, NamedContext::Image { reference }) if reference != "scratch" => {
                Some(reference.clone())
            }
            _ => None,
        };
        let mut state = match &planned.base {
            Base::Scratch | Base::Context(..) if image_base.is_none() => {
                let fs = match &planned.base {
                    Base::Context(name, context) => self.named_context_input(name, context)?,
                    _ => self.graph.add_output(
                        Op::Source(SourceOp::Scratch),
                        Vec::new(),
                        VertexMetadata::default(),
                    )?,
                };
                let image = empty_image(&planned.platform);
                let env = env_pairs(&image);
                StageState {
                    display: planned.display.clone(),
                    fs,
                    image,
                    extras: DockerExtras::default(),
                    env,
                    build_args: Vec::new(),
                    cmd_set: false,
                    step: 0,
                    total: steps,
                    ignore_cache,
                    platform: planned.platform.clone(),
                    workdir_set: false,
                    set_once: Default::default(),
                }
            }
            Base::Stage(other) => {
                let Some(parent) = self.results[*other].clone() else {
                    return Err(FrontendError::Instruction {
                        location,
                        message: format!("stage {other} is not lowered before its use"),
                    });
                };
                StageState {
                    display: planned.display.clone(),
                    build_args: Vec::new(),
                    cmd_set: false,
                    step: 0,
                    total: steps,
                    ignore_cache,
                    set_once: Default::default(),
                    ..parent
                }
            }
            Base::Scratch | Base::Image(_) | Base::Context(..) => {
                let name = image_base.clone().unwrap_or_default();
                let name = name.as_str();
                let resolved = self.resolutions.resolve(name, &planned.platform, &location).await?;
                self.lint_base_platform(stage, name, &planned.platform, &resolved.config);
                let triggers = parse_triggers(&resolved.extras.on_build, &location)?;
                let total = steps + 1 + triggers.iter().filter(|i| is_step(&i.command)).count();
                let text = format!("FROM {}", resolved.reference);
                let metadata = metadata_for(&planned.display, 1, total, ignore_cache, &stage.location, &text);
                let source = ImageSource {
                    reference: resolved.reference.clone(),
                    platform: Some(planned.platform.clone()),
                };
                let fs = self.graph.add_output(Op::Source(SourceOp::Image(source)), Vec::new(), metadata)?;
                StageState {
                    display: planned.display.clone(),
                    fs,
                    env: env_pairs(&resolved.config),
                    image: resolved.config,
                    extras: resolved.extras,
                    build_args: Vec::new(),
                    cmd_set: false,
                    step: 1,
                    total,
                    ignore_cache,
                    platform: planned.platform.clone(),
                    workdir_set: false,
                    set_once: Default::default(),
                }
            }
        };
        if !state.env.iter().any(|(k, _)| k == "PATH") {
            // BuildKit gives every stage a PATH, in the config too
            let path = format!("PATH={DEFAULT_PATH}");
            let mut env = state.runtime().env().clone().unwrap_or_default();
            env.insert(0, path);
            state.update(|c| {
                c.set_env(Some(env));
            });
            state.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
        }
        if planned.replaced {
            return Ok(state);
        }
        let counted = image_base.is_some();
        self.onbuild_triggers(&mut state, index, &location, counted).await?;
        for instruction in &stage.instructions {
            self.lint_instruction(&mut state, instruction);
            self.instruction(&mut state, index, instruction, false).await?;
        }
        Ok(state)
    }

    /// Runs the base's ONBUILD triggers right after FROM, then clears them. The image branch
    /// counted them in `total` already; stage and scratch bases add them here.
    async fn onbuild_triggers(
        &mut self,
        state: &mut StageState,
        index: usize,
        location: &SourceLocation,
        counted: bool,
    ) -> Result<(), FrontendError> {
        let triggers = std::mem::take(&mut state.extras.on_build);
        if triggers.is_empty() {
            return Ok(());
        }
        let parsed = parse_triggers(&triggers, location)?;
        if !counted {
            state.total += parsed.iter().filter(|i| is_step(&i.command)).count();
        }
        for mut instruction in parsed {
            // triggers report at the FROM line of the stage that ran them
            instruction.location = self.dockerfile.stages[index].location;
            self.instruction(state, index, &instruction, true).await?;
        }
        Ok(())
    }

    async fn instruction(
        &mut self,
        state: &mut StageState,
        index: usize,
        instruction: &Instruction,
        onbuild: bool,
    ) -> Result<(), FrontendError> {
        let epoch = self.epoch;
        match &instruction.command {
            Command::Run(run) => return self.run(state, index, instruction, run, onbuild).await,
            Command::Copy(copy) => return self.copy(state, index, instruction, copy.into(), onbuild).await,
            Command::Add(add) => return self.copy(state, index, instruction, add.into(), onbuild).await,
            Command::Workdir { path } => return self.workdir(state, instruction, path, onbuild),
            Command::Env { pairs } => {
                let mut expanded = Vec::new();
                for pair in pairs {
                    expanded.push((pair.key.clone(), self.expand_at(&pair.value, &state.env, instruction)?));
                }
                let mut message = String::from("ENV");
                let mut env: Vec<String> = state.runtime().env().clone().unwrap_or_default();
                for (key, value) in expanded {
                    message.push_str(&format!(" {key}={value}"));
                    let entry = format!("{key}={value}");
                    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
                        Some(existing) => *existing = entry,
                        None => env.push(entry),
                    }
                    state.set_env(&key, value);
                }
                state.update(|c| {
                    c.set_env(Some(env));
                });
                state.history(message, true, epoch);
            }
            Command::Label { pairs } => {
                let mut message = String::from("LABEL");
                let mut labels = state.runtime().labels().clone().unwrap_or_default();
                for pair in pairs {
                    let key = self.expand_at(&pair.key, &state.env, instruction)?;
                    let value = self.expand_at(&pair.value, &state.env, instruction)?;
                    message.push_str(&format!(" {key}={value}"));
                    labels.insert(key, value);
                }
                state.update(|c| {
                    c.set_labels(Some(labels));
                });
                state.history(message, true, epoch);
            }
            Command::Arg { args } => {
                let mut parts = Vec::new();
                for arg in args {
                    let provided = self.options.build_args.get(&arg.name).cloned();
                    let value = match (provided, &arg.default) {
                        (Some(value), _) => Some(value),
                        (None, Some(default)) => Some(self.expand_at(default, &state.env, instruction)?),
                        (None, None) => {
                            self.global.iter().rev().find(|(k, _)| k == &arg.name).map(|(_, v)| v.clone())
                        }
                    };
                    self.consumed.insert(arg.name.clone());
                    if let Some(value) = &value {
                        state.set_env(&arg.name, value.clone());
                        parts.push(format!("{}={value}", arg.name));
                    } else {
                        parts.push(arg.name.clone());
                    }
                    state.build_args.push((arg.name.clone(), value));
                }
                state.history(format!("ARG {}", parts.join(" ")), true, epoch);
            }
            Command::Expose { ports } => {
                // BuildKit sorts the words as written, then expands them; history lists each
                // port with its protocol: `EXPOSE [1234/udp 2375/tcp]`
                let mut raw = ports.clone();
                raw.sort();
                let mut words = Vec::new();
                for port in &raw {
                    words.extend(self.expand_words_at(port, &state.env, instruction)?);
                }
                let mut exposed = state.runtime().exposed_ports().clone().unwrap_or_default();
                let mut specs = Vec::new();
                for word in &words {
                    for port in parse_port_spec(word).map_err(|m| self.error_at(instruction, m))? {
                        if !exposed.contains(&port) {
                            exposed.push(port.clone());
                        }
                        specs.push(port);
                    }
                }
                state.update(|c| {
                    c.set_exposed_ports(Some(exposed));
                });
                state.history(format!("EXPOSE [{}]", specs.join(" ")), true, epoch);
            }
            Command::Volume { paths } => {
                let mut expanded = Vec::new();
                for path in paths {
                    let path = self.expand_at(path, &state.env, instruction)?;
                    if path.is_empty() {
                        return Err(self.error_at(instruction, "VOLUME specified can not be an empty string"));
                    }
                    expanded.push(path);
                }
                let mut volumes = state.runtime().volumes().clone().unwrap_or_default();
                for path in &expanded {
                    if !volumes.contains(path) {
                        volumes.push(path.clone());
                    }
                }
                state.update(|c| {
                    c.set_volumes(Some(volumes));
                });
                state.history(format!("VOLUME {}", go_list(&expanded)), true, epoch);
            }
            Command::User { user } => {
                let user = self.expand_at(user, &state.env, instruction)?;
                state.update(|c| {
                    c.set_user(Some(user.clone()));
                });
                state.history(format!("USER {user}"), true, epoch);
            }
            Command::Cmd(command) => {
                let args = self.command_args(state, command);
                state.update(|c| {
                    c.set_cmd(if args.is_empty() { None } else { Some(args.clone()) });
                });
                state.cmd_set = true;
                state.extras.args_escaped = true;
                state.history(format!("CMD {}", go_quoted_list(&args)), true, epoch);
            }
            Command::Entrypoint(command) => {
                let args = self.command_args(state, command);
                let keep_cmd = state.cmd_set;
                state.update(|c| {
                    c.set_entrypoint(if args.is_empty() { None } else { Some(args.clone()) });
                    if !keep_cmd {
                        c.set_cmd(None);
                    }
                });
                state.history(format!("ENTRYPOINT {}", go_quoted_list(&args)), true, epoch);
            }
            Command::Shell { shell } => {
                state.extras.shell = shell.clone();
                state.history(format!("SHELL {}", go_list(shell)), true, epoch);
            }
            Command::Stopsignal { signal } => {
                let signal = self.expand_at(signal, &state.env, instruction)?;
                if !valid_signal(&signal) {
                    return Err(self.error_at(instruction, format!("invalid signal: {signal}")));
                }
                state.update(|c| {
                    c.set_stop_signal(Some(signal.clone()));
                });
                state.history(format!("STOPSIGNAL {signal}"), true, epoch);
            }
            Command::Maintainer { maintainer } => {
                state.image.set_author(Some(maintainer.clone()));
                state.history(format!("MAINTAINER {maintainer}"), true, epoch);
            }
            Command::Healthcheck(health) => {
                let config = match health {
                    Healthcheck::None => {
                        HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() }
                    }
                    Healthcheck::Cmd { test, interval, timeout, start_period, start_interval, retries } => {
                        let nanos = |d: &Option<std::time::Duration>| {
                            d.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                        };
                        HealthConfig {
                            test: test.clone(),
                            interval: nanos(interval),
                            timeout: nanos(timeout),
                            start_period: nanos(start_period),
                            start_interval: nanos(start_interval),
                            retries: i64::from(retries.unwrap_or(0)),
                        }
                    }
                };
                let duration =
                    |ns: i64| go_duration(std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
                let message = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_list(&config.test),
                    duration(config.interval),
                    duration(config.timeout),
                    duration(config.start_period),
                    duration(config.start_interval),
                    config.retries
                );
                state.extras.healthcheck = Some(config);
                state.history(message, true, epoch);
            }
            Command::Onbuild(onbuild) => {
                // BuildKit stores the trigger without a history entry
                state.extras.on_build.push(onbuild.expression.clone());
            }
        }
        Ok(())
    }

    /// argv of CMD/ENTRYPOINT: exec form as is, shell form through SHELL.
    fn command_args(&self, state: &StageState, command: &parser::CommandLine) -> Vec<String> {
        match &command.form {
            parser::CommandForm::Exec { args } => args.clone(),
            parser::CommandForm::Shell { command } => {
                let mut args = state.shell();
                args.push(command.clone());
                args
            }
        }
    }

    fn workdir(
        &mut self,
        state: &mut StageState,
        instruction: &Instruction,
        path: &str,
        onbuild: bool,
    ) -> Result<(), FrontendError> {
        let expanded = self.expand_at(path, &state.env, instruction)?;
        if !onbuild {
            self.lint_workdir(state, instruction, &expanded);
        }
        let workdir = super::format::clean(&if expanded.starts_with('/') {
            expanded
        } else {
            format!("{}/{expanded}", state.workdir())
        });
        state.update(|c| {
            c.set_working_dir(Some(workdir.clone()));
        });
        let mut with_layer = false;
        if workdir != "/" {
            let user = state.user();
            let owner = if user.is_empty() {
                None
            } else {
                Some(super::format::parse_chown(&user).map_err(|m| self.error_at(instruction, m))?)
            };
            let mkdir = crate::graph::FileAction::Mkdir(crate::graph::MkdirAction {
                path: workdir.clone(),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: self.epoch,
            });
            let text = self.onbuild_prefix(onbuild, &self.progress_text(state, &instruction.original));
            let metadata = self.step_metadata(state, &instruction.location, &text);
            let op = Op::File(crate::graph::FileOp { base: Some(0), actions: vec![mkdir] });
            state.fs = self.graph.add_output(op, vec![state.fs.clone()], metadata)?;
            with_layer = true;
        }
        state.history(format!("WORKDIR {workdir}"), !with_layer, self.epoch);
        Ok(())
    }

    pub(super) fn onbuild_prefix(&self, onbuild: bool, text: &str) -> String {
        if onbuild { format!("ONBUILD {text}") } else { text.to_owned() }
    }
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    /// The filesystem of a named context that is no image to resolve: its local directory, or
    /// empty (`docker-image://scratch`). Callers resolve image contexts like images.
    pub(super) fn named_context_input(
        &mut self,
        name: &str,
        context: &NamedContext,
    ) -> Result<Input, FrontendError> {
        match context {
            NamedContext::Local { source, excludes, shared_key } => {
                let local = LocalSource {
                    name: source.clone(),
                    include_patterns: Vec::new(),
                    exclude_patterns: excludes.clone(),
                    follow_paths: Vec::new(),
                    shared_key: shared_key.clone(),
                };
                let metadata = VertexMetadata {
                    description: Some(format!("[context {name}] load from client")),
                    ..VertexMetadata::default()
                };
                Ok(self.graph.add_output(Op::Source(SourceOp::Local(local)), Vec::new(), metadata)?)
            }
            NamedContext::Image { .. } => Ok(self.graph.add_output(
                Op::Source(SourceOp::Scratch),
                Vec::new(),
                VertexMetadata::default(),
            )?),
        }
    }
}

/// Metadata of step `step` of `total` in the stage shown as `display`.
fn metadata_for(
    display: &str,
    step: usize,
    total: usize,
    ignore_cache: bool,
    location: &Location,
    text: &str,
) -> VertexMetadata {
    let width = total.to_string().len();
    let prefix = if display.is_empty() { String::new() } else { format!("{display} ") };
    let mut metadata = VertexMetadata {
        description: Some(format!("[{prefix}{step:>width$}/{total}] {text}")),
        progress_group: Some(if display.is_empty() { "default".into() } else { display.to_owned() }),
        ignore_cache,
        annotations: Default::default(),
    };
    let annotations = &mut metadata.annotations;
    annotations.insert(ANNOTATION_LINES.into(), format!("{}-{}", location.start_line, location.end_line));
    annotations.insert(ANNOTATION_LINE_START.into(), location.start_line.to_string());
    annotations.insert(ANNOTATION_LINE_END.into(), location.end_line.to_string());
    annotations.insert(ANNOTATION_COLUMN.into(), location.column.to_string());
    annotations.insert(ANNOTATION_STAGE.into(), display.to_owned());
    metadata
}

/// Parses ONBUILD trigger expressions (as stored in a config) into instructions.
pub(super) fn parse_triggers(
    triggers: &[String],
    location: &SourceLocation,
) -> Result<Vec<Instruction>, FrontendError> {
    let mut parsed = Vec::new();
    for trigger in triggers {
        let text = format!("FROM scratch\n{trigger}\n");
        let dockerfile = parser::parse(&text).map_err(|source| FrontendError::Trigger {
            location: location.clone(),
            trigger: trigger.clone(),
            source: Box::new(source),
        })?;
        for stage in dockerfile.stages {
            for instruction in stage.instructions {
                if matches!(instruction.command, Command::Onbuild(_) | Command::Maintainer { .. }) {
                    return Err(FrontendError::Instruction {
                        location: location.clone(),
                        message: format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            instruction.keyword.to_uppercase()
                        ),
                    });
                }
                parsed.push(instruction);
            }
        }
    }
    Ok(parsed)
}

/// `EXPOSE` values: `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`…
fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let invalid = || format!("invalid containerPort: {spec}");
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((ports, proto)) => (ports, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // ip:hostPort:containerPort → the container port
    let ports = ports.rsplit(':').next().unwrap_or(ports);
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| invalid())?, b.parse::<u16>().map_err(|_| invalid())?),
        None => {
            let port = ports.parse::<u16>().map_err(|_| invalid())?;
            (port, port)
        }
    };
    if end < start {
        return Err(invalid());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(signal: &str) -> bool {
    if signal.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return true;
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port_spec("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port_spec("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_port_spec("8000-8001").unwrap(), vec!["8000/tcp", "8001/tcp"]);
        assert!(parse_port_spec("http").is_err());
        assert!(parse_port_spec("80/xyz").is_err());
    }

    #[test]
    fn signals() {
        assert!(valid_signal("SIGTERM"));
        assert!(valid_signal("9"));
        assert!(!valid_signal("SIGFOO"));
    }
}

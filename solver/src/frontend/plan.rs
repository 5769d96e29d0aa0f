//! Stage planning (names, bases, dependencies, `--target` pruning) and the lowering driver.

use std::collections::{BTreeSet, HashMap};

use oci_spec::image::ImageConfiguration;
use parser::shell::expand_word_with_matches;
use parser::{Command, Dockerfile, Instruction, Stage};

use super::dispatch::{StageState, parse_triggers};
use super::{
    BuildPlan, DockerExtras, FrontendError, FrontendOptions, ImageResolver, NamedContext, ResolvedImage,
    SourceLocation, Warning,
};
use crate::graph::{GraphBuilder, Input, LocalSource, Op, Platform, SourceOp, VertexMetadata};

/// Build args that are predefined (never reported as unused).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a stage's `FROM` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Base {
    Scratch,
    Stage(usize),
    Image(String),
    /// A named build context (`--build-context`), by its lookup name.
    Context(String, NamedContext),
}

/// A stage after planning.
#[derive(Debug, Clone)]
pub(super) struct PlannedStage {
    /// Progress/stage name: `AS` name, `stage-N`, or empty for a lone unnamed stage.
    pub display: String,
    pub base: Base,
    pub platform: Platform,
    pub deps: BTreeSet<usize>,
    /// The stage's name has a named context: the stage is that context, its instructions are
    /// not built.
    pub replaced: bool,
}

/// Memoised image resolution (shared by both passes of [`lower`]).
pub(super) struct Resolutions<'r, R> {
    resolver: &'r R,
    cache: HashMap<String, ResolvedImage>,
}

impl<R: ImageResolver> Resolutions<'_, R> {
    pub(super) async fn resolve(
        &mut self,
        reference: &str,
        platform: &Platform,
        location: &SourceLocation,
    ) -> Result<ResolvedImage, FrontendError> {
        let key = format!("{reference}\0{}/{}/{:?}", platform.os, platform.architecture, platform.variant);
        if let Some(found) = self.cache.get(&key) {
            return Ok(found.clone());
        }
        let resolved = self
            .resolver
            .resolve(reference, platform)
            .await
            .map_err(|source| FrontendError::Resolve { location: location.clone(), source })?;
        self.cache.insert(key, resolved.clone());
        Ok(resolved)
    }
}

/// The state of one lowering pass.
pub(super) struct Lowerer<'a, 'r, R> {
    pub dockerfile: &'a Dockerfile,
    pub options: &'a FrontendOptions,
    pub resolutions: &'a mut Resolutions<'r, R>,
    pub graph: GraphBuilder,
    pub stages: Vec<PlannedStage>,
    /// Stage name → index.
    pub names: HashMap<String, usize>,
    /// Global scope: predefined platform args + global ARGs with values.
    pub global: Vec<(String, String)>,
    /// Lowered stages (by index).
    pub results: Vec<Option<StageState>>,
    pub context: Option<Input>,
    /// Context paths read so far (`None` = the whole context).
    pub context_paths: Option<BTreeSet<String>>,
    /// Follow paths for the context source (second pass).
    pub follow_paths: Vec<String>,
    /// Build args some ARG consumed.
    pub consumed: BTreeSet<String>,
    pub warnings: Vec<Warning>,
    /// Build-check findings of this pass.
    pub linter: parser::lint::Linter,
    /// Names the global ARGs declare (with or without a value).
    pub declared_global: Vec<String>,
    pub epoch: Option<i64>,
    /// Index of the target stage.
    pub target: usize,
}

/// Lowers `dockerfile` into a build plan (see the module docs).
pub async fn lower(
    dockerfile: &Dockerfile,
    options: &FrontendOptions,
    resolver: &impl ImageResolver,
) -> Result<BuildPlan, FrontendError> {
    lower_with_findings(dockerfile, options, resolver).await.0
}

/// [`lower`], also returning the build-check findings of the lowering when it fails (those
/// found before the error).
pub async fn lower_with_findings(
    dockerfile: &Dockerfile,
    options: &FrontendOptions,
    resolver: &impl ImageResolver,
) -> (Result<BuildPlan, FrontendError>, Vec<parser::lint::Finding>) {
    if dockerfile.stages.is_empty() {
        return (Err(FrontendError::NoStages), Vec::new());
    }
    let mut resolutions = Resolutions { resolver, cache: HashMap::new() };
    // Pass 1 learns which context paths are read (the context source's follow paths must be
    // known before any vertex that uses it is built); pass 2 builds the final graph.
    let (first, result) = run_pass(dockerfile, options, &mut resolutions, Vec::new()).await;
    if let Err(error) = result {
        return (Err(error), first.linter.into_findings());
    }
    let follow: Vec<String> =
        first.context_paths.clone().map(|p| p.into_iter().collect()).unwrap_or_default();
    let last = if first.context.is_none() || follow.is_empty() {
        first
    } else {
        drop(first);
        let (second, result) = run_pass(dockerfile, options, &mut resolutions, follow).await;
        if let Err(error) = result {
            return (Err(error), second.linter.into_findings());
        }
        second
    };
    let findings = last.linter.findings().to_vec();
    (last.finish(), findings)
}

async fn run_pass<'a, 'r, R: ImageResolver>(
    dockerfile: &'a Dockerfile,
    options: &'a FrontendOptions,
    resolutions: &'a mut Resolutions<'r, R>,
    follow_paths: Vec<String>,
) -> (Lowerer<'a, 'r, R>, Result<(), FrontendError>) {
    let epoch = options.source_date_epoch;
    let mut lowerer = Lowerer {
        dockerfile,
        options,
        resolutions,
        graph: GraphBuilder::new(),
        stages: Vec::new(),
        names: HashMap::new(),
        global: Vec::new(),
        results: vec![None; dockerfile.stages.len()],
        context: None,
        context_paths: Some(BTreeSet::new()),
        follow_paths,
        consumed: BTreeSet::new(),
        warnings: Vec::new(),
        linter: parser::lint::Linter::new(options.check.clone()),
        declared_global: Vec::new(),
        epoch,
        target: 0,
    };
    let result = lowerer.lower_all().await;
    (lowerer, result)
}

impl<R: ImageResolver> Lowerer<'_, '_, R> {
    async fn lower_all(&mut self) -> Result<(), FrontendError> {
        let target = self.plan()?;
        if self.epoch.is_none() {
            self.epoch = self.source_date_epoch()?;
        }
        self.add_onbuild_dependencies(target).await?;
        let mut order = self.order(target)?;
        if self.options.all_stages {
            // every stage (the target's dependencies first, as they are needed)
            for index in 0..self.stages.len() {
                for dependency in self.order(index)? {
                    if !order.contains(&dependency) {
                        order.push(dependency);
                    }
                }
            }
        }
        for index in order {
            let state = self.lower_stage(index).await?;
            self.results[index] = Some(state);
        }
        self.target = target;
        Ok(())
    }

    /// Location of a stage's FROM, for errors.
    pub(super) fn stage_location(&self, stage: &Stage) -> SourceLocation {
        let mut location = SourceLocation::from(&stage.location);
        location.instruction = match &stage.platform {
            Some(platform) => format!("FROM --platform={platform} {}", stage.base),
            None => format!("FROM {}", stage.base),
        };
        if let Some(name) = &stage.name {
            location.instruction.push_str(&format!(" AS {name}"));
        }
        location
    }

    pub(super) fn predefined(&self) -> Vec<(String, String)> {
        let format = |p: &Platform| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        };
        let (build, target) = (&self.options.build_platform, &self.options.target_platform);
        let target_stage = self
            .options
            .target
            .clone()
            .or_else(|| self.dockerfile.stages.last().and_then(|s| s.name.clone()))
            .unwrap_or_else(|| "default".into());
        let values = [
            ("BUILDPLATFORM", format(build)),
            ("BUILDOS", build.os.clone()),
            ("BUILDARCH", build.architecture.clone()),
            ("BUILDVARIANT", build.variant.clone().unwrap_or_default()),
            ("TARGETPLATFORM", format(target)),
            ("TARGETOS", target.os.clone()),
            ("TARGETARCH", target.architecture.clone()),
            ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
            ("TARGETSTAGE", target_stage),
        ];
        values
            .into_iter()
            .map(|(k, v)| (k.to_owned(), self.options.build_args.get(k).cloned().unwrap_or(v)))
            .collect()
    }

    /// Computes the global scope, each stage's base and dependencies; returns the target index.
    fn plan(&mut self) -> Result<usize, FrontendError> {
        self.global = self.predefined();
        let global_args: Vec<Instruction> = self.dockerfile.global_args.clone();
        for instruction in &global_args {
            let Command::Arg { args } = &instruction.command else { continue };
            for arg in args {
                if !self.declared_global.contains(&arg.name) {
                    self.declared_global.push(arg.name.clone());
                }
                let value = match (self.options.build_args.get(&arg.name), &arg.default) {
                    (Some(value), _) => Some(value.clone()),
                    (None, Some(default)) => {
                        Some(self.expand_at(default, &self.global.clone(), instruction)?)
                    }
                    (None, None) => None,
                };
                self.consumed.insert(arg.name.clone());
                if let Some(value) = value {
                    self.global.retain(|(k, _)| k != &arg.name);
                    self.global.push((arg.name.clone(), value));
                }
            }
        }
        for (index, stage) in self.dockerfile.stages.iter().enumerate() {
            if let Some(name) = &stage.name {
                self.names.entry(name.clone()).or_insert(index);
            }
        }
        self.lint_default_args();
        // BuildKit turns `--from=<image>` into implicit stages: with one, a lone unnamed stage
        // is called `stage-0` too
        let mut implicit_images = false;
        for (index, stage) in self.dockerfile.stages.iter().enumerate() {
            let location = self.stage_location(stage);
            let expansion =
                expand_word_with_matches(&stage.base, &self.global, self.dockerfile.escape).map_err(
                    |source| FrontendError::Expand { location: location.clone(), source: Box::new(source) },
                )?;
            let platform_expansion = match &stage.platform {
                Some(raw) => {
                    Some(expand_word_with_matches(raw, &self.global, self.dockerfile.escape).map_err(
                        |source| FrontendError::Expand {
                            location: location.clone(),
                            source: Box::new(source),
                        },
                    )?)
                }
                None => None,
            };
            self.lint_from(stage, &expansion, platform_expansion.as_ref());
            let base_name = expansion.value;
            if base_name.is_empty() {
                return Err(FrontendError::Instruction {
                    location,
                    message: format!("base name ({}) should not be blank", stage.base),
                });
            }
            let platform = match (&stage.platform, platform_expansion) {
                (Some(raw), Some(expansion)) => {
                    // BuildKit's hint: an unset variable close to a set one
                    let hint = expansion
                        .unmatched
                        .iter()
                        .find_map(|name| parser::suggest(name, self.global.iter().map(|(k, _)| k.as_str())))
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    let value = expansion.value;
                    let fail =
                        |message: String| FrontendError::Instruction { location: location.clone(), message };
                    if value.is_empty() {
                        return Err(fail(format!("empty platform value from expression {raw}{hint}")));
                    }
                    match (parse_platform(&value), invalid_platform_component(&value)) {
                        (_, Some(detail)) => {
                            return Err(fail(format!("failed to parse platform {raw}: {detail}{hint}")));
                        }
                        (Some(platform), None) => platform,
                        (None, None) => {
                            return Err(fail(format!(
                                "failed to parse platform {raw}: invalid platform {value:?}"
                            )));
                        }
                    }
                }
                _ => self.options.target_platform.clone(),
            };
            // BuildKit: a stage named like a named context is that context; a base that names
            // no stage may be one
            let replacement = stage.name.as_deref().and_then(|name| self.named_context(name, &platform));
            let base = if let Some((name, context)) = replacement.clone() {
                Base::Context(name, context)
            } else if base_name == "scratch" {
                Base::Scratch
            } else if let Some(&other) = self.names.get(&base_name.to_ascii_lowercase()) {
                Base::Stage(other)
            } else if let Some((name, context)) = self.named_context(&base_name, &platform) {
                Base::Context(name, context)
            } else {
                Base::Image(base_name)
            };
            let display = match &stage.name {
                Some(name) => name.clone(),
                None => format!("stage-{index}"),
            };
            if replacement.is_some() {
                self.stages.push(PlannedStage {
                    display,
                    base,
                    platform,
                    deps: BTreeSet::new(),
                    replaced: true,
                });
                continue;
            }
            let mut deps = BTreeSet::new();
            // ONBUILD triggers of a parent stage fire here: their `--from` stages are needed too
            // (resolved against this Dockerfile's stages, as BuildKit does)
            let mut inherited = Vec::new();
            if let Base::Stage(other) = base {
                deps.insert(other);
                let parent_replaced = self.stages.get(other).is_some_and(|s| s.replaced);
                for instruction in &self.dockerfile.stages[other].instructions {
                    if parent_replaced {
                        break;
                    }
                    if let Command::Onbuild(onbuild) = &instruction.command {
                        inherited.push(onbuild.trigger.as_ref());
                    }
                }
            }
            for trigger in inherited {
                for from in from_references(trigger) {
                    let from = self.expand_at(&from, &self.global.clone(), trigger)?;
                    if let Some(other) = self.stage_reference(&from, index) {
                        deps.insert(other);
                    }
                }
            }
            for instruction in &stage.instructions {
                if let Command::Copy(parser::Copy { from: Some(from), .. }) = &instruction.command {
                    self.check_copy_from(from, instruction)?;
                }
                for from in from_references(instruction) {
                    let from = self.expand_at(&from, &self.global.clone(), instruction)?;
                    match self.stage_reference(&from, index) {
                        Some(other) => {
                            deps.insert(other);
                        }
                        None => implicit_images = true,
                    }
                }
            }
            self.stages.push(PlannedStage { display, base, platform, deps, replaced: false });
        }
        if self.stages.len() == 1 && !implicit_images && self.dockerfile.stages[0].name.is_none() {
            self.stages[0].display = String::new();
        }
        match &self.options.target {
            None => Ok(self.dockerfile.stages.len() - 1),
            Some(target) => self.names.get(&target.to_ascii_lowercase()).copied().ok_or_else(|| {
                let names = self.dockerfile.stages.iter().filter_map(|s| s.name.as_deref());
                FrontendError::UnknownTarget {
                    target: target.clone(),
                    suggestion: parser::suggest(target, names),
                }
            }),
        }
    }

    /// `COPY --from` takes no variables (BuildKit resolves it before any ARG is known): a value
    /// that expansion would change is refused with BuildKit's error.
    pub(super) fn check_copy_from(&self, from: &str, instruction: &Instruction) -> Result<(), FrontendError> {
        let expanded = self.expand_at(from, &parser::shell::EmptyEnv, instruction)?;
        if expanded != from {
            return Err(self.error_at(
                instruction,
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from \
                 global scope as a workaround",
            ));
        }
        Ok(())
    }

    /// `SOURCE_DATE_EPOCH` from a build-arg or a global `ARG` default, as BuildKit resolves it:
    /// seconds since the epoch; `context` (the context's time: not known to kiln, ignored, as
    /// BuildKit without a client); the name of a stage holding one remote `ADD` (checked as
    /// BuildKit does; taking its time is not supported yet); anything else is an error.
    fn source_date_epoch(&self) -> Result<Option<i64>, FrontendError> {
        let from_global =
            || self.global.iter().rev().find(|(k, _)| k == "SOURCE_DATE_EPOCH").map(|(_, v)| v.clone());
        let Some(value) = self.options.build_args.get("SOURCE_DATE_EPOCH").cloned().or_else(from_global)
        else {
            return Ok(None);
        };
        if value.is_empty() || value == "context" {
            return Ok(None);
        }
        if let Ok(seconds) = value.parse::<i64>() {
            return Ok(Some(seconds));
        }
        let Some(stage) = self
            .dockerfile
            .stages
            .iter()
            .find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&value)))
        else {
            return Err(FrontendError::Instruction {
                location: self
                    .dockerfile
                    .global_args
                    .iter()
                    .rev()
                    .find_map(|i| match &i.command {
                        Command::Arg { args } if args.iter().any(|a| a.name == "SOURCE_DATE_EPOCH") => {
                            Some(super::dispatch::instruction_location(i))
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| self.stage_location(&self.dockerfile.stages[0])),
                message: format!("invalid SOURCE_DATE_EPOCH: {value}"),
            });
        };
        let location = self.stage_location(stage);
        let fail = |message: String| FrontendError::Instruction { location: location.clone(), message };
        if stage.base != "scratch" {
            return Err(fail("SOURCE_DATE_EPOCH stage must use FROM scratch".into()));
        }
        let mut adds = 0;
        for instruction in &stage.instructions {
            match &instruction.command {
                Command::Arg { .. } => {}
                Command::Add(_) => adds += 1,
                _ => {
                    let name = instruction.original.split_whitespace().next().unwrap_or_default();
                    return Err(fail(format!(
                        "SOURCE_DATE_EPOCH stage does not meet source-only requirements: unsupported {} instruction",
                        name.to_ascii_lowercase()
                    )));
                }
            }
        }
        if adds != 1 {
            return Err(fail("SOURCE_DATE_EPOCH stage must contain exactly one remote ADD".into()));
        }
        Err(fail(format!(
            "SOURCE_DATE_EPOCH={value}: taking the time of a stage's remote source is not supported by kiln yet"
        )))
    }

    /// ONBUILD triggers of base images fire in the stages built on them, and their `--from`
    /// (COPY or RUN --mount) may name stages of this Dockerfile, which those stages then need
    /// (BuildKit's "new deps" of ONBUILD). Resolves the image bases of the stages the target
    /// needs until no trigger adds a dependency. A base that fails to resolve here is left to
    /// the lowering, which reports it where it belongs.
    async fn add_onbuild_dependencies(&mut self, target: usize) -> Result<(), FrontendError> {
        let mut examined = BTreeSet::new();
        loop {
            let mut added = false;
            for index in self.order(target)? {
                let name = match self.stages[index].base.clone() {
                    Base::Image(name) => name,
                    Base::Context(_, NamedContext::Image { reference })
                        if reference != "scratch" && !self.stages[index].replaced =>
                    {
                        reference
                    }
                    _ => continue,
                };
                if !examined.insert(index) {
                    continue;
                }
                let location = self.stage_location(&self.dockerfile.stages[index]);
                let platform = self.stages[index].platform.clone();
                let Ok(resolved) = self.resolutions.resolve(&name, &platform, &location).await else {
                    continue;
                };
                let Ok(triggers) = parse_triggers(&resolved.extras.on_build, &location) else { continue };
                for trigger in &triggers {
                    for from in from_references(trigger) {
                        let Ok(from) = self.expand_at(&from, &self.global.clone(), trigger) else { continue };
                        if let Some(other) = self.stage_reference(&from, index) {
                            added |= self.stages[index].deps.insert(other);
                        }
                    }
                }
            }
            if !added {
                return Ok(());
            }
        }
    }

    /// The named build context `name` stands for, with its lookup name: as BuildKit looks it
    /// up, `NAME::os/arch[/variant]` first, then `NAME`, where NAME is the familiar form of the
    /// reference without `:latest`; never for `scratch` and `context`.
    pub(super) fn named_context(&self, name: &str, platform: &Platform) -> Option<(String, NamedContext)> {
        let contexts = &self.options.named_contexts;
        if contexts.is_empty() || name.eq_ignore_ascii_case("scratch") || name.eq_ignore_ascii_case("context")
        {
            return None;
        }
        let familiar = registry::Reference::parse_named(name).ok()?.familiar();
        let familiar = familiar.strip_suffix(":latest").unwrap_or(&familiar).to_owned();
        let platform_name = match &platform.variant {
            Some(variant) => format!("{familiar}::{}/{}/{variant}", platform.os, platform.architecture),
            None => format!("{familiar}::{}/{}", platform.os, platform.architecture),
        };
        [platform_name, familiar]
            .into_iter()
            .find_map(|key| contexts.get(&key).map(|context| (key.clone(), context.clone())))
    }

    /// A `--from` value that names a stage: by name, or by index (only earlier stages).
    pub(super) fn stage_reference(&self, from: &str, current: usize) -> Option<usize> {
        if let Some(&index) = self.names.get(&from.to_ascii_lowercase()) {
            return Some(index);
        }
        match from.parse::<usize>() {
            Ok(index) if index < current.min(self.dockerfile.stages.len()) => Some(index),
            _ => None,
        }
    }

    /// Stages the target needs, dependencies first; detects cycles.
    fn order(&self, target: usize) -> Result<Vec<usize>, FrontendError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; self.stages.len()];
        let mut order = Vec::new();
        // iterative DFS: (stage, next dependency position)
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        marks[target] = Mark::Active;
        stack.push((target, self.stages[target].deps.iter().rev().copied().collect()));
        while let Some((stage, pending)) = stack.last_mut() {
            let stage = *stage;
            match pending.pop() {
                Some(dep) => match marks[dep] {
                    Mark::Done => {}
                    Mark::Active => {
                        let name = self.stage_name(dep);
                        return Err(FrontendError::Instruction {
                            location: self.stage_location(&self.dockerfile.stages[dep]),
                            message: format!("circular dependency detected on stage: {name}"),
                        });
                    }
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, self.stages[dep].deps.iter().rev().copied().collect()));
                    }
                },
                None => {
                    marks[stage] = Mark::Done;
                    order.push(stage);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    fn stage_name(&self, index: usize) -> String {
        self.dockerfile.stages[index].name.clone().unwrap_or_else(|| format!("stage-{index}"))
    }

    /// The context source (created on first use).
    pub(super) fn context(&mut self) -> Result<Input, FrontendError> {
        if let Some(input) = &self.context {
            return Ok(input.clone());
        }
        let local = LocalSource {
            name: self.options.context_name.clone(),
            include_patterns: Vec::new(),
            exclude_patterns: self.options.dockerignore.clone(),
            follow_paths: self.follow_paths.clone(),
            shared_key: self.options.context_shared_key.clone(),
        };
        let metadata = VertexMetadata {
            description: Some("[internal] load build context".into()),
            ..VertexMetadata::default()
        };
        let input = self.graph.add_output(Op::Source(SourceOp::Local(local)), Vec::new(), metadata)?;
        self.context = Some(input.clone());
        Ok(input)
    }

    /// Records a context path read by COPY/ADD (`None`: the whole context).
    pub(super) fn read_context_path(&mut self, path: Option<&str>) {
        let cleaned = path.map(|p| super::format::clean(&format!("/{p}")));
        match (cleaned.as_deref().map(|p| p.trim_start_matches('/')), &mut self.context_paths) {
            (Some(p), Some(paths)) if !p.is_empty() => {
                paths.insert(p.to_owned());
            }
            _ => self.context_paths = None,
        }
    }

    fn finish(self) -> Result<BuildPlan, FrontendError> {
        let target = self.target;
        let Some(state) = self.results.get(target).cloned().flatten() else {
            return Err(FrontendError::NoStages);
        };
        let mut image: ImageConfiguration = state.image;
        if !self.options.labels.is_empty() {
            let mut config = image.config().clone().unwrap_or_default();
            let mut labels = config.labels().clone().unwrap_or_default();
            for (k, v) in &self.options.labels {
                labels.insert(k.clone(), v.clone());
            }
            config.set_labels(Some(labels));
            image.set_config(Some(config));
        }
        // The base image's creation time is not this image's: the exporter stamps the build
        // time, or SOURCE_DATE_EPOCH (BuildKit clears the base's `created` the same way).
        image.set_created(self.epoch.map(crate::export::rfc3339_from_epoch));
        let mut warnings: Vec<Warning> = self
            .dockerfile
            .warnings
            .iter()
            .map(|w| Warning { message: w.message.clone(), line: Some(w.line) })
            .collect();
        warnings.extend(self.warnings);
        let unused: Vec<&String> = self
            .options
            .build_args
            .keys()
            .filter(|k| !self.consumed.contains(*k))
            .filter(|k| !PROXY_ARGS.contains(&k.as_str()) && !is_predefined(k))
            .collect();
        if !unused.is_empty() {
            let names: Vec<String> = unused.into_iter().cloned().collect();
            warnings.push(Warning {
                message: format!("one or more build-args [{}] were not consumed", names.join(" ")),
                line: None,
            });
        }
        let definition = self.graph.finish(vec![state.fs.clone()])?;
        let docker: DockerExtras = state.extras;
        let findings = self.linter.into_findings();
        Ok(BuildPlan {
            definition,
            target: state.fs,
            image,
            docker,
            warnings,
            findings,
            source_date_epoch: self.epoch,
        })
    }
}

fn is_predefined(name: &str) -> bool {
    matches!(
        name,
        "BUILDPLATFORM"
            | "BUILDOS"
            | "BUILDARCH"
            | "BUILDVARIANT"
            | "TARGETPLATFORM"
            | "TARGETOS"
            | "TARGETARCH"
            | "TARGETVARIANT"
            | "TARGETSTAGE"
            | "SOURCE_DATE_EPOCH"
    ) || name.starts_with("BUILDKIT_")
}

/// containerd's complaint about a platform specifier with an empty or invalid component.
fn invalid_platform_component(value: &str) -> Option<String> {
    let valid = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    value.split('/').find(|part| !valid(part)).map(|part| {
        format!(
            "{part:?} is an invalid component of {value:?}: platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument"
        )
    })
}

/// Parses `os/arch[/variant]` (a `--platform` or `FROM --platform` value).
pub fn parse_platform(value: &str) -> Option<Platform> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            Some(Platform { os: (*os).into(), architecture: (*arch).into(), variant: None })
        }
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => Some(Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: Some((*variant).into()),
        }),
        _ => None,
    }
}

/// `--from` values of an instruction (COPY, RUN mounts), unexpanded.
fn from_references(instruction: &Instruction) -> Vec<String> {
    match &instruction.command {
        Command::Copy(copy) => copy.from.iter().cloned().collect(),
        Command::Run(run) => run.mounts.iter().filter_map(|m| m.from.clone()).collect(),
        _ => Vec::new(),
    }
}

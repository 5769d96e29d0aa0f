//! The Dockerfile frontend: a parsed [`parser::Dockerfile`] → a build graph + image config,
//! with BuildKit's `dockerfile2llb` semantics.
//!
//! # API
//!
//! ```text
//! pub async fn lower(dockerfile: &parser::Dockerfile, options: &FrontendOptions,
//!                    resolver: &impl ImageResolver) -> Result<BuildPlan, FrontendError>
//! ```
//!
//! - [`ImageResolver`] resolves `FROM` / `COPY --from=<image>` / `RUN --mount=from=<image>`
//!   references to a pinned reference and the image config ([`ResolvedImage`]); the runner
//!   implements it over the store and the registry. It is only called for stages the target
//!   needs, once per (reference, platform).
//! - [`BuildPlan`]: the [`Definition`], the target stage's filesystem ([`BuildPlan::target`]),
//!   the image config ([`BuildPlan::image`], history with one entry per instruction, `created_by`
//!   as BuildKit writes it, `rootfs.diff_ids` left as the base image's — the exporter replaces
//!   them), the Docker-only config fields oci-spec cannot hold ([`BuildPlan::docker`]:
//!   `Healthcheck`, `OnBuild`, `Shell`; [`BuildPlan::config_json`] merges them into the
//!   config JSON) and [`Warning`]s (unused build args…).
//! - Build checks: [`FrontendOptions::check`] ([`check_config`]: the `BUILDKIT_DOCKERFILE_CHECK`
//!   build-arg, else the `# check=` directive) selects the rules; [`BuildPlan::findings`] holds
//!   what the lowering found (UndefinedVar, UndefinedArgInFrom, CopyIgnoredFile, … and the
//!   per-instruction syntax rules of [`parser::lint::check_instruction`], for the stages it
//!   lowers; [`FrontendOptions::all_stages`] lowers all, as `--check`). [`lower_with_findings`]
//!   keeps the findings when the lowering fails. The parse-time rules are
//!   [`parser::lint::check_file`]'s, run by the caller.
//!
//! # Graph conventions (what the runner and exporter can rely on)
//!
//! - Every instruction vertex has `metadata.description` like BuildKit's progress names
//!   (`[build 3/7] RUN make`, `[2/3] COPY a b`, `[internal] load build context`,
//!   `[stage-0 1/2] FROM docker.io/library/busybox:latest@sha256:…`), `progress_group` = the
//!   stage name (or `stage-N`), `ignore_cache` for `--no-cache` / `--no-cache-filter`, and
//!   annotations [`ANNOTATION_LINES`] (`"START-END"`), [`ANNOTATION_LINE_START`],
//!   [`ANNOTATION_LINE_END`], [`ANNOTATION_COLUMN`] and [`ANNOTATION_STAGE`].
//! - The build context is one `Local` source named [`FrontendOptions::context_name`] with the
//!   `.dockerignore` patterns as `exclude_patterns` and `follow_paths` = the context paths
//!   COPY/ADD read (relative, may hold wildcards; empty when something reads the whole
//!   context, e.g. `RUN --mount=type=bind` without `from`).
//! - A named local context (`--build-context NAME=DIR`, [`NamedContext::Local`]) is a `Local`
//!   source of its own name (`[context NAME] load from client`), with that directory's
//!   `.dockerignore` as `exclude_patterns` and no follow paths; an image one is an `Image` source
//!   resolved like `FROM`.
//! - RUN: an exec op whose mount 0 is the rootfs at `/` (input 0, output 0); extra mounts
//!   follow with their own inputs. `env` = base image Env + ENV + ARG values in declaration
//!   order (later wins), `PATH` defaulted, proxy build args (`HTTP_PROXY` family) appended.
//! - COPY/ADD: one file op (base = input 0) with one action per source, in order. Local
//!   sources copy from the context input; `--from` from a stage's output or an image source;
//!   URLs from an `Http` source (the file is `/<filename>` in it). `--chown` is carried as
//!   names/ids in [`crate::graph::ChownOpt`] (the runner resolves names in the target's
//!   passwd/group). `--link` copies onto scratch and merges (`Merge [previous, copy]`).
//!   `--chmod` is a [`crate::graph::Chmod`]: octal, or symbolic as written (applied by the
//!   runner to each source mode). `--parents` copies from `/` (or the part before a `/./`
//!   pivot) with the rest of the source as an include pattern. Heredoc sources are mkfile
//!   actions that create missing parents like a copy does.
//! - WORKDIR creates the directory with a mkdir action (as BuildKit), except for `/`.
//! - Every stage's Env has a `PATH` (the default one is added when the base has none).
//!
//! # Tests
//!
//! `solver/tests/frontend.rs` (goldens in `testdata/frontend/<case>/`: graph JSON with digests,
//! config JSON, warnings or the expected error; `KILN_BLESS=1` rewrites them) and
//! `solver/tests/frontend_reference.rs` (config fields and history against what dockerd's
//! BuildKit wrote for `testdata/buildkit-reference/`).
//!
//! # Known gaps
//!
//! - `ADD` of git repositories, git and HTTP named build contexts, multi-platform builds (one
//!   target platform per lowering).
//! - `--link` with `--chown=<name>` copies onto scratch: the runner must resolve names in the
//!   final stage's passwd/group rather than in the scratch base.

mod copy;
mod dispatch;
mod format;
mod lint;
mod plan;
mod run;

use std::collections::BTreeMap;
use std::future::Future;

use oci_spec::image::ImageConfiguration;
use serde::Serialize;

use crate::graph::{Definition, GraphError, Input, NetworkMode, Platform};

pub use lint::{CHECK_BUILD_ARG, check_config};
pub use plan::{lower, lower_with_findings, parse_platform};

/// Annotation: the instruction's lines, `"START-END"` (what `build::failure` reads).
pub const ANNOTATION_LINES: &str = "dockerfile.lines";
/// Annotation: first line of the instruction (1-based).
pub const ANNOTATION_LINE_START: &str = "dockerfile.line_start";
/// Annotation: last line of the instruction (1-based, inclusive).
pub const ANNOTATION_LINE_END: &str = "dockerfile.line_end";
/// Annotation: column of the instruction's first character (1-based).
pub const ANNOTATION_COLUMN: &str = "dockerfile.column";
/// Annotation: the stage name (or `stage-N`).
pub const ANNOTATION_STAGE: &str = "stage";

/// Settings of one lowering (what `kiln build` flags turn into).
#[derive(Debug, Clone)]
pub struct FrontendOptions {
    /// `--build-arg K=V` (`--build-arg K` is resolved from the environment by the CLI).
    pub build_args: BTreeMap<String, String>,
    /// `--target`; default: the last stage.
    pub target: Option<String>,
    /// Platform the image is built for (`TARGETPLATFORM`).
    pub target_platform: Platform,
    /// Platform the build runs on (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--label`: added to the target's config.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Stage names whose vertices ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `SOURCE_DATE_EPOCH`: history and config `created`, file timestamps.
    pub source_date_epoch: Option<i64>,
    /// Name of the context's local source (default `context`).
    pub context_name: String,
    /// Key for the per-file checksum cache of the context (e.g. its absolute path).
    pub context_shared_key: String,
    /// `.dockerignore` patterns.
    pub dockerignore: Vec<String>,
    /// `--secret id=…` ids available (for warnings about missing ones).
    pub secrets: Vec<String>,
    /// `--ssh` ids available.
    pub ssh: Vec<String>,
    /// `--network`: default network of RUN.
    pub network: NetworkMode,
    /// Which build checks run ([`check_config`] reads the directive and build-arg).
    pub check: parser::lint::CheckConfig,
    /// Lower every stage, not only those the target needs (what `--check` looks at).
    pub all_stages: bool,
    /// `--build-context NAME=VALUE`, by NAME as given (`NAME::os/arch` for one platform only).
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--ulimit`, `--shm-size`, `--cgroup-parent`, `--add-host`: given to every RUN (its
    /// `insecure` is ignored: that is per RUN).
    pub sandbox: crate::graph::ExecSandbox,
}

/// What a named build context (`--build-context NAME=VALUE`) stands for. As in BuildKit, a
/// stage whose name has a named context is replaced by it (its instructions are not built),
/// and `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME` that name no stage use it
/// instead of the image `NAME`. Names are matched in their familiar form without `:latest`
/// (`docker.io/library/busybox:latest` looks up `busybox`); `scratch` and `context` are never
/// looked up. Contexts of stages the target does not need are never resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// An image resolved through the [`ImageResolver`] like `FROM` (`docker-image://REF`, or an
    /// `oci-layout://` image the caller made resolvable, pinned by digest); `scratch`: empty.
    Image { reference: String },
    /// A local directory: a `Local` source of this name (the runner maps it to the directory),
    /// with that directory's `.dockerignore` patterns.
    Local { source: String, excludes: Vec<String>, shared_key: String },
}

impl Default for FrontendOptions {
    fn default() -> FrontendOptions {
        let host = Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
        FrontendOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: host.clone(),
            build_platform: host,
            labels: BTreeMap::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            source_date_epoch: None,
            context_name: "context".into(),
            context_shared_key: String::new(),
            dockerignore: Vec::new(),
            secrets: Vec::new(),
            ssh: Vec::new(),
            network: NetworkMode::Default,
            check: parser::lint::CheckConfig::default(),
            all_stages: false,
            named_contexts: BTreeMap::new(),
            sandbox: crate::graph::ExecSandbox::default(),
        }
    }
}

/// The Docker-only config fields (one type for the workspace, owned by the cache crate).
pub use cache::{DockerExtras, HealthConfig, merge_extras};

/// A base image resolved for the build.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Canonical, pinned: `docker.io/library/busybox:latest@sha256:…`.
    pub reference: String,
    pub config: ImageConfiguration,
    /// `Healthcheck`, `OnBuild`, `Shell` of the config (see [`ResolvedImage::from_config_json`]).
    pub extras: DockerExtras,
}

impl ResolvedImage {
    /// Builds a resolved image from the raw config blob (keeps the Docker-only fields).
    pub fn from_config_json(reference: String, bytes: &[u8]) -> Result<ResolvedImage, serde_json::Error> {
        let (config, extras) = cache::parse_image_config(bytes)?;
        Ok(ResolvedImage { reference, config, extras })
    }
}

/// Why an image reference could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("failed to resolve source metadata for {reference}")]
pub struct ResolveError {
    pub reference: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Resolves image references for the frontend (implemented by the runner).
pub trait ImageResolver: Send + Sync {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send;
}

/// A non-fatal finding of the frontend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
    /// Dockerfile line it concerns, when there is one.
    pub line: Option<usize>,
}

/// The result of lowering.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub definition: Definition,
    /// The target stage's final filesystem.
    pub target: Input,
    /// The image config (history per instruction; `rootfs` as the base image's).
    pub image: ImageConfiguration,
    /// Docker-only config fields of the target.
    pub docker: DockerExtras,
    pub warnings: Vec<Warning>,
    /// Build-check findings of the lowering (the parse-time ones are [`parser::lint::check_file`]'s).
    pub findings: Vec<parser::lint::Finding>,
    /// The build's `SOURCE_DATE_EPOCH` (the request's, else a build-arg or global ARG default).
    pub source_date_epoch: Option<i64>,
}

impl BuildPlan {
    /// The image config as Docker/BuildKit write it: [`BuildPlan::image`] with
    /// [`BuildPlan::docker`] merged into `config`.
    pub fn config_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        merge_extras(&self.image, &self.docker)
    }
}

/// Where an error is in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub line: usize,
    pub end_line: usize,
    pub column: usize,
    /// The instruction text (logical line).
    pub instruction: String,
}

impl std::fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dockerfile:{}:{}: {}", self.line, self.column, self.instruction)
    }
}

impl From<&parser::Location> for SourceLocation {
    fn from(location: &parser::Location) -> SourceLocation {
        SourceLocation {
            line: location.start_line,
            end_line: location.end_line,
            column: location.column,
            instruction: String::new(),
        }
    }
}

/// A Dockerfile that cannot be lowered.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// BuildKit's text: `target stage "buidl" could not be found (did you mean build?)`.
    #[error("target stage {target:?} could not be found{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownTarget { target: String, suggestion: Option<String> },
    /// An instruction is invalid (the message says why).
    #[error("{location}: {message}")]
    Instruction { location: SourceLocation, message: String },
    #[error("{location}: cannot expand variables")]
    Expand {
        location: SourceLocation,
        #[source]
        source: Box<parser::shell::ShellError>,
    },
    #[error("{location}: cannot resolve the image")]
    Resolve {
        location: SourceLocation,
        #[source]
        source: ResolveError,
    },
    #[error("{location}: invalid ONBUILD trigger {trigger:?} of the base image")]
    Trigger {
        location: SourceLocation,
        trigger: String,
        #[source]
        source: Box<parser::ParseError>,
    },
    #[error("cannot build the graph")]
    Graph(#[from] GraphError),
    #[error("failed to parse check options")]
    CheckConfig(#[source] parser::lint::CheckConfigError),
}

impl FrontendError {
    /// The Dockerfile location of the error, when it has one.
    pub fn location(&self) -> Option<&SourceLocation> {
        match self {
            FrontendError::Instruction { location, .. }
            | FrontendError::Expand { location, .. }
            | FrontendError::Resolve { location, .. }
            | FrontendError::Trigger { location, .. } => Some(location),
            _ => None,
        }
    }
}

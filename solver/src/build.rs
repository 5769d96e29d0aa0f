//! The build: a solved definition's target → an image in the store → outputs.
//!
//! [`solve_and_export`] is the orchestration after lowering: it solves the definition with a
//! runner over the store's build cache ([`StoreCache`]), keeps the last output lines of every
//! step (for [`failure::StepFailure`]), and exports the target's layer chain with the frontend's
//! image config ([`crate::export`]). `kiln build` reads the Dockerfile and `.dockerignore`
//! ([`read_dockerfile`], [`crate::contenthash::ignore::load_ignore_patterns`]), parses, lowers
//! with the frontend and calls this with the runner.

pub mod failure;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::Store;
use cache::buildcache::{CacheResult, CachedLayer};
use oci_spec::image::ImageConfiguration;
use tokio_util::sync::CancellationToken;

use crate::export::output::{self, Output};
use crate::export::{ExportError, ExportedImage, ImageOptions, finalize_config, write_image_with};
use crate::frontend::{FrontendError, FrontendOptions, ImageResolver, ResolveError, ResolvedImage};
use crate::graph::{Definition, Input};
use crate::progress::ProgressSender;
use crate::scheduler::{OpRunner, SolveError, SolveOptions, SolveStats, Solver};
use crate::storecache::{StoreCache, StoreRef};
use failure::{LogTails, StepFailure};

/// A runner result that is (or is not) a filesystem: what the exporter needs from it.
pub trait LayerChain {
    /// The layers, bottom first; `None` when the result is not a filesystem.
    fn layers(&self) -> Option<&[CachedLayer]>;
}

impl LayerChain for CacheResult {
    fn layers(&self) -> Option<&[CachedLayer]> {
        match self {
            CacheResult::Layers { layers } => Some(layers),
            CacheResult::Blob { .. } => None,
        }
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the Dockerfile {path}")]
    ReadDockerfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step failed; its display is BuildKit's failure block.
    #[error("{0}")]
    Step(Box<StepFailure>),
    #[error("failed to solve")]
    Solve(#[source] Box<SolveError>),
    #[error("build canceled")]
    Canceled,
    #[error("cannot export the image")]
    Export(#[from] ExportError),
    #[error("export task failed")]
    ExportTask(#[source] tokio::task::JoinError),
    #[error("cannot read the .dockerignore file")]
    Ignore(#[from] crate::contenthash::ignore::PatternError),
    /// The Dockerfile does not parse (rendered with a caret by the CLI).
    #[error("{name}: {error}")]
    Parse { name: String, text: String, error: parser::ParseError },
    /// The Dockerfile cannot be lowered (rendered with the instruction by the CLI).
    #[error("{error}")]
    Frontend { text: String, error: FrontendError },
    #[error("cannot start the build runner")]
    Runner(#[source] crate::scheduler::RunError),
    #[error("invalid --network {0:?} (expected default, none or host)")]
    Network(String),
}

/// What to do with the solved target.
#[derive(Debug, Clone, Default)]
pub struct ExportSettings {
    /// `--label`, `SOURCE_DATE_EPOCH`.
    pub image: ImageOptions,
    /// The outputs (the image store by default: the caller puts `Output::Image` here).
    pub outputs: Vec<Output>,
    /// Fully qualified names (`-t`, normalised) for the image store and archives.
    pub names: Vec<String>,
}

/// The Dockerfile as read for a build, for error snippets.
#[derive(Debug, Clone, Default)]
pub struct DockerfileText {
    /// Display name (`Dockerfile`, or the `-f` path as given).
    pub name: String,
    pub text: String,
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `src=PATH` (or `type=file`).
    File(PathBuf),
    /// `env=VAR` (or `type=env`).
    Env(String),
}

/// One `--secret id=…,src=…|env=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub id: String,
    pub source: SecretSource,
}

/// Everything `kiln build` asks for, resolved by the CLI (environment lookups done, names
/// normalised, Dockerfile from stdin already read).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The build context directory; `None` for `kiln build -` (no context).
    pub context: Option<PathBuf>,
    /// `-f PATH` (may be outside the context); `None` = `<context>/Dockerfile`.
    pub dockerfile_path: Option<PathBuf>,
    /// The Dockerfile's text when it came from stdin (`-f -` or `kiln build -`).
    pub dockerfile_text: Option<String>,
    /// `--build-arg` (K alone already resolved from the environment; unset ones dropped).
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub no_cache_filter: Vec<String>,
    pub pull: bool,
    pub secrets: Vec<SecretSpec>,
    /// `--ssh` ids (`default`).
    pub ssh: Vec<String>,
    /// `--network` for RUN (`default`, `none`, `host`).
    pub network: Option<String>,
    /// `--jobs`; `None` = 4 per core, at least 8 (see `SolveOptions::default`).
    pub jobs: Option<usize>,
    pub export: ExportSettings,
}

impl BuildRequest {
    /// The Dockerfile's display name and text: stdin text, or the file (`-f` or
    /// `<context>/Dockerfile`).
    pub fn read_dockerfile(&self) -> Result<DockerfileText, BuildError> {
        if let Some(text) = &self.dockerfile_text {
            return Ok(DockerfileText { name: "Dockerfile".into(), text: text.clone() });
        }
        let (path, text) = read_dockerfile(self.dockerfile_path.as_deref(), self.context.as_deref())?;
        let name = match &self.dockerfile_path {
            Some(given) => given.display().to_string(),
            None => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        Ok(DockerfileText { name, text })
    }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image: ExportedImage,
    pub stats: SolveStats,
    /// Frontend warnings (unused build args, …), `Dockerfile:LINE: message`.
    pub warnings: Vec<String>,
}

/// The Dockerfile of `context` when `-f` is not given: `Dockerfile`, or `dockerfile` when only
/// the lowercase one exists (BuildKit's and docker's fallback).
pub fn default_dockerfile(context: &Path) -> PathBuf {
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if upper.symlink_metadata().is_err() && lower.symlink_metadata().is_ok() { lower } else { upper }
}

/// Reads the Dockerfile: `path` (`-f`, may be outside the context) or the context's
/// ([`default_dockerfile`]).
pub fn read_dockerfile(path: Option<&Path>, context: Option<&Path>) -> Result<(PathBuf, String), BuildError> {
    let path = match (path, context) {
        (Some(path), _) => path.to_owned(),
        (None, Some(context)) => default_dockerfile(context),
        (None, None) => PathBuf::from("Dockerfile"),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|source| BuildError::ReadDockerfile { path: path.clone(), source })?;
    Ok((path, text))
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// Solves `definition` (whose target is `target`) with `runner` over the store's build cache,
/// then writes the image (the frontend's `image` config completed for the target's layers) and
/// every output. Progress events go to `progress`; a failed step becomes
/// [`BuildError::Step`] with its last output lines and Dockerfile lines.
#[allow(clippy::too_many_arguments)]
pub async fn solve_and_export<R>(
    store: &Store,
    runner: Arc<R>,
    definition: &Definition,
    target: &Input,
    image: ImageConfiguration,
    solve_options: &SolveOptions,
    export: &ExportSettings,
    dockerfile: &DockerfileText,
    progress: ProgressSender,
    cancel: CancellationToken,
) -> Result<BuildOutcome, BuildError>
where
    R: OpRunner,
    R::Ref: StoreRef + LayerChain,
{
    let index = cache::buildcache::BuildCache::open(store).map_err(ExportError::from)?;
    let solver = Solver::new(runner, Arc::new(StoreCache::new(index)));

    // Interpose on the progress stream to keep every step's last output lines.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        let mut tails = LogTails::default();
        while let Some(event) = rx.recv().await {
            tails.observe(&event);
            progress.send(&event.vertex, event.kind);
        }
        tails
    });
    let mut solve_definition = definition.clone();
    solve_definition.targets = vec![target.clone()];
    let solved = solver.solve(&solve_definition, solve_options, ProgressSender::new(tx), cancel).await;
    drop(solver);
    let tails = forward.await.unwrap_or_default();

    let solved = match solved {
        Ok(solved) => solved,
        Err(SolveError::Canceled) => return Err(BuildError::Canceled),
        Err(SolveError::Vertex { digest, name, source }) => {
            let lines = tails.lines(&digest);
            let error = error_chain(&source);
            return Err(match definition.vertex(&digest) {
                Some(vertex) => BuildError::Step(Box::new(StepFailure::new(
                    vertex,
                    error,
                    lines,
                    &dockerfile.name,
                    &dockerfile.text,
                ))),
                None => BuildError::Step(Box::new(StepFailure {
                    name,
                    error,
                    log_tail: lines,
                    dockerfile_name: dockerfile.name.clone(),
                    snippet: Vec::new(),
                })),
            });
        }
        Err(other) => return Err(BuildError::Solve(Box::new(other))),
    };
    let layers = solved.outputs.first().and_then(|r| r.layers()).ok_or(ExportError::NotLayers)?.to_vec();

    let store = store.clone();
    let export = export.clone();
    let stats = solved.stats;
    tokio::task::spawn_blocking(move || -> Result<BuildOutcome, BuildError> {
        let config = finalize_config(image, &layers, &export.image);
        let image = write_image_with(&store, config, &export.image.config_extras, &layers)?;
        for out in &export.outputs {
            output::write(&store, &image, out, &export.names)?;
        }
        Ok(BuildOutcome { image, stats, warnings: Vec::new() })
    })
    .await
    .map_err(BuildError::ExportTask)?
}

/// The whole build: Dockerfile and `.dockerignore` (`<Dockerfile>.dockerignore` next to the
/// Dockerfile, else `<context>/.dockerignore`) → parse → lower ([`crate::frontend`]) → solve
/// with the runner over the store's cache → export ([`solve_and_export`]).
pub async fn build(
    request: BuildRequest,
    store: Store,
    registry: Option<registry::Client>,
    progress: ProgressSender,
    cancel: CancellationToken,
) -> Result<BuildOutcome, BuildError> {
    let dockerfile = request.read_dockerfile()?;
    let parsed = parser::parse(&dockerfile.text).map_err(|error| BuildError::Parse {
        name: dockerfile.name.clone(),
        text: dockerfile.text.clone(),
        error,
    })?;
    let excludes = match &request.context {
        Some(context) => crate::contenthash::ignore::load_ignore_patterns(
            context,
            request.dockerfile_path.as_deref().or(Some(&default_dockerfile(context))),
        )?,
        None => Vec::new(),
    };
    let network = match request.network.as_deref() {
        None | Some("default") => None,
        Some("none") => Some(crate::graph::NetworkMode::None),
        Some("host") => Some(crate::graph::NetworkMode::Host),
        Some(other) => return Err(BuildError::Network(other.to_owned())),
    };
    let epoch = request.export.image.source_date_epoch;
    let context = match &request.context {
        Some(dir) => Some(
            dir.canonicalize().map_err(|source| BuildError::ReadDockerfile { path: dir.clone(), source })?,
        ),
        None => None,
    };
    let (os, arch) = cache::host_platform();
    let host = crate::graph::Platform { os: os.to_string(), architecture: arch.to_string(), variant: None };
    let options = FrontendOptions {
        build_args: request.build_args.iter().cloned().collect(),
        target: request.target.clone(),
        target_platform: host.clone(),
        build_platform: host,
        labels: request.export.image.labels.iter().cloned().collect(),
        no_cache: request.no_cache,
        no_cache_filter: request.no_cache_filter.clone(),
        source_date_epoch: epoch,
        context_name: "context".into(),
        context_shared_key: context.as_ref().map(|c| c.display().to_string()).unwrap_or_default(),
        dockerignore: excludes.clone(),
        secrets: request.secrets.iter().map(|s| s.id.clone()).collect(),
        ssh: request.ssh.iter().map(|s| s.split('=').next().unwrap_or_default().to_owned()).collect(),
        network: network.unwrap_or_default(),
    };
    let executor = executor::Executor::new(store.root().join("run"))
        .map_err(|e| BuildError::Runner(crate::scheduler::RunError::failed(e)))?;
    let runner_options = runner_options(&request, context.map(|path| (path, excludes)))?;
    let runner = Arc::new(
        crate::runner::Runner::new(store.clone(), executor, registry, runner_options)
            .map_err(|e| BuildError::Runner(e.into()))?,
    );
    let resolver = RunnerResolver { runner: runner.clone() };
    let plan = crate::frontend::lower(&parsed, &options, &resolver)
        .await
        .map_err(|error| BuildError::Frontend { text: dockerfile.text.clone(), error })?;
    let mut export = request.export.clone();
    if let Ok(serde_json::Value::Object(extras)) = serde_json::to_value(&plan.docker) {
        export.image.config_extras.extend(extras);
    }
    runner
        .reset_cache_mounts(&plan.definition, request.no_cache)
        .map_err(|e| BuildError::Runner(e.into()))?;
    let mut solve_options = SolveOptions { no_cache: request.no_cache, ..SolveOptions::default() };
    if let Some(jobs) = request.jobs {
        solve_options.jobs = jobs.max(1);
    }
    let outcome = solve_and_export(
        &store,
        runner.clone(),
        &plan.definition,
        &plan.target,
        plan.image,
        &solve_options,
        &export,
        &dockerfile,
        progress,
        cancel,
    )
    .await;
    let mut outcome = outcome?;
    outcome.warnings = plan
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(line) => format!("{}:{line}: {}", dockerfile.name, w.message),
            None => w.message.clone(),
        })
        .collect();
    Ok(outcome)
}

/// The frontend's image resolver over the runner (store, then registry).
struct RunnerResolver {
    runner: Arc<crate::runner::Runner>,
}

impl ImageResolver for RunnerResolver {
    async fn resolve(
        &self,
        reference: &str,
        platform: &crate::graph::Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| ResolveError {
            reference: reference.to_owned(),
            source,
        };
        // The runner finds stored images by name, not by `name@digest` (a pinned reference of a
        // tagged local image would be pulled): hand the frontend the normalised name; the runner
        // mixes the manifest digest into the cache key (`resolve_source`).
        let name = registry::Reference::parse(reference)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| reference.to_owned());
        let base = self.runner.resolve_image(&name, Some(platform)).await.map_err(|e| fail(Box::new(e)))?;
        let content = self.runner.store().content();
        let manifest: oci_spec::image::ImageManifest =
            content.read_json(base.manifest.digest()).map_err(|e| fail(Box::new(e)))?;
        let bytes = content.read(manifest.config().digest()).map_err(|e| fail(Box::new(e)))?;
        ResolvedImage::from_config_json(name, &bytes).map_err(|e| fail(Box::new(e)))
    }
}

/// The runner's settings from the request: secrets, SSH sockets, the context, network, pull.
fn runner_options(
    request: &BuildRequest,
    context: Option<(PathBuf, Vec<String>)>,
) -> Result<crate::runner::RunnerOptions, BuildError> {
    use crate::runner::{LocalDirOptions, RunnerOptions, SecretValue};
    let mut options = RunnerOptions {
        source_date_epoch: request.export.image.source_date_epoch,
        pull: if request.pull { registry::PullPolicy::Always } else { registry::PullPolicy::Missing },
        // Layers stay plain tars in the store; pushes and OCI exports compress them
        // (`Store::distributable`), so no build waits for gzip.
        compression: cache::Compression::None,
        ..RunnerOptions::default()
    };
    for secret in &request.secrets {
        let value = match &secret.source {
            SecretSource::File(path) => SecretValue::File(path.clone()),
            SecretSource::Env(var) => match std::env::var_os(var) {
                Some(value) => SecretValue::Bytes(value.into_encoded_bytes()),
                None => continue,
            },
        };
        options.secrets.insert(secret.id.clone(), value);
    }
    for ssh in &request.ssh {
        let (id, path) = match ssh.split_once('=') {
            Some((id, path)) => (id.to_owned(), Some(PathBuf::from(path))),
            None => (ssh.clone(), std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from)),
        };
        if let Some(path) = path {
            options.ssh.insert(id, path);
        }
    }
    if let Some((path, excludes)) = context {
        options.locals.insert("context".into(), LocalDirOptions { path, excludes });
    }
    options.network = match request.network.as_deref() {
        Some("host") => executor::NetworkMode::Host,
        Some("none") => executor::NetworkMode::None,
        _ => executor::NetworkMode::Default,
    };
    Ok(options)
}

#[cfg(test)]
mod tests;

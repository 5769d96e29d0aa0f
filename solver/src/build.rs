//! The build: a solved definition's target → an image in the store → outputs.
//!
//! [`Build`] is the orchestration after lowering: [`Build::solve_and_export`] solves a
//! [`Planned`] definition with a runner over the store's build cache ([`StoreCache`]), keeps the
//! last output lines of every step (for [`failure::StepFailure`]), and exports the target's
//! layer chain with the frontend's image config ([`crate::export`]). [`build`] takes the CLI's
//! typed [`BuildRequest`] through it all. `kiln build` reads the Dockerfile and `.dockerignore`
//! ([`read_dockerfile`], [`crate::contenthash::ignore::load_ignore_patterns`]), parses, lowers
//! with the frontend and calls this with the runner.

pub mod contexts;
pub mod failure;
mod orchestrate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::Store;
use oci_spec::image::Digest;
use tokio_util::sync::CancellationToken;

use crate::export::output::Output;
use crate::export::{ExportError, ExportedImage, ImageOptions};
use crate::frontend::{FrontendError, FrontendOptions, ImageResolver, ResolveError, ResolvedImage};
use crate::graph::Definition;
use crate::progress::ProgressSender;
use crate::remotecache::export::Exported;
use crate::remotecache::import::FetchStats;
use crate::remotecache::{CacheExport, CacheImport, RemoteCache, SolvedVertex};
use crate::scheduler::{SolveError, SolveOptions, SolveStats};
use failure::StepFailure;
use parser::lint::{Finding, LintViolation, Linter};

pub use crate::entitlements::{EntitlementError, Entitlements};
pub use crate::storecache::LayerChain;
pub use orchestrate::{Build, Planned};

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
    #[error("the progress forwarding task failed")]
    ProgressTask(#[source] tokio::task::JoinError),
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
    /// A step needs an entitlement `--allow` did not give.
    #[error(transparent)]
    Entitlement(#[from] EntitlementError),
    #[error("invalid --platform {0:?} (expected os/arch[/variant], e.g. linux/amd64)")]
    Platform(String),
    #[error("cannot fetch the image's layers")]
    Materialize(#[source] crate::scheduler::RunError),
    #[error("--cache-from")]
    CacheImport(#[source] Box<crate::remotecache::RemoteCacheError>),
    #[error("cannot export the build cache to {location}")]
    CacheExport {
        location: String,
        #[source]
        source: Box<crate::remotecache::RemoteCacheError>,
    },
    /// `check=…;error=true` and a build check found something (the findings are rendered
    /// before the error).
    #[error("{violation}")]
    Lint { findings: Vec<Finding>, violation: LintViolation },
    #[error(transparent)]
    BuildContext(#[from] contexts::ContextError),
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
    /// `--cache-to type=inline`: the final stage's cache records go into the image config.
    pub inline_cache: bool,
}

/// The Dockerfile as read for a build, for error snippets.
#[derive(Debug, Clone, Default)]
pub struct DockerfileText {
    /// Display name (`Dockerfile`, or the `-f` path as given).
    pub name: String,
    pub text: String,
}

/// One `--secret`, its value resolved by the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    /// `None` when it names an environment variable that is not set: a step that mounts it
    /// fails with `secret ID: not found`.
    pub value: Option<crate::runner::SecretValue>,
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
    pub secrets: Vec<Secret>,
    /// `--ssh` as given: `ID` or `ID=SOCKET` (`default`).
    pub ssh: Vec<String>,
    /// The client's `$SSH_AUTH_SOCK`: the agent of an `--ssh ID` without a socket, and of
    /// `RUN --mount=type=ssh` when no `--ssh default` is given.
    pub ssh_auth_sock: Option<PathBuf>,
    /// `--network` for RUN (`default`, `none`, `host`), parsed by the CLI.
    pub network: crate::graph::NetworkMode,
    /// `--jobs`; `None` = 4 per core, at least 8 (see `SolveOptions::default`).
    pub jobs: Option<usize>,
    /// `--platform` (one `os/arch[/variant]`, or `local`); `None` = the host's.
    pub platform: Option<String>,
    pub export: ExportSettings,
    /// `--cache-from`.
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to`.
    pub cache_to: Vec<CacheExport>,
    /// `--check` / `--call check`: run the build checks over every stage, build nothing.
    pub check: bool,
    /// `--build-context NAME=VALUE`, in order (see [`contexts`]).
    pub build_contexts: Vec<(String, String)>,
    /// `--allow` (`--network=host` allows `network.host` itself, as buildx does).
    pub entitlements: Entitlements,
    /// `--ulimit`, `--shm-size`, `--cgroup-parent`, `--add-host`: every RUN's sandbox.
    pub sandbox: crate::graph::ExecSandbox,
}

/// What `kiln build --check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub dockerfile: DockerfileText,
    /// The findings, by line.
    pub findings: Vec<Finding>,
    /// The error that stopped the checks (a Dockerfile that cannot be lowered).
    pub error: Option<BuildError>,
    /// With `error=true`: the rules that were violated.
    pub violation: Option<LintViolation>,
}

/// The result of [`build`]: an image, or with [`BuildRequest::check`] the checks' report.
#[derive(Debug)]
pub enum Built {
    Image(Box<BuildOutcome>),
    Checked(Box<CheckReport>),
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
    /// Frontend warnings (unused build args, …), `Dockerfile:LINE: message`, and cache
    /// import/export warnings.
    pub warnings: Vec<String>,
    /// Build-check findings, by line.
    pub findings: Vec<Finding>,
    /// Every solved vertex's cache key and results (what `--cache-to` exports).
    pub solved: HashMap<Digest, SolvedVertex>,
    /// `--cache-from`: records imported and what was fetched from the imports.
    pub cache_import: Option<CacheImportReport>,
    /// `--cache-to`: what each export wrote.
    pub cache_exports: Vec<(String, Exported)>,
}

/// What `--cache-from` brought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheImportReport {
    pub records: usize,
    pub fetched: FetchStats,
    /// Cache mounts filled from the import.
    pub mounts: usize,
}

/// The ids of the `RUN --mount=type=cache` directories `definition` uses.
fn cache_mount_ids(definition: &Definition) -> Vec<String> {
    let mut ids: Vec<String> = definition
        .vertices
        .iter()
        .filter_map(|vertex| match &vertex.op {
            crate::graph::Op::Exec(exec) => Some(exec.mounts.iter()),
            _ => None,
        })
        .flatten()
        .filter_map(|mount| match &mount.kind {
            crate::graph::MountKind::Cache(cache) => Some(cache.id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
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

/// The whole build: Dockerfile and `.dockerignore` (`<Dockerfile>.dockerignore` next to the
/// Dockerfile, else `<context>/.dockerignore`) → parse → lower ([`crate::frontend`]) → solve
/// with the runner over the store's cache → export ([`Build::solve_and_export`]).
pub async fn build(
    request: BuildRequest,
    store: Store,
    registry: Option<registry::Client>,
    progress: ProgressSender,
    cancel: CancellationToken,
) -> Result<Built, BuildError> {
    let dockerfile = request.read_dockerfile()?;
    internal_step(
        &progress,
        &format!("[internal] load build definition from {}", dockerfile.name),
        Some(format!("transferring dockerfile: {}B done", dockerfile.text.len())),
    );
    let parse_error =
        |error| BuildError::Parse { name: dockerfile.name.clone(), text: dockerfile.text.clone(), error };
    let raw = parser::parse_raw(&dockerfile.text).map_err(parse_error)?;
    let parsed = parser::parse(&dockerfile.text).map_err(parse_error)?;
    let build_args: std::collections::BTreeMap<String, String> = request.build_args.iter().cloned().collect();
    let check = crate::frontend::check_config(&parsed, &build_args)
        .map_err(|error| BuildError::Frontend { text: dockerfile.text.clone(), error })?;
    let mut linter = Linter::new(check.clone());
    parser::lint::check_file(&raw, &mut linter);
    let excludes = match &request.context {
        Some(context) => crate::contenthash::ignore::load_ignore_patterns(
            context,
            request.dockerfile_path.as_deref().or(Some(&default_dockerfile(context))),
        )?,
        None => Vec::new(),
    };
    if request.context.is_some() {
        internal_step(
            &progress,
            "[internal] load .dockerignore",
            Some(format!("{} patterns", excludes.len())),
        );
    }
    let epoch = request.export.image.source_date_epoch;
    let context = match &request.context {
        Some(dir) => Some(
            dir.canonicalize().map_err(|source| BuildError::ReadDockerfile { path: dir.clone(), source })?,
        ),
        None => None,
    };
    let (os, arch) = cache::host_platform();
    let host = crate::graph::Platform { os: os.to_string(), architecture: arch.to_string(), variant: None };
    let named = contexts::named_contexts(&request.build_contexts, &store)?;
    let options = FrontendOptions {
        build_args,
        target: request.target.clone(),
        target_platform: match request.platform.as_deref() {
            None | Some("local") => host.clone(),
            Some(value) => crate::frontend::parse_platform(value)
                .ok_or_else(|| BuildError::Platform(value.to_owned()))?,
        },
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
        network: request.network,
        check: check.clone(),
        all_stages: request.check,
        named_contexts: named.frontend,
        sandbox: request.sandbox.clone(),
    };
    let executor = executor::Executor::new(store.root().join("run"))
        .map_err(|e| BuildError::Runner(crate::scheduler::RunError::failed(e)))?;
    let mut runner_options = runner_options(&request, context.map(|path| (path, excludes)))?;
    runner_options.locals.extend(named.locals);
    let mut cache_warnings = Vec::new();
    let remote = if request.cache_from.is_empty() {
        None
    } else {
        let (remote, warnings) = RemoteCache::load(&request.cache_from, registry.as_ref(), &store)
            .await
            .map_err(|e| BuildError::CacheImport(Box::new(e)))?;
        cache_warnings.extend(warnings);
        Some(Arc::new(remote))
    };
    runner_options.remote_cache = remote.clone();
    if let Some(compression) = request.cache_to.iter().find_map(|export| export.compression) {
        runner_options.compression = compression;
    }
    let registry_for_export = registry.clone();
    let runner = Arc::new(
        crate::runner::Runner::new(store.clone(), executor, registry, runner_options)
            .map_err(|e| BuildError::Runner(e.into()))?,
    );
    for (reference, manifest) in &named.images {
        runner.add_image(reference.clone(), manifest).map_err(|e| BuildError::Runner(e.into()))?;
    }
    let resolver =
        RunnerResolver { runner: runner.clone(), progress: progress.clone(), announced: Default::default() };
    let (plan, findings) = crate::frontend::lower_with_findings(&parsed, &options, &resolver).await;
    linter.extend(findings);
    let mut findings = linter.into_findings();
    // by line; parse-time findings first on a line, as BuildKit reports them first
    findings.sort_by_key(|f| f.lines.map_or(0, |(start, _)| start));
    let violation = parser::lint::violation(&check, &findings);
    if request.check {
        let error = plan.err().map(|error| BuildError::Frontend { text: dockerfile.text.clone(), error });
        return Ok(Built::Checked(Box::new(CheckReport { dockerfile, findings, error, violation })));
    }
    let plan = plan.map_err(|error| BuildError::Frontend { text: dockerfile.text.clone(), error })?;
    if let Some(violation) = violation {
        return Err(BuildError::Lint { findings, violation });
    }
    entitlements(&request).check_definition(&plan.definition)?;
    let mut export = request.export.clone();
    export.image.source_date_epoch = export.image.source_date_epoch.or(plan.source_date_epoch);
    export.inline_cache |=
        request.cache_to.iter().any(|to| to.location == crate::remotecache::CacheLocation::Inline);
    if let Ok(serde_json::Value::Object(extras)) = serde_json::to_value(&plan.docker) {
        export.image.config_extras.extend(extras);
    }
    runner
        .reset_cache_mounts(&plan.definition, request.no_cache)
        .map_err(|e| BuildError::Runner(e.into()))?;
    // cache mounts an import carries fill the ones this store lacks (a fresh CI machine)
    let mut restored_mounts = 0;
    if let Some(remote) = &remote {
        let (restored, warnings) = remote.restore_mounts(&store, &cache_mount_ids(&plan.definition)).await;
        restored_mounts = restored.len();
        cache_warnings.extend(warnings);
    }
    let mut solve_options = SolveOptions { no_cache: request.no_cache, ..SolveOptions::default() };
    if let Some(jobs) = request.jobs {
        solve_options.jobs = jobs.max(1);
    }
    let orchestration = Build::new(store.clone(), runner.clone(), remote.clone())?;
    let planned = Planned {
        definition: &plan.definition,
        target: &plan.target,
        image: &plan.image,
        solve_options: &solve_options,
        export: &export,
        dockerfile: &dockerfile,
    };
    // A blob of an imported cache that cannot be fetched intact is refused: the build is
    // solved again, and the steps whose records used it run (what already ran is cached).
    let mut outcome;
    loop {
        let refused_before = remote.as_ref().map_or(0, |r| r.refused().len());
        outcome = orchestration.solve_and_export(planned, progress.clone(), cancel.clone()).await;
        let Some(remote) = remote.as_ref().filter(|_| outcome.is_err()) else { break };
        let refused = remote.refused();
        if refused.len() == refused_before {
            break;
        }
        for digest in &refused[..] {
            let warning =
                format!("cache blob {digest} refused (missing or corrupt): running the steps that need it");
            if !cache_warnings.contains(&warning) {
                cache_warnings.push(warning);
            }
        }
    }
    let mut outcome = outcome?;
    outcome.findings = findings;
    outcome.warnings = plan
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(line) => format!("{}:{line}: {}", dockerfile.name, w.message),
            None => w.message.clone(),
        })
        .collect();
    let mut definition = plan.definition.clone();
    definition.targets = vec![plan.target.clone()];
    for to in request.cache_to.iter().filter(|to| to.location != crate::remotecache::CacheLocation::Inline) {
        let mut config =
            crate::remotecache::records_to_export(&definition, &outcome.solved, to.mode).finish();
        config.set_checksums(runner.chain_checksums());
        if to.cache_mounts {
            let mounts = orchestration.index.mounts();
            let ids = cache_mount_ids(&plan.definition);
            let layers = tokio::task::spawn_blocking(move || {
                ids.into_iter()
                    .filter_map(|id| match mounts.export_layer(&id) {
                        Ok(layer) => layer.map(|layer| Ok((id, layer))),
                        Err(err) => Some(Err(err)),
                    })
                    .collect::<Result<Vec<_>, cache::Error>>()
            })
            .await
            .map_err(|e| BuildError::Runner(crate::scheduler::RunError::failed(e)))?
            .map_err(ExportError::from)?;
            config.mounts = layers
                .into_iter()
                .map(|(id, layer)| crate::remotecache::format::ConfigMount { id, blob: layer.descriptor })
                .collect();
        }
        let location = to.location.to_string();
        match crate::remotecache::export::export(
            to,
            &config,
            &store,
            registry_for_export.as_ref(),
            remote.as_deref(),
        )
        .await
        {
            Ok(exported) => outcome.cache_exports.push((location, exported)),
            Err(source) if to.ignore_error => {
                cache_warnings.push(format!("cache export to {location} failed: {}", source.chain()))
            }
            Err(source) => return Err(BuildError::CacheExport { location, source: Box::new(source) }),
        }
    }
    if let Some(remote) = &remote {
        outcome.cache_import = Some(CacheImportReport {
            records: remote.len(),
            fetched: remote.stats(),
            mounts: restored_mounts,
        });
        orchestration.remember_imported(&definition, &outcome.solved).await;
    }
    outcome.warnings.extend(cache_warnings);
    Ok(Built::Image(Box::new(outcome)))
}

/// A step of BuildKit's `[internal]` kind (reading the definition, loading metadata) as one
/// started/log/done sequence of the progress stream.
fn internal_step(progress: &ProgressSender, name: &str, log: Option<String>) {
    use crate::progress::{EventKind, LogStream};
    let vertex = cache::sha256_digest(format!("kiln-internal {name}").as_bytes());
    progress.send(&vertex, EventKind::Started { name: name.to_owned() });
    if let Some(line) = log {
        progress.send(
            &vertex,
            EventKind::Log { stream: LogStream::Stdout, data: format!("{line}\n").into_bytes() },
        );
    }
    progress.send(&vertex, EventKind::Completed);
}

/// The frontend's image resolver over the runner (store, then registry); each reference shows
/// once as BuildKit's `[internal] load metadata for …` step.
struct RunnerResolver {
    runner: Arc<crate::runner::Runner>,
    progress: ProgressSender,
    announced: std::sync::Mutex<std::collections::HashSet<String>>,
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
        let first = self.announced.lock().map(|mut seen| seen.insert(name.clone())).unwrap_or(false);
        if first {
            internal_step(&self.progress, &format!("[internal] load metadata for {name}"), None);
        }
        ResolvedImage::from_config_json(name, &bytes).map_err(|e| fail(Box::new(e)))
    }
}

/// The runner's settings from the request: secrets, SSH sockets, the context, network, pull.
fn runner_options(
    request: &BuildRequest,
    context: Option<(PathBuf, Vec<String>)>,
) -> Result<crate::runner::RunnerOptions, BuildError> {
    use crate::runner::{LocalDirOptions, RunnerOptions};
    let mut options = RunnerOptions {
        source_date_epoch: request.export.image.source_date_epoch,
        pull: if request.pull { registry::PullPolicy::Always } else { registry::PullPolicy::Missing },
        // Layers stay plain tars in the store; pushes and OCI exports compress them
        // (`Store::distributable`), so no build waits for gzip.
        compression: cache::Compression::None,
        ..RunnerOptions::default()
    };
    for secret in &request.secrets {
        if let Some(value) = &secret.value {
            options.secrets.insert(secret.id.clone(), value.clone());
        }
    }
    for ssh in &request.ssh {
        let (id, path) = match ssh.split_once('=') {
            Some((id, path)) => (id.to_owned(), Some(PathBuf::from(path))),
            None => (ssh.clone(), request.ssh_auth_sock.clone()),
        };
        if let Some(path) = path {
            options.ssh.insert(id, path);
        }
    }
    // `RUN --mount=type=ssh` (id `default`) reaches the client's agent without `--ssh` too
    if let Some(agent) = &request.ssh_auth_sock {
        options.ssh.entry("default".to_owned()).or_insert_with(|| agent.clone());
    }
    if let Some((path, excludes)) = context {
        options.locals.insert("context".into(), LocalDirOptions { path, excludes });
    }
    options.network = request.network;
    options.entitlements = entitlements(request);
    Ok(options)
}

/// `--allow`, plus `network.host` when `--network=host` asks for it (buildx adds it).
fn entitlements(request: &BuildRequest) -> Entitlements {
    let mut allowed = request.entitlements;
    allowed.network_host |= request.network == crate::graph::NetworkMode::Host;
    allowed
}

#[cfg(test)]
mod tests;

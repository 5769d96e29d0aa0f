//! `kiln build [OPTIONS] CONTEXT`: build an image from a Dockerfile, with `docker buildx build`'s
//! flags. The library does the work ([`solver::build`]); this file turns flags into a
//! [`BuildRequest`], renders progress and errors, pushes, and writes `--iidfile` /
//! `--metadata-file`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;
use parser::NetworkMode;
use registry::Reference;
use solver::build::{BuildError, BuildRequest, Built, ExportSettings, Secret};
use solver::export::output::Output;
use solver::export::{ImageOptions, metadata_json};
use solver::progress::ProgressSender;
use solver::remotecache::{CacheExport, CacheImport};
use solver::runner::SecretValue;
use tokio_util::sync::CancellationToken;

use super::client;
use super::images::open_store;
use crate::GlobalOptions;
use crate::progress::transfer::{Direction, Renderer};
use crate::progress::{self, failure};

/// `--progress` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `tty` where the live view works (a terminal of known width, `TERM` not `dumb`, not
    /// `CI`), else `plain`.
    Auto,
    Tty,
    Plain,
    Rawjson,
    Quiet,
}

/// Arguments of `kiln build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name of the Dockerfile (default: `CONTEXT/Dockerfile`); `-` reads it from stdin.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Build-time variable `K=V`, or `K` to take the value from the environment; repeatable.
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages; repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Always look for newer versions of base images.
    #[arg(long)]
    pub pull: bool,
    /// Image metadata `K=V`; repeatable.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`; repeatable.
    #[arg(long = "secret", value_name = "id=ID[,src=PATH|env=VAR]")]
    pub secrets: Vec<String>,
    /// SSH agent socket for `RUN --mount=type=ssh` (`default`); repeatable.
    #[arg(long = "ssh", value_name = "default")]
    pub ssh: Vec<String>,
    /// Network mode for RUN instructions (`default`, `none`, `host`).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Progress output (default: `$BUILDKIT_PROGRESS`, else `auto`).
    #[arg(long, value_enum)]
    pub progress: Option<ProgressMode>,
    /// Print only the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (JSON) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Output: `type=local,dest=DIR`, `type=tar|oci|docker,dest=FILE|-`,
    /// `type=image,name=REF,push=true`, or a directory; repeatable.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to its registry (like `--output type=image,push=true`).
    #[arg(long)]
    pub push: bool,
    /// Accepted for compatibility: the image store is the default output.
    #[arg(long)]
    pub load: bool,
    /// Target platform (one); RUN steps need the host's platform (no emulation).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Timestamp (seconds since the epoch) for the image and its layers, for reproducible builds.
    #[arg(long = "source-date-epoch", env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<i64>,
    /// Maximum number of steps running at once (default: 4 per core, at least 8).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Import a build cache: `type=registry,ref=REF` or `type=local,src=DIR[,tag=T|digest=D]`
    /// (`,ignore-error=true`); a bare `REF` means `type=registry,ref=REF`; repeatable.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export the build cache: `type=registry,ref=REF` or `type=local,dest=DIR[,tag=T]`, with
    /// `mode=min|max`, `compression=gzip|zstd`, `ignore-error=true`; repeatable.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Run the build checks instead of building (`--call check`).
    #[arg(long)]
    pub check: bool,
    /// What to do: `build` (default) or `check` (the build checks, nothing is built).
    #[arg(long, value_name = "build|check")]
    pub call: Option<String>,
    /// Extra named context `NAME=VALUE`: a directory, `docker-image://REF` or
    /// `oci-layout://PATH[:TAG|@DIGEST]`; used by `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` instead of the stage or image NAME; repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// `--allow`, `--ulimit`, `--shm-size`, `--add-host`, `--cgroup-parent`, attestations.
    #[command(flatten)]
    pub sandbox: super::build_flags::SandboxFlags,
    /// buildx flags kiln does not implement (hidden; each fails with a clear message).
    #[command(flatten)]
    pub unsupported: UnsupportedFlags,
    /// The build context: a directory, or `-`: stdin holds a context archive (tar, possibly
    /// compressed) or a Dockerfile (then there is no context).
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

/// `K=V` or `K` (value from the environment; dropped when unset, like docker).
fn parse_build_args(args: &[String]) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|arg| match arg.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(arg).ok().map(|v| (arg.clone(), v)),
        })
        .collect()
}

fn parse_labels(labels: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            None if !l.is_empty() => Ok((l.clone(), String::new())),
            _ => bail!("invalid label {l:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    /// `src=PATH` (or `type=file`).
    File(PathBuf),
    /// `env=VAR` (or `type=env`).
    Env(String),
}

/// One `--secret id=…,src=…|env=…` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretSpec {
    id: String,
    source: SecretSource,
}

impl SecretSpec {
    /// The secret with its value: the file to read when a step mounts it, or the environment
    /// variable's value now (`None` when it is not set).
    fn resolve(self) -> Secret {
        let value = match self.source {
            SecretSource::File(path) => Some(SecretValue::File(path)),
            SecretSource::Env(var) => {
                std::env::var_os(var).map(|value| SecretValue::Bytes(value.into_encoded_bytes()))
            }
        };
        Secret { id: self.id, value }
    }
}

/// `id=ID,src=PATH` | `id=ID,env=VAR` | `id=ID` (env var ID, else file) — buildx's forms,
/// including `type=file|env` and `source=`/`target`-less shorthands.
fn parse_secret(spec: &str) -> anyhow::Result<SecretSpec> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut kind = None;
    for field in spec.split(',') {
        let (key, value) = field.split_once('=').with_context(|| format!("invalid --secret {spec:?}"))?;
        match key {
            "id" => id = Some(value.to_owned()),
            "src" | "source" => src = Some(value.to_owned()),
            "env" => env = Some(value.to_owned()),
            "type" => kind = Some(value.to_owned()),
            other => bail!("invalid --secret {spec:?}: unknown key {other:?}"),
        }
    }
    let id = id.or_else(|| src.clone()).or_else(|| env.clone());
    let Some(id) = id.filter(|i| !i.is_empty()) else { bail!("invalid --secret {spec:?}: missing id=") };
    let source = match (kind.as_deref(), src, env) {
        (_, Some(path), None) => SecretSource::File(PathBuf::from(path)),
        (_, None, Some(var)) => SecretSource::Env(var),
        (Some("env"), None, None) => SecretSource::Env(id.clone()),
        (Some("file") | None, None, None) => {
            if std::env::var_os(&id).is_some() && kind.is_none() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
        (Some(other), None, None) => bail!("invalid --secret {spec:?}: unknown type {other:?}"),
        (_, Some(_), Some(_)) => bail!("invalid --secret {spec:?}: give either src= or env=, not both"),
    };
    Ok(SecretSpec { id, source })
}

/// One target platform per build: steps that run (RUN) must be for the host's platform (kiln has
/// no emulation; the frontend says so at the step), while stages that only copy or are pinned
/// to `$BUILDPLATFORM` build for any platform.
fn check_platform(platform: Option<&str>) -> anyhow::Result<()> {
    let Some(wanted) = platform else { return Ok(()) };
    if wanted.contains(',') {
        bail!(
            "--platform {wanted:?}: kiln builds one platform at a time (multi-platform builds are not supported yet)"
        );
    }
    Ok(())
}

/// The build's target platform as `os/arch[/variant]` (`--platform`, else the host's).
fn target_platform(platform: Option<&str>) -> String {
    match platform {
        Some(platform) if platform != "local" => platform.to_owned(),
        _ => {
            let (os, arch) = cache::host_platform();
            format!("{os}/{arch}")
        }
    }
}

/// The outputs and the fully qualified names to write, and the references to push.
struct Plan {
    outputs: Vec<Output>,
    names: Vec<String>,
    push: Vec<Reference>,
}

fn plan_outputs(args: &BuildArgs) -> anyhow::Result<Plan> {
    let mut outputs = Vec::new();
    let mut refs = Vec::new();
    for tag in &args.tags {
        refs.push(Reference::parse(tag).with_context(|| format!("invalid tag {tag:?}"))?);
    }
    let mut push = args.push;
    for spec in &args.outputs {
        let mut output = Output::parse(spec)?;
        // an archive's own `name=` names it (fully qualified, as -t names are)
        if let Output::Oci { names, .. } | Output::Docker { names, .. } = &mut output {
            for name in names.iter_mut() {
                *name = Reference::parse(name)
                    .with_context(|| format!("invalid image name {name:?}"))?
                    .to_string();
            }
        }
        if let Output::Image { names, push: p } = &output {
            push |= *p;
            for name in names {
                refs.push(Reference::parse(name).with_context(|| format!("invalid image name {name:?}"))?);
            }
        }
        outputs.push(output);
    }
    if outputs.is_empty() || (args.push && !outputs.iter().any(|o| matches!(o, Output::Image { .. }))) {
        outputs.push(Output::Image { names: vec![], push: args.push });
    }
    if push && refs.is_empty() {
        bail!("--push needs a name: give -t NAME or --output type=image,name=NAME");
    }
    let stdout_outputs = outputs.iter().filter(|o| o.uses_stdout()).count();
    if stdout_outputs > 1 {
        bail!("only one output can write to stdout");
    }
    let names = refs.iter().map(ToString::to_string).collect();
    Ok(Plan { outputs, names, push: if push { refs } else { Vec::new() } })
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the Dockerfile from stdin")?;
    Ok(text)
}

/// `--build-context NAME=VALUE` (buildx's message for a value without `=`).
fn parse_build_contexts(values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|value| match value.split_once('=') {
            Some((name, context)) if !name.is_empty() && !context.is_empty() => {
                Ok((name.to_owned(), context.to_owned()))
            }
            _ => bail!("invalid context value: {value}, expected key=value"),
        })
        .collect()
}

/// A build context unpacked from stdin into the store's temp directory, removed when dropped.
struct UnpackedContext(PathBuf);

impl Drop for UnpackedContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

enum StdinContext {
    Archive(UnpackedContext),
    Dockerfile(String),
}

/// `kiln build -`: stdin is a context archive (tar, possibly compressed: unpacked) or a
/// Dockerfile, told apart by its first bytes as buildx does.
fn stdin_context(store: &cache::Store) -> anyhow::Result<StdinContext> {
    let mut stdin = std::io::stdin();
    let mut head = Vec::with_capacity(512);
    (&mut stdin).take(512).read_to_end(&mut head).context("cannot read stdin")?;
    if !solver::build::contexts::is_archive(&head) {
        let mut rest = Vec::new();
        stdin.read_to_end(&mut rest).context("cannot read the Dockerfile from stdin")?;
        head.extend(rest);
        let text = String::from_utf8(head).context("the Dockerfile on stdin is not UTF-8")?;
        return Ok(StdinContext::Dockerfile(text));
    }
    let dir = store.temp_path("context");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = UnpackedContext(dir);
    solver::build::contexts::unpack_context(std::io::Cursor::new(head).chain(stdin), &dir.0)?;
    Ok(StdinContext::Archive(dir))
}

fn request(
    args: &BuildArgs,
    plan: &Plan,
    store: &cache::Store,
) -> anyhow::Result<(BuildRequest, Option<UnpackedContext>)> {
    check_platform(args.platform.as_deref())?;
    let secrets = args.secrets.iter().map(|s| parse_secret(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let secrets = secrets.into_iter().map(SecretSpec::resolve).collect();
    let mut unpacked = None;
    let (context, dockerfile_path, dockerfile_text) = match (args.context.as_str(), args.file.as_deref()) {
        ("-", Some("-")) => bail!("cannot read both the context and the Dockerfile from stdin"),
        ("-", file) => match stdin_context(store)? {
            // a tar context: the Dockerfile is its own, or `-f` (a client path, as buildx)
            StdinContext::Archive(dir) => {
                let path = dir.0.clone();
                unpacked = Some(dir);
                (Some(path), file.map(PathBuf::from), None)
            }
            StdinContext::Dockerfile(_) if file.is_some() => {
                bail!("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles")
            }
            StdinContext::Dockerfile(text) => (None, None, Some(text)),
        },
        (dir, Some("-")) => (Some(PathBuf::from(dir)), None, Some(read_stdin()?)),
        (dir, file) => (Some(PathBuf::from(dir)), file.map(PathBuf::from), None),
    };
    if let Some(dir) = &context
        && !dir.is_dir()
    {
        bail!("the build context {} is not a directory", dir.display());
    }
    let request = BuildRequest {
        context,
        dockerfile_path,
        dockerfile_text,
        build_args: parse_build_args(&args.build_args),
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        pull: args.pull,
        secrets,
        ssh: args.ssh.clone(),
        ssh_auth_sock: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
        network: match &args.network {
            Some(value) => NetworkMode::parse(value).context("invalid --network")?,
            None => NetworkMode::Default,
        },
        jobs: args.jobs,
        platform: args.platform.clone(),
        cache_from: args
            .cache_from
            .iter()
            .map(|spec| CacheImport::parse(spec))
            .collect::<Result<_, _>>()
            .context("invalid --cache-from")?,
        cache_to: args
            .cache_to
            .iter()
            .map(|spec| CacheExport::parse(spec))
            .collect::<Result<_, _>>()
            .context("invalid --cache-to")?,
        check: false,
        build_contexts: parse_build_contexts(&args.build_contexts)?,
        entitlements: args.sandbox.entitlements()?,
        sandbox: args.sandbox.sandbox()?,
        export: ExportSettings {
            image: ImageOptions {
                labels: parse_labels(&args.labels)?,
                source_date_epoch: args.source_date_epoch,
                annotations: super::build_flags::parse_annotations(
                    &args.sandbox.annotation,
                    &target_platform(args.platform.as_deref()),
                )?,
                ..ImageOptions::default()
            },
            outputs: plan.outputs.clone(),
            names: plan.names.clone(),
            // set by the build from `--cache-to type=inline`
            inline_cache: false,
        },
    };
    Ok((request, unpacked))
}

/// Runs the build itself.
async fn execute(
    request: BuildRequest,
    store: cache::Store,
    registry: Option<registry::Client>,
    progress: ProgressSender,
    cancel: CancellationToken,
) -> Result<Built, BuildError> {
    solver::build::build(request, store, registry, progress, cancel).await
}

pub async fn run(global: &GlobalOptions, args: BuildArgs) -> anyhow::Result<ExitCode> {
    if let Some(flag) = args.unsupported.first_given() {
        anyhow::bail!("`--{flag}` is not supported by kiln yet");
    }
    let check = match args.call.as_deref() {
        None | Some("build") => args.check,
        Some("check") => true,
        Some(other) => bail!("`--call={other}` is not supported by kiln yet (build or check)"),
    };
    let plan = plan_outputs(&args)?;
    let store = open_store(global)?;
    let (mut request, _unpacked_context) = request(&args, &plan, &store)?;
    request.check = check;
    let mode = super::progress_mode::choose(
        args.progress,
        args.quiet,
        &super::progress_mode::Environment::current(),
    );
    // machine-readable and quiet modes carry no human chatter; quiet prints the ID like `-q`
    let quiet = args.quiet || matches!(mode, progress::ProgressMode::Quiet | progress::ProgressMode::RawJson);
    let print_id = args.quiet || mode == progress::ProgressMode::Quiet;
    let (progress, events) = solver::progress::channel();
    let renderer = progress::render(mode, events);
    let cancel = CancellationToken::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let registry = client(global).ok();
    // the export is a step of the stream (quiet shows only failed steps)
    let export_progress = (mode != progress::ProgressMode::Quiet).then(|| progress.clone());
    let result = execute(request, store.clone(), registry, progress, cancel).await;
    ctrl_c.abort();
    if let (Some(sender), Ok(Built::Image(outcome))) = (export_progress, &result) {
        report_export(&sender, outcome, &plan, mode == progress::ProgressMode::RawJson);
    }
    let _ = renderer.await;
    let outcome = match result {
        Ok(Built::Image(outcome)) => outcome,
        Ok(Built::Checked(report)) => {
            return Ok(super::build_check::print_report(&report, &args.file_name()));
        }
        Err(BuildError::Lint { findings, violation }) => {
            if mode != progress::ProgressMode::RawJson {
                eprint!("{}", super::build_check::summary(&findings));
            }
            eprintln!("ERROR: {violation}");
            return Ok(ExitCode::FAILURE);
        }
        Err(BuildError::Step(failure)) => {
            eprintln!("{}", failure::block(&failure));
            eprintln!("ERROR: failed to solve: {}", crate::report::chain_text(&failure.error));
            return Ok(ExitCode::FAILURE);
        }
        Err(BuildError::Entitlement(error)) => {
            eprintln!("ERROR: failed to solve: {error}");
            return Ok(ExitCode::FAILURE);
        }
        Err(BuildError::Frontend { text, error }) => {
            eprintln!("{}", crate::report::frontend_error(&error, &text, &args.file_name()));
            return Ok(ExitCode::FAILURE);
        }
        Err(BuildError::Parse { text, error, .. }) => {
            return Err(crate::report::SourceError::new(error, text).into());
        }
        Err(other) => return Err(other.into()),
    };

    for warning in outcome.warnings.iter().filter(|_| mode != progress::ProgressMode::RawJson) {
        eprintln!("WARNING: {warning}");
    }
    if mode != progress::ProgressMode::RawJson {
        eprint!("{}", super::build_check::summary(&outcome.findings));
    }
    if !quiet {
        if let Some(import) = &outcome.cache_import {
            eprintln!(
                "cache import: {} records, fetched {} layers ({} bytes){}",
                import.records,
                import.fetched.blobs,
                import.fetched.bytes,
                match import.mounts {
                    0 => String::new(),
                    n => format!(", {n} cache mounts restored"),
                }
            );
        }
        for (location, exported) in &outcome.cache_exports {
            eprintln!(
                "exported cache to {location}: {} records, {} layers ({})",
                exported.records,
                exported.layers,
                exported.manifest.digest()
            );
        }
    }
    if !plan.push.is_empty() {
        let client = client(global)?;
        for reference in &plan.push {
            let renderer = Renderer::new(Direction::Push, quiet);
            let pushed = registry::push_manifest(
                &client,
                &store,
                &outcome.image.manifest,
                reference,
                &renderer.progress(),
            )
            .await;
            renderer.finish();
            let pushed = pushed?;
            if !quiet {
                eprintln!("pushed {} ({})", reference.familiar(), pushed.manifest.digest());
            }
        }
    }
    let id = outcome.image.config_digest.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let json = serde_json::to_vec_pretty(&metadata_json(&outcome.image, &plan.names))?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let stdout_used = plan.outputs.iter().any(Output::uses_stdout);
    if print_id && !stdout_used {
        println!("{id}");
    }
    // the GC policy (<root>/gc.toml): only builds that wrote new content can outgrow it
    if outcome.stats.executed > 0 {
        let global = global.clone();
        match tokio::task::spawn_blocking(move || super::builder::collect_after_build(&global, &store)).await
        {
            Ok(Ok(Some((report, keep)))) if !quiet && mode != progress::ProgressMode::RawJson => eprintln!(
                "pruned build cache to {}: {} records, {} reclaimed",
                super::images::human_size(keep),
                report.removed.len(),
                super::images::human_size(report.reclaimed)
            ),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!("build cache GC failed: {err:#}"),
            Err(err) => tracing::warn!("build cache GC failed: {err}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `docker buildx build` flags kiln does not support yet: accepted by the parser only to fail
/// with "`--X` is not supported by kiln yet" instead of clap's "unexpected argument".
#[derive(Debug, Default, clap::Args)]
pub struct UnsupportedFlags {
    #[arg(long, hide = true)]
    builder: Vec<String>,
}

impl UnsupportedFlags {
    /// The first unsupported flag given, if any.
    fn first_given(&self) -> Option<&'static str> {
        let lists = [("builder", &self.builder)];
        lists.into_iter().find(|(_, values)| !values.is_empty()).map(|(flag, _)| flag)
    }
}

/// The export as a step of the progress stream, as BuildKit shows it (`#9 exporting to image`,
/// `#9 writing image sha256:… done`, `#9 naming to … done`, `#9 DONE`); with `rawjson` the
/// frontend's warnings are lines of its log too (no plain-text line may appear there). The
/// image's digest names the vertex.
fn report_export(
    sender: &ProgressSender,
    outcome: &solver::build::BuildOutcome,
    plan: &Plan,
    warnings: bool,
) {
    use solver::progress::{EventKind, LogStream};
    let vertex = &outcome.image.config_digest;
    let stored = plan.outputs.iter().any(|o| matches!(o, Output::Image { .. }));
    let name = match plan.outputs.first() {
        Some(Output::Local { .. }) if !stored => "exporting to client directory",
        Some(Output::Tar { .. }) if !stored => "exporting to client tarball",
        Some(Output::Oci { .. }) if !stored => "exporting to oci image format",
        Some(Output::Docker { .. }) if !stored => "exporting to docker image format",
        _ => "exporting to image",
    };
    sender.send(vertex, EventKind::Started { name: name.into() });
    let mut log = String::new();
    if warnings {
        log.extend(outcome.warnings.iter().map(|warning| format!("WARNING: {warning}\n")));
    }
    match plan.outputs.first() {
        Some(Output::Local { .. } | Output::Tar { .. }) if !stored => log.push_str("copying files done\n"),
        _ => log.push_str(&format!("writing image {vertex} done\n")),
    }
    // names go to the image store only (`-o type=local -t NAME` stores nothing, as buildx)
    if stored {
        for name in &plan.names {
            log.push_str(&format!("naming to {name} done\n"));
        }
    }
    sender.send(vertex, EventKind::Log { stream: LogStream::Stdout, data: log.into_bytes() });
    sender.send(vertex, EventKind::Completed);
}

impl BuildArgs {
    /// The Dockerfile's name in messages.
    fn file_name(&self) -> String {
        match self.file.as_deref() {
            None | Some("-") => "Dockerfile".into(),
            Some(path) => path.to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_like_buildx() {
        let table = [
            ("id=a,src=/x", SecretSpec { id: "a".into(), source: SecretSource::File("/x".into()) }),
            ("id=a,env=V", SecretSpec { id: "a".into(), source: SecretSource::Env("V".into()) }),
            ("id=a,type=env", SecretSpec { id: "a".into(), source: SecretSource::Env("a".into()) }),
            ("src=/p/f", SecretSpec { id: "/p/f".into(), source: SecretSource::File("/p/f".into()) }),
        ];
        for (spec, expected) in table {
            assert_eq!(parse_secret(spec).unwrap(), expected, "{spec}");
        }
        for bad in ["", "id=", "id=a,bogus=1", "id=a,src=x,env=y", "junk"] {
            assert!(parse_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_build_args() {
        assert_eq!(
            parse_labels(&["a=b=c".into(), "k".into()]).unwrap(),
            vec![("a".into(), "b=c".into()), ("k".into(), String::new())]
        );
        assert!(parse_labels(&["=x".into()]).is_err());
        let args = parse_build_args(&["A=1".into(), "PATH".into(), "KILN_SURELY_UNSET_VAR".into()]);
        assert_eq!(args[0], ("A".into(), "1".into()));
        assert_eq!(args[1].0, "PATH");
        assert_eq!(args.len(), 2);
    }

    #[test]
    fn one_platform_at_a_time() {
        check_platform(Some("linux/s390x")).unwrap();
        check_platform(None).unwrap();
        let err = check_platform(Some("linux/amd64,linux/arm64")).unwrap_err().to_string();
        assert!(err.contains("one platform at a time"), "{err}");
    }
}

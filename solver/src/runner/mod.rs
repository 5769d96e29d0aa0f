//! The op runner: executes build-graph vertices for real on the store and the sandbox.
//!
//! [`Runner`] implements [`OpRunner`] with [`BuildRef`] results:
//! - `Source::Image` → the image's layer chain (from the store, pulled with the `registry`
//!   crate when missing or with `--pull`); [`Runner::resolve_image`] pins a reference and
//!   returns its config (for the frontend).
//! - `Source::Local` → the live directory ([`BuildRef::Local`], never cached).
//! - `Source::Http` → a blob in the content store ([`BuildRef::Blob`]), checksum verified.
//! - `Exec` → the root mount's chain plus one layer diffed from the sandbox's overlay upper
//!   (no layer when the process changed nothing, like BuildKit); cache, tmpfs, secret, ssh and
//!   bind mounts ([`exec`]).
//! - `File` → the base chain plus one layer made by performing the actions on a snapshot the
//!   snapshotter makes reachable on the host (module `fileop`).
//! - `Merge` → the inputs' chains concatenated.
//!
//! Every temporary mount and directory is undone by a drop guard, on success, error and
//! cancellation alike.
//!
//! The runner mounts nothing itself: root filesystems come from a [`cache::snapshotter::Snapshotter`]
//! (prepare, view, commit) and processes run through an [`executor::ProcessExecutor`].
//! [`Runner::new`] wires the real ones (the store's overlay snapshots, the sandbox);
//! [`Runner::with_seams`] takes any, e.g. the directory snapshotter and recording executor of
//! the root-free tests (`testkit::fakes`, used by `solver/tests/runner_fakes.rs`).
//!
//! ```ignore
//! let executor = executor::Executor::new(store.root().join("run"))?;
//! let mut options = RunnerOptions::default();
//! options.locals.insert("context".into(), LocalDirOptions { path: context_dir, excludes: dockerignore });
//! options.secrets.insert("token".into(), SecretValue::File("/run/token".into()));
//! let runner = Arc::new(Runner::new(store.clone(), executor, Some(registry_client), options)?);
//! let base = runner.resolve_image("busybox:1.36", Some(&platform)).await?; // frontend: pinned + config
//! let solved = Solver::new(runner, Arc::new(StoreCache::new(index))).solve(&definition, &opts, progress, cancel).await?;
//! let layers: &[CachedLayer] = solved.outputs[0].layers().expect("a filesystem"); // exporter
//! ```
//!
//! A failed `RUN` is [`RunnerError::Process`]([`ProcessFailed`]): the command, the exit code and
//! the last [`exec::TAIL_LINES`] output lines; its display is BuildKit's
//! `process "/bin/sh -c make" did not complete successfully: exit code: 2`.

mod copy;
pub mod exec;
mod fileop;
mod fsutil;
mod reuse;
mod source;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cache::buildcache::{BuildCache, CacheResult, CachedLayer};
use cache::snapshotter::{OverlaySnapshotter, SnapshotError, Snapshotter};
use cache::{LayerRef, Store};
use executor::ProcessExecutor;
use oci_spec::image::{Descriptor, Digest};
use tokio_util::sync::CancellationToken;

use crate::contenthash::{ContentHasher, Selection};
use crate::graph::{Op, SourceOp};
use crate::scheduler::{OpRunner, RunError, RunJob};
use crate::storecache::StoreRef;

pub use exec::ProcessFailed;
pub use fileop::FileOpError;
pub use source::ResolvedBase;

/// Annotation of a [`BuildRef::Blob`] descriptor holding the file name of a download.
pub const ANNOTATION_FILENAME: &str = "org.opencontainers.image.title";
/// Annotation of a [`BuildRef::Blob`] descriptor holding the file mode (octal) of a download.
pub const ANNOTATION_MODE: &str = "dev.kiln.http.mode";
/// Annotation of a [`BuildRef::Blob`] descriptor holding the download's `Last-Modified` time
/// (seconds since the epoch); without it the file gets the epoch, as BuildKit.
pub const ANNOTATION_MTIME: &str = "dev.kiln.http.mtime";

/// A layer chain, bottom layer first (empty = scratch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChainRef {
    pub layers: Vec<CachedLayer>,
}

impl LayerChainRef {
    /// The layers as the store's [`LayerRef`]s.
    pub fn layer_refs(&self) -> Vec<LayerRef> {
        self.layers.iter().map(|l| LayerRef { blob: l.blob.clone(), diff_id: l.diff_id.clone() }).collect()
    }

    /// The chain ID of the top layer (`None` for scratch).
    pub fn chain_id(&self) -> Option<Digest> {
        let diff_ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        cache::chain_ids(&diff_ids).pop()
    }
}

/// A directory of the client (the build context or a named context), with its `.dockerignore`
/// patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDir {
    pub name: String,
    pub path: PathBuf,
    pub excludes: Vec<String>,
    /// Key of the per-file checksum cache (the local source's `shared_key`).
    pub shared_key: String,
}

/// The result of a vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildRef {
    /// A filesystem as a layer chain in the store (cacheable).
    Layers(Arc<LayerChainRef>),
    /// A live client directory (never cached; its checksums are).
    Local(Arc<LocalDir>),
    /// A downloaded file in the content store (`ADD <url>`); the descriptor's annotations
    /// [`ANNOTATION_FILENAME`] and [`ANNOTATION_MODE`] give its name and mode.
    Blob(Arc<Descriptor>),
}

impl BuildRef {
    /// The scratch filesystem.
    pub fn scratch() -> BuildRef {
        BuildRef::Layers(Arc::new(LayerChainRef { layers: Vec::new() }))
    }

    /// A filesystem made of `layers` (bottom first).
    pub fn from_layers(layers: Vec<CachedLayer>) -> BuildRef {
        BuildRef::Layers(Arc::new(LayerChainRef { layers }))
    }

    /// The layers of a filesystem result, bottom first (empty = scratch); `None` for a local
    /// directory or a blob. This is what the exporter turns into the image's rootfs.
    pub fn layers(&self) -> Option<&[CachedLayer]> {
        match self {
            BuildRef::Layers(chain) => Some(&chain.layers),
            BuildRef::Local(_) | BuildRef::Blob(_) => None,
        }
    }
}

impl crate::storecache::LayerChain for BuildRef {
    fn layers(&self) -> Option<&[CachedLayer]> {
        BuildRef::layers(self)
    }
}

impl StoreRef for BuildRef {
    fn to_cache(&self) -> Option<CacheResult> {
        match self {
            BuildRef::Layers(chain) => Some(CacheResult::Layers { layers: chain.layers.clone() }),
            BuildRef::Blob(descriptor) => {
                Some(CacheResult::Blob { descriptor: Box::new((**descriptor).clone()) })
            }
            BuildRef::Local(_) => None,
        }
    }

    fn from_cache(result: &CacheResult) -> Option<Self> {
        Some(match result {
            CacheResult::Layers { layers } => BuildRef::from_layers(layers.clone()),
            CacheResult::Blob { descriptor } => BuildRef::Blob(Arc::new((**descriptor).clone())),
        })
    }
}

/// A `--secret` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    Bytes(Vec<u8>),
    /// Read when a RUN mounts it.
    File(PathBuf),
}

/// How the runner builds (the parts of `kiln build`'s flags it needs).
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// `--secret`: id → value.
    pub secrets: HashMap<String, SecretValue>,
    /// `--ssh`: id → agent socket path (the build puts the client's `$SSH_AUTH_SOCK` under
    /// `default` unless `--ssh default=PATH` names another).
    pub ssh: HashMap<String, PathBuf>,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes.
    pub source_date_epoch: Option<i64>,
    /// Local directories by name (`context`, named contexts); the excludes of a local source
    /// op are added to these.
    pub locals: HashMap<String, LocalDirOptions>,
    /// The network of `RUN --network=default` (`--network` of `kiln build`).
    pub network: executor::NetworkMode,
    /// `--allow`: what exec ops may ask for (`RUN --security=insecure`, `--network=host`).
    pub entitlements: crate::entitlements::Entitlements,
    /// When to ask the registry for base images (`--pull` = `Always`).
    pub pull: registry::PullPolicy,
    /// Compression of the layer blobs the build stores (the build uses `None`: layers are
    /// compressed when they leave the machine, see `cache::Store::distributable`).
    pub compression: cache::Compression,
    /// `--cache-from`: where layers of results matched from an imported cache are fetched
    /// from, when a step needs them.
    pub remote_cache: Option<Arc<crate::remotecache::RemoteCache>>,
}

/// One local directory given to the build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalDirOptions {
    pub path: PathBuf,
    /// `.dockerignore` patterns.
    pub excludes: Vec<String>,
}

/// Errors of the runner (wrapped in [`RunError::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("store error")]
    Store(#[from] cache::Error),
    #[error("sandbox error")]
    Executor(#[from] executor::Error),
    #[error("snapshot error")]
    Snapshot(#[source] SnapshotError),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error("invalid image reference {reference:?}")]
    Reference {
        reference: String,
        #[source]
        source: registry::ReferenceError,
    },
    #[error("local directory {0:?} was not given to the build")]
    UnknownLocal(String),
    #[error("{kind} op: input {index} is missing")]
    MissingInput { kind: &'static str, index: u32 },
    #[error("{what} must be a filesystem, not {actual}")]
    NotFilesystem { what: String, actual: &'static str },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// BuildKit's text: `secret token: not found`.
    #[error("secret {0}: not found")]
    SecretNotFound(String),
    #[error("no SSH agent socket for id {0:?}: pass --ssh {0} (or set SSH_AUTH_SOCK)")]
    SshNotFound(String),
    #[error("cannot download {url}")]
    Download {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot download {url}: server answered {status}")]
    DownloadStatus { url: String, status: u16 },
    #[error("invalid checksum {0:?} (expected sha256:<64 hex digits>)")]
    InvalidChecksum(String),
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch { url: String, expected: String, actual: String },
    #[error(transparent)]
    Process(#[from] ProcessFailed),
    #[error(transparent)]
    File(#[from] fileop::FileOpError),
    #[error("background task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot fetch a layer from the imported build cache")]
    RemoteCache(#[source] Box<crate::remotecache::RemoteCacheError>),
    #[error(transparent)]
    Entitlement(#[from] crate::entitlements::EntitlementError),
    #[error("invalid --ulimit {0:?}: unknown resource")]
    UnknownUlimit(String),
}

impl From<SnapshotError> for RunnerError {
    /// A store error stays one (as when the runner reached the store itself).
    fn from(error: SnapshotError) -> RunnerError {
        match error {
            SnapshotError::Store(error) => RunnerError::Store(error),
            other => RunnerError::Snapshot(other),
        }
    }
}

impl From<crate::remotecache::RemoteCacheError> for RunnerError {
    fn from(error: crate::remotecache::RemoteCacheError) -> RunnerError {
        RunnerError::RemoteCache(Box::new(error))
    }
}

impl RunnerError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RunnerError {
        let path = path.into();
        move |source| RunnerError::Io { op, path, source }
    }
}

impl From<RunnerError> for RunError {
    fn from(error: RunnerError) -> RunError {
        RunError::failed(error)
    }
}

fn ref_kind(r: &BuildRef) -> &'static str {
    match r {
        BuildRef::Layers(_) => "a layer chain",
        BuildRef::Local(_) => "a local directory",
        BuildRef::Blob(_) => "a downloaded file",
    }
}

/// Executes ops on a store with a snapshotter and a process executor. Cheap to share
/// (`Arc<Runner>`).
#[derive(Debug)]
pub struct Runner {
    store: Store,
    build_cache: BuildCache,
    executor: Arc<dyn ProcessExecutor>,
    snapshotter: Arc<dyn Snapshotter>,
    registry: Option<registry::Client>,
    /// The HTTP client settings (TLS, insecure hosts, timeouts) for `ADD <url>` and pulls: the
    /// registry client, or one with default options when there is none.
    http: registry::Client,
    options: RunnerOptions,
    /// Resolved base images by reference (so `run` uses what `resolve_source` saw).
    images: Mutex<HashMap<String, Arc<ResolvedBase>>>,
    /// Downloads by URL (an unpinned URL is downloaded once per build).
    downloads: Mutex<HashMap<String, Arc<Descriptor>>>,
    /// Content hashers of local directories by name (their per-file caches stay warm).
    hashers: Mutex<HashMap<String, Arc<ContentHasher>>>,
    /// Checksums of layer chains: (chain ID, selection) → digest.
    chain_sums: Mutex<HashMap<(Digest, String), Digest>>,
}

impl Runner {
    /// A runner building on `store` (its overlay snapshots), running RUNs in `executor`'s
    /// sandboxes, pulling with `registry` (`None`: base images must be in the store).
    pub fn new(
        store: Store,
        executor: executor::Executor,
        registry: Option<registry::Client>,
        options: RunnerOptions,
    ) -> Result<Runner, RunnerError> {
        let snapshotter = OverlaySnapshotter::new(store.clone(), Arc::new(fsutil::HostOverlayMounter));
        Runner::with_seams(store, Arc::new(executor), Arc::new(snapshotter), registry, options)
    }

    /// A runner over any process executor and snapshotter (layers and blobs still live in
    /// `store`'s content store, the build cache in its index).
    pub fn with_seams(
        store: Store,
        executor: Arc<dyn ProcessExecutor>,
        snapshotter: Arc<dyn Snapshotter>,
        registry: Option<registry::Client>,
        options: RunnerOptions,
    ) -> Result<Runner, RunnerError> {
        let build_cache = BuildCache::open(&store)?;
        let http = match &registry {
            Some(client) => client.clone(),
            None => registry::Client::new(registry::ClientOptions::default())?,
        };
        Ok(Runner {
            store,
            build_cache,
            executor,
            snapshotter,
            registry,
            http,
            options,
            images: Mutex::new(HashMap::new()),
            downloads: Mutex::new(HashMap::new()),
            hashers: Mutex::new(HashMap::new()),
            chain_sums: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    fn input<'a>(
        job_inputs: &'a [BuildRef],
        kind: &'static str,
        index: u32,
    ) -> Result<&'a BuildRef, RunnerError> {
        job_inputs.get(index as usize).ok_or(RunnerError::MissingInput { kind, index })
    }

    fn chain_of(r: &BuildRef, what: impl FnOnce() -> String) -> Result<Arc<LayerChainRef>, RunnerError> {
        match r {
            BuildRef::Layers(chain) => Ok(chain.clone()),
            other => Err(RunnerError::NotFilesystem { what: what(), actual: ref_kind(other) }),
        }
    }

    /// Fetches the layers of `chain` the store lacks (results matched from `--cache-from`).
    async fn ensure_chain(&self, chain: &LayerChainRef) -> Result<(), RunnerError> {
        let content = self.store.content();
        for layer in &chain.layers {
            if content.contains(layer.blob.digest()) {
                continue;
            }
            match &self.options.remote_cache {
                Some(remote) => remote.ensure_blob(&self.store, &layer.blob).await?,
                None => {
                    return Err(crate::remotecache::RemoteCacheError::BlobUnknown(
                        layer.blob.digest().clone(),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Every content checksum of a layer chain computed (or imported) so far:
    /// (chain ID, selection as JSON, checksum), for `--cache-to`.
    pub fn chain_checksums(&self) -> Vec<(Digest, String, Digest)> {
        let Ok(sums) = self.chain_sums.lock() else { return Vec::new() };
        sums.iter().map(|((chain, selection), sum)| (chain.clone(), selection.clone(), sum.clone())).collect()
    }

    async fn run_op(&self, job: &RunJob<BuildRef>) -> Result<Vec<BuildRef>, RunnerError> {
        match &job.vertex.op {
            Op::Source(SourceOp::Scratch) => Ok(vec![BuildRef::scratch()]),
            Op::Source(SourceOp::Image(image)) => {
                let base = self.base_image(image, &job.cancel).await?;
                Ok(vec![BuildRef::from_layers(base.layers.clone())])
            }
            Op::Source(SourceOp::Local(local)) => Ok(vec![BuildRef::Local(Arc::new(self.local_dir(local)?))]),
            Op::Source(SourceOp::Http(http)) => {
                Ok(vec![BuildRef::Blob(self.download(http, &job.cancel).await?)])
            }
            Op::Exec(exec_op) => self.run_exec(job, exec_op).await,
            Op::File(file) => Ok(vec![self.run_file(job, file).await?]),
            Op::Merge(_) => {
                let mut layers = Vec::new();
                for (i, input) in job.inputs.iter().enumerate() {
                    let chain = Self::chain_of(input, || format!("merge input {i}"))?;
                    layers.extend(chain.layers.iter().cloned());
                }
                Ok(vec![BuildRef::from_layers(layers)])
            }
        }
    }

    fn hasher_for(&self, local: &LocalDir) -> Result<Arc<ContentHasher>, RunError> {
        let mut hashers = self.hashers.lock().map_err(|_| poisoned())?;
        if let Some(hasher) = hashers.get(&local.name) {
            return Ok(hasher.clone());
        }
        let hasher = Arc::new(ContentHasher::for_context(
            &self.build_cache,
            &local.path,
            &local.excludes,
            &local.shared_key,
        )?);
        hashers.insert(local.name.clone(), hasher.clone());
        Ok(hasher)
    }

    async fn checksum_ref(
        &self,
        input: &BuildRef,
        selection: &Selection,
        cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        match input {
            BuildRef::Local(local) => {
                let hasher = self.hasher_for(local)?;
                let store = self.store.clone();
                let selection = selection.clone();
                let reference = local.name.clone();
                let sum = tokio::task::spawn_blocking(move || {
                    let sum = hasher
                        .checksum(&selection)
                        .map_err(|source| RunError::ChecksumOf { reference, source })?;
                    hasher.persist(&store)?;
                    Ok::<_, RunError>(sum)
                })
                .await
                .map_err(RunError::failed)??;
                Ok(sum)
            }
            BuildRef::Layers(chain) => {
                let Some(chain_id) = chain.chain_id() else {
                    // Scratch: hash an empty directory (a missing path fails like everywhere).
                    let empty = fsutil::TempDir::new(&self.store, "scratch")?;
                    let hasher = ContentHasher::new(empty.path(), &[])?;
                    return hasher
                        .checksum(selection)
                        .map_err(|source| RunError::ChecksumOf { reference: "scratch".into(), source });
                };
                let reference: String = chain_id.digest().chars().take(12).collect();
                let memo_key = (chain_id, serde_json::to_string(selection).unwrap_or_default());
                if let Some(sum) = self.chain_sums.lock().map_err(|_| poisoned())?.get(&memo_key) {
                    return Ok(sum.clone());
                }
                // An imported cache may know it: then the chain's layers need not be fetched.
                if let Some(sum) =
                    self.options.remote_cache.as_ref().and_then(|r| r.checksum(&memo_key.0, &memo_key.1))
                {
                    self.chain_sums.lock().map_err(|_| poisoned())?.insert(memo_key, sum.clone());
                    return Ok(sum);
                }
                if cancel.is_cancelled() {
                    return Err(RunError::Canceled);
                }
                self.ensure_chain(chain).await?;
                let snapshotter = self.snapshotter.clone();
                let chain = chain.clone();
                let selection = selection.clone();
                let sum = tokio::task::spawn_blocking(move || -> Result<Digest, RunError> {
                    let view = snapshotter.view(&chain.layer_refs()).map_err(RunnerError::from)?;
                    let hasher = ContentHasher::new(view.path(), &[])?;
                    hasher.checksum(&selection).map_err(|source| RunError::ChecksumOf { reference, source })
                })
                .await
                .map_err(RunError::failed)??;
                self.chain_sums.lock().map_err(|_| poisoned())?.insert(memo_key, sum.clone());
                Ok(sum)
            }
            BuildRef::Blob(descriptor) => {
                // A download is one file: its digest, name and mode are its content.
                let mut text = format!(
                    "{}\0{}\0{}",
                    descriptor.digest(),
                    source::blob_filename(descriptor),
                    if selection.include_mode { source::blob_mode(descriptor) } else { 0 }
                );
                // the file's time is part of what is copied (BuildKit keys it too)
                if let Some(mtime) = source::blob_mtime(descriptor) {
                    text.push_str(&format!("\0{mtime}"));
                }
                Ok(cache::sha256_digest(text.as_bytes()))
            }
        }
    }
}

fn poisoned() -> RunError {
    RunError::failed(std::io::Error::other("runner state lock poisoned"))
}

impl OpRunner for Runner {
    type Ref = BuildRef;

    async fn run(&self, job: RunJob<BuildRef>) -> Result<Vec<BuildRef>, RunError> {
        if job.cancel.is_cancelled() {
            return Err(RunError::Canceled);
        }
        // A merge only lists its inputs' layers; every other op reads them.
        if !matches!(job.vertex.op, Op::Merge(_)) {
            for input in &job.inputs {
                if let BuildRef::Layers(chain) = input {
                    self.ensure_chain(chain).await?;
                }
            }
        }
        match self.run_op(&job).await {
            Ok(results) => Ok(results),
            Err(_) if job.cancel.is_cancelled() => Err(RunError::Canceled),
            Err(error) => Err(error.into()),
        }
    }

    async fn checksum(
        &self,
        input: &BuildRef,
        selection: &Selection,
        cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        self.checksum_ref(input, selection, cancel).await
    }

    async fn materialize(&self, result: &BuildRef, _cancel: &CancellationToken) -> Result<(), RunError> {
        if let BuildRef::Layers(chain) = result {
            self.ensure_chain(chain).await?;
        }
        Ok(())
    }

    async fn resolve_source(
        &self,
        op: &SourceOp,
        cancel: &CancellationToken,
    ) -> Result<Option<Digest>, RunError> {
        match op {
            SourceOp::Image(image) if !image.reference.contains('@') => {
                let base = self.base_image(image, cancel).await?;
                Ok(Some(base.manifest.digest().clone()))
            }
            SourceOp::Http(http) if http.checksum.is_none() => {
                let blob = self.download(http, cancel).await?;
                Ok(Some(blob.digest().clone()))
            }
            _ => Ok(None),
        }
    }
}

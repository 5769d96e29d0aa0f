//! The solver: runs a [`Definition`] with a pluggable [`OpRunner`] and [`ResultCache`].
//!
//! - One task per vertex, one execution per vertex digest however many consumers need it.
//! - Per vertex: wait for the inputs, compute the cache key ([`crate::cachekey`]; content
//!   checksums come from [`OpRunner::checksum`]), look the key up ([`ResultCache::load`]) unless
//!   `--no-cache`/`ignore_cache`, otherwise run it ([`OpRunner::run`]) under a semaphore of
//!   `jobs` permits and store the result ([`ResultCache::save`]).
//! - The first failure cancels the [`CancellationToken`] every runner got; vertices waiting for
//!   inputs or permits stop at once, running ones are expected to return promptly. The solve
//!   returns only after every vertex task has finished, so nothing runs after it returns.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use oci_spec::image::Digest;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cachekey::{self, CacheKey, DepKey, InputUse};
use crate::contenthash::{ContentHashError, Selection};
use crate::graph::{Definition, Op, SourceOp, Vertex};
use crate::progress::{EventKind, ProgressSender, VertexLog};

/// An error of a runner or cache, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The op observed cancellation.
    #[error("canceled")]
    Canceled,
    /// Computing a content checksum failed (e.g. a COPY source does not exist).
    #[error("failed to compute cache key: {0}")]
    Checksum(#[from] ContentHashError),
    /// Checksumming the files an op reads from one of its inputs failed (BuildKit's wording, which
    /// users search for: `failed to calculate checksum of ref …: "/x": not found`).
    #[error("failed to compute cache key: failed to calculate checksum of ref {reference}: {source}")]
    ChecksumOf {
        /// Names the input: the context's name, or the short chain ID of a snapshot.
        reference: String,
        #[source]
        source: ContentHashError,
    },
    /// The op itself failed; the source says why (exit code, missing file, …).
    #[error("{0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl RunError {
    /// Wraps any error as an op failure.
    pub fn failed(error: impl std::error::Error + Send + Sync + 'static) -> RunError {
        RunError::Failed(Box::new(error))
    }
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A vertex failed (the first failure of the build).
    #[error("{name}: {source}")]
    Vertex {
        digest: Digest,
        /// The vertex description (or op kind).
        name: String,
        #[source]
        source: RunError,
    },
    /// A runner returned the wrong number of results.
    #[error("{name}: runner returned {got} results for {expected} outputs")]
    OutputCount { name: String, expected: u32, got: usize },
    #[error("cannot compute the cache key of {name}")]
    Key {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// The caller cancelled the build.
    #[error("build canceled")]
    Canceled,
    /// A target names a vertex that is not in the definition.
    #[error("target {0} is not a vertex of the definition")]
    UnknownTarget(Digest),
    /// A vertex task panicked.
    #[error("vertex task for {name} panicked")]
    Panicked { name: String },
}

/// What a runner gets to execute one vertex.
#[derive(Debug)]
pub struct RunJob<R> {
    pub vertex: Arc<Vertex>,
    /// One result per vertex input (`vertex.inputs[i]` → `inputs[i]`).
    pub inputs: Vec<R>,
    /// The cache key of this vertex (e.g. to name snapshots).
    pub key: CacheKey,
    /// Cancelled when the build fails elsewhere or is cancelled: stop promptly and clean up.
    pub cancel: CancellationToken,
    /// Send the op's output here.
    pub log: VertexLog,
}

/// Executes ops. `Ref` is a result (a snapshot, a directory, a layer chain …).
pub trait OpRunner: Send + Sync + 'static {
    type Ref: Clone + Send + Sync + 'static;

    /// Runs one vertex; returns one result per output (`vertex.op.num_outputs()`).
    fn run(&self, job: RunJob<Self::Ref>) -> impl Future<Output = Result<Vec<Self::Ref>, RunError>> + Send;

    /// The content checksum of `selection` inside `input` (see [`crate::contenthash`]).
    fn checksum(
        &self,
        input: &Self::Ref,
        selection: &Selection,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Digest, RunError>> + Send;

    /// For source ops whose definition does not pin their content (an image tag, an HTTP URL
    /// without checksum): a digest of the current content, mixed into the cache key.
    fn resolve_source(
        &self,
        _op: &SourceOp,
        _cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Option<Digest>, RunError>> + Send {
        async { Ok(None) }
    }

    /// Makes a result usable outside the runner (e.g. fetches the layers of a result matched
    /// from a remote cache before the image is exported). The default does nothing.
    fn materialize(
        &self,
        _result: &Self::Ref,
        _cancel: &CancellationToken,
    ) -> impl Future<Output = Result<(), RunError>> + Send {
        async { Ok(()) }
    }
}

/// Finds and stores results by cache key.
pub trait ResultCache<R>: Send + Sync + 'static {
    /// The results stored for `key`, if any.
    fn load(
        &self,
        key: &CacheKey,
        vertex: &Vertex,
    ) -> impl Future<Output = Result<Option<Vec<R>>, RunError>> + Send;
    /// Stores the results of `vertex` under `key`.
    fn save(
        &self,
        key: &CacheKey,
        vertex: &Vertex,
        results: &[R],
    ) -> impl Future<Output = Result<(), RunError>> + Send;

    /// Called after a miss, before running: a guard that keeps other builds (other processes
    /// sharing the store) from computing `key` at the same time. The scheduler looks the key up
    /// again once it holds the guard, so the second build reuses the first one's result.
    /// `None` (the default) means no cross-build locking.
    fn lock(&self, _key: &CacheKey) -> impl Future<Output = Result<Option<KeyGuard>, RunError>> + Send {
        async { Ok(None) }
    }
}

/// Held while a vertex computes its key's result (see [`ResultCache::lock`]).
pub type KeyGuard = Box<dyn std::any::Any + Send + Sync>;

/// An in-process cache (tests, or builds that share one process).
#[derive(Debug)]
pub struct MemoryCache<R> {
    entries: Mutex<HashMap<CacheKey, Vec<R>>>,
}

impl<R> Default for MemoryCache<R> {
    fn default() -> Self {
        MemoryCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<R: Clone> MemoryCache<R> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<R: Clone + Send + Sync + 'static> ResultCache<R> for MemoryCache<R> {
    async fn load(&self, key: &CacheKey, _vertex: &Vertex) -> Result<Option<Vec<R>>, RunError> {
        Ok(self.entries.lock().ok().and_then(|e| e.get(key).cloned()))
    }

    async fn save(&self, key: &CacheKey, _vertex: &Vertex, results: &[R]) -> Result<(), RunError> {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key.clone(), results.to_vec());
        }
        Ok(())
    }
}

/// Solve settings.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Maximum ops running at once (`--jobs`).
    pub jobs: usize,
    /// Ignore cached results everywhere (`--no-cache`); results are still saved.
    pub no_cache: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        // Build steps mostly wait (on processes, sleeps, the network, the disk) rather than
        // compute, and BuildKit runs independent steps without a limit: bounding them by the
        // number of cores would serialise e.g. four `sleep`ing stages on a 2-core machine.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        SolveOptions { jobs: (cores * 4).max(8), no_cache: false }
    }
}

/// Counts of a finished solve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolveStats {
    /// Vertices the runner executed.
    pub executed: usize,
    /// Vertices whose results came from the cache.
    pub cached: usize,
}

/// The results of the targets.
#[derive(Debug, Clone)]
pub struct SolveResult<R> {
    /// One result per [`Definition::targets`] entry.
    pub outputs: Vec<R>,
    /// The cache key of each target's vertex.
    pub keys: Vec<CacheKey>,
    /// Every solved vertex: its cache key and results (for `--cache-to`).
    pub vertices: HashMap<Digest, (CacheKey, Vec<R>)>,
    pub stats: SolveStats,
}

#[derive(Debug)]
struct Done<R> {
    key: CacheKey,
    results: Vec<R>,
}

/// A vertex did not produce results (the reason is in the solve's first error).
#[derive(Debug, Clone, Copy)]
struct NotDone;

type VertexFuture<R> = Shared<BoxFuture<'static, Result<Arc<Done<R>>, NotDone>>>;

/// State shared by the vertex tasks of one solve.
struct SolveState<R: OpRunner, C> {
    runner: Arc<R>,
    cache: Arc<C>,
    options: SolveOptions,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
    progress: ProgressSender,
    first_error: Mutex<Option<SolveError>>,
    executed: AtomicUsize,
    cached: AtomicUsize,
}

impl<R: OpRunner, C> SolveState<R, C> {
    fn fail(&self, error: SolveError) {
        if let Ok(mut slot) = self.first_error.lock()
            && slot.is_none()
        {
            *slot = Some(error);
        }
        self.cancel.cancel();
    }
}

fn vertex_name(vertex: &Vertex) -> String {
    vertex.metadata.description.clone().unwrap_or_else(|| vertex.op.kind().to_owned())
}

/// Solves definitions with one runner and cache.
#[derive(Debug)]
pub struct Solver<R, C> {
    runner: Arc<R>,
    cache: Arc<C>,
}

impl<R: OpRunner, C: ResultCache<R::Ref>> Solver<R, C> {
    pub fn new(runner: Arc<R>, cache: Arc<C>) -> Solver<R, C> {
        Solver { runner, cache }
    }

    /// Builds the targets of `definition`. `cancel` stops the build from outside (Ctrl-C).
    pub async fn solve(
        &self,
        definition: &Definition,
        options: &SolveOptions,
        progress: ProgressSender,
        cancel: CancellationToken,
    ) -> Result<SolveResult<R::Ref>, SolveError> {
        let index = definition.index();
        for target in &definition.targets {
            if !index.contains_key(&target.digest) {
                return Err(SolveError::UnknownTarget(target.digest.clone()));
            }
        }
        let shared = Arc::new(SolveState {
            runner: self.runner.clone(),
            cache: self.cache.clone(),
            options: options.clone(),
            permits: Arc::new(Semaphore::new(options.jobs.max(1))),
            cancel: cancel.child_token(),
            progress,
            first_error: Mutex::new(None),
            executed: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
        });
        let mut futures: HashMap<Digest, VertexFuture<R::Ref>> = HashMap::new();
        for vertex in &definition.vertices {
            let inputs: Vec<(VertexFuture<R::Ref>, u32)> = vertex
                .inputs
                .iter()
                .filter_map(|input| futures.get(&input.digest).map(|f| (f.clone(), input.output)))
                .collect();
            if inputs.len() != vertex.inputs.len() {
                // Definitions are topologically ordered; a builder-made one always is.
                return Err(SolveError::UnknownTarget(vertex.digest.clone()));
            }
            let vertex = Arc::new(vertex.clone());
            let task = tokio::spawn(solve_vertex(shared.clone(), vertex.clone(), inputs));
            let name = vertex_name(&vertex);
            let shared_for_panic = shared.clone();
            let future = async move {
                match task.await {
                    Ok(result) => result,
                    Err(_) => {
                        shared_for_panic.fail(SolveError::Panicked { name });
                        Err(NotDone)
                    }
                }
            }
            .boxed()
            .shared();
            futures.insert(vertex.digest.clone(), future);
        }
        // Wait for every task, not only the targets: nothing may run after we return.
        let all: Vec<_> = futures.values().cloned().collect();
        futures::future::join_all(all).await;
        if let Some(error) = shared.first_error.lock().ok().and_then(|mut e| e.take()) {
            return Err(error);
        }
        if cancel.is_cancelled() {
            return Err(SolveError::Canceled);
        }
        let mut outputs = Vec::new();
        let mut keys = Vec::new();
        for target in &definition.targets {
            let done = match futures.get(&target.digest).and_then(|f| f.peek().cloned()) {
                Some(Ok(done)) => done,
                _ => return Err(SolveError::Canceled),
            };
            let Some(result) = done.results.get(target.output as usize) else {
                return Err(SolveError::UnknownTarget(target.digest.clone()));
            };
            outputs.push(result.clone());
            keys.push(done.key.clone());
        }
        let vertices = futures
            .iter()
            .filter_map(|(digest, future)| match future.peek() {
                Some(Ok(done)) => Some((digest.clone(), (done.key.clone(), done.results.clone()))),
                _ => None,
            })
            .collect();
        let stats = SolveStats {
            executed: shared.executed.load(Ordering::Relaxed),
            cached: shared.cached.load(Ordering::Relaxed),
        };
        Ok(SolveResult { outputs, keys, vertices, stats })
    }
}

async fn solve_vertex<R: OpRunner, C: ResultCache<R::Ref>>(
    shared: Arc<SolveState<R, C>>,
    vertex: Arc<Vertex>,
    inputs: Vec<(VertexFuture<R::Ref>, u32)>,
) -> Result<Arc<Done<R::Ref>>, NotDone> {
    let name = vertex_name(&vertex);
    let reports = vertex.metadata.description.is_some();
    let digest = vertex.digest.clone();
    let report = |kind: EventKind| {
        if reports {
            shared.progress.send(&digest, kind);
        }
    };
    // Whether `Started` was reported: a failure before the run (a missing COPY source) reports
    // it first, so renderers know the step's name.
    let started = std::sync::atomic::AtomicBool::new(false);
    let fail = |source: RunError| {
        // After cancellation, whatever a runner returns is a consequence of it.
        if shared.cancel.is_cancelled() {
            report(EventKind::Canceled);
        } else {
            if !started.swap(true, Ordering::Relaxed) {
                report(EventKind::Started { name: name.clone() });
            }
            report(EventKind::Failed { error: error_chain(&source) });
            shared.fail(SolveError::Vertex { digest: digest.clone(), name: name.clone(), source });
        }
        NotDone
    };

    // Inputs.
    let mut parents = Vec::with_capacity(inputs.len());
    for (future, output) in inputs {
        let done = tokio::select! {
            done = future => done?,
            () = shared.cancel.cancelled() => return Err(NotDone),
        };
        parents.push((done, output));
    }

    // Cache key.
    let uses = cachekey::input_uses(&vertex.op, parents.len());
    let mut deps = Vec::with_capacity(parents.len());
    for ((done, output), usage) in parents.iter().zip(uses) {
        match usage {
            InputUse::Whole => deps.push(DepKey::Parent { key: done.key.clone(), output: *output }),
            InputUse::Selections(selections) => {
                let Some(input) = done.results.get(*output as usize) else {
                    return Err(NotDone);
                };
                let mut sums = Vec::with_capacity(selections.len());
                for selection in &selections {
                    let sum = tokio::select! {
                        sum = shared.runner.checksum(input, selection, &shared.cancel) => sum,
                        () = shared.cancel.cancelled() => Err(RunError::Canceled),
                    };
                    match sum {
                        Ok(sum) => sums.push(sum),
                        Err(err) => return Err(fail(err)),
                    }
                }
                deps.push(DepKey::Content(sums));
            }
        }
    }
    let source_digest = match &vertex.op {
        Op::Source(source) => match shared.runner.resolve_source(source, &shared.cancel).await {
            Ok(digest) => digest,
            Err(err) => return Err(fail(err)),
        },
        _ => None,
    };
    let key = match cachekey::compute(&vertex.op, &deps, source_digest.as_ref()) {
        Ok(key) => key,
        Err(source) => {
            shared.fail(SolveError::Key { name: name.clone(), source });
            return Err(NotDone);
        }
    };

    // Cache lookup.
    let expected = vertex.op.num_outputs();
    if !shared.options.no_cache && !vertex.metadata.ignore_cache {
        match shared.cache.load(&key, &vertex).await {
            Ok(Some(results)) if results.len() == expected as usize => {
                shared.cached.fetch_add(1, Ordering::Relaxed);
                report(EventKind::Cached { name: name.clone() });
                return Ok(Arc::new(Done { key, results }));
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(vertex = %name, error = %err, "build cache lookup failed, running the op")
            }
        }
    }

    // Cross-build lock, then a second look: another build may have just produced the result.
    let mut guard = None;
    if !shared.options.no_cache && !vertex.metadata.ignore_cache {
        let locked = tokio::select! {
            locked = shared.cache.lock(&key) => locked,
            () = shared.cancel.cancelled() => return Err(NotDone),
        };
        match locked {
            Ok(Some(lock)) => {
                guard = Some(lock);
                if let Ok(Some(results)) = shared.cache.load(&key, &vertex).await
                    && results.len() == expected as usize
                {
                    shared.cached.fetch_add(1, Ordering::Relaxed);
                    report(EventKind::Cached { name: name.clone() });
                    return Ok(Arc::new(Done { key, results }));
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(vertex = %name, error = %err, "cannot lock the cache key, running unlocked")
            }
        }
    }

    // Run.
    let permit = tokio::select! {
        permit = shared.permits.clone().acquire_owned() => match permit {
            Ok(permit) => permit,
            Err(_) => return Err(NotDone),
        },
        () = shared.cancel.cancelled() => return Err(NotDone),
    };
    started.store(true, Ordering::Relaxed);
    report(EventKind::Started { name: name.clone() });
    let refs: Vec<R::Ref> =
        parents.iter().filter_map(|(done, output)| done.results.get(*output as usize).cloned()).collect();
    let job = RunJob {
        vertex: vertex.clone(),
        inputs: refs,
        key: key.clone(),
        cancel: shared.cancel.child_token(),
        log: VertexLog::new(digest.clone(), shared.progress.clone(), reports),
    };
    shared.executed.fetch_add(1, Ordering::Relaxed);
    let result = shared.runner.run(job).await;
    drop(permit);
    let results = match result {
        Ok(results) => results,
        Err(err) => return Err(fail(err)),
    };
    if results.len() != expected as usize {
        report(EventKind::Failed {
            error: format!("runner returned {} results for {expected} outputs", results.len()),
        });
        shared.fail(SolveError::OutputCount { name: name.clone(), expected, got: results.len() });
        return Err(NotDone);
    }
    if let Err(err) = shared.cache.save(&key, &vertex, &results).await {
        tracing::warn!(vertex = %name, error = %err, "cannot save result to the build cache");
    }
    drop(guard);
    report(EventKind::Completed);
    Ok(Arc::new(Done { key, results }))
}

/// `error: cause: cause` for progress output.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "scheduler_test_graph.rs"]
mod test_graph;

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scheduler_mount_tests.rs"]
mod mount_tests;

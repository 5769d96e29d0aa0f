//! [`Build`]: solving a [`Planned`] target with a runner over the store's build cache and
//! exporting the result.

use std::collections::HashMap;
use std::sync::Arc;

use cache::Store;
use cache::buildcache::{BuildCache, CacheResult};
use oci_spec::image::{Digest, ImageConfiguration};
use tokio_util::sync::CancellationToken;

use super::failure::StepFailure;
use super::{BuildError, BuildOutcome, DockerfileText, ExportSettings};
use crate::export::output;
use crate::export::{ExportError, finalize_config, write_image_annotated};
use crate::graph::{Definition, Input};
use crate::progress::{EventKind, LineTail, ProgressSender};
use crate::remotecache::{RemoteCache, SolvedVertex};
use crate::scheduler::{OpRunner, SolveError, SolveOptions, SolveResult, Solver};
use crate::storecache::{LayerChain, StoreCache, StoreRef};

/// A lowered build, ready to solve: the frontend's definition and target, the image config it
/// planned, and what to do with the result.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub definition: &'a Definition,
    pub target: &'a Input,
    /// The frontend's image config, completed for the target's layers at export.
    pub image: &'a ImageConfiguration,
    pub solve_options: &'a SolveOptions,
    pub export: &'a ExportSettings,
    /// For a failed step's Dockerfile lines.
    pub dockerfile: &'a DockerfileText,
}

/// The orchestration after lowering: a runner over the store and its build-cache index (with
/// `--cache-from` behind it). [`Build::solve_and_export`] solves a [`Planned`] target, keeps
/// the last output lines of every step (for [`StepFailure`]) and exports the image.
#[derive(Debug)]
pub struct Build<R> {
    store: Store,
    runner: Arc<R>,
    pub(super) index: BuildCache,
    remote: Option<Arc<RemoteCache>>,
}

impl<R> Build<R>
where
    R: OpRunner,
    R::Ref: StoreRef + LayerChain,
{
    /// A build over `store`'s build cache, with `remote` (`--cache-from`) looked up on a miss.
    pub fn new(
        store: Store,
        runner: Arc<R>,
        remote: Option<Arc<RemoteCache>>,
    ) -> Result<Build<R>, BuildError> {
        let index = BuildCache::open(&store).map_err(ExportError::from)?;
        Ok(Build { store, runner, index, remote })
    }

    /// Solves `planned` with the runner over the build cache, then writes the image (the
    /// frontend's config completed for the target's layers) and every output. Progress events
    /// go to `progress`; a failed step becomes [`BuildError::Step`] with its last output lines
    /// and Dockerfile lines.
    pub async fn solve_and_export(
        &self,
        planned: Planned<'_>,
        progress: ProgressSender,
        cancel: CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let cache = StoreCache::new(self.index.clone()).with_remote(self.remote.clone());
        let solver = Solver::new(self.runner.clone(), Arc::new(cache));

        // Interpose on the progress stream to keep every step's last output lines.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<crate::progress::ProgressEvent>();
        let forward = tokio::spawn(async move {
            let mut tails: HashMap<Digest, LineTail> = HashMap::new();
            while let Some(event) = rx.recv().await {
                if let EventKind::Log { data, .. } = &event.kind {
                    tails.entry(event.vertex.clone()).or_default().push(data);
                }
                progress.send(&event.vertex, event.kind);
            }
            tails
        });
        let mut solve_definition = planned.definition.clone();
        solve_definition.targets = vec![planned.target.clone()];
        let solved = solver
            .solve(&solve_definition, planned.solve_options, ProgressSender::new(tx), cancel.clone())
            .await;
        drop(solver);
        // the forwarder only ends when the solver is gone; a panic in it is a bug to report
        let tails = forward.await.map_err(BuildError::ProgressTask)?;

        let solved = match solved {
            Ok(solved) => solved,
            Err(SolveError::Canceled) => return Err(BuildError::Canceled),
            Err(SolveError::Vertex { digest, name, source }) => {
                let lines = tails.get(&digest).map(LineTail::lines).unwrap_or_default();
                let dockerfile = planned.dockerfile;
                return Err(BuildError::Step(Box::new(match planned.definition.vertex(&digest) {
                    Some(vertex) => {
                        StepFailure::new(vertex, source, lines, &dockerfile.name, &dockerfile.text)
                    }
                    None => StepFailure {
                        name,
                        error: source,
                        log_tail: lines,
                        dockerfile_name: dockerfile.name.clone(),
                        snippet: Vec::new(),
                    },
                })));
            }
            Err(other) => return Err(BuildError::Solve(Box::new(other))),
        };
        self.export(planned, &solve_definition, solved, &cancel).await
    }

    /// Writes the solved target's image and outputs.
    async fn export(
        &self,
        planned: Planned<'_>,
        solve_definition: &Definition,
        solved: SolveResult<R::Ref>,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let runner = &self.runner;
        let export = planned.export;
        let image = planned.image.clone();
        let target_result = solved.outputs.first().ok_or(ExportError::NotLayers)?;
        // a result matched from --cache-from may not have its layers here yet
        runner.materialize(target_result, cancel).await.map_err(BuildError::Materialize)?;
        let layers = target_result.layers().ok_or(ExportError::NotLayers)?.to_vec();
        let solved_vertices: HashMap<Digest, SolvedVertex> = solved
            .vertices
            .iter()
            .map(|(digest, (key, results))| {
                let results = results.iter().map(StoreRef::to_cache).collect::<Option<Vec<_>>>();
                (digest.clone(), SolvedVertex { key: key.clone(), results })
            })
            .collect();

        let inline_cache = export.inline_cache.then(|| {
            crate::remotecache::records_to_export(
                solve_definition,
                &solved_vertices,
                crate::remotecache::ExportMode::Min,
            )
            .finish()
        });
        let store = self.store.clone();
        let export = export.clone();
        let stats = solved.stats;
        tokio::task::spawn_blocking(move || -> Result<BuildOutcome, BuildError> {
            let mut top_level = std::collections::BTreeMap::new();
            if let Some(inline_cache) = inline_cache {
                // named by the gzip blobs a push of this image sends (the same per-layer record)
                let inline_cache = inline_cache.distributable(&store).map_err(ExportError::from)?;
                let value = serde_json::to_value(&inline_cache)
                    .map_err(|source| ExportError::Encode { what: "inline cache config", source })?;
                top_level.insert(crate::remotecache::format::INLINE_FIELD.to_owned(), value);
            }
            // each layer's time is when it was made (its blob's mtime), so a rebuild from the cache
            // gives the same image ID, as BuildKit's createdAt from its cache metadata does
            let layer_times: Vec<Option<String>> = layers
                .iter()
                .map(|layer| {
                    let path = store.content().blob_path(layer.blob.digest()).ok()?;
                    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
                    Some(cache::rfc3339_like_go(modified.into()))
                })
                .collect();
            let config = finalize_config(image, &layers, &layer_times, &export.image);
            let image = write_image_annotated(
                &store,
                config,
                &export.image.config_extras,
                &top_level,
                &export.image.annotations,
                &layers,
            )?;
            for out in &export.outputs {
                output::write(&store, &image, out, &export.names)?;
            }
            Ok(BuildOutcome {
                image,
                stats,
                warnings: Vec::new(),
                findings: Vec::new(),
                solved: solved_vertices,
                cache_import: None,
                cache_exports: Vec::new(),
            })
        })
        .await
        .map_err(BuildError::ExportTask)?
    }
}

impl<R> Build<R> {
    /// Records the results matched from `--cache-from` whose layers are now in the store (the
    /// final image's, those a step needed) in the store's own index, so the next build finds them
    /// without the import. Best effort: a failure only costs that.
    pub(super) async fn remember_imported(
        &self,
        definition: &Definition,
        solved: &HashMap<Digest, SolvedVertex>,
    ) {
        let index = self.index.clone();
        let content = self.store.content();
        let mut records = Vec::new();
        for vertex in &definition.vertices {
            let Some(SolvedVertex { key, results: Some(results) }) = solved.get(&vertex.digest) else {
                continue;
            };
            let complete = results.iter().all(|result| match result {
                CacheResult::Layers { layers } => layers.iter().all(|l| content.contains(l.blob.digest())),
                CacheResult::Blob { descriptor } => content.contains(descriptor.digest()),
            });
            if complete {
                records.push(cache::buildcache::CacheRecord::new(
                    key.0.clone(),
                    results.clone(),
                    vertex.metadata.description.clone(),
                ));
            }
        }
        let written = tokio::task::spawn_blocking(move || {
            for record in records {
                if matches!(index.get(&record.key), Ok(None)) {
                    index.put(&record)?;
                }
            }
            Ok::<(), cache::Error>(())
        })
        .await;
        if let Ok(Err(err)) = written {
            tracing::warn!(error = %err, "cannot record imported cache results in the store");
        }
    }
}

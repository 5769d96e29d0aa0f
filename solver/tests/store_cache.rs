//! The scheduler with the real store: build-cache index, content checksums of a real context
//! directory with its persisted file cache, and two builds sharing one root. Ops are fakes that
//! write small blobs (no root needed).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cache::buildcache::{BuildCache, CacheResult, CachedLayer};
use oci_spec::image::{Digest, MediaType};
use solver::contenthash::{ContentHasher, Selection};
use solver::graph::*;
use solver::progress::ProgressSender;
use solver::scheduler::{OpRunner, RunError, RunJob, SolveOptions, Solver};
use solver::storecache::{StoreCache, StoreRef};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
enum TestRef {
    Layers(Vec<CachedLayer>),
    Context(PathBuf),
}

impl StoreRef for TestRef {
    fn to_cache(&self) -> Option<CacheResult> {
        match self {
            TestRef::Layers(layers) => Some(CacheResult::Layers { layers: layers.clone() }),
            TestRef::Context(_) => None,
        }
    }
    fn from_cache(result: &CacheResult) -> Option<Self> {
        match result {
            CacheResult::Layers { layers } => Some(TestRef::Layers(layers.clone())),
            CacheResult::Blob { .. } => None,
        }
    }
}

struct BlobRunner {
    store: cache::Store,
    build_cache: BuildCache,
    context: PathBuf,
    runs: Mutex<HashMap<String, usize>>,
    hashers: Mutex<HashMap<PathBuf, Arc<ContentHasher>>>,
    execs: AtomicUsize,
}

impl BlobRunner {
    fn new(root: &Path, context: &Path) -> BlobRunner {
        let store = cache::Store::open(root).unwrap();
        let build_cache = BuildCache::open(&store).unwrap();
        BlobRunner {
            store,
            build_cache,
            context: context.to_owned(),
            runs: Mutex::default(),
            hashers: Mutex::default(),
            execs: AtomicUsize::new(0),
        }
    }

    fn add_layer(&self, mut layers: Vec<CachedLayer>, data: &[u8]) -> Vec<CachedLayer> {
        let blob = self.store.content().write_bytes(data, MediaType::ImageLayer).unwrap();
        layers.push(CachedLayer { blob, diff_id: cache::sha256_digest(data) });
        layers
    }

    fn hasher(&self, root: &Path) -> Arc<ContentHasher> {
        let mut hashers = self.hashers.lock().unwrap();
        hashers
            .entry(root.to_owned())
            .or_insert_with(|| {
                Arc::new(
                    ContentHasher::for_context(&self.build_cache, root, &["*.log".into()], "ctx").unwrap(),
                )
            })
            .clone()
    }

    fn persist(&self) {
        for hasher in self.hashers.lock().unwrap().values() {
            hasher.persist(&self.store).unwrap();
        }
    }

    fn runs(&self, name: &str) -> usize {
        self.runs.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl OpRunner for BlobRunner {
    type Ref = TestRef;

    async fn run(&self, job: RunJob<TestRef>) -> Result<Vec<TestRef>, RunError> {
        let name = job.vertex.metadata.description.clone().unwrap_or_default();
        *self.runs.lock().unwrap().entry(name.clone()).or_default() += 1;
        let base = |i: usize| match job.inputs.get(i) {
            Some(TestRef::Layers(layers)) => layers.clone(),
            _ => Vec::new(),
        };
        let out = match &job.vertex.op {
            Op::Source(SourceOp::Local(_)) => TestRef::Context(self.context.clone()),
            Op::Source(_) => TestRef::Layers(self.add_layer(Vec::new(), b"base image")),
            Op::File(file) => {
                let mut layers = base(0);
                for action in &file.actions {
                    if let FileAction::Copy(copy) = action {
                        let TestRef::Context(dir) = &job.inputs[copy.source as usize] else {
                            panic!("copy from context only")
                        };
                        let data = std::fs::read(dir.join(copy.src.trim_start_matches('/'))).unwrap();
                        layers = self.add_layer(layers, &data);
                    }
                }
                TestRef::Layers(layers)
            }
            Op::Exec(exec) => {
                self.execs.fetch_add(1, Ordering::SeqCst);
                TestRef::Layers(self.add_layer(base(0), exec.args.join(" ").as_bytes()))
            }
            Op::Merge(_) => TestRef::Layers((0..job.inputs.len()).flat_map(base).collect()),
        };
        Ok(vec![out])
    }

    async fn checksum(
        &self,
        input: &TestRef,
        selection: &Selection,
        _cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        match input {
            TestRef::Context(dir) => Ok(self.hasher(dir).checksum(selection)?),
            TestRef::Layers(layers) => {
                let ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_ref()).collect();
                Ok(cache::sha256_digest(format!("{}|{}", ids.join(","), selection.path).as_bytes()))
            }
        }
    }
}

fn meta(name: &str) -> VertexMetadata {
    VertexMetadata { description: Some(name.to_owned()), ..VertexMetadata::default() }
}

fn run_op(args: &str) -> Op {
    Op::Exec(ExecOp {
        args: vec!["/bin/sh".into(), "-c".into(), args.into()],
        proxy_env: Vec::new(),
        env: vec![],
        cwd: "/".into(),
        user: String::new(),
        hostname: None,
        network: NetworkMode::Default,
        sandbox: Default::default(),
        mounts: vec![Mount::rootfs()],
    })
}

/// FROM, RUN, COPY app.txt, RUN, RUN.
fn definition() -> Definition {
    let mut b = GraphBuilder::new();
    let image = Op::Source(SourceOp::Image(ImageSource {
        reference: "docker.io/library/busybox:latest".into(),
        platform: None,
    }));
    let mut fs = b.add_output(image, vec![], meta("[1/5] FROM busybox")).unwrap();
    let ctx = Op::Source(SourceOp::Local(LocalSource {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec!["*.log".into()],
        follow_paths: vec![],
        shared_key: "ctx".into(),
    }));
    let ctx = b.add_output(ctx, vec![], meta("[internal] load build context")).unwrap();
    fs = b.add_output(run_op("echo one"), vec![fs], meta("[2/5] RUN echo one")).unwrap();
    let mut copy = CopyAction::new(1, "/app.txt", "/app/");
    copy.follow_symlinks = true;
    let copy = Op::File(FileOp { base: Some(0), actions: vec![FileAction::Copy(copy)] });
    fs = b.add_output(copy, vec![fs, ctx], meta("[3/5] COPY app.txt /app/")).unwrap();
    fs = b.add_output(run_op("make"), vec![fs], meta("[4/5] RUN make")).unwrap();
    fs = b.add_output(run_op("make install"), vec![fs], meta("[5/5] RUN make install")).unwrap();
    b.finish(vec![fs]).unwrap()
}

async fn build(root: &Path, context: &Path) -> (Arc<BlobRunner>, solver::scheduler::SolveResult<TestRef>) {
    let runner = Arc::new(BlobRunner::new(root, context));
    let cache = Arc::new(StoreCache::new(runner.build_cache.clone()));
    let solver = Solver::new(runner.clone(), cache);
    let options = SolveOptions { jobs: 4, no_cache: false };
    let result = solver
        .solve(&definition(), &options, ProgressSender::discard(), CancellationToken::new())
        .await
        .unwrap();
    runner.persist();
    (runner, result)
}

fn context_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.txt"), "version 1\n").unwrap();
    std::fs::write(dir.path().join("README.md"), "docs\n").unwrap();
    std::fs::write(dir.path().join("build.log"), "noise\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_across_processes_use_the_store_index() {
    let root = tempfile::tempdir().unwrap();
    let ctx = context_dir();
    let (cold, first) = build(root.path(), ctx.path()).await;
    assert_eq!(cold.execs.load(Ordering::SeqCst), 3);

    // A new Store (as in a new process): everything cached, nothing executed.
    let (warm, second) = build(root.path(), ctx.path()).await;
    assert_eq!(warm.execs.load(Ordering::SeqCst), 0);
    assert_eq!(second.keys, first.keys);
    assert_eq!(warm.runs("[3/5] COPY app.txt /app/"), 0);

    // Unrelated edits, ignored files, and mtime-only changes keep every step cached.
    std::fs::write(ctx.path().join("README.md"), "more docs\n").unwrap();
    std::fs::write(ctx.path().join("build.log"), "other noise\n").unwrap();
    let app = std::fs::File::options().write(true).open(ctx.path().join("app.txt")).unwrap();
    app.set_modified(std::time::SystemTime::now()).unwrap();
    let (touched, _) = build(root.path(), ctx.path()).await;
    assert_eq!(touched.execs.load(Ordering::SeqCst), 0);

    // Editing the copied file re-runs the copy and the steps after it, not those before.
    std::fs::write(ctx.path().join("app.txt"), "version 2\n").unwrap();
    let (edited, third) = build(root.path(), ctx.path()).await;
    assert_eq!(edited.runs("[2/5] RUN echo one"), 0);
    assert_eq!(edited.runs("[3/5] COPY app.txt /app/"), 1);
    assert_eq!(edited.runs("[4/5] RUN make"), 1);
    assert_eq!(edited.runs("[5/5] RUN make install"), 1);
    assert_ne!(third.keys, first.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_builds_share_one_root() {
    let root = tempfile::tempdir().unwrap();
    let ctx = context_dir();
    let (a, b) = tokio::join!(build(root.path(), ctx.path()), build(root.path(), ctx.path()));
    assert_eq!(a.1.keys, b.1.keys);
    let execs = a.0.execs.load(Ordering::SeqCst) + b.0.execs.load(Ordering::SeqCst);
    assert_eq!(execs, 3, "key locks make the second build reuse the first one's results");
    let (after, _) = build(root.path(), ctx.path()).await;
    assert_eq!(after.execs.load(Ordering::SeqCst), 0, "both builds left a valid index");
}

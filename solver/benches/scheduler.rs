//! Scheduler overhead: a 1 000-vertex fake graph (40 independent chains of 25 exec vertices over
//! one image source, gathered by a merge) with a runner that does no work. `cold` runs every
//! vertex (empty cache), `warm` finds every result in the cache.
//!
//! `cargo bench -p kiln-solver --bench scheduler`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use oci_spec::image::Digest;
use solver::contenthash::Selection;
use solver::graph::{
    Definition, ExecOp, GraphBuilder, ImageSource, MergeOp, Mount, NetworkMode, Op, SourceOp, VertexMetadata,
};
use solver::progress::ProgressSender;
use solver::scheduler::{MemoryCache, OpRunner, RunError, RunJob, SolveOptions, Solver};
use tokio_util::sync::CancellationToken;

/// Returns one result per output at once.
struct NoopRunner;

impl OpRunner for NoopRunner {
    type Ref = u64;

    async fn run(&self, job: RunJob<u64>) -> Result<Vec<u64>, RunError> {
        Ok(vec![job.inputs.iter().sum::<u64>() + 1; job.vertex.op.num_outputs() as usize])
    }

    async fn checksum(
        &self,
        _input: &u64,
        selection: &Selection,
        _cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        Ok(cache::sha256_digest(selection.path.as_bytes()))
    }
}

fn exec(chain: usize, step: usize) -> Op {
    Op::Exec(ExecOp {
        args: vec!["/bin/sh".into(), "-c".into(), format!("step {chain} {step}")],
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

fn graph(chains: usize, depth: usize) -> Definition {
    let meta = |name: String| VertexMetadata { description: Some(name), ..VertexMetadata::default() };
    let mut b = GraphBuilder::new();
    let base = b
        .add_output(
            Op::Source(SourceOp::Image(ImageSource { reference: "busybox".into(), platform: None })),
            vec![],
            meta("FROM busybox".into()),
        )
        .unwrap();
    let mut tips = Vec::new();
    for chain in 0..chains {
        let mut fs = base.clone();
        for step in 0..depth {
            fs = b.add_output(exec(chain, step), vec![fs], meta(format!("[{chain} {step}] RUN"))).unwrap();
        }
        tips.push(fs);
    }
    let merged = b.add_output(Op::Merge(MergeOp {}), tips, meta("gather".into())).unwrap();
    b.finish(vec![merged]).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let def = graph(40, 25);
    assert_eq!(def.vertices.len(), 1_002);
    let options = SolveOptions { jobs: 8, no_cache: false };
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("cold_1000_vertices", |b| {
        b.iter(|| {
            let solver = Solver::new(Arc::new(NoopRunner), Arc::new(MemoryCache::new()));
            let result = runtime
                .block_on(solver.solve(&def, &options, ProgressSender::discard(), CancellationToken::new()))
                .unwrap();
            assert_eq!(result.stats.executed, 1_002);
        });
    });
    let cache = Arc::new(MemoryCache::new());
    let solver = Solver::new(Arc::new(NoopRunner), cache);
    runtime
        .block_on(solver.solve(&def, &options, ProgressSender::discard(), CancellationToken::new()))
        .unwrap();
    group.bench_function("warm_1000_vertices", |b| {
        b.iter(|| {
            let result = runtime
                .block_on(solver.solve(&def, &options, ProgressSender::discard(), CancellationToken::new()))
                .unwrap();
            assert_eq!(result.stats.cached, 1_002);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

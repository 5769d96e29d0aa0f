//! Scheduler tests with fake ops (no root): an exec's `args` script the fake runner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::unbounded_channel;

use super::test_graph::{context, exec as exec_with, image, meta};
use super::*;
use crate::graph::*;
use crate::progress::{LogStream, ProgressEvent};

#[derive(Default)]
struct FakeRunner {
    runs: Mutex<HashMap<String, usize>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    observed_cancel: AtomicUsize,
    /// Signalled each time an op starts running (a permit is stored when nobody waits yet).
    started: tokio::sync::Notify,
    /// Content of context files, by path.
    files: Mutex<HashMap<String, String>>,
}

impl FakeRunner {
    fn runs(&self, name: &str) -> usize {
        self.runs.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }
    fn set_file(&self, path: &str, content: &str) {
        self.files.lock().unwrap().insert(path.to_owned(), content.to_owned());
    }
}

#[derive(Debug, thiserror::Error)]
#[error("process {0:?} did not complete successfully: exit code: 1")]
struct FakeExit(String);

impl OpRunner for FakeRunner {
    type Ref = String;

    async fn run(&self, job: RunJob<String>) -> Result<Vec<String>, RunError> {
        let name = job.vertex.metadata.description.clone().unwrap_or_default();
        // counted as running before it is counted as run, so a test that sees the run sees it running
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        *self.runs.lock().unwrap().entry(name.clone()).or_default() += 1;
        self.started.notify_one();
        let result = async {
            let Op::Exec(exec) = &job.vertex.op else {
                return Ok(format!("{name}({})", job.inputs.join(",")));
            };
            job.log.write(LogStream::Stdout, format!("running {}\n", exec.args.join(" ")).as_bytes());
            let ms: u64 = exec.args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
            match exec.args[0].as_str() {
                "sleep" => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(format!("{name}({})", job.inputs.join(","))),
                        () = job.cancel.cancelled() => {
                            self.observed_cancel.fetch_add(1, Ordering::SeqCst);
                            Err(RunError::Canceled)
                        }
                    }
                }
                "fail" => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Err(RunError::failed(FakeExit(exec.args.join(" "))))
                }
                "hang" => {
                    job.cancel.cancelled().await;
                    self.observed_cancel.fetch_add(1, Ordering::SeqCst);
                    Err(RunError::Canceled)
                }
                other => panic!("unknown fake command {other}"),
            }
        }
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(vec![result?])
    }

    async fn checksum(
        &self,
        input: &String,
        selection: &Selection,
        _cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        let files = self.files.lock().unwrap();
        let content = files.get(&selection.path).ok_or_else(|| {
            RunError::Checksum(ContentHashError::NotFound { path: selection.path.clone(), excluded: false })
        })?;
        Ok(cache::sha256_digest(format!("{input}|{}|{content}", selection.path).as_bytes()))
    }
}

fn exec(args: &[&str]) -> Op {
    exec_with(args, vec![Mount::rootfs()])
}

fn copy(b: &mut GraphBuilder, base: Input, ctx: Input, path: &str, name: &str) -> Input {
    let op = Op::File(FileOp {
        base: Some(0),
        actions: vec![FileAction::Copy(CopyAction::new(1, path, "/app/"))],
    });
    b.add_output(op, vec![base, ctx], meta(name)).unwrap()
}

fn run(b: &mut GraphBuilder, base: Input, args: &[&str], name: &str) -> Input {
    b.add_output(exec(args), vec![base], meta(name)).unwrap()
}

fn solver(
    runner: &Arc<FakeRunner>,
    cache: &Arc<MemoryCache<String>>,
) -> Solver<FakeRunner, MemoryCache<String>> {
    Solver::new(runner.clone(), cache.clone())
}

async fn solve(
    s: &Solver<FakeRunner, MemoryCache<String>>,
    def: &Definition,
    jobs: usize,
) -> (Result<SolveResult<String>, SolveError>, Vec<ProgressEvent>) {
    let (tx, mut rx) = unbounded_channel();
    let options = SolveOptions { jobs, no_cache: false };
    let result = s.solve(def, &options, ProgressSender::new(tx), CancellationToken::new()).await;
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    (result, events)
}

/// Ten steps; step 8 copies `b.txt`, step 3 copies `a.txt`.
fn ten_steps() -> Definition {
    let mut b = GraphBuilder::new();
    let mut fs = image(&mut b);
    let ctx = context(&mut b);
    for step in 2..=10 {
        let name = format!("[{step}/10]");
        fs = match step {
            3 => copy(&mut b, fs, ctx.clone(), "/a.txt", &format!("{name} COPY a.txt")),
            8 => copy(&mut b, fs, ctx.clone(), "/b.txt", &format!("{name} COPY b.txt")),
            _ => run(&mut b, fs, &["sleep", "1", &step.to_string()], &format!("{name} RUN")),
        };
    }
    b.finish(vec![fs]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_hit_the_cache_and_an_edit_reruns_exactly_the_downstream_steps() {
    let runner = Arc::new(FakeRunner::default());
    runner.set_file("/a.txt", "a");
    runner.set_file("/b.txt", "b");
    let cache = Arc::new(MemoryCache::new());
    let s = solver(&runner, &cache);
    let def = ten_steps();
    let (first, _) = solve(&s, &def, 4).await;
    let first = first.unwrap();
    assert_eq!(first.stats.executed, def.vertices.len());
    assert_eq!(runner.total_runs(), def.vertices.len());

    let (second, events) = solve(&s, &def, 4).await;
    let second = second.unwrap();
    assert_eq!(runner.total_runs(), def.vertices.len(), "a rebuild runs nothing");
    assert_eq!(second.stats.cached, def.vertices.len());
    assert_eq!(second.keys, first.keys);
    assert!(events.iter().all(|e| matches!(e.kind, EventKind::Cached { .. })));

    // An unrelated context file changes nothing.
    runner.set_file("/unrelated.txt", "x");
    let (third, _) = solve(&s, &def, 4).await;
    assert_eq!(third.unwrap().stats.executed, 0);

    // Editing the file copied at step 8 re-runs steps 8–10 only.
    runner.set_file("/b.txt", "edited");
    let (fourth, _) = solve(&s, &def, 4).await;
    let fourth = fourth.unwrap();
    assert_eq!(fourth.stats.executed, 3);
    for step in 2..=7 {
        let name = if step == 3 { "[3/10] COPY a.txt".to_owned() } else { format!("[{step}/10] RUN") };
        assert_eq!(runner.runs(&name), 1, "{name}");
    }
    assert_eq!(runner.runs("[8/10] COPY b.txt"), 2);
    assert_eq!(runner.runs("[9/10] RUN"), 2);
    assert_eq!(runner.runs("[10/10] RUN"), 2);
    assert_ne!(fourth.keys, first.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vertex_needed_by_several_consumers_runs_once() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let shared = run(&mut b, base, &["sleep", "50"], "shared");
    let left = run(&mut b, shared.clone(), &["sleep", "10", "l"], "left");
    let right = run(&mut b, shared.clone(), &["sleep", "10", "r"], "right");
    // The same op on the same input, requested again through another path, is the same vertex.
    let again = run(&mut b, shared.clone(), &["sleep", "10", "l"], "left again");
    assert_eq!(again, left);
    let merged =
        b.add_output(Op::Merge(MergeOp {}), vec![left.clone(), right, again], meta("merge")).unwrap();
    let def = b.finish(vec![merged, left]).unwrap();
    let (result, _) = solve(&solver(&runner, &cache), &def, 4).await;
    let result = result.unwrap();
    assert_eq!(runner.runs("shared"), 1);
    assert_eq!(runner.runs("left"), 1);
    assert_eq!(runner.runs("left again"), 0);
    assert_eq!(result.outputs.len(), 2);
    assert_eq!(result.stats.executed, def.vertices.len());
}

fn fan_out(width: usize, ms: u64) -> Definition {
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let branches: Vec<Input> = (0..width)
        .map(|i| {
            run(&mut b, base.clone(), &["sleep", &ms.to_string(), &i.to_string()], &format!("branch {i}"))
        })
        .collect();
    let merged = b.add_output(Op::Merge(MergeOp {}), branches, meta("gather")).unwrap();
    b.finish(vec![merged]).unwrap()
}

/// On tokio's paused clock a fake `sleep` ends only once every task that can run has run (time
/// advances when the runtime is idle), so the overlap counted here is exact on any machine load:
/// every op the scheduler would start at once has started before the first sleep ends.
#[tokio::test(start_paused = true)]
async fn independent_ops_run_in_parallel_up_to_jobs() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    solve(&solver(&runner, &cache), &fan_out(4, 200), 8).await.0.unwrap();
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 4, "four independent sleeps overlap");

    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    solve(&solver(&runner, &cache), &fan_out(6, 100), 2).await.0.unwrap();
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 2, "--jobs bounds concurrency");
}

/// Paused clock: the failing op's 50 ms elapse only after both hanging ops have started, so they
/// are running (and must see the token) when the failure comes, however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn first_failure_cancels_the_rest() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let failing = run(&mut b, base.clone(), &["fail", "50"], "[a 2/2] RUN false");
    let hang1 = run(&mut b, base.clone(), &["hang", "1"], "[b 2/3] RUN hang");
    let hang2 = run(&mut b, base.clone(), &["hang", "2"], "[c 2/2] RUN hang");
    let after = run(&mut b, hang1, &["sleep", "1"], "[b 3/3] RUN after");
    let merged = b.add_output(Op::Merge(MergeOp {}), vec![failing, after, hang2], meta("gather")).unwrap();
    let def = b.finish(vec![merged]).unwrap();
    let (result, events) = solve(&solver(&runner, &cache), &def, 8).await;
    match result {
        Err(SolveError::Vertex { name, source: RunError::Failed(_), .. }) => {
            assert_eq!(name, "[a 2/2] RUN false")
        }
        other => panic!("expected the failing vertex's error, got {other:?}"),
    }
    assert_eq!(runner.observed_cancel.load(Ordering::SeqCst), 2, "both running ops saw the token");
    assert_eq!(runner.runs("[b 3/3] RUN after"), 0, "nothing starts after a failure");
    assert_eq!(runner.running.load(Ordering::SeqCst), 0, "solve returns after every runner returned");
    let canceled = events.iter().filter(|e| e.kind == EventKind::Canceled).count();
    assert_eq!(canceled, 2);
    let failed: Vec<&ProgressEvent> =
        events.iter().filter(|e| matches!(e.kind, EventKind::Failed { .. })).collect();
    assert_eq!(failed.len(), 1);
    assert!(cache.len() < def.vertices.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_copy_source_fails_at_key_computation() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let ctx = context(&mut b);
    let copied = copy(&mut b, base, ctx, "/missing.txt", "[2/2] COPY missing.txt /app/");
    let def = b.finish(vec![copied]).unwrap();
    let (result, events) = solve(&solver(&runner, &cache), &def, 2).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SolveError::Vertex { source: RunError::Checksum(_), .. }), "{err:?}");
    // The step is reported (started, then failed) so renderers can name it.
    let failed = &def.targets[0].digest;
    let kinds: Vec<&EventKind> = events.iter().filter(|e| &e.vertex == failed).map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &EventKind::Started { name: "[2/2] COPY missing.txt /app/".into() },
            &EventKind::Failed { error: "failed to compute cache key: \"/missing.txt\": not found".into() },
        ]
    );
    assert_eq!(events.last().map(|e| &e.vertex), Some(failed));
    assert_eq!(
        err.to_string(),
        "[2/2] COPY missing.txt /app/: failed to compute cache key: \"/missing.txt\": not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cache_and_ignore_cache() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let s = solver(&runner, &cache);
    let def = fan_out(2, 1);
    solve(&s, &def, 2).await.0.unwrap();
    let options = SolveOptions { jobs: 2, no_cache: true };
    let all = s.solve(&def, &options, ProgressSender::discard(), CancellationToken::new()).await.unwrap();
    assert_eq!(all.stats.executed, def.vertices.len());
    let mut filtered = def.clone();
    for v in &mut filtered.vertices {
        v.metadata.ignore_cache = v.metadata.description.as_deref() == Some("branch 1");
    }
    let (partial, _) = solve(&s, &filtered, 2).await;
    assert_eq!(partial.unwrap().stats.executed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn external_cancellation_stops_the_build() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let s = solver(&runner, &cache);
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let hang = run(&mut b, base, &["hang"], "hang");
    let def = b.finish(vec![hang]).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let task = tokio::spawn(async move {
        let options = SolveOptions { jobs: 1, no_cache: false };
        s.solve(&def, &options, ProgressSender::discard(), cancel).await
    });
    // cancel once the hanging op runs (its "started" signal), not after a guessed delay; the
    // base image op signals too, so wait until the signal is the hanging op's
    while runner.runs("hang") == 0 {
        runner.started.notified().await;
    }
    assert_eq!(runner.running.load(Ordering::SeqCst), 1);
    trigger.cancel();
    assert!(matches!(task.await.unwrap(), Err(SolveError::Canceled)));
    assert_eq!(runner.observed_cancel.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_stream_renders_as_plain() {
    let runner = Arc::new(FakeRunner::default());
    let cache = Arc::new(MemoryCache::new());
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let step = run(&mut b, base, &["sleep", "1"], "[2/2] RUN sleep 1");
    let def = b.finish(vec![step]).unwrap();
    let s = solver(&runner, &cache);
    solve(&s, &def, 1).await.0.unwrap();
    let (_, events) = solve(&s, &def, 1).await;
    let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &EventKind::Cached { name: "FROM busybox".into() },
            &EventKind::Cached { name: "[2/2] RUN sleep 1".into() },
        ]
    );
    // A cold build: started, log line, done, in that order per vertex.
    let (_, events) =
        solve(&solver(&Arc::new(FakeRunner::default()), &Arc::new(MemoryCache::new())), &def, 1).await;
    let kinds: Vec<&EventKind> =
        events.iter().filter(|e| e.vertex == def.targets[0].digest).map(|e| &e.kind).collect();
    assert!(matches!(kinds[0], EventKind::Started { .. }));
    assert!(matches!(kinds[1], EventKind::Log { .. }));
    assert_eq!(kinds[2], &EventKind::Completed);
}

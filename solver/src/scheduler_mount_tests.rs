//! Cache keys of `RUN --mount` inputs, through the scheduler with a fake runner (no root): what
//! a step mounts decides when it re-runs (issue 10 item 2, BuildKit's content-hashed mounts):
//! - a bind of the build context (whole or a sub-path) is keyed by the mounted content, so an
//!   edit of a mounted file re-runs the step and an edit elsewhere does not;
//! - a bind `from=stage,source=X` is keyed by X's content only: the stage re-running with the
//!   same X keeps the step cached;
//! - cache, tmpfs and secret mounts have no input: their contents (and secret values, which the
//!   graph never holds) never enter the key.
//!
//! The fake's content: `ctx:PATH` for the context, `stage:PATH` for the stage's output; the
//! checksum of a selection hashes every file at or under its path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::test_graph::{context, exec, image, meta};
use super::*;
use crate::graph::*;

#[derive(Default)]
struct MountFake {
    runs: Mutex<HashMap<String, usize>>,
    files: Mutex<BTreeMap<String, String>>,
}

impl MountFake {
    fn runs(&self, name: &str) -> usize {
        self.runs.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    fn set(&self, file: &str, content: &str) {
        self.files.lock().unwrap().insert(file.to_owned(), content.to_owned());
    }
}

impl OpRunner for MountFake {
    type Ref = String;

    async fn run(&self, job: RunJob<String>) -> Result<Vec<String>, RunError> {
        let name = job.vertex.metadata.description.clone().unwrap_or_default();
        *self.runs.lock().unwrap().entry(name.clone()).or_default() += 1;
        let outputs = job.vertex.op.num_outputs().max(1);
        Ok((0..outputs).map(|_| format!("{name}({})", job.inputs.join(","))).collect())
    }

    async fn checksum(
        &self,
        input: &String,
        selection: &Selection,
        _cancel: &CancellationToken,
    ) -> Result<Digest, RunError> {
        let namespace = if input.starts_with("[internal] load build context") { "ctx" } else { "stage" };
        let path = selection.path.trim_end_matches('/');
        let files = self.files.lock().unwrap();
        let selected: Vec<String> = files
            .iter()
            .filter_map(|(k, v)| {
                let file = k.strip_prefix(namespace)?.strip_prefix(':')?;
                (path.is_empty() || file == path || file.starts_with(&format!("{path}/")))
                    .then(|| format!("{file}={v}"))
            })
            .collect();
        if selected.is_empty() && !path.is_empty() {
            return Err(RunError::Checksum(ContentHashError::NotFound {
                path: path.to_owned(),
                excluded: false,
            }));
        }
        Ok(cache::sha256_digest(selected.join("\n").as_bytes()))
    }
}

fn bind(input: u32, selector: &str, dest: &str) -> Mount {
    Mount {
        input: Some(input),
        selector: selector.into(),
        dest: dest.into(),
        output: None,
        readonly: true,
        kind: MountKind::Bind,
    }
}

/// `RUN --mount=type=bind[,source=SELECTOR],target=/src` of the context.
fn context_bind(selector: &str) -> Definition {
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let ctx = context(&mut b);
    let step = b.add_output(
        exec(&["build"], vec![Mount::rootfs(), bind(1, selector, "/src")]),
        vec![base, ctx],
        meta("step"),
    );
    b.finish(vec![step.unwrap()]).unwrap()
}

/// A stage that copies `/a.txt` of the context and runs, and a step mounting its `/out`.
fn stage_bind() -> Definition {
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let ctx = context(&mut b);
    let copy = Op::File(FileOp {
        base: Some(0),
        actions: vec![FileAction::Copy(CopyAction::new(1, "/a.txt", "/"))],
    });
    let copied = b.add_output(copy, vec![base.clone(), ctx], meta("stage COPY")).unwrap();
    let stage =
        b.add_output(exec(&["make"], vec![Mount::rootfs()]), vec![copied], meta("stage RUN")).unwrap();
    let step = b.add_output(
        exec(&["use"], vec![Mount::rootfs(), bind(1, "/out", "/out")]),
        vec![base, stage],
        meta("step"),
    );
    b.finish(vec![step.unwrap()]).unwrap()
}

async fn build(runner: &Arc<MountFake>, cache: &Arc<MemoryCache<String>>, def: &Definition) {
    let solver = Solver::new(runner.clone(), cache.clone());
    let options = SolveOptions { jobs: 2, no_cache: false };
    solver.solve(def, &options, ProgressSender::discard(), CancellationToken::new()).await.unwrap();
}

#[tokio::test]
async fn a_bind_of_the_whole_context_is_keyed_by_its_content() {
    let (runner, cache) = (Arc::new(MountFake::default()), Arc::new(MemoryCache::new()));
    let def = context_bind("");
    runner.set("ctx:/file", "one");
    build(&runner, &cache, &def).await;
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 1, "no change: cached");
    runner.set("ctx:/file", "two");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 2, "an edited mounted file re-runs the step");
    runner.set("ctx:/new", "added");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 3, "a file added to the mounted context re-runs the step");
}

#[tokio::test]
async fn a_bind_of_a_context_sub_path_is_keyed_by_that_path_only() {
    let (runner, cache) = (Arc::new(MountFake::default()), Arc::new(MemoryCache::new()));
    let def = context_bind("/sub");
    runner.set("ctx:/sub/file", "one");
    runner.set("ctx:/elsewhere", "one");
    build(&runner, &cache, &def).await;
    runner.set("ctx:/elsewhere", "two");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 1, "an edit outside the mounted path keeps the cache");
    runner.set("ctx:/sub/file", "two");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 2, "an edit of the mounted path re-runs the step");
}

#[tokio::test]
async fn a_bind_from_a_stage_sub_path_is_keyed_by_that_path_only() {
    let (runner, cache) = (Arc::new(MountFake::default()), Arc::new(MemoryCache::new()));
    let def = stage_bind();
    runner.set("ctx:/a.txt", "one");
    runner.set("stage:/out/bin", "built");
    runner.set("stage:/other", "one");
    build(&runner, &cache, &def).await;
    assert_eq!((runner.runs("stage RUN"), runner.runs("step")), (1, 1));
    // the stage re-runs (its input changed) and changes only what the step does not mount
    runner.set("ctx:/a.txt", "two");
    runner.set("stage:/other", "two");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("stage RUN"), 2, "the stage re-ran");
    assert_eq!(runner.runs("step"), 1, "same /out: the mounting step stays cached");
    // the mounted path changes
    runner.set("ctx:/a.txt", "three");
    runner.set("stage:/out/bin", "rebuilt");
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 2, "a changed /out re-runs the step");
}

#[tokio::test]
async fn cache_tmpfs_and_secret_mounts_never_enter_the_key() {
    let mounts = |id: &str| {
        vec![
            Mount::rootfs(),
            Mount {
                input: None,
                selector: String::new(),
                dest: "/root/.cache".into(),
                output: None,
                readonly: false,
                kind: MountKind::Cache(CacheMount {
                    id: id.into(),
                    sharing: CacheSharing::Shared,
                    uid: None,
                    gid: None,
                    mode: None,
                }),
            },
            Mount {
                input: None,
                selector: String::new(),
                dest: "/scratch".into(),
                output: None,
                readonly: false,
                kind: MountKind::Tmpfs(TmpfsMount { size: None }),
            },
            Mount {
                input: None,
                selector: String::new(),
                dest: "/run/secrets/token".into(),
                output: None,
                readonly: true,
                kind: MountKind::Secret(SecretMount {
                    id: "token".into(),
                    env: None,
                    uid: 0,
                    gid: 0,
                    mode: 0o400,
                    optional: false,
                }),
            },
        ]
    };
    let op = exec(&["build"], mounts("go-build"));
    // no input of theirs is read: only the rootfs is a dependency
    assert_eq!(crate::cachekey::input_uses(&op, 1), vec![crate::cachekey::InputUse::Whole]);
    let (runner, cache) = (Arc::new(MountFake::default()), Arc::new(MemoryCache::new()));
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let step = b.add_output(op, vec![base], meta("step")).unwrap();
    let def = b.finish(vec![step]).unwrap();
    build(&runner, &cache, &def).await;
    build(&runner, &cache, &def).await;
    assert_eq!(runner.runs("step"), 1, "a step with cache/tmpfs/secret mounts is cached");
    // a cache mount's sharing mode is not part of the key either (its id is, as in BuildKit)
    let mut b = GraphBuilder::new();
    let base = image(&mut b);
    let mut shared = mounts("go-build");
    if let MountKind::Cache(cache) = &mut shared[1].kind {
        cache.sharing = CacheSharing::Locked;
    }
    let step = b.add_output(exec(&["build"], shared), vec![base], meta("step")).unwrap();
    build(&runner, &cache, &b.finish(vec![step]).unwrap()).await;
    assert_eq!(runner.runs("step"), 1, "the sharing mode changed the key");
}

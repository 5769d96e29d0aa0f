//! [`Build::solve_and_export`] with a runner that makes real layers in a real store from file ops (no
//! root needed): caching across builds, export, failure reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache::buildcache::{CacheResult, CachedLayer};
use cache::{DiffOptions, DiffSource};
use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder, RootFsBuilder};

use super::*;
use crate::contenthash::Selection;
use crate::export::output::Output;
use crate::graph::*;
use crate::progress::LogStream;
use crate::scheduler::{OpRunner, RunError, RunJob};

/// Mkfile actions become one layer each; an exec whose args[0] is `fail` prints and fails.
struct LayerRunner {
    store: Store,
    runs: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("process {0:?} did not complete successfully: exit code: 3")]
struct Exit(String);

impl OpRunner for LayerRunner {
    type Ref = CacheResult;

    async fn run(&self, job: RunJob<CacheResult>) -> Result<Vec<CacheResult>, RunError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match &job.vertex.op {
            Op::Source(_) => Ok(vec![CacheResult::Layers { layers: vec![] }]),
            Op::File(file) => {
                let mut layers =
                    job.inputs.first().and_then(|i| i.layers()).map(<[_]>::to_vec).unwrap_or_default();
                let dir = tempfile::tempdir().map_err(RunError::failed)?;
                for action in &file.actions {
                    if let FileAction::Mkfile(mkfile) = action {
                        let path = dir.path().join(mkfile.path.trim_start_matches('/'));
                        std::fs::write(&path, &mkfile.data).map_err(RunError::failed)?;
                    }
                }
                let options = DiffOptions { source_date_epoch: Some(0), ..DiffOptions::default() };
                let layer = self
                    .store
                    .content()
                    .write_layer(dir.path(), DiffSource::PlainDir, &options)
                    .map_err(RunError::failed)?;
                layers.push(CachedLayer { blob: layer.descriptor, diff_id: layer.diff_id });
                Ok(vec![CacheResult::Layers { layers }])
            }
            Op::Exec(exec) => {
                for i in 0..25 {
                    job.log.write(LogStream::Stderr, format!("output {i}\n").as_bytes());
                }
                Err(RunError::failed(Exit(exec.args.join(" "))))
            }
            Op::Merge(_) => Ok(job.inputs.clone()),
        }
    }

    async fn checksum(
        &self,
        _input: &CacheResult,
        _selection: &Selection,
        _cancel: &CancellationToken,
    ) -> Result<oci_spec::image::Digest, RunError> {
        Ok(cache::sha256_digest(b"fixed"))
    }
}

fn described(name: &str, lines: &str) -> VertexMetadata {
    let mut annotations = BTreeMap::new();
    annotations.insert(failure::ANNOTATION_LINES.to_owned(), lines.to_owned());
    VertexMetadata { description: Some(name.to_owned()), annotations, ..VertexMetadata::default() }
}

fn mkfile(path: &str, data: &str) -> Op {
    Op::File(FileOp {
        base: Some(0),
        actions: vec![FileAction::Mkfile(MkfileAction {
            path: path.to_owned(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
            make_parents: None,
            owner: None,
            timestamp: None,
        })],
    })
}

fn plan(fail: bool) -> (Definition, Input) {
    let mut graph = GraphBuilder::new();
    let base = graph.add_output(Op::Source(SourceOp::Scratch), vec![], VertexMetadata::default()).unwrap();
    let one = graph.add_output(mkfile("/a", "A"), vec![base], described("[1/3] COPY a", "2")).unwrap();
    let mut last = graph.add_output(mkfile("/b", "B"), vec![one], described("[2/3] COPY b", "3")).unwrap();
    if fail {
        let exec = ExecOp {
            args: vec!["fail".into()],
            proxy_env: Vec::new(),
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: None,
            network: NetworkMode::Default,
            sandbox: Default::default(),
            mounts: vec![Mount::rootfs()],
        };
        last = graph.add_output(Op::Exec(exec), vec![last], described("[3/3] RUN fail", "4-5")).unwrap();
    }
    (graph.finish(vec![last.clone()]).unwrap(), last)
}

fn image_config() -> ImageConfiguration {
    ImageConfigurationBuilder::default()
        .config(ConfigBuilder::default().cmd(vec!["sh".to_owned()]).build().unwrap())
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(Vec::<String>::new()).build().unwrap())
        .build()
        .unwrap()
}

const DOCKERFILE: &str = "FROM scratch\nCOPY a /\nCOPY b /\nRUN echo \\\n  fail\n";

async fn build(store: &Store, runner: Arc<LayerRunner>, fail: bool) -> Result<BuildOutcome, BuildError> {
    let (definition, target) = plan(fail);
    let export = ExportSettings {
        image: ImageOptions { source_date_epoch: Some(10), ..ImageOptions::default() },
        outputs: vec![Output::Image { names: vec![], push: false }],
        names: vec!["docker.io/library/built:1".into()],
        inline_cache: false,
    };
    let dockerfile = DockerfileText { name: "Dockerfile".into(), text: DOCKERFILE.into() };
    let image = image_config();
    let planned = Planned {
        definition: &definition,
        target: &target,
        image: &image,
        solve_options: &SolveOptions::default(),
        export: &export,
        dockerfile: &dockerfile,
    };
    Build::new(store.clone(), runner, None)?
        .solve_and_export(planned, ProgressSender::discard(), CancellationToken::new())
        .await
}

#[tokio::test]
async fn builds_export_and_rebuilds_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let runner = Arc::new(LayerRunner { store: store.clone(), runs: AtomicUsize::new(0) });
    let first = build(&store, runner.clone(), false).await.unwrap();
    assert_eq!(first.image.layers.len(), 2);
    assert_eq!(first.stats.executed, 3);
    let record = store.images().get("docker.io/library/built:1").unwrap().unwrap();
    assert_eq!(record.image_id, first.image.config_digest);

    // A second build (a new runner: nothing in memory) comes entirely from the store's cache.
    let runner = Arc::new(LayerRunner { store: store.clone(), runs: AtomicUsize::new(0) });
    let second = build(&store, runner.clone(), false).await.unwrap();
    assert_eq!(runner.runs.load(Ordering::SeqCst), 0);
    assert_eq!(second.stats.executed, 0);
    assert_eq!(second.image.manifest.digest(), first.image.manifest.digest());
}

#[tokio::test]
async fn a_failed_step_shows_its_lines_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let runner = Arc::new(LayerRunner { store: store.clone(), runs: AtomicUsize::new(0) });
    let Err(BuildError::Step(failure)) = build(&store, runner, true).await else {
        panic!("expected a step failure");
    };
    assert_eq!(failure.name, "[3/3] RUN fail");
    assert_eq!(failure.log_tail.len(), crate::progress::TAIL_LINES);
    assert_eq!(failure.log_tail.last().map(String::as_str), Some("output 24"));
    assert_eq!(failure.dockerfile_name, "Dockerfile");
    let marked: Vec<(usize, &str)> = failure
        .snippet
        .iter()
        .filter(|(_, _, marked)| *marked)
        .map(|(n, line, _)| (*n, line.as_str()))
        .collect();
    assert_eq!(marked, [(4, "RUN echo \\"), (5, "  fail")]);
    // the typed cause reaches the caller (the CLI renders the chain)
    let source = std::error::Error::source(&*failure).map(ToString::to_string).unwrap_or_default();
    assert!(source.ends_with("exit code: 3"), "{source}");
    assert!(store.images().get("docker.io/library/built:1").unwrap().is_none());
}

#[test]
fn lowercase_dockerfile_is_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dockerfile"), "FROM lower\n").unwrap();
    let (path, text) = read_dockerfile(None, Some(dir.path())).unwrap();
    assert_eq!((path.file_name().unwrap().to_str().unwrap(), text.as_str()), ("dockerfile", "FROM lower\n"));
    std::fs::write(dir.path().join("Dockerfile"), "FROM upper\n").unwrap();
    let (path, text) = read_dockerfile(None, Some(dir.path())).unwrap();
    assert_eq!((path.file_name().unwrap().to_str().unwrap(), text.as_str()), ("Dockerfile", "FROM upper\n"));
}

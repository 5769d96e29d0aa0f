//! Root integration tests of the op runner: real store, real sandbox, graphs built by hand.
//! What needs no sandbox or overlay (COPY and ADD semantics, file actions, merges, the specs a RUN
//! gets, cache-mount sharing) is tested without root over the fake seams in `runner_fakes.rs`.
//!
//! `harness = false`: the binary is also the sandbox init (the executor re-executes
//! `/proc/self/exe`), so `main` calls `maybe_run_init` before anything else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::Store;
use cache::buildcache::CachedLayer;
use solver::graph::{
    CacheMount, CacheSharing, Chmod, CopyAction, ExecOp, FileAction, FileOp, GraphBuilder, ImageSource,
    Input, LocalSource, Mount, MountKind, NetworkMode, Op, SecretMount, SourceOp, VertexMetadata,
};
use solver::progress::ProgressSender;
use solver::runner::{BuildRef, LocalDirOptions, Runner, RunnerError, RunnerOptions, SecretValue};
use solver::scheduler::{MemoryCache, RunError, SolveError, SolveOptions, Solver};
use tokio_util::sync::CancellationToken;

#[path = "runner/reuse.rs"]
mod reuse;
#[path = "runner/tall.rs"]
mod tall;

const BASE: &str = "docker.io/library/busybox:latest";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct TestEnv {
    dir: tempfile::TempDir,
    store: Store,
    runner: Arc<Runner>,
}

impl TestEnv {
    fn new(configure: impl FnOnce(&Path, &mut RunnerOptions)) -> TestEnv {
        let dir = tempfile::Builder::new().prefix("kiln-runner-test-").tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        testkit::store::busybox_image(&store, BASE).unwrap();
        let executor = executor::Executor::new(dir.path().join("run")).unwrap();
        let context = dir.path().join("context");
        std::fs::create_dir_all(&context).unwrap();
        let mut options = RunnerOptions::default();
        options.locals.insert("context".into(), LocalDirOptions { path: context, excludes: Vec::new() });
        configure(dir.path(), &mut options);
        let runner = Runner::new(store.clone(), executor, None, options).unwrap();
        TestEnv { dir, store, runner: Arc::new(runner) }
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("context")
    }

    async fn solve(&self, builder: GraphBuilder, target: Input) -> Result<BuildRef, SolveError> {
        let definition = builder.finish(vec![target]).unwrap();
        let solver = Solver::new(self.runner.clone(), Arc::new(MemoryCache::new()));
        let result = solver
            .solve(&definition, &SolveOptions::default(), ProgressSender::discard(), CancellationToken::new())
            .await?;
        Ok(result.outputs.into_iter().next().unwrap())
    }

    /// Entries of a layer: path → (mode, uid, gid, content).
    fn entries(&self, layer: &CachedLayer) -> BTreeMap<String, (u32, u64, u64, Vec<u8>)> {
        let file = self.store.content().open(layer.blob.digest()).unwrap();
        let mut archive = tar::Archive::new(cache::compress::decompress(file).unwrap());
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_owned();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.insert(path, (header.mode().unwrap(), header.uid().unwrap(), header.gid().unwrap(), data));
        }
        out
    }

    fn top_entries(&self, result: &BuildRef) -> BTreeMap<String, (u32, u64, u64, Vec<u8>)> {
        let layers = result.layers().expect("a filesystem");
        self.entries(layers.last().expect("a layer"))
    }

    /// No mount of this test is left in our mount namespace.
    fn assert_no_mounts(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&dir)).collect();
        assert!(left.is_empty(), "mounts left behind: {left:#?}");
        // Every temporary directory of the runner is gone too.
        let tmp = self.dir.path().join("root/tmp");
        for entry in std::fs::read_dir(&tmp).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let left: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
                assert!(left.is_empty(), "temporary files left behind: {left:#?}");
            }
        }
    }
}

fn meta(name: &str) -> VertexMetadata {
    VertexMetadata { description: Some(name.to_owned()), ..VertexMetadata::default() }
}

fn base(builder: &mut GraphBuilder) -> Input {
    let op = Op::Source(SourceOp::Image(ImageSource { reference: BASE.into(), platform: None }));
    builder.add_output(op, vec![], meta("FROM busybox")).unwrap()
}

fn context(builder: &mut GraphBuilder) -> Input {
    let op = Op::Source(SourceOp::Local(LocalSource {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec![],
        follow_paths: vec![],
        shared_key: String::new(),
    }));
    builder.add_output(op, vec![], meta("context")).unwrap()
}

fn root_mount() -> Mount {
    Mount::rootfs()
}

fn exec_op(script: &str, extra: Vec<Mount>) -> Op {
    let mut mounts = vec![root_mount()];
    mounts.extend(extra);
    Op::Exec(ExecOp {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        proxy_env: Vec::new(),
        env: vec![PATH_ENV.into()],
        cwd: "/".into(),
        user: String::new(),
        hostname: None,
        network: NetworkMode::None,
        sandbox: Default::default(),
        mounts,
    })
}

fn run(builder: &mut GraphBuilder, on: Input, script: &str, extra: Vec<Mount>) -> Input {
    builder.add_output(exec_op(script, extra), vec![on], meta(script)).unwrap()
}

fn file_op(
    builder: &mut GraphBuilder,
    inputs: Vec<Input>,
    base: Option<u32>,
    actions: Vec<FileAction>,
) -> Input {
    builder.add_output(Op::File(FileOp { base, actions }), inputs, meta("file")).unwrap()
}

fn failure(error: SolveError) -> RunnerError {
    let SolveError::Vertex { source: RunError::Failed(inner), .. } = error else {
        panic!("unexpected {error:?}")
    };
    *inner.downcast::<RunnerError>().expect("a runner error")
}

async fn run_writes_only_its_file() {
    let env = TestEnv::new(|_, _| {});
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "echo hi > /hello", vec![]);
    let result = env.solve(b, step).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), 2);
    let entries = env.top_entries(&result);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["hello"], "{entries:?}");
    assert_eq!(entries["hello"].3, b"hi\n");

    // A RUN that changes nothing still adds its (empty) layer, as BuildKit does.
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "true", vec![]);
    let result = env.solve(b, step).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), 2);

    // The next RUN sees the previous one's files (committed snapshot as a lower).
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let one = run(&mut b, from, "echo one > /one", vec![]);
    let two = run(&mut b, one, "cat /one > /two && rm /bin/ls", vec![]);
    let result = env.solve(b, two).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(entries["two"].3, b"one\n");
    assert!(entries.contains_key("bin/.wh.ls"), "{:?}", entries.keys());
    env.assert_no_mounts();
}

async fn run_failure_reports_command_code_and_tail() {
    let env = TestEnv::new(|_, _| {});
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let script = "for i in $(seq 1 30); do echo out$i; done; echo oops; exit 3";
    let step = run(&mut b, from, script, vec![]);
    let error = failure(env.solve(b, step).await.unwrap_err());
    let RunnerError::Process(failed) = &error else { panic!("unexpected {error:?}") };
    assert_eq!(failed.exit_code, 3);
    assert_eq!(failed.command, vec!["/bin/sh", "-c", script]);
    assert_eq!(failed.output_tail.len(), 20);
    assert_eq!(failed.output_tail.last().unwrap(), "oops");
    assert_eq!(failed.output_tail[0], "out12");
    assert_eq!(
        error.to_string(),
        format!("process \"/bin/sh -c {script}\" did not complete successfully: exit code: 3")
    );

    // stderr is part of the tail too.
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "echo bad >&2; exit 1", vec![]);
    let RunnerError::Process(failed) = failure(env.solve(b, step).await.unwrap_err()) else { panic!() };
    assert_eq!((failed.exit_code, failed.output_tail), (1, vec!["bad".to_owned()]));
    env.assert_no_mounts();
}

async fn cache_mount_persists_and_stays_out_of_layers() {
    let env = TestEnv::new(|_, _| {});
    let cache_mount = || Mount {
        input: None,
        selector: String::new(),
        dest: "/cache".into(),
        output: None,
        readonly: false,
        kind: MountKind::Cache(CacheMount {
            id: "c1".into(),
            sharing: CacheSharing::Locked,
            uid: None,
            gid: None,
            mode: None,
        }),
    };
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "echo cached > /cache/x && echo a > /a", vec![cache_mount()]);
    let first = env.solve(b, step).await.unwrap();
    assert_eq!(env.top_entries(&first).keys().collect::<Vec<_>>(), vec!["a"]);

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "cat /cache/x > /seen", vec![cache_mount()]);
    let second = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&second);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["seen"]);
    assert_eq!(entries["seen"].3, b"cached\n");

    // `from=`: a new cache starts with the source's content (here /etc of the base image).
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let seeded = Mount {
        input: Some(0),
        selector: "/etc".into(),
        dest: "/seeded".into(),
        output: None,
        readonly: false,
        kind: MountKind::Cache(CacheMount {
            id: "c2".into(),
            sharing: CacheSharing::Shared,
            uid: None,
            gid: None,
            mode: None,
        }),
    };
    let step = run(&mut b, from, "cp /seeded/passwd /p", vec![seeded]);
    let third = env.solve(b, step).await.unwrap();
    assert!(String::from_utf8_lossy(&env.top_entries(&third)["p"].3).contains("www-data"));
    env.assert_no_mounts();
}

async fn secret_is_visible_but_never_in_the_layer() {
    let env = TestEnv::new(|_, options| {
        options.secrets.insert("tok".into(), SecretValue::Bytes(b"s3cret".to_vec()));
    });
    let secret = |id: &str, optional| Mount {
        input: None,
        selector: String::new(),
        dest: format!("/run/secrets/{id}"),
        output: None,
        readonly: true,
        kind: MountKind::Secret(SecretMount {
            id: id.into(),
            env: Some("TOK".into()),
            uid: 0,
            gid: 0,
            mode: 0o400,
            optional,
        }),
    };
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step =
        run(&mut b, from, "cat /run/secrets/tok > /out && echo \"$TOK\" >> /out", vec![secret("tok", false)]);
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["out"], "{entries:?}");
    assert_eq!(entries["out"].3, b"s3crets3cret\n");

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "true", vec![secret("missing", false)]);
    let error = failure(env.solve(b, step).await.unwrap_err());
    assert!(matches!(error, RunnerError::SecretNotFound(ref id) if id == "missing"), "{error:?}");
    env.assert_no_mounts();
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

async fn mounts_bind_tmpfs_and_cwd() {
    let env = TestEnv::new(|_, _| {});
    write(&env.context().join("src/main.c"), "int main;");
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let other = run(&mut b, from.clone(), "mkdir /out && echo built > /out/bin", vec![]);
    let mounts = vec![
        Mount {
            input: Some(1),
            selector: "src".into(),
            dest: "/src".into(),
            output: None,
            readonly: true,
            kind: MountKind::Bind,
        },
        Mount {
            input: Some(2),
            selector: "out".into(),
            dest: "/other".into(),
            output: None,
            readonly: false,
            kind: MountKind::Bind,
        },
        Mount {
            input: None,
            selector: String::new(),
            dest: "/scratch".into(),
            output: None,
            readonly: false,
            kind: MountKind::Tmpfs(solver::graph::TmpfsMount { size: None }),
        },
    ];
    let mut op = exec_op(
        "cat /src/main.c > /res && cat /other/bin >> /res && echo junk > /other/junk && echo t > /scratch/t \
         && ! touch /src/new 2>/dev/null && pwd > /work/where",
        mounts,
    );
    if let Op::Exec(exec) = &mut op {
        exec.cwd = "/work".into();
    }
    let step = b.add_output(op, vec![from, local, other], meta("RUN with mounts")).unwrap();
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["res", "work", "work/where"], "{entries:?}");
    assert_eq!(entries["res"].3, b"int main;built\n");
    assert_eq!(entries["work/where"].3, b"/work\n");
    assert!(!env.context().join("src/new").exists());
    env.assert_no_mounts();
}

async fn checksums_of_context_and_layers() {
    use solver::contenthash::Selection;
    use solver::scheduler::OpRunner;
    let env = TestEnv::new(|_, _| {});
    write(&env.context().join("a.txt"), "A");
    write(&env.context().join("other"), "1");
    let cancel = CancellationToken::new();
    let local = BuildRef::Local(Arc::new(solver::runner::LocalDir {
        name: "context".into(),
        path: env.context(),
        excludes: vec![],
        shared_key: String::new(),
    }));
    let first = env.runner.checksum(&local, &Selection::path("a.txt"), &cancel).await.unwrap();
    write(&env.context().join("other"), "2");
    assert_eq!(env.runner.checksum(&local, &Selection::path("a.txt"), &cancel).await.unwrap(), first);
    write(&env.context().join("a.txt"), "changed");
    assert_ne!(env.runner.checksum(&local, &Selection::path("a.txt"), &cancel).await.unwrap(), first);

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let one = run(&mut b, from, "echo one > /etc/one", vec![]);
    let chain = env.solve(b, one).await.unwrap();
    let etc = env.runner.checksum(&chain, &Selection::path("/etc"), &cancel).await.unwrap();
    let passwd = env.runner.checksum(&chain, &Selection::path("/etc/passwd"), &cancel).await.unwrap();
    assert_ne!(etc, passwd);
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let base_ref = env.solve(b, from).await.unwrap();
    assert_eq!(
        env.runner.checksum(&base_ref, &Selection::path("/etc/passwd"), &cancel).await.unwrap(),
        passwd
    );
    assert_ne!(env.runner.checksum(&base_ref, &Selection::path("/etc"), &cancel).await.unwrap(), etc);
    env.assert_no_mounts();
}

async fn store_cache_reuses_results() {
    use solver::storecache::StoreCache;
    let env = TestEnv::new(|_, _| {});
    write(&env.context().join("f"), "F");
    let graph = || {
        let mut b = GraphBuilder::new();
        let from = base(&mut b);
        let local = context(&mut b);
        let mut copy = CopyAction::new(1, "f", "/f");
        copy.follow_symlinks = true;
        let copied = file_op(&mut b, vec![from, local], Some(0), vec![FileAction::Copy(copy)]);
        let step = run(&mut b, copied, "cat /f > /g", vec![]);
        b.finish(vec![step]).unwrap()
    };
    let index = cache::buildcache::BuildCache::open(&env.store).unwrap();
    let solver = Solver::new(env.runner.clone(), Arc::new(StoreCache::new(index)));
    let options = SolveOptions::default();
    let cold =
        solver.solve(&graph(), &options, ProgressSender::discard(), CancellationToken::new()).await.unwrap();
    let warm =
        solver.solve(&graph(), &options, ProgressSender::discard(), CancellationToken::new()).await.unwrap();
    assert_eq!(cold.outputs, warm.outputs);
    assert!(warm.stats.cached >= 2, "{:?}", warm.stats);
    assert!(warm.stats.executed <= 2, "only the sources may run again: {:?}", warm.stats);
    env.assert_no_mounts();
}

async fn cancellation_stops_the_process_and_cleans_up() {
    let env = TestEnv::new(|_, _| {});
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "echo started; sleep 60", vec![]);
    let definition = b.finish(vec![step]).unwrap();
    let solver = Solver::new(env.runner.clone(), Arc::new(MemoryCache::new()));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    // cancel when the process has printed `started` (it runs), not after a guessed delay that
    // could come before the sandbox exists
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<solver::progress::ProgressEvent>();
    let watcher = tokio::spawn(async move {
        let mut seen = false;
        while let Some(event) = rx.recv().await {
            if let solver::progress::EventKind::Log { data, .. } = &event.kind
                && String::from_utf8_lossy(data.as_slice()).contains("started")
                && !seen
            {
                seen = true;
                trigger.cancel();
            }
        }
        seen
    });
    let started = std::time::Instant::now();
    let error = solver
        .solve(&definition, &SolveOptions::default(), ProgressSender::new(tx), cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, SolveError::Canceled), "{error:?}");
    assert!(watcher.await.unwrap(), "the build was canceled while the process ran");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "cancellation did not stop the sleep");
    env.assert_no_mounts();
}

/// Serves `body` over HTTP on loopback for each connection until dropped.
fn serve(body: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/files/tool.sh?x=1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    (url, handle)
}

async fn http_download_with_checksum() {
    let env = TestEnv::new(|_, _| {});
    let body: &'static [u8] = b"#!/bin/sh\necho tool\n";
    let (url, server) = serve(body);
    let good = cache::sha256_digest(body).to_string();
    let add = |b: &mut GraphBuilder, checksum: String| {
        let from = base(b);
        let http = Op::Source(SourceOp::Http(solver::graph::HttpSource {
            url: url.clone(),
            checksum: Some(checksum),
            filename: None,
            mode: None,
        }));
        let download = b.add_output(http, vec![], meta("download")).unwrap();
        let mut copy = CopyAction::new(1, "tool.sh", "/usr/bin/");
        copy.mode = Some(Chmod::Octal(0o755));
        file_op(b, vec![from, download], Some(0), vec![FileAction::Copy(copy)])
    };
    let mut b = GraphBuilder::new();
    let step = add(&mut b, good);
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(entries["usr/bin/tool.sh"].3, body);
    assert_eq!(entries["usr/bin/tool.sh"].0 & 0o7777, 0o755);

    let mut b = GraphBuilder::new();
    let step = add(&mut b, cache::sha256_digest(b"other").to_string());
    let error = failure(env.solve(b, step).await.unwrap_err());
    assert!(matches!(error, RunnerError::ChecksumMismatch { .. }), "{error:?}");
    server.join().unwrap();
    env.assert_no_mounts();
}

async fn ssh_socket_is_forwarded() {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let env = TestEnv::new(|_, options| {
        options.ssh.insert("default".into(), socket.clone());
    });
    let ssh = |id: &str, optional| Mount {
        input: None,
        selector: String::new(),
        dest: "/run/buildkit/ssh_agent.0".into(),
        output: None,
        readonly: true,
        kind: MountKind::Ssh(solver::graph::SshMount {
            id: id.into(),
            uid: 0,
            gid: 0,
            mode: 0o600,
            optional,
        }),
    };
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(
        &mut b,
        from,
        "test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock",
        vec![ssh("default", false)],
    );
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["sock"], "{entries:?}");
    assert_eq!(entries["sock"].3, b"/run/buildkit/ssh_agent.0\n");

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "true", vec![ssh("deploy", false)]);
    let error = failure(env.solve(b, step).await.unwrap_err());
    assert!(matches!(error, RunnerError::SshNotFound(ref id) if id == "deploy"), "{error:?}");
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "test ! -e /run/buildkit/ssh_agent.0", vec![ssh("deploy", true)]);
    env.solve(b, step).await.unwrap();
    env.assert_no_mounts();
}

async fn pinned_reference_resolves_from_the_store() {
    let env = TestEnv::new(|_, _| {});
    let base = env.runner.resolve_image("busybox", None).await.unwrap();
    assert!(base.pinned.starts_with("docker.io/library/busybox@sha256:"), "{}", base.pinned);
    assert_eq!(base.config.config().as_ref().and_then(|c| c.cmd().clone()), Some(vec!["sh".to_owned()]));
    // A second runner (no registry, nothing memoised) finds the pinned image in the store.
    let executor = executor::Executor::new(env.dir.path().join("run2")).unwrap();
    let fresh = Runner::new(env.store.clone(), executor, None, RunnerOptions::default()).unwrap();
    let again = fresh.resolve_image(&base.pinned, None).await.unwrap();
    assert_eq!(again.layers, base.layers);
    assert!(fresh.resolve_image("docker.io/library/nothere:1", None).await.is_err());
}

use testkit::harness::AsyncTest;

fn main() {
    if let Some(code) = executor::init::maybe_run_init() {
        std::process::exit(code);
    }
    if !testkit::root_or_skip() {
        return;
    }
    let tests = vec![
        AsyncTest {
            name: "run_writes_only_its_file",
            needs_real_root: true,
            test: || Box::pin(run_writes_only_its_file()),
        },
        AsyncTest {
            name: "run_failure_reports_command_code_and_tail",
            needs_real_root: true,
            test: || Box::pin(run_failure_reports_command_code_and_tail()),
        },
        AsyncTest {
            name: "cache_mount_persists_and_stays_out_of_layers",
            needs_real_root: true,
            test: || Box::pin(cache_mount_persists_and_stays_out_of_layers()),
        },
        AsyncTest {
            name: "secret_is_visible_but_never_in_the_layer",
            needs_real_root: true,
            test: || Box::pin(secret_is_visible_but_never_in_the_layer()),
        },
        AsyncTest {
            name: "mounts_bind_tmpfs_and_cwd",
            needs_real_root: true,
            test: || Box::pin(mounts_bind_tmpfs_and_cwd()),
        },
        AsyncTest {
            name: "checksums_of_context_and_layers",
            needs_real_root: true,
            test: || Box::pin(checksums_of_context_and_layers()),
        },
        AsyncTest {
            name: "store_cache_reuses_results",
            needs_real_root: true,
            test: || Box::pin(store_cache_reuses_results()),
        },
        AsyncTest {
            name: "cancellation_stops_the_process_and_cleans_up",
            needs_real_root: true,
            test: || Box::pin(cancellation_stops_the_process_and_cleans_up()),
        },
        AsyncTest {
            name: "http_download_with_checksum",
            needs_real_root: true,
            test: || Box::pin(http_download_with_checksum()),
        },
        AsyncTest {
            name: "ssh_socket_is_forwarded",
            needs_real_root: true,
            test: || Box::pin(ssh_socket_is_forwarded()),
        },
        AsyncTest {
            name: "pinned_reference_resolves_from_the_store",
            needs_real_root: true,
            test: || Box::pin(pinned_reference_resolves_from_the_store()),
        },
        AsyncTest {
            name: "copy_onto_an_image_of_many_layers",
            needs_real_root: true,
            test: || Box::pin(tall::copy_onto_an_image_of_many_layers()),
        },
        AsyncTest {
            name: "copy_again_shares_unchanged_files",
            needs_real_root: true,
            test: || Box::pin(reuse::copy_again_shares_unchanged_files()),
        },
    ];
    testkit::harness::run(tests, true);
}

//! Runner tests over the fake seams (`testkit::fakes`: a directory snapshotter, a recording
//! executor): COPY and file-action semantics, what a RUN is given and what it commits,
//! cache-mount sharing. No overlay, no sandbox, no root: as a normal user the binary first
//! makes itself root of its own user namespace (COPY owns files as root), which is why it has
//! its own `main` (`harness = false`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::Store;
use tokio_util::sync::CancellationToken;

use solver::graph::{
    CacheMount, CacheSharing, Chmod, ChownOpt, CopyAction, ExecOp, FileAction, FileOp, GraphBuilder, Input,
    LocalSource, MergeOp, MkdirAction, MkfileAction, Mount, MountKind, NetworkMode, Op, RmAction,
    SecretMount, UserOpt, VertexMetadata,
};
use solver::progress::ProgressSender;
use solver::runner::exec::TAIL_LINES;
use solver::runner::{
    BuildRef, FileOpError, LocalDirOptions, Runner, RunnerError, RunnerOptions, SecretValue,
};
use solver::scheduler::{MemoryCache, RunError, SolveError, SolveOptions, Solver};
use testkit::fakes::{DirSnapshotter, FakeExecutor};

type Entries = BTreeMap<String, (u32, u64, u64, Vec<u8>)>;

struct Env {
    dir: tempfile::TempDir,
    store: Store,
    executor: Arc<FakeExecutor>,
    runner: Arc<Runner>,
}

impl Env {
    fn new(configure: impl FnOnce(&mut RunnerOptions)) -> Env {
        let dir = tempfile::Builder::new().prefix("kiln-fake-runner-").tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let context = dir.path().join("context");
        std::fs::create_dir_all(&context).unwrap();
        let mut options = RunnerOptions::default();
        options.locals.insert("context".into(), LocalDirOptions { path: context, excludes: Vec::new() });
        configure(&mut options);
        let executor = Arc::new(FakeExecutor::default());
        let snapshotter = Arc::new(DirSnapshotter::new(store.clone(), &dir.path().join("trees")));
        let runner = Runner::with_seams(store.clone(), executor.clone(), snapshotter, None, options).unwrap();
        Env { dir, store, executor, runner: Arc::new(runner) }
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

    /// Entries of the top layer: path → (mode, uid, gid, content).
    fn top_entries(&self, result: &BuildRef) -> Entries {
        let layer = result.layers().unwrap().last().unwrap();
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

    /// The runner left nothing in the store's temp area.
    fn assert_clean(&self) {
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

fn mkfile(path: &str, data: &str) -> FileAction {
    FileAction::Mkfile(MkfileAction {
        path: path.into(),
        mode: 0o644,
        data: data.as_bytes().to_vec(),
        make_parents: Some(0o755),
        owner: None,
        timestamp: None,
    })
}

/// A small base image made by a file op on scratch: users, groups, a binary.
fn base(b: &mut GraphBuilder) -> Input {
    let actions = vec![
        mkfile("/etc/passwd", "root:x:0:0::/root:/bin/sh\nwww-data:x:33:34::/var/www:/bin/sh\n"),
        mkfile("/etc/group", "root:x:0:\nstaff:x:50:\n"),
        mkfile("/bin/ls", "ls"),
        mkfile("/bin/cat", "cat"),
    ];
    b.add_output(Op::File(FileOp { base: None, actions }), vec![], meta("base")).unwrap()
}

fn context(b: &mut GraphBuilder) -> Input {
    let op = Op::Source(solver::graph::SourceOp::Local(LocalSource {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec![],
        follow_paths: vec![],
        shared_key: String::new(),
    }));
    b.add_output(op, vec![], meta("context")).unwrap()
}

fn file_op(b: &mut GraphBuilder, inputs: Vec<Input>, actions: Vec<FileAction>) -> Input {
    b.add_output(Op::File(FileOp { base: Some(0), actions }), inputs, meta("file")).unwrap()
}

fn exec_op(script: &str, extra: Vec<Mount>) -> Op {
    let mut mounts = vec![Mount::rootfs()];
    mounts.extend(extra);
    Op::Exec(ExecOp {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        proxy_env: Vec::new(),
        env: vec!["A=1".into()],
        cwd: "/work".into(),
        user: String::new(),
        hostname: None,
        network: NetworkMode::None,
        sandbox: Default::default(),
        mounts,
    })
}

fn run(b: &mut GraphBuilder, on: Input, script: &str, extra: Vec<Mount>) -> Input {
    b.add_output(exec_op(script, extra), vec![on], meta(script)).unwrap()
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn runner_error(error: SolveError) -> RunnerError {
    let SolveError::Vertex { source: RunError::Failed(inner), .. } = error else {
        panic!("unexpected {error:?}")
    };
    *inner.downcast::<RunnerError>().expect("a runner error")
}

async fn copy_follows_dockers_rules_on_a_plain_snapshot() {
    let env = Env::new(|_| {});
    let ctx = env.context();
    write(&ctx.join("a.txt"), "A");
    write(&ctx.join("b.txt"), "B");
    write(&ctx.join("c.md"), "C");
    write(&ctx.join("dir/sub/x.txt"), "X");
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("dir/outside")).unwrap();

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut globbed = CopyAction::new(1, "*.txt", "/dst/");
    globbed.allow_wildcard = true;
    globbed.create_dest_path = true;
    globbed.follow_symlinks = true;
    globbed.mode = Some(Chmod::Octal(0o640));
    let mut dir = CopyAction::new(1, "dir", "/tree");
    dir.copy_dir_contents = true;
    dir.create_dest_path = true;
    dir.follow_symlinks = true;
    let step = file_op(&mut b, vec![from, local], vec![FileAction::Copy(globbed), FileAction::Copy(dir)]);
    let result = env.solve(b, step).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), 2);
    let entries = env.top_entries(&result);
    let names: Vec<&String> = entries.keys().collect();
    assert_eq!(
        names,
        vec!["dst", "dst/a.txt", "dst/b.txt", "tree", "tree/outside", "tree/sub", "tree/sub/x.txt"]
    );
    assert_eq!(entries["dst/a.txt"].0 & 0o7777, 0o640);
    assert_eq!(entries["dst/b.txt"].3, b"B");
    assert_eq!(entries["tree"].0 & 0o7777, 0o755);
    assert_eq!((entries["tree/sub/x.txt"].1, entries["tree/sub/x.txt"].2), (0, 0));
    assert!(entries["tree/outside"].3.is_empty(), "a symlink stays a symlink");

    // following the symlink resolves inside the context; `..` cannot climb out of it
    for source in ["dir/outside", "../../../../../etc/passwd"] {
        let mut b = GraphBuilder::new();
        let from = base(&mut b);
        let local = context(&mut b);
        let mut leak = CopyAction::new(1, source, "/leak");
        leak.follow_symlinks = true;
        let step = file_op(&mut b, vec![from, local], vec![FileAction::Copy(leak)]);
        // (the checksum of the sources finds it missing before the copy runs)
        let error = env.solve(b, step).await.unwrap_err();
        assert!(
            matches!(
                &error,
                SolveError::Vertex {
                    source: RunError::ChecksumOf {
                        source: solver::contenthash::ContentHashError::NotFound { .. },
                        ..
                    },
                    ..
                }
            ),
            "{source}: {error:?}"
        );
    }
    env.assert_clean();
}

async fn file_actions_make_dirs_files_and_whiteouts() {
    let env = Env::new(|_| {});
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let actions = vec![
        FileAction::Mkdir(MkdirAction {
            path: "/app/data".into(),
            mode: 0o750,
            make_parents: true,
            owner: None,
            timestamp: None,
        }),
        FileAction::Mkfile(MkfileAction {
            path: "/app/data/note".into(),
            mode: 0o600,
            data: b"heredoc\n".to_vec(),
            make_parents: None,
            owner: None,
            timestamp: Some(1_000_000),
        }),
        FileAction::Rm(RmAction { path: "/bin/cat".into(), allow_not_found: false, allow_wildcard: false }),
    ];
    let step = file_op(&mut b, vec![from], actions);
    let result = env.solve(b, step).await.unwrap();
    let entries = env.top_entries(&result);
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        vec!["app", "app/data", "app/data/note", "bin", "bin/.wh.cat"],
        "only what changed, and a whiteout for the removed file"
    );
    assert_eq!(entries["app/data"].0 & 0o7777, 0o750);
    assert_eq!(
        (entries["app/data/note"].0 & 0o7777, &entries["app/data/note"].3[..]),
        (0o600, &b"heredoc\n"[..])
    );

    // removing what is not there fails unless allowed
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let rm = RmAction { path: "/nothere".into(), allow_not_found: false, allow_wildcard: false };
    let step = file_op(&mut b, vec![from], vec![FileAction::Rm(rm)]);
    let error = runner_error(env.solve(b, step).await.unwrap_err());
    assert!(matches!(error, RunnerError::File(FileOpError::RmNotFound(_))), "{error:?}");
    env.assert_clean();
}

async fn chown_names_resolve_in_the_destination() {
    let env = Env::new(|_| {});
    write(&env.context().join("f"), "F");
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut user = CopyAction::new(1, "f", "/as-user");
    user.owner = Some(ChownOpt { user: Some(UserOpt::Name("www-data".into())), group: None });
    let mut both = CopyAction::new(1, "f", "/as-both");
    both.owner = Some(ChownOpt {
        user: Some(UserOpt::Name("www-data".into())),
        group: Some(UserOpt::Name("staff".into())),
    });
    let mut unknown = CopyAction::new(1, "f", "/nobody");
    unknown.owner = Some(ChownOpt { user: Some(UserOpt::Name("nobody".into())), group: None });
    let step = file_op(
        &mut b,
        vec![from.clone(), local.clone()],
        vec![FileAction::Copy(user), FileAction::Copy(both)],
    );
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    assert_eq!((entries["as-user"].1, entries["as-user"].2), (33, 34));
    assert_eq!((entries["as-both"].1, entries["as-both"].2), (33, 50));

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let step = file_op(&mut b, vec![from, local], vec![FileAction::Copy(unknown)]);
    let error = runner_error(env.solve(b, step).await.unwrap_err());
    assert!(
        matches!(error, RunnerError::File(FileOpError::UnknownUser(ref u)) if u == "nobody"),
        "{error:?}"
    );

    // --chown owns the directory the copy creates and an archive's entries (current BuildKit)
    make_archives(&env);
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut owned = CopyAction::new(1, "pkg.tar.gz", "/owned/");
    owned.attempt_unpack_archive = true;
    owned.create_dest_path = true;
    owned.owner = Some(ChownOpt { user: Some(UserOpt::Name("www-data".into())), group: None });
    let step = file_op(&mut b, vec![from, local], vec![FileAction::Copy(owned)]);
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    for path in ["owned", "owned/pkg", "owned/pkg/readme"] {
        assert_eq!((entries[path].1, entries[path].2), (33, 34), "{path}");
    }
    assert_eq!(entries["owned/pkg/readme"].3, b"hello tar");
    env.assert_clean();
}

/// `pkg.tar.gz`, `.bz2` and `.xz` (each `pkg/readme`) and a text file named like an archive in
/// the context.
fn make_archives(env: &Env) {
    let ctx = env.context();
    let src = env.dir.path().join("tarsrc");
    write(&src.join("pkg/readme"), "hello tar");
    for (flag, name) in [("-z", "pkg.tar.gz"), ("-j", "pkg.tar.bz2"), ("-J", "pkg.tar.xz")] {
        let status = std::process::Command::new("tar")
            .args(["-c", flag, "-f", &ctx.join(name).to_string_lossy(), "-C", &src.to_string_lossy(), "pkg"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    write(&ctx.join("plain.gz.txt"), "not an archive");
}

async fn add_extracts_archives_and_refuses_hostile_ones() {
    let env = Env::new(|_| {});
    make_archives(&env);
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut actions = Vec::new();
    for (name, dest) in [
        ("pkg.tar.gz", "/opt/"),
        ("pkg.tar.bz2", "/bz/"),
        ("pkg.tar.xz", "/xz/"),
        ("plain.gz.txt", "/plain/"),
    ] {
        let mut add = CopyAction::new(1, name, dest);
        add.attempt_unpack_archive = true;
        add.create_dest_path = true;
        add.follow_symlinks = true;
        actions.push(FileAction::Copy(add));
    }
    actions.push(FileAction::Mkfile(MkfileAction {
        path: "/made/deep/file".into(),
        mode: 0o644,
        data: b"parents\n".to_vec(),
        make_parents: Some(0o700),
        owner: None,
        timestamp: None,
    }));
    let step = file_op(&mut b, vec![from, local], actions);
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    for dir in ["opt", "bz", "xz"] {
        assert_eq!(entries[&format!("{dir}/pkg/readme")].3, b"hello tar", "{dir}");
    }
    assert!(!entries.contains_key("opt/pkg.tar.gz"));
    assert_eq!(entries["plain/plain.gz.txt"].3, b"not an archive");
    assert_eq!((entries["opt/pkg/readme"].1, entries["opt/pkg/readme"].2), (0, 0));
    assert_eq!(entries["made/deep"].0 & 0o7777, 0o700);
    assert_eq!(entries["made/deep/file"].3, b"parents\n");

    // a hostile archive cannot write outside the destination
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    archive.append(&header, &b"evil"[..]).unwrap();
    std::fs::write(env.context().join("evil.tar"), archive.into_inner().unwrap()).unwrap();
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let local = context(&mut b);
    let mut add = CopyAction::new(1, "evil.tar", "/x/y/");
    add.attempt_unpack_archive = true;
    add.create_dest_path = true;
    let step = file_op(&mut b, vec![from, local], vec![FileAction::Copy(add)]);
    if let Ok(result) = env.solve(b, step).await {
        let entries = env.top_entries(&result);
        assert!(entries.keys().all(|k| k.starts_with("x/y") || k == "x"), "{entries:?}");
    }
    assert!(!env.dir.path().join("escaped").exists());
    assert!(!env.dir.path().join("trees/escaped").exists());
    env.assert_clean();
}

async fn run_gets_its_spec_and_commits_what_it_wrote() {
    let env = Env::new(|_| {});
    env.executor.script("echo hi > /hello && rm /bin/ls", |process| {
        std::fs::write(process.host_path("/hello"), "hi\n")?;
        std::fs::remove_file(process.host_path("/bin/ls"))?;
        Ok(0)
    });
    env.executor.script("cat /hello > /two", |process| {
        std::fs::copy(process.host_path("/hello"), process.host_path("/two"))?;
        Ok(0)
    });
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let one = run(&mut b, from, "echo hi > /hello && rm /bin/ls", vec![]);
    let two = run(&mut b, one, "cat /hello > /two", vec![]);
    let result = env.solve(b, two).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), 3);
    assert_eq!(env.top_entries(&result).keys().collect::<Vec<_>>(), vec!["two"]);
    let one = result.layers().unwrap()[..2].to_vec();
    let first = env.top_entries(&BuildRef::from_layers(one));
    assert_eq!(first.keys().collect::<Vec<_>>(), vec!["bin", "bin/.wh.ls", "hello"]);

    let specs = env.executor.specs();
    assert_eq!(specs.len(), 2);
    let spec = &specs[0];
    assert_eq!(spec.process.args, vec!["/bin/sh", "-c", "echo hi > /hello && rm /bin/ls"]);
    assert_eq!(spec.process.env, vec!["A=1".to_owned(), format!("PATH={}", executor::process::DEFAULT_PATH)]);
    assert_eq!(spec.process.cwd, PathBuf::from("/work"));
    assert!(!spec.process.hostname_env, "build steps get no HOSTNAME");
    assert_eq!(spec.network, executor::NetworkMode::None);
    assert!(matches!(spec.rootfs, executor::Rootfs::Dir(_)), "{:?}", spec.rootfs);
    env.assert_clean();
}

async fn run_failure_reports_the_code_and_the_last_lines() {
    let env = Env::new(|_| {});
    let script = "for i in $(seq 1 30); do echo out$i; done; echo oops; exit 3";
    env.executor.script(script, |process| {
        for i in 1..=30 {
            process.print(&format!("out{i}\n"));
        }
        process.print("oops\n");
        Ok(3)
    });
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, script, vec![]);
    let error = runner_error(env.solve(b, step).await.unwrap_err());
    let RunnerError::Process(failed) = &error else { panic!("unexpected {error:?}") };
    assert_eq!(failed.exit_code, 3);
    assert_eq!(failed.output_tail.len(), TAIL_LINES);
    assert_eq!(
        (failed.output_tail[0].as_str(), failed.output_tail.last().unwrap().as_str()),
        ("out12", "oops")
    );
    env.assert_clean();
}

fn cache_mount(id: &str, dest: &str, input: Option<u32>, selector: &str) -> Mount {
    Mount {
        input,
        selector: selector.into(),
        dest: dest.into(),
        output: None,
        readonly: false,
        kind: MountKind::Cache(CacheMount {
            id: id.into(),
            sharing: CacheSharing::Locked,
            uid: None,
            gid: None,
            mode: None,
        }),
    }
}

async fn cache_mounts_are_shared_and_stay_out_of_layers() {
    let env = Env::new(|_| {});
    env.executor.script("fill", |process| {
        std::fs::write(process.host_path("/cache/x"), "cached\n")?;
        std::fs::write(process.host_path("/a"), "a")?;
        Ok(0)
    });
    env.executor.script("read", |process| {
        std::fs::copy(process.host_path("/cache/x"), process.host_path("/seen"))?;
        Ok(0)
    });
    env.executor.script("seeded", |process| {
        std::fs::copy(process.host_path("/seeded/passwd"), process.host_path("/p"))?;
        Ok(0)
    });
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "fill", vec![cache_mount("c1", "/cache", None, "")]);
    let first = env.solve(b, step).await.unwrap();
    assert_eq!(env.top_entries(&first).keys().collect::<Vec<_>>(), vec!["a"]);

    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "read", vec![cache_mount("c1", "/cache", None, "")]);
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["seen"]);
    assert_eq!(entries["seen"].3, b"cached\n");

    // `from=`: a new cache directory starts with the source's content
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "seeded", vec![cache_mount("c2", "/seeded", Some(0), "/etc")]);
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    assert!(String::from_utf8_lossy(&entries["p"].3).contains("www-data"));
    env.assert_clean();
}

async fn secrets_are_given_but_never_committed() {
    let env = Env::new(|options| {
        options.secrets.insert("tok".into(), SecretValue::Bytes(b"s3cret".to_vec()));
    });
    env.executor.script("use secret", |process| {
        let secret = std::fs::read_to_string(process.host_path("/run/secrets/tok"))?;
        let variable = process.spec.process.env.iter().find_map(|e| e.strip_prefix("TOK=")).unwrap_or("");
        std::fs::write(process.host_path("/out"), format!("{secret}{variable}"))?;
        Ok(0)
    });
    let secret = Mount {
        input: None,
        selector: String::new(),
        dest: "/run/secrets/tok".into(),
        output: None,
        readonly: true,
        kind: MountKind::Secret(SecretMount {
            id: "tok".into(),
            env: Some("TOK".into()),
            uid: 0,
            gid: 0,
            mode: 0o400,
            optional: false,
        }),
    };
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let step = run(&mut b, from, "use secret", vec![secret]);
    let entries = env.top_entries(&env.solve(b, step).await.unwrap());
    assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["out"]);
    assert_eq!(entries["out"].3, b"s3crets3cret");
    env.assert_clean();
}

async fn merge_and_checksums_read_chains_through_views() {
    use solver::contenthash::Selection;
    use solver::scheduler::OpRunner;
    let env = Env::new(|_| {});
    env.executor.script("both", |process| {
        let mut both = std::fs::read(process.host_path("/one"))?;
        both.extend(std::fs::read(process.host_path("/two"))?);
        std::fs::write(process.host_path("/both"), both)?;
        Ok(0)
    });
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let one = b
        .add_output(Op::File(FileOp { base: None, actions: vec![mkfile("/one", "1")] }), vec![], meta("one"))
        .unwrap();
    let two = b
        .add_output(Op::File(FileOp { base: None, actions: vec![mkfile("/two", "2")] }), vec![], meta("two"))
        .unwrap();
    let merged = b.add_output(Op::Merge(MergeOp {}), vec![from, one, two], meta("merge")).unwrap();
    let step = run(&mut b, merged, "both", vec![]);
    let result = env.solve(b, step).await.unwrap();
    assert_eq!(result.layers().unwrap().len(), 4);
    assert_eq!(env.top_entries(&result)["both"].3, b"12");

    let cancel = CancellationToken::new();
    let mut b = GraphBuilder::new();
    let from = base(&mut b);
    let base_ref = env.solve(b, from).await.unwrap();
    let passwd = Selection::path("/etc/passwd");
    let on_base = env.runner.checksum(&base_ref, &passwd, &cancel).await.unwrap();
    assert_eq!(env.runner.checksum(&result, &passwd, &cancel).await.unwrap(), on_base);
    assert_ne!(env.runner.checksum(&result, &Selection::path("/"), &cancel).await.unwrap(), on_base);
    env.assert_clean();
}

use testkit::harness::AsyncTest;

fn main() {
    // decided before entering the namespace, where every process is uid 0
    let real_root = testkit::is_root();
    match testkit::fakes::enter_user_namespace() {
        Ok(true) => eprintln!("runner_fakes: running as root of a new user namespace"),
        Ok(false) => {}
        Err(error) => panic!("cannot enter a user namespace: {error}"),
    }
    // (name, needs real root: owners other than uid 0, test)
    let tests = vec![
        AsyncTest {
            name: "copy_follows_dockers_rules_on_a_plain_snapshot",
            needs_real_root: false,
            test: || Box::pin(copy_follows_dockers_rules_on_a_plain_snapshot()),
        },
        AsyncTest {
            name: "file_actions_make_dirs_files_and_whiteouts",
            needs_real_root: false,
            test: || Box::pin(file_actions_make_dirs_files_and_whiteouts()),
        },
        AsyncTest {
            name: "add_extracts_archives_and_refuses_hostile_ones",
            needs_real_root: false,
            test: || Box::pin(add_extracts_archives_and_refuses_hostile_ones()),
        },
        AsyncTest {
            name: "chown_names_resolve_in_the_destination",
            needs_real_root: true,
            test: || Box::pin(chown_names_resolve_in_the_destination()),
        },
        AsyncTest {
            name: "run_gets_its_spec_and_commits_what_it_wrote",
            needs_real_root: false,
            test: || Box::pin(run_gets_its_spec_and_commits_what_it_wrote()),
        },
        AsyncTest {
            name: "run_failure_reports_the_code_and_the_last_lines",
            needs_real_root: false,
            test: || Box::pin(run_failure_reports_the_code_and_the_last_lines()),
        },
        AsyncTest {
            name: "cache_mounts_are_shared_and_stay_out_of_layers",
            needs_real_root: false,
            test: || Box::pin(cache_mounts_are_shared_and_stay_out_of_layers()),
        },
        AsyncTest {
            name: "secrets_are_given_but_never_committed",
            needs_real_root: false,
            test: || Box::pin(secrets_are_given_but_never_committed()),
        },
        AsyncTest {
            name: "merge_and_checksums_read_chains_through_views",
            needs_real_root: false,
            test: || Box::pin(merge_and_checksums_read_chains_through_views()),
        },
    ];
    testkit::harness::run(tests, real_root);
}

use super::*;
use crate::golden;

fn meta(name: &str) -> VertexMetadata {
    VertexMetadata { description: Some(name.to_owned()), ..VertexMetadata::default() }
}

fn image(reference: &str) -> Op {
    Op::Source(SourceOp::Image(ImageSource {
        reference: reference.to_owned(),
        platform: Some(Platform { os: "linux".into(), architecture: "amd64".into(), variant: None }),
    }))
}

fn context() -> Op {
    Op::Source(SourceOp::Local(LocalSource {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec!["*.log".into(), "!keep.log".into()],
        follow_paths: vec![],
        shared_key: "ctx-key".into(),
    }))
}

fn run(args: &[&str], extra_mounts: Vec<Mount>) -> Op {
    let mut mounts = vec![Mount::rootfs()];
    mounts.extend(extra_mounts);
    Op::Exec(ExecOp {
        args: args.iter().map(|s| s.to_string()).collect(),
        proxy_env: Vec::new(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cwd: "/src".into(),
        user: String::new(),
        hostname: None,
        network: NetworkMode::Default,
        sandbox: Default::default(),
        mounts,
    })
}

/// Two stages: `build` runs make with cache/secret mounts, `final` copies its output.
pub(crate) fn multi_stage() -> Definition {
    let mut b = GraphBuilder::new();
    let base = b
        .add_output(image("docker.io/library/busybox:latest"), vec![], meta("[build 1/4] FROM busybox"))
        .unwrap();
    let ctx = b.add_output(context(), vec![], meta("[internal] load build context")).unwrap();
    let mut copy = CopyAction::new(1, "/src", "/src/");
    copy.copy_dir_contents = true;
    copy.follow_symlinks = true;
    copy.create_dest_path = true;
    copy.allow_wildcard = true;
    let copied = b
        .add_output(
            Op::File(FileOp { base: Some(0), actions: vec![FileAction::Copy(copy)] }),
            vec![base.clone(), ctx.clone()],
            meta("[build 2/4] COPY src /src/"),
        )
        .unwrap();
    let cache_mount = Mount {
        input: None,
        selector: String::new(),
        dest: "/root/.cache".into(),
        output: None,
        readonly: false,
        kind: MountKind::Cache(CacheMount {
            id: "go-build".into(),
            sharing: CacheSharing::Locked,
            uid: None,
            gid: None,
            mode: None,
        }),
    };
    let secret_mount = Mount {
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
    };
    let built = b
        .add_output(
            run(&["/bin/sh", "-c", "make"], vec![cache_mount, secret_mount]),
            vec![copied],
            meta("[build 3/4] RUN make"),
        )
        .unwrap();
    let scratch = b.add_output(Op::Source(SourceOp::Scratch), vec![], VertexMetadata::default()).unwrap();
    let mut from_build = CopyAction::new(1, "/src/out/app", "/usr/bin/app");
    from_build.mode = Some(Chmod::Octal(0o755));
    from_build.owner =
        Some(ChownOpt { user: Some(UserOpt::Name("daemon".into())), group: Some(UserOpt::Id(1)) });
    let final_fs = b
        .add_output(
            Op::File(FileOp {
                base: Some(0),
                actions: vec![
                    FileAction::Mkdir(MkdirAction {
                        path: "/etc/app".into(),
                        mode: 0o755,
                        make_parents: true,
                        owner: None,
                        timestamp: None,
                    }),
                    FileAction::Mkfile(MkfileAction {
                        path: "/etc/app/config".into(),
                        mode: 0o644,
                        data: b"level=debug\n".to_vec(),
                        make_parents: None,
                        owner: None,
                        timestamp: Some(0),
                    }),
                    FileAction::Copy(from_build),
                    FileAction::Rm(RmAction {
                        path: "/tmp/*".into(),
                        allow_not_found: true,
                        allow_wildcard: true,
                    }),
                ],
            }),
            vec![scratch, built],
            meta("[final 2/2] COPY --from=build --chmod=755 /src/out/app /usr/bin/app"),
        )
        .unwrap();
    b.finish(vec![final_fs]).unwrap()
}

/// `COPY --link` of two contexts merged onto an image.
pub(crate) fn linked_copies() -> Definition {
    let mut b = GraphBuilder::new();
    let base = b.add_output(image("docker.io/library/alpine:3.20@sha256:0000000000000000000000000000000000000000000000000000000000000000"), vec![], meta("FROM alpine")).unwrap();
    let ctx = b.add_output(context(), vec![], meta("[internal] load build context")).unwrap();
    let mut layers = vec![base];
    for (i, file) in ["a.txt", "b.txt"].iter().enumerate() {
        let mut copy = CopyAction::new(0, format!("/{file}"), "/app/");
        copy.create_dest_path = true;
        let layer = b
            .add_output(
                Op::File(FileOp { base: None, actions: vec![FileAction::Copy(copy)] }),
                vec![ctx.clone()],
                meta(&format!("[{}/2] COPY --link {file} /app/", i + 1)),
            )
            .unwrap();
        layers.push(layer);
    }
    let merged = b.add_output(Op::Merge(MergeOp {}), layers, meta("merge")).unwrap();
    b.finish(vec![merged]).unwrap()
}

/// Every mount kind, `--network=none`, an HTTP source and a `RUN --mount=from=` bind.
pub(crate) fn mounts() -> Definition {
    let mut b = GraphBuilder::new();
    let base = b.add_output(image("docker.io/library/debian:12"), vec![], meta("FROM debian:12")).unwrap();
    let tools = b.add_output(image("docker.io/library/golang:1.23"), vec![], meta("FROM golang")).unwrap();
    let download = b
        .add_output(
            Op::Source(SourceOp::Http(HttpSource {
                url: "https://example.invalid/tool.tar.gz".into(),
                checksum: Some(
                    "sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
                ),
                filename: None,
                mode: Some(0o644),
            })),
            vec![],
            meta("ADD https://example.invalid/tool.tar.gz"),
        )
        .unwrap();
    let mount = |input: Option<u32>, dest: &str, kind: MountKind| Mount {
        input,
        selector: String::new(),
        dest: dest.into(),
        output: None,
        readonly: false,
        kind,
    };
    let mut bind = mount(Some(1), "/usr/local/go", MountKind::Bind);
    bind.selector = "/usr/local/go".into();
    bind.readonly = true;
    let mut op = run(
        &["/bin/sh", "-c", "make"],
        vec![
            bind,
            mount(Some(2), "/downloads", MountKind::Bind),
            mount(None, "/tmp", MountKind::Tmpfs(TmpfsMount { size: Some(64 << 20) })),
            mount(
                None,
                "/root/.ssh/agent",
                MountKind::Ssh(SshMount {
                    id: "default".into(),
                    uid: 0,
                    gid: 0,
                    mode: 0o600,
                    optional: true,
                }),
            ),
            mount(
                None,
                "/run/secrets/npm",
                MountKind::Secret(SecretMount {
                    id: "npm".into(),
                    env: Some("NPM_TOKEN".into()),
                    uid: 1000,
                    gid: 1000,
                    mode: 0o400,
                    optional: false,
                }),
            ),
        ],
    );
    if let Op::Exec(exec) = &mut op {
        exec.network = NetworkMode::None;
        exec.user = "builder:builder".into();
        exec.hostname = Some("buildhost".into());
        exec.mounts[2].output = Some(1);
    }
    let built = b.add(op, vec![base, tools, download], meta("[2/2] RUN --mount=... make")).unwrap();
    b.finish(vec![Input { digest: built.clone(), output: 0 }, Input { digest: built, output: 1 }]).unwrap()
}

#[test]
fn golden_graphs() {
    for (name, def) in
        [("multi-stage", multi_stage()), ("linked-copies", linked_copies()), ("mounts", mounts())]
    {
        let json = def.to_json_pretty().unwrap() + "\n";
        golden::check(&format!("graphs/{name}.json"), &json);
        let back = Definition::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, def);
    }
}

#[test]
fn identical_vertices_are_deduplicated_and_metadata_does_not_change_digests() {
    let mut b = GraphBuilder::new();
    let a = b.add(image("docker.io/library/busybox:latest"), vec![], meta("one")).unwrap();
    let again = b.add(image("docker.io/library/busybox:latest"), vec![], meta("two")).unwrap();
    assert_eq!(a, again);
    let def = b.finish(vec![Input { digest: a.clone(), output: 0 }]).unwrap();
    assert_eq!(def.vertices.len(), 1);
    assert_eq!(def.vertices[0].metadata.description.as_deref(), Some("one"));
    let mut other = GraphBuilder::new();
    let mut m = meta("else");
    m.ignore_cache = true;
    m.progress_group = Some("stage".into());
    assert_eq!(other.add(image("docker.io/library/busybox:latest"), vec![], m).unwrap(), a);
}

#[test]
fn digests_depend_on_inputs_and_fields() {
    let mut b = GraphBuilder::new();
    let busybox = b.add_output(image("docker.io/library/busybox:latest"), vec![], meta("a")).unwrap();
    let alpine = b.add_output(image("docker.io/library/alpine:latest"), vec![], meta("b")).unwrap();
    let on_busybox = b.add(run(&["true"], vec![]), vec![busybox.clone()], meta("c")).unwrap();
    let on_alpine = b.add(run(&["true"], vec![]), vec![alpine], meta("d")).unwrap();
    assert_ne!(on_busybox, on_alpine);
    let other_cmd = b.add(run(&["false"], vec![]), vec![busybox], meta("e")).unwrap();
    assert_ne!(on_busybox, other_cmd);
}

#[test]
fn unused_vertices_are_dropped_on_finish() {
    let mut b = GraphBuilder::new();
    let used = b.add_output(image("docker.io/library/busybox:latest"), vec![], meta("a")).unwrap();
    b.add_output(image("docker.io/library/alpine:latest"), vec![], meta("b")).unwrap();
    let def = b.finish(vec![used]).unwrap();
    assert_eq!(def.vertices.len(), 1);
}

#[test]
fn invalid_graphs_are_refused() {
    let mut b = GraphBuilder::new();
    let unknown = Input { digest: cache::sha256_digest(b"nothing"), output: 0 };
    assert!(matches!(
        b.add(run(&["true"], vec![]), vec![unknown], meta("x")),
        Err(GraphError::UnknownInput { .. })
    ));
    let base = b.add_output(image("docker.io/library/busybox:latest"), vec![], meta("a")).unwrap();
    let bad_output = Input { digest: base.digest.clone(), output: 1 };
    assert!(matches!(
        b.add(run(&["true"], vec![]), vec![bad_output], meta("x")),
        Err(GraphError::NoSuchOutput { .. })
    ));
    // Root mount refers to input 0 but the vertex has none.
    assert!(matches!(b.add(run(&["true"], vec![]), vec![], meta("x")), Err(GraphError::InputIndex { .. })));
    let relative = Op::File(FileOp {
        base: Some(0),
        actions: vec![FileAction::Rm(RmAction {
            path: "etc".into(),
            allow_not_found: false,
            allow_wildcard: false,
        })],
    });
    assert!(matches!(b.add(relative, vec![base.clone()], meta("x")), Err(GraphError::InvalidOp { .. })));
    let mut gap = run(&["true"], vec![]);
    if let Op::Exec(exec) = &mut gap {
        exec.mounts[0].output = Some(1);
    }
    assert!(matches!(b.add(gap, vec![base], meta("x")), Err(GraphError::InvalidOp { .. })));
    assert!(matches!(GraphBuilder::new().finish(vec![]), Err(GraphError::NoTargets)));
}

#[test]
fn tampered_definitions_are_refused() {
    let def = linked_copies();
    let mut json: serde_json::Value = serde_json::to_value(&def).unwrap();
    json["vertices"][0]["op"]["source"]["image"]["reference"] = "docker.io/library/evil:latest".into();
    let bytes = serde_json::to_vec(&json).unwrap();
    assert!(matches!(Definition::from_json(&bytes), Err(GraphError::DigestMismatch { .. })));
}

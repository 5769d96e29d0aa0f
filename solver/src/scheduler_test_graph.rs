//! Graph pieces shared by the scheduler's fake-runner tests (`scheduler_tests.rs`,
//! `scheduler_mount_tests.rs`): ops named by their description, as the fakes count runs by name.

use crate::graph::*;

pub(super) fn meta(name: &str) -> VertexMetadata {
    VertexMetadata { description: Some(name.to_owned()), ..VertexMetadata::default() }
}

pub(super) fn exec(args: &[&str], mounts: Vec<Mount>) -> Op {
    Op::Exec(ExecOp {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        cwd: "/".into(),
        user: String::new(),
        hostname: None,
        network: NetworkMode::Default,
        sandbox: Default::default(),
        mounts,
        proxy_env: vec![],
    })
}

/// `FROM busybox`.
pub(super) fn image(b: &mut GraphBuilder) -> Input {
    let op = Op::Source(SourceOp::Image(ImageSource {
        reference: "docker.io/library/busybox:latest".into(),
        platform: None,
    }));
    b.add_output(op, vec![], meta("FROM busybox")).unwrap()
}

/// The build context.
pub(super) fn context(b: &mut GraphBuilder) -> Input {
    let op = Op::Source(SourceOp::Local(LocalSource {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec![],
        follow_paths: vec![],
        shared_key: String::new(),
    }));
    b.add_output(op, vec![], meta("[internal] load build context")).unwrap()
}

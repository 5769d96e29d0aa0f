//! Cache keys: what finds a result across builds.
//!
//! `key = sha256(canonical JSON {schema, op, deps, source})` where
//! - `schema` is [`CACHE_KEY_SCHEMA`] (bump it to invalidate every old key at once);
//! - `op` is the op definition without fields that do not change the result (a local source's
//!   `shared_key` and `follow_paths`, a pinned image's tag, a cache mount's sharing mode);
//!   vertex metadata (descriptions, progress groups) is never part of an op;
//! - `deps` has one entry per input: the parent's cache key and output index when the op uses
//!   the whole input, or the content checksums ([`crate::contenthash`]) of exactly the paths it
//!   reads ([`input_uses`]) — so a context edit outside the copied files keeps the key, and a
//!   `COPY --chmod` ignores the source modes;
//! - `source` is an optional digest a runner resolved for a source op (e.g. the manifest digest
//!   of an unpinned image tag, or the content digest of an HTTP download).
//!
//! Secret values are never part of the graph, so they never enter a key.

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use crate::contenthash::Selection;
use crate::graph::canonical::to_canonical_json;
use crate::graph::{Chmod, ExecOp, FileAction, MountKind, Op, SourceOp};

/// Version of the cache-key derivation.
pub const CACHE_KEY_SCHEMA: u32 = 1;

/// A cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheKey(pub Digest);

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How an op uses one of its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputUse {
    /// The whole filesystem (a base, a rootfs, a writable mount, a merge layer).
    Whole,
    /// Only these paths (copy sources, read-only or output-less mounts).
    Selections(Vec<Selection>),
}

/// What `op` reads from each of its `inputs` inputs.
pub fn input_uses(op: &Op, inputs: usize) -> Vec<InputUse> {
    let mut uses: Vec<Option<InputUse>> = vec![None; inputs];
    let mut add = |index: u32, usage: InputUse| {
        let Some(slot) = uses.get_mut(index as usize) else { return };
        *slot = match (slot.take(), usage) {
            (Some(InputUse::Whole), _) | (_, InputUse::Whole) => Some(InputUse::Whole),
            (Some(InputUse::Selections(mut a)), InputUse::Selections(b)) => {
                a.extend(b);
                Some(InputUse::Selections(a))
            }
            (None, selections) => Some(selections),
        };
    };
    match op {
        Op::Source(_) => {}
        Op::Merge(_) => (0..inputs as u32).for_each(|i| add(i, InputUse::Whole)),
        Op::File(file) => {
            if let Some(base) = file.base {
                add(base, InputUse::Whole);
            }
            for action in &file.actions {
                if let FileAction::Copy(copy) = action {
                    let selection = Selection {
                        path: copy.src.clone(),
                        follow_symlinks: copy.follow_symlinks,
                        wildcard: copy.allow_wildcard,
                        allow_empty: copy.allow_empty_wildcard,
                        include_patterns: copy.include_patterns.clone(),
                        exclude_patterns: copy.exclude_patterns.clone(),
                        required_includes: copy.parents && !copy.src.contains(['*', '?', '[']),
                        include_mode: copy.mode.as_ref().and_then(Chmod::octal).is_none(),
                        include_owner: copy.owner.is_none(),
                    };
                    add(copy.source, InputUse::Selections(vec![selection]));
                }
            }
        }
        Op::Exec(exec) => {
            for mount in &exec.mounts {
                let Some(input) = mount.input else { continue };
                // BuildKit's rule: a mount is keyed by the content of what it mounts when the
                // op cannot change it for anyone else (read-only, or its changes are
                // discarded); never the root filesystem (too costly, and it has an output).
                // Content, not the producer's key: a local source's key does not change with
                // the files, and a stage's sub-path can stay identical when the stage changes.
                let by_content = mount.dest != "/"
                    && matches!(mount.kind, MountKind::Bind | MountKind::Cache(_))
                    && (mount.readonly || mount.output.is_none());
                if by_content {
                    let path =
                        if mount.selector.is_empty() { "/".to_owned() } else { mount.selector.clone() };
                    add(input, InputUse::Selections(vec![Selection::path(path)]));
                } else {
                    add(input, InputUse::Whole);
                }
            }
        }
    }
    uses.into_iter().map(|u| u.unwrap_or(InputUse::Whole)).collect()
}

/// The key material of one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepKey {
    /// The whole input: its producer's key and output index.
    Parent { key: CacheKey, output: u32 },
    /// Content checksums of the selections read, in [`input_uses`] order.
    Content(Vec<Digest>),
}

/// The op with result-irrelevant fields normalised away.
pub fn stripped_op(op: &Op) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Source(SourceOp::Local(local)) => {
            local.shared_key.clear();
            local.follow_paths.clear();
        }
        Op::Source(SourceOp::Image(image)) => {
            if let Some((_, digest)) = image.reference.split_once('@') {
                image.reference = format!("@{digest}");
            }
        }
        Op::Exec(ExecOp { mounts, proxy_env, sandbox, .. }) => {
            // proxies change where the network is reached from, not what a step produces
            proxy_env.clear();
            // an `--add-host` name is part of the key, its address is not (BuildKit's rule)
            for host in &mut sandbox.extra_hosts {
                host.ip.clear();
            }
            for mount in mounts {
                if let MountKind::Cache(cache) = &mut mount.kind {
                    cache.sharing = Default::default();
                }
            }
        }
        Op::Source(_) | Op::File(_) | Op::Merge(_) => {}
    }
    op
}

/// Computes the cache key of `op` given one [`DepKey`] per input.
pub fn compute(op: &Op, deps: &[DepKey], source: Option<&Digest>) -> Result<CacheKey, serde_json::Error> {
    #[derive(Serialize)]
    struct KeyMaterial<'a> {
        schema: u32,
        op: Op,
        deps: &'a [DepKey],
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'a Digest>,
    }
    let material = KeyMaterial { schema: CACHE_KEY_SCHEMA, op: stripped_op(op), deps, source };
    Ok(CacheKey(cache::sha256_digest(&to_canonical_json(&material)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::multi_stage;
    use crate::graph::*;

    fn content(n: u8) -> Digest {
        cache::sha256_digest(&[n])
    }

    /// Keys of a definition with made-up content checksums (one per selection, from `salt`).
    fn keys(def: &Definition, salt: u8) -> Vec<(String, CacheKey)> {
        let mut out: Vec<(Digest, CacheKey)> = Vec::new();
        let mut report = Vec::new();
        for vertex in &def.vertices {
            let uses = input_uses(&vertex.op, vertex.inputs.len());
            let deps: Vec<DepKey> = vertex
                .inputs
                .iter()
                .zip(uses)
                .map(|(input, usage)| match usage {
                    InputUse::Whole => {
                        let key =
                            out.iter().find(|(d, _)| d == &input.digest).map(|(_, k)| k.clone()).unwrap();
                        DepKey::Parent { key, output: input.output }
                    }
                    InputUse::Selections(sels) => {
                        DepKey::Content(sels.iter().map(|_| content(salt)).collect())
                    }
                })
                .collect();
            let key = compute(&vertex.op, &deps, None).unwrap();
            report.push((
                vertex.metadata.description.clone().unwrap_or_else(|| vertex.op.kind().to_owned()),
                key.clone(),
            ));
            out.push((vertex.digest.clone(), key));
        }
        report
    }

    #[test]
    fn golden_cache_keys() {
        let def = multi_stage();
        let mut text = format!("schema {CACHE_KEY_SCHEMA}\n");
        for (name, key) in keys(&def, 1) {
            text.push_str(&format!("{key}  {name}\n"));
        }
        crate::golden::check("cachekeys/multi-stage.txt", &text);
    }

    #[test]
    fn content_change_rekeys_exactly_the_downstream_ops() {
        let def = multi_stage();
        let a = keys(&def, 1);
        let b = keys(&def, 2);
        let changed: Vec<bool> = a.iter().zip(&b).map(|(x, y)| x.1 != y.1).collect();
        // image, context, COPY src, RUN make, scratch, final COPY: the context-reading COPY and
        // the RUN after it change; the final COPY reads by content from the RUN output, which
        // the made-up checksums also changed.
        assert_eq!(changed, vec![false, false, true, true, false, true]);
    }

    #[test]
    fn irrelevant_fields_do_not_change_keys() {
        let local = |shared: &str| {
            Op::Source(SourceOp::Local(LocalSource {
                name: "context".into(),
                include_patterns: vec![],
                exclude_patterns: vec![],
                follow_paths: vec![shared.into()],
                shared_key: shared.into(),
            }))
        };
        assert_eq!(compute(&local("a"), &[], None).unwrap(), compute(&local("b"), &[], None).unwrap());
        let image =
            |r: &str| Op::Source(SourceOp::Image(ImageSource { reference: r.into(), platform: None }));
        let pinned = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(
            compute(&image(&format!("docker.io/library/busybox:latest@{pinned}")), &[], None).unwrap(),
            compute(&image(&format!("docker.io/library/busybox@{pinned}")), &[], None).unwrap()
        );
        assert_ne!(
            compute(&image("docker.io/library/busybox:latest"), &[], None).unwrap(),
            compute(&image("docker.io/library/busybox:latest"), &[], Some(&content(1))).unwrap(),
            "a resolved source digest enters the key"
        );
        let exec = |sharing| {
            Op::Exec(ExecOp {
                args: vec!["true".into()],
                proxy_env: Vec::new(),
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                hostname: None,
                network: NetworkMode::Default,
                sandbox: Default::default(),
                mounts: vec![
                    Mount::rootfs(),
                    Mount {
                        input: None,
                        selector: String::new(),
                        dest: "/cache".into(),
                        output: None,
                        readonly: false,
                        kind: MountKind::Cache(CacheMount {
                            id: "x".into(),
                            sharing,
                            uid: None,
                            gid: None,
                            mode: None,
                        }),
                    },
                ],
            })
        };
        let parent = [DepKey::Parent { key: CacheKey(content(9)), output: 0 }];
        assert_eq!(
            compute(&exec(CacheSharing::Locked), &parent, None).unwrap(),
            compute(&exec(CacheSharing::Private), &parent, None).unwrap()
        );
        let other_parent = [DepKey::Parent { key: CacheKey(content(8)), output: 0 }];
        assert_ne!(
            compute(&exec(CacheSharing::Locked), &parent, None).unwrap(),
            compute(&exec(CacheSharing::Locked), &other_parent, None).unwrap()
        );
    }

    #[test]
    fn copy_selections_follow_the_copy_flags() {
        let mut copy = CopyAction::new(1, "/src/*.rs", "/app/");
        copy.allow_wildcard = true;
        copy.mode = Some(Chmod::Octal(0o755));
        copy.exclude_patterns = vec!["tests".into()];
        let op = Op::File(FileOp { base: Some(0), actions: vec![FileAction::Copy(copy)] });
        let uses = input_uses(&op, 2);
        assert_eq!(uses[0], InputUse::Whole);
        let InputUse::Selections(sels) = &uses[1] else { panic!("expected selections") };
        assert_eq!(sels.len(), 1);
        assert!(sels[0].wildcard && !sels[0].include_mode && sels[0].include_owner);
        assert_eq!(sels[0].exclude_patterns, vec!["tests".to_string()]);
        // A symbolic --chmod applies to the source modes: they stay in the key.
        let mut symbolic = CopyAction::new(1, "/a", "/b");
        symbolic.mode = Some(Chmod::Symbolic("u+x".into()));
        let op = Op::File(FileOp { base: Some(0), actions: vec![FileAction::Copy(symbolic)] });
        let InputUse::Selections(sels) = &input_uses(&op, 2)[1] else { panic!("expected selections") };
        assert!(sels[0].include_mode);
        // Copying from the base itself makes the base a whole dependency.
        let mut inner = CopyAction::new(0, "/a", "/b");
        inner.follow_symlinks = true;
        let op = Op::File(FileOp { base: Some(0), actions: vec![FileAction::Copy(inner)] });
        assert_eq!(input_uses(&op, 1), vec![InputUse::Whole]);
    }

    #[test]
    fn read_only_bind_mounts_of_a_sub_path_are_read_by_content() {
        let def = crate::graph::tests::mounts();
        let exec = def.vertices.last().unwrap();
        let uses = input_uses(&exec.op, exec.inputs.len());
        assert_eq!(uses[0], InputUse::Whole, "rootfs");
        assert_eq!(uses[1], InputUse::Selections(vec![Selection::path("/usr/local/go")]));
        assert_eq!(uses[2], InputUse::Whole, "a writable mount with an output");
    }

    fn exec_with(mount: Mount) -> Op {
        let root = Mount::rootfs();
        Op::Exec(ExecOp {
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: None,
            network: NetworkMode::Default,
            sandbox: Default::default(),
            mounts: vec![root, mount],
            proxy_env: vec![],
        })
    }

    #[test]
    fn mounts_of_a_whole_input_are_read_by_content() {
        // `RUN --mount=target=/src`: the whole context, keyed by its content
        let mut bind = Mount {
            input: Some(1),
            selector: String::new(),
            dest: "/src".into(),
            output: None,
            readonly: true,
            kind: MountKind::Bind,
        };
        let uses = input_uses(&exec_with(bind.clone()), 2);
        assert_eq!(uses, vec![InputUse::Whole, InputUse::Selections(vec![Selection::all()])]);
        // a writable mount whose changes are exported is the producer's result
        bind.readonly = false;
        bind.output = Some(1);
        assert_eq!(input_uses(&exec_with(bind), 2), vec![InputUse::Whole, InputUse::Whole]);
        // `--mount=type=cache,from=stage,source=seed`: the seed's content
        let cache = Mount {
            input: Some(1),
            selector: "/seed".into(),
            dest: "/cache".into(),
            output: None,
            readonly: false,
            kind: MountKind::Cache(CacheMount {
                id: "c".into(),
                sharing: CacheSharing::Shared,
                uid: None,
                gid: None,
                mode: None,
            }),
        };
        let uses = input_uses(&exec_with(cache), 2);
        assert_eq!(uses[1], InputUse::Selections(vec![Selection::path("/seed")]));
    }
}

//! The operations of the build graph (BuildKit's LLB ops): source, exec, file and merge.
//!
//! Inputs of an op are referenced by index into the vertex's `inputs` list. Optional fields and
//! `false` flags are omitted from the encoding, so adding a field later does not change the
//! digests of graphs that do not use it.

use base64::Engine;
use serde::{Deserialize, Serialize};

fn is_false(value: &bool) -> bool {
    !*value
}

/// One operation of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Source(SourceOp),
    Exec(ExecOp),
    File(FileOp),
    Merge(MergeOp),
}

impl Op {
    /// Number of results this op produces (exec: one per mount with an output index).
    pub fn num_outputs(&self) -> u32 {
        match self {
            Op::Exec(exec) => exec.mounts.iter().filter(|m| m.output.is_some()).count() as u32,
            Op::Source(_) | Op::File(_) | Op::Merge(_) => 1,
        }
    }

    /// Short kind name for errors and progress.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(SourceOp::Image(_)) => "image source",
            Op::Source(SourceOp::Local(_)) => "local source",
            Op::Source(SourceOp::Http(_)) => "http source",
            Op::Source(SourceOp::Scratch) => "scratch",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge(_) => "merge",
        }
    }
}

/// Where a build starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOp {
    /// An image's root filesystem.
    Image(ImageSource),
    /// A directory from the client (the build context, or a named context).
    Local(LocalSource),
    /// A file downloaded over HTTP(S) (`ADD https://…`).
    Http(HttpSource),
    /// The empty filesystem.
    Scratch,
}

/// An image reference, fully qualified (`docker.io/library/alpine:3.20`), ideally pinned with
/// `@sha256:…` once the frontend resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSource {
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A local directory; `.dockerignore` patterns become `exclude_patterns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSource {
    /// Name of the local directory (`context`, `dockerfile`, or a named context).
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    /// Paths the consumers read (a hint for transferring only those).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_paths: Vec<String>,
    /// Key under which per-file checksums of this directory are kept across builds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shared_key: String,
}

/// `ADD <url>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSource {
    pub url: String,
    /// Expected digest of the download (`ADD --checksum=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Name of the file in the result (default: from the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Runs a process (`RUN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    pub args: Vec<String>,
    /// `KEY=value`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `KEY=value` of the proxy build args (`HTTP_PROXY` family, both cases), appended to the
    /// process environment but left out of the cache key (BuildKit's `ProxyEnv`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_env: Vec<String>,
    pub cwd: String,
    /// User string resolved in the rootfs (`""` = root).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default)]
    pub network: NetworkMode,
    /// Mounts; the one at `/` is the root filesystem.
    pub mounts: Vec<Mount>,
    /// `RUN --security` and the build's sandbox flags (`--ulimit`, `--shm-size`,
    /// `--cgroup-parent`, `--add-host`): BuildKit's exec meta, part of the op (and of its cache
    /// key, the hosts' addresses aside).
    #[serde(default, skip_serializing_if = "ExecSandbox::is_default")]
    pub sandbox: ExecSandbox,
}

/// How an exec op's sandbox differs from the default one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSandbox {
    /// `RUN --security=insecure`: privileged (needs the `security.insecure` entitlement).
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// `--ulimit`, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size`: bytes of `/dev/shm` (`None`: 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// `--cgroup-parent`: the cgroup (relative to the hierarchy's root) the step's cgroup is
    /// made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `--add-host`: `/etc/hosts` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
}

impl ExecSandbox {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One `--ulimit NAME=SOFT[:HARD]` (`-1` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// docker's name: `nofile`, `nproc`, `core`, `stack`, …
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One `--add-host NAME:IP` (`host-gateway` resolved by the runner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub name: String,
    pub ip: String,
}

impl ExecOp {
    /// The root filesystem mount.
    pub fn root_mount(&self) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.dest == "/" && m.kind == MountKind::Bind)
    }
}

/// `RUN --network=`: the one network-mode type (serialized `default`, `none`, `host`).
pub use parser::NetworkMode;

/// A mount of an exec op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Input index whose result is mounted (`None` = empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u32>,
    /// Path inside the input to mount (`RUN --mount=source=`); empty = the whole input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Absolute target path; empty only for a secret that is a variable only (`env=`, no target).
    pub dest: String,
    /// Output index this mount's final state is exported as (writable mounts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
    pub kind: MountKind,
}

impl Mount {
    /// The root filesystem of an exec: input 0 at `/`, written to output 0.
    pub fn rootfs() -> Mount {
        Mount {
            input: Some(0),
            selector: String::new(),
            dest: "/".into(),
            output: Some(0),
            readonly: false,
            kind: MountKind::Bind,
        }
    }
}

/// What a mount is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A snapshot (the rootfs, or `--mount=type=bind`).
    Bind,
    /// A persistent cache directory (`--mount=type=cache`).
    Cache(CacheMount),
    Tmpfs(TmpfsMount),
    Secret(SecretMount),
    Ssh(SshMount),
}

/// `--mount=type=cache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMount {
    pub id: String,
    #[serde(default)]
    pub sharing: CacheSharing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    #[default]
    Shared,
    /// A writer that finds the directory in use gets a fresh one.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// `--mount=type=tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `--mount=type=secret`: the secret's value is never part of the graph or a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMount {
    pub id: String,
    /// Also (or only) expose the secret as this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// `--mount=type=ssh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshMount {
    pub id: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// Filesystem actions applied in order to a base (`COPY`, `ADD`, `WORKDIR` mkdir, heredocs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Input index of the filesystem the actions apply to; `None` = scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u32>,
    pub actions: Vec<FileAction>,
}

/// One action of a [`FileOp`]; each applies to the result of the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    Copy(CopyAction),
    Mkdir(MkdirAction),
    Mkfile(MkfileAction),
    Rm(RmAction),
}

/// Copy from another input (`COPY`, `ADD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyAction {
    /// Input index the files come from.
    pub source: u32,
    /// Path (or wildcard pattern) inside the source.
    pub src: String,
    /// Destination path in the base (absolute; a trailing `/` means "into this directory").
    pub dest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    /// `--chmod`: an octal mode replaces the mode of every copied entry (the source modes do
    /// not matter); a symbolic one is applied to each source mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<super::Chmod>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub follow_symlinks: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub copy_dir_contents: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub attempt_unpack_archive: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_dest_path: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_wildcard: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_empty_wildcard: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_patterns: Vec<String>,
    /// `COPY --exclude`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    /// `COPY --parents`: keep the source's parent directories.
    #[serde(default, skip_serializing_if = "is_false")]
    pub parents: bool,
    /// Timestamp for created files (`SOURCE_DATE_EPOCH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl CopyAction {
    /// A copy with every flag off.
    pub fn new(source: u32, src: impl Into<String>, dest: impl Into<String>) -> CopyAction {
        CopyAction {
            source,
            src: src.into(),
            dest: dest.into(),
            owner: None,
            mode: None,
            follow_symlinks: false,
            copy_dir_contents: false,
            attempt_unpack_archive: false,
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            parents: false,
            timestamp: None,
        }
    }
}

/// `--chown=user:group`; names are resolved in the base's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChownOpt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserOpt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<UserOpt>,
}

/// A numeric id or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserOpt {
    Id(u32),
    Name(String),
}

/// Create a directory (`WORKDIR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirAction {
    pub path: String,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub make_parents: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// Create a file with given content (heredoc `COPY <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkfileAction {
    pub path: String,
    pub mode: u32,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// Create missing parent directories with this mode (and `owner`), as `COPY` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make_parents: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ChownOpt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// Remove a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmAction {
    pub path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_not_found: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_wildcard: bool,
}

/// Stacks its inputs' filesystems, later inputs on top (`COPY --link` layers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOp {}

mod base64_bytes {
    use super::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

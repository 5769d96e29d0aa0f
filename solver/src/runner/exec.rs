//! Exec ops (`RUN`): the root filesystem as a snapshot prepared over the input chain, extra
//! mounts, the process run by the executor, and the snapshot committed into a layer afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cache::DiffOptions;
use cache::buildcache::{CacheMountGuard, CachedLayer, MountSharing};
use cache::safefs::Root;
use cache::snapshotter::{ActiveSnapshot, SnapshotMount, SnapshotView};
use executor::{
    Mount as SandboxMount, MountKind as SandboxMountKind, OutputStream, OverlayUpper, Rootfs, SandboxSpec,
    Stdio,
};

use super::fsutil::{TempDir, resolve_in_root};
use super::{BuildRef, LayerChainRef, Runner, RunnerError, SecretValue};
use crate::graph::{CacheSharing, ExecOp, Mount, MountKind, NetworkMode};
use crate::progress::LogStream;
use crate::scheduler::RunJob;

pub use crate::progress::TAIL_LINES;

/// A process exited with a non-zero code.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "process \"{}\" did not complete successfully: exit code: {exit_code}{}",
    command.join(" "),
    if *oom_killed { " (killed: out of memory)" } else { "" }
)]
pub struct ProcessFailed {
    pub command: Vec<String>,
    pub exit_code: i32,
    /// The kernel's OOM killer ended the process (its memory limit was reached).
    pub oom_killed: bool,
    /// The last [`TAIL_LINES`] lines of output (stdout and stderr interleaved).
    pub output_tail: Vec<String>,
}

pub(crate) use crate::progress::LineTail;

/// A writable filesystem mount whose snapshot becomes an output.
struct OutputMount {
    index: u32,
    parent: Arc<LayerChainRef>,
    active: Box<dyn ActiveSnapshot>,
}

/// Everything that must stay alive while the process runs (dropped afterwards: unmounts,
/// unlocks, removes temp dirs — also on error and cancellation).
#[derive(Default)]
struct Held {
    views: Vec<SnapshotView>,
    caches: Vec<CacheMountGuard>,
    /// A root snapshot that is not an output (its writes are discarded).
    discarded: Vec<Box<dyn ActiveSnapshot>>,
}

/// A snapshot's mount spec as a sandbox's root filesystem.
fn rootfs_of(mount: SnapshotMount) -> Rootfs {
    match mount {
        SnapshotMount::Overlay { lowers, upper } => {
            Rootfs::Overlay { lowers, upper: upper.map(|(upper, work)| OverlayUpper { upper, work }) }
        }
        SnapshotMount::Dir(path) => Rootfs::Dir(path),
    }
}

/// A snapshot's mount spec as an extra mount of a sandbox.
fn mount_kind_of(mount: SnapshotMount) -> SandboxMountKind {
    match mount {
        SnapshotMount::Overlay { lowers, upper } => SandboxMountKind::Overlay {
            lowers,
            upper: upper.map(|(upper, work)| OverlayUpper { upper, work }),
        },
        SnapshotMount::Dir(source) => SandboxMountKind::Bind { source },
    }
}

impl Runner {
    /// Empties the cache mounts of the exec ops that ignore the cache (`--no-cache`, or
    /// `--no-cache-filter` stages; `all` = every exec op), as BuildKit does before a build: the
    /// steps start with empty cache directories, which later builds then reuse. A cache mount
    /// another build is using is left alone.
    pub fn reset_cache_mounts(
        &self,
        definition: &crate::graph::Definition,
        all: bool,
    ) -> Result<(), RunnerError> {
        let mounts = self.build_cache.mounts();
        for vertex in &definition.vertices {
            let crate::graph::Op::Exec(exec) = &vertex.op else { continue };
            if !all && !vertex.metadata.ignore_cache {
                continue;
            }
            for mount in &exec.mounts {
                if let MountKind::Cache(cache_mount) = &mount.kind {
                    mounts.remove(&cache_mount.id)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn run_exec(
        &self,
        job: &RunJob<BuildRef>,
        op: &ExecOp,
    ) -> Result<Vec<BuildRef>, RunnerError> {
        let temp = TempDir::new(&self.store, "exec")?;
        let mut held = Held::default();
        let mut outputs: Vec<OutputMount> = Vec::new();
        let mut env = op.env.clone();
        env.extend(op.proxy_env.iter().cloned());

        let root = op.root_mount().ok_or_else(|| RunnerError::MissingInput { kind: "exec", index: 0 })?;
        let root_chain = match root.input {
            Some(index) => {
                Self::chain_of(Self::input(&job.inputs, "exec", index)?, || "the root filesystem".into())?
            }
            None => Arc::new(LayerChainRef { layers: Vec::new() }),
        };
        let active = self.prepare(&root_chain).await?;
        let rootfs = rootfs_of(active.mount());
        match root.output {
            Some(index) => outputs.push(OutputMount { index, parent: root_chain.clone(), active }),
            None => held.discarded.push(active),
        }

        let mut mounts = Vec::new();
        for (n, mount) in op.mounts.iter().enumerate() {
            if std::ptr::eq(mount, root) {
                continue;
            }
            if let Some(m) =
                self.sandbox_mount(job, mount, n, &temp, &mut held, &mut outputs, &mut env).await?
            {
                mounts.push(m);
            }
        }

        let mut spec = SandboxSpec::new(rootfs, op.args.clone());
        spec.readonly_rootfs = root.readonly;
        spec.mounts = mounts;
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", executor::process::DEFAULT_PATH));
        }
        spec.process.env = env;
        // BuildKit gives build steps no HOSTNAME variable (`kiln run` keeps docker's)
        spec.process.hostname_env = false;
        spec.process.cwd = PathBuf::from(if op.cwd.is_empty() { "/" } else { &op.cwd });
        spec.process.user = op.user.clone();
        spec.hostname = op.hostname.clone();
        spec.network = match op.network {
            NetworkMode::Default => self.options.network,
            NetworkMode::None => executor::NetworkMode::None,
            NetworkMode::Host => executor::NetworkMode::Host,
        };
        self.options.entitlements.check(op)?;
        apply_sandbox(&mut spec, &op.sandbox)?;

        let (sender, mut receiver) = tokio::sync::mpsc::channel::<executor::OutputChunk>(64);
        let log = job.log.clone();
        let forward = tokio::spawn(async move {
            let mut tail = LineTail::default();
            while let Some(chunk) = receiver.recv().await {
                let stream = match chunk.stream {
                    OutputStream::Stdout => LogStream::Stdout,
                    OutputStream::Stderr => LogStream::Stderr,
                };
                log.write(stream, &chunk.data);
                tail.push(&chunk.data);
            }
            tail.finish()
        });
        let cancel = job.cancel.clone();
        let status = self
            .executor
            .run(spec, Stdio::Merged(sender), Box::pin(async move { cancel.cancelled().await }))
            .await?;
        let tail = forward.await.unwrap_or_default();
        drop(held);
        if job.cancel.is_cancelled() {
            return Err(RunnerError::Io {
                op: "run",
                path: op.args.join(" ").into(),
                source: std::io::Error::from(std::io::ErrorKind::Interrupted),
            });
        }
        if status.code != 0 {
            return Err(RunnerError::Process(ProcessFailed {
                command: op.args.clone(),
                exit_code: status.code,
                oom_killed: status.oom_killed,
                output_tail: tail,
            }));
        }

        let mut results = vec![BuildRef::scratch(); outputs.len()];
        for output in outputs {
            let result = self.commit(output.parent, output.active).await?;
            if let Some(slot) = results.get_mut(output.index as usize) {
                *slot = result;
            }
        }
        drop(temp);
        Ok(results)
    }

    /// A writable snapshot over `chain` from the snapshotter.
    pub(crate) async fn prepare(
        &self,
        chain: &LayerChainRef,
    ) -> Result<Box<dyn ActiveSnapshot>, RunnerError> {
        let snapshotter = self.snapshotter.clone();
        let parents = chain.layer_refs();
        Ok(tokio::task::spawn_blocking(move || snapshotter.prepare(&parents)).await??)
    }

    /// Commits `active` (a snapshot prepared over `parent`) into a layer and the snapshot of
    /// `parent` plus the layer. An empty diff still adds its (empty) layer, as BuildKit does:
    /// every RUN and COPY has a layer that its history entry names.
    pub(crate) async fn commit(
        &self,
        parent: Arc<LayerChainRef>,
        active: Box<dyn ActiveSnapshot>,
    ) -> Result<BuildRef, RunnerError> {
        let options = DiffOptions {
            compression: self.options.compression,
            source_date_epoch: self.options.source_date_epoch,
            threads: 0,
        };
        tokio::task::spawn_blocking(move || -> Result<BuildRef, RunnerError> {
            let committed = active.commit(parent.chain_id().as_ref(), &options)?;
            let layer = committed.layer;
            let mut layers = parent.layers.clone();
            layers.push(CachedLayer { blob: layer.descriptor, diff_id: layer.diff_id });
            Ok(BuildRef::Layers(Arc::new(LayerChainRef { layers })))
        })
        .await?
    }

    #[allow(clippy::too_many_arguments)]
    async fn sandbox_mount(
        &self,
        job: &RunJob<BuildRef>,
        mount: &Mount,
        n: usize,
        temp: &TempDir,
        held: &mut Held,
        outputs: &mut Vec<OutputMount>,
        env: &mut Vec<String>,
    ) -> Result<Option<SandboxMount>, RunnerError> {
        let target = PathBuf::from(&mount.dest);
        let kind = match &mount.kind {
            MountKind::Bind => {
                let input = match mount.input {
                    Some(index) => Self::input(&job.inputs, "exec", index)?.clone(),
                    None => BuildRef::scratch(),
                };
                return self.bind_mount(input, mount, n, temp, held, outputs).await.map(Some);
            }
            MountKind::Cache(cache_mount) => {
                let sharing = match cache_mount.sharing {
                    CacheSharing::Shared => MountSharing::Shared,
                    CacheSharing::Private => MountSharing::Private,
                    CacheSharing::Locked => MountSharing::Locked,
                };
                let mounts = self.build_cache.mounts();
                let id = cache_mount.id.clone();
                let (uid, gid, mode) = (cache_mount.uid, cache_mount.gid, cache_mount.mode);
                // `from=`: a new cache directory starts with the input's content.
                let seed = match mount.input {
                    Some(index) => {
                        Some((Self::input(&job.inputs, "exec", index)?.clone(), mount.selector.clone()))
                    }
                    None => None,
                };
                let store = self.store.clone();
                let snapshotter = self.snapshotter.clone();
                let acquire = tokio::task::spawn_blocking(move || -> Result<CacheMountGuard, RunnerError> {
                    let guard = mounts.acquire(&id, sharing)?;
                    if guard.created()
                        && let Some((input, selector)) = seed
                    {
                        super::fileop::seed_dir(&store, &*snapshotter, input, &selector, guard.path())?;
                    }
                    if guard.created() {
                        let path = guard.path();
                        std::fs::set_permissions(
                            path,
                            std::fs::Permissions::from_mode(mode.unwrap_or(0o755)),
                        )
                        .map_err(RunnerError::io("chmod", path))?;
                        std::os::unix::fs::chown(path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
                            .map_err(RunnerError::io("chown", path))?;
                    }
                    Ok(guard)
                });
                let guard = tokio::select! {
                    guard = acquire => guard??,
                    () = job.cancel.cancelled() => return Err(interrupted("lock cache mount", &cache_mount.id)),
                };
                let source = guard.path().to_owned();
                held.caches.push(guard);
                SandboxMountKind::Bind { source }
            }
            MountKind::Tmpfs(tmpfs) => SandboxMountKind::Tmpfs { size: tmpfs.size, mode: 0o1777 },
            MountKind::Secret(secret) => {
                let value = match self.options.secrets.get(&secret.id) {
                    Some(SecretValue::Bytes(bytes)) => bytes.clone(),
                    Some(SecretValue::File(path)) => {
                        std::fs::read(path).map_err(RunnerError::io("read secret", path))?
                    }
                    None if secret.optional => return Ok(None),
                    None => return Err(RunnerError::SecretNotFound(secret.id.clone())),
                };
                if let Some(name) = &secret.env {
                    env.push(format!("{name}={}", String::from_utf8_lossy(&value)));
                }
                if mount.dest.is_empty() {
                    // a variable only (env= without a target)
                    return Ok(None);
                }
                let dir = temp.subdir("secrets")?;
                let file = dir.join(n.to_string());
                write_private_file(&file, &value, secret.mode, secret.uid, secret.gid)?;
                SandboxMountKind::Bind { source: file }
            }
            MountKind::Ssh(ssh) => {
                let socket = self.options.ssh.get(&ssh.id).cloned();
                let Some(socket) = socket else {
                    if ssh.optional {
                        return Ok(None);
                    }
                    return Err(RunnerError::SshNotFound(ssh.id.clone()));
                };
                env.push(format!("SSH_AUTH_SOCK={}", mount.dest));
                SandboxMountKind::Bind { source: socket }
            }
        };
        Ok(Some(SandboxMount { target, kind, readonly: mount.readonly }))
    }

    async fn bind_mount(
        &self,
        input: BuildRef,
        mount: &Mount,
        n: usize,
        temp: &TempDir,
        held: &mut Held,
        outputs: &mut Vec<OutputMount>,
    ) -> Result<SandboxMount, RunnerError> {
        let target = PathBuf::from(&mount.dest);
        let selector = if mount.selector.is_empty() { "/" } else { mount.selector.as_str() };
        // The directory (or file) to mount, read-only as it is.
        let source: PathBuf = match &input {
            BuildRef::Local(local) => {
                resolve_in_root(&Root::open(&local.path)?, selector, true)
                    .map_err(RunnerError::io("resolve", &local.path))?
                    .0
            }
            BuildRef::Blob(descriptor) => {
                let dir = temp.subdir(&format!("blob-{n}"))?;
                super::copy::materialize_blob(&self.store, descriptor, &dir)?;
                resolve_in_root(&Root::open(&dir)?, selector, true)
                    .map_err(RunnerError::io("resolve", &dir))?
                    .0
            }
            BuildRef::Layers(chain) => {
                if let Some(index) = mount.output {
                    if selector != "/" {
                        return Err(RunnerError::NotFilesystem {
                            what: format!("the output mount at {}", mount.dest),
                            actual: "a sub-path",
                        });
                    }
                    let active = self.prepare(chain).await?;
                    let kind = mount_kind_of(active.mount());
                    outputs.push(OutputMount { index, parent: chain.clone(), active });
                    return Ok(SandboxMount { target, kind, readonly: false });
                }
                let snapshotter = self.snapshotter.clone();
                let parents = chain.layer_refs();
                let view = tokio::task::spawn_blocking(move || snapshotter.view(&parents)).await??;
                let path = resolve_in_root(&Root::open(view.path())?, selector, true)
                    .map_err(RunnerError::io("resolve", view.path()))?
                    .0;
                held.views.push(view);
                path
            }
        };
        if mount.readonly || !source.is_dir() {
            return Ok(SandboxMount {
                target,
                kind: SandboxMountKind::Bind { source },
                readonly: mount.readonly,
            });
        }
        // Writable bind: copy-on-write over the source; the writes are discarded.
        let upper = temp.subdir(&format!("mount-{n}-upper"))?;
        let work = temp.subdir(&format!("mount-{n}-work"))?;
        Ok(SandboxMount {
            target,
            kind: SandboxMountKind::Overlay {
                lowers: vec![source],
                upper: Some(OverlayUpper { upper, work }),
            },
            readonly: false,
        })
    }
}

/// The exec op's sandbox settings on the spec: privileged (`RUN --security=insecure`, the
/// entitlement already checked), rlimits, `/dev/shm`, the cgroup parent, `/etc/hosts` entries
/// (`host-gateway` = the address of kiln's bridge on the host).
fn apply_sandbox(spec: &mut SandboxSpec, sandbox: &crate::graph::ExecSandbox) -> Result<(), RunnerError> {
    spec.privileged = sandbox.insecure;
    let value = |limit: i64| u64::try_from(limit).unwrap_or(u64::MAX);
    for ulimit in &sandbox.ulimits {
        let resource = executor::RlimitResource::from_name(&ulimit.name)
            .ok_or_else(|| RunnerError::UnknownUlimit(ulimit.name.clone()))?;
        spec.process.rlimits.push(executor::Rlimit {
            resource,
            soft: value(ulimit.soft),
            hard: value(ulimit.hard),
        });
    }
    spec.shm_size = sandbox.shm_size;
    if let Some(parent) = &sandbox.cgroup_parent {
        spec.cgroup_parent = Some(executor::cgroup::parent_path(parent)?);
    }
    for host in &sandbox.extra_hosts {
        let ip = if host.ip == HOST_GATEWAY {
            executor::network::Bridge::default_bridge().gateway.to_string()
        } else {
            host.ip.clone()
        };
        spec.extra_hosts.push((host.name.clone(), ip));
    }
    Ok(())
}

/// `--add-host NAME:host-gateway`: the host, as seen from a build step.
pub const HOST_GATEWAY: &str = "host-gateway";

fn interrupted(op: &'static str, what: &str) -> RunnerError {
    RunnerError::Io { op, path: what.into(), source: std::io::Error::from(std::io::ErrorKind::Interrupted) }
}

/// Writes a secret file readable as the sandbox user wants it.
fn write_private_file(path: &Path, value: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), RunnerError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_private()
        .open(path)
        .map_err(RunnerError::io("create", path))?;
    file.write_all(value).map_err(RunnerError::io("write", path))?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(RunnerError::io("chown", path))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(RunnerError::io("chmod", path))?;
    Ok(())
}

trait OpenPrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl OpenPrivate for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

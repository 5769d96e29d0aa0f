//! The on-disk records of containers: `config.json` (what to run, written once), `state.json`
//! (what happened, updated under the container's `lock`), the name index, and atomic writes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::SandboxSpec;
use crate::state::process_start_time;

/// Version of `config.json` and `state.json` (the directory is `runtime-v1`).
pub const FORMAT_VERSION: u32 = 1;
pub(super) const CONFIG: &str = "config.json";
const STATE: &str = "state.json";
const LOCK: &str = "lock";
/// A container directory without config this old belongs to a create that died.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Errors of the container and volume store.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid record {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("record {path} has format version {found}, this kiln reads version {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers match {0:?}: use more characters of the id")]
    Ambiguous(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to \
         remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("container {0} is running: stop it first or use --force")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {0} is paused, unpause the container first")]
    Paused(String),
    #[error("container {0} has no {1} cgroup (created by an older kiln): recreate it")]
    NoCgroup(String, &'static str),
    #[error("the cgroup {path} did not freeze within {seconds} s")]
    FreezeTimeout { path: PathBuf, seconds: u64 },
    #[error("cannot rename container {0}: the new name is its current name")]
    SameName(String),
    #[error("container {0} has no writable layer of its own")]
    NoWritableLayer(String),
    #[error("cannot mount the filesystem of container {id}")]
    Mount {
        id: String,
        #[source]
        source: Box<crate::init::InitError>,
    },
    #[error("cannot start the monitor of container {id}: {message}")]
    Monitor { id: String, message: String },
    #[error("container {id} failed to start: {message}")]
    StartFailed { id: String, message: String, exit_code: i32 },
    #[error("container {id} did not stop within {seconds} s after SIGKILL")]
    StopTimeout { id: String, seconds: u64 },
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    #[error("cannot signal container {id}")]
    Signal {
        id: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error(
        "\"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" \
         are allowed"
    )]
    InvalidVolumeName(String),
    #[error("remove {name}: volume is in use - [{containers}]")]
    VolumeInUse { name: String, containers: String },
    #[error("volume {name}: {path} is not a directory of the volume store (symlink or missing)")]
    VolumeNotDirectory { name: String, path: PathBuf },
    #[error("invalid restart policy {0:?} (expected no, always, unless-stopped or on-failure[:N])")]
    InvalidRestartPolicy(String),
    #[error(transparent)]
    Executor(#[from] crate::Error),
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + use<> {
    let path = path.to_owned();
    move |source| RuntimeError::Io { what, path, source }
}

type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Writes `data` to `path` atomically and durably: a temp file in the same directory, fsync,
/// rename, fsync of the directory. Readers see the old or the new file, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        RuntimeError::Io { what: "write", path: path.to_owned(), source }
    })
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&data).map_err(|source| RuntimeError::Record { path: path.to_owned(), source })
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value)
        .map_err(|source| RuntimeError::Record { path: path.to_owned(), source })?;
    write_atomic(path, &data)
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `--restart`: docker's restart policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        max: u32,
    },
}

impl std::str::FromStr for RestartPolicy {
    type Err = RuntimeError;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || RuntimeError::InvalidRestartPolicy(text.to_owned());
        match text.split_once(':') {
            None => match text {
                "" | "no" => Ok(Self::No),
                "always" => Ok(Self::Always),
                "unless-stopped" => Ok(Self::UnlessStopped),
                "on-failure" => Ok(Self::OnFailure { max: 0 }),
                _ => Err(invalid()),
            },
            Some(("on-failure", count)) => {
                count.parse().map(|max| Self::OnFailure { max }).map_err(|_| invalid())
            }
            Some(_) => Err(invalid()),
        }
    }
}

impl RestartPolicy {
    /// docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Always => "always",
            Self::UnlessStopped => "unless-stopped",
            Self::OnFailure { .. } => "on-failure",
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts restarts again
    /// (never after an explicit stop or kill).
    pub fn should_restart(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Self::No => false,
            Self::Always | Self::UnlessStopped => true,
            Self::OnFailure { max } => code != 0 && (*max == 0 || restarts < *max),
        }
    }
}

/// A volume mounted into a container (for `inspect`'s `Mounts` and `rm -v`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// `volume` or `bind` or `tmpfs`.
    pub kind: String,
    /// Volume name (for volumes) or host path (for binds).
    pub source: String,
    pub destination: String,
    pub readonly: bool,
    /// Created for this container (an image `VOLUME` or `-v /path`): removed by `rm -v`.
    pub anonymous: bool,
}

/// What a container runs; written once by `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub version: u32,
    pub id: String,
    pub name: String,
    /// Nanoseconds since the epoch.
    pub created: i64,
    /// The image as the user named it, and its config digest.
    pub image: String,
    pub image_id: String,
    /// Digest of the manifest (or index) the image name pointed at: with `image_id`, what keeps
    /// the image's blobs and snapshots from garbage collection while the container exists.
    #[serde(default)]
    pub image_manifest: String,
    /// Lower dirs and upper of `spec.rootfs` point into the store and the container dir.
    pub spec: SandboxSpec,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Signal name or number (`SIGTERM`, `15`).
    pub stop_signal: String,
    /// Seconds between the stop signal and SIGKILL.
    pub stop_timeout: u64,
    pub restart: RestartPolicy,
    /// `--rm`: the monitor removes the container (and its anonymous volumes) after the exit.
    pub auto_remove: bool,
    pub mounts: Vec<VolumeMount>,
    /// `--network` as given (for `inspect`; networking plugs in here later).
    pub network: String,
    /// `--log-opt max-size=…,max-file=…`.
    #[serde(default)]
    pub log_rotation: Option<super::logs::Rotation>,
    /// HEALTHCHECK of the image or `--health-*` (none with `--no-healthcheck`).
    #[serde(default)]
    pub healthcheck: Option<super::health::Healthcheck>,
    /// `-p`/`-P` as asked (host port 0 or a range: chosen at each start).
    #[serde(default)]
    pub ports: Vec<crate::ports::PortBinding>,
}

/// Lifecycle status, as docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Restarting,
    Exited,
    Removing,
    Dead,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Removing => "removing",
            Self::Dead => "dead",
        }
    }

    /// Running or between two runs: a monitor owns it.
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Running | Self::Restarting)
    }
}

/// What happened to a container; updated under its lock.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerState {
    pub version: u32,
    pub status: Status,
    /// Host pid of the container's PID 1 and its start time (0 when not running).
    pub pid: i32,
    pub pid_start: u64,
    /// `pid starttime` of the monitor (empty before the first start).
    pub monitor: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// `None` while running or when unknown (the monitor died).
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub restart_count: u32,
    /// Set by `stop`/`kill`: the restart policy does not apply to this exit.
    pub stop_requested: bool,
    pub error: String,
    /// cgroups of the current run (exec joins them; stop kills them).
    pub cgroup_dirs: Vec<PathBuf>,
    /// Health of the current run (with a health check).
    #[serde(default)]
    pub health: Option<super::health::Health>,
    /// Frozen by `pause` (the status stays `running`, as docker's `State.Running`).
    #[serde(default)]
    pub paused: bool,
    /// The ports published for the current run (host ports chosen).
    #[serde(default)]
    pub ports: Vec<crate::ports::PortBinding>,
}

impl ContainerState {
    /// docker's `State.Status`: `paused` for a running container that is paused.
    pub fn status_name(&self) -> &'static str {
        if self.paused && self.status == Status::Running { "paused" } else { self.status.as_str() }
    }
}

/// A container as found in the store.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub config: ContainerConfig,
    pub state: ContainerState,
}

/// An exclusive flock on a container's `lock` file, released on drop.
#[derive(Debug)]
pub struct StateLock {
    file: File,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn short_id(&self) -> &str {
        &self.config.id[..12]
    }

    /// The docker json-file log.
    pub fn log_path(&self) -> PathBuf {
        log_path(&self.dir, &self.config.id)
    }

    /// Locks the state for a read-modify-write (short sections only: the monitor takes it too).
    pub fn lock(&self) -> Result<StateLock> {
        lock_dir(&self.dir)
    }

    /// Re-reads `state.json`, correcting a state whose monitor died: "running" without a
    /// live monitor becomes "exited" with an unknown code (saved, under the lock).
    pub fn refresh(&mut self) -> Result<()> {
        self.state = read_state(&self.dir)?;
        if self.state.status.is_active() && !monitor_alive(&self.state.monitor) {
            let _lock = self.lock()?;
            self.state = read_state(&self.dir)?;
            if self.state.status.is_active() && !monitor_alive(&self.state.monitor) {
                self.state.status = Status::Exited;
                self.state.exit_code = None;
                self.state.pid = 0;
                self.state.pid_start = 0;
                self.state.paused = false;
                self.state.ports.clear();
                self.state.finished_at.get_or_insert_with(now_nanos);
                self.state.error = "the container's monitor died; its exit code is unknown".to_owned();
                self.save_state()?;
            }
        }
        Ok(())
    }

    /// Re-reads `state.json` as it is (the monitor, which is the one that would correct it).
    pub fn reload(&mut self) -> Result<()> {
        self.state = read_state(&self.dir)?;
        Ok(())
    }

    /// Writes `state.json` (hold [`Container::lock`]).
    pub fn save_state(&self) -> Result<()> {
        write_json(&self.dir.join(STATE), &self.state)
    }

    /// Applies `change` to the current state under the lock and saves it.
    pub fn update(&mut self, change: impl FnOnce(&mut ContainerState)) -> Result<()> {
        let _lock = self.lock()?;
        self.state = read_state(&self.dir)?;
        change(&mut self.state);
        self.save_state()
    }

    /// The container's PID 1 when it runs (the pid is checked against its start time).
    pub fn live_pid(&self) -> Option<i32> {
        (self.state.status == Status::Running
            && self.state.pid > 0
            && process_start_time(self.state.pid) == Some(self.state.pid_start))
        .then_some(self.state.pid)
    }
}

pub(crate) fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

fn lock_dir(dir: &Path) -> Result<StateLock> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open lock", &path))?;
    file.lock().map_err(io("lock", &path))?;
    Ok(StateLock { file })
}

fn read_state(dir: &Path) -> Result<ContainerState> {
    let path = dir.join(STATE);
    let state: ContainerState = read_json(&path)?;
    if state.version != FORMAT_VERSION {
        return Err(RuntimeError::Version { path, found: state.version });
    }
    Ok(state)
}

/// Whether the monitor named by a `pid starttime` token still runs. A zombie counts as
/// dead: a SIGKILLed monitor stays one until whoever adopted it reaps it.
pub fn monitor_alive(token: &str) -> bool {
    let mut parts = token.split_whitespace();
    let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<i32>().ok()), parts.next()) else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // the command name may contain spaces and parentheses: fields start after the last ')'
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else { return false };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let alive = fields.first().is_some_and(|state| !matches!(*state, "Z" | "X" | "x"));
    alive && fields.get(19) == Some(&start)
}

/// The container store under `<kiln root>/runtime-v1`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    kiln_root: PathBuf,
}

/// docker's rule for container and volume names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if let Ok(mut urandom) = File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut buffer);
    }
    let nanos = now_nanos().to_le_bytes();
    buffer.iter_mut().zip(nanos.iter().cycle()).for_each(|(b, n)| *b ^= n);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];
const SURNAMES: &[&str] = &[
    "almeida",
    "bell",
    "curie",
    "darwin",
    "euler",
    "fermi",
    "galois",
    "hopper",
    "ishizaka",
    "joliot",
    "kepler",
    "lovelace",
    "meitner",
    "noether",
    "ostrom",
    "pasteur",
    "ritchie",
    "shannon",
    "turing",
    "varahamihira",
    "wilson",
    "yalow",
    "zhukovsky",
];

impl Store {
    /// Opens (creating) the store under `kiln_root`.
    pub fn open(kiln_root: &Path) -> Result<Self> {
        let root = kiln_root.join("runtime-v1");
        for dir in ["containers", "names", "volumes"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io("create directory", &path))?;
        }
        Ok(Self { root, kiln_root: kiln_root.to_owned() })
    }

    pub fn kiln_root(&self) -> &Path {
        &self.kiln_root
    }

    /// The executor's per-sandbox state directory (`<kiln root>/run`).
    pub fn sandbox_state_dir(&self) -> PathBuf {
        self.kiln_root.join("run")
    }

    pub fn volumes(&self) -> super::VolumeStore {
        super::VolumeStore::new(self.root.join("volumes"))
    }

    fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub(super) fn name_path(&self, name: &str) -> PathBuf {
        self.root.join("names").join(name)
    }

    /// Reserves `name` for `id` (atomically: O_EXCL), or fails with docker's conflict error.
    pub(super) fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        if !valid_name(name) {
            return Err(RuntimeError::InvalidName(name.to_owned()));
        }
        let path = self.name_path(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(id.as_bytes()).and_then(|()| file.sync_all()).map_err(io("write", &path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                if self.abandoned_reservation(&path, owner.trim()) {
                    // left by a kiln killed while creating or removing: take it over
                    write_atomic(&path, id.as_bytes())?;
                    return Ok(());
                }
                Err(RuntimeError::NameInUse { name: name.to_owned(), id: owner })
            }
            Err(e) => Err(RuntimeError::Io { what: "create", path, source: e }),
        }
    }

    /// A name file whose container does not exist and is not being created either: the
    /// directory is gone, or it never got its config within [`ABANDONED_AFTER`].
    fn abandoned_reservation(&self, name_file: &Path, owner: &str) -> bool {
        let old = |path: &Path| {
            std::fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER)
        };
        if owner.is_empty() || owner.len() != 64 || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return old(name_file);
        }
        let dir = self.containers_dir().join(owner);
        !dir.exists() || (!dir.join(CONFIG).exists() && old(&dir))
    }

    fn generated_name(&self, id: &str) -> Result<String> {
        let seed = u64::from_str_radix(&id[..16], 16).unwrap_or(0);
        for attempt in 0..100u64 {
            let n = seed.wrapping_add(attempt.wrapping_mul(7919));
            let adjective = ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize];
            let surname = SURNAMES[((n / 64) % SURNAMES.len() as u64) as usize];
            let name = if attempt < 20 {
                format!("{adjective}_{surname}")
            } else {
                format!("{adjective}_{surname}{attempt}")
            };
            match self.reserve_name(&name, id) {
                Ok(()) => return Ok(name),
                Err(RuntimeError::NameInUse { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        let name = format!("kiln_{}", &id[..12]);
        self.reserve_name(&name, id)?;
        Ok(name)
    }

    /// A fresh id and container directory, with the writable layer's `upper` and `work`.
    /// Fill in the config with [`Store::create`].
    pub fn new_container_dir(&self) -> Result<(String, PathBuf)> {
        let id = random_hex(32);
        let dir = self.containers_dir().join(&id);
        for sub in ["upper", "work"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io("create directory", &path))?;
        }
        Ok((id, dir))
    }

    /// Registers a container prepared in `dir` (from [`Store::new_container_dir`]): reserves
    /// its name (generated when empty) and writes its config and initial state.
    pub fn create(&self, dir: PathBuf, mut config: ContainerConfig) -> Result<Container> {
        config.version = FORMAT_VERSION;
        if config.name.is_empty() {
            config.name = self.generated_name(&config.id)?;
        } else if let Err(err) = self.reserve_name(&config.name, &config.id) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }
        let state = ContainerState { version: FORMAT_VERSION, ..ContainerState::default() };
        write_json(&dir.join(STATE), &state)?;
        // the config last: a directory without config.json is an unfinished create
        write_json(&dir.join(CONFIG), &config)?;
        Ok(Container { dir, config, state })
    }

    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.containers_dir().join(id);
        let config_path = dir.join(CONFIG);
        if !config_path.exists() {
            return Err(RuntimeError::NoSuchContainer(id.to_owned()));
        }
        let config: ContainerConfig = read_json(&config_path)?;
        if config.version != FORMAT_VERSION {
            return Err(RuntimeError::Version { path: config_path, found: config.version });
        }
        let mut container = Container { dir, config, state: ContainerState::default() };
        container.refresh()?;
        Ok(container)
    }

    /// Every container (unfinished creates are skipped), oldest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let dir = self.containers_dir();
        let mut containers = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("list", &dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            match self.load(&name) {
                Ok(container) => containers.push(container),
                // removed meanwhile, or not finished creating
                Err(RuntimeError::NoSuchContainer(_)) => {}
                Err(RuntimeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(other) => return Err(other),
            }
        }
        containers.sort_by_key(|c| c.config.created);
        Ok(containers)
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn find(&self, reference: &str) -> Result<Container> {
        let reference_name = reference.strip_prefix('/').unwrap_or(reference);
        if valid_name(reference_name)
            && let Ok(id) = std::fs::read_to_string(self.name_path(reference_name))
            && let Ok(container) = self.load(id.trim())
        {
            return Ok(container);
        }
        if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RuntimeError::NoSuchContainer(reference.to_owned()));
        }
        let reference = reference.to_ascii_lowercase();
        let dir = self.containers_dir();
        let matches: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io("list", &dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.len() == 64 && name.starts_with(&reference))
            .collect();
        match matches.as_slice() {
            [] => Err(RuntimeError::NoSuchContainer(reference)),
            [one] => self.load(one),
            _ => Err(RuntimeError::Ambiguous(reference)),
        }
    }

    /// Removes a container that is not active: its name, its directory and, with
    /// `anonymous_volumes`, the anonymous volumes it created.
    pub fn remove(&self, container: &mut Container, anonymous_volumes: bool) -> Result<()> {
        {
            let _lock = container.lock()?;
            container.state = read_state(&container.dir)?;
            if container.state.status.is_active() && monitor_alive(&container.state.monitor) {
                return Err(RuntimeError::Running(container.config.name.clone()));
            }
            container.state.status = Status::Removing;
            container.save_state()?;
        }
        // the config goes first: from then on the container no longer exists for anyone
        let config = container.dir.join(CONFIG);
        std::fs::remove_file(&config).map_err(io("remove", &config))?;
        let name_path = self.name_path(&container.config.name);
        if std::fs::read_to_string(&name_path).is_ok_and(|id| id.trim() == container.config.id) {
            let _ = std::fs::remove_file(&name_path);
        }
        std::fs::remove_dir_all(&container.dir).map_err(io("remove", &container.dir))?;
        if anonymous_volumes {
            let volumes = self.volumes();
            for mount in container.config.mounts.iter().filter(|m| m.anonymous && m.kind == "volume") {
                match volumes.remove(self, &mount.source) {
                    Ok(()) | Err(RuntimeError::NoSuchVolume(_)) => {}
                    Err(err) => tracing::warn!(volume = %mount.source, %err, "anonymous volume kept"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Rootfs, SandboxSpec};

    fn config(id: &str, name: &str) -> ContainerConfig {
        ContainerConfig {
            version: FORMAT_VERSION,
            id: id.to_owned(),
            name: name.to_owned(),
            created: now_nanos(),
            image: "img".into(),
            image_id: "sha256:00".into(),
            image_manifest: String::new(),
            spec: SandboxSpec::new(Rootfs::Dir("/nonexistent".into()), vec!["true".into()]),
            entrypoint: Vec::new(),
            cmd: vec!["true".into()],
            labels: BTreeMap::new(),
            stop_signal: "SIGTERM".into(),
            stop_timeout: 10,
            restart: RestartPolicy::No,
            auto_remove: false,
            mounts: Vec::new(),
            network: "none".into(),
            log_rotation: None,
            healthcheck: None,
            ports: Vec::new(),
        }
    }

    #[test]
    fn restart_policies_parse_and_decide() {
        assert_eq!("no".parse::<RestartPolicy>().expect("no"), RestartPolicy::No);
        assert_eq!("on-failure:3".parse::<RestartPolicy>().expect("3"), RestartPolicy::OnFailure { max: 3 });
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        let three = RestartPolicy::OnFailure { max: 3 };
        assert!(three.should_restart(1, 2, false));
        assert!(!three.should_restart(1, 3, false));
        assert!(!three.should_restart(0, 0, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
    }

    #[test]
    fn names_are_unique_and_found_by_name_or_prefix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let (id, dir) = store.new_container_dir().expect("dir");
        let created = store.create(dir, config(&id, "web")).expect("create");
        assert_eq!(store.find("web").expect("by name").id(), id);
        assert_eq!(store.find(&id[..6]).expect("by prefix").id(), id);
        assert!(matches!(store.find("nothing"), Err(RuntimeError::NoSuchContainer(_))));
        let (other, dir) = store.new_container_dir().expect("dir");
        let err = store.create(dir.clone(), config(&other, "web")).expect_err("conflict");
        assert!(matches!(err, RuntimeError::NameInUse { .. }), "{err}");
        assert!(!dir.exists(), "the refused container's directory is removed");
        assert!(matches!(
            store.create(store.new_container_dir().expect("dir").1, config(&other, "bad/name")),
            Err(RuntimeError::InvalidName(_))
        ));
        let (generated, dir) = store.new_container_dir().expect("dir");
        let auto = store.create(dir, config(&generated, "")).expect("generated name");
        assert!(valid_name(&auto.config.name) && auto.config.name.contains('_'), "{}", auto.config.name);
        let mut created = created;
        store.remove(&mut created, false).expect("remove");
        assert!(store.find("web").is_err());
        assert_eq!(store.list().expect("list").len(), 1);
    }

    #[test]
    fn a_running_state_with_a_dead_monitor_reads_as_exited_unknown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let (id, dir) = store.new_container_dir().expect("dir");
        let mut container = store.create(dir, config(&id, "c")).expect("create");
        container
            .update(|state| {
                state.status = Status::Running;
                state.monitor = format!("{} 1", i32::MAX);
                state.pid = i32::MAX;
            })
            .expect("update");
        let found = store.find("c").expect("find");
        assert_eq!(found.state.status, Status::Exited);
        assert_eq!(found.state.exit_code, None);
        assert!(found.state.error.contains("monitor died"));
        // and a live monitor keeps it running
        container
            .update(|state| {
                state.status = Status::Running;
                state.monitor = crate::network::owner_token();
            })
            .expect("update");
        assert_eq!(store.find("c").expect("find").state.status, Status::Running);
        assert!(matches!(store.remove(&mut container, false), Err(RuntimeError::Running(_))));
    }

    #[test]
    fn atomic_writes_leave_no_temp_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 1);
    }
}

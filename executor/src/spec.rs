//! What a sandbox runs: the rootfs, extra mounts, the process, and its limits.
//!
//! These types are plain data (serde), sent as JSON to the re-executed init process.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The root filesystem of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rootfs {
    /// An existing directory used as is (bind-mounted; writes go straight into it).
    Dir(PathBuf),
    /// An overlay of read-only lower dirs (first = top-most, overlayfs order) with an optional
    /// writable upper dir. `upper` and `work` must be on the same filesystem; `work` must be empty.
    /// Without `upper`, the rootfs is read-only.
    Overlay { lowers: Vec<PathBuf>, upper: Option<OverlayUpper> },
}

/// The writable part of an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayUpper {
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// An extra mount inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container; created (as a stub) when missing.
    pub target: PathBuf,
    pub kind: MountKind,
    pub readonly: bool,
}

/// The source of an extra mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// Recursive bind mount of a host path (file or directory).
    Bind { source: PathBuf },
    /// A fresh tmpfs; `size` in bytes (None: kernel default), `mode` of its root.
    Tmpfs { size: Option<u64>, mode: u32 },
    /// An overlay with its own lowers (top-most first) and optional upper.
    Overlay { lowers: Vec<PathBuf>, upper: Option<OverlayUpper> },
    /// A volume's data directory (bind-mounted; refused when it is a symlink). With
    /// `copy_up`, an empty volume first receives the contents of the image directory it is
    /// mounted over, owners and modes kept (docker's behaviour; `volume-nocopy` turns it off).
    Volume { source: PathBuf, copy_up: bool },
}

/// Network of a sandbox: the one network-mode type of every crate (`none`: loopback only in a
/// private namespace; `host`: the host's namespace; `default`: a private namespace on the
/// `kiln0` bridge with NAT). Parsed by [`NetworkMode::parse`] (BuildKit's values) and
/// [`NetworkMode::parse_run`] (docker run's, with `bridge`).
pub use parser::NetworkMode;

/// docker's `--dns`, `--dns-search` and `--dns-option`: each list, when not empty, replaces the
/// corresponding lines taken from the host's `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Resource limits applied through cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes (swap is disabled for the container when set).
    pub memory: Option<u64>,
    /// CPU quota in millicpus (1000 = one full CPU).
    pub cpu_millis: Option<u64>,
    /// Maximum number of processes/threads.
    pub pids: Option<u64>,
    /// Join the cgroups that `pause`, `top` and `stats` need even without limits (v1: freezer,
    /// memory, cpuacct, pids, blkio; v2: the io controller too). Containers that outlive the
    /// command set it; build steps do not (every v1 join costs an RCU grace period).
    #[serde(default)]
    pub accounting: bool,
}

/// A resource limit (setrlimit) for the process; values above the current hard limit fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// Name as in docker's `--ulimit`: `nofile`, `nproc`, `core`, `stack`, …
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// Resources settable with [`Rlimit`] (docker's `--ulimit` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitResource {
    /// Every resource with its docker name.
    pub const ALL: [(&'static str, RlimitResource); 16] = [
        ("as", Self::As),
        ("core", Self::Core),
        ("cpu", Self::Cpu),
        ("data", Self::Data),
        ("fsize", Self::Fsize),
        ("locks", Self::Locks),
        ("memlock", Self::Memlock),
        ("msgqueue", Self::Msgqueue),
        ("nice", Self::Nice),
        ("nofile", Self::Nofile),
        ("nproc", Self::Nproc),
        ("rss", Self::Rss),
        ("rtprio", Self::Rtprio),
        ("rttime", Self::Rttime),
        ("sigpending", Self::Sigpending),
        ("stack", Self::Stack),
    ];

    /// The resource of a docker name (`nofile`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    /// docker's name of the resource.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, r)| *r == self).map_or("", |(n, _)| n)
    }
}

/// The process started in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in the container's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries. `PATH` and `HOME` get docker's defaults when missing.
    pub env: Vec<String>,
    /// Working directory inside the container; created when missing.
    pub cwd: PathBuf,
    /// Docker-style user: `name`, `uid`, `uid:gid`, `name:group`, … (empty = root).
    pub user: String,
    /// Extra supplementary groups (names or gids), like `--group-add`.
    pub additional_groups: Vec<String>,
    /// Give the process a pseudo-terminal (`-t`).
    pub tty: bool,
    /// Capabilities to add to / drop from docker's default set (`CAP_` prefix optional,
    /// `ALL` allowed).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Extra rlimits; everything else is inherited from the caller.
    pub rlimits: Vec<Rlimit>,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals (`--init`).
    pub init: bool,
    /// Apply docker's default seccomp profile (true unless explicitly unconfined).
    pub seccomp: bool,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// Add `HOSTNAME=<hostname>` to the environment, as docker does for containers (BuildKit
    /// sets none for build steps).
    pub hostname_env: bool,
}

impl Default for ProcessSpec {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: String::new(),
            additional_groups: Vec::new(),
            tty: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            rlimits: Vec::new(),
            init: false,
            seccomp: true,
            no_new_privileges: true,
            hostname_env: true,
        }
    }
}

/// Everything needed to start one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub rootfs: Rootfs,
    /// Make the rootfs read-only (`--read-only`).
    pub readonly_rootfs: bool,
    pub mounts: Vec<Mount>,
    pub process: ProcessSpec,
    /// Hostname; defaults to the first 12 characters of the sandbox id.
    pub hostname: Option<String>,
    pub network: NetworkMode,
    pub resources: Resources,
    /// Extra `/etc/hosts` entries (`name`, `ip`).
    pub extra_hosts: Vec<(String, String)>,
    /// `--sysctl`: namespaced kernel parameters set inside the sandbox (the sysctl module
    /// says which).
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--dns`, `--dns-search`, `--dns-option`: replace the host's in `/etc/resolv.conf`.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Allow binds of the host's `/proc` or `/sys` (or of a path below them, or of another
    /// proc, sysfs or cgroup filesystem): refused otherwise, they expose the host kernel's
    /// interfaces (see [`crate::mounts::exposes_host_proc_sys`]).
    #[serde(default)]
    pub allow_host_proc_sys: bool,
    /// Size of `/dev/shm` in bytes (`None`: 64 MiB, docker's default).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// The cgroup (relative to each hierarchy's root, no `..`) the sandbox's cgroup is made
    /// under, as `<parent>/kiln/<id>` (`None`: `kiln/<id>` at the root).
    #[serde(default)]
    pub cgroup_parent: Option<PathBuf>,
    /// Privileged, as BuildKit's `RUN --security=insecure`: every capability kiln has, no
    /// seccomp filter, no masked or read-only paths, a writable `/sys`, and the devices of
    /// BuildKit's insecure mode (`/dev/fuse`, `/dev/kmsg`, `/dev/loop*`, `/dev/net/tun`, …).
    #[serde(default)]
    pub privileged: bool,
}

impl SandboxSpec {
    /// A spec running `args` in `rootfs` with defaults everywhere else.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        Self {
            rootfs,
            readonly_rootfs: false,
            mounts: Vec::new(),
            process: ProcessSpec { args, ..ProcessSpec::default() },
            hostname: None,
            network: NetworkMode::None,
            resources: Resources::default(),
            extra_hosts: Vec::new(),
            dns: DnsConfig::default(),
            sysctls: std::collections::BTreeMap::new(),
            allow_host_proc_sys: false,
            shm_size: None,
            cgroup_parent: None,
            privileged: false,
        }
    }
}

//! cgroups for memory, cpu and pids limits on cgroup v2, v1, and the hybrid layout (v1
//! controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`, used for tracking only).
//!
//! Each sandbox gets `kiln/<id>`; the container joins it itself (writes its pid to
//! `cgroup.procs`) before unsharing its cgroup namespace. On v1 every join is a separate
//! migration that waits for an RCU grace period (measured 11-19 ms on the 2-core CI machine
//! under load: more than half of a sandbox's setup), so only the hierarchies of the limits set
//! are joined (`memory`, `cpu`, `pids`), none without limits. Tracking and killing do not need
//! them: the sandbox has its own PID namespace, and SIGKILL to its PID 1 ends every process in
//! it. The hybrid layout's cgroup2 mount holds no controller we need and is left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::spec::Resources;

const ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The CFS period used for `--cpus`.
const CPU_PERIOD_US: u64 = 100_000;

/// The cgroup layout of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy at /sys/fs/cgroup.
    V2,
    /// v1 controllers, optionally with a cgroup2 mount at /sys/fs/cgroup/unified.
    V1 { unified: bool },
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

/// Detects the layout.
pub fn layout() -> Layout {
    if is_cgroup2(Path::new(ROOT)) {
        Layout::V2
    } else {
        Layout::V1 { unified: is_cgroup2(&Path::new(ROOT).join("unified")) }
    }
}

/// The cgroups of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    /// Every directory created (memory first when present), removed on cleanup.
    pub dirs: Vec<PathBuf>,
    pub version: u8,
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::write(path, value).map_err(|source| Error::Cgroup { path: path.to_owned(), source })
}

fn mkdir(path: &Path) -> Result<(), Error> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Cgroup { path: path.to_owned(), source }),
    }
}

/// Creates `dir` and its parent (the shared `kiln` cgroup, set up by `setup_parent`), retrying
/// when the last other sandbox removes the parent in between.
fn mkdir_in_parent(dir: &Path, setup_parent: impl Fn(&Path) -> Result<(), Error>) -> Result<(), Error> {
    let parent = dir.parent().unwrap_or(dir);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = mkdir(parent).and_then(|()| setup_parent(parent)).and_then(|()| mkdir(dir));
        match result {
            Err(Error::Cgroup { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 100 =>
            {
                continue;
            }
            other => return other,
        }
    }
}

/// Where a sandbox's cgroup goes below a hierarchy's root: `[<parent>/]kiln/<id>`.
fn relative_dir(id: &str, parent: Option<&Path>) -> PathBuf {
    parent.unwrap_or(Path::new("")).join("kiln").join(id)
}

/// Checks a `--cgroup-parent`: relative to the hierarchy's root (a leading `/` is dropped),
/// no `..`; systemd's `NAME.slice:` form is not supported (kiln manages cgroupfs directly).
pub fn parent_path(parent: &str) -> Result<PathBuf, Error> {
    let invalid =
        |reason: &str| Error::InvalidCgroupParent { parent: parent.to_owned(), reason: reason.to_owned() };
    if parent.ends_with(':') {
        return Err(invalid("the systemd form `NAME.slice:` is not supported; give a cgroupfs path"));
    }
    let mut path = PathBuf::new();
    for component in Path::new(parent).components() {
        match component {
            std::path::Component::Normal(part) => path.push(part),
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => return Err(invalid("`..` is not allowed")),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(invalid("empty path"));
    }
    Ok(path)
}

impl Cgroups {
    /// Creates the cgroups of sandbox `id` (below `parent`, relative to the hierarchy's root,
    /// see [`parent_path`]) and applies `resources`.
    pub fn create(id: &str, resources: &Resources, parent: Option<&Path>) -> Result<Self, Error> {
        match layout() {
            Layout::V2 => Self::create_v2(Path::new(ROOT), id, resources, parent),
            Layout::V1 { .. } => Self::create_v1(id, resources, parent),
        }
    }

    fn create_v2(root: &Path, id: &str, resources: &Resources, parent: Option<&Path>) -> Result<Self, Error> {
        let wanted: &[&str] =
            if resources.accounting { &["memory", "cpu", "pids", "io"] } else { &["memory", "cpu", "pids"] };
        let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = wanted
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.is_empty() {
            write(&root.join("cgroup.subtree_control"), &enable.join(" "))?;
        }
        // the controllers are enabled down a `--cgroup-parent` too
        let mut level = root.to_path_buf();
        for part in parent.iter().flat_map(|p| p.iter()) {
            level.push(part);
            mkdir(&level)?;
            if !enable.is_empty() {
                write(&level.join("cgroup.subtree_control"), &enable.join(" "))?;
            }
        }
        let dir = root.join(relative_dir(id, parent));
        mkdir_in_parent(&dir, |parent| {
            if !enable.is_empty() {
                write(&parent.join("cgroup.subtree_control"), &enable.join(" "))?;
            }
            Ok(())
        })?;
        let cgroups = Self { dirs: vec![dir.clone()], version: 2 };
        let apply = || -> Result<(), Error> {
            if let Some(memory) = resources.memory {
                write(&dir.join("memory.max"), &memory.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            }
            if let Some(millis) = resources.cpu_millis {
                write(&dir.join("cpu.max"), &format!("{} {CPU_PERIOD_US}", millis * CPU_PERIOD_US / 1000))?;
            }
            if let Some(pids) = resources.pids {
                write(&dir.join("pids.max"), &pids.to_string())?;
            }
            Ok(())
        };
        if let Err(err) = apply() {
            cgroups.remove();
            return Err(err);
        }
        Ok(cgroups)
    }

    fn create_v1(id: &str, resources: &Resources, parent: Option<&Path>) -> Result<Self, Error> {
        let mut cgroups = Self { dirs: Vec::new(), version: 1 };
        let result = (|| -> Result<(), Error> {
            for controller in v1_controllers(resources, parent.is_some()) {
                let mount = Path::new(ROOT).join(controller);
                if !mount.exists() {
                    if (controller == "memory" && resources.memory.is_some())
                        || (controller == "cpu" && resources.cpu_millis.is_some())
                        || (controller == "pids" && resources.pids.is_some())
                    {
                        return Err(Error::NoController(controller));
                    }
                    continue;
                }
                let dir = mount.join(relative_dir(id, parent));
                if let Some(grandparent) = dir.parent().and_then(Path::parent) {
                    std::fs::create_dir_all(grandparent)
                        .map_err(|source| Error::Cgroup { path: grandparent.to_owned(), source })?;
                }
                mkdir_in_parent(&dir, |_| Ok(()))?;
                cgroups.dirs.push(dir.clone());
                match controller {
                    "memory" => {
                        if let Some(memory) = resources.memory {
                            write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
                            let memsw = dir.join("memory.memsw.limit_in_bytes");
                            if memsw.exists() {
                                write(&memsw, &memory.to_string())?;
                            }
                            write(&dir.join("memory.swappiness"), "0").ok();
                        }
                    }
                    "cpu" => {
                        if let Some(millis) = resources.cpu_millis {
                            write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                            write(
                                &dir.join("cpu.cfs_quota_us"),
                                &(millis * CPU_PERIOD_US / 1000).to_string(),
                            )?;
                        }
                    }
                    _ => {
                        if let Some(pids) = resources.pids {
                            write(&dir.join("pids.max"), &pids.to_string())?;
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(err) = result {
            cgroups.remove();
            return Err(err);
        }
        Ok(cgroups)
    }

    /// Every directory [`Cgroups::create`] makes for sandbox `id` (for the state record).
    pub fn planned(id: &str, resources: &Resources, parent: Option<&Path>) -> Self {
        let root = Path::new(ROOT);
        let relative = relative_dir(id, parent);
        match layout() {
            Layout::V2 => Self { dirs: vec![root.join(&relative)], version: 2 },
            Layout::V1 { .. } => Self {
                dirs: v1_controllers(resources, parent.is_some())
                    .iter()
                    .map(|c| root.join(c).join(&relative))
                    .collect(),
                version: 1,
            },
        }
    }

    /// The `cgroup.procs` files the container joins.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Whether the kernel OOM-killed a process of this sandbox.
    pub fn oom_killed(&self) -> bool {
        let count = |path: PathBuf, key: &str| -> u64 {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| {
                    text.lines().find_map(|line| line.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
                })
                .unwrap_or(0)
        };
        self.dirs.iter().any(|dir| {
            if self.version == 2 {
                count(dir.join("memory.events"), "oom_kill ") > 0
            } else {
                dir.join("memory.oom_control").exists()
                    && count(dir.join("memory.oom_control"), "oom_kill ") > 0
            }
        })
    }

    /// Kills whatever still runs in the cgroups and removes them (retrying while the kernel
    /// finishes tearing processes down). Best effort; returns whether everything went.
    pub fn remove(&self) -> bool {
        let mut all = true;
        for dir in &self.dirs {
            let mut removed = false;
            for attempt in 0..200 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {
                        removed = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        removed = true;
                        break;
                    }
                    Err(err) => {
                        tracing::trace!(dir = %dir.display(), attempt, %err, "cgroup busy");
                        kill_all(dir);
                        std::thread::sleep(Duration::from_millis(if attempt < 20 { 1 } else { 10 }));
                    }
                }
            }
            tracing::trace!(dir = %dir.display(), removed, "cgroup removal");
            all &= removed;
            // the shared `kiln` parent goes with its last sandbox (fails while others remain;
            // a concurrent create re-makes it, see `mkdir_in_parent`)
            if removed && let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        all
    }
}

/// The v1 hierarchies a sandbox with `resources` joins (memory first: OOM checks read it);
/// memory, cpu and pids also under a `--cgroup-parent` (whose limits then apply).
fn v1_controllers(resources: &Resources, parent: bool) -> Vec<&'static str> {
    let mut controllers = Vec::with_capacity(6);
    if resources.memory.is_some() || resources.accounting || parent {
        controllers.push("memory");
    }
    if resources.cpu_millis.is_some() || parent {
        controllers.push("cpu");
    }
    if resources.pids.is_some() || resources.accounting || parent {
        controllers.push("pids");
    }
    if resources.accounting {
        controllers.extend(["cpuacct", "blkio", "freezer"]);
    }
    controllers
}

/// The v1 controller a directory made by [`Cgroups::create`] belongs to
/// (`/sys/fs/cgroup/<controller>/kiln/<id>`), or `None` for a v2 directory.
pub fn v1_controller(dir: &Path) -> Option<&str> {
    let controller = dir.parent()?.parent()?;
    (controller.parent()? == Path::new(ROOT)).then(|| controller.file_name()?.to_str())?
}

/// The directory of `controller` among `dirs` (v1), or the one v2 directory.
pub fn controller_dir<'a>(dirs: &'a [PathBuf], controller: &str) -> Option<(&'a Path, u8)> {
    dirs.iter().find_map(|dir| match v1_controller(dir) {
        Some(name) if name == controller => Some((dir.as_path(), 1)),
        Some(_) => None,
        None => Some((dir.as_path(), 2)),
    })
}

/// SIGKILLs every process listed in a cgroup (and thaws a v1 freezer, where a frozen process
/// would never act on the signal).
pub fn kill_all(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    let freezer = dir.join("freezer.state");
    if freezer.exists() {
        let _ = std::fs::write(freezer, "THAWED");
    }
}

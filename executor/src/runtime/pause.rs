//! `pause` and `unpause`: the cgroup freezer. v1 writes `FROZEN`/`THAWED` to the freezer
//! hierarchy's `freezer.state` (and waits while it reads `FREEZING`); v2 writes `cgroup.freeze`
//! and waits for `frozen 1` in `cgroup.events`. The state records `paused` under the
//! container's lock, so `ps`, `inspect` and `exec` see it; `stop` and `kill` thaw after
//! signalling ([`super::stop`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::record::{Container, RuntimeError, io};
use crate::cgroup::controller_dir;

/// How long the kernel may take to freeze every task (a task in uninterruptible sleep delays it).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

/// The freezer of a container's current run: (directory, cgroup version).
fn freezer(container: &Container) -> Result<(PathBuf, u8), RuntimeError> {
    controller_dir(&container.state.cgroup_dirs, "freezer")
        .map(|(dir, version)| (dir.to_owned(), version))
        .ok_or_else(|| RuntimeError::NoCgroup(container.config.name.clone(), "freezer"))
}

fn read(path: &Path) -> Result<String, RuntimeError> {
    std::fs::read_to_string(path).map_err(io("read", path))
}

fn write(path: &Path, value: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, value).map_err(io("write", path))
}

/// Freezes (`frozen`) or thaws the cgroup and waits until the kernel is done.
pub fn set_frozen(dir: &Path, version: u8, frozen: bool) -> Result<(), RuntimeError> {
    // (file written, value, file read back, line that says done)
    let (file, value, check, done) = match (version, frozen) {
        (1, true) => (dir.join("freezer.state"), "FROZEN", dir.join("freezer.state"), "FROZEN"),
        (1, false) => (dir.join("freezer.state"), "THAWED", dir.join("freezer.state"), "THAWED"),
        (_, true) => (dir.join("cgroup.freeze"), "1", dir.join("cgroup.events"), "frozen 1"),
        (_, false) => (dir.join("cgroup.freeze"), "0", dir.join("cgroup.events"), "frozen 0"),
    };
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        // v1: writing FROZEN again moves a FREEZING cgroup on (tasks that forked meanwhile)
        write(&file, value)?;
        if read(&check)?.lines().any(|line| line.trim() == done) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = set_frozen(dir, version, false);
            }
            return Err(RuntimeError::FreezeTimeout { path: file, seconds: FREEZE_TIMEOUT.as_secs() });
        }
        std::thread::sleep(POLL);
    }
}

/// docker's `pause`: freezes every process of a running container.
pub fn pause(container: &mut Container) -> Result<(), RuntimeError> {
    let _lock = container.lock()?;
    container.reload()?;
    if container.live_pid().is_none() {
        return Err(RuntimeError::NotRunning(container.config.name.clone()));
    }
    if container.state.paused {
        return Err(RuntimeError::AlreadyPaused(container.config.name.clone()));
    }
    let (dir, version) = freezer(container)?;
    set_frozen(&dir, version, true)?;
    container.state.paused = true;
    container.save_state()
}

/// docker's `unpause`.
pub fn unpause(container: &mut Container) -> Result<(), RuntimeError> {
    let _lock = container.lock()?;
    container.reload()?;
    if !container.state.paused || container.live_pid().is_none() {
        return Err(RuntimeError::NotPaused(container.config.name.clone()));
    }
    thaw_locked(container)
}

/// Thaws a paused container (hold its lock): after `stop`/`kill` signalled it, so that the
/// signal is delivered.
pub(crate) fn thaw_locked(container: &mut Container) -> Result<(), RuntimeError> {
    if let Ok((dir, version)) = freezer(container) {
        match set_frozen(&dir, version, false) {
            Ok(()) => {}
            // the run ended and its cgroup went with it
            Err(RuntimeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    container.state.paused = false;
    container.save_state()
}

//! The writable layer of a `kiln run` container: `<root>/containers/run-XXXX/{upper,work}`,
//! locked (flock on `lock`) while its kiln runs, so that the next `kiln run` removes the
//! layers of a kiln that was SIGKILLed.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use executor::OverlayUpper;

/// Name of the lock file inside a container directory.
const LOCK: &str = "lock";
/// A directory without its lock file is only abandoned when older than this.
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// A container's writable layer, removed on drop.
pub struct ContainerLayer {
    dir: tempfile::TempDir,
    _lock: File,
}

impl ContainerLayer {
    /// Creates a fresh layer under `containers`, after removing abandoned ones.
    pub fn create(containers: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(containers)
            .with_context(|| format!("cannot create {}", containers.display()))?;
        clean_abandoned(containers);
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(containers)
            .with_context(|| format!("cannot create a container directory in {}", containers.display()))?;
        let lock_path = dir.path().join(LOCK);
        let lock =
            File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
        for name in ["upper", "work"] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        }
        Ok(Self { dir, _lock: lock })
    }

    /// The overlay upper and work dirs.
    pub fn overlay_upper(&self) -> OverlayUpper {
        OverlayUpper { upper: self.dir.path().join("upper"), work: self.dir.path().join("work") }
    }
}

/// Removes container layers whose kiln died (their lock is free). Best effort.
pub(super) fn clean_abandoned(containers: &Path) {
    let Ok(entries) = std::fs::read_dir(containers) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("run-") || !dir.is_dir() {
            continue;
        }
        let abandoned = match File::open(dir.join(LOCK)) {
            Ok(lock) => lock.try_lock().is_ok(),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNLOCKED_GRACE),
        };
        if abandoned {
            tracing::debug!(dir = %dir.display(), "removing the layer of a container whose kiln died");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_of_dead_runs_are_removed_and_live_ones_kept() {
        let containers = tempfile::tempdir().expect("tempdir");
        let live = ContainerLayer::create(containers.path()).expect("layer");
        let dead = containers.path().join("run-dead");
        std::fs::create_dir_all(dead.join("upper")).expect("mkdir");
        File::create(dead.join(LOCK)).expect("lock file"); // nobody holds it
        let young = containers.path().join("run-starting"); // no lock yet: being created
        std::fs::create_dir_all(&young).expect("mkdir");
        let _other = ContainerLayer::create(containers.path()).expect("layer");
        assert!(!dead.exists());
        assert!(young.exists());
        assert!(live.dir.path().join("upper").exists());
    }
}

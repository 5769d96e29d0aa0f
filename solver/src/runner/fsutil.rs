//! Drop guards for temporary directories, the snapshotter's host mounter (the executor's
//! overlay), and path resolution inside a root (cache's safefs) as host and in-root paths.

use std::path::{Path, PathBuf};

use cache::Store;
use cache::safefs::Root;
use cache::snapshotter::{HostMount, HostMounter, SnapshotError};
use executor::OverlayUpper;
use executor::overlay::HostOverlay;

use super::RunnerError;

/// A directory in the store's temp area, removed (recursively) on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(store: &Store, hint: &str) -> Result<TempDir, RunnerError> {
        let path = store.temp_path(hint);
        std::fs::create_dir_all(&path).map_err(RunnerError::io("create", &path))?;
        Ok(TempDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (and returns) the subdirectory `name`.
    pub(crate) fn subdir(&self, name: &str) -> Result<PathBuf, RunnerError> {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path).map_err(RunnerError::io("create", &path))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove temporary directory");
        }
    }
}

/// The snapshotter's host mounts through the executor's overlay code (the one owner of overlay
/// mounts): what [`cache::snapshotter::OverlaySnapshotter`] uses for views and file ops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostOverlayMounter;

impl HostMounter for HostOverlayMounter {
    fn mount_overlay(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
    ) -> Result<Box<dyn HostMount>, SnapshotError> {
        let upper =
            upper.map(|(upper, work)| OverlayUpper { upper: upper.to_owned(), work: work.to_owned() });
        let mount = HostOverlay::mount(target, lowers, upper.as_ref())
            .map_err(|source| SnapshotError::Mount { target: target.to_owned(), source: Box::new(source) })?;
        Ok(Box::new(MountedOverlay(mount)))
    }
}

#[derive(Debug)]
struct MountedOverlay(HostOverlay);

impl HostMount for MountedOverlay {
    fn unmount(self: Box<Self>) -> Result<(), SnapshotError> {
        let target = self.0.path().to_owned();
        self.0.unmount().map_err(|source| SnapshotError::Unmount { target, source: Box::new(source) })
    }
}

/// Resolves `path` inside `root` with cache's safefs ([`Root::resolve`]): the host path and the
/// in-root path (absolute, symlinks resolved). The last component is followed only when
/// `follow_last`; missing components are kept as named.
pub(crate) fn resolve_in_root(
    root: &Root,
    path: &str,
    follow_last: bool,
) -> std::io::Result<(PathBuf, PathBuf)> {
    let rel = root.resolve(Path::new(path), follow_last)?;
    let mut inner = PathBuf::from("/");
    inner.extend(rel.components());
    Ok((root.host_path(&rel), inner))
}

//! Drop guards for temporary directories and read-only views of layer chains (overlays mounted
//! by the executor), and path resolution inside a root (cache's safefs) as host and in-root
//! paths.

use std::path::{Path, PathBuf};

use cache::Store;
use cache::safefs::Root;
use executor::overlay::HostOverlay;

use super::{LayerChainRef, RunnerError};

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

/// A read-only view of a layer chain as one directory: an empty dir (scratch), the single
/// snapshot, or a read-only overlay of the snapshots. Unmounted and removed on drop.
#[derive(Debug)]
pub(crate) struct ReadOnlyView {
    path: PathBuf,
    _mount: Option<HostOverlay>,
    _dir: TempDir,
}

impl ReadOnlyView {
    pub(crate) fn new(store: &Store, chain: &LayerChainRef) -> Result<ReadOnlyView, RunnerError> {
        let dir = TempDir::new(store, "view")?;
        let lowers = store.snapshots().ensure_unpacked(&chain.layer_refs())?;
        match lowers.len() {
            0 => {
                let path = dir.subdir("empty")?;
                Ok(ReadOnlyView { path, _mount: None, _dir: dir })
            }
            1 => Ok(ReadOnlyView { path: lowers[0].clone(), _mount: None, _dir: dir }),
            _ => {
                let target = dir.subdir("merged")?;
                let mount = HostOverlay::mount(&target, &lowers, None)?;
                Ok(ReadOnlyView { path: target, _mount: Some(mount), _dir: dir })
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Lower dirs of a chain for an overlay that needs at least one (an empty dir for scratch,
/// created under `scratch_dir`).
pub(crate) fn lowers_or_empty(
    store: &Store,
    chain: &LayerChainRef,
    scratch: &TempDir,
) -> Result<Vec<PathBuf>, RunnerError> {
    let lowers = store.snapshots().ensure_unpacked(&chain.layer_refs())?;
    if lowers.is_empty() {
        return Ok(vec![scratch.subdir("empty-lower")?]);
    }
    Ok(lowers)
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

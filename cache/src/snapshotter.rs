//! The snapshotter seam (BuildKit's and containerd's `Snapshotter`): root filesystems for the
//! build's operations, without the caller mounting anything itself.
//!
//! - [`Snapshotter::prepare`]: a writable [`ActiveSnapshot`] over a layer chain; its
//!   [`ActiveSnapshot::mount`] is the mount spec a sandbox runs on, its
//!   [`ActiveSnapshot::mount_local`] the directory file operations write into;
//! - [`Snapshotter::view`]: a read-only [`SnapshotView`] of a chain as one directory;
//! - [`ActiveSnapshot::commit`]: the writes become a layer blob plus the snapshot of the chain
//!   with that layer; dropping an active snapshot or a view removes it (unmounts, deletes).
//!
//! [`OverlaySnapshotter`] is the real one: the store's unpacked snapshots as overlay lowers, a
//! fresh upper per active snapshot, layers diffed from the upper. It mounts on the host (read-only
//! views of several layers, file operations) through a [`HostMounter`], so the one owner of overlay
//! mounts (the executor) stays the one place kiln calls `mount(2)` for overlays.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use crate::diff::{DiffOptions, DiffSource};
use crate::snapshot::{CommittedLayer, LayerRef};
use crate::store::Store;

/// Errors of a snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error("cannot mount a snapshot on {target}")]
    Mount {
        target: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot unmount the snapshot at {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// An io error of `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { op, path, source }
    }
}

/// How a sandbox mounts a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotMount {
    /// An overlay: lower dirs top-most first (at least one), and the writable upper and work
    /// dirs of an active snapshot (`None`: read-only).
    Overlay { lowers: Vec<PathBuf>, upper: Option<(PathBuf, PathBuf)> },
    /// A plain directory, bound as it is (writes go straight into it).
    Dir(PathBuf),
}

/// Root filesystems for the build: prepare (writable), view (read-only), commit (in
/// [`ActiveSnapshot::commit`]) and remove (dropping).
pub trait Snapshotter: Send + Sync + fmt::Debug {
    /// A writable snapshot over the chain `parents` (bottom layer first; empty = scratch).
    fn prepare(&self, parents: &[LayerRef]) -> Result<Box<dyn ActiveSnapshot>, SnapshotError>;
    /// A read-only view of the chain `parents` as one directory.
    fn view(&self, parents: &[LayerRef]) -> Result<SnapshotView, SnapshotError>;
}

/// A writable snapshot being prepared; removed (unmounted, deleted) when dropped uncommitted.
pub trait ActiveSnapshot: Send + fmt::Debug {
    /// The mount spec of the snapshot, for a sandbox's root or an output mount.
    fn mount(&self) -> SnapshotMount;
    /// Makes the snapshot reachable as a directory on the host (for file operations) and
    /// returns it; until [`ActiveSnapshot::unmount_local`] no sandbox may run on it.
    fn mount_local(&mut self) -> Result<PathBuf, SnapshotError>;
    /// Undoes [`ActiveSnapshot::mount_local`] (nothing may hold the directory open).
    fn unmount_local(&mut self) -> Result<(), SnapshotError>;
    /// The overlay upper directory holding the writes, when the snapshot is an overlay (file
    /// operations share unchanged files with an earlier result there).
    fn upper(&self) -> Option<&Path>;
    /// Diffs the writes into a layer blob and keeps the result as the snapshot of the chain
    /// `parent` plus that layer. An empty diff still makes its (empty) layer.
    fn commit(
        self: Box<Self>,
        parent: Option<&Digest>,
        options: &DiffOptions,
    ) -> Result<CommittedLayer, SnapshotError>;
}

/// A read-only view of a chain; removed when dropped.
#[derive(Debug)]
pub struct SnapshotView {
    path: PathBuf,
    _guards: Vec<Box<dyn fmt::Debug + Send + Sync>>,
}

impl SnapshotView {
    /// A view at `path` that lives as long as `guards`.
    pub fn new(path: PathBuf, guards: Vec<Box<dyn fmt::Debug + Send + Sync>>) -> SnapshotView {
        SnapshotView { path, _guards: guards }
    }

    /// The directory holding the chain's files.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Mounts overlays on the host for a snapshotter (the executor's overlay code behind it).
pub trait HostMounter: Send + Sync + fmt::Debug {
    /// Mounts an overlay of `lowers` (top-most first) with the optional writable (upper, work)
    /// on the existing directory `target`.
    fn mount_overlay(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
    ) -> Result<Box<dyn HostMount>, SnapshotError>;
}

/// An overlay mounted by a [`HostMounter`]; dropping it detaches it lazily.
pub trait HostMount: Send + Sync + fmt::Debug {
    /// Unmounts now, reporting errors.
    fn unmount(self: Box<Self>) -> Result<(), SnapshotError>;
}

/// A directory in the store's temp area, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempArea {
    path: PathBuf,
}

impl TempArea {
    /// A new directory in `store`'s temp area named after `hint`.
    pub fn new(store: &Store, hint: &str) -> Result<TempArea, SnapshotError> {
        let path = store.temp_path(hint);
        std::fs::create_dir_all(&path).map_err(SnapshotError::io("create", &path))?;
        Ok(TempArea { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (and returns) the subdirectory `name`.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, SnapshotError> {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path).map_err(SnapshotError::io("create", &path))?;
        Ok(path)
    }
}

impl Drop for TempArea {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove temporary directory");
        }
    }
}

/// The store's snapshots as overlay lowers; writes go to a fresh upper per active snapshot.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    store: Store,
    mounter: std::sync::Arc<dyn HostMounter>,
}

impl OverlaySnapshotter {
    pub fn new(store: Store, mounter: std::sync::Arc<dyn HostMounter>) -> OverlaySnapshotter {
        OverlaySnapshotter { store, mounter }
    }

    /// The lower dirs of `parents`, unpacked (top-most first); an empty dir in `temp` for
    /// scratch (an overlay needs one lower).
    fn lowers(&self, parents: &[LayerRef], temp: &TempArea) -> Result<Vec<PathBuf>, SnapshotError> {
        let lowers = self.store.snapshots().ensure_unpacked(parents)?;
        if lowers.is_empty() {
            return Ok(vec![temp.subdir("empty-lower")?]);
        }
        Ok(lowers)
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn prepare(&self, parents: &[LayerRef]) -> Result<Box<dyn ActiveSnapshot>, SnapshotError> {
        let temp = TempArea::new(&self.store, "active")?;
        let lowers = self.lowers(parents, &temp)?;
        let upper = temp.subdir("upper")?;
        let work = temp.subdir("work")?;
        Ok(Box::new(OverlayActive {
            store: self.store.clone(),
            mounter: self.mounter.clone(),
            lowers,
            upper,
            work,
            local: None,
            temp,
        }))
    }

    fn view(&self, parents: &[LayerRef]) -> Result<SnapshotView, SnapshotError> {
        let temp = TempArea::new(&self.store, "view")?;
        let lowers = self.store.snapshots().ensure_unpacked(parents)?;
        match lowers.as_slice() {
            [] => Ok(SnapshotView::new(temp.subdir("empty")?, vec![Box::new(temp)])),
            [single] => Ok(SnapshotView::new(single.clone(), vec![Box::new(temp)])),
            _ => {
                let target = temp.subdir("merged")?;
                let mount = self.mounter.mount_overlay(&target, &lowers, None)?;
                // the mount goes before its directory
                Ok(SnapshotView::new(target, vec![Box::new(mount), Box::new(temp)]))
            }
        }
    }
}

/// A writable overlay snapshot: lowers, its own upper and work dir.
#[derive(Debug)]
struct OverlayActive {
    store: Store,
    mounter: std::sync::Arc<dyn HostMounter>,
    lowers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    local: Option<Box<dyn HostMount>>,
    temp: TempArea,
}

impl ActiveSnapshot for OverlayActive {
    fn mount(&self) -> SnapshotMount {
        SnapshotMount::Overlay {
            lowers: self.lowers.clone(),
            upper: Some((self.upper.clone(), self.work.clone())),
        }
    }

    fn mount_local(&mut self) -> Result<PathBuf, SnapshotError> {
        let target = self.temp.path().join("merged");
        if self.local.is_none() {
            std::fs::create_dir_all(&target).map_err(SnapshotError::io("create", &target))?;
            self.local =
                Some(self.mounter.mount_overlay(&target, &self.lowers, Some((&self.upper, &self.work)))?);
        }
        Ok(target)
    }

    fn unmount_local(&mut self) -> Result<(), SnapshotError> {
        match self.local.take() {
            Some(mount) => mount.unmount(),
            None => Ok(()),
        }
    }

    fn upper(&self) -> Option<&Path> {
        Some(&self.upper)
    }

    fn commit(
        mut self: Box<Self>,
        parent: Option<&Digest>,
        options: &DiffOptions,
    ) -> Result<CommittedLayer, SnapshotError> {
        self.unmount_local()?;
        Ok(self.store.snapshots().commit_layer(&self.upper, DiffSource::OverlayUpper, options, parent)?)
    }
}

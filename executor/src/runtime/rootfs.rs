//! A container's filesystem on the host, for `cp`, `export`, `diff` and `commit`, with nothing
//! changing underneath while it is read or written:
//!
//! - a running container is paused (docker does the same for `cp`) and reached through
//!   `/proc/<pid>/root`, its own view with its volumes; it is unpaused afterwards unless it
//!   was paused before;
//! - a stopped container's overlay is mounted on a directory of its own (read-write for `cp`
//!   into it, its writable layer on top), with the container's lock held so that it cannot be
//!   started meanwhile;
//! - [`Access::Layers`] always mounts the image's layers plus the writable layer read-only:
//!   the root filesystem without `/proc`, volumes or anything else mounted in the container.
//!
//! Every path inside the view must still be resolved without leaving it (`openat2` with
//! `RESOLVE_IN_ROOT`, the cache crate's safefs): the files are the container's.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, umount2};

use super::record::{Container, RuntimeError, StateLock, io, random_hex};
use crate::spec::{OverlayUpper, Rootfs};

/// What the view is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Files of the container as its processes see them, read-only use.
    Read,
    /// Files of the container as its processes see them, to write into.
    Write,
    /// The root filesystem only (image layers and the writable layer), read-only.
    Layers,
}

/// A container's filesystem, available at [`ContainerFs::path`] until dropped.
#[derive(Debug)]
pub struct ContainerFs {
    path: PathBuf,
    mount_point: Option<PathBuf>,
    /// Paused by us: unpaused on drop.
    paused: Option<Container>,
    _lock: Option<StateLock>,
}

impl ContainerFs {
    /// The root of the view (a directory; resolve paths inside it with `RESOLVE_IN_ROOT`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ContainerFs {
    fn drop(&mut self) {
        if let Some(mount_point) = self.mount_point.take() {
            if let Err(errno) = umount2(&mount_point, MntFlags::MNT_DETACH) {
                tracing::warn!(path = %mount_point.display(), %errno, "cannot unmount a container's filesystem");
            }
            let _ = std::fs::remove_dir(&mount_point);
        }
        if let Some(mut container) = self.paused.take()
            && let Err(err) = super::pause::unpause(&mut container)
        {
            tracing::warn!(container = %container.config.name, %err, "cannot unpause the container");
        }
    }
}

/// The image's layers (top first) and the writable layer of a container.
fn layers(container: &Container) -> Result<(Vec<PathBuf>, OverlayUpper), RuntimeError> {
    match &container.config.spec.rootfs {
        Rootfs::Overlay { lowers, upper: Some(upper) } => Ok((lowers.clone(), upper.clone())),
        _ => Err(RuntimeError::NoWritableLayer(container.config.name.clone())),
    }
}

/// Makes the container's filesystem available for `access`.
pub fn open(container: &Container, access: Access) -> Result<ContainerFs, RuntimeError> {
    let mut container = container.clone();
    let (lowers, upper) = layers(&container)?;
    container.refresh()?;
    let running = container.live_pid();
    let mut fs = ContainerFs { path: PathBuf::new(), mount_point: None, paused: None, _lock: None };
    if running.is_some() {
        if !container.state.paused {
            match super::pause::pause(&mut container) {
                Ok(()) => fs.paused = Some(container.clone()),
                // paused by someone else in between: fine, it stays paused
                Err(RuntimeError::AlreadyPaused(_)) => {}
                Err(err) => return Err(err),
            }
        }
        if access != Access::Layers {
            let pid = container
                .live_pid()
                .ok_or_else(|| RuntimeError::NotRunning(container.config.name.clone()))?;
            fs.path = PathBuf::from(format!("/proc/{pid}/root"));
            return Ok(fs);
        }
    } else {
        // not started meanwhile: `start` waits for this lock
        fs._lock = Some(container.lock()?);
        container.reload()?;
        if container.state.status.is_active() {
            return Err(RuntimeError::Running(container.config.name.clone()));
        }
    }
    let mount_point = container.dir.join(format!("mnt-{}", random_hex(8)));
    std::fs::create_dir(&mount_point).map_err(io("create directory", &mount_point))?;
    let mounted = if access == Access::Write && running.is_none() {
        crate::mounts::mount_overlay(&mount_point, &lowers, &Some(upper))
    } else {
        // the writable layer as the top lower layer: its whiteouts apply, nothing is written
        let mut all = vec![upper.upper.clone()];
        all.extend(lowers);
        crate::mounts::mount_overlay(&mount_point, &all, &None)
    };
    if let Err(source) = mounted {
        let _ = std::fs::remove_dir(&mount_point);
        return Err(RuntimeError::Mount { id: container.config.id.clone(), source: Box::new(source) });
    }
    fs.path = mount_point.clone();
    fs.mount_point = Some(mount_point);
    Ok(fs)
}

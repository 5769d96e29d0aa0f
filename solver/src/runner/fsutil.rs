//! Drop guards for temporary directories and host overlay mounts, and path resolution inside a
//! root that never follows a symlink out of it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use cache::Store;
use nix::mount::{MntFlags, MsFlags};

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

/// An overlay mounted on the host at `target`; unmounted (lazily) on drop.
#[derive(Debug)]
pub(crate) struct HostOverlay {
    target: PathBuf,
}

impl HostOverlay {
    /// Mounts `lowers` (topmost first; at least one) with an optional `(upper, work)`.
    pub(crate) fn mount(
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
        target: &Path,
    ) -> Result<HostOverlay, RunnerError> {
        let mut data = OsString::from("lowerdir=");
        for (i, lower) in lowers.iter().enumerate() {
            if i > 0 {
                data.push(":");
            }
            data.push(escape_overlay_path(lower));
        }
        if let Some((upper, work)) = upper {
            data.push(",upperdir=");
            data.push(escape_overlay_path(upper));
            data.push(",workdir=");
            data.push(escape_overlay_path(work));
        }
        let flags = if upper.is_some() { MsFlags::empty() } else { MsFlags::MS_RDONLY };
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags | MsFlags::MS_NODEV,
            Some(data.as_os_str()),
        )
        .map_err(|errno| RunnerError::Io {
            op: "mount overlay on",
            path: target.to_owned(),
            source: std::io::Error::from(errno),
        })?;
        Ok(HostOverlay { target: target.to_owned() })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting errors (drop unmounts lazily otherwise).
    pub(crate) fn unmount(mut self) -> Result<(), RunnerError> {
        let target = std::mem::take(&mut self.target);
        nix::mount::umount2(&target, MntFlags::empty()).map_err(|errno| RunnerError::Io {
            op: "unmount",
            path: target.clone(),
            source: std::io::Error::from(errno),
        })
    }
}

impl Drop for HostOverlay {
    fn drop(&mut self) {
        if self.target.as_os_str().is_empty() {
            return;
        }
        if let Err(errno) = nix::mount::umount2(&self.target, MntFlags::MNT_DETACH) {
            tracing::warn!(path = %self.target.display(), %errno, "cannot unmount overlay");
        }
    }
}

fn escape_overlay_path(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &byte in path.as_os_str().as_bytes() {
        if matches!(byte, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(byte);
    }
    std::ffi::OsStr::from_bytes(&out).to_owned()
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
                let mount = HostOverlay::mount(&lowers, None, &target)?;
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

const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (absolute or relative, as seen inside `root`) to a host path below `root`,
/// following symlinks as if `root` were `/` (absolute targets and `..` stay inside). The last
/// component is followed only when `follow_last`. Missing components are kept as they are.
/// Returns the host path and the cleaned in-root path.
pub(crate) fn resolve_in_root(
    root: &Path,
    path: &str,
    follow_last: bool,
) -> std::io::Result<(PathBuf, PathBuf)> {
    let mut pending: Vec<OsString> = components(Path::new(path));
    pending.reverse();
    let mut current: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        let candidate: PathBuf = current.iter().chain(std::iter::once(&part)).collect();
        let host = root.join(&candidate);
        let is_last = pending.is_empty();
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() && (!is_last || follow_last) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(std::io::Error::other(format!("{path}: too many levels of symbolic links")));
                }
                let target = std::fs::read_link(&host)?;
                if target.is_absolute() {
                    current.clear();
                }
                let mut parts = components(&target);
                parts.reverse();
                pending.extend(parts);
            }
            _ => current.push(part),
        }
    }
    let rel: PathBuf = current.iter().collect();
    Ok((root.join(&rel), Path::new("/").join(rel)))
}

/// The normal components of a path (`.`, `/` dropped; `..` kept as `..`).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/rel")).unwrap();
        let (host, inner) = resolve_in_root(root, "/a/abs/passwd", true).unwrap();
        assert_eq!(host, root.join("etc/passwd"));
        assert_eq!(inner, Path::new("/etc/passwd"));
        let (host, _) = resolve_in_root(root, "a/b/up/etc", true).unwrap();
        assert_eq!(host, root.join("etc"));
        let (host, _) = resolve_in_root(root, "a/rel/x", true).unwrap();
        assert_eq!(host, root.join("a/b/x"));
        let (host, _) = resolve_in_root(root, "a/rel", false).unwrap();
        assert_eq!(host, root.join("a/rel"));
        let (host, _) = resolve_in_root(root, "../../x", true).unwrap();
        assert_eq!(host, root.join("x"));
    }

    #[test]
    fn symlink_loops_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        assert!(resolve_in_root(dir.path(), "/loop/x", true).is_err());
    }
}

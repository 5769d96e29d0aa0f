//! Overlay mounts, the one place kiln mounts overlayfs: the sandbox's rootfs and overlay mounts
//! (inside the init), and overlays on the host for callers outside a sandbox ([`HostOverlay`],
//! the build's file operations).
//!
//! The lower dirs go into one `lowerdir=` option while the options fit in a page; beyond that
//! (about 40 layers of store paths) they are added one by one with the new mount API
//! (`fsconfig(lowerdir+)`, Linux 6.8+), so the number of layers is not limited.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::Error;
use crate::spec::OverlayUpper;

/// Mount options must fit in one page (with its terminating NUL).
const OPTIONS_LIMIT: usize = 4000;

/// The `mount(2)` options of an overlay (lower dirs top-most first).
pub(crate) fn options(lowers: &[PathBuf], upper: Option<&OverlayUpper>) -> String {
    let escape =
        |p: &Path| p.display().to_string().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
    let mut options = format!("lowerdir={}", lowers.iter().map(|p| escape(p)).collect::<Vec<_>>().join(":"));
    if let Some(upper) = upper {
        // volatile: no syncs (an upper is either committed after the writer is done or thrown
        // away), which also makes unmounting cheap
        options.push_str(&format!(
            ",upperdir={},workdir={},volatile",
            escape(&upper.upper),
            escape(&upper.work)
        ));
    }
    options
}

/// Mounts an overlay of `lowers` (top-most first, at least one) with an optional writable
/// `upper` at `target`; `nodev` refuses device nodes on it.
pub(crate) fn mount(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&OverlayUpper>,
    nodev: bool,
) -> Result<(), Error> {
    if lowers.is_empty() {
        return Err(Error::Sys {
            what: format!("mount overlay on {}: no lower directory", target.display()),
            source: nix::errno::Errno::EINVAL,
        });
    }
    if let Some(upper) = upper {
        // a workdir that served a volatile mount before carries `work/incompat/volatile`, and the
        // kernel refuses to mount it again until that marker is gone (podman clears it the same way)
        let marker = upper.work.join("work/incompat/volatile");
        if fs::symlink_metadata(&marker).is_ok() {
            fs::remove_dir_all(&marker).map_err(|source| Error::Io {
                what: "remove",
                path: marker,
                source,
            })?;
        }
    }
    let options = options(lowers, upper);
    if options.len() >= OPTIONS_LIMIT {
        // too many layers for one page of mount options: add them one by one
        let upper = upper.map(|u| (u.upper.as_path(), u.work.as_path()));
        return crate::sys::mount_overlay_fsconfig(target, lowers, upper, nodev).map_err(|source| {
            Error::Sys {
                what: format!(
                    "mount overlay with {} layers on {} (fsconfig)",
                    lowers.len(),
                    target.display()
                ),
                source,
            }
        });
    }
    let flags = if nodev { MsFlags::MS_NODEV } else { MsFlags::empty() };
    nix::mount::mount(Some("overlay"), target, Some("overlay"), flags, Some(options.as_str())).map_err(
        |source| Error::Sys { what: format!("mount overlay on {} ({options})", target.display()), source },
    )
}

/// An overlay mounted on the host (in the caller's mount namespace), without device nodes;
/// unmounted lazily on drop.
#[derive(Debug)]
pub struct HostOverlay {
    target: PathBuf,
}

impl HostOverlay {
    /// Mounts `lowers` (top-most first; at least one; any number) with an optional writable
    /// `upper` (a fresh upper and work dir on one filesystem) on the existing directory `target`.
    /// Without an upper the overlay is read-only.
    pub fn mount(
        target: &Path,
        lowers: &[PathBuf],
        upper: Option<&OverlayUpper>,
    ) -> Result<HostOverlay, Error> {
        mount(target, lowers, upper, true)?;
        Ok(HostOverlay { target: target.to_owned() })
    }

    /// Where the overlay is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting errors (dropping unmounts lazily instead). A sandbox that is
    /// being set up at that moment holds a copy of the host's mounts until it makes them its
    /// own, which can make the unmount fail with EBUSY for a moment: it is retried, then the
    /// mount is detached (what was written through it is in the upper directory either way).
    pub fn unmount(mut self) -> Result<(), Error> {
        let target = std::mem::take(&mut self.target);
        let mut attempts = 0;
        loop {
            match nix::mount::umount2(&target, MntFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(nix::errno::Errno::EBUSY) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(nix::errno::Errno::EBUSY) => {
                    tracing::debug!(path = %target.display(), "overlay still busy: detaching it");
                    return nix::mount::umount2(&target, MntFlags::MNT_DETACH).map_err(|source| Error::Sys {
                        what: format!("unmount {}", target.display()),
                        source,
                    });
                }
                Err(source) => {
                    return Err(Error::Sys { what: format!("unmount {}", target.display()), source });
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_escape() {
        let options = options(
            &[PathBuf::from("/l1"), PathBuf::from("/l:2")],
            Some(&OverlayUpper { upper: "/u".into(), work: "/w".into() }),
        );
        assert_eq!(options, "lowerdir=/l1:/l\\:2,upperdir=/u,workdir=/w,volatile");
    }

    /// A busy overlay (here: a file open inside it) is detached after the retries instead of
    /// failing the operation; its upper directory keeps what was written.
    #[test]
    fn a_busy_overlay_is_detached() {
        testkit::require_root!();
        let dir = tempfile::tempdir().unwrap();
        let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| dir.path().join(d));
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        let overlay =
            HostOverlay::mount(&merged, &[lower], Some(&OverlayUpper { upper: upper.clone(), work }))
                .unwrap();
        std::fs::write(merged.join("written"), b"x").unwrap();
        let busy = std::fs::File::open(merged.join("written")).unwrap();
        overlay.unmount().unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(merged.to_str().unwrap()), "still mounted");
        assert_eq!(std::fs::read(upper.join("written")).unwrap(), b"x");
        drop(busy);
    }
}

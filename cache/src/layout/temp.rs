//! The per-process temp area `<root>/tmp/`: each process using the store owns one directory
//! `<pid>-<nanos>-<n>/` there, announced by an exclusively flocked `<pid>-<nanos>-<n>.lock`
//! (created first). A directory whose lock file nobody holds (or that has no lock file) is a
//! leftover of a dead process and is removed by the next open.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, flock};

use super::remove_any;
use crate::error::{Error, IoContext, Result};

/// Creates `<tmpdir>/<pid>-<nanos>-<n>.lock` (flocked exclusively) and the directory beside it.
pub(super) fn take_dir(tmpdir: &Path) -> Result<(PathBuf, File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let stem = format!("{}-{nanos:x}-{n}", std::process::id());
        let lock_path = tmpdir.join(format!("{stem}.lock"));
        let lock = match OpenOptions::new().create_new(true).write(true).open(&lock_path) {
            Ok(f) => f,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(Error::io("create", lock_path, err)),
        };
        flock(&lock, FlockOperation::LockExclusive).ctx("lock", &lock_path)?;
        // Another process may have removed the file between create and lock, taking it for
        // stale: then our lock is on an unlinked inode and we start over.
        let ours = lock.metadata().ctx("stat", &lock_path)?;
        match std::fs::metadata(&lock_path) {
            Ok(meta) if meta.ino() == ours.ino() && meta.dev() == ours.dev() => {}
            _ => continue,
        }
        let dir = tmpdir.join(&stem);
        std::fs::create_dir(&dir).ctx("create temp directory", &dir)?;
        return Ok((dir, lock));
    }
}

/// Removes temp directories whose owner is gone: their lock file is not flocked by anyone (or
/// missing). Errors are logged, never fatal: a leftover only costs space.
pub(super) fn clean_stale(tmpdir: &Path, ours: &Path) {
    let Ok(entries) = std::fs::read_dir(tmpdir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == ours || path.with_extension("lock") == ours.with_extension("lock") {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".lock") {
            let Ok(lock) = OpenOptions::new().write(true).open(&path) else { continue };
            if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue; // a live process holds it
            }
            let dir = tmpdir.join(stem);
            if let Err(err) = remove_any(&dir) {
                tracing::warn!("cannot remove stale temp directory {}: {err}", dir.display());
                continue;
            }
            let _ = std::fs::remove_file(&path);
        } else if !tmpdir.join(format!("{name}.lock")).exists() {
            // A directory whose lock file is gone: its cleaner died half-way. The lock file is
            // always created before the directory, so no live process owns this.
            if let Err(err) = remove_any(&path) {
                tracing::warn!("cannot remove stale temp entry {}: {err}", path.display());
            }
        }
    }
}

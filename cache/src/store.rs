//! Opening the store: the versioned layout, this process's temp directory, and cleanup of
//! temp leftovers of crashed processes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, flock};

use crate::content::ContentStore;
use crate::error::{Error, IoContext, Result};
use crate::images::ImageStore;
use crate::snapshot::Snapshots;

/// Version of the on-disk layout written to `<root>/kiln-store-version`.
pub const STORE_VERSION: u32 = 1;

/// File under the root holding [`STORE_VERSION`].
pub const VERSION_FILE: &str = "kiln-store-version";

/// An open store. Cheap to clone; all clones share this process's temp directory and locks.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    /// This process's private temp directory under `<root>/tmp/`.
    pub(crate) tmp: PathBuf,
    /// Exclusive flock on `<tmp>.lock`, held while the store is open.
    _tmp_lock: File,
    /// Shared flock on `<root>/gc.lock`, held while the store is open (GC takes it exclusively).
    pub(crate) gc_lock: File,
    counter: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store under `root`: checks the format version, creates the
    /// layout, takes this process's temp directory and removes temp leftovers of dead processes.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| Error::io("create store root", root, e))?;
        let root = root.canonicalize().ctx("resolve store root", root)?;
        check_version(&root)?;
        for dir in ["content/blobs/sha256", "snapshots", "images", "tmp", "gcroots"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).ctx("create store directory", &path)?;
        }
        let layout = root.join("content/oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).ctx("write", &layout)?;
        }
        let gc_path = root.join("gc.lock");
        let gc_lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&gc_path)
            .ctx("open", &gc_path)?;
        flock(&gc_lock, FlockOperation::LockShared).ctx("lock", &gc_path)?;
        let (tmp, tmp_lock) = take_tmp_dir(&root.join("tmp"))?;
        clean_stale_tmp(&root.join("tmp"), &tmp);
        Ok(Store {
            inner: Arc::new(Inner { root, tmp, _tmp_lock: tmp_lock, gc_lock, counter: AtomicU64::new(0) }),
        })
    }

    /// The store root (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The content-addressed blob store.
    pub fn content(&self) -> ContentStore {
        ContentStore { store: self.clone() }
    }

    /// Unpacked layers keyed by chain ID.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots { store: self.clone() }
    }

    /// Names → manifest/index digests.
    pub fn images(&self) -> ImageStore {
        ImageStore { store: self.clone() }
    }

    /// A fresh path inside this process's temp directory (same filesystem as the store),
    /// not yet created. Whatever is left there is removed when the store is next opened after
    /// this process died.
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        self.inner.tmp.join(format!("{hint}-{n}"))
    }

    /// Writes `bytes` to `dest` atomically: temp file in the store, fsync, rename, fsync dir.
    pub fn write_file_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path("file");
        let result = (|| {
            let mut file = File::create(&tmp).ctx("create", &tmp)?;
            file.write_all(bytes).ctx("write", &tmp)?;
            file.sync_all().ctx("fsync", &tmp)?;
            std::fs::rename(&tmp, dest).ctx("rename into place", dest)?;
            sync_parent(dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

impl Drop for Inner {
    /// The last clone of a store removes this process's temp directory (the lock file goes
    /// last, while still locked, so no other process can mistake the directory for a leftover
    /// it must clean while we remove it).
    fn drop(&mut self) {
        let _ = remove_any(&self.tmp);
        let _ = std::fs::remove_file(self.tmp.with_extension("lock"));
    }
}

/// Fsyncs the directory containing `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    sync_dir(parent)
}

/// Fsyncs a directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync directory", dir)
}

fn check_version(root: &Path) -> Result<()> {
    let path = root.join(VERSION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if text.trim() == STORE_VERSION.to_string() {
                Ok(())
            } else {
                Err(Error::StoreVersion {
                    root: root.to_owned(),
                    found: text.trim().to_owned(),
                    supported: STORE_VERSION,
                })
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // Written atomically so a crash never leaves an empty version file.
            let tmp = root.join(format!(".{VERSION_FILE}.{}", std::process::id()));
            std::fs::write(&tmp, format!("{STORE_VERSION}\n")).ctx("write", &tmp)?;
            File::open(&tmp).and_then(|f| f.sync_all()).ctx("fsync", &tmp)?;
            std::fs::rename(&tmp, &path).ctx("rename into place", &path)?;
            sync_dir(root)
        }
        Err(err) => Err(Error::io("read", path, err)),
    }
}

/// Creates `<tmpdir>/<pid>-<n>.lock` (flocked exclusively) and `<tmpdir>/<pid>-<n>/`.
fn take_tmp_dir(tmpdir: &Path) -> Result<(PathBuf, File)> {
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
fn clean_stale_tmp(tmpdir: &Path, ours: &Path) {
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

/// Removes a file or a directory tree (never following symlinks); missing is fine.
pub(crate) fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_versioned_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(VERSION_FILE)).unwrap(), "1\n");
        for sub in ["content/blobs/sha256", "snapshots", "images", "tmp", "gcroots"] {
            assert!(dir.path().join(sub).is_dir(), "{sub}");
        }
        assert!(store.inner.tmp.starts_with(dir.path().canonicalize().unwrap().join("tmp")));
    }

    #[test]
    fn wrong_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(VERSION_FILE), "7\n").unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("format version \"7\"") && err.to_string().contains("newer"),
            "{err}"
        );
        // nothing was created in the refused store
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [VERSION_FILE]);
    }

    #[test]
    fn stale_temp_dirs_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let live = Store::open(dir.path()).unwrap();
        let live_file = live.temp_path("x");
        std::fs::write(&live_file, b"busy").unwrap();
        // a crashed process: lock file nobody holds, and its directory
        let tmp = dir.path().join("tmp");
        std::fs::write(tmp.join("999999-0-0.lock"), b"").unwrap();
        std::fs::create_dir_all(tmp.join("999999-0-0/sub")).unwrap();
        std::fs::write(tmp.join("999999-0-0/sub/half-blob"), b"x").unwrap();
        // a directory without a lock file (cleaner died)
        std::fs::create_dir(tmp.join("888888-0-0")).unwrap();
        let _second = Store::open(dir.path()).unwrap();
        assert!(!tmp.join("999999-0-0").exists());
        assert!(!tmp.join("999999-0-0.lock").exists());
        assert!(!tmp.join("888888-0-0").exists());
        assert!(live_file.exists(), "a live process's temp files must survive");
    }
}

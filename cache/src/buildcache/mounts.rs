//! Persistent cache-mount directories (`RUN --mount=type=cache,id=…,sharing=…`).
//!
//! Each id has a directory `<sha256(id)>/` holding the id in `id`, the main data directory
//! `data/` guarded by `data.lock`, and extra `private-N/` directories for `sharing=private`
//! writers that found `data/` busy. Locks are flocks, so they vanish with a killed process.
//! Contents are whatever the last RUN left: cache mounts are a cache, never part of an image.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, IoContext, Result};
use crate::layout::{remove_any, sha256_digest, sync_dir};
use crate::store::Store;

/// How concurrent users share one cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountSharing {
    /// Everyone uses `data/` at the same time (shared flock).
    Shared,
    /// Use `data/` when nobody else does, otherwise a `private-N/` directory nobody uses.
    Private,
    /// Wait until nobody else uses `data/` (exclusive flock).
    Locked,
}

/// The cache mounts of a store (see [`crate::buildcache::BuildCache::mounts`]).
#[derive(Debug, Clone)]
pub struct CacheMounts {
    store: Store,
    dir: PathBuf,
}

/// A cache-mount directory in use; the lock is released on drop.
#[derive(Debug)]
pub struct CacheMountGuard {
    path: PathBuf,
    created: bool,
    _lock: File,
}

impl CacheMountGuard {
    /// The directory to mount.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the directory was created for this use (apply `uid`/`gid`/`mode` then).
    pub fn created(&self) -> bool {
        self.created
    }
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).ctx("open", path)
}

impl CacheMounts {
    pub(crate) fn new(store: Store, dir: PathBuf) -> CacheMounts {
        CacheMounts { store, dir }
    }

    pub(crate) fn id_dir(&self, id: &str) -> PathBuf {
        self.dir.join(sha256_digest(id.as_bytes()).digest())
    }

    /// Creates the id's directory atomically if missing (temp dir + rename).
    fn ensure_id_dir(&self, id: &str) -> Result<(PathBuf, bool)> {
        let dir = self.id_dir(id);
        if dir.join("data").is_dir() {
            return Ok((dir, false));
        }
        let tmp = self.store.temp_path("cache-mount");
        let build = || -> Result<()> {
            std::fs::create_dir_all(tmp.join("data")).ctx("create directory", &tmp)?;
            std::fs::write(tmp.join("id"), id.as_bytes()).ctx("write", tmp.join("id"))?;
            File::create(tmp.join("data.lock")).ctx("create", tmp.join("data.lock"))?;
            File::open(tmp.join("id")).and_then(|f| f.sync_all()).ctx("fsync", tmp.join("id"))?;
            sync_dir(&tmp)
        };
        if let Err(err) = build() {
            let _ = remove_any(&tmp);
            return Err(err);
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => {
                sync_dir(&self.dir)?;
                Ok((dir, true))
            }
            Err(err) => {
                let _ = remove_any(&tmp);
                // Another build created it first.
                if dir.join("data").is_dir() {
                    Ok((dir, false))
                } else {
                    Err(Error::io("create cache mount", &dir, err))
                }
            }
        }
    }

    /// Takes the cache mount `id` with `sharing`. Blocks for [`MountSharing::Locked`] (and for
    /// [`MountSharing::Shared`] while a locked user holds it): call from a blocking thread.
    pub fn acquire(&self, id: &str, sharing: MountSharing) -> Result<CacheMountGuard> {
        let (dir, created) = self.ensure_id_dir(id)?;
        let data_lock_path = dir.join("data.lock");
        let data_lock = open_lock(&data_lock_path)?;
        let data = dir.join("data");
        match sharing {
            MountSharing::Shared => {
                flock(&data_lock, FlockOperation::LockShared).ctx("lock", &data_lock_path)?;
                Ok(CacheMountGuard { path: data, created, _lock: data_lock })
            }
            MountSharing::Locked => {
                flock(&data_lock, FlockOperation::LockExclusive).ctx("lock", &data_lock_path)?;
                Ok(CacheMountGuard { path: data, created, _lock: data_lock })
            }
            MountSharing::Private => {
                if flock(&data_lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                    return Ok(CacheMountGuard { path: data, created, _lock: data_lock });
                }
                for n in 0u32.. {
                    let lock_path = dir.join(format!("private-{n}.lock"));
                    let lock = open_lock(&lock_path)?;
                    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
                        continue;
                    }
                    let path = dir.join(format!("private-{n}"));
                    let fresh = !path.is_dir();
                    if fresh {
                        std::fs::create_dir(&path).ctx("create directory", &path)?;
                    }
                    return Ok(CacheMountGuard { path, created: fresh, _lock: lock });
                }
                unreachable!("u32 range exhausted while looking for a free private cache mount")
            }
        }
    }

    /// A gzip layer of the main directory of cache mount `id`, written to the content store
    /// while holding the mount shared (`--cache-to …,cache-mounts=true`); `None` when the store
    /// has no such mount.
    pub fn export_layer(&self, id: &str) -> Result<Option<crate::NewLayer>> {
        if !self.id_dir(id).join("data").is_dir() {
            return Ok(None);
        }
        let guard = self.acquire(id, MountSharing::Shared)?;
        let options = crate::DiffOptions { compression: crate::Compression::Gzip, ..Default::default() };
        self.store.content().write_layer(guard.path(), crate::DiffSource::PlainDir, &options).map(Some)
    }

    /// Fills cache mount `id` from the layer blob `blob` (in the content store) when the store
    /// has no such mount yet: a mount this store already has is at least as fresh. Returns
    /// whether it did. A layer that cannot be applied leaves no mount behind.
    pub fn import_layer(&self, id: &str, blob: &oci_spec::image::Digest) -> Result<bool> {
        if self.id_dir(id).join("data").is_dir() {
            return Ok(false);
        }
        let guard = self.acquire(id, MountSharing::Locked)?;
        if !guard.created() {
            return Ok(false);
        }
        let applied = (|| {
            let file = self.store.content().open(blob)?;
            let tar = crate::compress::decompress_any(file)
                .map_err(|e| Error::io("decompress", guard.path(), e))?;
            crate::apply::apply_tar(tar, guard.path(), crate::apply::ApplyMode::Merge)
        })();
        if let Err(err) = applied {
            drop(guard);
            self.remove(id)?;
            return Err(err);
        }
        Ok(true)
    }

    /// Ids of existing cache mounts.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir).ctx("read directory", &self.dir)? {
            let entry = entry.ctx("read directory", &self.dir)?;
            if let Ok(id) = std::fs::read_to_string(entry.path().join("id")) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Deletes the cache mount `id` if nobody uses it; returns whether it was removed.
    pub fn remove(&self, id: &str) -> Result<bool> {
        let dir = self.id_dir(id);
        if !dir.exists() {
            return Ok(false);
        }
        let lock_path = dir.join("data.lock");
        let lock = open_lock(&lock_path)?;
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(false);
        }
        let doomed = self.store.temp_path("cache-mount-removed");
        std::fs::rename(&dir, &doomed).ctx("rename", &dir)?;
        remove_any(&doomed).ctx("remove", &doomed)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildcache::BuildCache;

    fn mounts() -> (tempfile::TempDir, CacheMounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mounts = BuildCache::open(&store).unwrap().mounts();
        (dir, mounts)
    }

    #[test]
    fn shared_users_see_the_same_directory_and_contents_persist() {
        let (_dir, mounts) = mounts();
        let a = mounts.acquire("go-build", MountSharing::Shared).unwrap();
        assert!(a.created());
        let b = mounts.acquire("go-build", MountSharing::Shared).unwrap();
        assert!(!b.created());
        assert_eq!(a.path(), b.path());
        std::fs::write(a.path().join("obj"), b"x").unwrap();
        drop((a, b));
        let again = mounts.acquire("go-build", MountSharing::Locked).unwrap();
        assert_eq!(std::fs::read(again.path().join("obj")).unwrap(), b"x");
        assert_eq!(mounts.list().unwrap(), vec!["go-build".to_string()]);
    }

    /// A mount travels as a layer: exported from one store, it fills a store that lacks it,
    /// never one that has it; a layer that is not one leaves no mount.
    #[test]
    fn mounts_travel_as_layers() {
        let (_a_dir, a) = mounts();
        assert!(a.export_layer("deps").unwrap().is_none(), "no such mount");
        {
            let guard = a.acquire("deps", MountSharing::Shared).unwrap();
            std::fs::create_dir(guard.path().join("pkg")).unwrap();
            std::fs::write(guard.path().join("pkg/lib.a"), b"compiled").unwrap();
        }
        let layer = a.export_layer("deps").unwrap().expect("a layer");
        let bytes = a.store.content().read(layer.descriptor.digest()).unwrap();

        let (_b_dir, b) = mounts();
        let blob = b.store.content().write_bytes(&bytes, layer.descriptor.media_type().clone()).unwrap();
        assert!(b.import_layer("deps", blob.digest()).unwrap());
        let guard = b.acquire("deps", MountSharing::Shared).unwrap();
        assert_eq!(std::fs::read(guard.path().join("pkg/lib.a")).unwrap(), b"compiled");
        drop(guard);
        assert!(!b.import_layer("deps", blob.digest()).unwrap(), "an existing mount is kept");

        let junk =
            b.store.content().write_bytes(&[b'A'; 1024], oci_spec::image::MediaType::ImageLayer).unwrap();
        assert!(b.import_layer("other", junk.digest()).is_err());
        assert!(!b.list().unwrap().contains(&"other".to_string()), "no half-restored mount");
    }

    #[test]
    fn private_users_get_distinct_directories() {
        let (_dir, mounts) = mounts();
        let a = mounts.acquire("apt", MountSharing::Private).unwrap();
        let b = mounts.acquire("apt", MountSharing::Private).unwrap();
        let c = mounts.acquire("apt", MountSharing::Private).unwrap();
        assert_ne!(a.path(), b.path());
        assert_ne!(b.path(), c.path());
        drop(b);
        let d = mounts.acquire("apt", MountSharing::Private).unwrap();
        assert!(d.path().ends_with("private-0"), "a released private dir is reused: {}", d.path().display());
        assert!(!mounts.remove("apt").unwrap(), "in use");
        drop((a, c, d));
        assert!(mounts.remove("apt").unwrap());
        assert!(mounts.list().unwrap().is_empty());
    }

    #[test]
    fn locked_users_wait_for_each_other() {
        let (_dir, mounts) = mounts();
        let first = mounts.acquire("db", MountSharing::Locked).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = mounts.clone();
        let waiter = std::thread::spawn(move || {
            let guard = other.acquire("db", MountSharing::Locked).unwrap();
            tx.send(()).unwrap();
            drop(guard);
        });
        // The second user cannot have the lock while the first holds it.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("second user proceeds after release");
        waiter.join().unwrap();
    }
}

//! The store: the facade over the on-disk layout. Opening checks the format version, takes
//! the locks this process holds while it uses the store, and makes the layout ready
//! ([`crate::layout`]); the handles it gives out ([`ContentStore`], [`Snapshots`],
//! [`ImageStore`]) each hold the layout, not the store. Writing a tagged image and GC, which
//! span several handles, are here.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, ImageConfiguration};
use rustix::fs::{FlockOperation, flock};

use crate::content::ContentStore;
use crate::error::{Error, IoContext, Result};
use crate::gc::{Collector, GcReport, GcRoots};
use crate::images::ImageStore;
use crate::layout::{GC_LOCK_FILE, Layout, sync_dir};
use crate::snapshot::Snapshots;

/// Version of the on-disk layout written to `<root>/kiln-store-version`.
pub const STORE_VERSION: u32 = 1;

/// File under the root holding [`STORE_VERSION`].
pub const VERSION_FILE: &str = "kiln-store-version";

/// An open store. Cheap to clone; all clones (and the handles made from them) share this
/// process's temp directory and locks.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
}

impl Store {
    /// Opens (creating if needed) the store under `root`: checks the format version, takes a
    /// shared flock on `gc.lock` (held as long as this store or a handle made from it lives;
    /// [`Store::gc`] sweeps only when no other process holds one), creates the layout, takes
    /// this process's temp directory and removes temp leftovers of dead processes.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| Error::io("create store root", root, e))?;
        let root = root.canonicalize().ctx("resolve store root", root)?;
        check_version(&root)?;
        let gc_path = root.join(GC_LOCK_FILE);
        let gc_lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&gc_path)
            .ctx("open", &gc_path)?;
        flock(&gc_lock, FlockOperation::LockShared).ctx("lock", &gc_path)?;
        Ok(Store { layout: Layout::open(root, gc_lock)? })
    }

    /// The store root (canonical).
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The content-addressed blob store.
    pub fn content(&self) -> ContentStore {
        ContentStore::new(self.layout.clone())
    }

    /// Unpacked layers keyed by chain ID.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots::new(self.layout.clone())
    }

    /// Names → manifest/index digests.
    pub fn images(&self) -> ImageStore {
        ImageStore::new(self.layout.clone())
    }

    /// A fresh path inside this process's temp directory (same filesystem as the store),
    /// not yet created. Whatever is left there is removed when the store is next opened after
    /// this process died.
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        self.layout.temp_path(hint)
    }

    /// Writes `bytes` to `dest` atomically: temp file in the store, fsync, rename, fsync dir.
    pub fn write_file_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        self.layout.write_file_atomic(dest, bytes)
    }

    /// Writes an image: `config` (whose `rootfs.diff_ids` must list one diffID per layer) and an
    /// OCI manifest over `layers`. Returns the manifest descriptor, to be tagged with
    /// [`ImageStore::tag`]. See [`ContentStore::write_image`].
    pub fn write_image(&self, config: &ImageConfiguration, layers: &[Descriptor]) -> Result<Descriptor> {
        self.content().write_image(config, layers)
    }

    /// [`Store::write_image`], then points every name of `names` (fully qualified) at it; with
    /// no names the image is recorded untagged (`<none>`). Returns the manifest descriptor.
    pub fn write_image_tagged(
        &self,
        config: &ImageConfiguration,
        layers: &[Descriptor],
        names: &[&str],
    ) -> Result<Descriptor> {
        let manifest = self.write_image(config, layers)?;
        let images = self.images();
        if names.is_empty() {
            images.add_untagged(&manifest)?;
        }
        for name in names {
            images.tag(name, &manifest)?;
        }
        Ok(manifest)
    }

    /// Removes blobs and snapshots that no image, GC root file or `extra_roots` references (a
    /// root keeps a blob, the snapshot with that chain ID and what a manifest or index refers
    /// to). Skipped ([`GcReport::skipped_busy`]) while another process has the store open.
    pub fn gc(&self, extra_roots: &[&dyn GcRoots]) -> Result<GcReport> {
        let gc_path = self.layout.path(GC_LOCK_FILE);
        let lock = self.layout.gc_lock();
        if flock(lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            // The failed conversion may have dropped our shared lock: take it back.
            flock(lock, FlockOperation::LockShared).ctx("lock", &gc_path)?;
            return Ok(GcReport { skipped_busy: true, ..GcReport::default() });
        }
        let result = Collector::new(self.layout.clone()).sweep(extra_roots);
        flock(lock, FlockOperation::LockShared).ctx("lock", &gc_path)?;
        result
    }

    /// Writes (atomically) the GC root file `<root>/gcroots/<name>` listing `digests`; an empty
    /// list removes it. For components that keep content alive outside image names.
    pub fn set_gc_roots(&self, name: &str, digests: &[Digest]) -> Result<()> {
        Collector::new(self.layout.clone()).set_file_roots(name, digests)
    }

    /// The blobs and snapshot chain IDs the image records keep alive (what a GC keeps even
    /// without other roots).
    pub(crate) fn image_references(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        Collector::new(self.layout.clone()).image_references()
    }
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
        assert!(store.temp_path("x").starts_with(dir.path().canonicalize().unwrap().join("tmp")));
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
    fn a_handle_keeps_the_temp_dir_and_the_gc_claim_of_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tmp = store.temp_path("x").parent().unwrap().to_owned();
        let content = store.content();
        drop(store);
        // the handle still writes through the store's temp directory, and GC (another open of
        // the root, which conflicts like another process) must not sweep under it
        let blob = content.write_bytes(b"still in use", oci_spec::image::MediaType::ImageLayer).unwrap();
        assert!(tmp.is_dir());
        let gc = Store::open(dir.path()).unwrap();
        assert!(gc.gc(&[]).unwrap().skipped_busy);
        drop(content);
        assert!(!tmp.exists(), "the last handle removes the temp directory");
        let report = gc.gc(&[]).unwrap();
        assert_eq!(report.removed_blobs, [blob.digest().clone()]);
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

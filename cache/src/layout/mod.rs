//! The on-disk layout under the store root, and the few ways the store writes to it: the
//! bottom layer of the crate, knowing nothing of blobs, snapshots or images.
//!
//! - where things live: [`Layout::root`] and the directories below it ([`BLOBS_DIR`],
//!   [`SNAPSHOTS_DIR`], [`IMAGES_DIR`], [`GCROOTS_DIR`], [`TMP_DIR`]);
//! - this process's presence in the store, held by every clone: a private temp directory
//!   under `tmp/` taken by [`Layout::open`] (same filesystem as the rest, for atomic renames;
//!   see [`temp`]) and the shared flock on [`GC_LOCK_FILE`] that `Store::open` took (the
//!   collector sweeps only when it can take that lock exclusively);
//! - atomic writes: [`Layout::write_file_atomic`] (temp file, fsync, rename, fsync of the
//!   directory) and the helpers the handles use for their own renames ([`sync_dir`],
//!   [`sync_parent`], [`syncfs`], [`remove_any`]);
//! - digests: sha256 while reading or writing ([`HashingReader`], [`HashingWriter`]),
//!   [`sha256_digest`], [`parse_digest`].
//!
//! The content store, snapshots and the image index each hold a [`Layout`] (never the whole
//! `Store`), and `Store` is the facade that opens it.

mod digest;
mod temp;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

pub(crate) use digest::digest_from_hasher;
pub use digest::{HashingReader, HashingWriter, parse_digest, sha256_digest};

/// Blobs by sha256 hex (an OCI image layout under `content/`).
pub(crate) const BLOBS_DIR: &str = "content/blobs/sha256";
/// `{"imageLayoutVersion":"1.0.0"}`, making `content/` an OCI image layout.
pub(crate) const OCI_LAYOUT_FILE: &str = "content/oci-layout";
/// Unpacked layers by chain ID hex.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";
/// [`crate::Snapshots::remember_latest`]'s hints (operation key → latest chain ID); made on
/// first use.
pub(crate) const SNAPSHOT_HINTS_DIR: &str = "snapshot-hints-v1";
/// The image index and its lock.
pub(crate) const IMAGES_DIR: &str = "images";
/// Files listing digests other components keep alive.
pub(crate) const GCROOTS_DIR: &str = "gcroots";
/// Per-process temp directories.
pub(crate) const TMP_DIR: &str = "tmp";
/// Shared flock per process using the store; GC sweeps only when it gets it exclusively.
pub(crate) const GC_LOCK_FILE: &str = "gc.lock";

/// The directories every store has.
const DIRS: [&str; 5] = [BLOBS_DIR, SNAPSHOTS_DIR, IMAGES_DIR, TMP_DIR, GCROOTS_DIR];

/// The store root as this process uses it. Cheap to clone; the last clone gives the temp
/// directory back (removes it) and releases the locks.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// This process's private temp directory under `<root>/tmp/`.
    tmp: PathBuf,
    /// Exclusive flock on `<tmp>.lock`, held while the store is open.
    _tmp_lock: File,
    /// Shared flock on `<root>/gc.lock`, held while the store is open (GC takes it exclusively).
    gc_lock: File,
    counter: AtomicU64,
}

impl Layout {
    /// Creates the directories under `root` (an existing, canonical path whose format version
    /// the caller checked), takes this process's temp directory and removes temp leftovers of
    /// dead processes. `gc_lock` is the caller's open `gc.lock` with a shared flock on it: it is
    /// kept as long as any clone lives, so no handle outlives the process's claim on the store.
    pub(crate) fn open(root: PathBuf, gc_lock: File) -> Result<Layout> {
        for dir in DIRS {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).ctx("create store directory", &path)?;
        }
        let oci_layout = root.join(OCI_LAYOUT_FILE);
        if !oci_layout.exists() {
            std::fs::write(&oci_layout, br#"{"imageLayoutVersion":"1.0.0"}"#).ctx("write", &oci_layout)?;
        }
        let tmp_root = root.join(TMP_DIR);
        let (tmp, tmp_lock) = temp::take_dir(&tmp_root)?;
        temp::clean_stale(&tmp_root, &tmp);
        let inner = Inner { root, tmp, _tmp_lock: tmp_lock, gc_lock, counter: AtomicU64::new(0) };
        Ok(Layout { inner: Arc::new(inner) })
    }

    /// The store root (canonical).
    pub(crate) fn root(&self) -> &Path {
        &self.inner.root
    }

    /// `<root>/<relative>`.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.inner.root.join(relative)
    }

    /// A fresh path inside this process's temp directory (same filesystem as the store), not
    /// yet created. Whatever is left there is removed when the store is next opened after this
    /// process died.
    pub(crate) fn temp_path(&self, hint: &str) -> PathBuf {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        self.inner.tmp.join(format!("{hint}-{n}"))
    }

    /// Writes `bytes` to `dest` atomically: temp file in the store, fsync, rename, fsync dir.
    pub(crate) fn write_file_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
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

    /// The open `gc.lock` this process holds a shared flock on (the collector converts it).
    pub(crate) fn gc_lock(&self) -> &File {
        &self.inner.gc_lock
    }
}

impl Drop for Inner {
    /// The last clone removes this process's temp directory (the lock file goes last, while
    /// still locked, so no other process can mistake the directory for a leftover it must clean
    /// while we remove it).
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

/// Syncs the filesystem holding `path` (everything written to it so far becomes durable): one
/// call instead of an fsync per file of an unpacked tree.
pub(crate) fn syncfs(path: &Path) -> Result<()> {
    let handle = File::open(path).ctx("open", path)?;
    rustix::fs::syncfs(&handle).ctx("sync filesystem of", path)
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

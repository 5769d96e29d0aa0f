//! Snapshots: each layer unpacked into its own directory `<root>/snapshots/<chain-id-hex>/fs`,
//! usable as an overlayfs lower dir (whiteouts are 0/0 char devices, opaque dirs carry
//! `trusted.overlay.opaque=y`). An image's rootfs is the overlay of its chain's dirs.
//!
//! Unpacking happens in the store's temp directory and the finished snapshot is renamed into
//! place, so a snapshot directory is always complete; when two processes unpack the same chain
//! concurrently, the first rename wins and the other discards its copy.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::apply::{ApplyMode, apply_tar};
use crate::compress::decompress;
use crate::content::ContentStore;
use crate::diff::{DiffOptions, DiffSource, NewLayer};
use crate::error::{Error, IoContext, Result};
use crate::layout::{
    Layout, SNAPSHOT_HINTS_DIR, SNAPSHOTS_DIR, parse_digest, remove_any, sha256_digest, sync_dir, syncfs,
};

/// A layer of an image: its blob descriptor and its diffID (from the image config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub blob: Descriptor,
    pub diff_id: Digest,
}

/// Metadata stored next to each snapshot (`info.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// Blob the snapshot was unpacked from (absent for snapshots committed from a directory).
    pub blob: Option<Digest>,
    pub parent: Option<Digest>,
    /// Bytes of the uncompressed layer tar.
    pub size: u64,
}

/// Chain IDs of a list of diffIDs (OCI image spec): `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The bytes of the regular files under `root`, each inode once (docker's size of a layer or
/// a directory tree).
pub(crate) fn tree_bytes(root: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ctx("read", &dir)? {
            let entry = entry.ctx("read", &dir)?;
            let meta = entry.metadata().ctx("stat", entry.path())?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()))) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// What [`Snapshots::commit_layer`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedLayer {
    pub layer: NewLayer,
    /// Chain ID of the parent chain plus this layer.
    pub chain_id: Digest,
    /// The snapshot's lower dir.
    pub path: PathBuf,
}

/// Access to snapshots. Obtained from [`crate::Store::snapshots`].
#[derive(Debug, Clone)]
pub struct Snapshots {
    layout: Layout,
    /// Where layer blobs are read from and written to.
    content: ContentStore,
}

impl Snapshots {
    pub(crate) fn new(layout: Layout) -> Snapshots {
        Snapshots { content: ContentStore::new(layout.clone()), layout }
    }

    fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.layout.path(SNAPSHOTS_DIR).join(chain_id.digest())
    }

    /// The lower dir of a snapshot (whether or not it exists).
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    /// True if the snapshot is unpacked.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join("info.json").is_file()
    }

    /// Metadata of a snapshot.
    pub fn info(&self, chain_id: &Digest) -> Result<SnapshotInfo> {
        let path = self.dir(chain_id).join("info.json");
        let bytes = std::fs::read(&path).ctx("read", &path)?;
        serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { what: path.display().to_string(), source })
    }

    /// The layer's content size as docker shows it (`images`, `history`): the bytes of its
    /// regular files, each inode once; `None` when the snapshot is not unpacked.
    pub fn content_size(&self, chain_id: &Digest) -> Result<Option<u64>> {
        if !self.exists(chain_id) {
            return Ok(None);
        }
        tree_bytes(&self.path(chain_id)).map(Some)
    }

    /// Makes sure every layer of the chain is unpacked; returns the lower dirs in the order of the
    /// overlayfs `lowerdir=` option, i.e. **topmost layer first** (`lowers.join(":")`).
    /// The layer blobs must be in the content store. Idempotent and safe to run concurrently.
    pub fn ensure_unpacked(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chain = chain_ids(&diff_ids);
        let mut lowers = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            let parent = index.checked_sub(1).map(|i| chain[i].clone());
            self.ensure_one(layer, &chain[index], parent)?;
            lowers.push(self.path(&chain[index]));
        }
        lowers.reverse();
        Ok(lowers)
    }

    fn ensure_one(&self, layer: &LayerRef, chain_id: &Digest, parent: Option<Digest>) -> Result<()> {
        if self.exists(chain_id) {
            return Ok(());
        }
        let blob = self.content.open(layer.blob.digest())?;
        let work = self.layout.temp_path("snapshot");
        let result = (|| {
            let fs_dir = work.join("fs");
            std::fs::create_dir_all(&fs_dir).ctx("create", &fs_dir)?;
            let blob_path = self.content.blob_path(layer.blob.digest())?;
            let reader = decompress(blob).ctx("read layer", &blob_path)?;
            let stats = apply_tar(reader, &fs_dir, ApplyMode::Overlay)?;
            if stats.diff_id != layer.diff_id {
                return Err(Error::diff_id_mismatch(layer.blob.digest(), &layer.diff_id, &stats.diff_id));
            }
            let info = SnapshotInfo {
                chain_id: chain_id.clone(),
                diff_id: layer.diff_id.clone(),
                blob: Some(layer.blob.digest().clone()),
                parent,
                size: stats.tar_size,
            };
            self.install(&work, &info)
        })();
        if result.is_err() {
            let _ = remove_any(&work);
        }
        result
    }

    /// Moves a prepared snapshot directory (`work/fs`) into place with its `info.json`.
    fn install(&self, work: &Path, info: &SnapshotInfo) -> Result<()> {
        self.write_info(work, info)?;
        // One syncfs makes the whole unpacked tree durable before it becomes visible.
        syncfs(work)?;
        self.rename_into_place(work, info)
    }

    fn write_info(&self, work: &Path, info: &SnapshotInfo) -> Result<()> {
        let info_path = work.join("info.json");
        let bytes = serde_json::to_vec_pretty(info)
            .map_err(|source| Error::Json { what: info_path.display().to_string(), source })?;
        std::fs::write(&info_path, bytes).ctx("write", &info_path)
    }

    /// Renames the synced snapshot directory `work` into place.
    fn rename_into_place(&self, work: &Path, info: &SnapshotInfo) -> Result<()> {
        let dest = self.dir(&info.chain_id);
        match std::fs::rename(work, &dest) {
            Ok(()) => sync_dir(&self.layout.path(SNAPSHOTS_DIR)),
            Err(_) if self.exists(&info.chain_id) => {
                // Another process finished first: theirs is identical.
                let _ = remove_any(work);
                Ok(())
            }
            Err(err) => Err(Error::io("rename snapshot into", dest, err)),
        }
    }

    /// Turns a directory (e.g. an overlay upperdir after a RUN, on the store's filesystem) into
    /// the snapshot `chain_id` by moving it. `diff_id` is that of the layer made from the same
    /// directory. If the snapshot already exists the directory is left alone.
    pub fn commit_dir(
        &self,
        dir: &Path,
        chain_id: &Digest,
        diff_id: &Digest,
        parent: Option<Digest>,
        size: u64,
    ) -> Result<PathBuf> {
        if self.exists(chain_id) {
            return Ok(self.path(chain_id));
        }
        let work = self.layout.temp_path("snapshot");
        std::fs::create_dir(&work).ctx("create", &work)?;
        let fs_dir = work.join("fs");
        std::fs::rename(dir, &fs_dir).ctx("move into snapshot", dir)?;
        let info =
            SnapshotInfo { chain_id: chain_id.clone(), diff_id: diff_id.clone(), blob: None, parent, size };
        self.install(&work, &info)?;
        Ok(self.path(chain_id))
    }

    /// Diffs `dir` (an overlay upperdir or plain directory on the store's filesystem, e.g. after
    /// a RUN or a COPY) into a layer blob and moves `dir` in as that layer's snapshot over the
    /// chain `parent`, with one syncfs making both durable before either becomes visible (a
    /// background syncfs already starts writing `dir`'s data out while the tar is made). When
    /// the snapshot exists already, `dir` is left alone and only the blob is stored.
    pub fn commit_layer(
        &self,
        dir: &Path,
        source: DiffSource,
        options: &DiffOptions,
        parent: Option<&Digest>,
    ) -> Result<CommittedLayer> {
        let early = std::fs::File::open(dir).ok().map(|handle| {
            std::thread::spawn(move || {
                let _ = rustix::fs::syncfs(&handle);
            })
        });
        let made = self.content.write_layer_uncommitted(dir, source, options, &[]);
        if let Some(early) = early {
            let _ = early.join();
        }
        let (writer, layer) = made?;
        let chain_id = match parent {
            None => layer.diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {}", layer.diff_id).as_bytes()),
        };
        if self.exists(&chain_id) {
            writer.commit(None)?;
            return Ok(CommittedLayer { path: self.path(&chain_id), chain_id, layer });
        }
        let work = self.layout.temp_path("snapshot");
        let info = SnapshotInfo {
            chain_id: chain_id.clone(),
            diff_id: layer.diff_id.clone(),
            blob: None,
            parent: parent.cloned(),
            size: layer.tar_size,
        };
        let result = (|| {
            std::fs::create_dir(&work).ctx("create", &work)?;
            let fs_dir = work.join("fs");
            std::fs::rename(dir, &fs_dir).ctx("move into snapshot", dir)?;
            self.write_info(&work, &info)?;
            // the blob's temp file and the snapshot are on this filesystem: one sync for both
            syncfs(&work)?;
            writer.commit_synced()?;
            self.rename_into_place(&work, &info)
        })();
        if result.is_err() {
            // put the directory back for the caller's cleanup, drop the half-made snapshot
            let _ = std::fs::rename(work.join("fs"), dir);
            let _ = remove_any(&work);
        }
        result?;
        Ok(CommittedLayer { path: self.path(&chain_id), chain_id, layer })
    }

    fn hint_path(&self, key: &Digest) -> PathBuf {
        self.layout.path(SNAPSHOT_HINTS_DIR).join(key.digest())
    }

    /// Remembers `chain_id` as the latest result of the operation named by `key` (a digest the
    /// caller derives from the operation and its parent chain, never part of a cache key), so
    /// a later run of the same operation over changed inputs can find it with
    /// [`Snapshots::latest`] and share its unchanged files. A hint only: written atomically
    /// (rename) but not fsynced, since losing it costs time, not results.
    pub fn remember_latest(&self, key: &Digest, chain_id: &Digest) -> Result<()> {
        let dir = self.layout.path(SNAPSHOT_HINTS_DIR);
        std::fs::create_dir_all(&dir).ctx("create", &dir)?;
        let dest = self.hint_path(key);
        let tmp = self.layout.temp_path("hint");
        std::fs::write(&tmp, chain_id.to_string()).ctx("write", &tmp)?;
        std::fs::rename(&tmp, &dest).map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("rename into place", &dest, err)
        })
    }

    /// The snapshot remembered for `key` by [`Snapshots::remember_latest`], when it still
    /// exists and sits on the chain `parent`: its lower dir and chain ID.
    pub fn latest(&self, key: &Digest, parent: Option<&Digest>) -> Option<(PathBuf, Digest)> {
        let text = std::fs::read_to_string(self.hint_path(key)).ok()?;
        let chain_id = parse_digest(text.trim()).ok()?;
        let info = self.info(&chain_id).ok()?;
        (info.parent.as_ref() == parent).then(|| (self.path(&chain_id), chain_id))
    }

    /// All snapshot chain IDs present.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.path(SNAPSHOTS_DIR);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).ctx("list", &dir)? {
            let entry = entry.ctx("list", &dir)?;
            if let Some(name) = entry.file_name().to_str()
                && let Ok(digest) = parse_digest(&format!("sha256:{name}"))
            {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Removes a snapshot: it is first renamed into the temp directory (so it disappears
    /// atomically), then deleted.
    pub fn remove(&self, chain_id: &Digest) -> Result<()> {
        let dir = self.dir(chain_id);
        let trash = self.layout.temp_path("trash");
        match std::fs::rename(&dir, &trash) {
            Ok(()) => remove_any(&trash).ctx("remove", &trash),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io("remove snapshot", dir, err)),
        }
    }

    /// Applies the layers one after the other onto the plain directory `dest` (whiteouts delete,
    /// opaque markers clear): the image's root filesystem as a normal tree, e.g. for
    /// `type=local` exports and tests. `dest` must exist (normally empty). Each layer's diffID is
    /// verified.
    pub fn flatten(&self, layers: &[LayerRef], dest: &Path) -> Result<()> {
        for layer in layers {
            let blob_path = self.content.blob_path(layer.blob.digest())?;
            let blob = self.content.open(layer.blob.digest())?;
            let reader: Box<dyn Read> = decompress(blob).ctx("read layer", &blob_path)?;
            let stats = apply_tar(reader, dest, ApplyMode::Merge)?;
            if stats.diff_id != layer.diff_id {
                return Err(Error::diff_id_mismatch(layer.blob.digest(), &layer.diff_id, &stats.diff_id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn commit_layer_stores_the_blob_and_moves_the_dir_in() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("root")).unwrap();
        let options =
            DiffOptions { compression: crate::Compression::None, source_date_epoch: Some(0), threads: 1 };
        let make = |name: &str| {
            let dir = store.temp_path(name);
            std::fs::create_dir_all(dir.join("d")).unwrap();
            std::fs::write(dir.join("d/f"), b"content").unwrap();
            dir
        };
        let parent = sha256_digest(b"parent chain");
        let dir = make("upper");
        let committed =
            store.snapshots().commit_layer(&dir, DiffSource::PlainDir, &options, Some(&parent)).unwrap();
        let layer = &committed.layer;
        // a plain layer: the blob is the tar, its digest the diffID
        assert_eq!(layer.descriptor.digest(), &layer.diff_id);
        assert_eq!(store.content().size(&layer.diff_id).unwrap(), layer.tar_size);
        assert_eq!(committed.chain_id, chain_ids(&[parent.clone(), layer.diff_id.clone()])[1]);
        assert!(!dir.exists(), "the directory moved into the snapshot");
        assert_eq!(std::fs::read(committed.path.join("d/f")).unwrap(), b"content");
        let info = store.snapshots().info(&committed.chain_id).unwrap();
        assert_eq!((info.parent, info.size), (Some(parent.clone()), layer.tar_size));
        // the same content again: the snapshot exists, the directory is left alone
        let again = make("again");
        let second =
            store.snapshots().commit_layer(&again, DiffSource::PlainDir, &options, Some(&parent)).unwrap();
        assert_eq!(second, committed);
        assert!(again.join("d/f").is_file());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
    }
}

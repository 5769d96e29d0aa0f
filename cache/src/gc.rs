//! Garbage collection of blobs and snapshots no image or GC root references.
//!
//! Roots are: every image record (its index, manifests, configs, layers and the chain IDs of its
//! layers), every digest listed in the files of `<root>/gcroots/` (one digest per line; other
//! components, e.g. the build cache, write a file there atomically), and whatever the
//! [`GcRoots`] implementations passed to [`crate::Store::gc`] return. A root digest keeps the
//! blob, the snapshot with that chain ID, and — when the blob is a manifest or index — everything
//! it refers to.
//!
//! Sweeping needs the store to be unused by other processes: every open [`crate::Store`] (and
//! every handle made from it) holds a shared flock on `<root>/gc.lock` and the sweep needs it
//! exclusively: [`crate::Store::gc`] takes it, then runs the [`Collector`] here. If another
//! process has the store open, the sweep is skipped (reported in [`GcReport::skipped_busy`]) and
//! the garbage waits for a later GC — content another process is producing is never deleted
//! under it.

use std::collections::HashSet;

use oci_spec::image::{Digest, ImageIndex, ImageManifest};

use crate::content::ContentStore;
use crate::error::{Error, IoContext, Result};
use crate::image::{DocKind, doc_kind};
use crate::images::ImageStore;
use crate::layout::{GCROOTS_DIR, Layout, parse_digest};
use crate::snapshot::{Snapshots, chain_ids};

/// A source of GC roots (digests of blobs, manifests, indexes, or snapshot chain IDs to keep).
pub trait GcRoots {
    fn gc_roots(&self) -> Result<Vec<Digest>>;
}

/// What a GC did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed_blobs: Vec<Digest>,
    pub removed_snapshots: Vec<Digest>,
    /// Bytes of blobs and snapshots (their layer size) removed.
    pub reclaimed: u64,
    /// True when another process had the store open, so nothing was removed.
    pub skipped_busy: bool,
}

#[derive(Default)]
struct Marks {
    blobs: HashSet<Digest>,
    chains: HashSet<Digest>,
}

/// Marks what the roots reference and sweeps the rest; the caller holds `gc.lock` exclusively
/// while it sweeps.
pub(crate) struct Collector {
    layout: Layout,
    content: ContentStore,
    snapshots: Snapshots,
    images: ImageStore,
}

impl Collector {
    pub(crate) fn new(layout: Layout) -> Collector {
        Collector {
            content: ContentStore::new(layout.clone()),
            snapshots: Snapshots::new(layout.clone()),
            images: ImageStore::new(layout.clone()),
            layout,
        }
    }

    /// Removes the blobs and snapshots nothing references; see the module docs. Only while
    /// `gc.lock` is held exclusively.
    pub(crate) fn sweep(&self, extra_roots: &[&dyn GcRoots]) -> Result<GcReport> {
        let mut marks = Marks::default();
        for record in self.images.list()? {
            self.mark(record.target.digest(), &mut marks)?;
        }
        let mut roots = self.file_roots()?;
        for source in extra_roots {
            roots.extend(source.gc_roots()?);
        }
        for root in roots {
            marks.chains.insert(root.clone());
            self.mark(&root, &mut marks)?;
        }
        let content = &self.content;
        let mut report = GcReport::default();
        for digest in content.list()? {
            if !marks.blobs.contains(&digest) {
                report.reclaimed += content.size(&digest).unwrap_or(0);
                content.remove(&digest)?;
                report.removed_blobs.push(digest);
            }
        }
        let snapshots = &self.snapshots;
        for chain in snapshots.list()? {
            if !marks.chains.contains(&chain) {
                report.reclaimed += snapshots.info(&chain).map(|info| info.size).unwrap_or(0);
                snapshots.remove(&chain)?;
                report.removed_snapshots.push(chain);
            }
        }
        Ok(report)
    }

    /// The blobs and snapshot chain IDs the image records keep alive (what a GC keeps even
    /// without other roots).
    pub(crate) fn image_references(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let mut marks = Marks::default();
        for record in self.images.list()? {
            self.mark(record.target.digest(), &mut marks)?;
        }
        Ok((marks.blobs, marks.chains))
    }

    /// Marks a blob and, for manifests/indexes, what they reference. Missing blobs are fine
    /// (e.g. a root naming a snapshot only).
    fn mark(&self, digest: &Digest, marks: &mut Marks) -> Result<()> {
        if !marks.blobs.insert(digest.clone()) {
            return Ok(());
        }
        let content = &self.content;
        if !content.contains(digest) || content.size(digest)? > 4 << 20 {
            return Ok(());
        }
        let Ok(bytes) = content.read(digest) else { return Ok(()) };
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            layers: Option<serde_json::Value>,
        }
        let Ok(probe) = crate::config::from_json_slice::<Probe>(&bytes) else { return Ok(()) };
        let kind = match probe.media_type.as_deref() {
            Some(mt) => doc_kind(&mt.into()),
            None if probe.manifests.is_some() => Some(DocKind::Index),
            None if probe.layers.is_some() => Some(DocKind::Manifest),
            None => None,
        };
        let json_err = |source| Error::Json { what: format!("blob {digest}"), source };
        match kind {
            Some(DocKind::Index) => {
                let index: ImageIndex = crate::config::from_json_slice(&bytes).map_err(json_err)?;
                for manifest in index.manifests() {
                    self.mark(manifest.digest(), marks)?;
                }
            }
            Some(DocKind::Manifest) => {
                let manifest: ImageManifest = crate::config::from_json_slice(&bytes).map_err(json_err)?;
                marks.blobs.insert(manifest.config().digest().clone());
                for layer in manifest.layers() {
                    marks.blobs.insert(layer.digest().clone());
                }
                if let Ok(config) =
                    content.read_json::<oci_spec::image::ImageConfiguration>(manifest.config().digest())
                {
                    let diffs: Vec<Digest> =
                        config.rootfs().diff_ids().iter().filter_map(|d| parse_digest(d).ok()).collect();
                    marks.chains.extend(chain_ids(&diffs));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Digests listed in `<root>/gcroots/*` (one per line, `#` comments allowed).
    fn file_roots(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.path(GCROOTS_DIR);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).ctx("list", &dir)? {
            let path = entry.ctx("list", &dir)?.path();
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).ctx("read", &path)?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                out.push(parse_digest(line)?);
            }
        }
        Ok(out)
    }

    /// Writes (atomically) the GC root file `<root>/gcroots/<name>` listing `digests`; an empty
    /// list removes it.
    pub(crate) fn set_file_roots(&self, name: &str, digests: &[Digest]) -> Result<()> {
        let path = self.layout.path(GCROOTS_DIR).join(name);
        if digests.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, err)),
                _ => Ok(()),
            };
        }
        let text: String = digests.iter().map(|d| format!("{d}\n")).collect();
        self.layout.write_file_atomic(&path, text.as_bytes())
    }
}

//! Store integrity: [`Store::check`] verifies every blob (its content hashes to its name),
//! every snapshot (metadata readable and consistent with its place in the chain, tree present)
//! and every image record (the manifest, config and layers it needs are present and intact);
//! [`Store::repair`] removes what is damaged and the records that point at it, so the next
//! pull or build fetches or rebuilds it.
//!
//! A pull verifies the blobs it would otherwise skip with [`ContentStore::verify`]: hashing is
//! the only check that finds a flipped byte, and at the speed of sha256 (about 400 MB/s on one
//! core of the CI machine) it costs far less than the download it replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

use oci_spec::image::{Descriptor, Digest};

use crate::buildcache::{BuildCache, CacheResult};
use crate::content::ContentStore;
use crate::error::{Error, IoContext, Result};
use crate::layout::{HashingReader, sha256_digest};
use crate::snapshot::SnapshotInfo;
use crate::store::Store;

/// The state of one blob on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    /// Present, and its content hashes to its digest (and has the expected size, if given).
    Intact,
    /// Not in the store.
    Missing,
    /// Present but wrong.
    Damaged(BlobDamage),
}

/// What is wrong with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobDamage {
    /// The file has another size than the descriptor that refers to it says.
    Size { expected: u64, actual: u64 },
    /// The content hashes to another digest.
    Digest { actual: Digest },
    /// The file cannot be read.
    Unreadable { error: String },
}

impl fmt::Display for BlobDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobDamage::Size { expected, actual } => write!(f, "has {actual} bytes, expected {expected}"),
            BlobDamage::Digest { actual } => write!(f, "content hashes to {actual}"),
            BlobDamage::Unreadable { error } => write!(f, "cannot be read: {error}"),
        }
    }
}

/// One problem [`Store::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A blob whose content does not match its digest.
    Blob { digest: Digest, damage: BlobDamage },
    /// A snapshot that is incomplete or inconsistent with its metadata.
    Snapshot { chain_id: Digest, problem: String },
    /// An image record whose content is missing or damaged; `related` are digests of its other
    /// blobs (config, layers), whose registry sources can stand in for a lost manifest's.
    Image { name: String, target: Box<Descriptor>, missing: Vec<Descriptor>, related: Vec<Digest> },
    /// A build-cache record that names a missing or damaged blob.
    CacheRecord { key: Digest, missing: Vec<Digest> },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Blob { digest, damage } => write!(f, "blob {digest} {damage}"),
            Damage::Snapshot { chain_id, problem } => write!(f, "snapshot {chain_id}: {problem}"),
            Damage::Image { name, missing, .. } => {
                let list: Vec<String> = missing.iter().map(|d| d.digest().to_string()).collect();
                write!(f, "image {name} lacks intact content: {}", list.join(", "))
            }
            Damage::CacheRecord { key, missing } => {
                let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
                write!(f, "build-cache record {key} names missing blobs: {}", list.join(", "))
            }
        }
    }
}

/// What [`Store::check`] looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub blobs: usize,
    /// Bytes hashed.
    pub bytes: u64,
    pub snapshots: usize,
    pub images: usize,
    pub cache_records: usize,
    pub damage: Vec<Damage>,
}

impl CheckReport {
    /// True when nothing is damaged.
    pub fn is_consistent(&self) -> bool {
        self.damage.is_empty()
    }

    /// Blobs that must be fetched again for the damaged images to be whole: every missing or
    /// damaged descriptor an image record needs.
    pub fn needed_blobs(&self) -> Vec<Descriptor> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for damage in &self.damage {
            if let Damage::Image { missing, .. } = damage {
                for descriptor in missing {
                    if seen.insert(descriptor.digest().to_string()) {
                        out.push(descriptor.clone());
                    }
                }
            }
        }
        out
    }
}

/// What [`Store::repair`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub removed_blobs: Vec<Digest>,
    pub removed_snapshots: Vec<Digest>,
    /// Image names removed because their content is still incomplete.
    pub removed_images: Vec<String>,
    pub removed_cache_records: Vec<Digest>,
}

impl ContentStore {
    /// Verifies a blob: its size (when `expected_size` is given, before reading anything) and
    /// the sha256 of its content.
    pub fn verify(&self, digest: &Digest, expected_size: Option<u64>) -> Result<BlobState> {
        let path = self.blob_path(digest)?;
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
            Err(err) => return Ok(BlobState::Damaged(BlobDamage::Unreadable { error: err.to_string() })),
        };
        let actual_size = file.metadata().ctx("stat", &path)?.len();
        if let Some(expected) = expected_size
            && expected != actual_size
        {
            return Ok(BlobState::Damaged(BlobDamage::Size { expected, actual: actual_size }));
        }
        let mut reader = HashingReader::new(io::BufReader::with_capacity(1 << 20, file));
        if let Err(err) = io::copy(&mut reader, &mut io::sink()) {
            return Ok(BlobState::Damaged(BlobDamage::Unreadable { error: err.to_string() }));
        }
        let (actual, _) = reader.digest();
        if actual != *digest {
            return Ok(BlobState::Damaged(BlobDamage::Digest { actual }));
        }
        Ok(BlobState::Intact)
    }

    /// Removes a blob found damaged, so that it can be fetched again (a blob writer never
    /// replaces a blob that is already present).
    pub fn remove_damaged(&self, digest: &Digest) -> Result<()> {
        self.remove(digest)
    }
}

impl Store {
    /// Verifies the whole store; see the module docs. Reads every blob once.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let content = self.content();
        let mut bad_blobs = BTreeSet::new();
        for digest in content.list()? {
            report.blobs += 1;
            report.bytes += content.size(&digest).unwrap_or(0);
            if let BlobState::Damaged(damage) = content.verify(&digest, None)? {
                bad_blobs.insert(digest.to_string());
                report.damage.push(Damage::Blob { digest, damage });
            }
        }
        let snapshots = self.snapshots();
        for chain_id in snapshots.list()? {
            report.snapshots += 1;
            if let Some(problem) = self.snapshot_problem(&chain_id) {
                report.damage.push(Damage::Snapshot { chain_id, problem });
            }
        }
        let usable = |d: &Digest| content.contains(d) && !bad_blobs.contains(d.as_ref());
        for record in self.images().list()? {
            report.images += 1;
            let (missing, mut related) = image_needs(&content, &record.target, &usable);
            if !missing.is_empty() {
                related.push(record.image_id.clone());
                related.retain(|d| !missing.iter().any(|m| m.digest() == d));
                report.damage.push(Damage::Image {
                    name: record.name,
                    target: Box::new(record.target),
                    missing,
                    related,
                });
            }
        }
        let cache = BuildCache::open(self)?;
        for key in cache.keys()? {
            report.cache_records += 1;
            if let Some(missing) = cache_record_missing(&cache, &key, &usable)?
                && !missing.is_empty()
            {
                report.damage.push(Damage::CacheRecord { key, missing });
            }
        }
        Ok(report)
    }

    /// Why a snapshot cannot be used, if it cannot.
    fn snapshot_problem(&self, chain_id: &Digest) -> Option<String> {
        let snapshots = self.snapshots();
        let dir = snapshots.path(chain_id);
        let info_path = dir.with_file_name("info.json");
        let info: SnapshotInfo = match std::fs::read(&info_path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(info) => info,
                Err(err) => return Some(format!("unreadable metadata {}: {err}", info_path.display())),
            },
            Err(err) => return Some(format!("cannot read metadata {}: {err}", info_path.display())),
        };
        if info.chain_id != *chain_id {
            return Some(format!("metadata names chain {}", info.chain_id));
        }
        let expected = match &info.parent {
            None => info.diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {}", info.diff_id).as_bytes()),
        };
        if expected != *chain_id {
            return Some(format!(
                "chain ID does not follow from its parent {} and diffID {}",
                info.parent.as_ref().map_or_else(|| "(none)".to_string(), ToString::to_string),
                info.diff_id
            ));
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(format!("{} is not a directory", dir.display())),
            Err(err) => Some(format!("tree {} is missing: {err}", dir.display())),
        }
    }

    /// Removes what `report` found damaged ([`Store::remove_damaged`]), then every image and
    /// build-cache record that names content the store lacks
    /// ([`Store::remove_incomplete_records`]). Callers that can fetch lost blobs again do so
    /// between the two steps, so that restored images keep their names.
    pub fn repair(&self, report: &CheckReport) -> Result<RepairReport> {
        let mut out = self.remove_damaged(report)?;
        self.remove_incomplete_records(&mut out)?;
        Ok(out)
    }

    /// Removes the damaged blobs and snapshots `report` lists.
    pub fn remove_damaged(&self, report: &CheckReport) -> Result<RepairReport> {
        let mut out = RepairReport::default();
        let content = self.content();
        let snapshots = self.snapshots();
        for damage in &report.damage {
            match damage {
                Damage::Blob { digest, .. } => {
                    content.remove_damaged(digest)?;
                    out.removed_blobs.push(digest.clone());
                }
                Damage::Snapshot { chain_id, .. } => {
                    snapshots.remove(chain_id)?;
                    out.removed_snapshots.push(chain_id.clone());
                }
                Damage::Image { .. } | Damage::CacheRecord { .. } => {}
            }
        }
        Ok(out)
    }

    /// Image records whose content is not all in the store (presence only, nothing is hashed):
    /// what must be fetched again after [`Store::remove_damaged`], as [`Damage::Image`]s.
    pub fn incomplete_images(&self) -> Result<Vec<Damage>> {
        let content = self.content();
        let usable = |d: &Digest| content.contains(d);
        let mut out = Vec::new();
        for record in self.images().list()? {
            let (missing, mut related) = image_needs(&content, &record.target, &usable);
            if !missing.is_empty() {
                related.push(record.image_id.clone());
                out.push(Damage::Image {
                    name: record.name,
                    target: Box::new(record.target),
                    missing,
                    related,
                });
            }
        }
        Ok(out)
    }

    /// Removes image names and build-cache records whose content is not all in the store (as
    /// it is now: blobs may have been fetched again), adding them to `out`.
    pub fn remove_incomplete_records(&self, out: &mut RepairReport) -> Result<()> {
        let content = self.content();
        let usable = |d: &Digest| content.contains(d);
        let images = self.images();
        for record in images.list()? {
            if !image_needs(&content, &record.target, &usable).0.is_empty() {
                images.untag(&record.name)?;
                out.removed_images.push(record.name);
            }
        }
        let cache = BuildCache::open(self)?;
        for key in cache.keys()? {
            if cache_record_missing(&cache, &key, &usable)?.is_some_and(|m| !m.is_empty()) {
                cache.remove(&key)?;
                out.removed_cache_records.push(key);
            }
        }
        Ok(())
    }
}

/// The descriptors an image record needs that are not usable (the manifest, or the index and
/// the host platform's manifest, its config and layers), and the digests of those that are.
/// A document that cannot be read stops the walk there (what it refers to is unknown).
fn image_needs(
    content: &ContentStore,
    target: &Descriptor,
    usable: &dyn Fn(&Digest) -> bool,
) -> (Vec<Descriptor>, Vec<Digest>) {
    if !usable(target.digest()) {
        return (vec![target.clone()], Vec::new());
    }
    let manifest_descriptor = match content.platform_manifest(target) {
        Ok(descriptor) => descriptor,
        Err(_) => return (vec![target.clone()], Vec::new()),
    };
    if !usable(manifest_descriptor.digest()) {
        return (vec![manifest_descriptor], Vec::new());
    }
    let manifest: oci_spec::image::ImageManifest = match content.read_json(manifest_descriptor.digest()) {
        Ok(manifest) => manifest,
        Err(_) => return (vec![manifest_descriptor], Vec::new()),
    };
    let (missing, present): (Vec<&Descriptor>, Vec<&Descriptor>) =
        std::iter::once(manifest.config()).chain(manifest.layers()).partition(|d| !usable(d.digest()));
    (missing.into_iter().cloned().collect(), present.into_iter().map(|d| d.digest().clone()).collect())
}

/// For a readable record of the current version: the blobs it names that are not usable.
fn cache_record_missing(
    cache: &BuildCache,
    key: &Digest,
    usable: &dyn Fn(&Digest) -> bool,
) -> Result<Option<Vec<Digest>>> {
    let path = cache.record_path(key)?;
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", &path, err)),
    };
    let Ok(record) = serde_json::from_slice::<crate::buildcache::CacheRecord>(&bytes) else {
        return Ok(None);
    };
    let mut missing: BTreeMap<String, Digest> = BTreeMap::new();
    for result in &record.results {
        let digests: Vec<&Digest> = match result {
            CacheResult::Layers { layers } => layers.iter().map(|l| l.blob.digest()).collect(),
            CacheResult::Blob { descriptor } => vec![descriptor.digest()],
        };
        for digest in digests.into_iter().filter(|d| !usable(d)) {
            missing.insert(digest.to_string(), digest.clone());
        }
    }
    Ok(Some(missing.into_values().collect()))
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;

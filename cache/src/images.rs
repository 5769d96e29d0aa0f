//! The image store: fully qualified names (`docker.io/library/busybox:latest`) → manifest or
//! index descriptors, in `<root>/images/images-v1.json`. Every change takes an exclusive flock on
//! `<root>/images/lock`, reads, modifies and atomically replaces the file, so concurrent writers
//! never lose each other's updates and readers (no lock needed) always see a whole file.
//!
//! Untagged images (loaded without a name) are recorded under their manifest digest
//! (`sha256:…`) and shown as `<none>:<none>`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use oci_spec::image::{Descriptor, Digest};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::content::ContentStore;
use crate::error::{Error, IoContext, Result};
use crate::layout::{IMAGES_DIR, Layout};

const INDEX_FILE: &str = "images-v1.json";

/// One name in the image store, with the metadata `kiln images` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Fully qualified `registry/repo:tag` (or `registry/repo@digest`), or the manifest digest
    /// for an untagged image.
    pub name: String,
    /// The manifest or index the name points at.
    pub target: Descriptor,
    /// Image ID: the config digest (of the host platform's manifest for an index).
    pub image_id: Digest,
    /// `created` from the image config.
    pub created: Option<String>,
    /// Config plus layer blob sizes (compressed).
    pub size: u64,
    /// When the name was last set (RFC 3339).
    pub tagged_at: String,
}

impl ImageRecord {
    /// True for the placeholder record of an untagged image.
    pub fn is_untagged(&self) -> bool {
        self.name.starts_with("sha256:")
    }

    /// (repository, tag) — `("<none>", "<none>")` for untagged, tag `<none>` for digest names.
    pub fn repo_tag(&self) -> (String, String) {
        if self.is_untagged() {
            return ("<none>".into(), "<none>".into());
        }
        if let Some((repo, _)) = self.name.split_once('@') {
            return (repo.to_owned(), "<none>".into());
        }
        match self.name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
            _ => (self.name.clone(), "<none>".into()),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    images: BTreeMap<String, ImageRecord>,
}

/// Access to names. Obtained from [`crate::Store::images`].
#[derive(Debug, Clone)]
pub struct ImageStore {
    layout: Layout,
    /// Where the named images' documents are read from.
    content: ContentStore,
}

/// An exclusive lock on the image index; released on drop.
struct IndexLock {
    _file: File,
}

impl ImageStore {
    pub(crate) fn new(layout: Layout) -> ImageStore {
        ImageStore { content: ContentStore::new(layout.clone()), layout }
    }

    fn index_path(&self) -> PathBuf {
        self.layout.path(IMAGES_DIR).join(INDEX_FILE)
    }

    fn lock(&self) -> Result<IndexLock> {
        let path = self.layout.path(IMAGES_DIR).join("lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).ctx("open", &path)?;
        flock(&file, FlockOperation::LockExclusive).ctx("lock", &path)?;
        Ok(IndexLock { _file: file })
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| Error::Json { what: path.display().to_string(), source }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(err) => Err(Error::io("read", path, err)),
        }
    }

    fn write_index(&self, index: &IndexFile) -> Result<()> {
        let path = self.index_path();
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|source| Error::Json { what: path.display().to_string(), source })?;
        self.layout.write_file_atomic(&path, &bytes)
    }

    fn update<T>(&self, change: impl FnOnce(&mut IndexFile) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    /// Builds the record for `target` from its content (which must be in the store).
    fn record(&self, name: &str, target: &Descriptor) -> Result<ImageRecord> {
        let image = self.content.read_image(target)?;
        Ok(ImageRecord {
            name: name.to_owned(),
            target: target.clone(),
            image_id: image.id().clone(),
            created: image.config.created().clone(),
            size: image.content_size(),
            tagged_at: crate::image::now_rfc3339(),
        })
    }

    /// Points `name` (fully qualified, e.g. `docker.io/library/busybox:latest`) at `target`.
    /// The target's manifest, config and layers must be in the content store. An untagged
    /// record of the same target is dropped.
    pub fn tag(&self, name: &str, target: &Descriptor) -> Result<ImageRecord> {
        validate_name(name)?;
        let record = self.record(name, target)?;
        self.update(|index| {
            index.images.remove(&target.digest().to_string());
            index.images.insert(name.to_owned(), record.clone());
            Ok(record)
        })
    }

    /// Records an image without a name (shown as `<none>`), unless a name already points at it.
    pub fn add_untagged(&self, target: &Descriptor) -> Result<ImageRecord> {
        let key = target.digest().to_string();
        let record = self.record(&key, target)?;
        self.update(|index| {
            if let Some(existing) = index.images.values().find(|r| r.target.digest() == target.digest()) {
                return Ok(existing.clone());
            }
            index.images.insert(key.clone(), record.clone());
            Ok(record)
        })
    }

    /// Removes a name; returns its record if it existed. When the target has no other name,
    /// the content stays until [`crate::Store::gc`].
    pub fn untag(&self, name: &str) -> Result<Option<ImageRecord>> {
        self.update(|index| Ok(index.images.remove(name)))
    }

    /// The record of an exact name.
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>> {
        Ok(self.read_index()?.images.remove(name))
    }

    /// All records, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.read_index()?.images.into_values().collect())
    }

    /// Finds the records a user-typed query means, like docker: an exact (normalised) name, a
    /// `repo@sha256:…` digest reference, a full image ID `sha256:…`, or a unique prefix of an
    /// image ID (hex, as `kiln images` shows). All records of the matched image are returned
    /// (so `rmi` by ID can remove every tag). Errors if nothing or several images match.
    pub fn resolve(&self, query: &str) -> Result<Vec<ImageRecord>> {
        let records = self.list()?;
        if let Some(record) = records.iter().find(|r| r.name == query) {
            return Ok(vec![record.clone()]);
        }
        if let Some((repo, digest)) = query.split_once('@') {
            let matches: Vec<_> = records
                .iter()
                .filter(|r| r.target.digest().as_ref() == digest && r.repo_tag().0 == repo)
                .cloned()
                .collect();
            if !matches.is_empty() {
                return Ok(matches);
            }
            return Err(Error::ImageNotFound(query.to_owned()));
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::ImageNotFound(query.to_owned()));
        }
        let hex = hex.to_ascii_lowercase();
        let by_id: Vec<_> =
            records.iter().filter(|r| r.image_id.digest().starts_with(&hex)).cloned().collect();
        let by_manifest: Vec<_> =
            records.iter().filter(|r| r.target.digest().digest().starts_with(&hex)).cloned().collect();
        let matches = if by_id.is_empty() { by_manifest } else { by_id };
        let mut ids: Vec<&Digest> = matches.iter().map(|r| &r.image_id).collect();
        ids.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        ids.dedup();
        match ids.len() {
            0 => Err(Error::ImageNotFound(query.to_owned())),
            1 => Ok(matches),
            _ => Err(Error::AmbiguousImage(query.to_owned())),
        }
    }

    /// Every name pointing at the image with this ID.
    pub fn names_of(&self, image_id: &Digest) -> Result<Vec<ImageRecord>> {
        Ok(self.list()?.into_iter().filter(|r| &r.image_id == image_id).collect())
    }
}

/// Names must be fully qualified: `host/path:tag`, `host/path@sha256:…`.
fn validate_name(name: &str) -> Result<()> {
    let invalid = || Error::InvalidName(name.to_owned());
    if name.starts_with("sha256:") || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let path = name.split('@').next().unwrap_or_default();
    let (host, rest) = path.split_once('/').ok_or_else(invalid)?;
    if host.is_empty() || rest.is_empty() {
        return Err(invalid());
    }
    let has_tag = rest.rsplit_once(':').is_some_and(|(_, tag)| !tag.is_empty() && !tag.contains('/'));
    if !has_tag && !name.contains('@') {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_fully_qualified() {
        for ok in ["docker.io/library/busybox:latest", "localhost:5000/a/b:v1", "docker.io/x/y@sha256:abc"] {
            validate_name(ok).unwrap();
        }
        for bad in ["busybox", "busybox:latest", "docker.io/library/busybox", "sha256:abcd", "a/b :x"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}

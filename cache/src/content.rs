//! The content store: blobs addressed by sha256 digest under `<root>/content/blobs/sha256/<hex>`.
//!
//! Writes go through [`BlobWriter`]: bytes stream into a temp file in the store while being
//! hashed; [`BlobWriter::commit`] verifies the expected digest, fsyncs the file, renames it into
//! place and fsyncs the directory. A blob path therefore only ever holds complete, verified
//! content; two writers of the same blob both succeed (the second rename replaces identical
//! bytes).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::layout::{BLOBS_DIR, Layout, digest_from_hasher, sha256_digest, sync_parent};

/// Access to blobs. Obtained from [`crate::Store::content`].
#[derive(Debug, Clone)]
pub struct ContentStore {
    layout: Layout,
}

/// A committed blob: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

impl BlobInfo {
    /// A descriptor of this blob with `media_type`.
    pub fn descriptor(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.size, self.digest.clone())
    }
}

impl ContentStore {
    pub(crate) fn new(layout: Layout) -> ContentStore {
        ContentStore { layout }
    }

    /// Path a blob has (or would have) in the store. Errors for non-sha256 digests.
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        if *digest.algorithm() != DigestAlgorithm::Sha256 {
            return Err(Error::UnsupportedDigest(digest.clone()));
        }
        Ok(self.layout.path(BLOBS_DIR).join(digest.digest()))
    }

    /// True if the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Size in bytes of a present blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest)?;
        match std::fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(digest.clone())),
            Err(err) => Err(Error::io("stat", path, err)),
        }
    }

    /// Opens a blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest)?;
        match File::open(&path) {
            Ok(file) => Ok(file),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(digest.clone())),
            Err(err) => Err(Error::io("open", path, err)),
        }
    }

    /// Reads a whole (small) blob, verifying its digest against on-disk corruption.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        self.open(digest)?.read_to_end(&mut bytes).ctx("read", &path)?;
        let actual = sha256_digest(&bytes);
        if actual != *digest {
            return Err(Error::digest_mismatch(path.display().to_string(), digest, &actual));
        }
        Ok(bytes)
    }

    /// Reads and parses a JSON blob (manifest, index, config).
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.read(digest)?;
        crate::config::from_json_slice(&bytes)
            .map_err(|source| Error::Json { what: format!("blob {digest}"), source })
    }

    /// Starts writing a blob. Nothing is visible until [`BlobWriter::commit`] succeeds.
    pub fn writer(&self) -> Result<BlobWriter> {
        let tmp = self.layout.temp_path("blob");
        let file = File::create(&tmp).ctx("create", &tmp)?;
        Ok(BlobWriter {
            content: self.clone(),
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            tmp,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores `bytes` and returns their descriptor with `media_type`.
    pub fn write_bytes(&self, bytes: &[u8], media_type: MediaType) -> Result<Descriptor> {
        let mut writer = self.writer()?;
        writer.write_all(bytes).ctx("write", writer.tmp.clone())?;
        Ok(writer.commit(None)?.descriptor(media_type))
    }

    /// Serialises `value` as compact JSON, stores it and returns its descriptor.
    pub fn write_json<T: Serialize>(&self, value: &T, media_type: MediaType) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(value)
            .map_err(|source| Error::Json { what: format!("new {media_type} document"), source })?;
        self.write_bytes(&bytes, media_type)
    }

    /// Copies a blob from a reader, verifying `expected` (digest and, if given, size).
    pub fn write_from(
        &self,
        reader: &mut dyn Read,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<BlobInfo> {
        let mut writer = self.writer()?;
        let tmp = writer.tmp.clone();
        io::copy(reader, &mut writer).ctx("copy blob into", tmp)?;
        if let Some(size) = size
            && size != writer.written()
        {
            return Err(Error::size_mismatch(expected, size, writer.written()));
        }
        writer.commit(Some(expected))
    }

    /// Every blob digest present (for GC).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.path(BLOBS_DIR);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).ctx("list", &dir)? {
            let entry = entry.ctx("list", &dir)?;
            if let Some(name) = entry.file_name().to_str()
                && let Ok(digest) = Digest::try_from(format!("sha256:{name}"))
            {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Removes a blob (GC only).
    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io("remove", path, err)),
        }
    }
}

/// A blob being written. Hashes while writing; see [`BlobWriter::commit`]. Dropping it without
/// committing removes the temp file.
#[derive(Debug)]
pub struct BlobWriter {
    content: ContentStore,
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        digest_from_hasher(self.hasher.clone())
    }

    /// Verifies `expected` (if any), fsyncs, renames the blob into place and fsyncs the directory.
    /// On a digest mismatch nothing is stored and [`Error::DigestMismatch`] is returned.
    pub fn commit(self, expected: Option<&Digest>) -> Result<BlobInfo> {
        self.commit_inner(expected, false)
    }

    /// Flushes what is buffered to the temp file, so that a `syncfs` of the store's filesystem
    /// makes it durable (then [`BlobWriter::commit_synced`]).
    pub(crate) fn flush_buffered(&mut self) -> Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush().ctx("write", &self.tmp),
            None => Ok(()),
        }
    }

    /// [`BlobWriter::commit`] without the file fsync: for a caller that flushed
    /// ([`BlobWriter::flush_buffered`]) and then synced the whole filesystem (`syncfs`).
    pub(crate) fn commit_synced(self) -> Result<BlobInfo> {
        self.commit_inner(None, true)
    }

    fn commit_inner(mut self, expected: Option<&Digest>, synced: bool) -> Result<BlobInfo> {
        let digest = self.digest();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::io("commit", &self.tmp, io::Error::other("writer already finished")))?;
        file.flush().ctx("write", &self.tmp)?;
        let file = file.into_inner().map_err(|e| Error::io("write", &self.tmp, e.into_error()))?;
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::digest_mismatch("blob", expected, &digest));
        }
        let dest = self.content.blob_path(&digest)?;
        if dest.is_file() {
            // Already there (another writer won): our copy is removed by Drop.
            return Ok(BlobInfo { digest, size: self.size });
        }
        if !synced {
            file.sync_all().ctx("fsync", &self.tmp)?;
        }
        drop(file);
        std::fs::rename(&self.tmp, &dest).ctx("rename blob into", &dest)?;
        sync_parent(&dest)?;
        Ok(BlobInfo { digest, size: self.size })
    }

    /// Path of the temp file (for error messages).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn write_and_read_back() {
        let (_dir, store) = store();
        let content = store.content();
        let desc = content.write_bytes(b"hello", MediaType::ImageConfig).unwrap();
        assert_eq!(
            desc.digest().to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(desc.size(), 5);
        assert!(content.contains(desc.digest()));
        assert_eq!(content.read(desc.digest()).unwrap(), b"hello");
        assert_eq!(content.size(desc.digest()).unwrap(), 5);
    }

    #[test]
    fn mismatch_stores_nothing() {
        let (_dir, store) = store();
        let content = store.content();
        let wrong = sha256_digest(b"other");
        let mut writer = content.writer().unwrap();
        writer.write_all(b"hello").unwrap();
        let tmp = writer.temp_path().to_owned();
        let err = writer.commit(Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!content.contains(&sha256_digest(b"hello")));
        assert!(!content.contains(&wrong));
        assert!(!tmp.exists());
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_dir, store) = store();
        let content = store.content();
        let mut writer = content.writer().unwrap();
        writer.write_all(b"half").unwrap();
        let tmp = writer.temp_path().to_owned();
        drop(writer);
        assert!(!tmp.exists());
        assert!(content.list().unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_of_same_blob_both_succeed() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = sha256_digest(&data);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let content = store.content();
                    let data = &data;
                    let expected = &expected;
                    s.spawn(move || {
                        let mut writer = content.writer().unwrap();
                        for chunk in data.chunks(65536) {
                            writer.write_all(chunk).unwrap();
                        }
                        writer.commit(Some(expected)).unwrap()
                    })
                })
                .collect();
            for handle in handles {
                assert_eq!(handle.join().unwrap().digest, expected);
            }
        });
        assert_eq!(store.content().read(&expected).unwrap(), data);
    }

    #[test]
    fn corrupted_blob_on_disk_is_detected() {
        let (_dir, store) = store();
        let content = store.content();
        let desc = content.write_bytes(b"{\"a\":1}", MediaType::ImageConfig).unwrap();
        std::fs::write(content.blob_path(desc.digest()).unwrap(), b"{\"a\":2}").unwrap();
        assert!(matches!(content.read(desc.digest()), Err(Error::DigestMismatch { .. })));
    }

    #[test]
    fn non_sha256_is_refused() {
        let (_dir, store) = store();
        let digest = Digest::try_from(format!("sha512:{}", "a".repeat(128))).unwrap();
        assert!(matches!(store.content().blob_path(&digest), Err(Error::UnsupportedDigest(_))));
    }
}

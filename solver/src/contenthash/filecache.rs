//! Per-file content digests cached across builds, keyed by path and (dev, inode, size, mtime,
//! ctime) — a file whose stamp is unchanged is not read again. Persisted as one binary file,
//! replaced atomically through the store; a missing, truncated or corrupt file is an empty cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::ContentHashError;

const MAGIC: &[u8; 8] = b"KILNCH01";
/// Upper bound on a path stored in the cache (sanity check when loading).
const MAX_PATH: usize = 64 * 1024;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedDigest {
    stamp: FileStamp,
    digest: [u8; 32],
}

/// The per-file digest cache of one directory (e.g. one build context).
#[derive(Debug, Default)]
pub struct FileCache {
    entries: Mutex<HashMap<Vec<u8>, CachedDigest>>,
    dirty: std::sync::atomic::AtomicBool,
}

impl FileCache {
    /// An empty cache.
    pub fn new() -> FileCache {
        FileCache::default()
    }

    /// Loads a cache file; absent or corrupt files give an empty cache (never an error: the
    /// cache only saves work).
    pub fn load(path: &Path) -> FileCache {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %err, "cannot read content checksum cache");
                }
                return FileCache::new();
            }
        };
        match decode(&bytes) {
            Some(entries) => FileCache { entries: Mutex::new(entries), dirty: Default::default() },
            None => {
                tracing::warn!(path = %path.display(), "content checksum cache is corrupt, starting empty");
                FileCache::new()
            }
        }
    }

    /// Number of cached files.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, CachedDigest>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, path: &[u8], stamp: &FileStamp) -> Option<[u8; 32]> {
        self.lock().get(path).filter(|c| &c.stamp == stamp).map(|c| c.digest)
    }

    pub(crate) fn insert(&self, path: Vec<u8>, stamp: FileStamp, digest: [u8; 32]) {
        self.lock().insert(path, CachedDigest { stamp, digest });
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when entries were added since loading.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let entries = self.lock();
        let mut out = Vec::with_capacity(16 + entries.len() * 120);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        let mut paths: Vec<&Vec<u8>> = entries.keys().collect();
        paths.sort();
        for path in paths {
            let Some(entry) = entries.get(path) else { continue };
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            let s = &entry.stamp;
            for v in [s.dev, s.ino, s.size] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for (sec, nsec) in [s.mtime, s.ctime] {
                out.extend_from_slice(&sec.to_le_bytes());
                out.extend_from_slice(&nsec.to_le_bytes());
            }
            out.extend_from_slice(&entry.digest);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes the cache atomically into the store (temp file, fsync, rename) when it changed.
    pub fn save(&self, store: &cache::Store, path: &Path) -> Result<(), ContentHashError> {
        if !self.is_dirty() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ContentHashError::Io {
                op: "create directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        store.write_file_atomic(path, &self.encode()).map_err(ContentHashError::Store)?;
        self.dirty.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode(bytes: &[u8]) -> Option<HashMap<Vec<u8>, CachedDigest>> {
    if bytes.len() < MAGIC.len() + 12 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut reader = Reader { bytes: &body[8..] };
    let count = reader.u64()?;
    let mut entries = HashMap::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let len = reader.u32()? as usize;
        if len > MAX_PATH {
            return None;
        }
        let path = reader.take(len)?.to_vec();
        let dev = reader.u64()?;
        let ino = reader.u64()?;
        let size = reader.u64()?;
        let mtime = (reader.i64()?, reader.u32()?);
        let ctime = (reader.i64()?, reader.u32()?);
        let digest: [u8; 32] = reader.take(32)?.try_into().ok()?;
        entries.insert(path, CachedDigest { stamp: FileStamp { dev, ino, size, mtime, ctime }, digest });
    }
    reader.bytes.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u64) -> FileStamp {
        FileStamp { dev: 1, ino: n, size: 10, mtime: (5, 6), ctime: (7, 8) }
    }

    #[test]
    fn round_trip_and_corruption() {
        let cache = FileCache::new();
        cache.insert(b"a/b".to_vec(), stamp(1), [1; 32]);
        cache.insert(b"c".to_vec(), stamp(2), [2; 32]);
        let bytes = cache.encode();
        let back = FileCache { entries: Mutex::new(decode(&bytes).unwrap()), dirty: Default::default() };
        assert_eq!(back.get(b"a/b", &stamp(1)), Some([1; 32]));
        assert_eq!(back.get(b"a/b", &stamp(3)), None, "another inode is another file");
        assert_eq!(back.len(), 2);
        for cut in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 0xff;
        assert!(decode(&flipped).is_none());
    }

    #[test]
    fn missing_or_corrupt_file_loads_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FileCache::load(&dir.path().join("absent")).is_empty());
        std::fs::write(dir.path().join("bad"), b"garbage").unwrap();
        assert!(FileCache::load(&dir.path().join("bad")).is_empty());
    }
}

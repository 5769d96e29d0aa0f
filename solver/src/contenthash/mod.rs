//! Content checksums of a selection of paths inside a directory (a build context or a snapshot).
//!
//! A checksum covers, for every selected entry in path order: the path, the type, the permission
//! bits (unless the reader overrides them, `COPY --chmod`), uid/gid (unless `--chown`), a
//! symlink's target, a device's numbers and a file's content — never timestamps. File contents
//! are cached per file in a [`FileCache`] keyed by (dev, inode, size, mtime, ctime), so an
//! unchanged context is only `lstat`ed, not read.
//!
//! Paths never escape the root: intermediate symlinks are resolved as if the root were `/`
//! (absolute targets and `..` stay inside), the selected path's own symlink is followed only when
//! asked (again inside the root), and symlinks below a selected directory are hashed as links.

mod filecache;
pub mod ignore;
mod walk;

use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

pub use filecache::{FileCache, FileStamp};
pub use ignore::{PatternError, PatternMatcher};

/// Errors of checksum computation.
#[derive(Debug, thiserror::Error)]
pub enum ContentHashError {
    /// The selected path does not exist (or every candidate is excluded by `.dockerignore`).
    #[error("{path:?}: not found{}", if *.excluded { " (excluded by .dockerignore)" } else { "" })]
    NotFound { path: String, excluded: bool },
    /// A wildcard matched nothing.
    #[error("no source files were specified: {pattern:?} matched nothing")]
    NoMatch { pattern: String },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path:?}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("cannot write the content checksum cache")]
    Store(#[source] cache::Error),
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What an op reads from a directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Selection {
    /// Path relative to the root (a leading `/` is ignored); `/` or `.` is the whole root.
    pub path: String,
    /// Follow the selected path itself when it is a symlink (inside the root).
    #[serde(default, skip_serializing_if = "is_false")]
    pub follow_symlinks: bool,
    /// `path` may contain `*`, `?`, `[…]` in any component.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcard: bool,
    /// A wildcard matching nothing is not an error.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_empty: bool,
    /// Below a selected directory, only entries matching these (relative to it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_patterns: Vec<String>,
    /// Below a selected directory, skip entries matching these (relative to it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    /// Each include pattern without wildcards names a path that must exist below the selected
    /// path (`COPY --parents` of a plain path: BuildKit's required paths).
    #[serde(default, skip_serializing_if = "is_false")]
    pub required_includes: bool,
    /// Hash permission bits (false when the reader replaces them, `COPY --chmod`).
    pub include_mode: bool,
    /// Hash uid/gid (false when the reader replaces them, `COPY --chown`).
    pub include_owner: bool,
}

impl Selection {
    /// Everything about `path`, following its own symlink.
    pub fn path(path: impl Into<String>) -> Selection {
        Selection {
            path: path.into(),
            follow_symlinks: true,
            wildcard: false,
            allow_empty: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            required_includes: false,
            include_mode: true,
            include_owner: true,
        }
    }

    /// The whole root.
    pub fn all() -> Selection {
        Selection::path("/")
    }
}

/// Computes checksums inside one root directory.
#[derive(Debug)]
pub struct ContentHasher {
    root: PathBuf,
    filter: PatternMatcher,
    cache: FileCache,
    threads: usize,
    /// Files changed less than this many seconds ago are hashed but not cached (their stamp
    /// could repeat after another change within the timestamp granularity).
    pub(crate) racy_secs: i64,
    /// Where [`ContentHasher::persist`] writes the file cache.
    cache_file: Option<PathBuf>,
}

impl ContentHasher {
    /// A hasher for `root` with `excludes` (`.dockerignore` patterns, relative to the root) and
    /// an empty file cache.
    pub fn new(root: &Path, excludes: &[String]) -> Result<ContentHasher, ContentHashError> {
        let root = root.canonicalize().map_err(|source| ContentHashError::Io {
            op: "resolve",
            path: root.to_owned(),
            source,
        })?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
        Ok(ContentHasher {
            root,
            filter: PatternMatcher::new(excludes)?,
            cache: FileCache::new(),
            threads,
            racy_secs: 2,
            cache_file: None,
        })
    }

    /// Uses `cache` (e.g. loaded with [`FileCache::load`]) for file contents.
    pub fn with_cache(mut self, cache: FileCache) -> ContentHasher {
        self.cache = cache;
        self
    }

    /// A hasher for a build context whose file cache lives in the store's build cache, named
    /// after the context's canonical path and `shared_key` (a local source's shared key).
    pub fn for_context(
        build_cache: &cache::buildcache::BuildCache,
        root: &Path,
        excludes: &[String],
        shared_key: &str,
    ) -> Result<ContentHasher, ContentHashError> {
        let mut hasher = ContentHasher::new(root, excludes)?;
        let identity = format!("{}\0{shared_key}", hasher.root.display());
        let name = cache::sha256_digest(identity.as_bytes()).digest().to_owned();
        let file = build_cache.contenthash_path(&name);
        hasher.cache = FileCache::load(&file);
        hasher.cache_file = Some(file);
        Ok(hasher)
    }

    /// Saves the file cache (when it changed) where [`ContentHasher::for_context`] loads it.
    pub fn persist(&self, store: &cache::Store) -> Result<(), ContentHashError> {
        match &self.cache_file {
            Some(file) => self.cache.save(store, file),
            None => Ok(()),
        }
    }

    /// The root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file cache (to [`FileCache::save`] after a build).
    pub fn cache(&self) -> &FileCache {
        &self.cache
    }

    /// Gives the file cache back.
    pub fn into_cache(self) -> FileCache {
        self.cache
    }

    /// The checksum of `selection`.
    pub fn checksum(&self, selection: &Selection) -> Result<Digest, ContentHashError> {
        let records = walk::collect(self, selection)?;
        let contents = walk::hash_contents(self, &records)?;
        Ok(walk::combine(&records, &contents, selection))
    }
}

#[cfg(test)]
mod tests;

//! The error type of the store.

use std::io;
use std::path::PathBuf;

use oci_spec::image::Digest;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store, with the path, digest or entry it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The store was written by an incompatible kiln.
    #[error(
        "store at {root} has format version {found:?}, this kiln supports only version {supported} \
         (written by a newer kiln? use that kiln or another --root)"
    )]
    StoreVersion { root: PathBuf, found: String, supported: u32 },
    /// A blob's content does not match the digest it was expected to have.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: Box<Digest>, actual: Box<Digest> },
    /// A blob's size does not match its descriptor.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Box<Digest>, expected: u64, actual: u64 },
    /// A [`crate::GcRoots`] source outside the store could not list its roots (the GC then
    /// removes nothing).
    #[error("cannot list the GC roots of {what}")]
    GcRoots {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The content store has no blob with this digest.
    #[error("blob {0} not found in the content store")]
    BlobNotFound(Digest),
    /// Only sha256 digests are supported.
    #[error("unsupported digest algorithm in {0} (only sha256 is supported)")]
    UnsupportedDigest(Digest),
    /// A string is not a valid digest.
    #[error("invalid digest {value:?}")]
    InvalidDigest {
        value: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A JSON document (manifest, config, index, store record) does not parse.
    #[error("invalid JSON in {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A document or descriptor has a media type this store does not handle.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    /// An image document is structurally wrong (missing config, layer count mismatch, …).
    #[error("invalid image {what}: {problem}")]
    InvalidImage { what: String, problem: String },
    /// A layer tar entry is hostile or cannot be applied.
    #[error("layer entry {entry:?}: {problem}")]
    Entry { entry: String, problem: EntryProblem },
    /// Applying a layer entry failed in the filesystem.
    #[error("layer entry {entry:?}: cannot {op}")]
    EntryIo {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Reading or writing a tar stream failed.
    #[error("cannot {op} tar stream of {what}")]
    Tar {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
    /// A layer's uncompressed content does not hash to the diffID of the image config.
    #[error("layer {layer} has diffID {actual}, the image config says {expected}")]
    DiffIdMismatch { layer: Box<Digest>, expected: Box<Digest>, actual: Box<Digest> },
    /// No image of this name, ID or digest.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// A short image ID matches more than one image.
    #[error("image ID prefix {0:?} is ambiguous: it matches several images")]
    AmbiguousImage(String),
    /// An image archive (docker-archive, OCI archive or layout) is malformed or hostile.
    #[error("archive {path}: {problem}")]
    Archive { path: PathBuf, problem: String },
    /// A `--change` instruction cannot be applied to an image config.
    #[error("invalid change {change:?}: {problem}")]
    InvalidChange { change: String, problem: String },
    /// An image name given to the image store is not fully qualified or malformed.
    #[error(
        "invalid image name {0:?} (expected a fully qualified name like docker.io/library/busybox:latest)"
    )]
    InvalidName(String),
}

/// Why a layer entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("path contains a `..` component")]
    ParentComponent,
    #[error("absolute paths are not allowed in layers")]
    Absolute,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("hardlink target {0:?} does not exist in this layer")]
    HardlinkTargetMissing(String),
    #[error("hardlink target {0:?} is a directory")]
    HardlinkToDirectory(String),
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
    #[error("path resolves through too many symlinks (loop)")]
    SymlinkLoop,
    #[error("a whiteout cannot remove {0:?}")]
    BadWhiteout(String),
    #[error("parent {0:?} is not a directory")]
    ParentNotDirectory(String),
    #[error("entry declares {declared} bytes but the archive ends after {actual}")]
    Truncated { declared: u64, actual: u64 },
    #[error("invalid header field: {0}")]
    BadHeader(&'static str),
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// An [`Error::DigestMismatch`].
    pub fn digest_mismatch(what: impl Into<String>, expected: &Digest, actual: &Digest) -> Self {
        Error::DigestMismatch {
            what: what.into(),
            expected: Box::new(expected.clone()),
            actual: Box::new(actual.clone()),
        }
    }

    /// An [`Error::DiffIdMismatch`].
    pub fn diff_id_mismatch(layer: &Digest, expected: &Digest, actual: &Digest) -> Self {
        Error::DiffIdMismatch {
            layer: Box::new(layer.clone()),
            expected: Box::new(expected.clone()),
            actual: Box::new(actual.clone()),
        }
    }

    /// An [`Error::SizeMismatch`].
    pub fn size_mismatch(digest: &Digest, expected: u64, actual: u64) -> Self {
        Error::SizeMismatch { digest: Box::new(digest.clone()), expected, actual }
    }

    /// An [`Error::Entry`].
    pub fn entry(entry: impl Into<String>, problem: EntryProblem) -> Self {
        Error::Entry { entry: entry.into(), problem }
    }

    /// True when the underlying cause is "no space left on device".
    pub fn is_disk_full(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<io::Error>()
                && io.raw_os_error() == Some(libc_enospc())
            {
                return true;
            }
            source = err.source();
        }
        false
    }
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// Extension to attach a path and operation to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::io(op, path, source))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|errno| Error::io(op, path, io::Error::from(errno)))
    }
}

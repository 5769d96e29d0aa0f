//! Typed progress events of pulls and pushes. The library never prints: callers pass a
//! [`Progress`] sink and render the events (the CLI uses progress bars on a TTY, plain lines
//! otherwise).

use std::fmt;
use std::sync::Arc;

use oci_spec::image::Digest;

use crate::platform::Platform;

/// What a blob is to the image being moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Config,
    Layer,
    Manifest,
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
            BlobKind::Manifest => "manifest",
        })
    }
}

/// Why no bytes were transferred for a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Pull: the store already has it.
    InStore,
    /// Push: the registry already has it in the target repository.
    InRegistry,
    /// Push: the registry linked it from another repository (`from`) without an upload.
    Mounted { from: String },
}

/// One step of a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reference resolved to a manifest (and, from an index, a platform).
    Resolved { image: String, digest: Digest, platform: Option<Platform> },
    /// A blob transfer is about to start.
    BlobStarted { digest: Digest, kind: BlobKind, size: u64 },
    /// Bytes of a blob moved: `done` of `total`.
    BlobProgress { digest: Digest, done: u64, total: u64 },
    /// A transient failure; the transfer is retried (resuming where possible).
    BlobRetrying { digest: Digest, attempt: u32, error: String },
    /// A blob needed no transfer.
    BlobSkipped { digest: Digest, kind: BlobKind, size: u64, reason: Skipped },
    /// A blob was transferred and verified.
    BlobDone { digest: Digest, kind: BlobKind, size: u64 },
    /// Push: the manifest was stored under `tag` (or only by digest).
    ManifestPushed { image: String, tag: Option<String>, digest: Digest, size: u64 },
}

/// Where events go. Cheap to clone; [`Progress::none`] discards them.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn Fn(Event) + Send + Sync>>,
}

impl Progress {
    /// A sink calling `f` for every event (from any task; keep it quick).
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        Self { sink: Some(Arc::new(f)) }
    }

    /// A sink that discards events.
    pub fn none() -> Self {
        Self::default()
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.sink {
            sink(event);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress").field("enabled", &self.sink.is_some()).finish()
    }
}

/// The first 12 hex digits of a digest, as docker shows layers.
pub fn short_digest(digest: &Digest) -> &str {
    let hex = digest.digest();
    &hex[..hex.len().min(12)]
}

//! The error type of the registry crate.

use std::path::PathBuf;

use oci_spec::image::Digest;

use crate::reference::ReferenceError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a registry or moving images between a registry and
/// the store. Messages are lowercase and name the registry, repository, digest or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `pull` failed; the source says why.
    #[error("cannot pull {image}")]
    Pull {
        image: String,
        #[source]
        source: Box<Error>,
    },
    /// `push` failed; the source says why.
    #[error("cannot push {image}")]
    Push {
        image: String,
        #[source]
        source: Box<Error>,
    },
    /// A reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A platform string (`linux/arm64/v8`) does not parse.
    #[error("invalid platform {value:?}: {problem}")]
    Platform { value: String, problem: &'static str },
    /// The registry could not be reached (connection refused, reset, TLS failure, timeout).
    #[error("cannot reach registry {registry} ({url})")]
    Connect {
        registry: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("registry {registry} answered {status} to {method} {path}{}", detail_suffix(.detail))]
    Status { registry: String, method: String, path: String, status: reqwest::StatusCode, detail: String },
    /// The registry refused our credentials, or wants credentials we do not have.
    #[error(
        "registry {registry} denied access to {repository}: {}",
        if .detail.is_empty() { "authentication required" } else { .detail.as_str() }
    )]
    Unauthorized { registry: String, repository: String, detail: String },
    /// The manifest (tag or digest) does not exist.
    #[error("manifest {reference} not found in {registry}/{repository}")]
    ManifestNotFound { registry: String, repository: String, reference: String },
    /// A blob does not exist.
    #[error("blob {digest} not found in {registry}/{repository}")]
    BlobNotFound { registry: String, repository: String, digest: Digest },
    /// A token server failed or answered garbage.
    #[error("token server {realm} failed: {problem}")]
    Token { realm: String, problem: String },
    /// A `WWW-Authenticate` challenge we do not understand.
    #[error("registry {registry} sent an unsupported authentication challenge {challenge:?}")]
    Challenge { registry: String, challenge: String },
    /// Content from the registry does not hash to the digest that addresses it.
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    /// A blob from the registry is longer or shorter than its descriptor says.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    /// A manifest or index with a media type we cannot handle.
    #[error("unsupported manifest media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    /// A manifest, index or config that is not valid JSON of the expected shape.
    #[error("invalid {what}: {problem}")]
    InvalidDocument { what: String, problem: String },
    /// A document is larger than we accept.
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },
    /// No manifest of an index is for the wanted platform.
    #[error("no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform { wanted: String, available: String },
    /// The connection dropped or the body could not be read, after all retries.
    #[error("transfer of {what} from {registry} failed")]
    Transfer {
        registry: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// An upload session answered without the headers the protocol requires.
    #[error("registry {registry} sent an invalid upload response: {problem}")]
    UploadProtocol { registry: String, problem: String },
    /// The image is not in the local store.
    #[error("image {0} not found in the local store")]
    ImageNotFound(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] cache::Error),
    /// A local file (credentials, registries config, blob) failed.
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config file does not parse.
    #[error("invalid config file {path}: {problem}")]
    Config { path: PathBuf, problem: String },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A blocking worker task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
    /// A blob to fetch again was never pulled (built or loaded locally): no registry has it.
    #[error("no registry is known to have {digest} (it was not pulled)")]
    UnknownSource { digest: Digest },
    /// A recorded blob source is not `registry/repository`.
    #[error("invalid recorded blob source {0:?}")]
    InvalidSource(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(": {detail}") }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    /// True for failures worth retrying: dropped connections, timeouts, 5xx and 429.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transfer { .. } => true,
            Error::Status { status, .. } => status.is_server_error() || status.as_u16() == 429,
            _ => false,
        }
    }
}

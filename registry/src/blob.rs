//! Blob transfers of one repository: download into the content store (streamed, verified,
//! resumed with `Range` after a dropped connection), existence checks, cross-repository mounts,
//! and monolithic or chunked uploads streamed from the store.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use cache::{BlobInfo, ContentStore};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode, Url};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::client::{Client, Endpoint, Scope};
use crate::error::{Error, Result};
use crate::progress::{BlobKind, Event, Progress, Skipped};

/// Size of the reads that feed an upload body.
const UPLOAD_BUFFER: usize = 256 * 1024;
/// Chunks buffered between the network and the blocking store writer.
const SINK_QUEUE: usize = 16;

/// One repository of one registry, with the access this command needs.
#[derive(Debug, Clone)]
pub(crate) struct Repository {
    pub(crate) client: Client,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) scope: Scope,
}

impl Repository {
    pub(crate) async fn new(client: &Client, registry: &str, scope: Scope) -> Result<Self> {
        let endpoint = client.endpoint(registry).await?;
        Ok(Self { client: client.clone(), endpoint, scope })
    }

    pub(crate) fn name(&self) -> &str {
        &self.scope.repository
    }

    pub(crate) fn registry(&self) -> &str {
        &self.endpoint.registry
    }

    fn attempts(&self) -> u32 {
        self.client.options().max_attempts.max(1)
    }

    /// `/v2/<name>/<rest>`.
    pub(crate) fn api_url(&self, rest: &str) -> Result<Url> {
        self.endpoint.url(&format!("/v2/{}/{rest}", self.scope.repository))
    }

    /// Downloads `descriptor` into the store, verifying size and digest; nothing is stored on
    /// a mismatch. Transient failures are retried, resuming with `Range` where the registry
    /// allows it. Setting `cancel` stops the transfer (between chunks) with an error, after its
    /// temp file is gone.
    pub(crate) async fn download(
        &self,
        descriptor: &Descriptor,
        content: &ContentStore,
        kind: BlobKind,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<BlobInfo> {
        let digest = descriptor.digest().clone();
        let total = descriptor.size();
        if *digest.algorithm() != DigestAlgorithm::Sha256 {
            return Err(Error::InvalidDocument {
                what: format!("{kind} {digest}"),
                problem: "only sha256 digests are supported".into(),
            });
        }
        progress.emit(Event::BlobStarted { digest: digest.clone(), kind, size: total });
        let mut sink = BlobSink::start(content.clone(), format!("{kind} {digest}"))?;
        let mut done = 0u64;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.download_attempt(&digest, total, &mut sink, &mut done, progress, cancel).await {
                Ok(()) if done != total => {
                    break Err(Error::SizeMismatch { digest: digest.clone(), expected: total, actual: done });
                }
                Ok(()) => break Ok(()),
                Err(err) if err.is_transient() && attempt < self.attempts() => {
                    progress.emit(Event::BlobRetrying {
                        digest: digest.clone(),
                        attempt,
                        error: error_chain(&err),
                    });
                    tokio::time::sleep(self.client.backoff(attempt)).await;
                }
                Err(err) => break Err(err),
            }
        };
        if let Err(err) = result {
            let _ = sink.finish().await;
            return Err(err);
        }
        let info = sink.commit(digest.clone()).await?;
        progress.emit(Event::BlobDone { digest, kind, size: total });
        Ok(info)
    }

    async fn download_attempt(
        &self,
        digest: &Digest,
        total: u64,
        sink: &mut BlobSink,
        done: &mut u64,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let url = self.api_url(&format!("blobs/{digest}"))?;
        let offset = *done;
        let build = move |http: &reqwest::Client| {
            let mut request = http.get(url.clone());
            if offset > 0 {
                request = request.header(RANGE, format!("bytes={offset}-"));
            }
            Ok(request)
        };
        let mut response = self.client.send(&self.endpoint, &self.scope, 1, &build, &|_, _| {}).await?;
        match response.status() {
            StatusCode::OK => {
                if *done > 0 {
                    sink.reset().await?;
                    *done = 0;
                }
            }
            StatusCode::PARTIAL_CONTENT if offset > 0 && range_starts_at(&response, offset) => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::BlobNotFound {
                    registry: self.registry().to_owned(),
                    repository: self.name().to_owned(),
                    digest: digest.clone(),
                });
            }
            _ => {
                let path = response.url().path().to_owned();
                return Err(self.endpoint.status_error(&Method::GET, &path, response).await);
            }
        }
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Task("cancelled".into()));
            }
            let chunk = response.chunk().await.map_err(|source| Error::Transfer {
                registry: self.registry().to_owned(),
                what: format!("blob {digest}"),
                source,
            })?;
            let Some(chunk) = chunk else { return Ok(()) };
            let len = chunk.len() as u64;
            if *done + len > total {
                return Err(Error::SizeMismatch {
                    digest: digest.clone(),
                    expected: total,
                    actual: *done + len,
                });
            }
            sink.write(chunk).await?;
            *done += len;
            progress.emit(Event::BlobProgress { digest: digest.clone(), done: *done, total });
        }
    }

    /// True if the repository has the blob (`HEAD`).
    pub(crate) async fn exists(&self, digest: &Digest) -> Result<bool> {
        let url = self.api_url(&format!("blobs/{digest}"))?;
        let build = move |http: &reqwest::Client| Ok(http.head(url.clone()));
        let response =
            self.client.send(&self.endpoint, &self.scope, self.attempts(), &build, &|_, _| {}).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => {
                let path = response.url().path().to_owned();
                Err(self.endpoint.status_error(&Method::HEAD, &path, response).await)
            }
        }
    }

    /// Uploads `descriptor` from the store unless the repository has it, mounting it from
    /// `mount_from` (a repository of the same registry) when possible. Returns why nothing was
    /// uploaded, if so.
    pub(crate) async fn upload(
        &self,
        descriptor: &Descriptor,
        content: &ContentStore,
        kind: BlobKind,
        mount_from: Option<&str>,
        progress: &Progress,
    ) -> Result<Option<Skipped>> {
        let digest = descriptor.digest().clone();
        let size = descriptor.size();
        if self.exists(&digest).await? {
            progress.emit(Event::BlobSkipped { digest, kind, size, reason: Skipped::InRegistry });
            return Ok(Some(Skipped::InRegistry));
        }
        progress.emit(Event::BlobStarted { digest: digest.clone(), kind, size });
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_attempt(descriptor, content, mount_from, progress).await {
                Ok(Some(from)) => {
                    let reason = Skipped::Mounted { from };
                    progress.emit(Event::BlobSkipped { digest, kind, size, reason: reason.clone() });
                    return Ok(Some(reason));
                }
                Ok(None) => {
                    progress.emit(Event::BlobDone { digest, kind, size });
                    return Ok(None);
                }
                Err(err) if err.is_transient() && attempt < self.attempts() => {
                    progress.emit(Event::BlobRetrying {
                        digest: digest.clone(),
                        attempt,
                        error: error_chain(&err),
                    });
                    tokio::time::sleep(self.client.backoff(attempt)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// One upload session; `Some(source)` if the blob was mounted.
    async fn upload_attempt(
        &self,
        descriptor: &Descriptor,
        content: &ContentStore,
        mount_from: Option<&str>,
        progress: &Progress,
    ) -> Result<Option<String>> {
        let digest = descriptor.digest();
        let size = descriptor.size();
        let mut url = self.api_url("blobs/uploads/")?;
        let mut scope = self.scope.clone();
        if let Some(from) = mount_from {
            url.query_pairs_mut().append_pair("mount", digest.as_ref()).append_pair("from", from);
            scope.mount_from = Some(from.to_owned());
        }
        let build = move |http: &reqwest::Client| Ok(http.post(url.clone()).header(CONTENT_LENGTH, 0));
        let response = self.client.send(&self.endpoint, &scope, self.attempts(), &build, &|_, _| {}).await?;
        match (response.status(), mount_from) {
            (StatusCode::CREATED, Some(from)) => return Ok(Some(from.to_owned())),
            (StatusCode::ACCEPTED, _) => {}
            _ => {
                let path = response.url().path().to_owned();
                return Err(self.endpoint.status_error(&Method::POST, &path, response).await);
            }
        }
        let min_chunk = response
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut location = self.location(&response)?;
        let options = self.client.options();
        let mut offset = 0u64;
        if size > options.monolithic_upload_limit {
            let chunk_size = options.chunk_size.max(min_chunk).max(1);
            while offset < size {
                let len = chunk_size.min(size - offset);
                let body_source = BodySource::new(content, digest, offset, len, size, progress);
                let chunk_url = location.clone();
                let build = move |http: &reqwest::Client| {
                    Ok(http
                        .patch(chunk_url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, format!("{}-{}", offset, offset + len - 1))
                        .header(CONTENT_LENGTH, len)
                        .body(body_source.body()?))
                };
                let response = self.client.send(&self.endpoint, &self.scope, 1, &build, &|_, _| {}).await?;
                if response.status() != StatusCode::ACCEPTED {
                    let path = response.url().path().to_owned();
                    return Err(self.endpoint.status_error(&Method::PATCH, &path, response).await);
                }
                location = self.location(&response)?;
                offset += len;
            }
        }
        location.query_pairs_mut().append_pair("digest", digest.as_ref());
        let remaining = size - offset;
        let body_source = BodySource::new(content, digest, offset, remaining, size, progress);
        let build = move |http: &reqwest::Client| {
            let request = http
                .put(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, remaining);
            Ok(if remaining > 0 { request.body(body_source.body()?) } else { request })
        };
        let response = self.client.send(&self.endpoint, &self.scope, 1, &build, &|_, _| {}).await?;
        if !response.status().is_success() {
            let path = response.url().path().to_owned();
            return Err(self.endpoint.status_error(&Method::PUT, &path, response).await);
        }
        Ok(None)
    }

    /// The `Location` of an upload response, resolved against the endpoint.
    fn location(&self, response: &reqwest::Response) -> Result<Url> {
        let value = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            Error::UploadProtocol {
                registry: self.registry().to_owned(),
                problem: format!(
                    "{} answered {} without a Location header",
                    response.url().path(),
                    response.status()
                ),
            }
        })?;
        self.endpoint.url(value)
    }
}

fn range_starts_at(response: &reqwest::Response, offset: u64) -> bool {
    response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        == Some(offset)
}

/// An error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A byte range of a stored blob, turned into a streamed request body (with progress).
struct BodySource {
    path: std::path::PathBuf,
    digest: Digest,
    offset: u64,
    len: u64,
    total: u64,
    progress: Progress,
}

impl BodySource {
    fn new(
        content: &ContentStore,
        digest: &Digest,
        offset: u64,
        len: u64,
        total: u64,
        progress: &Progress,
    ) -> Self {
        Self {
            path: content.blob_path(digest).unwrap_or_default(),
            digest: digest.clone(),
            offset,
            len,
            total,
            progress: progress.clone(),
        }
    }

    fn body(&self) -> Result<reqwest::Body> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        file.seek(SeekFrom::Start(self.offset)).map_err(|e| Error::io("seek", &self.path, e))?;
        let reader = tokio::fs::File::from_std(file).take(self.len);
        let (digest, progress, base, total) =
            (self.digest.clone(), self.progress.clone(), self.offset, self.total);
        let state = Some((reader, base));
        let stream = futures::stream::unfold(state, move |state| {
            let (digest, progress) = (digest.clone(), progress.clone());
            async move {
                let (mut reader, sent) = state?;
                let mut buffer = vec![0u8; UPLOAD_BUFFER];
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        let sent = sent + n as u64;
                        progress.emit(Event::BlobProgress { digest, done: sent, total });
                        Some((Ok(Bytes::from(buffer)), Some((reader, sent))))
                    }
                    Err(err) => Some((Err(err), None)),
                }
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }
}

enum SinkMessage {
    Data(Bytes),
    Commit(Digest),
}

/// A blob being written into the store by a blocking thread, fed through a bounded queue.
/// Dropping it before [`BlobSink::commit`] removes the temp file at once (the thread, if still
/// running, only ever writes to the unlinked file).
struct BlobSink {
    content: ContentStore,
    what: String,
    temp: std::path::PathBuf,
    sender: Option<mpsc::Sender<SinkMessage>>,
    worker: Option<tokio::task::JoinHandle<Result<Option<BlobInfo>>>>,
}

impl BlobSink {
    fn start(content: ContentStore, what: String) -> Result<Self> {
        let mut writer = content.writer()?;
        let temp = writer.temp_path().to_owned();
        let (sender, mut receiver) = mpsc::channel::<SinkMessage>(SINK_QUEUE);
        let label = what.clone();
        let worker = tokio::task::spawn_blocking(move || -> Result<Option<BlobInfo>> {
            while let Some(message) = receiver.blocking_recv() {
                match message {
                    SinkMessage::Data(bytes) => {
                        writer.write_all(&bytes).map_err(|e| Error::io("write", writer.temp_path(), e))?;
                    }
                    SinkMessage::Commit(expected) => {
                        let actual = writer.digest();
                        if actual != expected {
                            return Err(Error::DigestMismatch { what: label, expected, actual });
                        }
                        return Ok(Some(writer.commit(Some(&expected))?));
                    }
                }
            }
            // Abandoned: dropping the writer removes its temp file.
            Ok(None)
        });
        Ok(Self { content, what, temp, sender: Some(sender), worker: Some(worker) })
    }

    async fn send(&mut self, message: SinkMessage) -> Result<()> {
        let sent = match &self.sender {
            Some(sender) => sender.send(message).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish().await.and_then(|_| Err(Error::Task("blob writer stopped".into())))
    }

    async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.send(SinkMessage::Data(bytes)).await
    }

    /// Starts over with an empty blob (the registry ignored a `Range` request).
    async fn reset(&mut self) -> Result<()> {
        let fresh = BlobSink::start(self.content.clone(), self.what.clone())?;
        let mut old = std::mem::replace(self, fresh);
        let _ = old.finish().await;
        Ok(())
    }

    async fn commit(mut self, expected: Digest) -> Result<BlobInfo> {
        self.send(SinkMessage::Commit(expected)).await?;
        self.finish().await?.ok_or_else(|| Error::Task("blob writer stopped".into()))
    }

    /// Stops the writer thread and waits for it.
    async fn finish(&mut self) -> Result<Option<BlobInfo>> {
        self.sender = None;
        match self.worker.take() {
            Some(worker) => worker.await.map_err(|err| Error::Task(err.to_string()))?,
            None => Ok(None),
        }
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

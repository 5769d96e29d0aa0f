//! Source ops: base images (store or registry), local directories, HTTP downloads.

use std::io::Write;
use std::sync::Arc;

use cache::buildcache::CachedLayer;
use futures::StreamExt;
use oci_spec::image::{Descriptor, ImageConfiguration, MediaType};
use tokio_util::sync::CancellationToken;

use super::{LocalDir, Runner, RunnerError};
use crate::graph::{HttpSource, ImageSource, LocalSource, Platform};

/// A base image resolved for a build.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// The reference pinned to the platform manifest (`docker.io/library/busybox:latest@sha256:…`).
    pub pinned: String,
    /// The platform manifest's descriptor.
    pub manifest: Descriptor,
    pub config: ImageConfiguration,
    /// The layers, bottom first.
    pub layers: Vec<CachedLayer>,
}

fn registry_platform(platform: Option<&Platform>) -> Option<registry::Platform> {
    platform.map(|p| registry::Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
}

impl Runner {
    /// Resolves `reference` (any docker form) for `platform` to a pinned reference and the image
    /// config, pulling the image into the store when the pull policy asks for it. This is the
    /// frontend's image resolver (`FROM`, `COPY --from=image`).
    pub async fn resolve_image(
        &self,
        reference: &str,
        platform: Option<&Platform>,
    ) -> Result<Arc<ResolvedBase>, RunnerError> {
        let source = ImageSource { reference: reference.to_owned(), platform: platform.cloned() };
        self.base_image(&source, &CancellationToken::new()).await
    }

    /// Makes the stored image `manifest` resolvable as `pinned` (`name@digest`) in this build
    /// without any registry (an `oci-layout://` named context loaded into the content store).
    pub fn add_image(&self, pinned: String, manifest: &Descriptor) -> Result<(), RunnerError> {
        let stored = self.store.content().read_image(manifest)?;
        let base = Arc::new(base_from_image(pinned.clone(), &stored)?);
        if let Ok(mut images) = self.images.lock() {
            images.insert(format!("{pinned}\0added"), base);
        }
        Ok(())
    }

    pub(crate) async fn base_image(
        &self,
        image: &ImageSource,
        cancel: &CancellationToken,
    ) -> Result<Arc<ResolvedBase>, RunnerError> {
        let memo = format!("{}\0{:?}", image.reference, image.platform);
        if let Some(found) = self.images.lock().ok().and_then(|m| m.get(&memo).cloned()) {
            return Ok(found);
        }
        let reference = registry::Reference::parse(&image.reference)
            .map_err(|source| RunnerError::Reference { reference: image.reference.clone(), source })?;
        // A pinned reference already resolved in this build (the frontend resolved the tag).
        if let Some(digest) = reference.digest() {
            let pinned = format!("{}@{digest}", reference.name());
            let found = self.images.lock().ok().and_then(|m| {
                m.values().find(|base| base.pinned == pinned || base.manifest.digest() == digest).cloned()
            });
            if let Some(found) = found {
                return Ok(found);
            }
            // Or in the store under any tag of that repository: no registry round trip.
            if let Ok(records) = self.store.images().resolve(&pinned)
                && let Some(record) = records.first()
                && let Ok(stored) = self.store.content().read_image(&record.target)
            {
                let base = Arc::new(base_from_image(pinned, &stored)?);
                if let Ok(mut images) = self.images.lock() {
                    images.insert(memo, base.clone());
                }
                return Ok(base);
            }
        }
        let options = registry::PullOptions { platform: registry_platform(image.platform.as_ref()) };
        let policy = if self.registry.is_none() { registry::PullPolicy::Never } else { self.options.pull };
        // The registry's futures are not provably `Send` for every lifetime, so the resolve runs
        // on a blocking thread that drives it on this runtime. Without a registry client nothing
        // is pulled (policy `Never`); the default one only satisfies the API.
        let client = self.http.clone();
        let store = self.store.clone();
        let handle = tokio::runtime::Handle::current();
        let reference_for_task = reference.clone();
        let resolve = tokio::task::spawn_blocking(move || {
            let progress = registry::Progress::none();
            handle.block_on(registry::resolve_image(
                &client,
                &store,
                &reference_for_task,
                &options,
                policy,
                &progress,
            ))
        });
        let resolved = tokio::select! {
            result = resolve => result??,
            () = cancel.cancelled() => return Err(RunnerError::Io {
                op: "pull", path: image.reference.clone().into(),
                source: std::io::Error::from(std::io::ErrorKind::Interrupted),
            }),
        };
        let base = Arc::new(base_from_image(
            format!("{}@{}", reference.name(), resolved.manifest.digest()),
            &resolved.image,
        )?);
        if let Ok(mut images) = self.images.lock() {
            images.insert(memo, base.clone());
        }
        Ok(base)
    }

    pub(crate) fn local_dir(&self, local: &LocalSource) -> Result<LocalDir, RunnerError> {
        let given = self
            .options
            .locals
            .get(&local.name)
            .ok_or_else(|| RunnerError::UnknownLocal(local.name.clone()))?;
        let mut excludes = given.excludes.clone();
        for pattern in &local.exclude_patterns {
            if !excludes.contains(pattern) {
                excludes.push(pattern.clone());
            }
        }
        Ok(LocalDir {
            name: local.name.clone(),
            path: given.path.clone(),
            excludes,
            shared_key: local.shared_key.clone(),
        })
    }

    /// Downloads `http.url` into the content store once per build (verifying `--checksum`).
    pub(crate) async fn download(
        &self,
        http: &HttpSource,
        cancel: &CancellationToken,
    ) -> Result<Arc<Descriptor>, RunnerError> {
        let memo = serde_json::to_string(http).unwrap_or_else(|_| http.url.clone());
        if let Some(found) = self.downloads.lock().ok().and_then(|m| m.get(&memo).cloned()) {
            return Ok(found);
        }
        let expected = match &http.checksum {
            Some(text) => {
                Some(cache::parse_digest(text).map_err(|_| RunnerError::InvalidChecksum(text.clone()))?)
            }
            None => None,
        };
        // one client for every download, with the registry client's TLS and insecure settings
        let client = self.http.http_client_for(&http.url);
        let store = self.store.clone();
        let known = HttpRecords::load(&store, &http.url);
        let download = async {
            // BuildKit's revalidation: HEAD first, compared by ETag; then a conditional GET
            let etags: Vec<&str> = known.usable(&store).map(|e| e.etag.as_str()).collect();
            if !etags.is_empty() {
                let head = client
                    .head(&http.url)
                    .header(reqwest::header::IF_NONE_MATCH, etags.join(", "))
                    .send()
                    .await;
                if let Ok(response) = head
                    && (response.status().is_success() || response.status().as_u16() == 304)
                {
                    let etag = etag_of(&response).or_else(|| {
                        (response.status().as_u16() == 304 && etags.len() == 1).then(|| etags[0].to_owned())
                    });
                    if let Some(entry) = etag.and_then(|etag| known.find(&store, &etag)) {
                        return Ok(entry.clone());
                    }
                }
            }
            let mut request = client.get(&http.url);
            if !etags.is_empty() {
                request = request.header(reqwest::header::IF_NONE_MATCH, etags.join(", "));
            }
            let response = request
                .send()
                .await
                .map_err(|source| RunnerError::Download { url: http.url.clone(), source })?;
            if response.status().as_u16() == 304 {
                let etag = etag_of(&response).or_else(|| (etags.len() == 1).then(|| etags[0].to_owned()));
                if let Some(entry) = etag.and_then(|etag| known.find(&store, &etag)) {
                    return Ok(entry.clone());
                }
            }
            if !response.status().is_success() {
                return Err(RunnerError::DownloadStatus {
                    url: http.url.clone(),
                    status: response.status().as_u16(),
                });
            }
            let etag = etag_of(&response);
            let last_modified = response
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            let mut writer = store.content().writer()?;
            let temp = writer.temp_path().to_owned();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|source| RunnerError::Download { url: http.url.clone(), source })?;
                writer.write_all(&chunk).map_err(RunnerError::io("write", &temp))?;
            }
            let actual = writer.digest();
            if let Some(expected) = &expected
                && &actual != expected
            {
                return Err(RunnerError::ChecksumMismatch {
                    url: http.url.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            let info = writer.commit(expected.as_ref())?;
            let entry = HttpEntry {
                etag: etag.unwrap_or_default(),
                digest: info.digest.to_string(),
                size: info.size,
                last_modified,
            };
            if !entry.etag.is_empty() {
                // a lost record only costs a download next time
                let _ = known.with(entry.clone()).save(&store);
            }
            Ok(entry)
        };
        let entry = tokio::select! {
            result = download => result?,
            () = cancel.cancelled() => return Err(RunnerError::Io {
                op: "download", path: http.url.clone().into(),
                source: std::io::Error::from(std::io::ErrorKind::Interrupted),
            }),
        };
        let digest = cache::parse_digest(&entry.digest)
            .map_err(|_| RunnerError::InvalidChecksum(entry.digest.clone()))?;
        // content revalidated by ETag is held to --checksum like a fresh download
        if let Some(expected) = &expected
            && &digest != expected
        {
            return Err(RunnerError::ChecksumMismatch {
                url: http.url.clone(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let mut descriptor =
            Descriptor::new(MediaType::Other("application/octet-stream".into()), entry.size, digest);
        let filename = http.filename.clone().unwrap_or_else(|| filename_from_url(&http.url));
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(super::ANNOTATION_FILENAME.to_owned(), filename);
        annotations.insert(super::ANNOTATION_MODE.to_owned(), format!("{:o}", http.mode.unwrap_or(0o600)));
        if let Some(seconds) = entry.last_modified {
            annotations.insert(super::ANNOTATION_MTIME.to_owned(), seconds.to_string());
        }
        descriptor.set_annotations(Some(annotations));
        let descriptor = Arc::new(descriptor);
        if let Ok(mut downloads) = self.downloads.lock() {
            downloads.insert(memo, descriptor.clone());
        }
        Ok(descriptor)
    }
}

fn base_from_image(pinned: String, image: &cache::Image) -> Result<ResolvedBase, RunnerError> {
    let layers =
        image.layers()?.into_iter().map(|l| CachedLayer { blob: l.blob, diff_id: l.diff_id }).collect();
    Ok(ResolvedBase {
        pinned,
        manifest: image.manifest_descriptor.clone(),
        config: image.config.clone(),
        layers,
    })
}

/// The file name of a download: the URL path's last segment (`index.html` when empty).
pub(crate) fn filename_from_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = without_query.split_once("://").map(|(_, rest)| rest).unwrap_or(without_query);
    let path = after_scheme.split_once('/').map(|(_, path)| path).unwrap_or("");
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => name.to_owned(),
        _ => "index.html".to_owned(),
    }
}

pub(crate) fn blob_filename(descriptor: &Descriptor) -> String {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(super::ANNOTATION_FILENAME).cloned())
        .filter(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
        .unwrap_or_else(|| "download".to_owned())
}

/// The download's `Last-Modified` time, when the server sent one.
pub(crate) fn blob_mtime(descriptor: &Descriptor) -> Option<i64> {
    descriptor.annotations().as_ref()?.get(super::ANNOTATION_MTIME)?.parse().ok()
}

pub(crate) fn blob_mode(descriptor: &Descriptor) -> u32 {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(super::ANNOTATION_MODE))
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o600)
        & 0o7777
}

/// What the store remembers of a URL's downloads (BuildKit keeps the same on its cache refs): per
/// ETag the content digest and `Last-Modified`, so a rebuild revalidates with HEAD.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct HttpRecords {
    url: String,
    entries: Vec<HttpEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct HttpEntry {
    etag: String,
    digest: String,
    size: u64,
    /// Seconds since the epoch of the `Last-Modified` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<i64>,
}

/// Where the records live: `<root>/http-v1/<sha256 of the URL>.json`.
fn http_records_path(store: &cache::Store, url: &str) -> std::path::PathBuf {
    let hash = cache::sha256_digest(url.as_bytes());
    store.root().join("http-v1").join(format!("{}.json", hash.digest()))
}

/// How many ETags of one URL are remembered.
const HTTP_ENTRIES_KEPT: usize = 8;

impl HttpRecords {
    /// The records of `url`; none when missing or unreadable (they are only a cache).
    fn load(store: &cache::Store, url: &str) -> HttpRecords {
        std::fs::read(http_records_path(store, url))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HttpRecords>(&bytes).ok())
            .filter(|records| records.url == url)
            .unwrap_or_else(|| HttpRecords { url: url.to_owned(), entries: Vec::new() })
    }

    /// Entries whose content is still in the store.
    fn usable<'a>(&'a self, store: &'a cache::Store) -> impl Iterator<Item = &'a HttpEntry> + 'a {
        self.entries.iter().filter(|e| {
            !e.etag.is_empty() && cache::parse_digest(&e.digest).is_ok_and(|d| store.content().contains(&d))
        })
    }

    fn find<'a>(&'a self, store: &'a cache::Store, etag: &str) -> Option<&'a HttpEntry> {
        self.usable(store).find(|e| e.etag == etag)
    }

    fn with(mut self, entry: HttpEntry) -> HttpRecords {
        self.entries.retain(|e| e.etag != entry.etag);
        self.entries.insert(0, entry);
        self.entries.truncate(HTTP_ENTRIES_KEPT);
        self
    }

    fn save(&self, store: &cache::Store) -> Result<(), cache::Error> {
        let path = http_records_path(store, &self.url);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| cache::Error::Io {
                op: "create",
                path: dir.to_owned(),
                source,
            })?;
        }
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        store.write_file_atomic(&path, &bytes)
    }
}

/// The response's ETag without a weak prefix or quotes (BuildKit's etagValue).
fn etag_of(response: &reqwest::Response) -> Option<String> {
    let raw = response.headers().get(reqwest::header::ETAG)?.to_str().ok()?;
    let value = raw.trim().trim_start_matches("W/").trim_matches('"');
    (!value.is_empty()).then(|| value.to_owned())
}

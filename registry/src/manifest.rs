//! Manifest negotiation: fetching manifests and indexes with the media types kiln accepts
//! (OCI index/manifest, Docker schema2 manifest/list), verifying their digests, choosing the
//! platform's manifest from an index, and putting manifests.

use bytes::Bytes;
use cache::{DocKind, doc_kind, is_config_media_type, is_layer_media_type};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, ImageIndex, ImageManifest, MediaType};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::blob::Repository;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Largest manifest or index we accept (distribution's own limit is 4 MiB).
pub(crate) const MAX_MANIFEST_SIZE: u64 = 4 << 20;

const ACCEPTED: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                        application/vnd.docker.distribution.manifest.list.v2+json, \
                        application/vnd.docker.distribution.manifest.v2+json";

/// A manifest or index as fetched: exact bytes, their digest and media type.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) media_type: String,
    pub(crate) kind: DocKind,
    pub(crate) bytes: Bytes,
    pub(crate) digest: Digest,
}

impl Fetched {
    pub(crate) fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.bytes.len() as u64,
            self.digest.clone(),
        )
    }
}

/// The part of a manifest that says what it is.
#[derive(Debug, serde::Deserialize)]
struct MediaTypeField {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default, rename = "schemaVersion")]
    schema_version: Option<u32>,
}

impl Repository {
    /// `GET /v2/<name>/manifests/<reference>`; `expected` (for digest references) is verified,
    /// and so is the registry's `Docker-Content-Digest` header.
    pub(crate) async fn fetch_manifest(&self, reference: &str, expected: Option<&Digest>) -> Result<Fetched> {
        let what = format!("manifest {reference}");
        if let Some(expected) = expected
            && *expected.algorithm() != DigestAlgorithm::Sha256
        {
            return Err(Error::InvalidDocument { what, problem: "only sha256 digests are supported".into() });
        }
        let url = self.api_url(&format!("manifests/{reference}"))?;
        let build = move |http: &reqwest::Client| Ok(http.get(url.clone()).header(ACCEPT, ACCEPTED));
        let attempts = self.client.options().max_attempts;
        let mut response =
            self.client.send(&self.endpoint, &self.scope, attempts, &build, &|_, _| {}).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::ManifestNotFound {
                registry: self.registry().to_owned(),
                repository: self.name().to_owned(),
                reference: reference.to_owned(),
            });
        }
        if !status.is_success() {
            let path = response.url().path().to_owned();
            return Err(self.endpoint.status_error(&Method::GET, &path, response).await);
        }
        let header_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let header_digest =
            response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if response.content_length().is_some_and(|len| len > MAX_MANIFEST_SIZE) {
            return Err(Error::TooLarge { what, limit: MAX_MANIFEST_SIZE });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|source| Error::Transfer {
            registry: self.registry().to_owned(),
            what: what.clone(),
            source,
        })? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_MANIFEST_SIZE {
                return Err(Error::TooLarge { what, limit: MAX_MANIFEST_SIZE });
            }
        }
        let digest = cache::sha256_digest(&body);
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::DigestMismatch { what, expected: expected.clone(), actual: digest });
        }
        if let Some(header) = header_digest.and_then(|h| Digest::try_from(h.as_str()).ok())
            && *header.algorithm() == DigestAlgorithm::Sha256
            && header != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("{what} (registry's Docker-Content-Digest)"),
                expected: header,
                actual: digest,
            });
        }
        let media_type = media_type_of(&what, header_type.as_deref(), &body)?;
        let kind = doc_kind(&MediaType::from(media_type.as_str())).ok_or_else(|| {
            Error::UnsupportedMediaType { what: what.clone(), media_type: media_type.clone() }
        })?;
        Ok(Fetched { media_type, kind, bytes: Bytes::from(body), digest })
    }

    /// `PUT /v2/<name>/manifests/<reference>`; checks the digest the registry computed.
    pub(crate) async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let url = self.api_url(&format!("manifests/{reference}"))?;
        let digest = cache::sha256_digest(&bytes);
        let media_type = media_type.to_owned();
        let build = move |http: &reqwest::Client| {
            Ok(http.put(url.clone()).header(CONTENT_TYPE, media_type.as_str()).body(bytes.clone()))
        };
        let attempts = self.client.options().max_attempts;
        let response = self.client.send(&self.endpoint, &self.scope, attempts, &build, &|_, _| {}).await?;
        if !response.status().is_success() {
            let path = response.url().path().to_owned();
            return Err(self.endpoint.status_error(&Method::PUT, &path, response).await);
        }
        if let Some(header) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| Digest::try_from(h).ok())
            && header != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference} as stored by {}", self.registry()),
                expected: digest,
                actual: header,
            });
        }
        Ok(digest)
    }
}

/// The media type of a fetched document: the `Content-Type` unless it is generic, else the
/// document's `mediaType` field, else guessed from its shape (old OCI documents omit both).
fn media_type_of(what: &str, header: Option<&str>, body: &[u8]) -> Result<String> {
    let generic = |t: &str| matches!(t, "" | "application/json" | "text/plain" | "application/octet-stream");
    if let Some(header) = header.filter(|h| !generic(h)) {
        return Ok(header.to_owned());
    }
    let fields: MediaTypeField = cache::from_json_slice(body)
        .map_err(|err| Error::InvalidDocument { what: what.to_owned(), problem: err.to_string() })?;
    if let Some(media_type) = fields.media_type {
        return Ok(media_type);
    }
    match (fields.schema_version, fields.manifests.is_some()) {
        (Some(2), true) => Ok(MediaType::ImageIndex.to_string()),
        (Some(2), false) => Ok(MediaType::ImageManifest.to_string()),
        _ => Err(Error::UnsupportedMediaType {
            what: what.to_owned(),
            media_type: header.unwrap_or("none").to_owned(),
        }),
    }
}

/// Parses an index and picks the manifest for `wanted` (best [`Platform::match_rank`]).
pub(crate) fn choose_platform(fetched: &Fetched, wanted: &Platform) -> Result<(Descriptor, Platform)> {
    let what = format!("index {}", fetched.digest);
    let index: ImageIndex = cache::from_json_slice(&fetched.bytes)
        .map_err(|err| Error::InvalidDocument { what: what.clone(), problem: err.to_string() })?;
    let mut best: Option<(usize, &Descriptor, Platform)> = None;
    let mut available = Vec::new();
    for entry in index.manifests() {
        let Some(platform) = entry.platform().as_ref().map(Platform::from) else { continue };
        if platform.os() != "unknown" {
            available.push(platform.to_string());
        }
        if doc_kind(entry.media_type()) != Some(DocKind::Manifest) {
            continue;
        }
        if let Some(rank) = wanted.match_rank(&platform)
            && best.as_ref().is_none_or(|(r, _, _)| rank < *r)
        {
            best = Some((rank, entry, platform));
        }
    }
    let (_, entry, platform) = best.ok_or_else(|| Error::NoMatchingPlatform {
        wanted: wanted.to_string(),
        available: if available.is_empty() { "none".into() } else { available.join(", ") },
    })?;
    if entry.size() > MAX_MANIFEST_SIZE {
        return Err(Error::TooLarge {
            what: format!("manifest {}", entry.digest()),
            limit: MAX_MANIFEST_SIZE,
        });
    }
    Ok((entry.clone(), platform))
}

/// Parses an image manifest and checks that kiln can use its config and layers.
pub(crate) fn parse_image_manifest(fetched: &Fetched) -> Result<ImageManifest> {
    let what = format!("manifest {}", fetched.digest);
    let manifest: ImageManifest = cache::from_json_slice(&fetched.bytes)
        .map_err(|err| Error::InvalidDocument { what: what.clone(), problem: err.to_string() })?;
    let config = manifest.config();
    if !is_config_media_type(config.media_type()) {
        return Err(Error::UnsupportedMediaType {
            what: format!("config {} of {what}", config.digest()),
            media_type: config.media_type().to_string(),
        });
    }
    for layer in manifest.layers() {
        if !is_layer_media_type(layer.media_type()) {
            return Err(Error::UnsupportedMediaType {
                what: format!("layer {} of {what}", layer.digest()),
                media_type: layer.media_type().to_string(),
            });
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(json: &str) -> Fetched {
        Fetched {
            media_type: MediaType::ImageIndex.to_string(),
            kind: DocKind::Index,
            bytes: Bytes::from(json.to_owned()),
            digest: cache::sha256_digest(json.as_bytes()),
        }
    }

    fn entry(digest_byte: char, media: &str, platform: &str) -> String {
        let hex: String = std::iter::repeat_n(digest_byte, 64).collect();
        format!(r#"{{"mediaType":"{media}","digest":"sha256:{hex}","size":10,"platform":{platform}}}"#)
    }

    #[test]
    fn media_type_from_header_body_or_shape() {
        let oci = MediaType::ImageManifest.to_string();
        assert_eq!(media_type_of("m", Some(cache::DOCKER_MANIFEST), b"{}").unwrap(), cache::DOCKER_MANIFEST);
        assert_eq!(media_type_of("m", Some("application/json"), br#"{"mediaType":"x/y"}"#).unwrap(), "x/y");
        assert_eq!(media_type_of("m", None, br#"{"schemaVersion":2,"layers":[]}"#).unwrap(), oci);
        assert_eq!(
            media_type_of("m", None, br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            MediaType::ImageIndex.to_string()
        );
        let err = media_type_of("manifest v1", None, br#"{"schemaVersion":1}"#).unwrap_err().to_string();
        assert!(err.contains("manifest v1"), "{err}");
        assert!(media_type_of("m", None, b"not json").is_err());
    }

    #[test]
    fn chooses_the_wanted_platform() {
        let m = MediaType::ImageManifest.to_string();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{},{},{}]}}"#,
            entry('a', &m, r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#),
            entry('b', &m, r#"{"os":"linux","architecture":"amd64"}"#),
            entry('c', &m, r#"{"os":"unknown","architecture":"unknown"}"#),
            entry('d', &m, r#"{"os":"linux","architecture":"arm","variant":"v6"}"#),
        );
        let f = fetched(&index);
        let pick = |p: &str| {
            choose_platform(&f, &p.parse().unwrap()).map(|(d, _)| d.digest().digest().chars().next())
        };
        assert_eq!(pick("linux/amd64").unwrap(), Some('b'));
        assert_eq!(pick("linux/arm64").unwrap(), Some('a'));
        assert_eq!(pick("linux/arm/v7").unwrap(), Some('d'));
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("linux/s390x") && err.contains("linux/arm64/v8, linux/amd64, linux/arm/v6"),
            "{err}"
        );
    }

    #[test]
    fn chooses_from_a_docker_manifest_list() {
        let m = cache::DOCKER_MANIFEST;
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{}]}}"#,
            cache::DOCKER_MANIFEST_LIST,
            entry('a', m, r#"{"os":"linux","architecture":"arm","variant":"v7"}"#),
            entry('b', m, r#"{"os":"linux","architecture":"amd64"}"#),
        );
        let mut f = fetched(&list);
        f.media_type = cache::DOCKER_MANIFEST_LIST.to_owned();
        let (chosen, platform) = choose_platform(&f, &Platform::host()).unwrap();
        assert!(chosen.digest().digest().starts_with('b'));
        assert_eq!(platform.to_string(), "linux/amd64");
        let (chosen, _) = choose_platform(&f, &"linux/arm/v7".parse().unwrap()).unwrap();
        assert!(chosen.digest().digest().starts_with('a'));
    }

    #[test]
    fn rejects_unknown_layer_types() {
        let json = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},
            "layers":[{"mediaType":"application/x-weird","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":3}]}"#;
        let mut f = fetched(json);
        f.kind = DocKind::Manifest;
        let err = parse_image_manifest(&f).unwrap_err().to_string();
        assert!(err.contains("application/x-weird") && err.contains("layer sha256:bbbb"), "{err}");
    }
}

//! `--cache-from` / `--cache-to` values, buildx syntax: `type=registry,ref=REG/REPO:TAG,…`,
//! `type=local,src=DIR` / `type=local,dest=DIR`, or a bare reference (`--cache-from REF` means
//! `type=registry,ref=REF`).

use std::path::PathBuf;

use registry::Reference;

/// Which results `--cache-to` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportMode {
    /// The steps of the final image (its stage's chain of filesystems).
    #[default]
    Min,
    /// Every step of every stage.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// A cache manifest in a registry.
    Registry(Reference),
    /// An OCI image layout directory; the manifest is named by `tag` (default `latest`) or
    /// picked by `digest` (imports only).
    Local { dir: PathBuf, tag: String, digest: Option<oci_spec::image::Digest> },
    /// `--cache-to type=inline`: the cache config inside the built image's config (the final
    /// stage's records, as `mode=min`); imported with `--cache-from type=registry,ref=IMAGE`.
    Inline,
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(reference) => write!(f, "{reference}"),
            CacheLocation::Local { dir, tag, digest } => match digest {
                Some(digest) => write!(f, "{}@{digest}", dir.display()),
                None => write!(f, "{}:{tag}", dir.display()),
            },
            CacheLocation::Inline => write!(f, "the image config (inline)"),
        }
    }
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    pub location: CacheLocation,
    /// Turn every import error into a warning (a missing manifest always is one).
    pub ignore_error: bool,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub location: CacheLocation,
    pub mode: ExportMode,
    /// Compression of the layers this build creates (existing layers are exported as they are).
    pub compression: Option<cache::Compression>,
    /// Turn an export error into a warning.
    pub ignore_error: bool,
    /// `cache-mounts=true`: the build's `RUN --mount=type=cache` directories travel too.
    pub cache_mounts: bool,
}

/// An invalid cache spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid cache spec {spec:?}: {problem}")]
    Invalid { spec: String, problem: String },
    #[error("invalid cache spec {spec:?}: invalid reference")]
    Reference {
        spec: String,
        #[source]
        source: registry::ReferenceError,
    },
}

fn fields(spec: &str) -> Result<Vec<(String, String)>, SpecError> {
    spec.split(',')
        .filter(|f| !f.is_empty())
        .map(|field| match field.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_ascii_lowercase(), v.to_owned())),
            None => Err(SpecError::Invalid {
                spec: spec.to_owned(),
                problem: format!("{field:?} is not KEY=VALUE"),
            }),
        })
        .collect()
}

fn boolean(spec: &str, key: &str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::Invalid {
            spec: spec.into(),
            problem: format!("{key}={value:?} is not true or false"),
        }),
    }
}

struct Parsed {
    kind: String,
    reference: Option<String>,
    dir: Option<PathBuf>,
    tag: Option<String>,
    digest: Option<String>,
    mode: ExportMode,
    compression: Option<cache::Compression>,
    ignore_error: bool,
    cache_mounts: bool,
}

fn parse(spec: &str, import: bool) -> Result<Parsed, SpecError> {
    let invalid = |problem: String| SpecError::Invalid { spec: spec.to_owned(), problem };
    // `--cache-from REF`: a bare reference
    if !spec.contains('=') {
        return Ok(Parsed {
            kind: "registry".into(),
            reference: Some(spec.to_owned()),
            dir: None,
            tag: None,
            digest: None,
            mode: ExportMode::Min,
            compression: None,
            ignore_error: false,
            cache_mounts: false,
        });
    }
    let mut parsed = Parsed {
        kind: String::new(),
        reference: None,
        dir: None,
        tag: None,
        digest: None,
        mode: ExportMode::Min,
        compression: None,
        ignore_error: false,
        cache_mounts: false,
    };
    for (key, value) in fields(spec)? {
        match key.as_str() {
            "type" => parsed.kind = value,
            "ref" => parsed.reference = Some(value),
            "src" if import => parsed.dir = Some(PathBuf::from(value)),
            "dest" if !import => parsed.dir = Some(PathBuf::from(value)),
            "tag" => parsed.tag = Some(value),
            "digest" if import => parsed.digest = Some(value),
            "mode" if !import => {
                parsed.mode = match value.as_str() {
                    "min" => ExportMode::Min,
                    "max" => ExportMode::Max,
                    other => return Err(invalid(format!("mode={other:?} (expected min or max)"))),
                }
            }
            "compression" if !import => {
                parsed.compression = Some(match value.as_str() {
                    "gzip" => cache::Compression::Gzip,
                    "zstd" => cache::Compression::Zstd,
                    "uncompressed" => cache::Compression::None,
                    other => return Err(invalid(format!("compression={other:?} (expected gzip or zstd)"))),
                })
            }
            "compression-level" | "force-compression" if !import => {}
            "oci-mediatypes" if !import => {
                if !boolean(spec, &key, &value)? {
                    return Err(invalid("oci-mediatypes=false: kiln writes OCI media types only".into()));
                }
            }
            "image-manifest" if !import => {
                if !boolean(spec, &key, &value)? {
                    return Err(invalid(
                        "image-manifest=false: kiln writes the cache as an image manifest only".into(),
                    ));
                }
            }
            "ignore-error" => parsed.ignore_error = boolean(spec, &key, &value)?,
            "cache-mounts" if !import => parsed.cache_mounts = boolean(spec, &key, &value)?,
            other => return Err(invalid(format!("unknown key {other:?}"))),
        }
    }
    Ok(parsed)
}

fn location(spec: &str, parsed: &Parsed, import: bool) -> Result<CacheLocation, SpecError> {
    let invalid = |problem: &str| SpecError::Invalid { spec: spec.to_owned(), problem: problem.to_owned() };
    match parsed.kind.as_str() {
        "registry" => {
            let text = parsed.reference.as_deref().ok_or_else(|| invalid("missing ref="))?;
            let reference = Reference::parse(text)
                .map_err(|source| SpecError::Reference { spec: spec.to_owned(), source })?;
            Ok(CacheLocation::Registry(reference))
        }
        "local" => {
            let dir = parsed
                .dir
                .clone()
                .ok_or_else(|| invalid(if import { "missing src=" } else { "missing dest=" }))?;
            let tag = parsed.tag.clone().unwrap_or_else(|| "latest".into());
            if tag.is_empty() || tag.contains('/') {
                return Err(invalid("invalid tag="));
            }
            let digest = match &parsed.digest {
                Some(text) => Some(cache::parse_digest(text).map_err(|_| invalid("invalid digest="))?),
                None => None,
            };
            Ok(CacheLocation::Local { dir, tag, digest })
        }
        "" => Err(invalid("missing type=")),
        "inline" if import => {
            Err(invalid("type=inline is for --cache-to; import with type=registry,ref=IMAGE"))
        }
        "inline" => Ok(CacheLocation::Inline),
        other => Err(invalid(&format!("type={other:?} is not supported (registry or local)"))),
    }
}

impl CacheImport {
    pub fn parse(spec: &str) -> Result<CacheImport, SpecError> {
        let parsed = parse(spec, true)?;
        Ok(CacheImport { location: location(spec, &parsed, true)?, ignore_error: parsed.ignore_error })
    }
}

impl CacheExport {
    pub fn parse(spec: &str) -> Result<CacheExport, SpecError> {
        let parsed = parse(spec, false)?;
        Ok(CacheExport {
            location: location(spec, &parsed, false)?,
            mode: parsed.mode,
            compression: parsed.compression,
            ignore_error: parsed.ignore_error,
            cache_mounts: parsed.cache_mounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports() {
        let import = CacheImport::parse("type=registry,ref=localhost:5000/app:cache").unwrap();
        assert_eq!(
            import.location,
            CacheLocation::Registry(Reference::parse("localhost:5000/app:cache").unwrap())
        );
        assert!(!import.ignore_error);
        let bare = CacheImport::parse("localhost:5000/app:cache").unwrap();
        assert_eq!(bare.location, import.location);
        let local = CacheImport::parse("type=local,src=/tmp/c,tag=v1,ignore-error=true").unwrap();
        assert_eq!(
            local.location,
            CacheLocation::Local { dir: "/tmp/c".into(), tag: "v1".into(), digest: None }
        );
        assert!(local.ignore_error);
        for bad in [
            "type=local",
            "type=local,dest=/x",
            "type=registry",
            "type=registry,ref=bad ref",
            "type=s3,ref=x",
            "type=registry,ref=r,mode=max",
            "type=local,src=/x,digest=nope",
            "type=registry,ref=r,ignore-error=maybe",
            "type=inline",
            "type=registry,ref",
        ] {
            assert!(CacheImport::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exports() {
        let export = CacheExport::parse(
            "type=registry,ref=r.example/a:c,mode=max,compression=zstd,oci-mediatypes=true,image-manifest=true,ignore-error=true",
        )
        .unwrap();
        assert_eq!(export.mode, ExportMode::Max);
        assert_eq!(export.compression, Some(cache::Compression::Zstd));
        assert!(export.ignore_error);
        assert_eq!(CacheExport::parse("type=inline").unwrap().location, CacheLocation::Inline);
        let local = CacheExport::parse("type=local,dest=/tmp/c").unwrap();
        assert_eq!(local.mode, ExportMode::Min);
        assert_eq!(
            local.location,
            CacheLocation::Local { dir: "/tmp/c".into(), tag: "latest".into(), digest: None }
        );
        for bad in [
            "type=local,src=/x",
            "type=registry,ref=r/a,mode=all",
            "type=registry,ref=r/a,compression=lz4",
            "type=registry,ref=r/a,image-manifest=false",
            "type=registry,ref=r/a,oci-mediatypes=false",
            "type=local,dest=/x,tag=a/b",
        ] {
            assert!(CacheExport::parse(bad).is_err(), "{bad}");
        }
    }
}

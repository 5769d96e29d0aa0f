//! `--build-context NAME=VALUE` (buildx's named contexts) → the frontend's [`NamedContext`]s:
//! a local directory (a `Local` source of its own, with that directory's `.dockerignore`),
//! `docker-image://REF` (resolved like `FROM`) or `oci-layout://PATH[:TAG][@TAG|@DIGEST]` (the
//! layout's image is loaded into the content store and handed to the runner pinned by digest);
//! and the main context as an archive on stdin (`kiln build - < ctx.tar`: [`is_archive`],
//! [`unpack_context`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use crate::frontend::NamedContext;
use crate::runner::LocalDirOptions;

/// `org.opencontainers.image.ref.name`: the tag of an `index.json` entry.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why a `--build-context` value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("invalid context name {name:?}: {source}")]
    Name {
        name: String,
        #[source]
        source: registry::ReferenceError,
    },
    #[error("named context {name}: {value:?} is not a directory")]
    NotADirectory {
        name: String,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("named context {name}: {scheme} contexts are not supported by kiln yet ({value})")]
    Unsupported { name: String, scheme: String, value: String },
    #[error("named context {name}: cannot read the .dockerignore of {path}")]
    Ignore {
        name: String,
        path: PathBuf,
        #[source]
        source: crate::contenthash::ignore::PatternError,
    },
    #[error("named context {name}: cannot read the OCI layout {path}")]
    Layout {
        name: String,
        path: PathBuf,
        #[source]
        source: cache::Error,
    },
    #[error("named context {name}: the OCI layout {path} has no image {wanted}")]
    NotInLayout { name: String, path: PathBuf, wanted: String },
    #[error("cannot unpack the build context archive into {path}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: cache::Error,
    },
}

/// Whether a stream starting with `head` (at least 512 bytes when the stream has them) is an
/// archive, as buildx tells a tar context on stdin from a Dockerfile: gzip, zstd, bzip2 or xz
/// magic, or a tar header (`ustar` magic at offset 257).
pub fn is_archive(head: &[u8]) -> bool {
    cache::compress::detect(head) != cache::compress::Format::Plain
        || head.get(257..262) == Some(&b"ustar"[..])
}

/// Unpacks a build context archive (a tar, possibly compressed) into the directory `dest`, which
/// must exist, with the store's tar applier (nothing is written outside `dest`; modes, owners
/// and mtimes are the archive's), as `ADD` extracts an archive.
pub fn unpack_context(reader: impl std::io::Read + Send + 'static, dest: &Path) -> Result<(), ContextError> {
    let reader = cache::compress::decompress_any(reader).map_err(|e| ContextError::Unpack {
        path: dest.to_owned(),
        source: cache::Error::io("read", dest, e),
    })?;
    cache::apply::apply_tar(reader, dest, cache::apply::ApplyMode::Merge)
        .map_err(|source| ContextError::Unpack { path: dest.to_owned(), source })?;
    Ok(())
}

/// The named contexts of a build: what the frontend sees, the local directories the runner
/// serves, and the OCI-layout images the runner must know (pinned reference, manifest).
#[derive(Debug, Default)]
pub(crate) struct NamedContexts {
    pub frontend: BTreeMap<String, NamedContext>,
    pub locals: Vec<(String, LocalDirOptions)>,
    pub images: Vec<(String, Descriptor)>,
}

/// Parses every `NAME=VALUE` (later values of a name win, as buildx's map) and loads OCI
/// layouts into `store`.
pub(crate) fn named_contexts(
    contexts: &[(String, String)],
    store: &cache::Store,
) -> Result<NamedContexts, ContextError> {
    let mut out = NamedContexts::default();
    for (name, value) in contexts {
        let lookup = name.split_once("::").map_or(name.as_str(), |(n, _)| n);
        registry::Reference::parse_named(lookup)
            .map_err(|source| ContextError::Name { name: name.clone(), source })?;
        let context = if let Some(reference) = value.strip_prefix("docker-image://") {
            NamedContext::Image { reference: reference.to_owned() }
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            let (reference, manifest) = oci_layout(name, lookup, layout, store)?;
            out.images.push((reference.clone(), manifest));
            NamedContext::Image { reference }
        } else if let Some((scheme, _)) = value.split_once("://") {
            return Err(ContextError::Unsupported {
                name: name.clone(),
                scheme: scheme.to_owned(),
                value: value.clone(),
            });
        } else if value.starts_with("git@") {
            return Err(ContextError::Unsupported {
                name: name.clone(),
                scheme: "git".into(),
                value: value.clone(),
            });
        } else {
            let not_dir =
                |source| ContextError::NotADirectory { name: name.clone(), value: value.clone(), source };
            let path = Path::new(value).canonicalize().map_err(not_dir)?;
            if !path.is_dir() {
                return Err(not_dir(std::io::Error::from(std::io::ErrorKind::NotADirectory)));
            }
            // BuildKit reads the `.dockerignore` at the root of the named context's directory
            let excludes = crate::contenthash::ignore::load_ignore_patterns(&path, None)
                .map_err(|source| ContextError::Ignore { name: name.clone(), path: path.clone(), source })?;
            let source = format!("context:{name}");
            out.locals.retain(|(existing, _)| existing != &source);
            out.locals
                .push((source.clone(), LocalDirOptions { path: path.clone(), excludes: excludes.clone() }));
            NamedContext::Local { source, excludes, shared_key: path.display().to_string() }
        };
        out.frontend.insert(name.clone(), context);
    }
    Ok(out)
}

/// Splits `PATH[:TAG][@TAG|@DIGEST]` (buildx takes `@sha256:…` and `:tag`; a plain word after
/// `@` is a tag too) into the layout directory and what to pick in it (default tag `latest`).
fn split_layout(value: &str) -> (&str, Wanted<'_>) {
    if let Some((path, after)) = value.rsplit_once('@') {
        if after.contains(':') {
            return (path, Wanted::Digest(after));
        }
        return (path, Wanted::Tag(after));
    }
    let last_slash = value.rfind('/').map_or(0, |i| i + 1);
    match value[last_slash..].rfind(':') {
        Some(colon) => (&value[..last_slash + colon], Wanted::Tag(&value[last_slash + colon + 1..])),
        None => (value, Wanted::Tag("latest")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Wanted<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// Loads the layout at `value` into the store and returns the pinned reference
/// (`<lookup name>@<manifest digest>`, as BuildKit names it) and the stored manifest.
fn oci_layout(
    name: &str,
    lookup: &str,
    value: &str,
    store: &cache::Store,
) -> Result<(String, Descriptor), ContextError> {
    let (path, wanted) = split_layout(value);
    let path = PathBuf::from(path);
    let layout_error = |source| ContextError::Layout { name: name.to_owned(), path: path.clone(), source };
    let index_path = path.join("index.json");
    let bytes =
        std::fs::read(&index_path).map_err(|e| layout_error(cache::Error::io("read", &index_path, e)))?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
        layout_error(cache::Error::Archive {
            path: index_path.clone(),
            problem: format!("invalid index.json: {e}"),
        })
    })?;
    let position = index.manifests().iter().position(|entry| match wanted {
        Wanted::Digest(digest) => entry.digest().to_string() == digest,
        Wanted::Tag(tag) => {
            entry.annotations().as_ref().and_then(|a| a.get(REF_NAME)).is_some_and(|t| t == tag)
        }
    });
    let not_found = || ContextError::NotInLayout {
        name: name.to_owned(),
        path: path.clone(),
        wanted: match wanted {
            Wanted::Digest(digest) => digest.to_owned(),
            Wanted::Tag(tag) => format!("tagged {tag}"),
        },
    };
    let position = position.ok_or_else(not_found)?;
    let loaded = cache::formats::load(store, &path).map_err(layout_error)?;
    let image = loaded.into_iter().nth(position).ok_or_else(not_found)?;
    let reference = registry::Reference::parse_named(lookup)
        .map_err(|source| ContextError::Name { name: name.to_owned(), source })?
        .without_tag_or_digest()
        .with_digest(image.manifest.digest().clone());
    Ok((reference.to_string(), image.manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_told_from_dockerfiles() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        tar.append_data(&mut header, "Dockerfile", &b"abc"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        assert!(is_archive(&bytes[..512]));
        assert!(is_archive(&[0x1f, 0x8b, 8, 0]), "gzip");
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        let dir = tempfile::tempdir().unwrap();
        unpack_context(std::io::Cursor::new(bytes), dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("Dockerfile")).unwrap(), b"abc");
        // an entry climbing out of the directory is not written
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        let _ = unpack_context(std::io::Cursor::new(tar.into_inner().unwrap()), &inner);
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn layout_values() {
        let table = [
            ("/tmp/l", ("/tmp/l", Wanted::Tag("latest"))),
            ("/tmp/l:v1", ("/tmp/l", Wanted::Tag("v1"))),
            ("/tmp/l@v2", ("/tmp/l", Wanted::Tag("v2"))),
            ("/tmp/a:b/l", ("/tmp/a:b/l", Wanted::Tag("latest"))),
            ("/tmp/l@sha256:abc", ("/tmp/l", Wanted::Digest("sha256:abc"))),
        ];
        for (input, expected) in table {
            assert_eq!(split_layout(input), expected, "{input}");
        }
    }
}

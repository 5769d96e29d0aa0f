//! Random access to the files of an image archive, whether a tar file (docker-archive, OCI
//! archive) or a directory (OCI image layout).
//!
//! A tar is indexed once (entry names → data offsets, seeking over the data) and files are then
//! read in place with positioned reads: no extraction, constant memory. Every name is normalised
//! like a layer entry (no `..`, no absolute paths); symlinks and hardlinks inside the archive
//! (legacy `docker save` links duplicate layers) are followed lexically, never outside it. A
//! directory is read with `openat2(RESOLVE_IN_ROOT)`, so a symlink cannot lead out of it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, IoContext, Result};
use crate::safefs::{RelPath, Root};

/// Largest JSON document (manifest, index, config) read into memory.
pub(crate) const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub(crate) enum TarEntry {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An opened image archive.
#[derive(Debug)]
pub(crate) enum Source {
    Tar { path: PathBuf, file: File, entries: HashMap<String, TarEntry> },
    Dir { path: PathBuf, root: Root },
}

impl Source {
    /// Opens `path`: a directory (OCI layout) or a tar file.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).ctx("open", path)?;
        if meta.is_dir() {
            return Ok(Source::Dir { path: path.to_owned(), root: Root::open(path)? });
        }
        let file = File::open(path).ctx("open", path)?;
        let mut entries = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            let bad = |source: io::Error| Error::Tar { op: "read", what: path.display().to_string(), source };
            for entry in archive.entries_with_seek().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                let raw = entry.path_bytes().into_owned();
                let name = normalise(&raw).map_err(|problem| archive_error(path, problem))?;
                let kind = entry.header().entry_type();
                let value = match kind {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        TarEntry::File { offset: entry.raw_file_position(), size: entry.size() }
                    }
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                        let target = if kind == tar::EntryType::Symlink {
                            resolve_relative(&name, &target)
                        } else {
                            normalise(&target)
                        }
                        .map_err(|problem| archive_error(path, problem))?;
                        TarEntry::Link(target)
                    }
                    _ => continue,
                };
                entries.insert(name, value);
            }
        }
        Ok(Source::Tar { path: path.to_owned(), file, entries })
    }

    /// The archive's path (for errors).
    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::Tar { path, .. } | Source::Dir { path, .. } => path,
        }
    }

    /// True if the archive has a file `name`.
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.open_file(name).is_ok()
    }

    /// Opens the file `name` of the archive; returns a reader and the size.
    pub(crate) fn open_file(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64)> {
        let clean = normalise(name.as_bytes()).map_err(|problem| archive_error(self.path(), problem))?;
        match self {
            Source::Tar { file, entries, path } => {
                let mut current = clean;
                for _ in 0..16 {
                    match entries.get(&current) {
                        Some(TarEntry::File { offset, size }) => {
                            let reader = RangeReader { file, pos: *offset, end: offset + size };
                            return Ok((Box::new(reader), *size));
                        }
                        Some(TarEntry::Link(target)) => current = target.clone(),
                        None => return Err(archive_error(path, format!("has no file {name:?}"))),
                    }
                }
                Err(archive_error(path, format!("{name:?} is a link loop")))
            }
            Source::Dir { root, path } => {
                let rel = RelPath::from_archive(clean.as_bytes())
                    .map_err(|problem| archive_error(path, format!("{name:?}: {problem}")))?;
                let fd = rustix::fs::openat2(
                    root.fd(),
                    rel.to_path(),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(|errno| match errno {
                    rustix::io::Errno::NOENT => archive_error(path, format!("has no file {name:?}")),
                    other => Error::io("open", path.join(rel.to_path()), other.into()),
                })?;
                let file = File::from(fd);
                let meta = file.metadata().ctx("stat", path.join(rel.to_path()))?;
                if !meta.is_file() {
                    return Err(archive_error(path, format!("{name:?} is not a regular file")));
                }
                Ok((Box::new(file), meta.len()))
            }
        }
    }

    /// Reads a small file (JSON document) whole.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (mut reader, size) = self.open_file(name)?;
        if size > MAX_JSON {
            return Err(archive_error(
                self.path(),
                format!("{name:?} is too large ({size} bytes) for a JSON document"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes).ctx("read", self.path().join(name))?;
        Ok(bytes)
    }

    /// Reads and parses a JSON file of the archive.
    pub(crate) fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read_small(name)?;
        crate::config::from_json_slice(&bytes)
            .map_err(|source| Error::Json { what: format!("{name} in {}", self.path().display()), source })
    }
}

/// `Error::Archive` for `path`.
pub(crate) fn archive_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Archive { path: path.to_owned(), problem: problem.into() }
}

/// Normalised form of an archive name (`./a//b/` → `a/b`); refuses `..` and absolute names.
fn normalise(raw: &[u8]) -> std::result::Result<String, String> {
    let rel = RelPath::from_archive(raw)
        .map_err(|problem| format!("entry {:?}: {problem}", String::from_utf8_lossy(raw)))?;
    Ok(rel.components().iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/"))
}

/// Resolves a symlink target relative to the link's directory, lexically; refuses to leave the
/// archive.
fn resolve_relative(link_name: &str, target: &[u8]) -> std::result::Result<String, String> {
    let text = String::from_utf8_lossy(target);
    let mut parts: Vec<&str> = if text.starts_with('/') {
        Vec::new()
    } else {
        let mut parent: Vec<&str> = link_name.split('/').collect();
        parent.pop();
        parent
    };
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("entry {link_name:?}: link target {text:?} leaves the archive"));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Reads `pos..end` of a file with positioned reads (no shared file offset).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "archive is truncated"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_resolve_inside() {
        assert_eq!(resolve_relative("a/layer.tar", b"../b/layer.tar").unwrap(), "b/layer.tar");
        assert_eq!(resolve_relative("a/layer.tar", b"/b/layer.tar").unwrap(), "b/layer.tar");
        assert!(resolve_relative("a/layer.tar", b"../../etc/passwd").is_err());
    }

    #[test]
    fn tar_files_are_read_in_place_and_links_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        builder.append_data(&mut header, "./x/data", &b"hello"[..]).unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder.append_link(&mut link, "y/alias", "../x/data").unwrap();
        builder.into_inner().unwrap();
        let source = Source::open(&path).unwrap();
        assert_eq!(source.read_small("x/data").unwrap(), b"hello");
        assert_eq!(source.read_small("y/alias").unwrap(), b"hello");
        assert!(!source.exists("nope"));
        let err = source.open_file("../x/data").err().unwrap().to_string();
        assert!(err.contains("`..`"), "{err}");
    }
}

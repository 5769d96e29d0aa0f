//! Resolution of a [`Selection`] to entries, content hashing (parallel, cached) and the final
//! digest.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};

use super::filecache::FileStamp;
use super::ignore::{Pattern, PatternMatcher, has_wildcards};
use super::{ContentHashError, ContentHasher, Selection};

const MAX_SYMLINKS: usize = 40;

/// One selected entry.
#[derive(Debug)]
pub(super) struct Record {
    /// Path as the reader sees it (relative to the root, `/`-separated).
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    link: Vec<u8>,
    rdev: u64,
    /// Regular files: absolute path, cache key (real relative path) and stamp.
    file: Option<(PathBuf, Vec<u8>, FileStamp)>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ContentHashError + 'a {
    move |source| ContentHashError::Io { op, path: path.to_owned(), source }
}

fn join(parts: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn abs(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

/// Resolves `pending` below `resolved` inside `root`. Intermediate symlinks are followed inside
/// the root; the last component only when `follow_last`. `None` when something is missing.
fn resolve(
    root: &Path,
    mut resolved: Vec<OsString>,
    pending: Vec<OsString>,
    follow_last: bool,
    display: &str,
) -> Result<Option<(Vec<OsString>, std::fs::Metadata)>, ContentHashError> {
    let mut pending: VecDeque<OsString> = pending.into();
    let mut links = 0;
    let mut last_meta = None;
    while let Some(component) = pending.pop_front() {
        if component == ".." {
            resolved.pop();
            last_meta = None;
            continue;
        }
        if component.is_empty() || component == "." {
            continue;
        }
        let candidate = abs(root, &resolved).join(&component);
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound || err.raw_os_error() == Some(20) => {
                return Ok(None);
            }
            Err(source) => return Err(ContentHashError::Io { op: "stat", path: candidate, source }),
        };
        let more = pending.iter().any(|c| !c.is_empty() && c != ".");
        if meta.file_type().is_symlink() && (more || follow_last) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ContentHashError::SymlinkLoop { path: display.to_owned() });
            }
            let target = std::fs::read_link(&candidate).map_err(io_err("read link", &candidate))?;
            if target.is_absolute() {
                resolved.clear();
            }
            for part in target.iter().rev() {
                if part != OsStr::new("/") {
                    pending.push_front(part.to_owned());
                }
            }
            last_meta = None;
            continue;
        }
        if more && !meta.is_dir() {
            return Ok(None);
        }
        resolved.push(component);
        last_meta = Some(meta);
    }
    let meta = match last_meta {
        Some(meta) => meta,
        None => {
            let path = abs(root, &resolved);
            std::fs::symlink_metadata(&path).map_err(io_err("stat", &path))?
        }
    };
    Ok(Some((resolved, meta)))
}

struct Match {
    display: Vec<OsString>,
    real: Vec<OsString>,
    meta: std::fs::Metadata,
}

/// Expands the selected path (wildcards per component) to matches in name order.
fn expand(
    hasher: &ContentHasher,
    selection: &Selection,
    clean: &str,
) -> Result<Vec<Match>, ContentHashError> {
    let root = hasher.root.as_path();
    let components: Vec<&str> = clean.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let root_meta = std::fs::symlink_metadata(root).map_err(io_err("stat", root))?;
    let mut states = vec![Match { display: Vec::new(), real: Vec::new(), meta: root_meta }];
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let follow = !last || selection.follow_symlinks;
        let mut next = Vec::new();
        for state in states {
            if selection.wildcard && has_wildcards(component) {
                if !state.meta.is_dir() {
                    continue;
                }
                let pattern = Pattern::component(component)?;
                let dir = abs(root, &state.real);
                let mut names: Vec<OsString> = std::fs::read_dir(&dir)
                    .map_err(io_err("read directory", &dir))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .map_err(io_err("read directory", &dir))?;
                names.sort();
                for name in names {
                    let Some(text) = name.to_str() else { continue };
                    if !pattern.matches(text) {
                        continue;
                    }
                    let mut real = state.real.clone();
                    real.push(name.clone());
                    if hasher.filter.matches(&String::from_utf8_lossy(&join(&real))) {
                        continue;
                    }
                    if let Some((real, meta)) =
                        resolve(root, state.real.clone(), vec![name.clone()], follow, clean)?
                    {
                        let mut display = state.display.clone();
                        display.push(name);
                        next.push(Match { display, real, meta });
                    }
                }
            } else if let Some((real, meta)) =
                resolve(root, state.real.clone(), vec![OsString::from(component)], follow, clean)?
            {
                let mut display = state.display;
                display.push(OsString::from(component));
                next.push(Match { display, real, meta });
            }
        }
        states = next;
    }
    Ok(states)
}

fn record(
    name: Vec<u8>,
    real: &[OsString],
    path: PathBuf,
    meta: &std::fs::Metadata,
) -> Result<Record, ContentHashError> {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        b'f'
    } else if ft.is_dir() {
        b'd'
    } else if ft.is_symlink() {
        b'l'
    } else if ft.is_char_device() {
        b'c'
    } else if ft.is_block_device() {
        b'b'
    } else if ft.is_fifo() {
        b'p'
    } else {
        b's'
    };
    let link = if kind == b'l' {
        std::fs::read_link(&path).map_err(io_err("read link", &path))?.as_os_str().as_bytes().to_vec()
    } else {
        Vec::new()
    };
    let rdev = if matches!(kind, b'c' | b'b') { meta.rdev() } else { 0 };
    let file = (kind == b'f').then(|| (path, join(real), FileStamp::of(meta)));
    Ok(Record { name, kind, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid(), link, rdev, file })
}

/// The path of a record as the reader sees it (tests).
#[cfg(test)]
pub(super) fn record_name(record: &Record) -> Vec<u8> {
    record.name.clone()
}

struct SubtreeFilter {
    include: PatternMatcher,
    exclude: PatternMatcher,
}

/// Collects the records of a selection in path order.
pub(super) fn collect(
    hasher: &ContentHasher,
    selection: &Selection,
) -> Result<Vec<Record>, ContentHashError> {
    let clean = super::ignore::clean_path(&format!("/{}", selection.path));
    let clean = clean.trim_start_matches('/').to_owned();
    let matches = expand(hasher, selection, &clean)?;
    if matches.is_empty() {
        if selection.wildcard && has_wildcards(&clean) {
            if selection.allow_empty {
                return Ok(Vec::new());
            }
            return Err(ContentHashError::NoMatch { pattern: selection.path.clone() });
        }
        return Err(ContentHashError::NotFound { path: selection.path.clone(), excluded: false });
    }
    if selection.required_includes {
        for pattern in selection.include_patterns.iter().filter(|p| !has_wildcards(p)) {
            let path = format!("{}/{}", clean.trim_end_matches('/'), pattern.trim_start_matches('/'));
            let path = path.trim_start_matches('/');
            let required = Selection { wildcard: false, ..selection.clone() };
            if expand(hasher, &required, path)?.is_empty() {
                return Err(ContentHashError::NotFound { path: format!("/{path}"), excluded: false });
            }
        }
    }
    let filter = SubtreeFilter {
        include: PatternMatcher::new(&selection.include_patterns)?,
        exclude: PatternMatcher::new(&selection.exclude_patterns)?,
    };
    let mut records = Vec::new();
    let mut any_visible = false;
    for m in matches {
        let real_text = String::from_utf8_lossy(&join(&m.real)).into_owned();
        let excluded = !m.real.is_empty() && hasher.filter.matches(&real_text);
        let is_dir = m.meta.is_dir();
        if excluded && !(is_dir && hasher.filter.may_include_below(&real_text)) {
            continue;
        }
        any_visible = true;
        if !excluded && !m.display.is_empty() {
            let path = abs(&hasher.root, &m.real);
            records.push(record(join(&m.display), &m.real, path, &m.meta)?);
        }
        if is_dir {
            walk_dir(hasher, &filter, &m.display, &m.real, &[], &mut records)?;
        }
    }
    if !any_visible {
        return Err(ContentHashError::NotFound { path: selection.path.clone(), excluded: true });
    }
    Ok(records)
}

fn walk_dir(
    hasher: &ContentHasher,
    filter: &SubtreeFilter,
    display: &[OsString],
    real: &[OsString],
    relative: &[OsString],
    records: &mut Vec<Record>,
) -> Result<(), ContentHashError> {
    let dir = abs(&hasher.root, real);
    let mut entries: Vec<(OsString, std::fs::Metadata)> = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
        let entry = entry.map_err(io_err("read directory", &dir))?;
        let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
        entries.push((entry.file_name(), meta));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // Each entry: its own record (if selected) and, for a directory to descend into, its path.
    let mut children = Vec::with_capacity(entries.len());
    for (name, meta) in entries {
        let mut child_real = real.to_vec();
        child_real.push(name.clone());
        let mut child_display = display.to_vec();
        child_display.push(name.clone());
        let mut child_relative = relative.to_vec();
        child_relative.push(name);
        let is_dir = meta.is_dir();
        let real_text = String::from_utf8_lossy(&join(&child_real)).into_owned();
        let rel_text = String::from_utf8_lossy(&join(&child_relative)).into_owned();
        let ignored = hasher.filter.matches(&real_text);
        let excluded = !filter.exclude.is_empty() && filter.exclude.matches(&rel_text);
        let included = filter.include.is_empty() || filter.include.matches(&rel_text);
        let own = if !ignored && !excluded && included {
            let path = dir.join(child_real.last().map(OsString::as_os_str).unwrap_or_default());
            Some(record(join(&child_display), &child_real, path, &meta)?)
        } else {
            None
        };
        let descend = is_dir
            && (!ignored || hasher.filter.may_include_below(&real_text))
            && (!excluded || filter.exclude.may_include_below(&rel_text));
        children.push((own, descend.then_some((child_display, child_real, child_relative))));
    }
    let subdirs = children.iter().filter(|(_, sub)| sub.is_some()).count();
    // The top level of a selection walks its subdirectories on several threads (the walk is
    // bound by `lstat` calls); deeper levels, and small trees, stay on one.
    let threads = if relative.is_empty() { hasher.threads.min(subdirs) } else { 1 };
    if threads < 2 {
        for (own, sub) in children {
            records.extend(own);
            if let Some((child_display, child_real, child_relative)) = sub {
                walk_dir(hasher, filter, &child_display, &child_real, &child_relative, records)?;
            }
        }
        return Ok(());
    }
    // (display, real, relative) path components of a subdirectory to walk
    type SubdirPaths = (Vec<OsString>, Vec<OsString>, Vec<OsString>);
    let jobs: Vec<(usize, &SubdirPaths)> =
        children.iter().enumerate().filter_map(|(i, (_, sub))| sub.as_ref().map(|sub| (i, sub))).collect();
    let chunk = jobs.len().div_ceil(threads);
    type Subtrees = Vec<(usize, Vec<Record>)>;
    let results: Vec<Result<Subtrees, ContentHashError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut done = Vec::with_capacity(part.len());
                    for (i, (child_display, child_real, child_relative)) in part {
                        let mut sub = Vec::new();
                        walk_dir(hasher, filter, child_display, child_real, child_relative, &mut sub)?;
                        done.push((*i, sub));
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut subtrees: Vec<Option<Vec<Record>>> = (0..children.len()).map(|_| None).collect();
    for result in results {
        for (i, sub) in result? {
            subtrees[i] = Some(sub);
        }
    }
    for ((own, _), sub) in children.into_iter().zip(subtrees) {
        records.extend(own);
        records.extend(sub.unwrap_or_default());
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<[u8; 32], ContentHashError> {
    let mut file = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Content digests of the records' files (from the cache or read, in parallel).
pub(super) fn hash_contents(
    hasher: &ContentHasher,
    records: &[Record],
) -> Result<Vec<Option<[u8; 32]>>, ContentHashError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(i64::MAX);
    let mut out = vec![None; records.len()];
    let mut pending = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if let Some((_, key, stamp)) = &rec.file {
            match hasher.cache.get(key, stamp) {
                Some(digest) => out[i] = Some(digest),
                None => pending.push(i),
            }
        }
    }
    if pending.is_empty() {
        return Ok(out);
    }
    let threads = hasher.threads.min(pending.len().div_ceil(64)).max(1);
    let chunk = pending.len().div_ceil(threads);
    type Hashed = Vec<(usize, [u8; 32])>;
    let results: Vec<Result<Hashed, ContentHashError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut done = Vec::with_capacity(part.len());
                    for &i in part {
                        if let Some((path, key, stamp)) = &records[i].file {
                            let digest = hash_file(path)?;
                            // A file changed within the last seconds may change again within
                            // the same timestamp granularity: do not trust its stamp later.
                            if stamp.mtime.0 < now - hasher.racy_secs
                                && stamp.ctime.0 < now - hasher.racy_secs
                            {
                                hasher.cache.insert(key.clone(), *stamp, digest);
                            }
                            done.push((i, digest));
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    for result in results {
        for (i, digest) in result? {
            out[i] = Some(digest);
        }
    }
    Ok(out)
}

/// The selection digest.
pub(super) fn combine(records: &[Record], contents: &[Option<[u8; 32]>], selection: &Selection) -> Digest {
    let mut h = Sha256::new();
    h.update(b"kiln-contenthash-v1\0");
    for (rec, content) in records.iter().zip(contents) {
        h.update((rec.name.len() as u32).to_le_bytes());
        h.update(&rec.name);
        h.update([rec.kind]);
        if selection.include_mode {
            h.update(rec.mode.to_le_bytes());
        }
        if selection.include_owner {
            h.update(rec.uid.to_le_bytes());
            h.update(rec.gid.to_le_bytes());
        }
        h.update((rec.link.len() as u32).to_le_bytes());
        h.update(&rec.link);
        h.update(rec.rdev.to_le_bytes());
        if let Some(digest) = content {
            h.update(digest);
        }
    }
    let hex = hex::encode(h.finalize());
    cache::parse_digest(&format!("sha256:{hex}")).unwrap_or_else(|_| cache::sha256_digest(hex.as_bytes()))
}

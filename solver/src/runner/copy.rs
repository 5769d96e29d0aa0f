//! The copy action (`COPY`, `ADD`): source selection (paths, globs, excludes) confined to the
//! source root, docker's destination rules, `--chown`/`--chmod`/`--parents`, and archive
//! extraction for `ADD`.
//!
//! BuildKit's rules (fsutil `copy.Copy`): directories the copy creates on the way, including a
//! directory copy's destination, get 0755 (or an octal `--chmod`) and root (or the `--chown`
//! owner), and an existing destination directory is left as it is; `--exclude` and the
//! `--parents` include patterns apply below each selected source; a directory that only leads
//! to included entries is created when the first of them is copied; a followed symlink keeps
//! its own name; a socket becomes an empty file; archive entries keep their owners unless `--chown` is given.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cache::Store;
use cache::safefs::Root;
use oci_spec::image::Descriptor;
use tokio_util::sync::CancellationToken;

use super::fileop::{FileOpError, io_err, mkdir_all, set_meta, set_mtime};
use super::fsutil::resolve_in_root;
use super::reuse::{Reuse, Wanted, copy_file};
use super::{RunnerError, source};
use crate::contenthash::PatternMatcher;
use crate::contenthash::ignore::{Pattern, has_wildcards};
use crate::graph::{Chmod, CopyAction};

/// Where copied files come from.
#[derive(Debug)]
pub(crate) struct SourceRoot {
    root: Root,
    /// `.dockerignore` of a local directory (paths relative to the root).
    ignore: PatternMatcher,
    /// Client files are owned by root in the image (docker's behaviour).
    root_owned: bool,
}

impl SourceRoot {
    pub(crate) fn new(
        path: PathBuf,
        excludes: &[String],
        root_owned: bool,
    ) -> Result<SourceRoot, RunnerError> {
        let ignore = PatternMatcher::new(excludes).map_err(FileOpError::from)?;
        Ok(SourceRoot { root: Root::open(&path)?, ignore, root_owned })
    }
}

/// Writes a downloaded blob into `dir` under its file name and mode.
pub(crate) fn materialize_blob(
    store: &Store,
    descriptor: &Descriptor,
    dir: &Path,
) -> Result<(), RunnerError> {
    let name = source::blob_filename(descriptor);
    let dest = dir.join(&name);
    let blob = store.content().blob_path(descriptor.digest())?;
    std::fs::copy(&blob, &dest).map_err(RunnerError::io("copy", &dest))?;
    // Last-Modified, else the epoch (BuildKit's HTTP source)
    let mtime = source::blob_mtime(descriptor).unwrap_or(0);
    set_meta(&dest, Some(source::blob_mode(descriptor)), Some((0, 0)), Some(mtime))?;
    Ok(())
}

/// Expands a wildcard path inside `root`: (host path, in-root path) of every match, sorted.
pub(crate) fn expand_glob(
    root: &Root,
    pattern: &str,
    follow_last: bool,
) -> Result<Vec<(PathBuf, PathBuf)>, FileOpError> {
    let mut current = vec![PathBuf::from("/")];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for part in &parts {
        let pattern = if has_wildcards(part) { Some(Pattern::component(part)?) } else { None };
        let mut next = Vec::new();
        for dir in &current {
            if let Some(pattern) = &pattern {
                let (host, inner) =
                    resolve_in_root(root, &dir.to_string_lossy(), true).map_err(io_err("resolve", dir))?;
                let Ok(entries) = std::fs::read_dir(&host) else { continue };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    if pattern.matches(&name) {
                        next.push(inner.join(name));
                    }
                }
            } else {
                next.push(dir.join(part));
            }
        }
        current = next;
    }
    let mut out = Vec::new();
    for inner in current {
        let (host, _) = resolve_in_root(root, &inner.to_string_lossy(), follow_last)
            .map_err(io_err("resolve", &inner))?;
        if std::fs::symlink_metadata(&host).is_ok() {
            // Keep the matched name (not a symlink target's) for the destination.
            out.push((host, inner));
        }
    }
    Ok(out)
}

fn rel_string(inner: &Path) -> String {
    inner.strip_prefix("/").unwrap_or(inner).to_string_lossy().into_owned()
}

#[derive(Clone, Copy)]
struct CopyCtx<'a> {
    action: &'a CopyAction,
    source: &'a SourceRoot,
    dest_root: &'a Root,
    owner: Option<(u32, u32)>,
    /// `--parents` patterns (relative to the selected source): only matching entries, and the
    /// directories leading to them, are copied.
    include: &'a PatternMatcher,
    exclude: &'a PatternMatcher,
    cancel: &'a CancellationToken,
    /// An earlier result of the same copy whose unchanged files are shared instead of copied.
    reuse: Option<&'a Reuse>,
}

/// A source directory that did not match the include patterns: created in the destination
/// only once something below it is copied (BuildKit's delayed parent directories).
struct PendingDir {
    dst_inner: PathBuf,
    meta: std::fs::Metadata,
    created: bool,
}

impl CopyCtx<'_> {
    fn owner_for(&self, meta: &std::fs::Metadata) -> (u32, u32) {
        match self.owner {
            Some(owner) => owner,
            None if self.source.root_owned => (0, 0),
            None => (meta.uid(), meta.gid()),
        }
    }

    fn mode_for(&self, meta: &std::fs::Metadata) -> u32 {
        match &self.action.mode {
            Some(chmod) => chmod.apply(meta.mode(), meta.is_dir()),
            None => meta.mode() & 0o7777,
        }
    }

    fn mtime_for(&self, meta: &std::fs::Metadata) -> i64 {
        self.action.timestamp.unwrap_or(meta.mtime())
    }

    /// Creates (or takes over) the directory at in-root `dst_inner` for the source directory
    /// `meta`; returns its host path and resolved in-root path.
    fn make_dir(&self, dst_inner: &Path) -> Result<(PathBuf, PathBuf), FileOpError> {
        let (dst, dst_resolved) = resolve_in_root(self.dest_root, &dst_inner.to_string_lossy(), true)
            .map_err(io_err("resolve", dst_inner))?;
        if let Some(reuse) = self.reuse {
            reuse.forget(&dst_resolved);
        }
        match std::fs::symlink_metadata(&dst) {
            Ok(e) if e.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(&dst).map_err(io_err("replace", &dst_resolved))?;
                std::fs::create_dir(&dst).map_err(io_err("create directory", &dst_resolved))?;
            }
            Err(_) => std::fs::create_dir(&dst).map_err(io_err("create directory", &dst_resolved))?,
        }
        Ok((dst, dst_resolved))
    }

    /// Creates the pending directories (outermost first) before something below them is copied.
    fn create_pending(&self, pending: &mut [PendingDir]) -> Result<(), FileOpError> {
        for dir in pending.iter_mut().filter(|d| !d.created) {
            self.make_dir(&dir.dst_inner)?;
            dir.created = true;
        }
        Ok(())
    }

    /// Copies the entries of the source directory `src` (in-root `src_inner`, `rel` below the
    /// selected source) into the existing in-root directory `dst_inner`.
    fn copy_children(
        &self,
        src: &Path,
        src_inner: &Path,
        dst_inner: &Path,
        rel: &str,
        pending: &mut Vec<PendingDir>,
    ) -> Result<(), FileOpError> {
        let mut names: Vec<_> = std::fs::read_dir(src)
            .map_err(io_err("read directory", src_inner))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let child_inner = src_inner.join(&name);
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            if self.source.ignore.matches(&rel_string(&child_inner)) || self.exclude.matches(&child_rel) {
                continue;
            }
            self.copy_entry(&src.join(&name), &child_inner, &dst_inner.join(&name), &child_rel, pending)?;
        }
        Ok(())
    }

    /// Copies the source entry at host path `src` (in-root `src_inner`) to the in-root
    /// destination path `dst_inner`; `rel` is its path below the selected source (for
    /// `--exclude` and the `--parents` patterns).
    fn copy_entry(
        &self,
        src: &Path,
        src_inner: &Path,
        dst_inner: &Path,
        rel: &str,
        pending: &mut Vec<PendingDir>,
    ) -> Result<(), FileOpError> {
        if self.cancel.is_cancelled() {
            return Err(FileOpError::Canceled);
        }
        let meta = std::fs::symlink_metadata(src).map_err(io_err("inspect", src_inner))?;
        let included = rel.is_empty() || self.include.is_empty() || self.include.matches(rel);
        if !included {
            if !meta.is_dir() {
                return Ok(());
            }
            pending.push(PendingDir { dst_inner: dst_inner.to_owned(), meta, created: false });
            let result = self.copy_children(src, src_inner, dst_inner, rel, pending);
            let dir = pending.pop();
            result?;
            if let Some(dir) = dir.filter(|d| d.created) {
                let (dst, _) = resolve_in_root(self.dest_root, &dst_inner.to_string_lossy(), true)
                    .map_err(io_err("resolve", dst_inner))?;
                let owner = self.owner_for(&dir.meta);
                set_meta(&dst, Some(self.mode_for(&dir.meta)), Some(owner), Some(self.mtime_for(&dir.meta)))?;
            }
            return Ok(());
        }
        self.create_pending(pending)?;
        let (uid, gid) = self.owner_for(&meta);
        if meta.is_dir() {
            let (dst, dst_resolved) = self.make_dir(dst_inner)?;
            self.copy_children(src, src_inner, &dst_resolved, rel, pending)?;
            set_meta(&dst, Some(self.mode_for(&meta)), Some((uid, gid)), Some(self.mtime_for(&meta)))?;
            return Ok(());
        }
        let (dst, dst_resolved) = resolve_in_root(self.dest_root, &dst_inner.to_string_lossy(), false)
            .map_err(io_err("resolve", dst_inner))?;
        if let Some(reuse) = self.reuse {
            reuse.forget(&dst_resolved);
        }
        if let Ok(e) = std::fs::symlink_metadata(&dst) {
            if e.is_dir() {
                std::fs::remove_dir_all(&dst).map_err(io_err("replace", &dst_resolved))?;
            } else {
                std::fs::remove_file(&dst).map_err(io_err("replace", &dst_resolved))?;
            }
        }
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target = std::fs::read_link(src).map_err(io_err("read link", src_inner))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io_err("create symlink", &dst_resolved))?;
            std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(io_err("chown", &dst_resolved))?;
            return set_mtime(&dst, self.mtime_for(&meta));
        }
        if file_type.is_file() {
            let wanted =
                Wanted { mode: self.mode_for(&meta), owner: (uid, gid), mtime: self.mtime_for(&meta) };
            if self.reuse.is_some_and(|reuse| reuse.note(src, &meta, &dst_resolved, wanted)) {
                // linked from the earlier result once the overlay is unmounted
                return Ok(());
            }
            copy_file(src, &dst).map_err(io_err("copy", &dst_resolved))?;
        } else if file_type.is_socket() {
            // BuildKit copies a socket as an empty regular file
            std::fs::File::create(&dst).map_err(io_err("create", &dst_resolved))?;
        } else {
            let kind = if file_type.is_fifo() {
                nix::sys::stat::SFlag::S_IFIFO
            } else if file_type.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(&dst, kind, nix::sys::stat::Mode::from_bits_truncate(0o600), meta.rdev())
                .map_err(|errno| FileOpError::Io {
                op: "create",
                path: dst_resolved.clone(),
                source: errno.into(),
            })?;
        }
        set_meta(&dst, Some(self.mode_for(&meta)), Some((uid, gid)), Some(self.mtime_for(&meta)))
    }
}

/// Opens a file that may be compressed (any format cache's compression detector knows: gzip,
/// zstd, bzip2, xz) as the uncompressed stream.
fn open_decompressed(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    cache::compress::decompress_any(std::fs::File::open(path)?)
}

/// A tar stream (plain, gzip, zstd, bzip2 or xz) at `path`? (`ADD` extracts those.)
fn is_archive(path: &Path) -> bool {
    let Ok(reader) = open_decompressed(path) else { return false };
    let mut head = Vec::with_capacity(512);
    if reader.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// Extracts the archive `src` into the in-root directory `dest_inner`, created with `dir_mode`
/// and the `--chown` owner when missing. The entries keep the archive's modes; their owners are
/// the archive's, or the `--chown` owner when one is given (current BuildKit re-owns them:
/// testDockerfileAddChownArchive; BuildKit 0.8 kept the archive's owners).
fn extract(ctx: &CopyCtx<'_>, src: &Path, dest_inner: &Path, dir_mode: u32) -> Result<(), FileOpError> {
    let dir = mkdir_all(ctx.dest_root, dest_inner, dir_mode, ctx.owner, ctx.action.timestamp)?;
    let reader = open_decompressed(src).map_err(io_err("read", src))?;
    cache::apply::apply_tar_owned(reader, &dir, cache::apply::ApplyMode::Merge, ctx.owner)
        .map_err(|source| FileOpError::Extract { path: src.to_owned(), source })?;
    Ok(())
}

/// One selected source: host path, resolved in-root path, and the in-root path as named (a
/// followed symlink keeps its own name in the destination).
struct Match {
    host: PathBuf,
    inner: PathBuf,
    named: PathBuf,
}

/// The sources an action selects (wildcards expanded, `.dockerignore` applied).
fn select(action: &CopyAction, source: &SourceRoot) -> Result<Vec<Match>, FileOpError> {
    let root = &source.root;
    if action.allow_wildcard && has_wildcards(&action.src) {
        let found: Vec<Match> = expand_glob(root, &action.src, action.follow_symlinks)?
            .into_iter()
            .filter(|(_, inner)| !source.ignore.matches(&rel_string(inner)))
            .map(|(host, inner)| Match { host, named: inner.clone(), inner })
            .collect();
        if found.is_empty() && !action.allow_empty_wildcard {
            return Err(FileOpError::NoMatch { pattern: action.src.clone() });
        }
        return Ok(found);
    }
    let (host, inner) =
        resolve_in_root(root, &action.src, action.follow_symlinks).map_err(io_err("resolve", &action.src))?;
    let rel = rel_string(&inner);
    let excluded = !rel.is_empty() && source.ignore.matches(&rel);
    if excluded || std::fs::symlink_metadata(&host).is_err() {
        return Err(FileOpError::NotFound { path: action.src.clone(), excluded });
    }
    let named = Path::new("/").join(crate::contenthash::ignore::clean_path(&format!("/{}", action.src)));
    Ok(vec![Match { host, inner, named }])
}

/// `--parents` without wildcards: the named path must exist below the source (BuildKit's
/// required paths).
fn check_required(action: &CopyAction, source: &SourceRoot) -> Result<(), FileOpError> {
    if !action.parents || has_wildcards(&action.src) {
        return Ok(());
    }
    for pattern in &action.include_patterns {
        if has_wildcards(pattern) {
            continue;
        }
        let path = format!("{}/{pattern}", action.src.trim_end_matches('/'));
        let (host, inner) =
            resolve_in_root(&source.root, &path, action.follow_symlinks).map_err(io_err("resolve", &path))?;
        let excluded = source.ignore.matches(&rel_string(&inner));
        if excluded || std::fs::symlink_metadata(&host).is_err() {
            return Err(FileOpError::NotFound { path: path.clone(), excluded });
        }
    }
    Ok(())
}

/// Performs one copy action from `source` into the filesystem at `dest_root`; with `reuse`,
/// regular files an earlier result of the same copy has unchanged are only noted in it (the
/// caller finishes it).
pub(crate) fn copy(
    action: &CopyAction,
    source: &SourceRoot,
    dest_root: &Root,
    cancel: &CancellationToken,
    reuse: Option<&Reuse>,
) -> Result<(), RunnerError> {
    let owner = match &action.owner {
        Some(chown) => Some(super::fileop::resolve_owner(dest_root, chown)?),
        None => None,
    };
    let mut exclude_patterns = action.exclude_patterns.clone();
    exclude_patterns.retain(|p| !p.is_empty());
    let exclude = PatternMatcher::new(&exclude_patterns).map_err(FileOpError::from)?;
    let include = PatternMatcher::new(&action.include_patterns).map_err(FileOpError::from)?;
    let reuse = reuse.filter(|_| !action.attempt_unpack_archive);
    let ctx =
        CopyCtx { action, source, dest_root, owner, include: &include, exclude: &exclude, cancel, reuse };
    check_required(action, source)?;
    let matches = select(action, source)?;
    // Directories the copy creates on the way: the `--chmod` octal mode or 0755, the `--chown`
    // owner or root (BuildKit).
    let dir_mode = action.mode.as_ref().and_then(Chmod::octal).unwrap_or(0o755);
    let dest_is_dir_hint = action.dest.ends_with('/') || matches.len() > 1 || action.parents;
    let (dest_host, dest_inner) =
        resolve_in_root(dest_root, &action.dest, true).map_err(io_err("resolve", &action.dest))?;
    let dest_is_dir = dest_is_dir_hint || dest_host.is_dir();
    if action.create_dest_path || dest_is_dir {
        let parent_dir = if dest_is_dir {
            dest_inner.clone()
        } else {
            dest_inner.parent().unwrap_or(Path::new("/")).to_owned()
        };
        mkdir_all(dest_root, &parent_dir, dir_mode, owner, action.timestamp)?;
    }
    for found in matches {
        let Match { host, inner, named } = found;
        let meta = std::fs::symlink_metadata(&host).map_err(io_err("inspect", &inner))?;
        let contents_only = meta.is_dir() && (action.copy_dir_contents || action.parents);
        let target = if contents_only {
            dest_inner.clone()
        } else if dest_is_dir {
            match named.file_name() {
                Some(name) => dest_inner.join(name),
                None => dest_inner.clone(),
            }
        } else {
            dest_inner.clone()
        };
        if meta.is_file() && action.attempt_unpack_archive && is_archive(&host) {
            extract(&ctx, &host, &dest_inner, dir_mode)?;
            continue;
        }
        let mut pending = Vec::new();
        if contents_only {
            // The destination directory keeps its metadata when it exists, and is created
            // like the other directories on the way when it does not (not with the source
            // directory's owner and mode).
            mkdir_all(dest_root, &target, dir_mode, owner, action.timestamp)?;
            ctx.copy_children(&host, &inner, &target, "", &mut pending)?;
        } else {
            ctx.copy_entry(&host, &inner, &target, "", &mut pending)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                if path.symlink_metadata().unwrap().is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn parents_copy_only_what_the_patterns_select() {
        let src = tempfile::tempdir().unwrap();
        for file in ["a/b/f.txt", "a/b/g.txt", "a/c/h.go", "a/d/i.go", "top.txt", "x/y/z.go"] {
            let path = src.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        let root = SourceRoot::new(src.path().to_owned(), &["a/d".to_owned()], true).unwrap();
        let cases: &[(&str, &str, &[&str])] = &[
            ("/", "a/b/f.txt", &["a", "a/b", "a/b/f.txt"]),
            ("/", "a/*/*.go", &["a", "a/c", "a/c/h.go"]),
            ("/", "**/*.go", &["a", "a/c", "a/c/h.go", "x", "x/y", "x/y/z.go"]),
            ("/a", "b", &["b", "b/f.txt", "b/g.txt"]),
        ];
        for (from, pattern, want) in cases {
            let dest = tempfile::tempdir().unwrap();
            let mut action = CopyAction::new(0, *from, "/out/");
            action.parents = true;
            action.copy_dir_contents = true;
            action.create_dest_path = true;
            action.follow_symlinks = true;
            action.include_patterns = vec![(*pattern).to_owned()];
            copy(&action, &root, &Root::open(dest.path()).unwrap(), &CancellationToken::new(), None).unwrap();
            assert_eq!(tree(&dest.path().join("out")), *want, "{from} {pattern}");
        }
        // a named path that does not exist fails
        let dest = tempfile::tempdir().unwrap();
        let mut action = CopyAction::new(0, "/", "/out/");
        action.parents = true;
        action.include_patterns = vec!["a/nope".to_owned()];
        assert!(
            copy(&action, &root, &Root::open(dest.path()).unwrap(), &CancellationToken::new(), None).is_err()
        );
    }

    #[test]
    fn expand_glob_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "").unwrap();
        std::fs::write(dir.path().join("src/b.rs"), "").unwrap();
        std::fs::write(dir.path().join("src/c.txt"), "").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("up")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let found = expand_glob(&root, "src/*.rs", false).unwrap();
        let names: Vec<_> = found.iter().map(|(_, inner)| inner.clone()).collect();
        assert_eq!(names, vec![PathBuf::from("/src/a.rs"), PathBuf::from("/src/b.rs")]);
        let found = expand_glob(&root, "up/src/*.txt", false).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].0.starts_with(dir.path()));
    }
}

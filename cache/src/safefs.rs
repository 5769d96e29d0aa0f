//! Path handling that never leaves a root directory: lexical normalisation of archive paths,
//! resolution with `openat2(RESOLVE_IN_ROOT)` (symlinks are resolved as if the root were `/`, so
//! `..` and absolute links stay inside), and `*at` helpers relative to directory descriptors.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, XattrFlags};

use crate::error::{EntryProblem, Error, Result};

/// A path inside a root, as normal components (no `.`, `..`, or empty components).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<OsString>);

impl RelPath {
    /// Normalises an archive entry name: strips `./` and trailing slashes; refuses `..`,
    /// absolute paths and NUL bytes. The empty path means the root itself.
    pub fn from_archive(name: &[u8]) -> Result<RelPath, EntryProblem> {
        if name.contains(&0) {
            return Err(EntryProblem::Nul);
        }
        if name.first() == Some(&b'/') {
            return Err(EntryProblem::Absolute);
        }
        let mut parts = Vec::new();
        for part in name.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(EntryProblem::ParentComponent),
                other => parts.push(OsStr::from_bytes(other).to_owned()),
            }
        }
        Ok(RelPath(parts))
    }

    pub fn components(&self) -> &[OsString] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// (parent, last component); `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &OsStr)> {
        let (last, parent) = self.0.split_last()?;
        Some((RelPath(parent.to_vec()), last.as_os_str()))
    }

    pub fn join(&self, name: &OsStr) -> RelPath {
        let mut parts = self.0.clone();
        parts.push(name.to_owned());
        RelPath(parts)
    }

    /// The path as a relative `PathBuf` (`.` for the root).
    pub fn to_path(&self) -> PathBuf {
        if self.0.is_empty() {
            return PathBuf::from(".");
        }
        self.0.iter().collect()
    }

    /// Display form for errors.
    pub fn display(&self) -> String {
        self.to_path().display().to_string()
    }
}

/// An open root directory inside which every path is resolved.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno_io(err: rustix::io::Errno) -> io::Error {
    io::Error::from(err)
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open directory", path, errno_io(e)))?;
        Ok(Root { fd, path: path.to_owned() })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` (resolved in the root), without creating anything.
    pub fn open_dir(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        if rel.is_root() {
            return rustix::fs::openat(
                &self.fd,
                ".",
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno_io);
        }
        rustix::fs::openat2(
            &self.fd,
            rel.to_path(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno_io)
    }

    /// The host path of `rel` (the root's own path for the root).
    pub fn host_path(&self, rel: &RelPath) -> PathBuf {
        let mut path = self.path.clone();
        path.extend(rel.components());
        path
    }

    /// Resolves `path` (absolute or relative, as seen inside the root) to the path it names in
    /// the root, following symlinks as if the root were `/`: absolute targets and `..` stay
    /// inside. The last component is followed only when `follow_last`. Components that do not
    /// exist (or lie below a non-directory) are kept as named, so the result can name something
    /// about to be created; a dangling symlink is followed to where its target would be.
    ///
    /// Every lookup is one component below an already resolved directory, made with
    /// `openat2(RESOLVE_IN_ROOT)` without following it; symlinks are read and their targets
    /// resolved here (at most 40 hops, then `ELOOP`).
    pub fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<RelPath> {
        const MAX_SYMLINKS: usize = 40;
        let mut pending: Vec<OsString> = lexical_parts(path.as_os_str().as_bytes());
        pending.reverse();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            let is_last = pending.is_empty();
            resolved.push(part);
            let candidate: PathBuf = resolved.iter().collect();
            let fd = match rustix::fs::openat2(
                &self.fd,
                &candidate,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => continue,
                Err(err) => return Err(errno_io(err)),
            };
            let stat = rustix::fs::fstat(&fd).map_err(errno_io)?;
            if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink || (is_last && !follow_last) {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()));
            }
            let target = rustix::fs::readlinkat(&fd, c"", Vec::new()).map_err(errno_io)?;
            resolved.pop();
            let target = target.as_bytes();
            if target.first() == Some(&b'/') {
                resolved.clear();
            }
            let mut parts = lexical_parts(target);
            parts.reverse();
            pending.extend(parts);
        }
        Ok(RelPath(resolved))
    }

    /// Opens the directory `rel`, creating missing components (mode 0755, owned by the caller)
    /// like docker does for archive entries whose parents are not in the archive. A non-directory
    /// in the way is an error, never replaced.
    pub fn ensure_dir(&self, rel: &RelPath, entry: &str) -> Result<OwnedFd> {
        match self.open_dir(rel) {
            Ok(fd) => return Ok(fd),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(resolve_error(entry, rel, err)),
        }
        let mut current = RelPath(Vec::new());
        let mut fd = self.open_dir(&current).map_err(|e| resolve_error(entry, &current, e))?;
        for part in rel.components() {
            let next = current.join(part);
            match self.open_dir(&next) {
                Ok(next_fd) => fd = next_fd,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    // `fd` is the resolved parent; a dangling symlink named `part` would make
                    // mkdirat fail with EEXIST, which we report.
                    rustix::fs::mkdirat(&fd, part.as_os_str(), Mode::from_raw_mode(0o755)).map_err(|e| {
                        Error::EntryIo {
                            entry: entry.to_owned(),
                            op: "create parent directory",
                            source: errno_io(e),
                        }
                    })?;
                    fd = self.open_dir(&next).map_err(|e| resolve_error(entry, &next, e))?;
                }
                Err(err) => return Err(resolve_error(entry, &next, err)),
            }
            current = next;
        }
        Ok(fd)
    }
}

/// The components of a slash path that are names or `..` (`/`, `.` and empty ones dropped).
fn lexical_parts(path: &[u8]) -> Vec<OsString> {
    path.split(|b| *b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(|part| OsStr::from_bytes(part).to_owned())
        .collect()
}

fn resolve_error(entry: &str, rel: &RelPath, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
            Error::entry(entry, EntryProblem::SymlinkLoop)
        }
        Some(code) if code == rustix::io::Errno::NOTDIR.raw_os_error() => {
            Error::entry(entry, EntryProblem::ParentNotDirectory(rel.display()))
        }
        _ => Error::EntryIo { entry: entry.to_owned(), op: "resolve parent directory", source: err },
    }
}

/// lstat of `name` in `dir`; `None` if missing.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(err) => Err(errno_io(err)),
    }
}

/// Removes `name` in `dir`, recursively for directories, never following symlinks.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(stat) = lstat_at(dir, name)? else { return Ok(()) };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        for child in list_dir(sub.as_fd())? {
            remove_all_at(sub.as_fd(), &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno_io)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno_io)
    }
}

/// Names in a directory (without `.` and `..`).
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir).map_err(errno_io)? {
        let entry = entry.map_err(errno_io)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(names)
}

/// `/proc/self/fd/<dir>/<name>`: a path whose parent is exactly `dir` (no re-resolution of
/// ancestors), for the `l*xattr` calls that have no `*at` form.
pub fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    if !name.is_empty() {
        path.push(name);
    }
    path
}

/// Sets an xattr on `name` in `dir` without following a final symlink.
/// An empty `name` means `dir` itself.
pub fn set_xattr_at(dir: BorrowedFd<'_>, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
    if name.is_empty() {
        return rustix::fs::fsetxattr(dir, key, value, XattrFlags::empty()).map_err(errno_io);
    }
    rustix::fs::lsetxattr(proc_path(dir, name), key, value, XattrFlags::empty()).map_err(errno_io)
}

/// All xattrs of `path` (not following a final symlink), as (name, value).
pub fn list_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 64 * 1024];
    let len = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(err) => return Err(errno_io(err)),
    };
    let mut out = Vec::new();
    for key in names[..len].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let Ok(key) = std::str::from_utf8(key) else { continue };
        if let Some(value) = get_xattr(path, key)? {
            out.push((key.to_owned(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of `path` (not following a final symlink); `None` if absent.
pub fn get_xattr(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; 64 * 1024];
    match rustix::fs::lgetxattr(path, key, &mut value[..]) {
        Ok(len) => {
            value.truncate(len);
            Ok(Some(value))
        }
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => Ok(None),
        Err(err) => Err(errno_io(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let ok = [("a/b", "a/b"), ("./a/b/", "a/b"), ("a//b/./c", "a/b/c"), ("./", "."), ("", ".")];
        for (input, want) in ok {
            assert_eq!(RelPath::from_archive(input.as_bytes()).unwrap().display(), want, "{input}");
        }
        let bad =
            [("../etc/passwd", "`..`"), ("a/../../b", "`..`"), ("a/..", "`..`"), ("/etc/passwd", "absolute")];
        for (input, want) in bad {
            let err = RelPath::from_archive(input.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::create_dir(base.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", base.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("b", base.join("a/rel")).unwrap();
        std::os::unix::fs::symlink("/nowhere/file", base.join("dangling")).unwrap();
        std::fs::write(base.join("plain"), "").unwrap();
        let root = Root::open(base).unwrap();
        let resolve = |path: &str, follow: bool| root.resolve(Path::new(path), follow).unwrap().display();
        let cases = [
            ("/a/abs/passwd", true, "etc/passwd"),
            ("a/b/up/etc", true, "etc"),
            ("a/rel/x", true, "a/b/x"),
            ("a/rel", false, "a/rel"),
            ("a/rel", true, "a/b"),
            ("../../x", true, "x"),
            ("/", true, "."),
            ("a/missing/../rel/y", true, "a/b/y"),
            ("dangling", true, "nowhere/file"),
            ("dangling", false, "dangling"),
            ("plain/below", true, "plain/below"),
        ];
        for (path, follow, want) in cases {
            assert_eq!(resolve(path, follow), want, "{path} (follow: {follow})");
        }
        assert_eq!(root.host_path(&root.resolve(Path::new("a/rel"), true).unwrap()), base.join("a/b"));
        assert_eq!(root.host_path(&root.resolve(Path::new("/"), true).unwrap()), base);
    }

    #[test]
    fn resolve_refuses_symlink_loops() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let err = root.resolve(Path::new("/loop/x"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::LOOP.raw_os_error()));
        // the link itself, not followed, is fine
        assert_eq!(root.resolve(Path::new("loop"), false).unwrap().display(), "loop");
    }

    #[test]
    fn ensure_dir_stays_inside_through_absolute_symlink() {
        let root_dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("link")).unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        let rel = RelPath::from_archive(b"link/sub").unwrap();
        // `link` points at an absolute path that does not exist inside the root
        let err = root.ensure_dir(&rel, "link/sub/file");
        assert!(err.is_err() || !outside.path().join("sub").exists());
        assert!(!outside.path().join("sub").exists());
    }
}

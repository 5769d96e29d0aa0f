//! Sharing unchanged files with an earlier result of the same copy (issue 16: one edited file
//! in a 5 000-file `COPY . /app` used to re-create all 5 000 files).
//!
//! A file op that is a single `COPY` remembers its result snapshot under a key made of the
//! action and the parent chain ([`Snapshots::remember_latest`]). The next run of the same
//! action over the same parent finds that snapshot, whose tree is the earlier copy's overlay
//! upperdir: the same in-root paths the copy writes. While copying through the overlay, a
//! regular file whose earlier copy has the same content and the same metadata (type, size,
//! mode, owner, mtime, no xattrs) is not written; it is noted, and once the overlay is
//! unmounted the earlier file is hard-linked into the new upperdir at that path.
//!
//! Why that gives the result a full copy gives:
//! - a shared inode is never written: only files whose content and metadata are already what
//!   the copy would write are shared, nothing is applied to them afterwards, and snapshots are
//!   read-only (overlay lowers; a later write copies up);
//! - every inode is shared at most once per result, so the layer tar, which emits link
//!   entries only for an inode seen twice in the same layer, still lists each file as a regular
//!   file (`nlink > 1` from other snapshots does not matter to it);
//! - the overlay-side effects a write would have had are kept: an existing entry at the path is
//!   still removed through the overlay (its whiteout is replaced by the link), a lower parent
//!   directory is still copied up (by creating and removing a probe file in it), and the
//!   parents' times are restored after linking, as they were when the copy finished;
//! - a later entry of the same copy at a noted path (or below it) cancels the note;
//! - when linking fails (the earlier snapshot was collected meanwhile) the file is copied from
//!   its source after all.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cache::Store;
use cache::safefs::Root;
use oci_spec::image::Digest;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use super::fileop::{FileOpError, io_err, set_meta};
use super::fsutil::resolve_in_root;
use crate::graph::FileAction;

/// Name prefix of the probe file that makes overlayfs copy a lower directory up.
const PROBE: &str = ".kiln-copy-up-probe";

/// The hint key of a file op over the chain `parent`, when the op can share files with an
/// earlier result: a single copy that does not unpack archives.
pub(crate) fn reuse_key(actions: &[FileAction], parent: Option<&Digest>) -> Option<Digest> {
    let [FileAction::Copy(action)] = actions else { return None };
    if action.attempt_unpack_archive {
        return None;
    }
    let encoded = serde_json::to_vec(action).ok()?;
    let mut hasher = Sha256::new();
    hasher.update(b"kiln copy reuse v1\0");
    hasher.update(parent.map(|p| p.to_string()).unwrap_or_default().as_bytes());
    hasher.update(b"\0");
    hasher.update(&encoded);
    cache::parse_digest(&format!("sha256:{}", hex::encode(hasher.finalize()))).ok()
}

/// What the copy would write at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub mode: u32,
    pub owner: (u32, u32),
    pub mtime: i64,
}

/// A file noted for sharing.
#[derive(Debug)]
struct Noted {
    /// The source file (copied from after all when linking fails).
    source: PathBuf,
    wanted: Wanted,
    /// (dev, ino) of the earlier file, checked again after linking.
    inode: (u64, u64),
}

#[derive(Debug, Default)]
struct State {
    /// In-root path → noted file.
    files: BTreeMap<PathBuf, Noted>,
    /// Inodes already noted (each is shared once per result).
    inodes: HashSet<(u64, u64)>,
}

/// An earlier result of the same copy and the files noted for sharing with it.
#[derive(Debug)]
pub(crate) struct Reuse {
    earlier_path: PathBuf,
    earlier: OwnedFd,
    state: RefCell<State>,
}

impl Reuse {
    /// The earlier result remembered for `key` over `parent`, if there is one.
    pub(crate) fn find(store: &Store, key: &Digest, parent: Option<&Digest>) -> Option<Reuse> {
        let (path, _) = store.snapshots().latest(key, parent)?;
        let earlier =
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .ok()?;
        Some(Reuse { earlier_path: path, earlier, state: RefCell::default() })
    }

    /// Notes the regular file `source` (metadata `meta`) for the in-root path `dest_inner` when
    /// the earlier result has it with the same content and `wanted` metadata; false when it
    /// must be copied.
    pub(crate) fn note(
        &self,
        source: &Path,
        meta: &std::fs::Metadata,
        dest_inner: &Path,
        wanted: Wanted,
    ) -> bool {
        let Some(inode) = self.matching(source, meta, dest_inner, wanted) else { return false };
        let mut state = self.state.borrow_mut();
        if !state.inodes.insert(inode) {
            return false;
        }
        state.files.insert(dest_inner.to_owned(), Noted { source: source.to_owned(), wanted, inode });
        true
    }

    /// (dev, ino) of the earlier file at `dest_inner` if it is what the copy would write.
    fn matching(
        &self,
        source: &Path,
        meta: &std::fs::Metadata,
        dest_inner: &Path,
        wanted: Wanted,
    ) -> Option<(u64, u64)> {
        let rel = dest_inner.strip_prefix("/").ok()?;
        let fd = rustix::fs::openat2(
            &self.earlier,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
        .ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        let same = rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
            && stat.st_size as u64 == meta.len()
            && stat.st_mode & 0o7777 == wanted.mode & 0o7777
            && (stat.st_uid, stat.st_gid) == wanted.owner
            && stat.st_mtime as i64 == wanted.mtime
            && stat.st_mtime_nsec == 0
            && rustix::fs::flistxattr_query(&fd).ok()? == 0;
        if !same {
            return None;
        }
        let source_file = std::fs::File::open(source).ok()?;
        same_content(source_file, std::fs::File::from(fd), meta.len())
            .then_some((stat.st_dev as u64, stat.st_ino as u64))
    }

    /// Cancels the notes for `dest_inner` and everything below it (the copy writes there).
    pub(crate) fn forget(&self, dest_inner: &Path) {
        let mut state = self.state.borrow_mut();
        if state.files.is_empty() {
            return;
        }
        let gone: Vec<PathBuf> = state
            .files
            .range(dest_inner.to_owned()..)
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dest_inner))
            .cloned()
            .collect();
        for path in gone {
            state.files.remove(&path);
        }
    }

    /// Before the overlay at `root` (upperdir `upper`) is unmounted: copies up every parent
    /// directory of a noted file that is not in the upperdir yet, as writing the file would
    /// have (a probe file is created and removed in it).
    pub(crate) fn prepare(&self, root: &Root, upper: &Path) -> Result<(), FileOpError> {
        let state = self.state.borrow();
        let parents: HashSet<&Path> = state.files.keys().filter_map(|path| path.parent()).collect();
        for parent in parents {
            let rel = parent.strip_prefix("/").unwrap_or(parent);
            if upper.join(rel).is_dir() {
                continue;
            }
            let (host, resolved) =
                resolve_in_root(root, &parent.to_string_lossy(), true).map_err(io_err("resolve", parent))?;
            copy_up(&host, &resolved)?;
        }
        Ok(())
    }

    /// After the overlay is unmounted: links the noted files into the upperdir `upper` (copying
    /// from the source when that fails) and restores their parents' times. Returns how many
    /// files were shared.
    pub(crate) fn finish(&self, upper: &Path) -> Result<usize, FileOpError> {
        let state = self.state.take();
        let mut by_parent: HashMap<PathBuf, Vec<(PathBuf, Noted)>> = HashMap::new();
        for (path, noted) in state.files {
            let rel = path.strip_prefix("/").unwrap_or(&path).to_owned();
            let parent = rel.parent().unwrap_or(Path::new("")).to_owned();
            by_parent.entry(parent).or_default().push((rel, noted));
        }
        let mut shared = 0;
        for (parent, files) in by_parent {
            let parent_host = upper.join(&parent);
            let times = std::fs::symlink_metadata(&parent_host).map_err(io_err("inspect", &parent_host))?;
            if !times.is_dir() {
                return Err(io_err("share files into", &parent_host)(std::io::Error::other(
                    "not a directory",
                )));
            }
            for (rel, noted) in files {
                let dest = upper.join(&rel);
                if self.link(&rel, &dest, noted.inode)? {
                    shared += 1;
                    continue;
                }
                copy_file(&noted.source, &dest).map_err(io_err("copy", Path::new("/").join(&rel)))?;
                let wanted = noted.wanted;
                set_meta(&dest, Some(wanted.mode), Some(wanted.owner), Some(wanted.mtime))?;
            }
            let atime = nix::sys::time::TimeSpec::new(times.atime(), times.atime_nsec());
            let mtime = nix::sys::time::TimeSpec::new(times.mtime(), times.mtime_nsec());
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &parent_host,
                &atime,
                &mtime,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|errno| FileOpError::Io {
                op: "set times of",
                path: parent_host.clone(),
                source: errno.into(),
            })?;
        }
        Ok(shared)
    }

    /// Links the earlier file `rel` to `dest` (replacing a whiteout or file there); false when
    /// the earlier file is gone or is no longer the inode that was compared.
    fn link(&self, rel: &Path, dest: &Path, inode: (u64, u64)) -> Result<bool, FileOpError> {
        match std::fs::symlink_metadata(dest) {
            Ok(meta) if meta.is_dir() => {
                return Err(io_err("share file", dest)(std::io::Error::other("a directory is in the way")));
            }
            Ok(_) => std::fs::remove_file(dest).map_err(io_err("replace", dest))?,
            Err(_) => {}
        }
        if std::fs::hard_link(self.earlier_path.join(rel), dest).is_err() {
            return Ok(false);
        }
        match std::fs::symlink_metadata(dest) {
            Ok(meta) if (meta.dev(), meta.ino()) == inode => Ok(true),
            _ => {
                std::fs::remove_file(dest).map_err(io_err("replace", dest))?;
                Ok(false)
            }
        }
    }
}

/// Makes overlayfs copy the merged directory `host` (in-root `resolved`) up, as creating a
/// file in it does: a probe file of a name not in use is created and removed (never an
/// existing file, which `create_new` leaves alone).
fn copy_up(host: &Path, resolved: &Path) -> Result<(), FileOpError> {
    for attempt in 0u32.. {
        let name = format!("{PROBE}-{}-{attempt}", std::process::id());
        let probe = host.join(&name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => return std::fs::remove_file(&probe).map_err(io_err("remove", resolved.join(&name))),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {}
            Err(err) => return Err(io_err("create", resolved.join(&name))(err)),
        }
    }
    Ok(())
}

/// True when the two files hold the same `len` bytes.
fn same_content(mut a: std::fs::File, mut b: std::fs::File, len: u64) -> bool {
    let mut buf_a = vec![0u8; len.clamp(1, 64 * 1024) as usize];
    let mut buf_b = vec![0u8; buf_a.len()];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf_a.len() as u64) as usize;
        if a.read_exact(&mut buf_a[..want]).is_err() || b.read_exact(&mut buf_b[..want]).is_err() {
            return false;
        }
        if buf_a[..want] != buf_b[..want] {
            return false;
        }
        left -= want as u64;
    }
    // both must end here (neither grew since it was inspected)
    let mut probe = [0u8; 1];
    matches!(a.read(&mut probe), Ok(0)) && matches!(b.read(&mut probe), Ok(0))
}

/// Copies the regular file `source` to the new file `dest` (mode 0600 until the caller sets
/// the metadata) with `sendfile`. Not `std::fs::copy`: its first try, `copy_file_range`, always
/// fails with EXDEV here (the destination is on overlayfs, the source on another filesystem,
/// and since Linux 5.19 `copy_file_range` refuses to cross filesystem types), which cost a
/// failed syscall, plus an fstat and an fchmod, for every file.
pub(crate) fn copy_file(source: &Path, dest: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let input = std::fs::File::open(source)?;
    let output = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dest)?;
    loop {
        match rustix::fs::sendfile(&output, &input, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                // a source sendfile cannot read (e.g. some procfs-like files): plain copy
                let mut input = input;
                let mut output = output;
                std::io::copy(&mut input, &mut output)?;
                return Ok(());
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::CopyAction;

    #[test]
    fn same_content_compares_bytes_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let a = write("a", &vec![7u8; 100_000]);
        let b = write("b", &vec![7u8; 100_000]);
        let mut other = vec![7u8; 100_000];
        other[99_999] = 8;
        let c = write("c", &other);
        let open = |p: &Path| std::fs::File::open(p).unwrap();
        assert!(same_content(open(&a), open(&b), 100_000));
        assert!(!same_content(open(&a), open(&c), 100_000));
        // a file longer than the inspected length differs
        let d = write("d", &vec![7u8; 100_001]);
        assert!(!same_content(open(&a), open(&d), 100_000));
        let e = write("e", b"");
        assert!(same_content(open(&e), open(&write("f", b"")), 0));
    }

    #[test]
    fn copy_file_copies_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("s");
        std::fs::write(&source, vec![3u8; 300_000]).unwrap();
        let dest = dir.path().join("d");
        copy_file(&source, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), vec![3u8; 300_000]);
        assert!(copy_file(&source, &dest).is_err());
    }

    #[test]
    fn the_key_covers_the_action_and_the_parent() {
        let parent = cache::parse_digest(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let copy = |dest: &str| vec![FileAction::Copy(CopyAction::new(1, "/", dest))];
        let key = reuse_key(&copy("/app"), Some(&parent)).unwrap();
        assert_eq!(reuse_key(&copy("/app"), Some(&parent)), Some(key.clone()));
        assert_ne!(reuse_key(&copy("/other"), Some(&parent)), Some(key.clone()));
        assert_ne!(reuse_key(&copy("/app"), None), Some(key));
        let mut add = CopyAction::new(1, "/", "/app");
        add.attempt_unpack_archive = true;
        assert_eq!(reuse_key(&[FileAction::Copy(add)], None), None);
        let two = [copy("/a").remove(0), copy("/b").remove(0)];
        assert_eq!(reuse_key(&two, None), None);
    }
}

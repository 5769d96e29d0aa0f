//! Applying a layer tar to a directory, treating every entry as hostile.
//!
//! Every path is resolved inside the destination with `openat2(RESOLVE_IN_ROOT)` and created with
//! `*at` calls relative to the resolved parent, so nothing is ever created outside it, whatever
//! `..`, absolute names, symlinks or hardlinks the archive contains. Names with a `..` component
//! and absolute names are refused outright (the error names the entry).
//!
//! Device nodes (character and block) are created as the archive says, like containerd does
//! when it runs as root outside a user namespace: a device node in a snapshot is inert until a
//! sandbox's device policy allows it, and `mknodat` under the resolved parent cannot escape. Where
//! `mknod` is not permitted (user namespace, no `CAP_MKNOD`) the node is skipped with a warning,
//! again like containerd. FIFOs are always created.
//!
//! Two modes:
//! - [`ApplyMode::Overlay`]: into an empty per-layer directory used as an overlay lower dir;
//!   `.wh.NAME` becomes a 0/0 character device and `.wh..wh..opq` the `trusted.overlay.opaque=y`
//!   xattr (what overlayfs itself writes in an upperdir).
//! - [`ApplyMode::Merge`]: onto the result of the previous layers (flattening a chain into a plain
//!   directory): whiteouts delete, opaque markers remove what earlier layers put in the directory.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::image::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use tar::EntryType;

use crate::error::{EntryProblem, Error, Result};
use crate::layout::HashingReader;
use crate::safefs::{RelPath, Root, lstat_at, remove_all_at, set_xattr_at};

/// Prefix of whiteout file names in OCI layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker in OCI layers.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr marking an opaque directory.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How whiteouts are applied; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    Overlay,
    Merge,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the whole uncompressed tar stream: the layer's diffID.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Number of entries applied.
    pub entries: u64,
}

/// Applies the (uncompressed) tar stream `tar` to the directory `dest`.
pub fn apply_tar(tar: impl Read, dest: &Path, mode: ApplyMode) -> Result<ApplyStats> {
    apply_tar_owned(tar, dest, mode, None)
}

/// [`apply_tar`], with every entry owned by `owner` (`uid`, `gid`) instead of the archive's
/// owners when it is set (`ADD --chown` of an archive, as current BuildKit).
pub fn apply_tar_owned(
    tar: impl Read,
    dest: &Path,
    mode: ApplyMode,
    owner: Option<(u32, u32)>,
) -> Result<ApplyStats> {
    let root = Root::open(dest)?;
    let mut hashing = HashingReader::new(tar);
    let mut applier =
        Applier { root: &root, mode, owner, written: HashSet::new(), dirs: Vec::new(), entries: 0 };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|source| Error::Tar {
            op: "read",
            what: dest.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Tar {
                op: "read",
                what: dest.display().to_string(),
                source,
            })?;
            applier.apply_entry(entry)?;
        }
    }
    // The rest of the stream (end-of-archive blocks, padding) is part of the diffID.
    io::copy(&mut hashing, &mut io::sink()).map_err(|source| Error::Tar {
        op: "read",
        what: dest.display().to_string(),
        source,
    })?;
    applier.finish_dirs()?;
    let (diff_id, tar_size) = hashing.digest();
    Ok(ApplyStats { diff_id, tar_size, entries: applier.entries })
}

struct Applier<'a> {
    root: &'a Root,
    mode: ApplyMode,
    /// Overrides the archive's owners.
    owner: Option<(u32, u32)>,
    /// Paths this layer wrote (Merge mode: opaque markers keep them).
    written: HashSet<RelPath>,
    /// Directories and their mtimes, set at the end (after their contents).
    dirs: Vec<(RelPath, i64, String)>,
    entries: u64,
}

/// Metadata from a header plus PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel = RelPath::from_archive(&raw_name).map_err(|p| Error::entry(&name, p))?;
        let mut meta = read_meta(&mut entry, &name)?;
        if let Some((uid, gid)) = self.owner {
            (meta.uid, meta.gid) = (uid, gid);
        }
        self.entries += 1;

        let Some((parent, base)) = rel.split_last() else {
            // The root itself ("./"): only a directory makes sense.
            if !kind.is_dir() {
                return Err(Error::entry(
                    &name,
                    EntryProblem::BadHeader("the root entry must be a directory"),
                ));
            }
            let fd = self.root.open_dir(&rel).map_err(|e| entry_io(&name, "open root", e))?;
            set_owner_mode(fd.as_fd(), OsStr::new(""), &meta, &name, true)?;
            self.dirs.push((rel, meta.mtime, name));
            return Ok(());
        };
        let base_bytes = base.as_bytes();

        if base_bytes == OPAQUE_MARKER.as_bytes() {
            return self.opaque(&parent, &name);
        }
        if let Some(target) = base_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if target.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other aufs metadata (`.wh..wh.plnk`, …): not content.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(Error::entry(
                    &name,
                    EntryProblem::BadWhiteout(String::from_utf8_lossy(target).into()),
                ));
            }
            return self.whiteout(&parent, OsStr::from_bytes(target), &meta, &name);
        }

        let parent_fd = self.root.ensure_dir(&parent, &name)?;
        let dir = parent_fd.as_fd();
        let existing = lstat_at(dir, base).map_err(|e| entry_io(&name, "stat", e))?;
        let existing_is_dir =
            existing.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(kind.is_dir() && existing_is_dir) {
            remove_all_at(dir, base).map_err(|e| entry_io(&name, "replace existing entry", e))?;
        }

        match kind {
            EntryType::Directory => {
                if !existing_is_dir {
                    rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(0o700))
                        .map_err(|e| entry_io(&name, "create directory", e.into()))?;
                }
                set_owner_mode(dir, base, &meta, &name, true)?;
                set_xattrs(dir, base, &meta, &name)?;
                self.dirs.push((rel.clone(), meta.mtime, name.clone()));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let file = rustix::fs::openat(
                    dir,
                    base,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| entry_io(&name, "create file", e.into()))?;
                let mut file = std::fs::File::from(file);
                let declared = entry.size();
                let copied = io::copy(&mut entry, &mut file).map_err(|e| entry_io(&name, "write file", e))?;
                if copied != declared {
                    return Err(Error::entry(&name, EntryProblem::Truncated { declared, actual: copied }));
                }
                drop(file);
                set_owner_mode(dir, base, &meta, &name, true)?;
                set_xattrs(dir, base, &meta, &name)?;
                set_mtime(dir, base, meta.mtime, &name)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::entry(&name, EntryProblem::BadHeader("symlink without target")))?
                    .into_owned();
                if target.contains(&0) {
                    return Err(Error::entry(&name, EntryProblem::Nul));
                }
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir, base)
                    .map_err(|e| entry_io(&name, "create symlink", e.into()))?;
                set_owner_mode(dir, base, &meta, &name, false)?;
                set_xattrs(dir, base, &meta, &name)?;
                set_mtime(dir, base, meta.mtime, &name)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::entry(&name, EntryProblem::BadHeader("hardlink without target")))?
                    .into_owned();
                self.hardlink(&target, dir, base, &name)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        let file_type = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (file_type, rustix::fs::makedev(major, minor))
                    }
                };
                match rustix::fs::mknodat(dir, base, file_type, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {}
                    // Not permitted (a user namespace, no CAP_MKNOD): skipped like containerd does.
                    Err(rustix::io::Errno::PERM) if kind != EntryType::Fifo => {
                        tracing::warn!("layer entry {name:?}: device node not created (not permitted)");
                        return Ok(());
                    }
                    Err(e) => return Err(entry_io(&name, "create device node", e.into())),
                }
                set_owner_mode(dir, base, &meta, &name, true)?;
                set_xattrs(dir, base, &meta, &name)?;
                set_mtime(dir, base, meta.mtime, &name)?;
            }
            other => {
                return Err(Error::entry(&name, EntryProblem::UnsupportedType(other.as_byte() as char)));
            }
        }
        if self.mode == ApplyMode::Merge {
            self.written.insert(rel);
        }
        Ok(())
    }

    fn hardlink(&self, target: &[u8], dir: BorrowedFd<'_>, base: &OsStr, name: &str) -> Result<()> {
        let target_rel = RelPath::from_archive(target).map_err(|p| Error::entry(name, p))?;
        let target_name = String::from_utf8_lossy(target).into_owned();
        let Some((target_parent, target_base)) = target_rel.split_last() else {
            return Err(Error::entry(name, EntryProblem::HardlinkToDirectory(target_name)));
        };
        let target_dir = match self.root.open_dir(&target_parent) {
            Ok(fd) => fd,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::entry(name, EntryProblem::HardlinkTargetMissing(target_name)));
            }
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(Error::entry(name, EntryProblem::SymlinkLoop));
            }
            Err(err) => return Err(entry_io(name, "resolve hardlink target", err)),
        };
        match lstat_at(target_dir.as_fd(), target_base)
            .map_err(|e| entry_io(name, "stat hardlink target", e))?
        {
            None => return Err(Error::entry(name, EntryProblem::HardlinkTargetMissing(target_name))),
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(Error::entry(name, EntryProblem::HardlinkToDirectory(target_name)));
            }
            Some(_) => {}
        }
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rustix::fs::linkat(target_dir.as_fd(), target_base, dir, base, AtFlags::empty())
            .map_err(|e| entry_io(name, "create hardlink", e.into()))
    }

    fn whiteout(&mut self, parent: &RelPath, target: &OsStr, meta: &Meta, name: &str) -> Result<()> {
        match self.mode {
            ApplyMode::Overlay => {
                let parent_fd = self.root.ensure_dir(parent, name)?;
                remove_all_at(parent_fd.as_fd(), target)
                    .map_err(|e| entry_io(name, "replace existing entry", e))?;
                rustix::fs::mknodat(
                    parent_fd.as_fd(),
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| entry_io(name, "create whiteout device", e.into()))?;
                set_mtime(parent_fd.as_fd(), target, meta.mtime, name)
            }
            ApplyMode::Merge => {
                let parent_fd = match self.root.open_dir(parent) {
                    Ok(fd) => fd,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(err) => return Err(entry_io(name, "resolve whiteout parent", err)),
                };
                remove_all_at(parent_fd.as_fd(), target)
                    .map_err(|e| entry_io(name, "remove whited-out entry", e))
            }
        }
    }

    fn opaque(&mut self, dir: &RelPath, name: &str) -> Result<()> {
        let fd = self.root.ensure_dir(dir, name)?;
        match self.mode {
            ApplyMode::Overlay => set_xattr_at(fd.as_fd(), OsStr::new(""), OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| entry_io(name, "set the overlay opaque xattr", e)),
            ApplyMode::Merge => {
                let children =
                    crate::safefs::list_dir(fd.as_fd()).map_err(|e| entry_io(name, "list directory", e))?;
                for child in children {
                    if !self.written.contains(&dir.join(&child)) {
                        remove_all_at(fd.as_fd(), &child)
                            .map_err(|e| entry_io(name, "clear opaque directory", e))?;
                    }
                }
                Ok(())
            }
        }
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first is not needed for correctness (a directory's mtime does not change its
        // parent's), but a later duplicate entry for the same directory must win: apply in order.
        for (rel, mtime, name) in std::mem::take(&mut self.dirs) {
            match rel.split_last() {
                Some((parent, base)) => {
                    let fd =
                        self.root.open_dir(&parent).map_err(|e| entry_io(&name, "resolve directory", e))?;
                    set_mtime(fd.as_fd(), base, mtime, &name)?;
                }
                None => {
                    let fd = self.root.open_dir(&rel).map_err(|e| entry_io(&name, "open root", e))?;
                    let times = timestamps(mtime);
                    rustix::fs::futimens(&fd, &times).map_err(|e| entry_io(&name, "set mtime", e.into()))?;
                }
            }
        }
        Ok(())
    }
}

fn entry_io(entry: &str, op: &'static str, source: io::Error) -> Error {
    Error::EntryIo { entry: entry.to_owned(), op, source }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
    let header = entry.header();
    let bad = |what: &'static str| Error::entry(name, EntryProblem::BadHeader(what));
    let mode = header.mode().map_err(|_| bad("mode"))? & 0o7777;
    let mut uid = header.uid().map_err(|_| bad("uid"))?;
    let mut gid = header.gid().map_err(|_| bad("gid"))?;
    let mut mtime = header.mtime().map_err(|_| bad("mtime"))? as i64;
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(|e| entry_io(name, "read PAX header", e))? {
        for record in pax {
            let record = record.map_err(|e| entry_io(name, "read PAX header", e))?;
            let Ok(key) = record.key() else { continue };
            let value = record.value_bytes();
            if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
                // overlay metadata in a layer would forge whiteouts/redirects: never applied
                if !xattr.starts_with("trusted.overlay.") && !xattr.starts_with("user.overlay.") {
                    xattrs.push((xattr.to_owned(), value.to_vec()));
                }
            } else if key == "uid" {
                uid = parse_pax_int(value).ok_or_else(|| bad("PAX uid"))?;
            } else if key == "gid" {
                gid = parse_pax_int(value).ok_or_else(|| bad("PAX gid"))?;
            } else if key == "mtime" {
                let text = std::str::from_utf8(value).map_err(|_| bad("PAX mtime"))?;
                let secs = text.split('.').next().unwrap_or("0");
                mtime = secs.parse().map_err(|_| bad("PAX mtime"))?;
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| bad("uid out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| bad("gid out of range"))?;
    Ok(Meta { mode, uid, gid, mtime, xattrs })
}

fn parse_pax_int(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// chown (no follow) then chmod (after chown, which clears setuid/setgid).
fn set_owner_mode(dir: BorrowedFd<'_>, base: &OsStr, meta: &Meta, name: &str, chmod: bool) -> Result<()> {
    let owner = Some(rustix::fs::Uid::from_raw(meta.uid));
    let group = Some(rustix::fs::Gid::from_raw(meta.gid));
    if base.is_empty() {
        rustix::fs::fchown(dir, owner, group)
    } else {
        rustix::fs::chownat(dir, base, owner, group, AtFlags::SYMLINK_NOFOLLOW)
    }
    .map_err(|e| entry_io(name, "set owner", e.into()))?;
    if chmod {
        let mode = Mode::from_raw_mode(meta.mode);
        if base.is_empty() {
            rustix::fs::fchmod(dir, mode)
        } else {
            rustix::fs::chmodat(dir, base, mode, AtFlags::empty())
        }
        .map_err(|e| entry_io(name, "set mode", e.into()))?;
    }
    Ok(())
}

fn set_xattrs(dir: BorrowedFd<'_>, base: &OsStr, meta: &Meta, name: &str) -> Result<()> {
    for (key, value) in &meta.xattrs {
        if let Err(err) = set_xattr_at(dir, base, key, value) {
            // user.* xattrs cannot be set on symlinks and device nodes; a filesystem may not
            // support some namespaces. Losing them is what docker does too.
            if err.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
                || err.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error())
            {
                tracing::warn!("layer entry {name:?}: xattr {key} not applied: {err}");
                continue;
            }
            return Err(entry_io(name, "set xattr", err));
        }
    }
    Ok(())
}

fn timestamps(mtime: i64) -> Timestamps {
    let ts = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: ts, last_modification: ts }
}

fn set_mtime(dir: BorrowedFd<'_>, base: &OsStr, mtime: i64, name: &str) -> Result<()> {
    rustix::fs::utimensat(dir, base, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| entry_io(name, "set mtime", e.into()))
}

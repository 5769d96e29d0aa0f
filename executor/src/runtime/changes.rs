//! `diff`: what a container changed, read from its writable layer (the overlay upperdir) and
//! compared with the image's layers: a whiteout is a deletion (`D`), anything else is a change
//! (`C`) when the image has the path and an addition (`A`) when it does not, as docker's
//! overlay2 driver reports it. Directories are opened with `O_NOFOLLOW` one component at a
//! time, so a symlink the container put in its layer is never followed on the host.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};

use super::record::{Container, RuntimeError};
use crate::spec::Rootfs;

/// docker's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Changed,
    Added,
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(&self) -> char {
        match self {
            Self::Changed => 'C',
            Self::Added => 'A',
            Self::Deleted => 'D',
        }
    }
}

/// One changed path (absolute, inside the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn open_root(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
}

fn is_whiteout(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR && stat.st_rdev == 0
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

/// Names in a directory, sorted, without `.` and `..`.
fn names(dir: BorrowedFd<'_>) -> nix::Result<Vec<OsString>> {
    let fd = openat(dir, ".", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut listing = nix::dir::Dir::from_fd(fd)?;
    let mut names: Vec<OsString> = listing
        .iter()
        .filter_map(Result::ok)
        .map(|entry| OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
        .filter(|name| name != "." && name != "..")
        .collect();
    names.sort();
    Ok(names)
}

/// Whether the image's layers (top first) have `components`: found in the topmost layer that
/// has it, hidden by a whiteout above.
fn in_image(lowers: &[OwnedFd], components: &[OsString]) -> bool {
    for layer in lowers {
        let Some((last, parents)) = components.split_last() else { return true };
        let mut dir: Option<OwnedFd> = None;
        let mut reachable = true;
        for part in parents {
            let parent = dir.as_ref().map_or(layer.as_fd(), |fd| fd.as_fd());
            match open_dir_at(parent, part) {
                Ok(fd) => dir = Some(fd),
                Err(_) => {
                    reachable = false;
                    break;
                }
            }
        }
        if !reachable {
            continue;
        }
        let parent = dir.as_ref().map_or(layer.as_fd(), |fd| fd.as_fd());
        if let Ok(stat) = fstatat(parent, last.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            return !is_whiteout(&stat);
        }
    }
    false
}

/// A change and whether it is empty (a directory, or a file of no bytes): a mount-point stub of
/// a running container looks like that.
type Found = (Change, bool);

fn walk(
    dir: BorrowedFd<'_>,
    prefix: &mut Vec<OsString>,
    lowers: &[OwnedFd],
    out: &mut Vec<Found>,
    upper: &Path,
) -> Result<(), RuntimeError> {
    let err = |what: &'static str, prefix: &[OsString], errno: nix::errno::Errno| RuntimeError::Io {
        what,
        path: prefix.iter().fold(upper.to_path_buf(), |path, part| path.join(part)),
        source: std::io::Error::from(errno),
    };
    for name in names(dir).map_err(|e| err("list", prefix, e))? {
        let stat = match fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // removed by the running container meanwhile
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(errno) => return Err(err("stat", prefix, errno)),
        };
        prefix.push(name.clone());
        let path = format!("/{}", prefix.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/"));
        let kind = if is_whiteout(&stat) {
            ChangeKind::Deleted
        } else if in_image(lowers, prefix) {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        let empty = is_dir(&stat) || (stat.st_size == 0 && !is_whiteout(&stat));
        out.push((Change { kind, path }, empty));
        if kind != ChangeKind::Deleted && is_dir(&stat) {
            match open_dir_at(dir, &name) {
                Ok(child) => walk(child.as_fd(), prefix, lowers, out, upper)?,
                // replaced by a symlink or removed meanwhile
                Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {}
                Err(errno) => return Err(err("open", prefix, errno)),
            }
        }
        prefix.pop();
    }
    Ok(())
}

/// Paths (relative, `/`-separated) where a running container's writable layer may hold empty
/// mount-point stubs of the sandbox, which are no change of the container's (`commit` skips
/// them when empty).
pub fn mount_point_stubs(container: &Container) -> Vec<String> {
    crate::sandbox::mount_points(&container.config.spec)
        .iter()
        .map(|path| path.display().to_string())
        .collect()
}

/// The container's changes, sorted by path.
pub fn changes(container: &Container) -> Result<Vec<Change>, RuntimeError> {
    let Rootfs::Overlay { lowers, upper: Some(upper) } = &container.config.spec.rootfs else {
        return Err(RuntimeError::NoWritableLayer(container.config.name.clone()));
    };
    let open = |path: &PathBuf| {
        open_root(path).map_err(|errno| RuntimeError::Io {
            what: "open layer",
            path: path.clone(),
            source: std::io::Error::from(errno),
        })
    };
    let lower_fds = lowers.iter().map(open).collect::<Result<Vec<_>, _>>()?;
    let upper_fd = open(&upper.upper)?;
    let mut found = Vec::new();
    walk(upper_fd.as_fd(), &mut Vec::new(), &lower_fds, &mut found, &upper.upper)?;
    let stubs: Vec<String> = crate::sandbox::mount_points(&container.config.spec)
        .iter()
        .map(|stub| format!("/{}", stub.display()))
        .collect();
    let mut out = without_stubs(found, &stubs);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Leaves out what the sandbox put in the writable layer of a running container and removes at
/// its exit: empty mount-point stubs, and the directories copied up only to hold them.
fn without_stubs(found: Vec<Found>, stubs: &[String]) -> Vec<Change> {
    let under = |path: &str, dir: &str| {
        path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
    };
    let mut kept: Vec<Found> = found;
    let mut removed: Vec<String> = Vec::new();
    // deepest first, so that a stub directory whose stub children went is empty by then
    let mut order: Vec<String> = kept.iter().map(|(c, _)| c.path.clone()).collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for path in order {
        let Some(index) = kept.iter().position(|(c, _)| c.path == path) else { continue };
        let (change, empty) = &kept[index];
        let has_children = kept.iter().any(|(c, _)| under(&c.path, &path));
        let stub = *empty && change.kind == ChangeKind::Added && stubs.contains(&path);
        let copied_up_for_stub =
            change.kind == ChangeKind::Changed && removed.iter().any(|r| under(r, &path)) && kept[index].1;
        if !has_children && (stub || copied_up_for_stub) {
            removed.push(path);
            kept.remove(index);
        }
    }
    kept.into_iter().map(|(change, _)| change).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_deleted_and_symlinks_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        std::fs::create_dir_all(lower.join("etc/deep")).expect("mkdir");
        std::fs::write(lower.join("etc/passwd"), "x").expect("write");
        std::fs::write(lower.join("gone"), "x").expect("write");
        std::fs::create_dir_all(upper.join("etc")).expect("mkdir");
        std::fs::write(upper.join("etc/passwd"), "y").expect("write");
        std::fs::write(upper.join("etc/new"), "y").expect("write");
        nix::sys::stat::mknod(&upper.join("gone"), SFlag::S_IFCHR, Mode::empty(), 0).expect("whiteout");
        // a symlink to a host directory: reported, never entered
        std::os::unix::fs::symlink("/etc", upper.join("escape")).expect("symlink");
        let lowers = vec![open_root(&lower).expect("open")];
        let upper_fd = open_root(&upper).expect("open");
        let mut found = Vec::new();
        walk(upper_fd.as_fd(), &mut Vec::new(), &lowers, &mut found, &upper).expect("walk");
        let mut out: Vec<Change> = found.iter().map(|(c, _)| c.clone()).collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        let text: Vec<String> = out.iter().map(|c| format!("{} {}", c.kind.letter(), c.path)).collect();
        assert_eq!(text, ["A /escape", "C /etc", "A /etc/new", "C /etc/passwd", "D /gone"]);
        assert!(in_image(&lowers, &["etc".into(), "deep".into()]));
        // stubs: an empty /etc/hosts and the /etc copied up for it go, a written file stays
        let change = |kind, path: &str| Change { kind, path: path.to_owned() };
        let found = vec![
            (change(ChangeKind::Changed, "/etc"), true),
            (change(ChangeKind::Added, "/etc/hosts"), true),
            (change(ChangeKind::Added, "/proc"), true),
            (change(ChangeKind::Changed, "/var"), true),
            (change(ChangeKind::Added, "/var/log"), true),
        ];
        let stubs = ["/etc/hosts".to_owned(), "/proc".to_owned()];
        let kept: Vec<String> = without_stubs(found, &stubs).into_iter().map(|c| c.path).collect();
        assert_eq!(kept, ["/var", "/var/log"]);
        assert!(!in_image(&lowers, &["etc".into(), "passwd".into(), "x".into()]));
    }
}

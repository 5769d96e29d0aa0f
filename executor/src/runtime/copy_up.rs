//! Copy-up of an image directory into an empty volume (docker's behaviour on the first mount
//! of a named or anonymous volume): contents, owners, modes and modification times, symlinks
//! as symlinks. Runs in the sandbox init, where the rootfs is mounted; nothing is followed:
//! every entry is created fresh (`O_EXCL`) below the volume's own directory.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

fn owner(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

fn times(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::new(meta.atime(), meta.atime_nsec()),
        &TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

fn context(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |err| io::Error::new(err.kind(), format!("copy up {}: {err}", path.display()))
}

/// Whether `dir` has no entries.
pub fn is_empty(dir: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(dir)?.next().is_none())
}

/// Copies the contents of directory `from` into the empty directory `to`, and gives `to` the
/// owner and mode of `from`.
pub fn copy_dir_contents(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from).map_err(context(from))?;
    copy_children(from, to)?;
    // `to` may be a /proc/self/fd handle of the volume: followed on purpose
    nix::unistd::chown(to, Some(Uid::from_raw(meta.uid())), Some(Gid::from_raw(meta.gid())))
        .map_err(io::Error::from)
        .map_err(context(to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(context(to))
}

fn copy_children(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from).map_err(context(from))? {
        let entry = entry.map_err(context(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&source).map_err(context(&source))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::DirBuilder::new().mode(0o700).create(&target).map_err(context(&target))?;
            copy_children(&source, &target)?;
            owner(&target, &meta).map_err(context(&target))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(context(&target))?;
        } else if kind.is_file() {
            let mut input = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&source)
                .map_err(context(&source))?;
            let mut output = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map_err(context(&target))?;
            io::copy(&mut input, &mut output).map_err(context(&target))?;
            drop(output);
            owner(&target, &meta).map_err(context(&target))?;
            // after chown, which clears set-id bits
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(context(&target))?;
        } else if kind.is_symlink() {
            let link = fs::read_link(&source).map_err(context(&source))?;
            symlink(&link, &target).map_err(context(&target))?;
            owner(&target, &meta).map_err(context(&target))?;
        } else {
            // devices, fifos and sockets in a volume directory of an image: not copied
            continue;
        }
        times(&target, &meta).map_err(context(&target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_tree_modes_and_links_without_following() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let from = tmp.path().join("from");
        let to = tmp.path().join("to");
        fs::create_dir_all(from.join("sub")).expect("mkdir");
        fs::create_dir(&to).expect("mkdir");
        fs::write(from.join("sub/file"), b"data").expect("write");
        fs::set_permissions(from.join("sub/file"), fs::Permissions::from_mode(0o640)).expect("chmod");
        symlink("/etc/passwd", from.join("link")).expect("symlink");
        fs::set_permissions(&from, fs::Permissions::from_mode(0o751)).expect("chmod");
        assert!(is_empty(&to).expect("empty"));
        copy_dir_contents(&from, &to).expect("copy");
        assert_eq!(fs::read(to.join("sub/file")).expect("read"), b"data");
        assert_eq!(fs::metadata(to.join("sub/file")).expect("meta").mode() & 0o777, 0o640);
        assert_eq!(fs::read_link(to.join("link")).expect("link"), Path::new("/etc/passwd"));
        assert_eq!(fs::metadata(&to).expect("meta").mode() & 0o777, 0o751);
        assert_eq!(
            fs::metadata(to.join("sub/file")).expect("m").mtime(),
            fs::metadata(from.join("sub/file")).expect("m").mtime()
        );
    }
}

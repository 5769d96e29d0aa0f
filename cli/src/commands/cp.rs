//! `kiln cp [-a] CONTAINER:SRC DEST|-` and `kiln cp [-a] SRC|- CONTAINER:DEST`, with docker's
//! rules: a directory lands inside an existing directory or becomes the new path, `SRC/.`
//! copies the contents, `-` is a tar stream. Running containers are paused while copying.
//!
//! Container paths are the container's: they are resolved in its filesystem with
//! `RESOLVE_IN_ROOT` (cache's safefs), and the tar stream into it is applied by the layer
//! applier, which resolves every entry the same way, so no symlink in the container reaches the
//! host. Without `-a`, files copied in are owned by root and files copied out by the caller.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cache::apply::{ApplyMode, apply_tar_owned};
use cache::safefs::{RelPath, Root, lstat_at, proc_path};
use executor::runtime::rootfs::{self, Access};

use crate::GlobalOptions;

/// Arguments of `kiln cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Archive mode: keep the uid and gid of the source.
    #[arg(short, long)]
    pub archive: bool,
    /// Print no progress (kiln prints none anyway).
    #[arg(short, long)]
    pub quiet: bool,
    /// `CONTAINER:SRC_PATH`, a local path, or `-` for a tar stream on stdin.
    #[arg(value_name = "SRC")]
    pub source: String,
    /// `CONTAINER:DEST_PATH`, a local path, or `-` for a tar stream on stdout.
    #[arg(value_name = "DEST")]
    pub destination: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Location {
    Local(String),
    Container { container: String, path: String },
}

/// docker's rule: `NAME:PATH` is a container path unless it starts like a local path.
fn location(arg: &str) -> Location {
    if arg == "-" || arg.starts_with('/') || arg.starts_with('.') {
        return Location::Local(arg.to_owned());
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.is_empty() => {
            Location::Container { container: container.to_owned(), path: path.to_owned() }
        }
        _ => Location::Local(arg.to_owned()),
    }
}

/// A container path made relative to its root, lexically (`..` stops at the root, as in the
/// container), and whether it ended in `/.` (copy the contents) or `/` (must be a directory).
fn container_path(path: &str) -> anyhow::Result<(RelPath, bool, bool)> {
    let contents = path.ends_with("/.") || path == ".";
    let directory = path.ends_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let rel = RelPath::from_archive(parts.join("/").as_bytes())
        .map_err(|problem| anyhow::anyhow!("invalid container path {path:?}: {problem}"))?;
    Ok((rel, contents, directory))
}

/// `/proc/self/fd/N`: the directory `fd` (resolved once, inside the container) as a path.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub fn run(global: &GlobalOptions, args: CpArgs) -> anyhow::Result<ExitCode> {
    match (location(&args.source), location(&args.destination)) {
        (Location::Container { container, path }, Location::Local(dest)) => {
            copy_out(global, &container, &path, &dest, args.archive)?;
        }
        (Location::Local(source), Location::Container { container, path }) => {
            copy_in(global, &source, &container, &path, args.archive)?;
        }
        (Location::Container { .. }, Location::Container { .. }) => {
            bail!("copying between containers is not supported")
        }
        (Location::Local(_), Location::Local(_)) => {
            bail!("must specify at least one container source (CONTAINER:PATH)")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a tar of `source` (a path below a directory resolved in the container, or a host
/// path) named `top` into `out`; `top` "." archives a directory's contents.
fn write_archive(source: &Path, is_dir: bool, top: &Path, out: impl Write) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    // owners are always recorded; without -a the receiving side sets its own
    builder.mode(tar::HeaderMode::Complete);
    if is_dir {
        builder
            .append_dir_all(top, source)
            .with_context(|| format!("cannot archive {}", source.display()))?;
    } else {
        builder
            .append_path_with_name(source, top)
            .with_context(|| format!("cannot archive {}", source.display()))?;
    }
    builder.into_inner().context("cannot finish the tar stream")?.flush()?;
    Ok(())
}

/// Runs `produce` on a thread writing into a pipe and `consume` on this one reading from it.
fn through_pipe(
    produce: impl FnOnce(std::io::PipeWriter) -> anyhow::Result<()> + Send,
    consume: impl FnOnce(std::io::PipeReader) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || produce(writer));
        let consumed = consume(reader);
        let produced = producer.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the tar writer panicked")));
        // the producer's error is the cause when both failed (the consumer saw a cut stream)
        produced.and(consumed)
    })
}

fn copy_out(global: &GlobalOptions, name: &str, path: &str, dest: &str, archive: bool) -> anyhow::Result<()> {
    let store = super::container::open(global)?;
    let container = store.find(name)?;
    let fs = rootfs::open(&container, Access::Read)?;
    let root = Root::open(fs.path())?;
    let (rel, contents, _) = container_path(path)?;
    let not_found = || anyhow::anyhow!("Could not find the file {path} in container {name}");
    let (parent, file_name): (OwnedFd, Option<OsString>) = match rel.split_last() {
        None => (root.open_dir(&rel).map_err(|_| not_found())?, None),
        Some((parent, file)) => (root.open_dir(&parent).map_err(|_| not_found())?, Some(file.to_owned())),
    };
    let (source, is_dir) = match &file_name {
        None => (fd_path(&parent), true),
        Some(file) => {
            let stat = lstat_at(parent.as_fd(), file).ok().flatten().ok_or_else(not_found)?;
            let is_dir = stat.st_mode & 0o170_000 == 0o040_000;
            (proc_path(parent.as_fd(), file), is_dir)
        }
    };
    let base: PathBuf = file_name.clone().map_or_else(|| PathBuf::from("."), PathBuf::from);
    if dest == "-" {
        let top = if contents && is_dir { PathBuf::from(".") } else { base };
        return write_archive(&source, is_dir, &top, std::io::stdout().lock());
    }
    let dest_path = Path::new(dest);
    let dest_meta = std::fs::metadata(dest_path).ok();
    let (extract_dir, top) = match (&dest_meta, is_dir) {
        (Some(meta), true) if meta.is_dir() => {
            if contents {
                (dest_path.to_owned(), PathBuf::from("."))
            } else {
                (dest_path.to_owned(), base)
            }
        }
        (Some(_), true) => bail!("cannot copy a directory to a file: {dest}"),
        (None, true) => {
            std::fs::create_dir(dest_path).with_context(|| format!("cannot create directory {dest}"))?;
            (dest_path.to_owned(), PathBuf::from("."))
        }
        (Some(meta), false) if meta.is_dir() => (dest_path.to_owned(), base),
        (_, false) => {
            if dest.ends_with('/') {
                bail!("destination directory {dest} does not exist");
            }
            let parent = dest_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let file = dest_path.file_name().context("the destination names no file")?;
            if !parent.is_dir() {
                bail!("destination directory {} does not exist", parent.display());
            }
            (parent.to_owned(), PathBuf::from(file))
        }
    };
    through_pipe(
        |writer| write_archive(&source, is_dir, &top, writer),
        |reader| {
            let mut unpack = tar::Archive::new(reader);
            unpack.set_preserve_permissions(true);
            unpack.set_preserve_mtime(true);
            unpack.set_overwrite(true);
            unpack.set_preserve_ownerships(archive);
            unpack.set_unpack_xattrs(false);
            unpack.unpack(&extract_dir).with_context(|| format!("cannot copy into {}", extract_dir.display()))
        },
    )
}

/// Where and under which name a copy into a container lands.
struct Target {
    /// The directory the archive is applied in (resolved in the container).
    dir: OwnedFd,
    /// The archive's top entry name ("." for a directory's contents).
    top: PathBuf,
}

fn copy_in(
    global: &GlobalOptions,
    source: &str,
    name: &str,
    path: &str,
    archive: bool,
) -> anyhow::Result<()> {
    let store = super::container::open(global)?;
    let container = store.find(name)?;
    // checked before the container is paused or mounted
    let source_meta = if source == "-" {
        None
    } else {
        Some(std::fs::symlink_metadata(source).with_context(|| format!("lstat {source}"))?)
    };
    let source_is_dir = source_meta.as_ref().is_some_and(std::fs::Metadata::is_dir);
    let fs = rootfs::open(&container, Access::Write)?;
    let root = Root::open(fs.path())?;
    let (rel, _, must_be_dir) = container_path(path)?;
    let source_contents = source.ends_with("/.") || source == ".";
    let base: PathBuf = Path::new(source).file_name().map_or_else(|| PathBuf::from("."), PathBuf::from);
    let target = match root.open_dir(&rel) {
        // an existing directory (a symlink to one is followed, inside the container)
        Ok(dir) => {
            let top =
                if source == "-" || (source_is_dir && source_contents) { PathBuf::from(".") } else { base };
            Target { dir, top }
        }
        Err(_) => {
            let Some((parent, file)) = rel.split_last() else {
                bail!("cannot open the root of container {name}");
            };
            let parent_dir = root.open_dir(&parent).map_err(|_| {
                anyhow::anyhow!("Could not find the file {path} in container {name}: no such directory")
            })?;
            let existing = lstat_at(parent_dir.as_fd(), file).ok().flatten();
            if source == "-" {
                bail!("destination {path} in container {name} must be a directory for a tar stream");
            }
            if existing.is_some() && source_is_dir {
                bail!("cannot copy a directory to a file: {path}");
            }
            if existing.is_none() && must_be_dir && !source_is_dir {
                bail!("destination directory {path} does not exist in container {name}");
            }
            Target { dir: parent_dir, top: PathBuf::from(OsStr::new(file)) }
        }
    };
    let owner = if archive { None } else { Some((0, 0)) };
    let apply_in = fd_path(&target.dir);
    let apply = |reader: &mut dyn Read| -> anyhow::Result<()> {
        apply_tar_owned(reader, &apply_in, ApplyMode::Merge, owner)
            .with_context(|| format!("cannot copy into {path} in container {name}"))?;
        Ok(())
    };
    match source_meta {
        None => apply(&mut std::io::stdin().lock()),
        Some(_) => {
            let top = target.top.clone();
            through_pipe(
                |writer| write_archive(Path::new(source), source_is_dir, &top, writer),
                |mut reader| apply(&mut reader),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_container_paths() {
        assert_eq!(
            location("web:/etc"),
            Location::Container { container: "web".into(), path: "/etc".into() }
        );
        assert_eq!(location("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(location("/tmp/x:y"), Location::Local("/tmp/x:y".into()));
        assert_eq!(location("-"), Location::Local("-".into()));
        assert_eq!(location("plain"), Location::Local("plain".into()));
        let (rel, contents, dir) = container_path("/../../etc/./passwd").expect("path");
        assert_eq!((rel.display(), contents, dir), ("etc/passwd".to_owned(), false, false));
        let (rel, contents, _) = container_path("/data/.").expect("path");
        assert_eq!((rel.display(), contents), ("data".to_owned(), true));
        let (rel, _, dir) = container_path("/").expect("path");
        assert!(rel.is_root() && dir);
    }
}

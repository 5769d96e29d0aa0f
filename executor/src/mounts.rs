//! Container-side filesystem setup, run by the sandbox init inside the new mount namespace:
//! the rootfs, `/proc`, `/dev`, `/sys`, extra mounts, generated `/etc` files, masked paths,
//! `pivot_root`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::init::InitError;
use crate::spec::{Mount, MountKind, OverlayUpper, Rootfs};

/// runc's default masked paths (hidden behind /dev/null or an empty read-only tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths.
pub const READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Host files bind-mounted over the container's `/etc` entries.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

fn errno(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Io { what, source }
}

/// Resolves `path` (absolute, container view) inside `root` without letting `..` or symlinks
/// escape it: symlinks are followed relative to `root`, like a chroot would.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, InitError> {
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .rev()
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == Path::new("..") {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(InitError::Invalid(format!(
                        "too many symlinks resolving {}",
                        path.display()
                    )));
                }
                let target = fs::read_link(&full).map_err(io(format!("readlink {}", full.display())))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(name) => pending.push(PathBuf::from(name)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Creates `path` (already resolved inside the root) as a directory or empty file stub.
fn ensure_mountpoint(path: &Path, directory: bool) -> Result<(), InitError> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    if directory {
        fs::DirBuilder::new().recursive(true).mode(0o755).create(path)
    } else {
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io(format!("create {}", parent.display())))?;
        }
        fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).map(drop)
    }
    .map_err(io(format!("create mount point {}", path.display())))
}

pub(crate) fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: &Option<OverlayUpper>,
) -> Result<(), InitError> {
    if lowers.is_empty() {
        return Err(InitError::Invalid("overlay needs at least one lower directory".into()));
    }
    if lowers.len() == 1 && upper.is_none() {
        return bind(&lowers[0], target, true);
    }
    crate::overlay::mount(target, lowers, upper.as_ref(), false).map_err(|error| match error {
        crate::Error::Sys { what, source } => InitError::Sys { what, source },
        crate::Error::Io { what, path, source } => {
            InitError::Io { what: format!("{what} {}", path.display()), source }
        }
        other => InitError::Executor(other),
    })
}

fn bind(source: &Path, target: &Path, readonly: bool) -> Result<(), InitError> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(errno(format!("bind mount {} on {}", source.display(), target.display())))?;
    // docker's default bind propagation, rprivate: nothing mounted below the target inside the
    // container reaches the source's side, nor the other way round
    mount(None::<&str>, target, None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(errno(format!("make {} rprivate", target.display())))?;
    if readonly {
        readonly_recursive(target)?;
    }
    Ok(())
}

/// Makes the mount at `target` and every mount below it read-only (a read-only bind of `/`
/// must not leave the host's `/proc/sys` or `/sys/fs/cgroup` writable below it):
/// `mount_setattr(AT_RECURSIVE)` where the kernel has it (5.12+), else a read-only remount of
/// each mount of the tree as listed in `/proc/self/mountinfo`, else an error.
pub fn readonly_recursive(target: &Path) -> Result<(), InitError> {
    let setattr = match crate::sys::mount_setattr_readonly_recursive(target) {
        Ok(()) => return Ok(()),
        Err(err) => err,
    };
    remount_tree_readonly(target).map_err(|err| {
        InitError::Invalid(format!(
            "cannot make {} read-only recursively: mount_setattr: {setattr}; remounting each submount: {err}",
            target.display()
        ))
    })
}

/// The fallback of [`readonly_recursive`] for kernels without `mount_setattr`.
pub fn remount_tree_readonly(target: &Path) -> Result<(), InitError> {
    let resolved = fs::canonicalize(target).map_err(io(format!("resolve {}", target.display())))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(io("read /proc/self/mountinfo"))?;
    let mut points = mount_points_under(&mountinfo, &resolved);
    if !points.contains(&resolved) {
        points.insert(0, resolved);
    }
    for point in points {
        remount_readonly(&point)?;
    }
    Ok(())
}

/// Mount points of `mountinfo` at or below `root`, parents first (without duplicates).
pub fn mount_points_under(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|point| point.starts_with(root))
        .collect();
    points.sort_by_key(|p| p.components().count());
    let mut seen = std::collections::HashSet::new();
    points.retain(|p| seen.insert(p.clone()));
    points
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(digits) => {
                out.push(digits.iter().fold(0u8, |value, d| value.wrapping_mul(8).wrapping_add(d - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// Whether a bind of `source` would expose the host's `/proc` or `/sys` (or a kernel interface
/// mounted below them: cgroupfs, debugfs, …): the path is at or below `/proc` or `/sys` once
/// symlinks are resolved, or lives on such a filesystem wherever that is mounted. These need an
/// explicit opt-in ([`crate::SandboxSpec::allow_host_proc_sys`]).
pub fn exposes_host_proc_sys(source: &Path) -> bool {
    use nix::sys::statfs;
    let resolved = fs::canonicalize(source).unwrap_or_else(|_| source.to_owned());
    if resolved.starts_with("/proc") || resolved.starts_with("/sys") {
        return true;
    }
    let kernel_filesystems = [
        statfs::PROC_SUPER_MAGIC,
        statfs::SYSFS_MAGIC,
        statfs::CGROUP_SUPER_MAGIC,
        statfs::CGROUP2_SUPER_MAGIC,
        statfs::DEBUGFS_MAGIC,
        statfs::TRACEFS_MAGIC,
        statfs::SECURITYFS_MAGIC,
        statfs::BPF_FS_MAGIC,
    ];
    statfs::statfs(&resolved).is_ok_and(|fs| kernel_filesystems.contains(&fs.filesystem_type()))
}

fn remount_readonly(target: &Path) -> Result<(), InitError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let current =
        nix::sys::statvfs::statvfs(target).map_err(errno(format!("statvfs {}", target.display())))?;
    // keep nosuid/nodev/noexec of the existing mount: a bind remount must not clear locked flags
    let mut extra = MsFlags::empty();
    let f = current.flags();
    if f.contains(nix::sys::statvfs::FsFlags::ST_NOSUID) {
        extra |= MsFlags::MS_NOSUID;
    }
    if f.contains(nix::sys::statvfs::FsFlags::ST_NODEV) {
        extra |= MsFlags::MS_NODEV;
    }
    if f.contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) {
        extra |= MsFlags::MS_NOEXEC;
    }
    mount(None::<&str>, target, None::<&str>, flags | extra, None::<&str>)
        .map_err(errno(format!("remount {} read-only", target.display())))
}

/// Mounts the rootfs on `target` (an empty host directory inside the sandbox's state dir). With
/// `readonly`, the mounts the rootfs brings along (a directory rootfs with mounts inside) are
/// made read-only now; its top mount only after pivot_root ([`readonly_root`]), once the mount
/// points of `/proc`, volumes … exist.
pub fn mount_rootfs(rootfs: &Rootfs, target: &Path, readonly: bool) -> Result<(), InitError> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(errno("make / private"))?;
    match rootfs {
        Rootfs::Dir(dir) => bind(dir, target, false)?,
        Rootfs::Overlay { lowers, upper } => mount_overlay(target, lowers, upper)?,
    }
    if readonly {
        let resolved = fs::canonicalize(target).map_err(io(format!("resolve {}", target.display())))?;
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").map_err(io("read /proc/self/mountinfo"))?;
        for submount in mount_points_under(&mountinfo, &resolved).iter().filter(|p| **p != resolved) {
            readonly_recursive(submount)?;
        }
    }
    Ok(())
}

fn mount_fs(fstype: &str, target: &Path, flags: MsFlags, data: Option<&str>) -> Result<(), InitError> {
    ensure_mountpoint(target, true)?;
    mount(Some(fstype), target, Some(fstype), flags, data)
        .map_err(errno(format!("mount {fstype} on {}", target.display())))
}

/// The devices BuildKit's insecure mode adds (name, major, minor); `loopN` follow.
const PRIVILEGED_DEVICES: [(&str, u64, u64); 6] = [
    ("kmsg", 1, 11),
    ("cuse", 10, 203),
    ("fuse", 10, 229),
    ("kvm", 10, 232),
    ("net/tun", 10, 200),
    ("loop-control", 10, 237),
];

/// How many `/dev/loopN` a privileged sandbox gets: the host's block loop devices plus 8
/// (BuildKit gives the first free one plus 7).
fn loop_device_count() -> u64 {
    let host = fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("loop")?.parse::<u64>().ok())
                .map(|n| n + 1)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    host + 8
}

/// `/proc`, `/dev` (+ devices, pts, shm of `shm_size` bytes, mqueue, links) and `/sys`
/// (read-only unless `privileged`, which also adds BuildKit's insecure-mode devices).
pub fn mount_system(root: &Path, shm_size: Option<u64>, privileged: bool) -> Result<(), InitError> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", &resolve_in_root(root, Path::new("/proc"))?, nosuid_nodev_noexec, None)?;
    let dev = resolve_in_root(root, Path::new("/dev"))?;
    mount_fs("tmpfs", &dev, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    let devices: [(&str, u64, u64); 6] =
        [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];
    for (name, major, minor) in devices {
        let path = dev.join(name);
        mknod(&path, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .map_err(errno(format!("mknod {}", path.display())))?;
    }
    if privileged {
        fs::create_dir_all(dev.join("net")).map_err(io("create /dev/net"))?;
        let loops = (0..loop_device_count()).map(|n| (format!("loop{n}"), SFlag::S_IFBLK, 7, n));
        let chars = PRIVILEGED_DEVICES
            .iter()
            .map(|(name, major, minor)| ((*name).to_owned(), SFlag::S_IFCHR, *major, *minor));
        for (name, kind, major, minor) in chars.chain(loops) {
            let path = dev.join(&name);
            mknod(&path, kind, Mode::from_bits_truncate(0o660), makedev(major, minor))
                .map_err(errno(format!("mknod {}", path.display())))?;
        }
    }
    mount_fs(
        "devpts",
        &dev.join("pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = match shm_size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777,size=65536k".to_owned(),
    };
    mount_fs("tmpfs", &dev.join("shm"), nosuid_nodev_noexec, Some(&shm))?;
    mount_fs("mqueue", &dev.join("mqueue"), nosuid_nodev_noexec, None)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        symlink(target, dev.join(link)).map_err(io(format!("symlink /dev/{link}")))?;
    }
    let sys = resolve_in_root(root, Path::new("/sys"))?;
    let sys_flags = if privileged { nosuid_nodev_noexec } else { nosuid_nodev_noexec | MsFlags::MS_RDONLY };
    mount_fs("sysfs", &sys, sys_flags, None)?;
    Ok(())
}

/// The caller's extra mounts, in order. Binds of the host's `/proc` or `/sys` are refused
/// unless `allow_host_proc_sys` (checked again here, right before mounting).
pub fn mount_extra(root: &Path, mounts: &[Mount], allow_host_proc_sys: bool) -> Result<(), InitError> {
    for m in mounts {
        let target = resolve_in_root(root, &m.target)?;
        match &m.kind {
            MountKind::Bind { source } => {
                if !allow_host_proc_sys && exposes_host_proc_sys(source) {
                    return Err(crate::Error::HostProcSysBind {
                        host_path: source.clone(),
                        target: m.target.clone(),
                    }
                    .into());
                }
                let is_dir =
                    fs::metadata(source).map_err(io(format!("bind source {}", source.display())))?.is_dir();
                ensure_mountpoint(&target, is_dir)?;
                bind(source, &target, m.readonly)?;
            }
            MountKind::Tmpfs { size, mode } => {
                let mut data = format!("mode={mode:o}");
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                mount_fs("tmpfs", &target, flags, Some(&data))?;
            }
            MountKind::Volume { source, copy_up } => mount_volume(source, &target, *copy_up, m.readonly)?,
            MountKind::Overlay { lowers, upper } => {
                ensure_mountpoint(&target, true)?;
                mount_overlay(&target, lowers, upper)?;
                if m.readonly {
                    remount_readonly(&target)?;
                }
            }
        }
    }
    Ok(())
}

/// A volume: its data directory opened without following a symlink (the bind goes through
/// that descriptor, so nothing can swap the path meanwhile), filled from the image directory
/// at `target` first when `copy_up` and the volume is empty.
fn mount_volume(source: &Path, target: &Path, copy_up: bool, readonly: bool) -> Result<(), InitError> {
    use std::os::unix::fs::OpenOptionsExt;
    let directory = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(source)
        .map_err(io(format!("open volume {} (it must be a directory, not a symlink)", source.display())))?;
    let handle = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&directory)));
    if copy_up
        && fs::symlink_metadata(target).is_ok_and(|m| m.is_dir())
        && crate::runtime::copy_up::is_empty(&handle)
            .map_err(io(format!("read volume {}", source.display())))?
        && !crate::runtime::copy_up::is_empty(target).unwrap_or(true)
    {
        crate::runtime::copy_up::copy_dir_contents(target, &handle).map_err(io("copy up into volume"))?;
    }
    ensure_mountpoint(target, true)?;
    bind(&handle, target, readonly)
}

/// Bind-mounts the generated hosts/hostname/resolv.conf (skipped when the rootfs is read-only
/// and has no such file to mount over).
pub fn mount_etc_files(root: &Path, files: &EtcFiles, rootfs_readonly: bool) -> Result<(), InitError> {
    for (name, source) in
        [("hosts", &files.hosts), ("hostname", &files.hostname), ("resolv.conf", &files.resolv_conf)]
    {
        let target = resolve_in_root(root, &Path::new("/etc").join(name))?;
        if rootfs_readonly && fs::symlink_metadata(&target).is_err() {
            continue;
        }
        ensure_mountpoint(&target, false)?;
        bind(source, &target, false)?;
    }
    Ok(())
}

/// runc's masked and read-only paths (missing ones are skipped).
pub fn mask_paths(root: &Path) -> Result<(), InitError> {
    let null = root.join("dev/null");
    for path in MASKED_PATHS {
        let target = root.join(path.trim_start_matches('/'));
        match fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
            .map_err(errno(format!("mask {path}")))?,
            Ok(_) => bind(&null, &target, false)?,
            Err(_) => {}
        }
    }
    for path in READONLY_PATHS {
        let target = root.join(path.trim_start_matches('/'));
        if fs::symlink_metadata(&target).is_ok() {
            bind(&target, &target, true)?;
        }
    }
    Ok(())
}

/// pivot_root into `root` and detach the old root.
pub fn pivot(root: &Path) -> Result<(), InitError> {
    nix::unistd::chdir(root).map_err(errno(format!("chdir {}", root.display())))?;
    nix::unistd::pivot_root(".", ".").map_err(errno("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(errno("detach the old root"))?;
    nix::unistd::chdir("/").map_err(errno("chdir /"))?;
    Ok(())
}

/// Remounts `/` read-only (after pivot_root).
pub fn readonly_root() -> Result<(), InitError> {
    remount_readonly(Path::new("/"))
}

/// Creates the working directory (like docker's WORKDIR, owned by root) and enters it.
pub fn enter_cwd(cwd: &Path) -> Result<(), InitError> {
    let resolved = resolve_in_root(Path::new("/"), cwd)?;
    if fs::metadata(&resolved).is_err() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&resolved)
            .map_err(io(format!("create working directory {}", cwd.display())))?;
    }
    nix::unistd::chdir(&resolved).map_err(errno(format!("chdir to working directory {}", cwd.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        symlink("/etc", root.join("a/abs")).expect("symlink");
        symlink("../../../../..", root.join("a/b/up")).expect("symlink");
        symlink("b", root.join("a/rel")).expect("symlink");
        let cases = [
            ("/a/b", "a/b"),
            ("/../../a", "a"),
            ("/a/abs/passwd", "etc/passwd"),
            ("/a/b/up/etc", "etc"),
            ("/a/rel/x", "a/b/x"),
            ("/missing/x", "missing/x"),
        ];
        for (input, expected) in cases {
            assert_eq!(resolve_in_root(root, Path::new(input)).expect(input), root.join(expected), "{input}");
        }
    }

    #[test]
    fn symlink_loops_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        symlink("loop", dir.path().join("loop")).expect("symlink");
        assert!(resolve_in_root(dir.path(), Path::new("/loop/x")).is_err());
    }
}

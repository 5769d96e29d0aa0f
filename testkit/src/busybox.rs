//! The busybox base of kiln's tests: the tree `testdata/rootfs/busybox-rootfs.sh` makes from
//! Debian's busybox-static, and a tarball of it for `kiln import`, both built once per test
//! binary in a temporary directory (`kiln-testkit-<pid>-*`; those of finished processes are
//! removed by the next test binary that builds one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace's `testdata/` directory.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Runs `cmd`, panicking with its stderr unless it succeeds; returns its stdout.
#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This test binary's scratch directory, made on first use.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_scratch_of_finished_processes();
        tempfile::Builder::new()
            .prefix(&format!("kiln-testkit-{}-", std::process::id()))
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"))
    })
    .path()
}

/// Scratch directories are never dropped (statics are not): the next binary removes the ones
/// whose process is gone.
fn remove_scratch_of_finished_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("kiln-testkit-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The busybox root filesystem, shared by every test of this binary: read it, never change it
/// (copy it, or use [`busybox_tarball_with`]).
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let rootfs = scratch().join("busybox-rootfs");
        make_rootfs(&rootfs);
        rootfs
    })
}

/// A tarball of [`busybox_rootfs`] (`--sort=name --mtime=@0`: the same bytes every time, so
/// every root of this binary imports the same image).
pub fn busybox_tarball() -> &'static Path {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| {
        let tarball = scratch().join("busybox.tar");
        tar(busybox_rootfs(), &tarball);
        tarball
    })
}

/// A tarball of a copy of the busybox tree changed by `edit` (called with the copy's root), for
/// tests that need other users or files; made in this binary's scratch directory under `name`.
/// Call it once per name (keep the path in a `OnceLock`).
pub fn busybox_tarball_with(name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let rootfs = dir.join("busybox-rootfs");
    run(Command::new("cp").arg("-a").arg(busybox_rootfs()).arg(&rootfs));
    edit(&rootfs);
    let tarball = dir.join("busybox.tar");
    tar(&rootfs, &tarball);
    tarball
}

/// Builds the busybox tree into `dest` (a fresh directory, not shared) with the testdata script.
pub fn make_rootfs(dest: &Path) {
    run(Command::new("sh").arg(testdata().join("rootfs/busybox-rootfs.sh")).arg(dest));
}

/// Writes a reproducible tarball of the tree `dir` (sorted names, mtime 0).
pub fn tar(dir: &Path, tarball: &Path) {
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "-C"])
        .arg(dir)
        .arg("-cf")
        .arg(tarball)
        .arg("."));
}

//! Read-only binds are read-only all the way down (root integration tests): a `:ro` bind of a
//! tree with submounts, a read-only directory rootfs with a submount, the remount fallback for
//! kernels without `mount_setattr`, and the opt-in for binds of the host's `/proc` and `/sys`.
//!
//! Nothing is written on the host: the trees are tmpfs mounts inside the test's own directory
//! (unmounted by a guard), and host paths are only inspected through `/proc/self/mountinfo`.

mod common;

use std::path::{Path, PathBuf};

use common::TestEnv;
use executor::{Error, Mount, MountKind, Rootfs, SandboxSpec};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use testkit::busybox_rootfs;

/// A tmpfs at `<dir>/tree` holding `file`, with a second tmpfs mounted at `sub` (holding
/// `file` too). Unmounted on drop, also when the test fails.
struct MountTree {
    top: PathBuf,
    mounted: Vec<PathBuf>,
}

impl MountTree {
    fn new(dir: &Path) -> Self {
        let top = dir.join("tree");
        let mut tree = Self { top: top.clone(), mounted: Vec::new() };
        tree.tmpfs(&top);
        std::fs::write(top.join("file"), "top\n").expect("write");
        let sub = top.join("sub");
        tree.tmpfs(&sub);
        std::fs::write(sub.join("file"), "sub\n").expect("write");
        tree
    }

    fn tmpfs(&mut self, path: &Path) {
        std::fs::create_dir_all(path).expect("mkdir");
        mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::empty(), Some("size=1m")).expect("mount tmpfs");
        self.mounted.push(path.to_owned());
    }

    /// Binds `top` on `target` (host side, for the fallback test).
    fn bind_to(&mut self, target: &Path) {
        std::fs::create_dir_all(target).expect("mkdir");
        mount(Some(&self.top), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .expect("bind");
        self.mounted.push(target.to_owned());
        self.mounted.push(target.join("sub"));
    }
}

impl Drop for MountTree {
    fn drop(&mut self) {
        for path in self.mounted.iter().rev() {
            let _ = umount2(path, MntFlags::MNT_DETACH);
        }
    }
}

fn bind(source: &Path, target: &str, readonly: bool) -> Mount {
    Mount { target: target.into(), kind: MountKind::Bind { source: source.to_owned() }, readonly }
}

/// Tries to write a file in each directory; prints `<dir> ok` or `<dir> <error>`.
fn write_probe(dirs: &[&str]) -> String {
    dirs.iter()
        .map(|d| format!("if out=$(touch {d}/probe 2>&1); then echo {d} ok; else echo \"{d} $out\"; fi; "))
        .collect()
}

#[tokio::test]
async fn read_only_bind_is_read_only_in_every_submount() {
    testkit::require_root!();
    let env = TestEnv::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = MountTree::new(dir.path());
    let script = format!("cat /ro/file /ro/sub/file; {}", write_probe(&["/ro", "/ro/sub", "/rw", "/rw/sub"]));
    let mut spec = env.spec(&["/bin/sh", "-c", &script]);
    spec.mounts = vec![bind(&tree.top, "/ro", true), bind(&tree.top, "/rw", false)];
    let out = env.run(spec).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(&lines[..2], ["top", "sub"]);
    assert!(lines[2].starts_with("/ro ") && lines[2].contains("Read-only file system"), "{lines:?}");
    assert!(lines[3].starts_with("/ro/sub ") && lines[3].contains("Read-only file system"), "{lines:?}");
    assert_eq!(&lines[4..], ["/rw ok", "/rw/sub ok"]);
    assert!(tree.top.join("probe").exists() && tree.top.join("sub/probe").exists());
}

#[tokio::test]
async fn read_only_directory_rootfs_is_read_only_in_its_submounts() {
    testkit::require_root!();
    let env = TestEnv::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    let status =
        std::process::Command::new("cp").arg("-a").arg(busybox_rootfs()).arg(&rootfs).status().expect("cp");
    assert!(status.success());
    let mut tree = MountTree { top: rootfs.join("mnt"), mounted: Vec::new() };
    tree.tmpfs(&rootfs.join("mnt"));
    let mut spec = SandboxSpec::new(
        Rootfs::Dir(rootfs.clone()),
        vec!["/bin/sh".into(), "-c".into(), write_probe(&["", "/mnt", "/dev/shm"])],
    );
    spec.readonly_rootfs = true;
    let out = env.run(spec).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert!(lines[0].starts_with(" ") && lines[0].contains("Read-only file system"), "{lines:?}");
    assert!(lines[1].starts_with("/mnt ") && lines[1].contains("Read-only file system"), "{lines:?}");
    // kiln's own mounts keep their mode, like docker's --read-only
    assert_eq!(lines[2], "/dev/shm ok");
    assert!(!rootfs.join("mnt/probe").exists());
}

#[test]
fn remount_fallback_makes_every_submount_read_only() {
    testkit::require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = MountTree::new(dir.path());
    let copy = dir.path().join("copy");
    tree.bind_to(&copy);
    executor::mounts::remount_tree_readonly(&copy).expect("remount read-only");
    for path in [copy.join("x"), copy.join("sub/x")] {
        let err = std::fs::write(&path, "x").expect_err("a read-only bind took a write");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{}: {err}", path.display());
    }
    // the bind's mounts are read-only, not the tree they show
    std::fs::write(tree.top.join("x"), "x").expect("write in the original");
    std::fs::write(tree.top.join("sub/x"), "x").expect("write in the original submount");
}

#[test]
fn mount_points_are_found_below_a_path_with_escapes() {
    let mountinfo = "22 1 0:21 / / rw - ext4 /dev/sda rw\n\
                     30 22 0:30 / /srv/a\\040b rw - tmpfs tmpfs rw\n\
                     31 30 0:31 / /srv/a\\040b/sub rw - tmpfs tmpfs rw\n\
                     32 22 0:32 / /srv/a\\040bc rw - tmpfs tmpfs rw\n\
                     33 30 0:33 / /srv/a\\040b/sub rw - tmpfs tmpfs rw\n";
    assert_eq!(
        executor::mounts::mount_points_under(mountinfo, Path::new("/srv/a b")),
        vec![PathBuf::from("/srv/a b"), PathBuf::from("/srv/a b/sub")]
    );
}

#[tokio::test]
async fn binds_of_host_proc_and_sys_need_an_opt_in() {
    testkit::require_root!();
    let env = TestEnv::new();
    for source in ["/proc", "/sys", "/sys/fs/cgroup", "/proc/self/fd", "/dev/fd"] {
        let mut spec = env.spec(&["/bin/true"]);
        spec.mounts = vec![bind(Path::new(source), "/host", true)];
        match env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await {
            Err(Error::HostProcSysBind { host_path, target }) => {
                assert_eq!((host_path.as_path(), target.as_path()), (Path::new(source), Path::new("/host")));
            }
            other => panic!("{source}: expected a refusal, got {other:?}"),
        }
    }
    // with the opt-in: mounted, and read-only in every submount (checked without writing)
    let mut spec = env.spec(&["/bin/sh", "-c", "grep ' /host' /proc/self/mountinfo"]);
    spec.mounts = vec![bind(Path::new("/sys"), "/host", true)];
    spec.allow_host_proc_sys = true;
    let out = env.run(spec).await;
    let mounts: Vec<&str> = out.ok().lines().collect();
    assert!(mounts.len() > 1, "no submounts below /sys: the test proves little: {mounts:?}");
    for line in mounts {
        let options = line.split(' ').nth(5).expect("options");
        assert!(options.split(',').any(|o| o == "ro"), "writable: {line}");
    }
}

#[tokio::test]
async fn read_only_bind_of_the_host_root_is_read_only_everywhere() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sh", "-c", "grep ' /host' /proc/self/mountinfo"]);
    spec.mounts = vec![bind(Path::new("/"), "/host", true)];
    let out = env.run(spec).await;
    let mounts: Vec<&str> = out.ok().lines().collect();
    for wanted in ["/host/proc", "/host/sys"] {
        assert!(mounts.iter().any(|l| l.split(' ').nth(4) == Some(wanted)), "{wanted} missing: {mounts:?}");
    }
    for line in mounts {
        let options = line.split(' ').nth(5).expect("options");
        assert!(options.split(',').any(|o| o == "ro"), "writable: {line}");
    }
}

//! A RUN-style build step as the solver's op runner makes it: overlay of snapshot lowers plus a
//! fresh upper, extra mounts (read-only bind, cache dir, tmpfs, secret file), a working dir that
//! does not exist yet, the default network. The upper dir must afterwards hold exactly what the
//! process wrote: it becomes a layer, so no mount-point stubs may remain.

mod common;

use std::path::{Path, PathBuf};

use common::TestEnv;
use executor::{Mount, MountKind, NetworkMode, OverlayUpper, Rootfs, SandboxSpec};
use testkit::busybox_rootfs;

/// Every path under `root`, relative, sorted (directories with a trailing `/`).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).expect("inside").to_string_lossy().into_owned();
            if entry.file_type().expect("type").is_dir() {
                out.push(format!("{relative}/"));
                walk(root, &path, out);
            } else {
                out.push(relative);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A lower with only what a shell needs: no /proc, /dev, /sys, /run, /tmp, /etc/hosts …, so
/// that every mount point of the sandbox has to be created as a stub.
fn tiny_lower(dir: &Path) -> PathBuf {
    let lower = dir.join("tiny-lower");
    std::fs::create_dir_all(lower.join("etc")).expect("mkdir");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs().join("bin"))
        .arg(&lower)
        .status()
        .expect("cp");
    assert!(status.success());
    for file in ["etc/passwd", "etc/group"] {
        std::fs::copy(busybox_rootfs().join(file), lower.join(file)).expect("copy");
    }
    lower
}

#[tokio::test]
async fn upper_dir_holds_only_what_the_step_wrote() {
    testkit::require_root!();
    let env = TestEnv::new();
    let dir = env.dir.path();
    let lower = tiny_lower(dir);
    let upper = OverlayUpper { upper: dir.join("step/upper"), work: dir.join("step/work") };
    std::fs::create_dir_all(&upper.upper).expect("upper");
    std::fs::create_dir_all(&upper.work).expect("work");
    let source = dir.join("context");
    std::fs::create_dir_all(&source).expect("context");
    std::fs::write(source.join("input"), "from-context\n").expect("input");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).expect("cache");
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret\n").expect("secret");

    let script = "cat /src/input /run/secrets/token; echo built > out; echo c > /root/.cache/c; \
                  echo t > /tmp/scratch/t; mkdir /newdir; touch /newdir/f; \
                  grep -c nameserver /etc/resolv.conf >/dev/null; test -c /dev/null; pwd";
    let mut spec = SandboxSpec::new(
        Rootfs::Overlay { lowers: vec![lower], upper: Some(upper.clone()) },
        vec!["/bin/sh".into(), "-c".into(), script.into()],
    );
    spec.network = NetworkMode::Default;
    spec.process.cwd = "/work/dir".into();
    spec.process.env = vec!["PATH=/bin".into()];
    spec.mounts = vec![
        Mount { target: "/src".into(), kind: MountKind::Bind { source }, readonly: true },
        Mount {
            target: "/root/.cache".into(),
            kind: MountKind::Bind { source: cache.clone() },
            readonly: false,
        },
        Mount {
            target: "/tmp/scratch".into(),
            kind: MountKind::Tmpfs { size: None, mode: 0o755 },
            readonly: false,
        },
        Mount {
            target: "/run/secrets/token".into(),
            kind: MountKind::Bind { source: secret },
            readonly: true,
        },
    ];
    let out = env.run(spec).await;
    assert_eq!(out.ok(), "from-context\ns3cret\n/work/dir\n", "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(cache.join("c")).expect("cache write"), "c\n");
    assert_eq!(
        tree(&upper.upper),
        ["newdir/", "newdir/f", "work/", "work/dir/", "work/dir/out"],
        "the upper dir holds more than the step wrote"
    );
}

#[tokio::test]
async fn mount_stubs_under_existing_dirs_leave_no_copied_up_parents() {
    // /etc exists in the lower: the /etc/hosts stub made overlayfs copy /etc up; with the stub
    // gone, the copied-up empty /etc must go too
    testkit::require_root!();
    let env = TestEnv::new();
    let dir = env.dir.path();
    let lower = tiny_lower(dir);
    let upper = OverlayUpper { upper: dir.join("step/upper"), work: dir.join("step/work") };
    std::fs::create_dir_all(&upper.upper).expect("upper");
    std::fs::create_dir_all(&upper.work).expect("work");
    let mut spec = SandboxSpec::new(
        Rootfs::Overlay { lowers: vec![lower], upper: Some(upper.clone()) },
        vec!["/bin/sh".into(), "-c".into(), "cat /etc/hostname >/dev/null".into()],
    );
    spec.network = NetworkMode::None;
    let out = env.run(spec).await;
    out.ok();
    assert_eq!(tree(&upper.upper), Vec::<String>::new());
}

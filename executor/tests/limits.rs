//! Root integration tests: cgroup limits, read-only rootfs, bind mounts and tmpfs.

mod common;

use common::TestEnv;
use executor::{Mount, MountKind, Resources};

#[tokio::test]
async fn memory_limit_reports_oom_kill() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; echo survived",
    ]);
    spec.resources = Resources { memory: Some(32 * 1024 * 1024), ..Resources::default() };
    let out = env.run(spec).await;
    assert!(out.status.oom_killed, "expected an OOM kill: {out:?}");
    let fine = env.sh("echo fine").await;
    assert!(!fine.status.oom_killed);
}

#[tokio::test]
async fn pids_limit_stops_fork_bombs() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec =
        env.spec(&["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo done"]);
    spec.resources = Resources { pids: Some(4), ..Resources::default() };
    let out = env.run(spec).await;
    assert!(out.stdout.contains("can't fork") || out.stderr.contains("can't fork"), "{out:?}");
}

/// `--cpus`: the sandbox's cgroup gets the quota (v1 `cpu.cfs_quota_us` or v2 `cpu.max`, per
/// 100 ms period) and the sandbox's process is in that cgroup (seen from the host, so this holds
/// with or without a cgroup namespace), for a fraction and for more than one CPU.
#[tokio::test]
async fn cpu_quota_is_applied() {
    testkit::require_root!();
    let env = TestEnv::new();
    for (millis, quota_us) in [(500, "50000"), (1500, "150000")] {
        let mut spec = env.spec(&["/bin/sleep", "100"]);
        spec.resources = Resources { cpu_millis: Some(millis), ..Resources::default() };
        let sandbox =
            env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await.expect("spawn");
        env.ids.lock().expect("ids").push(sandbox.id().to_owned());
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu/kiln").join(sandbox.id()).join("cpu.cfs_quota_us");
        let v2 = std::path::Path::new("/sys/fs/cgroup/kiln").join(sandbox.id()).join("cpu.max");
        let quota =
            std::fs::read_to_string(&v1).or_else(|_| std::fs::read_to_string(&v2)).expect("cpu quota file");
        assert_eq!(quota.split_whitespace().next(), Some(quota_us), "cpu_millis {millis}: {quota}");
        let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", sandbox.pid())).expect("cgroup");
        let cpu_line = cgroups
            .lines()
            .find(|l| {
                let controllers = l.split(':').nth(1).unwrap_or_default();
                controllers.split(',').any(|c| c == "cpu") || l.starts_with("0::")
            })
            .unwrap_or_default();
        assert!(
            cpu_line.ends_with(&format!("/kiln/{}", sandbox.id())),
            "the sandbox's process is not in its cpu cgroup:\n{cgroups}"
        );
        sandbox.killer().kill().expect("kill");
        sandbox.wait().await.expect("wait");
    }
}

#[tokio::test]
async fn readonly_rootfs() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "touch /x 2>/dev/null && echo rw || echo ro; touch /dev/shm/ok && echo shm",
    ]);
    spec.readonly_rootfs = true;
    assert_eq!(env.run(spec).await.ok(), "ro\nshm\n");
}

#[tokio::test]
async fn bind_mounts_and_tmpfs() {
    testkit::require_root!();
    let env = TestEnv::new();
    let data = env.dir.path().join("data");
    let out_dir = env.dir.path().join("out");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::create_dir_all(&out_dir).expect("out");
    std::fs::write(data.join("in.txt"), "from host\n").expect("write");
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "cat /data/in.txt; touch /data/new 2>/dev/null && echo data-rw || echo data-ro; echo result > /out/r.txt; \
         echo t > /scratch/t && grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    ]);
    spec.mounts = vec![
        Mount { target: "/data".into(), kind: MountKind::Bind { source: data.clone() }, readonly: true },
        Mount { target: "/out".into(), kind: MountKind::Bind { source: out_dir.clone() }, readonly: false },
        Mount {
            target: "/scratch".into(),
            kind: MountKind::Tmpfs { size: Some(1 << 20), mode: 0o1777 },
            readonly: false,
        },
    ];
    let out = env.run(spec).await;
    assert_eq!(out.ok(), "from host\ndata-ro\ntmpfs\n");
    assert_eq!(std::fs::read_to_string(out_dir.join("r.txt")).expect("result"), "result\n");
    let upper = env.upper();
    for stub in ["data", "out", "scratch"] {
        assert!(!upper.join(stub).exists(), "mount point stub /{stub} left in the layer");
    }
}

#[tokio::test]
async fn overlay_with_more_layers_than_fit_in_mount_options() {
    testkit::require_root!();
    let env = TestEnv::new();
    let layers = env.dir.path().join("layers");
    let mut lowers = Vec::new();
    for index in (0..120).rev() {
        let layer = layers.join(format!("{index:03}-{}", "x".repeat(40)));
        std::fs::create_dir_all(layer.join("layers")).expect("layer");
        std::fs::write(layer.join("layers").join(format!("{index:03}")), "").expect("file");
        lowers.push(layer);
    }
    lowers.push(testkit::busybox_rootfs().to_owned());
    let mut spec = env.spec(&["/bin/sh", "-c", "ls /layers | wc -l"]);
    if let executor::Rootfs::Overlay { lowers: spec_lowers, .. } = &mut spec.rootfs {
        *spec_lowers = lowers;
    }
    assert_eq!(env.run(spec).await.ok(), "120\n");
}

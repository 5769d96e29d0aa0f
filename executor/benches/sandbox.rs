//! Sandbox start→exit→cleanup latency of `/bin/true` on the busybox rootfs (overlay over a
//! plain lower, fresh upper each time), for `--network none` and `default`. Needs root.
//! `cargo bench -p kiln-executor --bench sandbox`

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use executor::{Executor, NetworkMode, OverlayUpper, Rootfs, SandboxSpec, Stdio};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootfs/busybox-rootfs.sh");
    assert!(std::process::Command::new("sh").arg(script).arg(&base).status().expect("script").success());
    let executor = Executor::new(dir.path().join("run"))
        .expect("executor")
        .with_init_program(env!("CARGO_BIN_EXE_kiln-sandbox-init"))
        .with_bridge(executor::network::Bridge::new(
            format!("kb{}", std::process::id() % 100_000),
            std::net::Ipv4Addr::new(10, 199, 0, 1),
            24,
        ));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("sandbox");
    group.sample_size(30);
    for network in [NetworkMode::None, NetworkMode::Default] {
        group.bench_function(format!("true/{network:?}"), |b| {
            b.iter(|| {
                let layer = tempfile::tempdir_in(dir.path()).expect("layer");
                let upper =
                    OverlayUpper { upper: layer.path().join("upper"), work: layer.path().join("work") };
                std::fs::create_dir(&upper.upper).expect("upper");
                std::fs::create_dir(&upper.work).expect("work");
                let mut spec = SandboxSpec::new(
                    Rootfs::Overlay { lowers: vec![base.clone()], upper: Some(upper) },
                    vec!["/bin/true".into()],
                );
                spec.network = network;
                let status = runtime.block_on(async {
                    executor.spawn(spec, Stdio::Inherit { stdin: false }).await.expect("spawn").wait().await
                });
                assert_eq!(status.expect("wait").code, 0);
            })
        });
    }
    group.finish();
    executor.bridge().remove();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Shared helpers of the executor's root integration tests: per-test overlay uppers over the
//! busybox rootfs of `testkit` (built once per test binary), output capture and leak checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use executor::network::Bridge;
use executor::{Executor, ExitStatus, OutputStream, OverlayUpper, Rootfs, SandboxSpec, Stdio};
use testkit::busybox_rootfs;

/// A bridge of this test alone (unique name and /24 subnet), removed by [`TestEnv`]'s drop.
pub fn unique_bridge() -> Bridge {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    Bridge::new(
        format!("kt{}x{n}", pid % 100_000),
        std::net::Ipv4Addr::new(10, 200 + (pid % 50) as u8, (n % 256) as u8, 1),
        24,
    )
}

/// One test's world: a temp dir with the state dir and an overlay upper over the busybox base.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub executor: Executor,
    pub ids: std::sync::Mutex<Vec<String>>,
}

impl TestEnv {
    pub fn new() -> Self {
        assert!(testkit::is_root(), "TestEnv needs root: begin the test with testkit::require_root!()");
        let dir = tempfile::Builder::new().prefix("kiln-executor-test-").tempdir().expect("tempdir");
        let executor = Executor::new(dir.path().join("run"))
            .expect("executor")
            .with_init_program(env!("CARGO_BIN_EXE_kiln-sandbox-init"))
            .with_bridge(unique_bridge());
        Self { dir, executor, ids: std::sync::Mutex::new(Vec::new()) }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    /// An overlay rootfs (busybox lower + fresh upper) running `args`.
    pub fn spec(&self, args: &[&str]) -> SandboxSpec {
        self.spec_in("", args)
    }

    /// Like [`TestEnv::spec`] with its own upper/work under `name` (for concurrent sandboxes).
    pub fn spec_in(&self, name: &str, args: &[&str]) -> SandboxSpec {
        let upper = self.upper().join(name);
        let work = self.dir.path().join("work").join(name);
        std::fs::create_dir_all(&upper).expect("upper");
        std::fs::create_dir_all(&work).expect("work");
        SandboxSpec::new(
            Rootfs::Overlay {
                lowers: vec![busybox_rootfs().to_owned()],
                upper: Some(OverlayUpper { upper, work }),
            },
            args.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    /// Runs `spec`, collecting output.
    pub async fn run(&self, spec: SandboxSpec) -> Output {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
        let sandbox = self.executor.spawn(spec, Stdio::Stream(sender)).await.expect("spawn");
        self.ids.lock().expect("ids").push(sandbox.id().to_owned());
        let collect = tokio::spawn(async move {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = receiver.recv().await {
                match chunk.stream {
                    OutputStream::Stdout => stdout.extend(chunk.data),
                    OutputStream::Stderr => stderr.extend(chunk.data),
                }
            }
            (stdout, stderr)
        });
        let status = sandbox.wait().await.expect("wait");
        let (stdout, stderr) = collect.await.expect("collect");
        Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs a shell script in the default spec.
    pub async fn sh(&self, script: &str) -> Output {
        self.run(self.spec(&["/bin/sh", "-c", script])).await
    }
}

/// A finished sandbox's status and output.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.status.code, 0, "failed: {self:?}");
        &self.stdout
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let bridge = self.executor.bridge().clone();
        let _remove_bridge = BridgeGuard(bridge.clone());
        if std::thread::panicking() {
            return;
        }
        let root = self.dir.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(!mountinfo.contains(&root), "mounts left under {root}");
        let run = self.dir.path().join("run");
        let left: Vec<_> =
            std::fs::read_dir(&run).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "state left: {left:?}");
        for id in self.ids.lock().expect("ids").iter() {
            for hierarchy in ["memory", "cpu", "pids", "unified", ""] {
                let dir = Path::new("/sys/fs/cgroup").join(hierarchy).join("kiln").join(id);
                assert!(!dir.exists(), "cgroup left: {}", dir.display());
            }
            // the veth and then the lease are released by a detached process: bounded wait
            let veth = format!("/sys/class/net/kv{}", &id[..12]);
            wait_until(|| !Path::new(&veth).exists(), &format!("veth left: {veth}"));
        }
        let leases = Path::new(executor::network::RUN_DIR).join("ipam").join(&bridge.name);
        let left = || -> Vec<std::path::PathBuf> {
            std::fs::read_dir(&leases).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
        };
        wait_until(|| left().is_empty(), &format!("address leases left: {:?}", left()));
    }
}

/// Removes a test's bridge (link, iptables rules, lease dir) even when the test failed.
struct BridgeGuard(Bridge);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        self.0.remove();
        let link = Path::new("/sys/class/net").join(&self.0.name);
        if !std::thread::panicking() {
            assert!(!link.exists(), "bridge left: {}", link.display());
        }
    }
}

/// Polls `done` for up to 10 s; fails with `what` after that.
fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

//! The scaffolding of the runtime tests: a `--root` of its own with the busybox image `img`,
//! kiln run against it, and a drop guard that kills and removes whatever the test left.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Upper bound of every poll (generous: the machine is shared).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Kiln {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn start_time(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| (*s).to_owned())
}

impl Kiln {
    /// A fresh root with `img`: busybox, a `/seed` directory owned by 1234:5678, and `changes`.
    pub fn new(changes: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rootfs/busybox-rootfs.sh");
        assert!(Command::new("sh").arg(script).arg(&rootfs).status().unwrap().success());
        let seed = rootfs.join("seed");
        std::fs::create_dir_all(seed.join("sub")).unwrap();
        std::fs::write(seed.join("sub/file"), "seeded\n").unwrap();
        for path in [seed.join("sub/file"), seed.join("sub")] {
            std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
        }
        std::fs::set_permissions(seed.join("sub/file"), std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let tarball = tmp.path().join("busybox.tar");
        let tar = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status();
        assert!(tar.unwrap().success());
        let kiln = Self { root: tmp.path().join("root"), _tmp: tmp };
        let mut args = vec!["import", tarball.to_str().unwrap(), "img"];
        for change in changes {
            args.extend(["-c", change]);
        }
        kiln.ok(&args);
        kiln
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.arg("--root").arg(&self.root).args(args).env_remove("KILN_ROOT").stdin(Stdio::null());
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs kiln, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kiln run -d --network none ARGS` → the container id.
    pub fn detach(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        self.ok(&all).trim().to_owned()
    }

    pub fn inspect(&self, container: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", "--type", "container", container]);
        let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        all.remove(0)
    }

    pub fn status(&self, container: &str) -> String {
        self.inspect(container)["State"]["Status"].as_str().unwrap().to_owned()
    }

    pub fn logs(&self, container: &str) -> String {
        self.ok(&["logs", container])
    }

    pub fn state_file(&self, id: &str) -> serde_json::Value {
        let path = self.root.join("runtime-v1/containers").join(id).join("state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The monitor's pid of container `id`.
    pub fn monitor_pid(&self, id: &str) -> i32 {
        let state = self.state_file(id);
        state["monitor"].as_str().unwrap().split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Kiln {
    /// Kills every monitor and container process this root still has (start times checked),
    /// then lets `rm -f -v` remove the rest; the executor's next run cleans stale cgroups.
    fn drop(&mut self) {
        let containers = self.root.join("runtime-v1/containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for entry in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else { continue };
                let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                let mut targets = Vec::new();
                if let Some(token) = state["monitor"].as_str() {
                    let mut parts = token.split_whitespace();
                    if let (Some(pid), Some(start)) = (parts.next(), parts.next()) {
                        targets.push((pid.parse::<i32>().unwrap_or(0), start.to_owned()));
                    }
                }
                // a paused container acts on no signal: thaw it first
                for dir in state["cgroup_dirs"].as_array().into_iter().flatten().filter_map(|d| d.as_str()) {
                    let _ = std::fs::write(Path::new(dir).join("freezer.state"), "THAWED");
                    let _ = std::fs::write(Path::new(dir).join("cgroup.freeze"), "0");
                }
                if let (Some(pid), Some(start)) = (state["pid"].as_i64(), state["pid_start"].as_u64()) {
                    targets.push((pid as i32, start.to_string()));
                }
                for (pid, start) in targets {
                    if pid > 0 && start_time(pid).as_deref() == Some(start.as_str()) {
                        unsafe_free_kill(pid);
                    }
                }
            }
            let ids = self.output(&["ps", "-aq", "--no-trunc"]);
            for id in String::from_utf8_lossy(&ids.stdout).lines() {
                let _ = self.output(&["rm", "-f", "-v", id]);
            }
        }
        // the executor's state of killed sandboxes (cgroups, leases) goes with the next executor
        let _ = self.output(&["run", "--rm", "--network", "none", "img", "true"]);
    }
}

pub fn unsafe_free_kill(pid: i32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).stderr(Stdio::null()).status();
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#![allow(clippy::unwrap_used)]
//! Ctrl-C during `kiln build` (root), and GC while that build uses its snapshots: a build whose
//! RUN prints `step-started` then sleeps is interrupted with SIGINT once that line shows in the
//! plain progress (an event, not a delay). Meanwhile `kiln images prune` runs a GC
//! that must skip the sweep (the build has the store open) and delete nothing; after the
//! interrupt kiln exits with an error, and no process of the build, no mount under its root,
//! no cgroup and no lock is left; the garbage is then reclaimed, and the next build works and
//! reuses the first step from the cache.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn kiln(root: &Path) -> Command {
    let mut cmd = testkit::kiln_command();
    cmd.arg("--root").arg(root);
    cmd
}

/// Mount points (from this process's mountinfo) under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// The cgroup directories (v1 controllers and v2) of `pid`, as host paths.
fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        if path == "/" || !path.contains("kiln") {
            continue;
        }
        let base = match controllers {
            "" => PathBuf::from("/sys/fs/cgroup/unified"),
            c => PathBuf::from("/sys/fs/cgroup").join(c.trim_start_matches("name=")),
        };
        let v2_root = PathBuf::from("/sys/fs/cgroup");
        for candidate in [base, v2_root] {
            let dir = candidate.join(path.trim_start_matches('/'));
            if dir.exists() {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Every `*.lock` file under `dir`.
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(current) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                found.push(path);
            }
        }
    }
    found
}

/// The build process; if the test fails while it runs, interrupted (SIGINT, by PID, so it
/// cleans up its sandbox), then killed after 30 s, and reaped.
struct BuildProcess(std::process::Child);

impl Drop for BuildProcess {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ctrl_c_during_a_build_leaves_nothing_behind_and_gc_waits_for_it() {
    testkit::require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let tarball = testkit::busybox_tarball();
    let root = tmp.path().join("root");
    run(kiln(&root).arg("import").arg(tarball).arg("busybox"));
    let context = tmp.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nRUN echo first > /first.txt\nARG WAIT=300\n\
         RUN echo step-started; sleep $WAIT; echo step-finished\n",
    )
    .unwrap();

    let build = kiln(&root)
        .args(["build", "--progress", "plain", "-t", "interrupted"])
        .arg(&context)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut build = BuildProcess(build);
    let kiln_pid = build.0.id();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = build.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line);
        }
    });
    let mut progress = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !progress.iter().any(|l: &String| l.ends_with(" step-started")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => progress.push(line),
            Err(_) => {
                panic!("the RUN step did not start:\n{}", progress.join("\n"));
            }
        }
    }

    // the build runs: its sandbox processes, mounts and cgroups exist now
    let processes = testkit::process::descendants(kiln_pid);
    assert!(!processes.is_empty(), "the RUN step's processes");
    let cgroups: Vec<PathBuf> = processes.iter().flat_map(|p| cgroup_dirs(*p)).collect();
    let snapshots_before: Vec<_> = std::fs::read_dir(root.join("snapshots")).unwrap().flatten().collect();

    // GC while the build uses its snapshots: skipped, nothing removed
    let prune = run(kiln(&root).args(["images", "prune", "--force"]));
    let prune_out = String::from_utf8_lossy(&prune.stdout);
    assert!(
        prune_out.contains("Space not reclaimed yet: another kiln process has the store open"),
        "GC did not see the running build: {prune_out}"
    );
    let snapshots_during: Vec<_> = std::fs::read_dir(root.join("snapshots")).unwrap().flatten().collect();
    assert_eq!(
        snapshots_during.len(),
        snapshots_before.len(),
        "a GC removed snapshots under a running build"
    );

    // Ctrl-C
    run(Command::new("kill").args(["-INT", &kiln_pid.to_string()]));
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = build.0.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > Duration::from_secs(60) {
            panic!("kiln did not exit within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    progress.extend(lines_rx.try_iter());
    let progress = progress.join("\n");
    assert!(!status.success(), "an interrupted build must fail: {progress}");
    let finished = |text: &str| text.lines().any(|l| l.ends_with(" step-finished") && !l.contains(" RUN "));
    assert!(!finished(&progress), "the step ran to its end: {progress}");

    // nothing left: processes, mounts, cgroups, locks
    let alive: Vec<&u32> = processes.iter().filter(|p| Path::new(&format!("/proc/{p}")).exists()).collect();
    assert!(alive.is_empty(), "processes of the build survived: {alive:?}");
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "mounts left");
    let left: Vec<&PathBuf> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    for lock in lock_files(&root) {
        let free = Command::new("flock").args(["-n", "-x"]).arg(&lock).arg("true").status().unwrap();
        assert!(free.success(), "{} is still locked", lock.display());
    }

    // the GC the build held off runs now
    let prune = run(kiln(&root).args(["images", "prune", "--force"]));
    let prune_out = String::from_utf8_lossy(&prune.stdout);
    assert!(prune_out.contains("Total reclaimed space"), "{prune_out}");

    // the next build works and reuses what the interrupted one finished
    let again = run(kiln(&root)
        .args(["build", "--progress", "plain", "-t", "after", "--build-arg", "WAIT=0"])
        .arg(&context));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(finished(&text), "{text}");
    assert!(
        text.lines().any(|l| l.contains("RUN echo first")) && text.contains("CACHED"),
        "the first RUN should come from the cache: {text}"
    );
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "mounts left");
}

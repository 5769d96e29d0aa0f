#![allow(clippy::unwrap_used)]
//! `kiln run` end to end (as root): a busybox image imported with ENTRYPOINT/CMD/ENV/WORKDIR/
//! USER, docker's command-line rules, flags, exit codes, SIGTERM. Each test has its own
//! `--root` and checks that nothing is left behind (state, container layers, mounts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh root with `img` (busybox + config) imported; on drop, checks that nothing is left.
struct Kiln(testkit::Kiln);

impl std::ops::Deref for Kiln {
    type Target = testkit::Kiln;

    fn deref(&self) -> &testkit::Kiln {
        &self.0
    }
}

impl Kiln {
    fn new() -> Self {
        let kiln = testkit::Kiln::new();
        kiln.import_busybox(
            "img",
            &[
                r#"ENTRYPOINT ["/bin/echo", "ep"]"#,
                r#"CMD ["default"]"#,
                "ENV GREETING=hello",
                "WORKDIR /srv/app",
                "USER www-data",
            ],
        );
        Self(kiln)
    }

    /// `kiln run ARGS` → (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        let out = self.output(&all);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

impl Kiln {
    /// Ids of this root's sandboxes whose memory cgroup holds a process (run them with `-m`:
    /// without limits, a sandbox joins no v1 hierarchy).
    fn running_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("run")) else { return Vec::new() };
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| {
                ["/sys/fs/cgroup/memory/kiln", "/sys/fs/cgroup/kiln"].iter().any(|parent| {
                    std::fs::read_to_string(Path::new(parent).join(id).join("cgroup.procs"))
                        .is_ok_and(|procs| !procs.trim().is_empty())
                })
            })
            .collect()
    }

    fn wait_until_running(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ids = self.running_ids();
            if !ids.is_empty() {
                return ids;
            }
            assert!(Instant::now() < deadline, "container never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kiln {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for dir in ["run", "containers"] {
            let left: Vec<_> = std::fs::read_dir(self.root.join(dir))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "left in {dir}: {left:?}");
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(self.root.to_str().unwrap()), "mounts left under the root");
    }
}

#[test]
fn entrypoint_and_cmd_follow_docker_rules() {
    testkit::require_root!();
    let kiln = Kiln::new();
    assert_eq!(kiln.run(&["img"]), (0, "ep default\n".into(), String::new()));
    assert_eq!(kiln.run(&["img", "a", "-b"]).1, "ep a -b\n");
    assert_eq!(kiln.run(&["--entrypoint", "/bin/echo", "img"]).1, "\n");
    assert_eq!(kiln.run(&["--entrypoint", "", "img", "/bin/echo", "plain"]).1, "plain\n");
}

#[test]
fn image_config_and_flags_apply() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let script = "echo $GREETING $EXTRA $FROMFILE; pwd; id -un";
    let (code, out, err) = kiln.run(&["--entrypoint", "/bin/sh", "img", "-c", script]);
    assert_eq!((code, out.as_str()), (0, "hello\n/srv/app\nwww-data\n"), "{err}");

    let env_file = kiln.root.parent().unwrap().join("env.list");
    std::fs::write(&env_file, "# comment\nFROMFILE=file\n").unwrap();
    let (code, out, err) = kiln.run(&[
        "-e",
        "EXTRA=extra",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "root",
        "--hostname",
        "boxy",
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        "echo $GREETING $EXTRA $FROMFILE; pwd; id -un; hostname",
    ]);
    assert_eq!((code, out.as_str()), (0, "hello extra file\n/tmp\nroot\nboxy\n"), "{err}");
}

#[test]
fn mounts_read_only_and_limits() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let host = kiln.root.parent().unwrap().join("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "vol\n").unwrap();
    let volume = format!("{}:/vol:ro", host.display());
    let (code, out, err) = kiln.run(&[
        "-v",
        &volume,
        "--tmpfs",
        "/scratch:size=1m",
        "--read-only",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "-u",
        "root",
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        "cat /vol/f; touch /vol/x 2>/dev/null || echo vol-ro; touch /x 2>/dev/null || echo root-ro; \
         echo ok > /scratch/s && cat /scratch/s",
    ]);
    assert_eq!((code, out.as_str()), (0, "vol\nvol-ro\nroot-ro\nok\n"), "{err}");
}

#[test]
fn exit_codes() {
    testkit::require_root!();
    let kiln = Kiln::new();
    assert_eq!(kiln.run(&["--entrypoint", "/bin/sh", "img", "-c", "exit 42"]).0, 42);
    let (code, _, err) = kiln.run(&["--entrypoint", "nosuch", "img"]);
    assert_eq!(code, 127);
    assert!(err.contains("executable file not found"), "{err}");
    let out = kiln.output(&["run", "--network", "bogus", "img"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown network mode"), "{err}");
}

#[test]
fn sigterm_kills_the_container_and_cleans_up() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let mut child = kiln
        .cmd(&["run", "--rm", "--network", "none", "-m", "64m", "--entrypoint", "/bin/sleep", "img", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ids = kiln.wait_until_running();
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    for hierarchy in ["memory", ""] {
        let dir = Path::new("/sys/fs/cgroup").join(hierarchy).join("kiln").join(&ids[0]);
        assert!(!dir.exists(), "cgroup left (container tree alive?): {}", dir.display());
    }
}

#[test]
fn leftovers_of_a_sigkilled_kiln_are_cleaned_by_the_next_run() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let mut child = kiln
        .cmd(&["run", "--rm", "--network", "none", "-m", "64m", "--entrypoint", "/bin/sleep", "img", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ids = kiln.wait_until_running();
    child.kill().unwrap();
    child.wait().unwrap();
    let id = &ids[0];
    assert!(kiln.root.join("run").join(id).exists(), "nothing left to clean: the test proves nothing");
    assert!(std::fs::read_dir(kiln.root.join("containers")).unwrap().next().is_some());
    let (code, _, err) = kiln.run(&["--entrypoint", "/bin/true", "img"]);
    assert_eq!(code, 0, "{err}");
    for hierarchy in ["memory", "pids", ""] {
        let dir = Path::new("/sys/fs/cgroup").join(hierarchy).join("kiln").join(id);
        assert!(!dir.exists(), "cgroup left: {}", dir.display());
    }
    // the drop guard checks that run/ and containers/ are empty and nothing is mounted
}

#[test]
fn stdin_tty_caps_init_signals_and_oom() {
    testkit::require_root!();
    let kiln = Kiln::new();
    // -i: the caller's stdin reaches the container
    let mut child = kiln
        .cmd(&["run", "--rm", "-i", "--network", "none", "--entrypoint", "/bin/cat", "img"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"from-stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "from-stdin\n"));
    // without -i, stdin is /dev/null
    assert_eq!(kiln.run(&["--entrypoint", "/bin/cat", "img"]), (0, String::new(), String::new()));
    // -t: a terminal, even when kiln's own stdio is not one
    let (code, out, err) =
        kiln.run(&["-t", "--entrypoint", "/bin/sh", "img", "-c", "test -t 0 && test -t 1 && echo tty"]);
    assert_eq!((code, out.as_str()), (0, "tty\r\n"), "{err}");
    // capabilities: docker's default set, minus/plus flags
    let cap_eff = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["-u", "root", "--entrypoint", "/bin/sh", "img", "-c", "grep CapEff /proc/self/status"]);
        let (code, out, err) = kiln.run(&args);
        assert_eq!(code, 0, "{err}");
        u64::from_str_radix(out.trim().rsplit('\t').next().unwrap(), 16).unwrap()
    };
    assert_eq!(cap_eff(&[]), 0x00000000a80425fb);
    assert_eq!(cap_eff(&["--cap-drop", "ALL"]), 0);
    assert_eq!(cap_eff(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]), 1 << 12);
    assert_eq!(
        cap_eff(&["--cap-add", "SYS_ADMIN", "--cap-drop", "CHOWN"]),
        (0x00000000a80425fb | 1 << 21) & !1
    );
    // --init: an init is PID 1, the command is not
    let (code, out, err) = kiln.run(&["--init", "--entrypoint", "/bin/sh", "img", "-c", "echo $$"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(out.trim(), "1");
    assert_eq!(kiln.run(&["--entrypoint", "/bin/sh", "img", "-c", "echo $$"]).1, "1\n");
    // death by signal N exits 128+N (the command must not be PID 1, which ignores signals it
    // has no handler for, as in docker)
    assert_eq!(
        kiln.run(&["--init", "--entrypoint", "/bin/sh", "img", "-c", "kill -TERM $$; sleep 5"]).0,
        128 + 15
    );
    assert_eq!(kiln.run(&["--init", "--entrypoint", "/bin/sh", "img", "-c", "kill -KILL $$"]).0, 128 + 9);
    // an OOM kill is reported
    let (_, _, err) = kiln.run(&[
        "-m",
        "32m",
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null",
    ]);
    assert!(err.contains("OOM"), "{err}");
}

#[test]
fn missing_images_are_pulled_and_pull_errors_are_clear() {
    testkit::require_root!();
    let kiln = Kiln::new();
    // port 1 on loopback: nothing listens, the pull fails fast
    let out = kiln.output(&["run", "--rm", "--network", "none", "127.0.0.1:1/nosuch:v1"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unable to find image '127.0.0.1:1/nosuch:v1' locally"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// A tmpfs at `<dir>/tree` (holding `file`) with a second tmpfs at `tree/sub`, in the test's own
/// directory: nothing is written on the host. Unmounted on drop, also when the test fails.
struct MountTree {
    top: PathBuf,
}

impl MountTree {
    fn new(dir: &Path) -> Self {
        let top = dir.join("tree");
        let tree = Self { top: top.clone() };
        for path in [top.clone(), top.join("sub")] {
            std::fs::create_dir_all(&path).unwrap();
            let status =
                Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&path).status();
            assert!(status.unwrap().success(), "mount tmpfs on {}", path.display());
            std::fs::write(path.join("file"), "data\n").unwrap();
        }
        tree
    }
}

impl Drop for MountTree {
    fn drop(&mut self) {
        for path in [self.top.join("sub"), self.top.clone()] {
            let _ = Command::new("umount").arg("-l").arg(&path).status();
        }
    }
}

/// Shell lines `<dir> ok` or `<dir> <touch's error>` for a write in each directory.
fn write_probe(dirs: &[&str]) -> String {
    dirs.iter()
        .map(|d| format!("if out=$(touch {d}/probe 2>&1); then echo {d} ok; else echo \"{d} $out\"; fi; "))
        .collect()
}

#[test]
fn read_only_binds_are_read_only_in_every_submount() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let tree = MountTree::new(kiln.root.parent().unwrap());
    let top = tree.top.to_str().unwrap();
    let volume = format!("{top}:/v:ro");
    let mount = format!("type=bind,source={top},target=/m,readonly,bind-propagation=rprivate");
    let writable = format!("{top}:/w");
    let script = format!("cat /v/sub/file; {}", write_probe(&["/v", "/v/sub", "/m", "/m/sub", "/w/sub"]));
    let (code, out, err) = kiln.run(&[
        "-v",
        &volume,
        "--mount",
        &mount,
        "-v",
        &writable,
        "-u",
        "root",
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        &script,
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "data");
    for (line, dir) in lines[1..5].iter().zip(["/v", "/v/sub", "/m", "/m/sub"]) {
        assert!(line.starts_with(&format!("{dir} ")) && line.contains("Read-only file system"), "{lines:?}");
    }
    assert_eq!(lines[5], "/w/sub ok");
    assert!(!tree.top.join("probe").exists(), "a read-only bind took a write");
    // docker's options that would weaken it are refused
    let weak = format!("type=bind,source={top},target=/m,readonly,bind-recursive=writable");
    let (code, _, err) = kiln.run(&["--mount", &weak, "img"]);
    assert_ne!(code, 0);
    assert!(err.contains("bind-recursive=writable is not supported"), "{err}");
}

#[test]
fn binds_of_host_proc_and_sys_need_an_opt_in() {
    testkit::require_root!();
    let kiln = Kiln::new();
    for (flag, value) in
        [("-v", "/proc:/hp:ro"), ("-v", "/sys/fs/cgroup:/cg"), ("--mount", "type=bind,src=/sys,dst=/s")]
    {
        let (code, _, err) = kiln.run(&[flag, value, "--entrypoint", "/bin/true", "img"]);
        assert_ne!(code, 0, "{value} was mounted");
        assert!(
            err.contains("exposes the host's /proc or /sys") && err.contains("--allow-host-proc-sys"),
            "{err}"
        );
    }
    let (code, out, err) = kiln.run(&[
        "--allow-host-proc-sys",
        "-v",
        "/proc:/hp:ro",
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        "test -d /hp/1 && echo host-proc",
    ]);
    assert_eq!((code, out.as_str()), (0, "host-proc\n"), "{err}");
}

#[test]
fn big_environments_run_and_too_big_arguments_fail_with_e2big() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let env_file = kiln.root.parent().unwrap().join("big.env");
    let entries: Vec<String> = (1..=4).map(|n| format!("E{n}={}", n.to_string().repeat(60_000))).collect();
    std::fs::write(&env_file, entries.join("\n")).unwrap();
    let (code, out, err) = kiln.run(&[
        "--env-file",
        env_file.to_str().unwrap(),
        "--entrypoint",
        "/bin/sh",
        "img",
        "-c",
        "echo ${#E1} ${#E2} ${#E3} ${#E4}",
    ]);
    assert_eq!((code, out.as_str()), (0, "60000 60000 60000 60000\n"), "{err}");
    // one string above the kernel's 128 KiB per string: execve refuses it (kiln's own command
    // line could not carry it either, hence the env file)
    std::fs::write(&env_file, format!("BIG={}", "x".repeat(200_000))).unwrap();
    let (code, _, err) =
        kiln.run(&["--env-file", env_file.to_str().unwrap(), "--entrypoint", "/bin/true", "img"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("exec /bin/true: E2BIG: argument list too long"), "{err}");
}

#[test]
fn cgroups_of_a_sigkilled_kiln_are_removed_by_any_command_that_opens_the_store() {
    testkit::require_root!();
    let kiln = Kiln::new();
    let mut child = kiln
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-m",
            "64m",
            "--pids-limit",
            "20",
            "--entrypoint",
            "/bin/sleep",
            "img",
            "100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ids = kiln.wait_until_running();
    child.kill().unwrap();
    child.wait().unwrap();
    let id = &ids[0];
    let cgroup_dirs: Vec<PathBuf> = ["memory", "pids", ""]
        .iter()
        .map(|hierarchy| Path::new("/sys/fs/cgroup").join(hierarchy).join("kiln").join(id))
        .collect();
    assert!(cgroup_dirs.iter().any(|d| d.exists()), "no cgroup left to clean: the test proves nothing");
    let out = kiln.output(&["images"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for dir in &cgroup_dirs {
        assert!(!dir.exists(), "cgroup left: {}", dir.display());
    }
    // the drop guard checks that run/ and containers/ are empty and nothing is mounted
}

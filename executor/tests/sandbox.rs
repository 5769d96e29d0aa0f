//! Root integration tests of the sandbox: isolation, users, env, cwd, exit codes.

mod common;

use common::TestEnv;
use executor::Error;

#[tokio::test]
async fn output_is_streamed_per_stream() {
    testkit::require_root!();
    let env = TestEnv::new();
    let out = env.sh("echo hello; echo err >&2").await;
    assert_eq!(out.ok(), "hello\n");
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn only_container_processes_are_visible_and_first_is_pid_1() {
    testkit::require_root!();
    let env = TestEnv::new();
    let out = env.run(env.spec(&["/bin/ls", "/proc"])).await;
    let pids: Vec<&str> =
        out.ok().split_whitespace().filter(|e| e.chars().all(|c| c.is_ascii_digit())).collect();
    assert_eq!(pids, vec!["1"]);
    assert_eq!(env.sh("echo $$").await.ok(), "1\n");
}

#[tokio::test]
async fn hostname_and_etc_files() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "hostname; cat /etc/hostname; grep -c box /etc/hosts; cat /etc/resolv.conf | grep -c nameserver",
    ]);
    spec.hostname = Some("box".into());
    let out = env.run(spec).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(&lines[..3], &["box", "box", "1"]);
    assert_ne!(lines[3], "0");
    // the generated files are bind mounts: nothing was written into the layer
    let upper = env.upper();
    assert!(!upper.join("etc/hosts").exists() && !upper.join("etc/hostname").exists(), "stubs left in upper");
}

#[tokio::test]
async fn host_files_are_invisible() {
    testkit::require_root!();
    let env = TestEnv::new();
    let marker = env.dir.path().join("host-marker");
    std::fs::write(&marker, "secret").expect("marker");
    let script = format!("test -e {} && echo visible || echo hidden", marker.display());
    assert_eq!(env.sh(&script).await.ok(), "hidden\n");
}

#[tokio::test]
async fn masked_and_readonly_paths() {
    testkit::require_root!();
    let env = TestEnv::new();
    let out = env
        .sh("wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware /proc/acpi | grep -vc : ; \
             echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo denied; \
             touch /sys/x 2>/dev/null && echo sys-rw || echo sys-ro")
        .await;
    assert_eq!(out.ok(), "0\n0\n1\ndenied\nsys-ro\n", "{}", out.stderr);
}

#[tokio::test]
async fn capabilities_match_docker_defaults() {
    testkit::require_root!();
    let env = TestEnv::new();
    let out = env.sh("grep -E '^Cap(Eff|Prm|Bnd|Inh)' /proc/self/status").await;
    let text = out.ok();
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");
    assert!(text.contains("CapBnd:\t00000000a80425fb"), "{text}");
    assert!(text.contains("CapInh:\t0000000000000000"), "{text}");
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "grep -E '^Cap(Eff|Bnd)' /proc/self/status; grep NoNewPrivs /proc/self/status",
    ]);
    spec.process.user = "nobody".into();
    spec.process.cap_drop = vec!["NET_RAW".into()];
    let out = env.run(spec).await;
    assert_eq!(out.ok(), "CapEff:\t0000000000000000\nCapBnd:\t00000000a80405fb\nNoNewPrivs:\t1\n");
}

#[tokio::test]
async fn seccomp_blocks_namespace_and_mount_syscalls() {
    testkit::require_root!();
    let env = TestEnv::new();
    let out = env
        .sh("unshare -m true 2>&1 && echo unshared; mount -t tmpfs none /mnt 2>&1 && echo mounted; \
             grep Seccomp: /proc/self/status")
        .await;
    let text = out.ok();
    assert!(!text.contains("unshared") && !text.contains("mounted"), "{text}");
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
}

#[tokio::test]
async fn users_and_groups() {
    testkit::require_root!();
    let env = TestEnv::new();
    let cases = [
        // the primary gid first (current BuildKit, containerd), then /etc/group memberships
        // (none with an explicit group, as runc): root is in wheel
        ("", "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n/root\n"),
        ("www-data", "uid=33(www-data) gid=33(www-data) groups=33(www-data)\n/var/www\n"),
        ("nobody:daemon", "uid=65534(nobody) gid=1(daemon) groups=1(daemon)\n/home\n"),
        ("1234:5678", "uid=1234 gid=5678 groups=5678\n/\n"),
    ];
    for (user, expected) in cases {
        let mut spec = env.spec(&["/bin/sh", "-c", "id; echo $HOME"]);
        spec.process.user = user.into();
        assert_eq!(env.run(spec).await.ok(), expected, "user {user:?}");
    }
    let mut spec = env.spec(&["/bin/true"]);
    spec.process.user = "alice".into();
    let err =
        env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await.expect_err("unknown user");
    assert!(err.to_string().contains("unable to find user alice"), "{err}");
}

#[tokio::test]
async fn environment_and_working_directory() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sh", "-c", "echo $FOO; echo $PATH; pwd; umask"]);
    spec.process.env = vec!["FOO=bar baz".into()];
    spec.process.cwd = "/work/dir".into();
    let out = env.run(spec).await;
    assert_eq!(
        out.ok(),
        "bar baz\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/work/dir\n0022\n"
    );
    assert!(env.upper().join("work/dir").is_dir(), "working directory is created in the layer");
}

#[tokio::test]
async fn exit_codes_and_missing_commands() {
    testkit::require_root!();
    let env = TestEnv::new();
    assert_eq!(env.sh("exit 3").await.status.code, 3);
    let out = env.sh("sh -c 'kill -KILL $$'; echo $?").await;
    assert_eq!(out.ok(), "137\n");
    let err =
        env.executor.spawn(env.spec(&["nosuchcommand"]), executor::Stdio::Inherit { stdin: false }).await;
    match err {
        Err(Error::Setup { message, exit_code }) => {
            assert_eq!(exit_code, 127);
            assert!(message.contains("executable file not found"), "{message}");
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[tokio::test]
async fn signals_give_128_plus_n() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sleep", "100"]);
    spec.process.init = true;
    let sandbox = env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await.expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    sandbox.killer().signal(nix::sys::signal::Signal::SIGTERM).expect("signal");
    let status = sandbox.wait().await.expect("wait");
    assert_eq!(status.code, 143);

    let sandbox = env
        .executor
        .spawn(env.spec(&["/bin/sleep", "100"]), executor::Stdio::Inherit { stdin: false })
        .await
        .expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    sandbox.killer().kill().expect("kill");
    let status = sandbox.wait().await.expect("wait");
    assert_eq!((status.code, status.signal), (137, Some(9)));
}

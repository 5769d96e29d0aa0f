//! Root integration tests: cancellation, dropping a running sandbox, cleaning up after a
//! killed kiln, and ttys.

mod common;

use std::io::Read;
use std::time::Duration;

use common::TestEnv;
use executor::{Executor, NetworkMode, Resources, Stdio};

#[tokio::test]
async fn cancellation_kills_the_whole_tree_and_cleans_up() {
    testkit::require_root!();
    let env = TestEnv::new();
    // the three background sleeps exist before `ready` is printed: cancel on that signal, not
    // after a guessed delay (which could come before the tree exists)
    let mut spec = env.spec(&["/bin/sh", "-c", "sleep 100 & sleep 100 & sleep 100 & echo ready; wait"]);
    spec.network = NetworkMode::Default;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let sandbox = env.executor.spawn(spec, Stdio::Stream(tx)).await.expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    let pid = sandbox.pid();
    let (tree_tx, tree_rx) = tokio::sync::oneshot::channel();
    let ready = async move {
        let mut out = Vec::new();
        while !String::from_utf8_lossy(&out).contains("ready\n") {
            let chunk = rx.recv().await.expect("the sandbox printed `ready` before its output closed");
            out.extend(chunk.data);
        }
        let _ = tree_tx.send(testkit::process::descendants(pid.unsigned_abs()));
        // keep draining so the sandbox never blocks on a full channel
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
    };
    let status = sandbox.wait_or_cancel(ready).await.expect("wait");
    assert_eq!(status.code, 137);
    let tree = tree_rx.await.expect("the tree was listed before the cancel");
    assert!(tree.len() >= 3, "the three sleeps were running at the cancel: {tree:?}");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "PID 1 survived");
    let survivors: Vec<&u32> =
        tree.iter().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    assert!(survivors.is_empty(), "processes of the sandbox survived the cancel: {survivors:?}");
}

#[tokio::test]
async fn dropping_a_running_sandbox_cleans_up() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sleep", "100"]);
    spec.resources = Resources { memory: Some(64 << 20), ..Resources::default() };
    let sandbox = env.executor.spawn(spec, Stdio::Inherit { stdin: false }).await.expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    drop(sandbox);
}

#[tokio::test]
async fn leftovers_of_a_killed_kiln_are_cleaned_by_the_next_one() {
    testkit::require_root!();
    let env = TestEnv::new();
    let state_dir = env.dir.path().join("run");
    let id = "0123456789abcdef-stale-test";
    let dir = state_dir.join(id);
    std::fs::create_dir_all(dir.join("rootfs")).expect("dir");
    let resources = Resources { memory: Some(64 << 20), ..Resources::default() };
    let cgroups = executor::cgroup::Cgroups::create(id, &resources, None).expect("cgroups");
    assert!(cgroups.dirs.iter().all(|d| d.exists()));
    // an address lease and a host veth, as a sandbox on the default network has
    let attachment = env.executor.bridge().lease(id).expect("lease");
    let status = std::process::Command::new("ip")
        .args(["link", "add", &attachment.host_veth, "type", "veth", "peer", "name", "kvpeer-stale"])
        .status()
        .expect("ip");
    assert!(status.success());
    let record = executor::state::Record {
        id: id.into(),
        owner: format!("{} 12345", i32::MAX),
        cgroups: Some(cgroups.clone()),
        network: Some(attachment.clone()),
        published: false,
    };
    record.save(&dir).expect("record");
    let _next = Executor::new(&state_dir).expect("executor");
    assert!(!dir.exists(), "state dir left");
    assert!(cgroups.dirs.iter().all(|d| !d.exists()), "cgroups left");
    assert!(!attachment.lease.exists(), "address lease left");
    let veth = std::path::Path::new("/sys/class/net").join(&attachment.host_veth);
    assert!(!veth.exists(), "veth left");
}

#[tokio::test]
async fn tty_gives_a_terminal() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&[
        "/bin/sh",
        "-c",
        "test -t 0 && test -t 1 && echo is-a-tty; stty size; read line; stty size",
    ]);
    spec.process.tty = true;
    let mut sandbox = env.executor.spawn(spec, Stdio::Tty { size: Some((24, 80)) }).await.expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    let master = sandbox.take_pty().expect("pty");
    let mut input = std::fs::File::from(master.try_clone().expect("dup"));
    let reader_master = master.try_clone().expect("dup");
    let (chunks, received) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(reader_master);
        let mut buffer = [0u8; 4096];
        // EIO once the slave side is closed
        while let Ok(n) = file.read(&mut buffer) {
            if n == 0 || chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    // resize while it waits for input (after the first `stty size`), then let it continue
    while !String::from_utf8_lossy(&output).contains("24 80") {
        output.extend(received.recv_timeout(Duration::from_secs(10)).expect("first output"));
    }
    executor::tty::set_window_size(&master, 33, 101).expect("resize");
    std::io::Write::write_all(&mut input, b"go\n").expect("input");
    let status = sandbox.wait().await.expect("wait");
    drop((input, master));
    reader.join().expect("reader");
    output.extend(received.try_iter().flatten());
    let output = String::from_utf8_lossy(&output);
    assert_eq!(status.code, 0, "{output}");
    assert_eq!(output, "is-a-tty\r\n24 80\r\ngo\r\n33 101\r\n");
}

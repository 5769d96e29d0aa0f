#![allow(clippy::unwrap_used)]
//! Containers that outlive the command (as root): `run -d`, `logs -f`, `exec`, `stop`,
//! restart policies, a SIGKILLed monitor, concurrent creates, volumes and copy-up. Every test
//! has its own `--root`; a drop guard SIGKILLs whatever monitors and containers it left, even
//! when an assertion failed. Waits are bounded polls, never timed assertions.

mod runtime_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runtime_support::{Kiln, start_time, stderr_of, unsafe_free_kill, wait_for};

#[test]
fn a_detached_loop_outlives_run_and_streams_logs_and_takes_execs() {
    let kiln = Kiln::new(&[]);
    let id = kiln.detach(&[
        "--name",
        "svc",
        "-l",
        "app=web",
        "img",
        "sh",
        "-c",
        "echo up > /tmp/marker; while true; do date; sleep 1; done",
    ]);
    assert_eq!(id.len(), 64, "{id}");
    // `kiln run -d` has exited; the container keeps running and logging
    wait_for("two log lines", || kiln.logs("svc").lines().count() >= 2);
    assert_eq!(kiln.status("svc"), "running");
    let ps = kiln.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for column in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(ps.contains(&id[..12]) && ps.contains("Up ") && ps.contains("svc"), "{ps}");
    assert_eq!(kiln.ok(&["ps", "-q", "--filter", "label=app=web"]).trim(), &id[..12]);
    assert_eq!(kiln.ok(&["ps", "-q", "--filter", "label=app=db"]).trim(), "");
    assert_eq!(
        kiln.ok(&["ps", "-q", "--filter", "ancestor=img", "--filter", "status=running"]).trim(),
        &id[..12]
    );
    assert_eq!(kiln.ok(&["ps", "-q", "--filter", "status=exited"]).trim(), "");
    assert_eq!(kiln.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Labels}}"]), "svc running app=web\n");
    let table = kiln.ok(&["ps", "--format", "table {{.ID}}\\t{{.Names}}"]);
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["CONTAINER", "ID", "NAMES"]
    );
    assert_eq!(
        kiln.ok(&["inspect", "-f", "{{.State.Status}} {{.Name}} {{json .Config.Labels}}", "svc"]),
        "running /svc {\"app\":\"web\"}\n"
    );

    // logs -f streams lines written after it started
    let mut follow = kiln.cmd(&["logs", "-f", "--tail", "0", "svc"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(!first.is_empty() && first != second, "{first:?} {second:?}");

    // exec: same PID namespace (PID 1 is the loop), same files, same restrictions
    let cmdline = kiln.ok(&["exec", "svc", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.contains("while true"), "{cmdline:?}");
    assert_eq!(kiln.ok(&["exec", "svc", "cat", "/tmp/marker"]), "up\n");
    kiln.ok(&["exec", "svc", "sh", "-c", "echo from-exec > /tmp/written"]);
    assert_eq!(kiln.ok(&["exec", "svc", "cat", "/tmp/written"]), "from-exec\n");
    let status = kiln.ok(&[
        "exec",
        "svc",
        "sh",
        "-c",
        "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status /proc/1/status",
    ]);
    for key in ["CapBnd", "NoNewPrivs", "Seccomp"] {
        let values: Vec<&str> = status
            .lines()
            .filter(|l| l.contains(key))
            .map(|l| l.rsplit(':').next().unwrap().trim())
            .collect();
        assert_eq!(values.len(), 2, "{status}");
        assert_eq!(values[0], values[1], "{key} differs between exec and PID 1: {status}");
    }
    assert_eq!(
        kiln.ok(&[
            "exec",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            "svc",
            "sh",
            "-c",
            "echo $(id -u) $PWD $X"
        ]),
        "1000 /tmp y\n"
    );
    let code = kiln.output(&["exec", "svc", "sh", "-c", "exit 7"]).status.code();
    assert_eq!(code, Some(7));
    assert_eq!(kiln.output(&["exec", "svc", "no-such-command"]).status.code(), Some(127));

    // stop: sh as PID 1 ignores SIGTERM, so the grace period runs out and SIGKILL follows
    let started = Instant::now();
    kiln.ok(&["stop", "-t", "1", "svc"]);
    assert!(started.elapsed() >= Duration::from_secs(1), "stop did not wait for the grace period");
    assert_eq!(kiln.inspect("svc")["State"]["ExitCode"], 137);
    // logs -f ends with the container
    wait_for("logs -f to end", || follow.try_wait().unwrap().is_some());
    assert!(kiln.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert!(!kiln.output(&["exec", "svc", "true"]).status.success(), "exec in a stopped container");
    // start again: the writable layer persisted
    kiln.ok(&["start", "svc"]);
    assert_eq!(kiln.ok(&["exec", "svc", "cat", "/tmp/written"]), "from-exec\n");
    assert!(!kiln.output(&["rm", "svc"]).status.success(), "rm of a running container without -f");
    kiln.ok(&["rm", "-f", "svc"]);
    assert_eq!(kiln.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn stop_uses_the_stop_signal_and_waits_for_a_clean_exit() {
    let kiln = Kiln::new(&["STOPSIGNAL SIGUSR1"]);
    let script = "trap 'echo got USR1; exit 0' USR1; echo ready; while true; do sleep 0.1; done";
    kiln.detach(&["--name", "usr1", "img", "sh", "-c", script]);
    wait_for("ready", || kiln.logs("usr1").contains("ready"));
    kiln.ok(&["stop", "-t", "60", "usr1"]);
    assert_eq!(kiln.inspect("usr1")["State"]["ExitCode"], 0, "{}", kiln.logs("usr1"));
    assert!(kiln.logs("usr1").contains("got USR1"));
    assert_eq!(kiln.inspect("usr1")["Config"]["StopSignal"], "SIGUSR1");

    // --stop-signal overrides the image's
    let script = "trap 'echo got HUP; exit 3' HUP; echo ready; while true; do sleep 0.1; done";
    kiln.detach(&["--name", "hup", "--stop-signal", "HUP", "img", "sh", "-c", script]);
    wait_for("ready", || kiln.logs("hup").contains("ready"));
    kiln.ok(&["stop", "hup"]);
    assert_eq!(kiln.inspect("hup")["State"]["ExitCode"], 3);
    assert_eq!(kiln.ok(&["wait", "hup"]).trim(), "3");

    // kill -s
    kiln.detach(&["--name", "k", "img", "sleep", "1000"]);
    kiln.ok(&["kill", "-s", "KILL", "k"]);
    assert_eq!(kiln.ok(&["wait", "k"]).trim(), "137");
}

#[test]
fn on_failure_3_restarts_exactly_three_times() {
    let kiln = Kiln::new(&[]);
    kiln.detach(&["--name", "flaky", "--restart", "on-failure:3", "img", "sh", "-c", "echo run; exit 3"]);
    assert_eq!(kiln.ok(&["wait", "flaky"]).trim(), "3");
    assert_eq!(kiln.logs("flaky"), "run\n".repeat(4));
    let inspect = kiln.inspect("flaky");
    assert_eq!(inspect["RestartCount"], 3);
    assert_eq!(inspect["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(inspect["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    // the image is in use: rmi refuses it
    let refused = kiln.output(&["rmi", "img"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is using its referenced image"),
        "{refused:?}"
    );
    // a clean exit is not restarted
    kiln.detach(&["--name", "clean", "--restart", "on-failure:3", "img", "sh", "-c", "echo run"]);
    assert_eq!(kiln.ok(&["wait", "clean"]).trim(), "0");
    assert_eq!(kiln.logs("clean"), "run\n");
    // log rotation: max-size and max-file bound what is kept, the newest lines survive
    let script = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done";
    let id = kiln.detach(&["--log-opt", "max-size=1k", "--log-opt", "max-file=2", "img", "sh", "-c", script]);
    assert_eq!(kiln.ok(&["wait", &id]).trim(), "0");
    let logs = kiln.logs(&id);
    assert_eq!(logs.lines().last(), Some("line 199"));
    assert!(logs.lines().count() < 200, "nothing was rotated away");
    let log = kiln.root.join("runtime-v1/containers").join(&id).join(format!("{id}-json.log"));
    assert!(Path::new(&format!("{}.1", log.display())).exists());
    assert!(!Path::new(&format!("{}.2", log.display())).exists());
    assert!(std::fs::metadata(&log).unwrap().len() <= 1024);
    assert_eq!(kiln.ok(&["logs", "--tail", "2", &id]), "line 198\nline 199\n");
    // --rm: the monitor removes the container after its exit
    kiln.detach(&["--name", "gone", "--rm", "img", "true"]);
    wait_for("--rm container removed", || {
        !kiln.ok(&["ps", "-aq", "--filter", "name=gone"]).contains(|c: char| c.is_ascii_hexdigit())
    });
}

#[test]
fn a_sigkilled_monitor_is_noticed() {
    let kiln = Kiln::new(&[]);
    let id = kiln.detach(&["--name", "orphan", "img", "sleep", "1000"]);
    let pid = kiln.inspect("orphan")["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(start_time(pid).is_some());
    let monitor = kiln.monitor_pid(&id);
    unsafe_free_kill(monitor);
    wait_for("ps to show the container exited", || {
        kiln.ok(&["ps", "-a", "--filter", "name=orphan"]).contains("Exited (-1)")
    });
    let state = kiln.inspect("orphan")["State"].clone();
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["Running"], false);
    assert!(state["Error"].as_str().unwrap().contains("monitor"), "{state}");
    // the container does not run on unsupervised
    wait_for("the container's process to end", || start_time(pid).is_none());
    // and it can be started again
    kiln.ok(&["start", "orphan"]);
    assert_eq!(kiln.status("orphan"), "running");
}

#[test]
fn concurrent_creates_never_lose_a_container() {
    let kiln = Kiln::new(&[]);
    let names: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    let mut children = Vec::new();
    for name in &names {
        children.push(
            kiln.cmd(&["run", "-d", "--network", "none", "--name", name, "img", "sleep", "1000"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for _ in 0..2 {
        children.push(
            kiln.cmd(&["create", "--network", "none", "img", "true"]).stdout(Stdio::piped()).spawn().unwrap(),
        );
    }
    // and one more taking a name already being taken: exactly one of the two wins
    let duplicate =
        kiln.cmd(&["create", "--network", "none", "--name", "c0", "img", "true"]).output().unwrap();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            ids.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        } else {
            assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"), "{out:?}");
        }
    }
    let winners = ids.len() + usize::from(duplicate.status.success());
    assert_eq!(winners, 6, "one of the two c0 creates must fail, everything else succeed");
    let listed = kiln.ok(&["ps", "-aq", "--no-trunc"]);
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{id} lost: {listed}");
    }
    assert_eq!(listed.lines().count(), 6, "{listed}");

    // two concurrent starts of one container: one monitor, one process
    kiln.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "once",
        "img",
        "sh",
        "-c",
        "echo started; sleep 1000",
    ]);
    let starts: Vec<_> =
        (0..2).map(|_| kiln.cmd(&["start", "once"]).stdout(Stdio::null()).spawn().unwrap()).collect();
    for mut start in starts {
        assert!(start.wait().unwrap().success());
    }
    wait_for("the process to log", || kiln.logs("once").contains("started"));
    assert_eq!(kiln.status("once"), "running");
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let text = String::from_utf8_lossy(&c).into_owned();
                text.starts_with("kiln-container-monitor") && text.contains(kiln.root.to_str().unwrap())
            })
        })
        .count();
    let running = kiln.ok(&["ps", "-q"]).lines().count();
    assert_eq!(monitors, running, "one monitor per running container: {}", kiln.ok(&["ps", "-a"]));
    assert_eq!(kiln.logs("once"), "started\n");
}

#[test]
fn volumes_persist_copy_up_and_refuse_removal_in_use() {
    let kiln = Kiln::new(&["VOLUME /anon"]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        kiln.ok(&all)
    };
    // written by one container, read by the next
    run(&["-v", "data:/data", "img", "sh", "-c", "echo written > /data/file"]);
    assert_eq!(run(&["-v", "data:/data:ro", "img", "cat", "/data/file"]), "written\n");
    assert!(kiln.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    // read-only
    let out =
        kiln.output(&["run", "--rm", "--network", "none", "-v", "data:/data:ro", "img", "touch", "/data/x"]);
    assert!(!out.status.success());

    // copy-up keeps owners and modes, on the host too
    let listing = run(&[
        "--mount",
        "type=volume,source=seeded,target=/seed",
        "img",
        "stat",
        "-c",
        "%u:%g %a %n",
        "/seed/sub",
        "/seed/sub/file",
    ]);
    assert_eq!(listing, "1234:5678 755 /seed/sub\n1234:5678 640 /seed/sub/file\n");
    let inspect: Vec<serde_json::Value> =
        serde_json::from_str(&kiln.ok(&["volume", "inspect", "seeded"])).unwrap();
    let mountpoint = PathBuf::from(inspect[0]["Mountpoint"].as_str().unwrap());
    let meta = std::fs::metadata(mountpoint.join("sub/file")).unwrap();
    assert_eq!(
        (std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::gid(&meta)),
        (1234, 5678)
    );
    // not copied again over what the volume holds; volume-nocopy copies nothing
    run(&["-v", "seeded:/seed", "img", "rm", "/seed/sub/file"]);
    assert_eq!(run(&["-v", "seeded:/seed", "img", "ls", "/seed/sub"]), "");
    assert_eq!(
        run(&["--mount", "type=volume,source=bare,target=/seed,volume-nocopy", "img", "ls", "/seed"]),
        ""
    );

    // in use by a container (even a stopped one): refused
    let id = kiln.detach(&["--name", "user", "-v", "data:/data", "img", "sleep", "1000"]);
    let refused = kiln.output(&["volume", "rm", "data"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use"), "{refused:?}");
    // the image's VOLUME became an anonymous volume, removed by rm -v
    let mounts = kiln.inspect("user")["Mounts"].clone();
    let anonymous = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .expect("anonymous volume for VOLUME /anon");
    assert!(kiln.ok(&["volume", "ls", "-q"]).contains(&anonymous));
    kiln.ok(&["rm", "-f", "-v", &id]);
    assert!(!kiln.ok(&["volume", "ls", "-q"]).contains(&anonymous));
    kiln.ok(&["volume", "rm", "data"]);
    assert!(!kiln.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    // the foreground --rm runs removed their anonymous volumes
    let left: Vec<String> =
        kiln.ok(&["volume", "ls", "-q"]).lines().filter(|l| l.len() == 64).map(str::to_owned).collect();
    assert!(left.is_empty(), "anonymous volumes left: {left:?}");
}

#[test]
fn health_goes_starting_healthy_unhealthy() {
    let kiln = Kiln::new(&[]);
    kiln.detach(&[
        "--name",
        "doc",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "--health-start-period",
        "10m",
        "img",
        "sleep",
        "1000",
    ]);
    let health = |kiln: &Kiln| kiln.inspect("doc")["State"]["Health"].clone();
    // failures in the start period do not count before a first success
    wait_for("two failed probes", || health(&kiln)["Log"].as_array().is_some_and(|l| l.len() >= 2));
    assert_eq!(health(&kiln)["Status"], "starting");
    assert!(kiln.ok(&["ps"]).contains("(health: starting)"));
    kiln.ok(&["exec", "doc", "touch", "/tmp/ok"]);
    wait_for("healthy", || health(&kiln)["Status"] == "healthy");
    assert!(kiln.ok(&["ps"]).contains("(healthy)"));
    kiln.ok(&["exec", "doc", "rm", "/tmp/ok"]);
    wait_for("unhealthy", || health(&kiln)["Status"] == "unhealthy");
    let last = health(&kiln);
    assert!(last["FailingStreak"].as_u64().unwrap() >= 2, "{last}");
    assert!(last["Log"].as_array().unwrap().len() <= 5);
    assert_eq!(last["Log"].as_array().unwrap().last().unwrap()["ExitCode"], 1);
    assert!(kiln.ok(&["ps"]).contains("(unhealthy)"));
}

#[test]
fn pause_freezes_every_process_and_stop_and_kill_still_work() {
    let kiln = Kiln::new(&[]);
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done";
    let id = kiln.detach(&["--name", "counter", "img", "sh", "-c", script]);
    let count_file = kiln.root.join("runtime-v1/containers").join(&id).join("upper/tmp/count");
    let count = || std::fs::read_to_string(&count_file).ok().and_then(|t| t.trim().parse::<u64>().ok());
    wait_for("the counter to count", || count().is_some_and(|c| c > 2));
    assert_eq!(kiln.ok(&["pause", "counter"]), "counter\n");
    let state = kiln.inspect("counter")["State"].clone();
    assert_eq!((state["Status"].as_str(), state["Paused"].as_bool()), (Some("paused"), Some(true)));
    assert_eq!(state["Running"], true);
    assert!(kiln.ok(&["ps"]).contains("(Paused)"), "{}", kiln.ok(&["ps"]));
    assert_eq!(kiln.ok(&["ps", "-q", "--filter", "status=paused"]).trim(), &id[..12]);
    assert_eq!(kiln.ok(&["ps", "-q", "--filter", "status=running"]).trim(), "");
    // frozen: the counter stands still, over many of its periods
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count(), frozen_at, "a paused container kept running");
    let again = kiln.output(&["pause", "counter"]);
    assert!(!again.status.success() && stderr_of(&again).contains("already paused"), "{again:?}");
    let exec = kiln.output(&["exec", "counter", "true"]);
    assert!(!exec.status.success() && stderr_of(&exec).contains("is paused"), "{exec:?}");
    assert_eq!(kiln.ok(&["unpause", "counter"]), "counter\n");
    wait_for("the counter to move on", || count() > frozen_at);
    assert_eq!(kiln.status("counter"), "running");
    assert_eq!(kiln.inspect("counter")["State"]["Paused"], false);
    let not_paused = kiln.output(&["unpause", "counter"]);
    assert!(!not_paused.status.success() && stderr_of(&not_paused).contains("not paused"), "{not_paused:?}");

    // kill of a paused container: delivered once thawed
    kiln.ok(&["pause", "counter"]);
    kiln.ok(&["kill", "counter"]);
    assert_eq!(kiln.ok(&["wait", "counter"]).trim(), "137");
    assert_eq!(kiln.inspect("counter")["State"]["Paused"], false);
    // stop of a paused container: the stop signal is handled (exit 0, not SIGKILL's 137)
    let script = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done";
    kiln.detach(&["--name", "polite", "img", "sh", "-c", script]);
    wait_for("ready", || kiln.logs("polite").contains("ready"));
    kiln.ok(&["pause", "polite"]);
    kiln.ok(&["stop", "-t", "60", "polite"]);
    assert_eq!(kiln.inspect("polite")["State"]["ExitCode"], 0);
    // rm -f of a paused container
    kiln.detach(&["--name", "frozen", "img", "sleep", "1000"]);
    kiln.ok(&["pause", "frozen"]);
    kiln.ok(&["rm", "-f", "frozen"]);
    assert!(kiln.ok(&["ps", "-aq"]).lines().count() == 2);
    // a stopped container cannot be paused
    let stopped = kiln.output(&["pause", "polite"]);
    assert!(!stopped.status.success() && stderr_of(&stopped).contains("not running"), "{stopped:?}");
}

#[test]
fn rename_top_stats_and_container_prune() {
    let kiln = Kiln::new(&[]);
    let running = kiln.detach(&["--name", "first", "img", "sh", "-c", "sleep 1000 & exec sleep 1001"]);
    // rename: the old name is free afterwards, the new one finds the container
    assert_eq!(kiln.ok(&["rename", "first", "web"]), "");
    assert_eq!(kiln.inspect("web")["Id"], running.as_str());
    assert_eq!(kiln.inspect("web")["Name"], "/web");
    assert!(!kiln.output(&["inspect", "--type", "container", "first"]).status.success());
    let other = kiln.ok(&["create", "--name", "first", "-l", "keep=1", "img", "true"]).trim().to_owned();
    let taken = kiln.output(&["rename", "web", "first"]);
    assert!(!taken.status.success() && stderr_of(&taken).contains("already in use"), "{taken:?}");
    let same = kiln.output(&["rename", "web", "web"]);
    assert!(!same.status.success(), "{same:?}");
    assert_eq!(kiln.ok(&["ps", "--format", "{{.Names}}"]), "web\n");

    // top: both processes of the container, ps -ef's columns
    wait_for("two processes", || kiln.ok(&["top", "web"]).lines().count() == 3);
    let top = kiln.ok(&["top", "web"]);
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    assert!(top.contains("sleep 1000") && top.contains("sleep 1001"), "{top}");
    let pid = kiln.inspect("web")["State"]["Pid"].as_i64().unwrap().to_string();
    assert!(top.lines().any(|l| l.split_whitespace().nth(1) == Some(pid.as_str())), "{top}\n{pid}");
    assert!(!kiln.output(&["top", "first"]).status.success(), "top of a container that is not running");

    // stats: one sample of the running container
    let stats = kiln.ok(&["stats", "--no-stream"]);
    let mut lines = stats.lines();
    let header = lines.next().unwrap();
    for column in
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with(&running[..12]) && row.contains("web") && row.contains(" / "), "{stats}");
    assert!(row.trim_end().ends_with(" 2"), "two pids: {stats}");
    assert_eq!(lines.next(), None, "only running containers: {stats}");
    let formatted = kiln.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.CPUPerc}}", "web"]);
    let fields: Vec<&str> = formatted.split_whitespace().collect();
    assert_eq!(fields[..2], ["web", "2"], "{formatted}");
    assert!(fields[2].ends_with('%'), "{formatted}");
    let memory = kiln.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "web"]);
    assert!(memory.contains("iB / ") && !memory.starts_with("0B"), "{memory}");
    // without --no-stream: the table again every second, until interrupted
    let streamed = kiln._tmp.path().join("stats.out");
    let mut child =
        kiln.cmd(&["stats", "web"]).stdout(std::fs::File::create(&streamed).unwrap()).spawn().unwrap();
    let tables = || std::fs::read_to_string(&streamed).unwrap_or_default().matches("CONTAINER ID").count();
    let waited =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_for("two tables", || tables() >= 2)));
    let _ = child.kill();
    let _ = child.wait();
    assert!(waited.is_ok(), "{}", std::fs::read_to_string(&streamed).unwrap_or_default());
    assert!(std::fs::read_to_string(&streamed).unwrap().contains("\x1b[2J"));

    // container prune: stopped containers only, filters, and the prompt's default is no
    let exited = kiln.detach(&["img", "sh", "-c", "echo data > /file"]);
    assert_eq!(kiln.ok(&["wait", &exited]).trim(), "0");
    assert_eq!(kiln.ok(&["container", "prune"]), "", "declined without a terminal");
    assert_eq!(kiln.ok(&["ps", "-aq"]).lines().count(), 3);
    assert_eq!(kiln.ok(&["container", "prune", "-f", "--filter", "until=1h"]), "Total reclaimed space: 0B\n");
    let pruned = kiln.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(pruned, format!("Deleted Containers:\n{exited}\n\nTotal reclaimed space: 5B\n"));
    let left: Vec<String> = kiln.ok(&["ps", "-aq", "--no-trunc"]).lines().map(str::to_owned).collect();
    assert_eq!(left, [other.clone(), running.clone()]);
    let pruned = kiln.ok(&["container", "prune", "--force"]);
    assert_eq!(pruned, format!("Deleted Containers:\n{other}\n\nTotal reclaimed space: 0B\n"));
    assert_eq!(kiln.ok(&["ps", "-aq", "--no-trunc"]).trim(), running);
    assert!(!kiln.output(&["container", "prune", "-f", "--filter", "until=soon"]).status.success());
}

#[test]
fn cp_diff_and_export_stay_inside_the_container() {
    let kiln = Kiln::new(&[]);
    let host = tempfile::tempdir().unwrap();
    let script = "mkdir -p /data/sub; echo hi > /data/sub/f; ln -sfn / /data/escape; \
                  ln -sfn /etc/passwd /data/pw; rm -f /bin/vi; echo ready; exec sleep 1000";
    kiln.detach(&["--name", "box", "img", "sh", "-c", script]);
    wait_for("ready", || kiln.logs("box").contains("ready"));

    // out of a running container: a directory into an existing directory, symlinks as links
    kiln.ok(&["cp", "box:/data", host.path().to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(host.path().join("data/sub/f")).unwrap(), "hi\n");
    assert!(std::fs::symlink_metadata(host.path().join("data/escape")).unwrap().file_type().is_symlink());
    // a path through the container's `/` symlink is the container's file, not the host's
    let hostname = host.path().join("hostname");
    kiln.ok(&["cp", "box:/data/escape/etc/hostname", hostname.to_str().unwrap()]);
    let container_hostname = kiln.ok(&["exec", "box", "cat", "/etc/hostname"]);
    assert_eq!(std::fs::read_to_string(&hostname).unwrap(), container_hostname);
    // contents only, and a tar stream
    let contents = host.path().join("contents");
    kiln.ok(&["cp", "box:/data/sub/.", contents.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(contents.join("f")).unwrap(), "hi\n");
    let stream = kiln.output(&["cp", "box:/data/sub/f", "-"]);
    assert!(stream.status.success());
    let mut archive = tar::Archive::new(stream.stdout.as_slice());
    let names: Vec<String> =
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert_eq!(names, ["f"]);
    let missing = kiln.output(&["cp", "box:/nothing", host.path().to_str().unwrap()]);
    assert!(
        !missing.status.success() && stderr_of(&missing).contains("Could not find the file"),
        "{missing:?}"
    );

    // into it: through the container's symlinks, never onto the host
    let file = host.path().join("in.txt");
    std::fs::write(&file, "hello\n").unwrap();
    let marker = Path::new("/in.txt");
    assert!(!marker.exists(), "the host already has /in.txt");
    kiln.ok(&["cp", file.to_str().unwrap(), "box:/data/escape/"]);
    assert!(!marker.exists(), "cp wrote through the container's symlink onto the host");
    assert_eq!(kiln.ok(&["exec", "box", "cat", "/in.txt"]), "hello\n");
    assert_eq!(kiln.ok(&["exec", "box", "stat", "-c", "%u:%g", "/in.txt"]).trim(), "0:0");
    let passwd = kiln.ok(&["exec", "box", "cat", "/etc/passwd"]);
    kiln.ok(&["cp", file.to_str().unwrap(), "box:/data/pw"]);
    assert_eq!(kiln.ok(&["exec", "box", "cat", "/etc/passwd"]), passwd, "the link's target was written");
    // a tar stream from stdin
    let mut tarball = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    tarball.append_data(&mut header, "streamed", "tar\n".as_bytes()).unwrap();
    let bytes = tarball.into_inner().unwrap();
    let mut child = kiln.cmd(&["cp", "-", "box:/data/sub"]).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(kiln.ok(&["exec", "box", "cat", "/data/sub/streamed"]), "tar\n");
    // the container was paused for the copies only
    assert_eq!(kiln.status("box"), "running");

    // diff: docker's letters, sorted, without the sandbox's mount-point stubs
    let diff = kiln.ok(&["diff", "box"]);
    let lines: Vec<&str> = diff.lines().collect();
    for expected in ["C /bin", "D /bin/vi", "A /data", "A /data/sub/f", "A /data/sub/streamed", "A /in.txt"] {
        assert!(lines.contains(&expected), "{expected} missing in\n{diff}");
    }
    assert!(!diff.contains("/etc/hostname") && !diff.contains("/proc"), "{diff}");
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| l[2..].to_owned());
    assert_eq!(lines, sorted);

    // export: the root filesystem with the changes, without /proc's contents
    let exported = host.path().join("box.tar");
    kiln.ok(&["export", "-o", exported.to_str().unwrap(), "box"]);
    let mut archive = tar::Archive::new(std::fs::File::open(&exported).unwrap());
    let names: Vec<String> =
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert!(names.iter().any(|n| n == "data/sub/streamed"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"));
    assert!(!names.iter().any(|n| n == "bin/vi"), "a deleted file was exported");
    assert!(!names.iter().any(|n| n.starts_with("proc/") && n.len() > 5), "/proc's contents exported");

    // a stopped container: both directions, then it starts with the change
    kiln.ok(&["stop", "-t", "0", "box"]);
    let back = host.path().join("back");
    kiln.ok(&["cp", "box:/in.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello\n");
    kiln.ok(&["cp", file.to_str().unwrap(), "box:/data/while-stopped"]);
    assert!(kiln.ok(&["diff", "box"]).contains("A /data/while-stopped"));
    kiln.ok(&["start", "box"]);
    assert_eq!(kiln.ok(&["exec", "box", "cat", "/data/while-stopped"]), "hello\n");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(kiln.root.to_str().unwrap()), "a mount of the container's files was left");
}

#[test]
fn a_detached_container_with_a_terminal_logs_what_it_writes_there() {
    let kiln = Kiln::new(&[]);
    let id = kiln.detach(&["-t", "img", "sh", "-c", "stty size; echo done; exec sleep 1000"]);
    wait_for("the terminal output", || kiln.logs(&id).contains("done"));
    // a terminal's line endings and docker's default size, all on stdout
    assert_eq!(kiln.logs(&id), "24 80\r\ndone\r\n");
    let out = kiln.output(&["logs", &id]);
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_eq!(kiln.inspect(&id)["Config"]["Tty"], true);
    kiln.ok(&["stop", "-t", "1", &id]);
    // restarted on a new terminal; the log goes on
    kiln.ok(&["start", &id]);
    wait_for("the second run's output", || kiln.logs(&id).matches("done").count() == 2);
    let refused = kiln.output(&["run", "-d", "-i", "-t", "img", "true"]);
    assert!(!refused.status.success(), "{refused:?}");
    // exec -t: a terminal of its own (TERM set, stdin a terminal), the exit code passed on
    let out =
        kiln.output(&["exec", "-t", &id, "sh", "-c", "stty size; echo $TERM; test -t 0 && echo tty; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "24 80\r\nxterm\r\ntty\r\n");
}

#[test]
fn attach_streams_the_output_from_now_on_and_exits_with_the_code() {
    let kiln = Kiln::new(&[]);
    let script = "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after; echo err >&2; exit 7";
    let id = kiln.detach(&["img", "sh", "-c", script]);
    wait_for("before", || kiln.logs(&id).contains("before"));
    let child = kiln.cmd(&["attach", &id]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // attached once it has the log open
    let log = kiln.root.join("runtime-v1/containers").join(&id).join(format!("{id}-json.log"));
    let fds = format!("/proc/{}/fd", child.id());
    wait_for("attach to open the log", || {
        std::fs::read_dir(&fds)
            .map(|fds| {
                fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == log))
            })
            .unwrap_or(false)
    });
    kiln.ok(&["exec", &id, "touch", "/go"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let stopped = kiln.output(&["attach", &id]);
    assert!(!stopped.status.success() && stderr_of(&stopped).contains("stopped container"), "{stopped:?}");
}

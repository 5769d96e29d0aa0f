//! The per-container monitor: kiln re-executed with argv[0] [`MONITOR_ARGV0`], detached from
//! the command that started it (setsid and a second fork, like conmon), that runs the sandbox,
//! writes its output to the json-file log, records the exit and applies the restart policy.
//!
//! It holds no global lock: it takes the container's own lock only to update `state.json`.
//! Its `pid starttime` is recorded in the state, so a SIGKILLed monitor is noticed by every
//! reader ([`super::Container::refresh`]); the sandbox init kills the container when its
//! monitor goes away, and the next executor cleans up the cgroups it left.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::exec::{ExecOptions, command};
use super::health::{Health, Healthcheck, ProbeResult};
use super::logs;
use super::record::{Container, RuntimeError, Status, Store, now_nanos};
use crate::sandbox::{Executor, Stdio};
use crate::sys::{self, Forked};

/// argv[0] that makes a kiln binary act as a container monitor.
pub const MONITOR_ARGV0: &str = "kiln-container-monitor";

/// docker's restart back-off: 100 ms doubling per restart, reset after 10 s of running.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Starts the container's monitor (re-executing `program`, normally `/proc/self/exe`) and
/// returns once the container's process runs, or with the reason it could not start. A
/// container that is already running is left alone.
pub fn start(store: &Store, container: &mut Container, program: &Path) -> Result<(), RuntimeError> {
    container.refresh()?;
    if container.state.status.is_active() {
        return Ok(());
    }
    container.update(|state| {
        state.stop_requested = false;
        state.error.clear();
    })?;
    let monitor_log = container.dir.join("monitor.log");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&monitor_log)
        .map_err(super::record::io("open", &monitor_log))?;
    let mut child = std::process::Command::new(program)
        .arg0(MONITOR_ARGV0)
        .arg(store.kiln_root())
        .arg(container.id())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| RuntimeError::Monitor { id: container.id().to_owned(), message: e.to_string() })?;
    let mut report = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // EOF once the monitor reported (it then points its stdout at /dev/null) or died
        let _ = stdout.read_to_string(&mut report);
    }
    let _ = child.wait();
    container.refresh()?;
    let mut lines = report.lines();
    match lines.next() {
        Some("started") => Ok(()),
        Some(failed) if failed.starts_with("failed ") => {
            let exit_code = failed["failed ".len()..].trim().parse().unwrap_or(125);
            let message = lines.collect::<Vec<_>>().join("\n");
            Err(RuntimeError::StartFailed { id: container.id().to_owned(), message, exit_code })
        }
        _ => {
            let log = std::fs::read_to_string(&monitor_log).unwrap_or_default();
            let message = log.lines().last().unwrap_or("it exited without reporting").to_owned();
            Err(RuntimeError::Monitor { id: container.id().to_owned(), message })
        }
    }
}

/// Entry point of the re-executed monitor: `kiln-container-monitor <kiln root> <id>`.
// A process of its own: its stderr is the container's monitor.log, where these go.
#[allow(clippy::print_stderr)]
pub fn main() -> i32 {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [kiln_root, id] = args.as_slice() else {
        eprintln!("{MONITOR_ARGV0}: internal program of kiln, not meant to be run by hand");
        return 2;
    };
    // detach: a session of our own, and a second fork so that we are no session leader and
    // are re-parented away from the kiln command (which reaps the first process at once)
    let _ = nix::unistd::setsid();
    match sys::fork() {
        Ok(Forked::Parent(_)) => return 0,
        Ok(Forked::Child) => {}
        Err(errno) => {
            eprintln!("{MONITOR_ARGV0}: fork: {errno}");
            return 1;
        }
    }
    // keep no directory of the caller busy
    let _ = std::env::set_current_dir("/");
    let mut reporter = Reporter { done: false };
    let result = run(kiln_root, &id.to_string_lossy(), &mut reporter);
    if let Err(err) = &result {
        eprintln!("{MONITOR_ARGV0}: {err}");
        reporter.report(&format!("failed 125\n{err}"));
    }
    i32::from(result.is_err())
}

/// Tells the `kiln start` waiting on our stdout how the first start went, once.
struct Reporter {
    done: bool,
}

impl Reporter {
    fn report(&mut self, message: &str) {
        if self.done {
            return;
        }
        self.done = true;
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(message.as_bytes()).and_then(|()| stdout.write_all(b"\n"));
        let _ = stdout.flush();
        sys::stdout_to_null();
    }
}

fn run(kiln_root: &Path, id: &str, reporter: &mut Reporter) -> Result<(), RuntimeError> {
    let store = Store::open(kiln_root)?;
    let mut container = store.find(id)?;
    let token = crate::network::owner_token();
    // one monitor per container: a concurrent `start` that lost the race goes away quietly
    let mut other = None;
    container.update(|state| {
        if state.status.is_active() && state.monitor != token && super::record::monitor_alive(&state.monitor)
        {
            other = Some(state.monitor.clone());
        } else {
            // claimed: "running" from now on (pid 0 until the process runs), so that a second
            // monitor sees this one
            state.monitor = token.clone();
            state.status = Status::Running;
            state.pid = 0;
            state.pid_start = 0;
        }
    })?;
    if other.is_some() {
        reporter.report("started");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RuntimeError::Monitor { id: id.to_owned(), message: e.to_string() })?;
    runtime.block_on(supervise(&store, &mut container, reporter))?;
    if container.config.auto_remove {
        store.remove(&mut container, true)?;
    }
    Ok(())
}

async fn supervise(
    store: &Store,
    container: &mut Container,
    reporter: &mut Reporter,
) -> Result<(), RuntimeError> {
    let executor = Executor::new(store.sandbox_state_dir())?;
    let log_path = container.log_path();
    let mut log = logs::Writer::open(&log_path, container.config.log_rotation)
        .map_err(super::record::io("open log", &log_path))?;
    let mut restarts = 0u32;
    let mut backoff = FIRST_BACKOFF;
    let healthcheck = container.config.healthcheck.clone().filter(|check| check.argv().is_some());
    loop {
        let (sender, mut output) = mpsc::channel(64);
        let tty = container.config.spec.process.tty;
        // `-t`: a pseudo-terminal (docker's 24x80 until someone resizes it) whose output is
        // the log's stdout; the channel closes when the reader thread ends
        let stdio = if tty { Stdio::Tty { size: Some((24, 80)) } } else { Stdio::Stream(sender.clone()) };
        let spawned = executor.spawn(container.config.spec.clone(), stdio).await;
        let spawned = spawned.map(|mut sandbox| {
            if let Some(pty) = sandbox.take_pty() {
                read_pty(pty, sender.clone());
            }
            sandbox
        });
        drop(sender);
        let spawned = spawned.and_then(|mut sandbox| {
            let mut ports = container.config.ports.clone();
            sandbox.publish(&mut ports)?;
            Ok((sandbox, ports))
        });
        let (sandbox, ports) = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                let (message, code) = match err {
                    crate::Error::Setup { message, exit_code } => (message, exit_code),
                    other => (other.to_string(), 125),
                };
                container.update(|state| {
                    state.status = Status::Exited;
                    state.exit_code = Some(code);
                    state.error = message.clone();
                    state.finished_at = Some(now_nanos());
                    state.pid = 0;
                })?;
                reporter.report(&format!("failed {code}\n{message}"));
                return Ok(());
            }
        };
        let pid = sandbox.pid();
        let cgroup_dirs = sandbox.cgroup_dirs();
        container.update(|state| {
            state.status = Status::Running;
            state.pid = pid;
            state.pid_start = crate::state::process_start_time(pid).unwrap_or(0);
            state.started_at = Some(now_nanos());
            state.finished_at = None;
            state.exit_code = None;
            state.oom_killed = false;
            state.restart_count = restarts;
            state.cgroup_dirs = cgroup_dirs;
            state.ports = ports;
            state.error.clear();
            state.health = healthcheck.as_ref().map(|_| Health::starting());
        })?;
        reporter.report("started");
        let started = Instant::now();
        let wait = sandbox.wait();
        tokio::pin!(wait);
        let interval = healthcheck.as_ref().map_or(Duration::from_secs(3600), Healthcheck::interval);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (results_sender, mut results) = mpsc::channel::<ProbeResult>(1);
        let mut probing = false;
        let status = loop {
            tokio::select! {
                Some(chunk) = output.recv() => { let _ = log.write(chunk.stream, &chunk.data); }
                status = &mut wait => break status,
                _ = ticks.tick(), if healthcheck.is_some() && !probing => {
                    if let Some(check) = &healthcheck
                        && let Some(probe) = probe(container, check, results_sender.clone())
                    {
                        probing = true;
                        tokio::spawn(probe);
                    }
                }
                Some(result) = results.recv() => {
                    probing = false;
                    if let Some(check) = &healthcheck {
                        let in_start_period = started.elapsed() < check.start_period();
                        let retries = check.retries();
                        container.update(|state| {
                            if let Some(health) = &mut state.health {
                                health.record(result, retries, in_start_period);
                            }
                        })?;
                    }
                }
            }
        };
        while let Some(chunk) = output.recv().await {
            let _ = log.write(chunk.stream, &chunk.data);
        }
        let _ = log.flush();
        let (code, oom_killed, error) = match status {
            Ok(status) => (Some(status.code), status.oom_killed, String::new()),
            Err(err) => (None, false, err.to_string()),
        };
        // decided and recorded in one step: a `wait` never sees "exited" between two runs
        let policy = container.config.restart;
        let mut restart = false;
        container.update(|state| {
            restart = policy.should_restart(code.unwrap_or(-1), restarts, state.stop_requested);
            state.status = if restart { Status::Restarting } else { Status::Exited };
            state.exit_code = code;
            state.oom_killed = oom_killed;
            state.error = error;
            state.finished_at = Some(now_nanos());
            state.pid = 0;
            state.pid_start = 0;
            state.paused = false;
            state.cgroup_dirs.clear();
            state.ports.clear();
        })?;
        if !restart {
            return Ok(());
        }
        if started.elapsed() >= BACKOFF_RESET {
            backoff = FIRST_BACKOFF;
        }
        restarts += 1;
        if wait_unless_stopped(container, backoff).await? {
            container.update(|state| state.status = Status::Exited)?;
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Copies what the container writes to its terminal into the log, on a thread of its own
/// (blocking reads), until the terminal closes (EIO once every process holding it exited).
fn read_pty(pty: std::os::fd::OwnedFd, sender: mpsc::Sender<crate::sandbox::OutputChunk>) {
    let mut master = std::fs::File::from(pty);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match master.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = crate::sandbox::OutputChunk {
                        stream: crate::sandbox::OutputStream::Stdout,
                        data: buffer[..n].to_vec(),
                    };
                    if sender.blocking_send(chunk).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Sleeps `delay`, checking for a `stop`; returns whether one came.
async fn wait_unless_stopped(container: &mut Container, delay: Duration) -> Result<bool, RuntimeError> {
    let deadline = Instant::now() + delay;
    loop {
        container.reload()?;
        if container.state.stop_requested {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(50))).await;
    }
}

/// One health probe: the test run in the container like `exec`, killed after the timeout
/// (exit code -1 then, as docker's). `None` when the container is not running right now.
fn probe(
    container: &mut Container,
    check: &Healthcheck,
    results: mpsc::Sender<ProbeResult>,
) -> Option<impl std::future::Future<Output = ()> + use<>> {
    let options = ExecOptions { args: check.argv()?, ..ExecOptions::default() };
    let std_command = command(container, options, Path::new("/proc/self/exe")).ok()?;
    let mut command = tokio::process::Command::from(std_command);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let timeout = check.timeout();
    Some(async move {
        let start = now_nanos();
        let (exit_code, output) = match command.spawn() {
            Ok(child) => match tokio::time::timeout(timeout, child.wait_with_output()).await {
                Ok(Ok(out)) => {
                    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&out.stderr));
                    (out.status.code().unwrap_or(-1), text)
                }
                Ok(Err(err)) => (-1, err.to_string()),
                Err(_) => (-1, format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64())),
            },
            Err(err) => (-1, err.to_string()),
        };
        let _ = results.send(ProbeResult { start, end: now_nanos(), exit_code, output }).await;
    })
}

//! Host side: prepares a sandbox (state dir, cgroups, network lease, /etc files), re-executes
//! the init, plugs the network, streams output, waits, and cleans everything up.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cgroup::Cgroups;
use crate::init::{FromInit, INIT_ARGV0, InitConfig, ToInit};
use crate::mounts::EtcFiles;
use crate::network::{self, Bridge};
use crate::spec::{MountKind, NetworkMode, Rootfs, SandboxSpec};
use crate::state::{self, Record};
use crate::{Error, Result, sys};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A piece of output, delivered as soon as the process writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: OutputStream,
    pub data: Vec<u8>,
}

/// How the process's stdio is connected.
#[derive(Debug)]
pub enum Stdio {
    /// stdin is /dev/null; stdout/stderr chunks go to the channel (build steps).
    Stream(mpsc::Sender<OutputChunk>),
    /// stdin is /dev/null; stdout and stderr share one pipe so the channel sees the output in
    /// exactly the order the process wrote it, every chunk reported as [`OutputStream::Stdout`]
    /// (build steps: a log whose `fatal:` line must come last, where it was written).
    Merged(mpsc::Sender<OutputChunk>),
    /// The caller's own stdout/stderr, and its stdin when `stdin` (`kiln run [-i]`).
    Inherit { stdin: bool },
    /// A new pseudo-terminal of `size` (rows, columns) when known; take the master with
    /// [`Sandbox::take_pty`] (`kiln run -t`).
    Tty { size: Option<(u16, u16)> },
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, or 128+N when killed by signal N.
    pub code: i32,
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the sandbox.
    pub oom_killed: bool,
    pub timings: Timings,
}

/// Where the time of a sandbox went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    /// From `spawn` until the process was executed.
    pub setup: Duration,
    /// From exec until the init reported the exit.
    pub process: Duration,
    /// Waiting for output and init, removing cgroups, leases, state.
    pub teardown: Duration,
}

/// Creates sandboxes; owns the state directory (`<root>/run` for kiln).
#[derive(Debug, Clone)]
pub struct Executor {
    state_dir: PathBuf,
    init_program: PathBuf,
    bridge: Bridge,
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut bytes);
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    bytes[..8].iter_mut().zip(nanos.to_le_bytes()).for_each(|(b, n)| *b ^= n);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Executor {
    /// Uses `state_dir` for per-sandbox state and cleans up after sandboxes of kiln processes
    /// that died (SIGKILL, crash). The init program is `$KILN_SANDBOX_INIT` or
    /// `/proc/self/exe` (the binary must call [`crate::init::maybe_run_init`] first thing).
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| Error::io("create state directory", &state_dir, e))?;
        state::clean_stale(&state_dir)?;
        let init_program = std::env::var_os("KILN_SANDBOX_INIT")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/proc/self/exe".into());
        Ok(Self { state_dir, init_program, bridge: Bridge::default_bridge() })
    }

    /// Attaches [`NetworkMode::Default`] sandboxes to `bridge` instead of `kiln0` (tests use a
    /// bridge of their own and [`Bridge::remove`] it afterwards).
    pub fn with_bridge(mut self, bridge: Bridge) -> Self {
        self.bridge = bridge;
        self
    }

    /// The bridge [`NetworkMode::Default`] sandboxes are attached to.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// Uses another binary as the init (it must call [`crate::init::maybe_run_init`]).
    pub fn with_init_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.init_program = program.into();
        self
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Starts a sandbox. Returns once the process was executed (or setup failed: then
    /// [`Error::Setup`] carries the message and docker's exit code, 127 for a missing command).
    pub async fn spawn(&self, spec: SandboxSpec, stdio: Stdio) -> Result<Sandbox> {
        if spec.process.args.is_empty() {
            return Err(Error::EmptyCommand);
        }
        if !spec.allow_host_proc_sys {
            for mount in &spec.mounts {
                if let MountKind::Bind { source } | MountKind::Volume { source, .. } = &mount.kind
                    && crate::mounts::exposes_host_proc_sys(source)
                {
                    return Err(Error::HostProcSysBind {
                        host_path: source.clone(),
                        target: mount.target.clone(),
                    });
                }
            }
        }
        let spawned_at = Instant::now();
        let id = random_id();
        let dir = self.state_dir.join(&id);
        let rootfs_target = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs_target)
            .map_err(|e| Error::io("create directory", &rootfs_target, e))?;
        let mut cleanup = Cleanup {
            record: Record { id: id.clone(), owner: network::owner_token(), ..Record::default() },
            dir: dir.clone(),
            stubs: stub_candidates(&spec),
            writable: writable_layer(&spec.rootfs),
            lowers: match &spec.rootfs {
                Rootfs::Overlay { lowers, .. } => lowers.clone(),
                Rootfs::Dir(_) => Vec::new(),
            },
            done: false,
        };
        let hostname = spec.hostname.clone().unwrap_or_else(|| id[..12].to_owned());
        // recorded before creating so a kill in between leaves nothing unrecorded (removing
        // what does not exist is fine)
        let cgroup_parent = spec.cgroup_parent.as_deref();
        cleanup.record.cgroups = Some(Cgroups::planned(&id, &spec.resources, cgroup_parent));
        cleanup.record.save(&dir)?;
        cleanup.record.cgroups = Some(Cgroups::create(&id, &spec.resources, cgroup_parent)?);
        if spec.network == NetworkMode::Default {
            cleanup.record.network = Some(self.bridge.lease(&id)?);
            cleanup.record.save(&dir)?;
        }
        let etc_files = write_etc_files(&dir, &spec, &hostname, cleanup.record.network.as_ref())?;

        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| Error::io("socketpair", &dir, e))?;
        let mut command = tokio::process::Command::new(&self.init_program);
        command.arg0(INIT_ARGV0).env_clear().kill_on_drop(true);
        let mut pty_master = None;
        let mut merged_reader = None;
        match &stdio {
            Stdio::Stream(_) => {
                command.stdin(std::process::Stdio::null());
                command.stdout(std::process::Stdio::piped());
                command.stderr(std::process::Stdio::piped());
            }
            Stdio::Merged(_) => {
                let (read, write) =
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
                let dup = write.try_clone().map_err(|e| Error::io("dup pipe", &dir, e))?;
                command.stdin(std::process::Stdio::null());
                command.stdout(dup);
                command.stderr(write);
                merged_reader = Some(read);
            }
            Stdio::Inherit { stdin } => {
                command.stdin(if *stdin {
                    std::process::Stdio::inherit()
                } else {
                    std::process::Stdio::null()
                });
                command.stdout(std::process::Stdio::inherit());
                command.stderr(std::process::Stdio::inherit());
            }
            Stdio::Tty { size } => {
                let winsize = size.map(|(rows, cols)| nix::pty::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                });
                let pty = nix::pty::openpty(winsize.as_ref(), None).map_err(|e| Error::sys("openpty", e))?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup pty", "/dev/ptmx", e));
                command.stdin(dup(&pty.slave)?);
                command.stdout(dup(&pty.slave)?);
                command.stderr(pty.slave);
                pty_master = Some(pty.master);
            }
        }
        sys::pass_fd_as_3(&mut command, theirs.as_raw_fd());
        let mut child = command
            .spawn()
            .map_err(|source| Error::SpawnInit { program: self.init_program.clone(), source })?;
        drop(command);
        drop(theirs);

        let writer = Arc::new(std::sync::Mutex::new(
            ours.try_clone().map_err(|e| Error::io("clone socket", &dir, e))?,
        ));
        ours.set_nonblocking(true).map_err(|e| Error::io("socket", &dir, e))?;
        let reader = tokio::net::UnixStream::from_std(ours).map_err(|e| Error::io("socket", &dir, e))?;
        let mut messages = BufReader::new(reader).lines();
        let killer = Killer { socket: writer };

        let output_tasks = match stdio {
            Stdio::Stream(sender) => {
                let mut tasks = Vec::new();
                if let Some(stdout) = child.stdout.take() {
                    tasks.push(forward(stdout, OutputStream::Stdout, sender.clone()));
                }
                if let Some(stderr) = child.stderr.take() {
                    tasks.push(forward(stderr, OutputStream::Stderr, sender));
                }
                tasks
            }
            Stdio::Merged(sender) => match merged_reader {
                Some(read) => {
                    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)
                        .map_err(|e| Error::io("read output pipe", &dir, e))?;
                    vec![forward(pipe, OutputStream::Stdout, sender)]
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        };

        let config = InitConfig {
            id: id.clone(),
            spec,
            rootfs_target,
            etc_files,
            hostname,
            cgroup_procs: cleanup.record.cgroups.as_ref().map(Cgroups::procs_files).unwrap_or_default(),
        };
        killer.send(&ToInit::Config(Box::new(config)))?;
        let pid = loop {
            let message = next_message(&mut messages).await?;
            match message {
                Some(FromInit::NamespacesReady { pid }) => {
                    let interface = match &cleanup.record.network {
                        Some(attachment) => {
                            attachment.plug(pid)?;
                            Some(attachment.interface.clone())
                        }
                        None => None,
                    };
                    killer.send(&ToInit::Network(interface))?;
                }
                Some(FromInit::Started { pid }) => break pid,
                Some(FromInit::Failed { message, exit_code }) => {
                    let _ = child.wait().await;
                    for task in output_tasks {
                        let _ = task.await;
                    }
                    cleanup.run();
                    return Err(Error::Setup { message, exit_code });
                }
                Some(FromInit::Exited { .. }) | None => {
                    let status = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                    cleanup.run();
                    return Err(Error::InitDied(status));
                }
            }
        };
        tracing::debug!(sandbox = %id, pid, "sandbox started");
        let started_at = Instant::now();
        Ok(Sandbox {
            id,
            pid,
            child,
            messages,
            killer,
            output_tasks,
            pty_master,
            cleanup,
            setup: started_at - spawned_at,
            started_at,
        })
    }
}

fn forward(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stream: OutputStream,
    sender: mpsc::Sender<OutputChunk>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 32 * 1024];
        let mut receiver_alive = true;
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if receiver_alive {
                        let chunk = OutputChunk { stream, data: buffer[..n].to_vec() };
                        receiver_alive = sender.send(chunk).await.is_ok();
                    }
                }
            }
        }
    })
}

type Messages = tokio::io::Lines<BufReader<tokio::net::UnixStream>>;

async fn next_message(messages: &mut Messages) -> Result<Option<FromInit>> {
    match messages.next_line().await {
        Ok(Some(line)) => serde_json::from_str(&line).map(Some).map_err(Error::Protocol),
        Ok(None) | Err(_) => Ok(None),
    }
}

/// Sends signals to a running sandbox's PID 1 (cloneable, usable from any task or thread).
#[derive(Debug, Clone)]
pub struct Killer {
    /// Locked while a message is written, so that messages from several threads never mix.
    socket: Arc<std::sync::Mutex<std::os::unix::net::UnixStream>>,
}

/// How long a message may wait for the init to make room in the socket.
const SEND_TIMEOUT_MS: u16 = 60_000;

impl Killer {
    fn send(&self, message: &ToInit) -> Result<()> {
        let mut line = serde_json::to_vec(message).map_err(Error::Protocol)?;
        line.push(b'\n');
        let socket = self.socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        write_all_waiting(&socket, &line).map_err(|e| Error::io("write to sandbox init", "socket", e))
    }

    /// Sends `signal` to the container's PID 1.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        self.send(&ToInit::Signal(signal as i32))
    }

    /// Kills the whole container (SIGKILL to PID 1 takes its PID namespace down).
    pub fn kill(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGKILL)
    }
}

/// Writes all of `data` to the socket. The socket is non-blocking (it shares its file
/// description with the async reader of the init's messages), and a message bigger than the
/// socket buffer (a config with megabytes of arguments and environment) fills it before the
/// init has read: then wait until there is room again instead of failing with `EAGAIN`.
fn write_all_waiting(socket: &std::os::unix::net::UnixStream, mut data: &[u8]) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write};
    use std::os::fd::AsFd;

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    while !data.is_empty() {
        match (&*socket).write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => data = &data[written..],
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(SEND_TIMEOUT_MS)) {
                    Ok(0) => {
                        return Err(std::io::Error::new(
                            ErrorKind::TimedOut,
                            "the sandbox init stopped reading its socket",
                        ));
                    }
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A running sandbox. Dropping it without [`Sandbox::wait`] kills it and cleans up
/// synchronously.
#[derive(Debug)]
pub struct Sandbox {
    id: String,
    pid: i32,
    child: tokio::process::Child,
    messages: Messages,
    killer: Killer,
    output_tasks: Vec<JoinHandle<()>>,
    pty_master: Option<OwnedFd>,
    cleanup: Cleanup,
    setup: Duration,
    started_at: Instant,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// PID 1 of the container, in the host's PID namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn killer(&self) -> Killer {
        self.killer.clone()
    }

    /// The container's address on its bridge (`None` without the default network).
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.cleanup.record.network.as_ref().map(|attachment| attachment.interface.address)
    }

    /// Publishes `bindings` (docker's `-p`) to the container's address: ports given as 0 or
    /// as a range are chosen here. The rules are tagged with the sandbox's id and go with the
    /// sandbox (also when its owner dies: [`crate::state::clean_stale`]).
    pub fn publish(&mut self, bindings: &mut [crate::ports::PortBinding]) -> Result<()> {
        if bindings.is_empty() {
            return Ok(());
        }
        let Some(attachment) = &self.cleanup.record.network else {
            return Err(Error::NetworkCommand {
                command: "publish".into(),
                stderr: "the container has no network of its own to publish ports from".into(),
            });
        };
        let interface = &attachment.interface;
        let bridge = Bridge::new(attachment.bridge.clone(), interface.gateway, interface.prefix);
        bridge.ensure()?;
        bridge.ensure_rules()?;
        let address = interface.address;
        // recorded first: a kiln killed in between leaves rules that the clean-up finds
        self.cleanup.record.published = true;
        self.cleanup.record.save(&self.cleanup.dir)?;
        crate::ports::publish(&self.id, &bridge.name, address, bindings)
    }

    /// The cgroup directories the container runs in (empty when it joined none).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cleanup.record.cgroups.as_ref().map(|c| c.dirs.clone()).unwrap_or_default()
    }

    /// The pty master of a [`Stdio::Tty`] sandbox (read output, write input, resize).
    pub fn take_pty(&mut self) -> Option<OwnedFd> {
        self.pty_master.take()
    }

    /// Waits for the process to end (all output delivered), then removes cgroups, leases and
    /// the state directory.
    pub async fn wait(mut self) -> Result<ExitStatus> {
        let mut status = None;
        while let Some(message) = next_message(&mut self.messages).await? {
            if let FromInit::Exited { code, signal } = message {
                status = Some((code, signal));
                break;
            }
        }
        let exited_at = Instant::now();
        // With the exit reported, the container's processes are gone (PID 1 was reaped, which
        // takes its PID namespace down). The init itself still has to exit, which tears down
        // the mount and network namespaces (milliseconds): not waited for, tokio reaps it.
        let status = match status {
            Some(status) => status,
            None => {
                let init_status =
                    self.child.wait().await.map_err(|e| Error::io("wait for sandbox init", "child", e))?;
                self.finish().await;
                return Err(Error::InitDied(init_status.code().unwrap_or(-1)));
            }
        };
        let oom_killed = self.cleanup.record.cgroups.as_ref().is_some_and(Cgroups::oom_killed);
        self.finish().await;
        let timings = Timings {
            setup: self.setup,
            process: exited_at - self.started_at,
            teardown: exited_at.elapsed(),
        };
        tracing::debug!(
            sandbox = %self.id,
            setup_us = timings.setup.as_micros() as u64,
            process_us = timings.process.as_micros() as u64,
            teardown_us = timings.teardown.as_micros() as u64,
            "sandbox finished"
        );
        let (code, signal) = status;
        Ok(ExitStatus { code, signal, oom_killed, timings })
    }

    async fn finish(&mut self) {
        for task in self.output_tasks.drain(..) {
            let _ = task.await;
        }
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::empty());
        tokio::task::spawn_blocking(move || {
            let mut cleanup = cleanup;
            cleanup.run();
        })
        .await
        .ok();
    }

    /// Runs until exit or until `cancel` completes; on cancellation the container is killed
    /// and cleaned up, and the status is the kill's (137).
    pub async fn wait_or_cancel(self, cancel: impl std::future::Future<Output = ()>) -> Result<ExitStatus> {
        let killer = self.killer();
        let wait = self.wait();
        tokio::pin!(wait);
        tokio::select! {
            status = &mut wait => status,
            () = cancel => {
                let _ = killer.kill();
                wait.await
            }
        }
    }
}

/// What to undo when a sandbox is done (or abandoned).
#[derive(Debug)]
struct Cleanup {
    record: Record,
    dir: PathBuf,
    /// Mount points that did not exist in the rootfs before the run (relative paths).
    stubs: Vec<PathBuf>,
    writable: Option<PathBuf>,
    /// Lower dirs of an overlay rootfs (empty for a plain dir).
    lowers: Vec<PathBuf>,
    done: bool,
}

impl Cleanup {
    fn empty() -> Self {
        Self {
            record: Record::default(),
            dir: PathBuf::new(),
            stubs: Vec::new(),
            writable: None,
            lowers: Vec::new(),
            done: true,
        }
    }

    fn run(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.record.cleanup_detached();
        tracing::trace!("sandbox records cleaned");
        if let Some(layer) = &self.writable {
            remove_stubs(layer, &self.stubs, &self.lowers);
        }
        state::remove_dir(&self.dir);
        tracing::trace!("sandbox state removed");
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.cleanup.done {
            // kill_on_drop takes the init down; PID 1 follows (parent-death signal)
            let _ = self.killer.kill();
            let _ = self.child.start_kill();
        }
    }
}

/// The directory receiving writes (where mount-point stubs could appear).
fn writable_layer(rootfs: &Rootfs) -> Option<PathBuf> {
    match rootfs {
        Rootfs::Dir(dir) => Some(dir.clone()),
        Rootfs::Overlay { upper: Some(upper), .. } => Some(upper.upper.clone()),
        Rootfs::Overlay { upper: None, .. } => None,
    }
}

fn layers(rootfs: &Rootfs) -> Vec<PathBuf> {
    match rootfs {
        Rootfs::Dir(dir) => vec![dir.clone()],
        Rootfs::Overlay { lowers, upper } => {
            upper.iter().map(|u| u.upper.clone()).chain(lowers.iter().cloned()).collect()
        }
    }
}

/// Mount points the sandbox may have to create, that do not exist yet in any layer.
fn stub_candidates(spec: &SandboxSpec) -> Vec<PathBuf> {
    let mut candidates = mount_points(spec);
    let layers = layers(&spec.rootfs);
    candidates.retain(|candidate| {
        !layers.iter().any(|layer| std::fs::symlink_metadata(layer.join(candidate)).is_ok())
    });
    candidates
}

/// Every mount point of a sandbox (relative to its root) and their ancestors.
pub(crate) fn mount_points(spec: &SandboxSpec) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> =
        ["proc", "dev", "sys", "etc", "etc/hosts", "etc/hostname", "etc/resolv.conf"]
            .iter()
            .map(PathBuf::from)
            .collect();
    for mount in &spec.mounts {
        let relative: PathBuf =
            mount.target.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
        for ancestor in relative.ancestors() {
            if !ancestor.as_os_str().is_empty() && !candidates.iter().any(|c| c == ancestor) {
                candidates.push(ancestor.to_owned());
            }
        }
    }
    candidates
}

/// Removes stubs left in the writable layer: empty files or directories, deepest first. In an
/// overlay upper, creating a stub copied its parent directories up from the lowers: such a
/// copy that is now empty, and not opaque (a directory the process replaced), goes as well, so
/// the upper holds only what the process wrote.
fn remove_stubs(layer: &Path, stubs: &[PathBuf], lowers: &[PathBuf]) {
    let mut stubs: Vec<&PathBuf> = stubs.iter().collect();
    stubs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut parents: Vec<&Path> = Vec::new();
    for stub in stubs {
        let path = layer.join(stub);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == 0 => std::fs::remove_file(&path).is_ok(),
            // fails unless empty: then it is not a stub
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(&path).is_ok(),
            _ => false,
        };
        if removed && !lowers.is_empty() {
            parents.extend(stub.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()));
        }
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    parents.dedup();
    for parent in parents {
        let path = layer.join(parent);
        let copied_up = lowers.iter().any(|lower| lower.join(parent).is_dir())
            && !sys::has_xattr(&path, "trusted.overlay.opaque");
        if copied_up {
            let _ = std::fs::remove_dir(&path); // fails unless empty
        }
    }
}

fn write_etc_files(
    dir: &Path,
    spec: &SandboxSpec,
    hostname: &str,
    network: Option<&network::Attachment>,
) -> Result<EtcFiles> {
    let files = EtcFiles {
        hosts: dir.join("hosts"),
        hostname: dir.join("hostname"),
        resolv_conf: dir.join("resolv.conf"),
    };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let address = network.map(|n| n.interface.address);
    let contents = [
        (&files.hosts, network::hosts_file(hostname, address, &spec.extra_hosts)),
        (&files.hostname, format!("{hostname}\n")),
        (&files.resolv_conf, network::resolv_conf(&host_resolv, spec.network, &spec.dns)),
    ];
    for (path, text) in contents {
        std::fs::write(path, text).map_err(|e| Error::io("write", path, e))?;
    }
    Ok(files)
}

//! The sandbox init: the hidden re-executed entry point (`/proc/self/exe` with argv[0]
//! [`INIT_ARGV0`]).
//!
//! Stage 1 runs in the host PID namespace, single-threaded: it reads its [`InitConfig`] from
//! descriptor 3 (a socket to kiln), unshares the namespaces, lets kiln plug in the network,
//! forks the container's PID 1 and then supervises it: it relays signals from kiln, kills the
//! container when kiln goes away, and reports the exit status.
//!
//! The forked child (PID 1 of the new PID namespace) joins the cgroups, builds the filesystem,
//! pivots into it, drops privileges and execs the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::mounts::{self, EtcFiles};
use crate::network::InterfaceConfig;
use crate::process;
use crate::spec::{NetworkMode, SandboxSpec};
use crate::sys::{self, Forked};

/// argv[0] that makes a kiln binary act as the sandbox init.
pub const INIT_ARGV0: &str = "kiln-sandbox-init";

/// Exit code for "command not found" (docker uses 127) and "cannot execute" (126).
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_CANNOT_EXEC: i32 = 126;

/// Everything stage 1 needs, sent by kiln as the first message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    pub spec: SandboxSpec,
    /// Empty directory the rootfs gets mounted on.
    pub rootfs_target: PathBuf,
    pub etc_files: EtcFiles,
    pub hostname: String,
    /// `cgroup.procs` files the container joins.
    pub cgroup_procs: Vec<PathBuf>,
}

/// Messages from kiln to the init.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToInit {
    Config(Box<InitConfig>),
    /// The network is plugged in (answer to [`FromInit::NamespacesReady`]).
    Network(Option<InterfaceConfig>),
    /// Send this signal to the container's PID 1.
    Signal(i32),
}

/// Messages from the init to kiln.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromInit {
    /// Namespaces exist (the network namespace is the one of `pid`); waiting for `Network`.
    NamespacesReady { pid: i32 },
    /// The process was executed; `pid` is PID 1 of the container in the host's PID namespace.
    Started { pid: i32 },
    /// Setup failed before the process could run.
    Failed { message: String, exit_code: i32 },
    /// The container's PID 1 is gone; `code` is its exit code or 128+signal.
    Exited { code: i32, signal: Option<i32> },
}

/// A container-side failure (sent to kiln as text).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Executor(#[from] crate::Error),
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    #[error("exec {path}: {source}")]
    Exec { path: String, source: Errno },
    #[error(
        "exec {path}: E2BIG: argument list too long ({arguments} arguments and {environment} environment \
         variables take {total} bytes, the longest {longest} bytes; the kernel takes at most {} bytes per \
         string and a quarter of the stack limit in all)",
        process::MAX_ARG_STRLEN
    )]
    ArgumentsTooLong { path: String, total: usize, longest: usize, arguments: usize, environment: usize },
}

impl InitError {
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            InitError::NotFound(_) => EXIT_NOT_FOUND,
            InitError::Exec { source: Errno::ENOENT, .. } => EXIT_NOT_FOUND,
            InitError::Exec { .. } | InitError::ArgumentsTooLong { .. } => EXIT_CANNOT_EXEC,
            _ => 1,
        }
    }
}

/// Call first thing in `main`, before any thread or tokio runtime exists. When this process is
/// a re-executed sandbox init, runs it and returns its exit code (the caller exits with it);
/// otherwise returns `None`.
pub fn maybe_run_init() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    if argv0 != INIT_ARGV0 {
        return None;
    }
    Some(stage1().unwrap_or(1))
}

struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Channel {
    fn send(&mut self, message: &FromInit) -> Result<(), InitError> {
        let mut line = serde_json::to_vec(message).map_err(|e| InitError::Invalid(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|source| InitError::Io { what: "write to kiln".into(), source })
    }

    /// `None` at end of file (kiln is gone).
    fn receive(&mut self) -> Result<Option<ToInit>, InitError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| InitError::Io { what: "read from kiln".into(), source })?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| InitError::Invalid(format!("bad message from kiln: {e}")))
    }
}

fn stage1() -> Result<i32, InitError> {
    // a session of our own: the terminal's Ctrl-C/SIGHUP go to kiln, which decides what happens
    // to the container; the init is controlled through its socket only
    let _ = nix::unistd::setsid();
    let fd = sys::take_fd3().map_err(|source| InitError::Sys { what: "descriptor 3".into(), source })?;
    let stream = UnixStream::from(fd);
    let writer =
        stream.try_clone().map_err(|source| InitError::Io { what: "clone socket".into(), source })?;
    let mut channel = Channel { reader: BufReader::new(stream), writer };
    let Some(ToInit::Config(config)) = channel.receive()? else {
        return Ok(1);
    };
    match start(&mut channel, &config) {
        Ok(child) => supervise(&mut channel, child),
        Err(err) => {
            channel.send(&FromInit::Failed { message: err.to_string(), exit_code: err.exit_code() })?;
            Ok(1)
        }
    }
}

/// Unshares, plugs the network, forks the container and waits until it exec'd.
fn start(channel: &mut Channel, config: &InitConfig) -> Result<Pid, InitError> {
    // The PID namespace comes last: its first child becomes its init, and that must be the
    // container (configuring the network may run `ip`). The other namespaces belong to this
    // process, so their teardown (unmounting the overlay, …) happens when it exits, after it
    // reported the container's exit: kiln does not wait for that.
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if config.spec.network != NetworkMode::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|source| InitError::Sys { what: "unshare namespaces".into(), source })?;
    if config.spec.network != NetworkMode::Host {
        channel.send(&FromInit::NamespacesReady { pid: std::process::id() as i32 })?;
        let interface = match channel.receive()? {
            Some(ToInit::Network(interface)) => interface,
            _ => return Err(InitError::Invalid("kiln went away during network setup".into())),
        };
        sys::interface_up("lo").map_err(|source| InitError::Sys { what: "bring up lo".into(), source })?;
        if let Some(interface) = interface {
            crate::network::configure_inside(&interface)?;
        }
    }
    // in the sandbox's network and IPC namespaces now: /proc/sys shows (and sets) theirs
    crate::sysctl::apply(&config.spec.sysctls).map_err(InitError::Invalid)?;
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|source| InitError::Sys { what: "unshare pid namespace".into(), source })?;
    let (error_read, error_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|source| InitError::Sys { what: "pipe".into(), source })?;
    let parent = nix::unistd::getpid();
    match sys::fork().map_err(|source| InitError::Sys { what: "fork".into(), source })? {
        Forked::Child => {
            drop(error_read);
            let err = container_main(config, parent);
            let mut pipe = std::fs::File::from(error_write);
            let message = format!("{}\n{err}", err.exit_code());
            let _ = pipe.write_all(message.as_bytes());
            sys::exit_now(err.exit_code());
        }
        Forked::Parent(child) => {
            drop(error_write);
            sys::detach_stdio();
            let mut report = String::new();
            let _ = std::fs::File::from(error_read).read_to_string(&mut report);
            if report.is_empty() {
                channel.send(&FromInit::Started { pid: child.as_raw() })?;
                return Ok(child);
            }
            let _ = waitpid(child, None);
            let (code, message) = report.split_once('\n').unwrap_or(("1", report.as_str()));
            channel.send(&FromInit::Failed {
                message: message.to_owned(),
                exit_code: code.parse().unwrap_or(1),
            })?;
            Err(InitError::Invalid(message.to_owned()))
        }
    }
}

/// Waits for the container, relaying signals; kills it when kiln goes away.
fn supervise(channel: &mut Channel, child: Pid) -> Result<i32, InitError> {
    let pidfd =
        sys::pidfd_open(child).map_err(|source| InitError::Sys { what: "pidfd_open".into(), source })?;
    let socket =
        channel.writer.try_clone().map_err(|source| InitError::Io { what: "clone socket".into(), source })?;
    loop {
        let mut fds =
            [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN), PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(source) => return Err(InitError::Sys { what: "poll".into(), source }),
            Ok(_) => {}
        }
        let child_done = fds[0].revents().is_some_and(|r| !r.is_empty());
        let socket_event = fds[1].revents().is_some_and(|r| !r.is_empty());
        if child_done {
            let (code, signal) = match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => (code, None),
                Ok(WaitStatus::Signaled(_, signal, _)) => (128 + signal as i32, Some(signal as i32)),
                _ => (255, None),
            };
            let _ = channel.send(&FromInit::Exited { code, signal });
            return Ok(0);
        }
        if socket_event {
            match channel.receive() {
                Ok(Some(ToInit::Signal(number))) => {
                    if let Ok(signal) = Signal::try_from(number) {
                        let _ = kill(child, signal);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    // kiln is gone: take the container down with us
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Ok(1);
                }
            }
        }
    }
}

fn sys_err(what: &str) -> impl FnOnce(Errno) -> InitError + '_ {
    move |source| InitError::Sys { what: what.to_owned(), source }
}

/// PID 1 of the container: everything up to exec. Returns only on failure.
fn container_main(config: &InitConfig, parent: Pid) -> InitError {
    match container_setup(config, parent) {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

/// A type with no values: functions returning `Result<Never, _>` only return on error.
#[derive(Debug)]
pub enum Never {}

fn container_setup(config: &InitConfig, parent: Pid) -> Result<Never, InitError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys_err("set parent death signal"))?;
    // getppid() is 0 here (the parent is outside the new PID namespace), so a parent that died
    // before the death signal was armed cannot be detected; stage 1 never exits before us
    // unless SIGKILLed, and then the cgroup cleanup of the next kiln kills us.
    let _ = parent;
    for procs in &config.cgroup_procs {
        std::fs::write(procs, b"0")
            .map_err(|source| InitError::Io { what: format!("join cgroup {}", procs.display()), source })?;
    }
    unshare(CloneFlags::CLONE_NEWCGROUP).map_err(sys_err("unshare cgroup namespace"))?;
    nix::unistd::setsid().map_err(sys_err("setsid"))?;
    if config.spec.process.tty {
        sys::set_controlling_tty(&std::io::stdin()).map_err(sys_err("set controlling terminal"))?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let root = &config.rootfs_target;
    mounts::mount_rootfs(&config.spec.rootfs, root, config.spec.readonly_rootfs)?;
    let privileged = config.spec.privileged;
    mounts::mount_system(root, config.spec.shm_size, privileged)?;
    mounts::mount_extra(root, &config.spec.mounts, config.spec.allow_host_proc_sys)?;
    mounts::mount_etc_files(root, &config.etc_files, config.spec.readonly_rootfs)?;
    if !privileged {
        mounts::mask_paths(root)?;
    }
    mounts::pivot(root)?;
    // like docker, the working directory is created in the writable layer even with --read-only
    mounts::enter_cwd(&config.spec.process.cwd)?;
    if config.spec.readonly_rootfs {
        mounts::readonly_root()?;
    }
    nix::unistd::sethostname(&config.hostname).map_err(sys_err("sethostname"))?;
    let prepared = process::prepare(&config.spec.process, &config.hostname, privileged)?;
    if config.spec.process.init { run_as_init(&prepared) } else { process::exec(&prepared) }
}

/// `--init`: stay PID 1, fork the process, forward signals to it and reap every zombie.
fn run_as_init(prepared: &process::Prepared) -> Result<Never, InitError> {
    let all = SigSet::all();
    all.thread_block().map_err(sys_err("block signals"))?;
    let child = match sys::fork().map_err(sys_err("fork"))? {
        Forked::Child => {
            all.thread_unblock().map_err(sys_err("unblock signals"))?;
            return process::exec(prepared);
        }
        Forked::Parent(child) => child,
    };
    // the error pipe (close-on-exec) stays open here: close it so stage 1 sees the exec
    close_error_pipe_copies();
    loop {
        let signal = all.wait().map_err(sys_err("sigwait"))?;
        if signal == Signal::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => sys::exit_now(code),
                    Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                        sys::exit_now(128 + signal as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else {
            let _ = kill(child, signal);
        }
    }
}

/// Closes every descriptor above stderr (the init keeps nothing the process needs).
fn close_error_pipe_copies() {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> =
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect();
        for fd in fds {
            let _ = nix::unistd::close(fd);
        }
    }
}

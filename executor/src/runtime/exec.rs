//! `exec`: a process in a running container. kiln re-executes itself with argv[0]
//! [`EXEC_ARGV0`] (joining namespaces needs a single-threaded process), joins the container's
//! cgroups and the namespaces of its PID 1 (ipc, uts, net, cgroup, pid, and mount last, which
//! also puts it in the container's root), forks into the PID namespace and executes the
//! process with the container's capabilities, seccomp profile and `no_new_privs`.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::record::{Container, RuntimeError};
use crate::init::{EXIT_CANNOT_EXEC, InitError};
use crate::spec::ProcessSpec;
use crate::sys::{self, Forked};

/// argv[0] that makes a kiln binary act as the exec helper.
pub const EXEC_ARGV0: &str = "kiln-container-exec";

/// What the helper needs (passed as JSON in argv[1]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    pub pid: i32,
    pub pid_start: u64,
    pub cgroup_procs: Vec<PathBuf>,
    pub process: ProcessSpec,
    /// `-d`: return as soon as the process runs.
    pub detach: bool,
}

/// Options of `exec` that change the container's process spec.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// Extra `K=V` entries (after the container's).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub detach: bool,
    /// `-t`: the caller gives the helper a terminal as stdio; it becomes the process's
    /// controlling terminal.
    pub tty: bool,
}

/// The helper command for `options` in the running `container`; the caller sets its stdio,
/// runs it and exits with its status (the process's exit code, 126/127 when it cannot run).
pub fn command(
    container: &mut Container,
    options: ExecOptions,
    program: &Path,
) -> Result<std::process::Command, RuntimeError> {
    container.refresh()?;
    let Some(pid) = container.live_pid() else {
        return Err(RuntimeError::NotRunning(container.config.name.clone()));
    };
    if container.state.paused {
        return Err(RuntimeError::Paused(container.config.name.clone()));
    }
    let mut process = container.config.spec.process.clone();
    process.args = options.args;
    process.env.extend(options.env);
    process.tty = options.tty;
    process.init = false;
    if let Some(user) = options.user {
        process.user = user;
    }
    if let Some(workdir) = options.workdir {
        process.cwd = workdir.into();
    }
    let config = ExecConfig {
        pid,
        pid_start: container.state.pid_start,
        cgroup_procs: container.state.cgroup_dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
        process,
        detach: options.detach,
    };
    let json = serde_json::to_string(&config)
        .map_err(|source| RuntimeError::Record { path: container.dir.clone(), source })?;
    let mut command = std::process::Command::new(program);
    command.arg0(EXEC_ARGV0).arg(json);
    Ok(command)
}

/// Entry point of the re-executed helper.
// A process of its own: its stderr is the `kiln exec` user's terminal, where these go.
#[allow(clippy::print_stderr)]
pub fn main() -> i32 {
    let Some(json) = std::env::args().nth(1) else {
        eprintln!("{EXEC_ARGV0}: internal program of kiln, not meant to be run by hand");
        return 2;
    };
    let config: ExecConfig = match serde_json::from_str(&json) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{EXEC_ARGV0}: invalid configuration: {err}");
            return 2;
        }
    };
    match enter(&config) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kiln: exec failed: {err}");
            EXIT_CANNOT_EXEC
        }
    }
}

fn sys_err(what: &str) -> impl FnOnce(nix::errno::Errno) -> InitError + '_ {
    move |source| InitError::Sys { what: what.to_owned(), source }
}

/// Joins the container and runs the process; returns its exit code.
// The forked child reports a failed exec on the stderr it hands to the process.
#[allow(clippy::print_stderr)]
fn enter(config: &ExecConfig) -> Result<i32, InitError> {
    if crate::state::process_start_time(config.pid) != Some(config.pid_start) {
        return Err(InitError::Invalid("the container is not running".into()));
    }
    // open every namespace first: once in the mount namespace, /proc is the container's
    let namespaces = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut files: Vec<(OwnedFd, CloneFlags, &str)> = Vec::new();
    for (name, flag) in namespaces {
        let path = format!("/proc/{}/ns/{name}", config.pid);
        let file = std::fs::File::open(&path).map_err(|source| InitError::Io { what: path, source })?;
        files.push((file.into(), flag, name));
    }
    for procs in &config.cgroup_procs {
        std::fs::write(procs, b"0")
            .map_err(|source| InitError::Io { what: format!("join cgroup {}", procs.display()), source })?;
    }
    for (fd, flag, name) in &files {
        setns(fd, *flag)
            .map_err(|source| InitError::Sys { what: format!("join {name} namespace"), source })?;
    }
    drop(files);
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let all = SigSet::all();
    all.thread_block().map_err(sys_err("block signals"))?;
    let child = match sys::fork().map_err(sys_err("fork"))? {
        Forked::Child => {
            let _ = all.thread_unblock();
            let _ = nix::unistd::setsid();
            if config.process.tty
                && let Err(errno) = sys::set_controlling_tty(&std::io::stdin())
            {
                eprintln!("kiln: exec failed: set controlling terminal: {errno}");
                sys::exit_now(EXIT_CANNOT_EXEC);
            }
            let err = match crate::process::prepare(&config.process, &hostname, false) {
                Ok(prepared) => match crate::process::exec(&prepared) {
                    Ok(never) => match never {},
                    Err(err) => err,
                },
                Err(err) => err,
            };
            eprintln!("kiln: exec failed: {err}");
            sys::exit_now(err.exit_code());
        }
        Forked::Parent(child) => child,
    };
    if config.detach {
        return Ok(0);
    }
    loop {
        let signal = all.wait().map_err(sys_err("sigwait"))?;
        if signal == Signal::SIGCHLD {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
                Err(nix::errno::Errno::ECHILD) => return Ok(255),
                _ => {}
            }
        } else {
            let _ = kill(Pid::from_raw(-child.as_raw()), signal).or_else(|_| kill(child, signal));
        }
    }
}

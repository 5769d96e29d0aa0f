//! `stop`, `kill` and `wait`: signals go straight to the container's PID 1 (checked against its
//! start time, so a reused pid is never hit); the monitor notices the exit and records it.

use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::record::{Container, RuntimeError, Status};

/// How often state is polled while waiting for an exit.
const POLL: Duration = Duration::from_millis(20);
/// How long a SIGKILLed container may take to be reaped and recorded.
const AFTER_KILL: Duration = Duration::from_secs(30);

/// Parses docker's signal syntax: `SIGTERM`, `TERM`, `term`, `15`.
pub fn parse_signal(text: &str) -> Result<Signal, RuntimeError> {
    let invalid = || RuntimeError::InvalidSignal(text.to_owned());
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| invalid());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| invalid())
}

/// Sends `signal` to the container's PID 1 (SIGKILL also to everything in its cgroups) and
/// marks the exit as requested, so that the restart policy does not apply.
pub fn kill_container(container: &mut Container, signal: Signal) -> Result<(), RuntimeError> {
    container.refresh()?;
    if !container.state.status.is_active() {
        return Err(RuntimeError::NotRunning(container.config.name.clone()));
    }
    container.update(|state| state.stop_requested = true)?;
    send(container, signal)
}

/// Signals PID 1; a paused container is thawed afterwards (docker's order), so the signal is
/// delivered and acted on.
fn send(container: &mut Container, signal: Signal) -> Result<(), RuntimeError> {
    let Some(pid) = container.live_pid() else {
        // restarting (the monitor sees the request) or exiting right now
        return Ok(());
    };
    if signal == Signal::SIGKILL {
        for dir in &container.state.cgroup_dirs {
            crate::cgroup::kill_all(dir);
        }
    }
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(source) => return Err(RuntimeError::Signal { id: container.id().to_owned(), source }),
    }
    if container.state.paused {
        let _lock = container.lock()?;
        container.reload()?;
        if container.state.paused {
            super::pause::thaw_locked(container)?;
        }
    }
    Ok(())
}

/// docker's `stop`: the stop signal, up to `timeout` for the exit, then SIGKILL of the whole
/// container. Returns once the monitor recorded the exit. Stopping a stopped container is a
/// no-op.
pub fn stop(container: &mut Container, signal: Signal, timeout: Duration) -> Result<(), RuntimeError> {
    container.refresh()?;
    if !container.state.status.is_active() {
        return Ok(());
    }
    container.update(|state| state.stop_requested = true)?;
    send(container, signal)?;
    if wait_inactive(container, Some(timeout))? {
        return Ok(());
    }
    send(container, Signal::SIGKILL)?;
    if wait_inactive(container, Some(AFTER_KILL))? {
        return Ok(());
    }
    Err(RuntimeError::StopTimeout { id: container.id().to_owned(), seconds: AFTER_KILL.as_secs() })
}

/// Polls until the container is neither running nor restarting (or `timeout` passed);
/// returns whether it stopped.
pub fn wait_inactive(container: &mut Container, timeout: Option<Duration>) -> Result<bool, RuntimeError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        container.refresh()?;
        if !container.state.status.is_active() {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

/// docker's `wait`: blocks until the container stops, returns its exit code (-1 unknown).
pub fn wait_exit(container: &mut Container) -> Result<i32, RuntimeError> {
    wait_inactive(container, None)?;
    Ok(match container.state.status {
        Status::Created => 0,
        _ => container.state.exit_code.unwrap_or(-1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGTERM").expect("name"), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").expect("short"), Signal::SIGHUP);
        assert_eq!(parse_signal("9").expect("number"), Signal::SIGKILL);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}

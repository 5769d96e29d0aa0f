//! Connecting a running container to the terminal: pty copying, raw mode, window resizes, and
//! Ctrl-C/SIGTERM handling (they kill the container, whose cleanup then runs normally).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::Context;
use executor::{ExitStatus, Sandbox};
use tokio::signal::unix::{SignalKind, signal};

/// Copies until either side ends or fails, flushing after every read (terminal streams).
pub(crate) fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buffer = [0u8; 8192];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).and_then(|()| to.flush()).is_err() {
                    break;
                }
            }
        }
    }
}

/// The signals kiln handles while a container runs. Installed before the sandbox is spawned,
/// so that a Ctrl-C or SIGTERM during setup still kills the container and cleans up.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    resize: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            resize: signal(SignalKind::window_change()).context("cannot handle SIGWINCH")?,
        })
    }
}

/// Runs the container to completion and returns its status.
pub async fn drive(
    mut sandbox: Sandbox,
    signals: Signals,
    tty: bool,
    interactive: bool,
) -> anyhow::Result<ExitStatus> {
    let killer = sandbox.killer();
    let Signals { mut interrupt, mut terminate, mut resize } = signals;

    let mut output_thread = None;
    let mut raw_mode = None;
    let mut master: Option<OwnedFd> = None;
    if tty && let Some(pty) = sandbox.take_pty() {
        let reader = std::fs::File::from(pty.try_clone().context("cannot duplicate the pty")?);
        output_thread = Some(std::thread::spawn(move || copy(reader, std::io::stdout())));
        if interactive {
            raw_mode = executor::tty::RawMode::enter(&std::io::stdin());
            let writer = std::fs::File::from(pty.try_clone().context("cannot duplicate the pty")?);
            // blocked on stdin until the process exits: never joined
            std::thread::spawn(move || copy(std::io::stdin(), writer));
        }
        master = Some(pty);
    }

    let wait = sandbox.wait();
    tokio::pin!(wait);
    let status = loop {
        tokio::select! {
            status = &mut wait => break status?,
            _ = interrupt.recv() => { let _ = killer.kill(); }
            _ = terminate.recv() => { let _ = killer.kill(); }
            _ = resize.recv() => {
                if let Some(master) = &master {
                    let _ = executor::tty::copy_window_size(&std::io::stdin(), master);
                }
            }
        }
    };
    drop(master);
    if let Some(thread) = output_thread {
        let _ = thread.join();
    }
    drop(raw_mode);
    Ok(status)
}

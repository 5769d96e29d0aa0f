//! Terminal helpers for `kiln run -t` and `kiln exec -t`: pseudo-terminals, window size
//! propagation, raw mode.

use std::os::fd::AsRawFd;

use crate::{Error, sys};

/// Copies the window size of the terminal `from` (e.g. the caller's stdin) to `to` (the pty
/// master of a sandbox).
pub fn copy_window_size(from: &impl AsRawFd, to: &impl AsRawFd) -> Result<(), Error> {
    let (rows, cols) = sys::window_size(from).map_err(|e| Error::sys("read the terminal size", e))?;
    sys::set_window_size(to, rows, cols).map_err(|e| Error::sys("set the terminal size", e))
}

/// Sets the window size of a pty.
pub fn set_window_size(fd: &impl AsRawFd, rows: u16, cols: u16) -> Result<(), Error> {
    sys::set_window_size(fd, rows, cols).map_err(|e| Error::sys("set the terminal size", e))
}

/// Puts the terminal on `fd` in raw mode until dropped (`kiln run -it`).
#[derive(Debug)]
pub struct RawMode {
    fd: std::os::fd::OwnedFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Enters raw mode on a duplicate of `fd`; `None` when it is not a terminal.
    pub fn enter(fd: &impl std::os::fd::AsFd) -> Option<Self> {
        let fd = fd.as_fd().try_clone_to_owned().ok()?;
        let saved = nix::sys::termios::tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(&self.fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Window size (rows, columns) of the terminal on `fd`, if it is one.
pub fn window_size(fd: &impl AsRawFd) -> Option<(u16, u16)> {
    sys::window_size(fd).ok().filter(|(rows, cols)| *rows > 0 && *cols > 0)
}

/// A new pseudo-terminal of `size` (rows, columns): (master, slave).
pub fn open_pty(size: Option<(u16, u16)>) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Error> {
    let winsize =
        size.map(|(rows, cols)| nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
    let pty = nix::pty::openpty(winsize.as_ref(), None).map_err(|e| Error::sys("openpty", e))?;
    Ok((pty.master, pty.slave))
}

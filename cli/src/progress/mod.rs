//! Rendering of progress: a build's [`ProgressEvent`] stream (BuildKit's `--progress` displays)
//! and pull/push transfers ([`transfer`]). The libraries only emit events; this is where they
//! become text.
//!
//! Plain format (as BuildKit prints it, [`PlainRenderer`]):
//! ```text
//! #3 [build 2/4] COPY src /src/
//! #3 CACHED
//!
//! #4 [build 3/4] RUN make
//! #4 0.512 cc -o app main.c
//! #4 DONE 1.2s
//! ```
//!
//! ```ignore
//! let (sender, events) = solver::progress::channel();
//! let renderer = progress::render(ProgressMode::Plain, events); // on stderr
//! let result = solver::build::build(request, store, registry, sender, cancel).await; // drops the sender
//! renderer.await??; // returns once every event is drawn (the channel closed)
//! ```
//!
//! [`ProgressMode`]: `auto` (tty when stderr is a terminal, else plain), `tty`
//! ([`TtyRenderer`]: live indicatif view, falls back to plain when stderr is not a terminal),
//! `plain` ([`PlainRenderer`]), `rawjson` ([`RawJsonRenderer`]: one JSON object per event per line),
//! `quiet` ([`QuietRenderer`]: nothing, except the whole block of a failed step).
//! [`render_to`] does the same on any writer (tty then means plain). The renderer finishes when
//! every `ProgressSender` clone is dropped, so drop the senders (the solve does) before awaiting.
//! A failed step's summary (BuildKit's block with its last lines and the Dockerfile snippet) is
//! [`failure`]'s.

pub mod failure;
mod plain;
mod rawjson;
pub mod transfer;
mod tty;

use std::io::Write;

use solver::progress::ProgressEvent;
use tokio::sync::mpsc::UnboundedReceiver;

pub use plain::{PlainRenderer, QuietRenderer};
pub use rawjson::RawJsonRenderer;
pub use tty::TtyRenderer;

/// How to show progress, resolved from `--progress` ([`crate::commands::progress_mode::choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `Tty` when stderr is a terminal, else `Plain`.
    #[default]
    Auto,
    Tty,
    Plain,
    RawJson,
    Quiet,
}

impl ProgressMode {
    /// The mode used on stderr: `Auto` and `Tty` become `Plain` when stderr is not a terminal.
    pub fn resolve(self) -> ProgressMode {
        use std::io::IsTerminal;
        match self {
            ProgressMode::Auto | ProgressMode::Tty if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto | ProgressMode::Tty => ProgressMode::Plain,
            other => other,
        }
    }
}

/// Renders `events` on stderr in `mode` (resolved with [`ProgressMode::resolve`]) on a blocking
/// thread until the channel closes. Must be called inside a tokio runtime.
pub fn render(
    mode: ProgressMode,
    events: UnboundedReceiver<ProgressEvent>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    match mode.resolve() {
        ProgressMode::Tty => tokio::task::spawn_blocking(move || {
            let mut renderer = TtyRenderer::default();
            let result = drain(events, |event| renderer.handle(event));
            renderer.finish();
            result
        }),
        other => render_to(other, events, std::io::stderr()),
    }
}

/// Renders `events` on `out` in `mode` (`Auto` and `Tty` mean `Plain` here) on a blocking
/// thread until the channel closes; the writer is flushed at the end.
pub fn render_to<W: Write + Send + 'static>(
    mode: ProgressMode,
    events: UnboundedReceiver<ProgressEvent>,
    out: W,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::task::spawn_blocking(move || match mode {
        ProgressMode::RawJson => {
            let mut renderer = RawJsonRenderer::new(out);
            drain(events, |event| renderer.handle(event))?;
            renderer.into_inner().flush()
        }
        ProgressMode::Quiet => {
            let mut renderer = QuietRenderer::new(out);
            drain(events, |event| renderer.handle(event))?;
            renderer.into_inner().flush()
        }
        ProgressMode::Auto | ProgressMode::Tty | ProgressMode::Plain => {
            let mut renderer = PlainRenderer::new(out);
            drain(events, |event| renderer.handle(event))?;
            renderer.into_inner().flush()
        }
    })
}

/// Feeds every event to `handle`; after a write error (e.g. a closed pipe) keeps draining so
/// senders never block, and returns the first error.
fn drain(
    mut events: UnboundedReceiver<ProgressEvent>,
    mut handle: impl FnMut(&ProgressEvent) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut first_error = None;
    while let Some(event) = events.blocking_recv() {
        if first_error.is_none()
            && let Err(error) = handle(&event)
        {
            first_error = Some(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;

//! Progress events of a solve, and a renderer for BuildKit's `--progress=plain` format.
//!
//! The scheduler sends [`ProgressEvent`]s on an unbounded channel; a CLI renders them. Only
//! vertices with a description (`VertexMetadata::description`) report progress.
//!
//! Plain format (as BuildKit prints it):
//! ```text
//! #3 [build 2/4] COPY src /src/
//! #3 CACHED
//!
//! #4 [build 3/4] RUN make
//! #4 0.512 cc -o app main.c
//! #4 DONE 1.2s
//! ```
//!
//! # Rendering (for the CLI)
//!
//! ```ignore
//! let (sender, events) = solver::progress::channel();
//! let renderer = solver::progress::render(ProgressMode::Auto, events); // on stderr
//! let result = solver.solve(&definition, &options, sender, cancel).await; // drops the sender
//! renderer.await??; // returns once every event is drawn (the channel closed)
//! ```
//!
//! [`ProgressMode`]: `auto` (tty when stderr is a terminal, else plain), `tty`
//! ([`TtyRenderer`]: live indicatif view, falls back to plain when stderr is not a terminal),
//! `plain` ([`PlainRenderer`]), `rawjson` ([`RawJsonRenderer`]: one JSON object per event per line),
//! `quiet` ([`QuietRenderer`]: nothing, except the whole block of a failed step).
//! [`render_to`] does the same on any writer (tty then means plain). The renderer finishes when
//! every [`ProgressSender`] clone is dropped, so drop the senders (the solve does) before awaiting.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use oci_spec::image::Digest;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

#[path = "progress_json.rs"]
mod json;
#[path = "progress_tty.rs"]
mod tty;

pub use json::RawJsonRenderer;
pub use tty::{TAIL_LINES, TtyAction, TtyModel, TtyRenderer};

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// What happened to a vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The vertex's result was found in the cache; it never starts.
    Cached { name: String },
    /// The vertex started running.
    Started { name: String },
    /// Output of the running vertex (arbitrary chunks, not necessarily whole lines).
    Log { stream: LogStream, data: Vec<u8> },
    /// The vertex finished successfully.
    Completed,
    /// The vertex failed; `error` is the rendered error chain.
    Failed { error: String },
    /// The vertex was stopped because another one failed (or the build was cancelled).
    Canceled,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    pub vertex: Digest,
    pub time: SystemTime,
    pub kind: EventKind,
}

/// Where a solve sends its events (cheap to clone; a `None` sender drops them).
#[derive(Debug, Clone, Default)]
pub struct ProgressSender {
    tx: Option<UnboundedSender<ProgressEvent>>,
}

impl ProgressSender {
    pub fn new(tx: UnboundedSender<ProgressEvent>) -> ProgressSender {
        ProgressSender { tx: Some(tx) }
    }

    /// A sender that discards everything.
    pub fn discard() -> ProgressSender {
        ProgressSender { tx: None }
    }

    pub fn send(&self, vertex: &Digest, kind: EventKind) {
        if let Some(tx) = &self.tx {
            // A closed receiver only means nobody watches any more.
            let _ = tx.send(ProgressEvent { vertex: vertex.clone(), time: SystemTime::now(), kind });
        }
    }
}

/// The log writer a runner gets for its vertex.
#[derive(Debug, Clone)]
pub struct VertexLog {
    vertex: Digest,
    sender: ProgressSender,
    enabled: bool,
}

impl VertexLog {
    pub(crate) fn new(vertex: Digest, sender: ProgressSender, enabled: bool) -> VertexLog {
        VertexLog { vertex, sender, enabled }
    }

    /// A log that goes nowhere (for runner tests).
    pub fn discard(vertex: Digest) -> VertexLog {
        VertexLog { vertex, sender: ProgressSender::discard(), enabled: false }
    }

    /// Sends a chunk of output.
    pub fn write(&self, stream: LogStream, data: &[u8]) {
        if self.enabled && !data.is_empty() {
            self.sender.send(&self.vertex, EventKind::Log { stream, data: data.to_vec() });
        }
    }
}

#[derive(Debug)]
struct VertexState {
    number: usize,
    name: String,
    started: Option<SystemTime>,
    partial: Vec<u8>,
    partial_time: Option<SystemTime>,
}

/// Renders events as BuildKit's plain progress.
#[derive(Debug)]
pub struct PlainRenderer<W: Write> {
    out: W,
    vertices: HashMap<Digest, VertexState>,
    next_number: usize,
    current: Option<Digest>,
    printed_any: bool,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl<W: Write> PlainRenderer<W> {
    pub fn new(out: W) -> PlainRenderer<W> {
        PlainRenderer { out, vertices: HashMap::new(), next_number: 1, current: None, printed_any: false }
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Makes `vertex` the current block, printing a separator and its header when switching.
    fn switch_to(&mut self, vertex: &Digest) -> std::io::Result<()> {
        if self.current.as_ref() == Some(vertex) {
            return Ok(());
        }
        if self.printed_any {
            writeln!(self.out)?;
        }
        if let Some(state) = self.vertices.get(vertex) {
            writeln!(self.out, "#{} {}", state.number, state.name)?;
        }
        self.printed_any = true;
        self.current = Some(vertex.clone());
        Ok(())
    }

    fn register(&mut self, vertex: &Digest, name: &str) -> usize {
        if let Some(state) = self.vertices.get(vertex) {
            return state.number;
        }
        let number = self.next_number;
        self.next_number += 1;
        self.vertices.insert(
            vertex.clone(),
            VertexState {
                number,
                name: name.to_owned(),
                started: None,
                partial: Vec::new(),
                partial_time: None,
            },
        );
        number
    }

    fn write_line(&mut self, vertex: &Digest, time: SystemTime, line: &[u8]) -> std::io::Result<()> {
        let Some(state) = self.vertices.get(vertex) else { return Ok(()) };
        let elapsed = state.started.and_then(|s| time.duration_since(s).ok()).unwrap_or_default();
        write!(self.out, "#{} {:.3} ", state.number, seconds(elapsed))?;
        self.out.write_all(line)?;
        writeln!(self.out)
    }

    fn flush_partial(&mut self, vertex: &Digest) -> std::io::Result<()> {
        let Some(state) = self.vertices.get_mut(vertex) else { return Ok(()) };
        if state.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut state.partial);
        let time = state.partial_time.take().unwrap_or(SystemTime::UNIX_EPOCH);
        self.write_line(vertex, time, &line)
    }

    /// Renders one event.
    pub fn handle(&mut self, event: &ProgressEvent) -> std::io::Result<()> {
        let vertex = &event.vertex;
        match &event.kind {
            EventKind::Cached { name } => {
                let number = self.register(vertex, name);
                self.switch_to(vertex)?;
                writeln!(self.out, "#{number} CACHED")?;
            }
            EventKind::Started { name } => {
                self.register(vertex, name);
                if let Some(state) = self.vertices.get_mut(vertex) {
                    state.started = Some(event.time);
                }
                self.switch_to(vertex)?;
            }
            EventKind::Log { data, .. } => {
                if !self.vertices.contains_key(vertex) {
                    return Ok(());
                }
                self.switch_to(vertex)?;
                let mut rest: &[u8] = data;
                while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
                    let (line, tail) = rest.split_at(pos);
                    let (time, mut full) = match self.vertices.get_mut(vertex) {
                        Some(state) => (
                            state.partial_time.take().unwrap_or(event.time),
                            std::mem::take(&mut state.partial),
                        ),
                        None => (event.time, Vec::new()),
                    };
                    full.extend_from_slice(line);
                    self.write_line(vertex, time, &full)?;
                    rest = &tail[1..];
                }
                if !rest.is_empty()
                    && let Some(state) = self.vertices.get_mut(vertex)
                {
                    state.partial.extend_from_slice(rest);
                    state.partial_time.get_or_insert(event.time);
                }
            }
            EventKind::Completed | EventKind::Failed { .. } | EventKind::Canceled => {
                let Some(state) = self.vertices.get(vertex) else { return Ok(()) };
                let number = state.number;
                let elapsed =
                    state.started.and_then(|s| event.time.duration_since(s).ok()).unwrap_or_default();
                self.switch_to(vertex)?;
                self.flush_partial(vertex)?;
                match &event.kind {
                    EventKind::Completed => writeln!(self.out, "#{number} DONE {:.1}s", seconds(elapsed))?,
                    EventKind::Failed { error } => writeln!(self.out, "#{number} ERROR: {error}")?,
                    _ => writeln!(self.out, "#{number} CANCELED")?,
                }
            }
        }
        Ok(())
    }
}

/// How to show progress (`--progress`).
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
    /// Parses `auto|tty|plain|rawjson|quiet`.
    pub fn parse(text: &str) -> Option<ProgressMode> {
        Some(match text {
            "auto" => ProgressMode::Auto,
            "tty" => ProgressMode::Tty,
            "plain" => ProgressMode::Plain,
            "rawjson" => ProgressMode::RawJson,
            "quiet" => ProgressMode::Quiet,
            _ => return None,
        })
    }

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

/// An unknown `--progress` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown progress mode {0:?} (expected auto, tty, plain, rawjson or quiet)")]
pub struct UnknownProgressMode(pub String);

impl std::str::FromStr for ProgressMode {
    type Err = UnknownProgressMode;

    fn from_str(text: &str) -> Result<ProgressMode, UnknownProgressMode> {
        ProgressMode::parse(text).ok_or_else(|| UnknownProgressMode(text.to_owned()))
    }
}

/// A sender for a solve and the receiver to give [`render`].
pub fn channel() -> (ProgressSender, UnboundedReceiver<ProgressEvent>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (ProgressSender::new(tx), rx)
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

/// `--progress=quiet`: prints nothing, except a failed step's block in plain format (its name,
/// its whole log and the error), so a failure is never silent.
#[derive(Debug)]
pub struct QuietRenderer<W: Write> {
    plain: PlainRenderer<W>,
    pending: HashMap<Digest, Vec<ProgressEvent>>,
}

impl<W: Write> QuietRenderer<W> {
    pub fn new(out: W) -> QuietRenderer<W> {
        QuietRenderer { plain: PlainRenderer::new(out), pending: HashMap::new() }
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.plain.into_inner()
    }

    /// Renders one event (buffers a running step's events until it ends).
    pub fn handle(&mut self, event: &ProgressEvent) -> std::io::Result<()> {
        match &event.kind {
            EventKind::Started { .. } => {
                self.pending.insert(event.vertex.clone(), vec![event.clone()]);
            }
            EventKind::Log { .. } => {
                if let Some(events) = self.pending.get_mut(&event.vertex) {
                    events.push(event.clone());
                }
            }
            EventKind::Failed { .. } => {
                for earlier in self.pending.remove(&event.vertex).unwrap_or_default() {
                    self.plain.handle(&earlier)?;
                }
                self.plain.handle(event)?;
            }
            EventKind::Cached { .. } | EventKind::Completed | EventKind::Canceled => {
                self.pending.remove(&event.vertex);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted build with a fake clock: two cached steps, two parallel runs with partial
    /// lines, one failure, one cancellation.
    fn scripted_events() -> Vec<ProgressEvent> {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |ms: u64| base + Duration::from_millis(ms);
        let d = |n: u8| cache::sha256_digest(&[n]);
        let ev =
            |vertex: u8, ms: u64, kind: EventKind| ProgressEvent { vertex: d(vertex), time: at(ms), kind };
        let log = |data: &str| EventKind::Log { stream: LogStream::Stdout, data: data.as_bytes().to_vec() };
        let events = vec![
            ev(1, 0, EventKind::Cached { name: "[build 1/4] FROM docker.io/library/busybox:latest".into() }),
            ev(2, 0, EventKind::Cached { name: "[build 2/4] COPY src /src/".into() }),
            ev(3, 10, EventKind::Started { name: "[build 3/4] RUN make".into() }),
            ev(3, 522, log("cc -o app ")),
            ev(3, 600, log("main.c\nlinking\n")),
            ev(4, 700, EventKind::Started { name: "[other 2/2] RUN sleep 1".into() }),
            ev(4, 900, log("zzz\n")),
            ev(3, 1000, log("no newline at end")),
            ev(3, 1210, EventKind::Completed),
            ev(
                4,
                1800,
                EventKind::Failed {
                    error: "process \"/bin/sh -c sleep 1\" did not complete successfully: exit code: 1"
                        .into(),
                },
            ),
            ev(5, 1800, EventKind::Started { name: "[final 2/2] COPY --from=build /app /app".into() }),
            ev(5, 1900, EventKind::Canceled),
        ];
        events
    }

    #[test]
    fn scripted_events_render_like_buildkit_plain() {
        let mut renderer = PlainRenderer::new(Vec::new());
        for event in &scripted_events() {
            renderer.handle(event).unwrap();
        }
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        crate::golden::check("progress/plain.txt", &text);
    }

    #[test]
    fn failed_step_logs_are_never_clipped_in_plain() {
        let d = cache::sha256_digest(b"step");
        let ev = |kind| ProgressEvent { vertex: d.clone(), time: SystemTime::UNIX_EPOCH, kind };
        let mut renderer = PlainRenderer::new(Vec::new());
        renderer.handle(&ev(EventKind::Started { name: "[2/2] RUN make".into() })).unwrap();
        let log: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let data = log.into_bytes();
        renderer.handle(&ev(EventKind::Log { stream: LogStream::Stderr, data })).unwrap();
        renderer.handle(&ev(EventKind::Failed { error: "exit code: 2".into() })).unwrap();
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 502);
        assert!(text.contains("#1 0.000 line 0\n") && text.contains("#1 0.000 line 499\n"));
        assert!(text.ends_with("#1 ERROR: exit code: 2\n"));
    }

    #[test]
    fn scripted_events_render_as_rawjson() {
        let mut renderer = RawJsonRenderer::new(Vec::new());
        for event in &scripted_events() {
            renderer.handle(event).unwrap();
        }
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value.get("vertexes").is_some() || value.get("logs").is_some(), "{line}");
        }
        crate::golden::check("progress/rawjson.jsonl", &text);
    }

    #[test]
    fn quiet_shows_only_failed_steps() {
        let mut renderer = QuietRenderer::new(Vec::new());
        for event in &scripted_events() {
            renderer.handle(event).unwrap();
        }
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        crate::golden::check("progress/quiet.txt", &text);
        assert!(text.starts_with("#1 [other 2/2] RUN sleep 1\n"), "{text}");
    }

    #[tokio::test]
    async fn render_to_drains_until_every_sender_is_dropped() {
        for (mode, golden) in [
            (ProgressMode::Plain, "progress/plain.txt"),
            (ProgressMode::Tty, "progress/plain.txt"),
            (ProgressMode::RawJson, "progress/rawjson.jsonl"),
            (ProgressMode::Quiet, "progress/quiet.txt"),
        ] {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let out = SharedBuf::default();
            let task = render_to(mode, rx, out.clone());
            for event in scripted_events() {
                tx.send(event).unwrap();
            }
            drop(tx);
            task.await.unwrap().unwrap();
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            crate::golden::check(golden, &text);
        }
        assert_eq!(ProgressMode::parse("rawjson"), Some(ProgressMode::RawJson));
        assert_eq!(ProgressMode::parse("fancy"), None);
        assert_eq!("tty".parse::<ProgressMode>(), Ok(ProgressMode::Tty));
        assert!("fancy".parse::<ProgressMode>().unwrap_err().to_string().contains("\"fancy\""));
    }

    #[derive(Clone, Default)]
    struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

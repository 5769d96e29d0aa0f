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

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use oci_spec::image::Digest;
use tokio::sync::mpsc::UnboundedSender;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_events_render_like_buildkit_plain() {
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
        let mut renderer = PlainRenderer::new(Vec::new());
        for event in &events {
            renderer.handle(event).unwrap();
        }
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        crate::golden::check("progress/plain.txt", &text);
    }
}

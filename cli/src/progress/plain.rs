//! `--progress=plain` (BuildKit's plain format) and `--progress=quiet` (only a failed step's
//! block, in plain format).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use oci_spec::image::Digest;
use solver::progress::{EventKind, ProgressEvent};

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

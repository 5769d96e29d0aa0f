//! Progress events of a solve: what a CLI renders (the renderers live in the `kiln` crate).
//!
//! The scheduler sends [`ProgressEvent`]s on an unbounded channel ([`channel`]); a CLI renders
//! them (BuildKit's plain, tty, rawjson and quiet displays). Only vertices with a description
//! (`VertexMetadata::description`) report progress. A [`LineTail`] keeps the last lines of a
//! stream of output chunks, for failure reports.
//!
//! ```ignore
//! let (sender, events) = solver::progress::channel();
//! // a renderer drains `events` until every sender is dropped
//! let result = solver.solve(&definition, &options, sender, cancel).await; // drops the sender
//! ```

use std::collections::VecDeque;
use std::time::SystemTime;

use oci_spec::image::Digest;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

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
    /// The vertex failed; `error` is its error chain as text (as BuildKit's vertex error).
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

/// A sender for a solve and the receiver a renderer drains.
pub fn channel() -> (ProgressSender, UnboundedReceiver<ProgressEvent>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (ProgressSender::new(tx), rx)
}

/// How many output lines a failure report keeps (of a failed process, of a failed step).
pub const TAIL_LINES: usize = 20;

/// The last [`TAIL_LINES`] lines of a stream of output chunks: lines end at `\n` (a `\r`
/// before it is dropped), bytes are read as lossy UTF-8, an unterminated last line counts.
#[derive(Debug, Clone, Default)]
pub struct LineTail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl LineTail {
    /// Appends a chunk of output.
    pub fn push(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_owned();
            self.lines.push_back(text);
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
    }

    /// The last lines (an unterminated last line included).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            if lines.len() > TAIL_LINES {
                lines.remove(0);
            }
        }
        lines
    }

    /// The last lines, consuming the buffer.
    pub fn finish(self) -> Vec<String> {
        self.lines()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_lines() {
        let mut tail = LineTail::default();
        for i in 0..30 {
            let data = if i == 29 { format!("line {i}") } else { format!("line {i}\r\n") };
            tail.push(data.as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("line 10"));
        assert_eq!(lines.last().map(String::as_str), Some("line 29"));
        let mut split = LineTail::default();
        split.push(b"ab");
        split.push(b"c\nd");
        assert_eq!(split.finish(), ["abc", "d"]);
    }
}

//! `--progress=rawjson`: one JSON object per event per line, shaped like buildctl's rawjson
//! (a `SolveStatus` with `vertexes` or `logs`):
//!
//! ```text
//! {"vertexes":[{"digest":"sha256:…","name":"[build 3/4] RUN make","started":"2023-11-14T22:13:20.01Z"}]}
//! {"logs":[{"vertex":"sha256:…","stream":1,"data":"Y2MgLW8gYXBw","timestamp":"…"}]}
//! {"vertexes":[{"digest":"sha256:…","name":"…","started":"…","completed":"…"}]}
//! {"vertexes":[{"digest":"sha256:…","name":"…","started":"…","completed":"…","cached":true}]}
//! {"vertexes":[{"digest":"sha256:…","name":"…","started":"…","completed":"…","error":"…"}]}
//! ```
//!
//! Log `data` is base64 (bytes as the op wrote them, not split into lines); `stream` is 1 for
//! stdout and 2 for stderr; times are RFC 3339 UTC with nanoseconds. A vertex stopped because
//! another one failed gets `"error":"canceled"` and `"canceled":true`.

use std::collections::HashMap;
use std::io::Write;
use std::time::SystemTime;

use base64::Engine;
use oci_spec::image::Digest;
use serde::Serialize;

use solver::progress::{EventKind, LogStream, ProgressEvent};

/// An RFC 3339 UTC timestamp with nanoseconds.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[derive(Serialize)]
struct VertexJson<'a> {
    digest: &'a Digest,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    canceled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct LogJson<'a> {
    vertex: &'a Digest,
    stream: u8,
    data: String,
    timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum StatusJson<'a> {
    Vertexes([VertexJson<'a>; 1]),
    Logs([LogJson<'a>; 1]),
}

#[derive(Debug)]
struct Known {
    name: String,
    started: Option<SystemTime>,
}

/// Renders events as JSON lines.
#[derive(Debug)]
pub struct RawJsonRenderer<W: Write> {
    out: W,
    vertices: HashMap<Digest, Known>,
}

impl<W: Write> RawJsonRenderer<W> {
    pub fn new(out: W) -> RawJsonRenderer<W> {
        RawJsonRenderer { out, vertices: HashMap::new() }
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Renders one event as one line.
    pub fn handle(&mut self, event: &ProgressEvent) -> std::io::Result<()> {
        let digest = &event.vertex;
        let status = match &event.kind {
            EventKind::Log { stream, data } => StatusJson::Logs([LogJson {
                vertex: digest,
                stream: match stream {
                    LogStream::Stdout => 1,
                    LogStream::Stderr => 2,
                },
                data: base64::engine::general_purpose::STANDARD.encode(data),
                timestamp: rfc3339(event.time),
            }]),
            EventKind::Cached { name } | EventKind::Started { name } => {
                let known = self
                    .vertices
                    .entry(digest.clone())
                    .or_insert(Known { name: name.clone(), started: None });
                known.started = Some(event.time);
                let cached = matches!(event.kind, EventKind::Cached { .. });
                StatusJson::Vertexes([VertexJson {
                    digest,
                    name,
                    started: Some(rfc3339(event.time)),
                    completed: cached.then(|| rfc3339(event.time)),
                    cached,
                    canceled: false,
                    error: None,
                }])
            }
            EventKind::Completed | EventKind::Failed { .. } | EventKind::Canceled => {
                let (name, started) = match self.vertices.get(digest) {
                    Some(known) => (known.name.as_str(), known.started),
                    None => ("", None),
                };
                let error = match &event.kind {
                    EventKind::Failed { error } => Some(error.as_str()),
                    EventKind::Canceled => Some("canceled"),
                    _ => None,
                };
                StatusJson::Vertexes([VertexJson {
                    digest,
                    name,
                    started: started.map(rfc3339),
                    completed: Some(rfc3339(event.time)),
                    cached: false,
                    canceled: matches!(event.kind, EventKind::Canceled),
                    error,
                }])
            }
        };
        serde_json::to_writer(&mut self.out, &status)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

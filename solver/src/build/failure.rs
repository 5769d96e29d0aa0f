//! What a failed step shows: BuildKit's block with the step's last output lines, the Dockerfile
//! lines of the instruction marked `>>>`, and the error (exit code).

use std::collections::HashMap;
use std::fmt;

use oci_spec::image::Digest;

use crate::graph::Vertex;
use crate::progress::{EventKind, ProgressEvent};
use crate::scheduler::RunError;

/// Vertex annotation set by the frontend: the instruction's Dockerfile lines, 1-based
/// inclusive, `"START-END"` or `"LINE"`.
pub const ANNOTATION_LINES: &str = "dockerfile.lines";

/// How many output lines a failure shows.
pub const TAIL_LINES: usize = 20;

/// Keeps the last [`TAIL_LINES`] lines of every vertex's output (fed with progress events).
#[derive(Debug, Default)]
pub struct LogTails {
    tails: HashMap<Digest, Tail>,
}

#[derive(Debug, Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
}

impl LogTails {
    pub fn observe(&mut self, event: &ProgressEvent) {
        let EventKind::Log { data, .. } = &event.kind else { return };
        let tail = self.tails.entry(event.vertex.clone()).or_default();
        tail.partial.extend_from_slice(data);
        while let Some(pos) = tail.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = tail.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r').to_owned();
            tail.lines.push_back(text);
            if tail.lines.len() > TAIL_LINES {
                tail.lines.pop_front();
            }
        }
    }

    /// The last lines of `vertex` (an unterminated last line included).
    pub fn lines(&self, vertex: &Digest) -> Vec<String> {
        let Some(tail) = self.tails.get(vertex) else { return Vec::new() };
        let mut lines: Vec<String> = tail.lines.iter().cloned().collect();
        if !tail.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&tail.partial).into_owned());
            if lines.len() > TAIL_LINES {
                lines.remove(0);
            }
        }
        lines
    }
}

/// A failed build step, ready to show; its [`std::error::Error::source`] is the step's typed
/// error ([`RunError`], with its own source chain: a runner error, a process exit …).
#[derive(Debug)]
pub struct StepFailure {
    /// The step's progress name (`[2/3] RUN make`).
    pub name: String,
    /// Why the step failed (`process "/bin/sh -c make" did not complete successfully: exit
    /// code: 2` once rendered with [`StepFailure::error_text`]).
    pub error: RunError,
    /// The last output lines of the step.
    pub log_tail: Vec<String>,
    /// The Dockerfile's display name (`Dockerfile`, `build/app.Dockerfile`).
    pub dockerfile_name: String,
    /// (first line, the instruction's lines with context: (number, text, marked)).
    pub snippet: Vec<(usize, String, bool)>,
}

/// Lines of context shown before the instruction.
const CONTEXT_BEFORE: usize = 2;

/// Lines of a long instruction shown before and after the ones left out.
const SNIPPET_HEAD: usize = 10;
const SNIPPET_TAIL: usize = 5;

impl StepFailure {
    /// Builds the failure report for `vertex` from the Dockerfile `text`.
    pub fn new(
        vertex: &Vertex,
        error: RunError,
        log_tail: Vec<String>,
        dockerfile_name: &str,
        text: &str,
    ) -> StepFailure {
        let name = vertex.metadata.description.clone().unwrap_or_else(|| vertex.op.kind().to_owned());
        let snippet = vertex
            .metadata
            .annotations
            .get(ANNOTATION_LINES)
            .and_then(|range| parse_range(range))
            .map(|(start, end)| snippet(text, start, end))
            .unwrap_or_default();
        StepFailure { name, error, log_tail, dockerfile_name: dockerfile_name.to_owned(), snippet }
    }
}

impl StepFailure {
    /// The error and its causes on one line, each cause once (the block's last line, and what
    /// follows `ERROR: failed to solve:`).
    pub fn error_text(&self) -> String {
        let mut text = self.error.to_string();
        let mut next = std::error::Error::source(&self.error);
        while let Some(cause) = next {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            next = cause.source();
        }
        text
    }
}

impl std::error::Error for StepFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn parse_range(range: &str) -> Option<(usize, usize)> {
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let line = range.trim().parse().ok()?;
            (line, line)
        }
    };
    (start >= 1 && end >= start).then_some((start, end))
}

fn snippet(text: &str, start: usize, end: usize) -> Vec<(usize, String, bool)> {
    let first = start.saturating_sub(CONTEXT_BEFORE).max(1);
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(n, _)| *n >= first && *n <= end)
        .map(|(n, line)| (n, line.to_owned(), n >= start))
        .collect()
}

impl fmt::Display for StepFailure {
    /// BuildKit's layout:
    ///
    /// ```text
    /// ------
    ///  > [2/2] RUN echo oops && exit 3:
    /// 0.101 oops
    /// ------
    /// Dockerfile:2
    /// --------------------
    ///    1 |     FROM busybox
    ///    2 | >>> RUN echo oops && exit 3
    /// --------------------
    /// process "/bin/sh -c echo oops && exit 3" did not complete successfully: exit code: 3
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "------")?;
        writeln!(f, " > {}:", self.name)?;
        for line in &self.log_tail {
            writeln!(f, "{line}")?;
        }
        writeln!(f, "------")?;
        if let Some((first_marked, ..)) = self.snippet.iter().find(|(_, _, marked)| *marked) {
            writeln!(f, "{}:{first_marked}", self.dockerfile_name)?;
            writeln!(f, "--------------------")?;
            // a huge instruction (thousands of continuation lines) shows its head and tail only
            let marked = self.snippet.iter().filter(|(_, _, marked)| *marked).count();
            let hidden = marked.saturating_sub(SNIPPET_HEAD + SNIPPET_TAIL);
            let first_hidden = self.snippet.len() - marked + SNIPPET_HEAD;
            for (index, (number, line, marked)) in self.snippet.iter().enumerate() {
                if hidden > 0 && (first_hidden..first_hidden + hidden).contains(&index) {
                    if index == first_hidden {
                        writeln!(f, "     | >>> … ({hidden} more lines)")?;
                    }
                    continue;
                }
                let marker = if *marked { ">>>" } else { "   " };
                writeln!(f, "{number:>4} | {marker} {line}")?;
            }
            writeln!(f, "--------------------")?;
        }
        write!(f, "{}", self.error_text())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::graph::{Op, SourceOp, VertexMetadata};
    use crate::progress::LogStream;

    fn vertex(annotation: Option<&str>) -> Vertex {
        let mut annotations = BTreeMap::new();
        if let Some(a) = annotation {
            annotations.insert(ANNOTATION_LINES.to_owned(), a.to_owned());
        }
        Vertex {
            digest: cache::sha256_digest(b"v"),
            op: Op::Source(SourceOp::Scratch),
            inputs: vec![],
            metadata: VertexMetadata {
                description: Some("[2/3] RUN false".into()),
                annotations,
                ..VertexMetadata::default()
            },
        }
    }

    fn failed(text: &str) -> RunError {
        RunError::failed(std::io::Error::other(text.to_owned()))
    }

    #[test]
    fn the_error_keeps_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot copy /a")]
        struct Outer(#[source] std::io::Error);
        let failure = StepFailure::new(
            &vertex(None),
            RunError::failed(Outer(std::io::Error::from(std::io::ErrorKind::PermissionDenied))),
            vec![],
            "Dockerfile",
            "FROM a\n",
        );
        assert_eq!(failure.error_text(), "cannot copy /a: permission denied");
        assert!(failure.to_string().ends_with("cannot copy /a: permission denied"));
        // the typed cause is still there for the caller
        let source = std::error::Error::source(&failure).unwrap();
        let RunError::Failed(inner) = source.downcast_ref::<RunError>().unwrap() else { panic!() };
        assert!(inner.downcast_ref::<Outer>().is_some());
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let mut tails = LogTails::default();
        let digest = cache::sha256_digest(b"v");
        for i in 0..30 {
            let data = if i == 29 { format!("line {i}") } else { format!("line {i}\n") };
            tails.observe(&ProgressEvent {
                vertex: digest.clone(),
                time: SystemTime::now(),
                kind: EventKind::Log { stream: LogStream::Stdout, data: data.into_bytes() },
            });
        }
        let lines = tails.lines(&digest);
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("line 29"));
        assert_eq!(lines.first().map(String::as_str), Some("line 10"));
    }

    #[test]
    fn failure_marks_the_instruction_lines() {
        let text = "FROM busybox\nENV A=1\nRUN echo a \\\n  && false\nCMD x\n";
        let failure = StepFailure::new(
            &vertex(Some("3-4")),
            failed("process \"/bin/sh -c echo a && false\" did not complete successfully: exit code: 1"),
            vec!["a".into()],
            "Dockerfile",
            text,
        );
        let shown = failure.to_string();
        assert!(shown.contains(" > [2/3] RUN false:\na\n------\nDockerfile:3\n"), "{shown}");
        assert!(
            shown.contains("   2 |     ENV A=1\n   3 | >>> RUN echo a \\\n   4 | >>>   && false\n"),
            "{shown}"
        );
        assert!(!shown.contains("CMD x"), "{shown}");
        assert!(shown.ends_with("exit code: 1"), "{shown}");
    }

    #[test]
    fn a_huge_instruction_shows_its_head_and_tail() {
        let body: String = (0..100).map(|n| format!("  && echo {n} \\\n")).collect();
        let text = format!("FROM busybox\nRUN true \\\n{body}  && true\n");
        let failure = StepFailure::new(&vertex(Some("2-103")), failed("boom"), vec![], "Dockerfile", &text);
        let shown = failure.to_string();
        assert!(shown.contains("Dockerfile:2\n"), "{shown}");
        assert!(
            shown
                .contains("  11 | >>>   && echo 8 \\\n     | >>> … (87 more lines)\n  99 | >>>   && echo 96"),
            "{shown}"
        );
        assert!(shown.contains(" 103 | >>>   && true\n"), "{shown}");
        assert_eq!(shown.matches(">>>").count(), 16, "{shown}");
    }

    #[test]
    fn no_annotation_no_snippet() {
        let failure = StepFailure::new(&vertex(None), failed("boom"), vec![], "Dockerfile", "FROM a\n");
        assert!(!failure.to_string().contains(">>>"));
        for bad in ["", "x", "0", "5-3"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(parse_range("7"), Some((7, 7)));
    }
}

//! A failed step as data: its name, its typed error, its last output lines and the Dockerfile
//! lines of its instruction. The CLI renders it (BuildKit's block with the lines marked `>>>`).

use crate::graph::Vertex;
use crate::scheduler::RunError;

/// Vertex annotation set by the frontend: the instruction's Dockerfile lines, 1-based
/// inclusive, `"START-END"` or `"LINE"`.
pub const ANNOTATION_LINES: &str = "dockerfile.lines";

/// A failed build step; its [`std::error::Error::source`] is the step's typed error
/// ([`RunError`], with its own source chain: a runner error, a process exit …).
#[derive(Debug, thiserror::Error)]
#[error("step {name} failed")]
pub struct StepFailure {
    /// The step's progress name (`[2/3] RUN make`).
    pub name: String,
    /// Why the step failed (`process "/bin/sh -c make" did not complete successfully: exit
    /// code: 2`, with its causes).
    #[source]
    pub error: RunError,
    /// The last output lines of the step.
    pub log_tail: Vec<String>,
    /// The Dockerfile's display name (`Dockerfile`, `build/app.Dockerfile`).
    pub dockerfile_name: String,
    /// The instruction's lines with [`CONTEXT_BEFORE`] lines before: (number, text, marked).
    pub snippet: Vec<(usize, String, bool)>,
}

/// Lines of context kept before the instruction.
pub const CONTEXT_BEFORE: usize = 2;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::graph::{Op, SourceOp, VertexMetadata};

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
        assert_eq!(failure.to_string(), "step [2/3] RUN false failed");
        // the typed cause is there for the caller to render
        let source = std::error::Error::source(&failure).unwrap();
        let RunError::Failed(inner) = source.downcast_ref::<RunError>().unwrap() else { panic!() };
        assert!(inner.downcast_ref::<Outer>().is_some());
    }

    #[test]
    fn the_snippet_holds_the_instruction_lines_and_context() {
        let text = "FROM busybox\nENV A=1\nRUN echo a \\\n  && false\nCMD x\n";
        let failure = StepFailure::new(
            &vertex(Some("3-4")),
            RunError::failed(std::io::Error::other("boom")),
            vec!["a".into()],
            "Dockerfile",
            text,
        );
        assert_eq!(
            failure.snippet,
            [
                (1, "FROM busybox".to_owned(), false),
                (2, "ENV A=1".to_owned(), false),
                (3, "RUN echo a \\".to_owned(), true),
                (4, "  && false".to_owned(), true),
            ]
        );
        let none = StepFailure::new(&vertex(None), RunError::Canceled, vec![], "Dockerfile", text);
        assert!(none.snippet.is_empty());
        for bad in ["", "x", "0", "5-3"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(parse_range("7"), Some((7, 7)));
        assert_eq!(parse_range("2-4"), Some((2, 4)));
    }
}

//! What a failed step shows (BuildKit's block): the step's last output lines, the Dockerfile
//! lines of its instruction marked `>>>`, and its error chain, each cause once
//! ([`chain_text`]).

use std::fmt::Write as _;

use solver::build::failure::StepFailure;

use crate::report::chain_text;

/// Lines of a long instruction shown before and after the ones left out.
const SNIPPET_HEAD: usize = 10;
const SNIPPET_TAIL: usize = 5;

/// BuildKit's layout (no newline at the end):
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
pub fn block(failure: &StepFailure) -> String {
    let mut out = String::new();
    // writing to a String cannot fail
    let _ = write_block(&mut out, failure);
    out
}

fn write_block(f: &mut String, failure: &StepFailure) -> std::fmt::Result {
    writeln!(f, "------")?;
    writeln!(f, " > {}:", failure.name)?;
    for line in &failure.log_tail {
        writeln!(f, "{line}")?;
    }
    writeln!(f, "------")?;
    if let Some((first_marked, ..)) = failure.snippet.iter().find(|(_, _, marked)| *marked) {
        writeln!(f, "{}:{first_marked}", failure.dockerfile_name)?;
        writeln!(f, "--------------------")?;
        // a huge instruction (thousands of continuation lines) shows its head and tail only
        let marked = failure.snippet.iter().filter(|(_, _, marked)| *marked).count();
        let hidden = marked.saturating_sub(SNIPPET_HEAD + SNIPPET_TAIL);
        let first_hidden = failure.snippet.len() - marked + SNIPPET_HEAD;
        for (index, (number, line, marked)) in failure.snippet.iter().enumerate() {
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
    write!(f, "{}", chain_text(&failure.error))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use solver::build::failure::ANNOTATION_LINES;
    use solver::graph::{Op, SourceOp, Vertex, VertexMetadata};
    use solver::scheduler::RunError;

    use super::*;

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
        assert_eq!(chain_text(&failure.error), "cannot copy /a: permission denied");
        assert!(block(&failure).ends_with("cannot copy /a: permission denied"));
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
        let shown = block(&failure);
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
        let shown = block(&failure);
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
        let shown = block(&failure);
        assert_eq!(shown, "------\n > [2/3] RUN false:\n------\nboom");
    }
}

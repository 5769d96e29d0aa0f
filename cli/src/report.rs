//! Rendering of errors for humans: one `error:` line with the cause chain, and for Dockerfile
//! errors the offending source line with a caret under the cause ([`SourceError`]) or the
//! instruction's lines marked `>>>` ([`frontend_error`]). A failed build step's block is
//! [`crate::progress::failure`]'s.

use std::fmt::Write as _;

/// A parse error together with the text it points into, so it can be shown in context.
#[derive(Debug)]
pub struct SourceError {
    pub error: parser::ParseError,
    pub text: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

impl SourceError {
    pub fn new(error: parser::ParseError, text: String) -> SourceError {
        SourceError { error, text }
    }

    /// The error line plus a snippet:
    ///
    /// ```text
    /// error: Dockerfile:3:6: unknown flag `--chmodd` for COPY
    ///   |
    /// 3 | COPY --chmodd=1 a b
    ///   |      ^^^^^^^^^^
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("error: {}", self.error);
        let location = self.error.location;
        let line_no = location.start_line.max(1);
        let Some(line) = self.text.split('\n').nth(line_no - 1) else { return out };
        let line = line.trim_end_matches('\r');
        let gutter = line_no.to_string().len();
        let column = location.column.max(1);
        let line_chars = line.chars().count();
        // Caret length: the span's characters on this line, at least one.
        let span_text = self.text.get(location.span.start..location.span.end).unwrap_or("");
        let first_line_of_span = span_text.split('\n').next().unwrap_or("").trim_end_matches('\r');
        let width = first_line_of_span.chars().count().clamp(1, line_chars.saturating_sub(column - 1).max(1));
        let shown: String = line.chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
        let _ = write!(
            out,
            "\n{pad} |\n{line_no:>gutter$} | {shown}\n{pad} | {space}{carets}",
            pad = " ".repeat(gutter),
            space = " ".repeat(column - 1),
            carets = "^".repeat(width),
        );
        out
    }
}

/// An error and its causes on one line, each cause once (a cause whose text its parent's
/// message already ends with is not repeated).
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
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

/// A lowering error with the Dockerfile lines it concerns marked, like BuildKit.
pub fn frontend_error(error: &solver::frontend::FrontendError, text: &str, name: &str) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    let Some(location) = error.location() else { return format!("ERROR: {message}") };
    let (start, end) = (location.line.max(1), location.end_line.max(location.line.max(1)));
    let mut out = format!("{name}:{start}\n--------------------\n");
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if number + 2 >= start && number <= end {
            let marker = if number >= start { ">>>" } else { "   " };
            out.push_str(&format!("{number:>4} | {marker} {line}\n"));
        }
    }
    out.push_str("--------------------\n");
    out.push_str(&format!("ERROR: {message}"));
    out
}

/// Prints `err` to stderr. With `verbose`, the whole `caused by` chain is listed one per line.
pub fn error(err: &anyhow::Error, verbose: bool) {
    if let Some(source_error) = err.downcast_ref::<SourceError>() {
        eprintln!("{}", source_error.render());
        return;
    }
    let mut text = format!("error: {err}");
    let mut causes = err.chain().skip(1).peekable();
    if verbose {
        for cause in causes {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    } else if causes.peek().is_some() {
        let tail: Vec<String> = causes.map(|c| c.to_string()).collect();
        text.push_str(&format!(": {}", tail.join(": ")));
    }
    eprintln!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_flag() {
        let text = "FROM a\nCOPY --chmodd=1 a b\n".to_string();
        let error = parser::parse(&text).expect_err("bad flag");
        let rendered = SourceError::new(error, text).render();
        assert!(rendered.contains("2 | COPY --chmodd=1 a b"), "{rendered}");
        assert!(rendered.ends_with("  |      ^^^^^^^^^^"), "{rendered}");
    }
}

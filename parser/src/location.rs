//! Source positions: byte spans, 1-based physical line ranges and columns.

use serde::Serialize;

/// A byte range `start..end` into the Dockerfile text (after nothing is stripped: offsets are
/// into the exact input, including a BOM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an instruction (or error) is: its byte span, the physical lines it covers (1-based,
/// inclusive; continuation, comment and heredoc lines it consumed count) and the 1-based
/// column (in characters) of its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Location {
    pub span: Span,
    pub start_line: usize,
    pub end_line: usize,
    pub column: usize,
}

/// Maps byte offsets to lines and columns.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    /// Byte offset where each physical line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        if starts.last() == Some(&text.len()) && starts.len() > 1 {
            starts.pop();
        }
        LineIndex { starts }
    }

    /// 1-based line of `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// Byte offset where 1-based `line` starts.
    pub(crate) fn line_start(&self, line: usize) -> usize {
        self.starts.get(line.saturating_sub(1)).copied().unwrap_or(0)
    }

    /// 1-based character column of `offset` in `text`.
    pub(crate) fn column_of(&self, text: &str, offset: usize) -> usize {
        let line_start = self.line_start(self.line_of(offset));
        text.get(line_start..offset).map_or(1, |s| s.chars().count() + 1)
    }

    /// A location covering `span`.
    pub(crate) fn location(&self, text: &str, span: Span) -> Location {
        let end_line =
            if span.end > span.start { self.line_of(span.end - 1) } else { self.line_of(span.start) };
        Location {
            span,
            start_line: self.line_of(span.start),
            end_line,
            column: self.column_of(text, span.start),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let text = "ab\ncdé\nf";
        let index = LineIndex::new(text);
        assert_eq!(index.line_of(0), 1);
        assert_eq!(index.line_of(2), 1);
        assert_eq!(index.line_of(3), 2);
        assert_eq!(index.line_of(text.len() - 1), 3);
        assert_eq!(index.column_of(text, 7), 4);
        let loc = index.location(text, Span::new(3, 8));
        assert_eq!((loc.start_line, loc.end_line, loc.column), (2, 2, 1));
    }
}

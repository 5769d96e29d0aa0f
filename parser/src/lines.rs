//! The line layer of a Dockerfile: physical lines classified as the `backslash_dockerfile` /
//! `backtick_dockerfile` rules of the grammar classify them (directive, comment, or a piece of
//! text and whether a continuation follows it).
//!
//! The grammar is the definition. [`Lines`] is the same classification compiled by hand, one
//! line at a time: walking pest's pairs for this layer made parsing 1.7–2.5 times slower
//! (pest 2.9 checks the native stack and snapshots its stack on every rule, sequence and
//! lookahead, and queues two tokens per pair). The `agrees_with_the_grammar_*` tests check
//! the copy against the rules on the conformance corpus, the golden cases, and every short
//! string over the characters that matter, with and without directives.

use crate::error::{ErrorKind, ParseError};
use crate::line_parsers::is_space;
use crate::location::{LineIndex, Span};

/// Longest physical line BuildKit's scanner accepts (bytes, including the line ending).
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// What the grammar makes of one physical line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind<'a> {
    /// A `directive_line`: name and raw value.
    Directive { name: &'a str, value: &'a str },
    /// A `comment` line (a directive after the directives is one too).
    Comment,
    /// A `*_text` piece from `start` to `end` (after the leading whitespace), and whether a
    /// `*_continuation` follows it. An empty piece without continuation is a blank line.
    Text { start: usize, end: usize, continued: bool },
}

/// One physical line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhysicalLine<'a> {
    /// Start offset; 0 for the first line, also when it starts with a BOM.
    pub start: usize,
    /// Where the line starts after a BOM.
    pub content_start: usize,
    /// End of the line before its `\r*\n` ending.
    pub content_end: usize,
    /// End of the line, line ending included.
    pub end: usize,
    pub kind: LineKind<'a>,
}

impl PhysicalLine<'_> {
    pub(crate) fn is_blank(&self) -> bool {
        matches!(self.kind, LineKind::Text { start, end, continued: false } if start == end)
    }
}

/// The physical lines of a Dockerfile, in order.
pub(crate) struct Lines<'a> {
    text: &'a str,
    /// Offset of the next line.
    next: usize,
    /// Physical lines consumed so far (maintained by the caller).
    pub count: usize,
    /// Whether every line so far was a directive (`directive_line*` of the grammar).
    in_directives: bool,
    /// Whether an `escape` directive was seen: the first one picks the rule set.
    escape_seen: bool,
    escape: char,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Lines<'a> {
        Lines { text, next: 0, count: 0, in_directives: true, escape_seen: false, escape: '\\' }
    }

    /// The next physical line; refuses lines longer than BuildKit's scanner accepts.
    pub(crate) fn next_line(&mut self) -> Result<Option<PhysicalLine<'a>>, ParseError> {
        let Some(line) = self.classify_next() else { return Ok(None) };
        let with_ending = self.text.as_bytes().get(line.end.wrapping_sub(1)) == Some(&b'\n');
        let limit = if with_ending { MAX_LINE } else { MAX_LINE - 1 };
        if line.end - line.start > limit {
            let index = LineIndex::new(self.text);
            let location = index.location(self.text, Span::new(line.start, line.end));
            return Err(ParseError::new(ErrorKind::LineTooLong { max: MAX_LINE - 1 }, location));
        }
        Ok(Some(line))
    }

    fn classify_next(&mut self) -> Option<PhysicalLine<'a>> {
        let text = self.text;
        let start = self.next;
        // `bom?` before the first line.
        let content_start =
            if start == 0 && text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { start };
        if content_start >= text.len() {
            return None;
        }
        let end = text[content_start..].find('\n').map_or(text.len(), |i| content_start + i + 1);
        self.next = end;
        // `line_end`: every `\r` before the `\n` (or the end of the file).
        let content_end = content_start + text[content_start..end].trim_end_matches(['\r', '\n']).len();
        // `indent`: Unicode White_Space (the `\r`s left are inside the line).
        let body = text[content_start..content_end].trim_start_matches(is_space);
        let text_start = content_end - body.len();
        let line = |kind| PhysicalLine { start, content_start, content_end, end, kind };
        if self.in_directives {
            if let Some((name, value)) = directive(body) {
                if !self.escape_seen && name.eq_ignore_ascii_case("escape") {
                    self.escape_seen = true;
                    if value.trim_matches(DIRECTIVE_SPACE) == "`" {
                        self.escape = '`';
                    }
                }
                return Some(line(LineKind::Directive { name, value }));
            }
            self.in_directives = false;
        }
        if body.starts_with('#') {
            return Some(line(LineKind::Comment));
        }
        // `*_continuation`: the escape, then spaces and tabs, unless an escape precedes it.
        let trimmed = body.trim_end_matches([' ', '\t']);
        let kind = match trimmed.strip_suffix(self.escape) {
            Some(before) if !before.ends_with(self.escape) => {
                LineKind::Text { start: text_start, end: text_start + before.len(), continued: true }
            }
            _ => LineKind::Text { start: text_start, end: content_end, continued: false },
        };
        Some(line(kind))
    }
}

/// `directive_space`: RE2's `\s` inside one line.
const DIRECTIVE_SPACE: [char; 4] = [' ', '\t', '\u{c}', '\r'];

/// The `directive_line` rule after the indent: `#`, whitespace, a known name (ASCII
/// case-insensitive), `directive_space*`, `=`, and a non-empty value.
fn directive(body: &str) -> Option<(&str, &str)> {
    let rest = body.strip_prefix('#')?.trim_start_matches(is_space);
    let known = ["syntax", "escape", "check"];
    let len =
        known.iter().find(|name| rest.get(..name.len()).is_some_and(|p| p.eq_ignore_ascii_case(name)))?.len();
    let (name, after) = rest.split_at(len);
    let value = after.trim_start_matches(DIRECTIVE_SPACE).strip_prefix('=')?;
    (!value.is_empty()).then_some((name, value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use pest::iterators::Pair;

    use super::*;
    use crate::grammar::Rule;

    fn is_line_rule(rule: Rule) -> bool {
        matches!(
            rule,
            Rule::directive_line
                | Rule::backslash_line
                | Rule::backslash_last_line
                | Rule::backtick_line
                | Rule::backtick_last_line
        )
    }

    /// A line pair of the grammar as a [`PhysicalLine`].
    fn from_pair<'a>(pair: Pair<'a, Rule>, first: bool) -> PhysicalLine<'a> {
        let span = pair.as_span();
        let start = if first { 0 } else { span.start() };
        let mut line = PhysicalLine {
            start,
            content_start: span.start(),
            content_end: span.start(),
            end: span.end(),
            kind: LineKind::Comment,
        };
        let mut name = "";
        // `EOI` ends the last line but is not part of its content.
        for part in pair.into_inner().filter(|part| part.as_rule() != Rule::EOI) {
            let part_span = part.as_span();
            line.content_end = part_span.end();
            match part.as_rule() {
                Rule::directive_name => name = part.as_str(),
                Rule::directive_value => line.kind = LineKind::Directive { name, value: part.as_str() },
                Rule::backslash_text | Rule::backtick_text => {
                    line.kind =
                        LineKind::Text { start: part_span.start(), end: part_span.end(), continued: false }
                }
                Rule::backslash_continuation | Rule::backtick_continuation => {
                    if let LineKind::Text { continued, .. } = &mut line.kind {
                        *continued = true;
                    }
                }
                _ => {}
            }
        }
        line
    }

    /// The physical lines as the grammar classifies them.
    fn grammar_lines(text: &str) -> Vec<PhysicalLine<'_>> {
        let pairs = crate::grammar::parse_dockerfile(text).unwrap();
        let mut first = true;
        pairs
            .filter(|pair| is_line_rule(pair.as_rule()))
            .map(|pair| from_pair(pair, std::mem::take(&mut first)))
            .collect()
    }

    fn fast_lines(text: &str) -> Vec<PhysicalLine<'_>> {
        let mut lines = Lines::new(text);
        std::iter::from_fn(|| lines.next_line().unwrap()).collect()
    }

    fn check(text: &str) {
        assert_eq!(fast_lines(text), grammar_lines(text), "{text:?}");
    }

    #[test]
    fn agrees_with_the_grammar_on_every_short_string() {
        let alphabet = ['a', '\\', '`', ' ', '\t', '\r', '\n', '#', '\u{a0}'];
        let prefixes = ["", "\u{feff}", "# escape=`\n", "#escape = \\\r\n", "# syntax=x\n# escape=`\n"];
        for (index, prefix) in prefixes.iter().enumerate() {
            // Every string of up to 5 characters alone, of up to 4 after each prefix.
            for tail in crate::raw::tests::all_strings(&alphabet, if index == 0 { 5 } else { 4 }) {
                check(&format!("{prefix}{tail}"));
            }
        }
    }

    #[test]
    fn agrees_with_the_grammar_on_directives() {
        for text in [
            "# escape=`\nRUN a `\n b",
            "#ESCAPE= ` \r\nRUN a `\n",
            "# escape=x\n",
            "# escape=\n",
            "# escape\t=\t\\\n# escape=`\nRUN a\\\n",
            "# syntaxx=1\n# escape=`\nRUN a `\n",
            "\u{feff}# check=skip=all\n \u{3000}# escape=`\nRUN `\n",
            "# foo=bar\n# escape=`\nRUN a `\n",
            "\u{feff}",
            "\u{feff}\n",
            "# escape=`",
            "#\tsyntax\r=\rdocker/dockerfile:1\r\r\nFROM a\r\n",
        ] {
            check(text);
        }
    }

    #[test]
    fn agrees_with_the_grammar_on_the_corpus() {
        let roots = [
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/parser"),
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance"),
        ];
        let mut files = 0;
        let mut stack: Vec<std::path::PathBuf> = roots.into_iter().filter(|r| r.is_dir()).collect();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(text) = std::fs::read_to_string(&path) {
                    check(&text);
                    files += 1;
                }
            }
        }
        assert!(files > 0, "no corpus files found");
    }
}

//! The line assembler: BuildKit's `parser.Parse`. Reads physical lines, handles parser
//! directives, the escape character, continuations (with comment and empty lines inside),
//! CRLF, a UTF-8 BOM and heredoc bodies, and produces one [`Node`] per instruction.

use serde::Serialize;

use crate::error::{ErrorKind, ParseError};
use crate::grammar::{Rule, inner, parse_rule};
use crate::line_parsers::{is_space, node_from_line};
use crate::location::{LineIndex, Location, Span};
use crate::node::{Heredoc, Node, keyword_is};
use crate::shell::Lexer;

/// Longest physical line BuildKit's scanner accepts (bytes, including the line ending).
const MAX_LINE: usize = 64 * 1024;

/// A parser directive from the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lower-cased name.
    pub name: String,
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// A non-fatal finding of the line assembler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
    pub line: usize,
}

/// The untyped parse result, as BuildKit's `parser.Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDockerfile {
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    pub nodes: Vec<Node>,
    pub warnings: Vec<Warning>,
}

impl RawDockerfile {
    /// BuildKit's AST dump: one `(instruction …)` line per instruction, each ending in `\n`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }
}

struct DirectiveParser {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// `DirectiveParser.ParseLine` on a line that has been stripped of its line ending (and of
    /// leading whitespace for the first line of an instruction).
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, ErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let body = body.trim_start_matches(is_space);
        let Some(pair) = parse_rule(Rule::directive, body) else {
            self.done = true;
            return Ok(None);
        };
        let name = inner(&pair, Rule::directive_name).map_or("", |p| p.as_str());
        let raw_value = inner(&pair, Rule::directive_value).map_or("", |p| p.as_str());
        let value = directive_value(raw_value);
        let Some(value) = value else {
            self.done = true;
            return Ok(None);
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&key) {
            return Err(ErrorKind::DuplicateDirective(key));
        }
        self.seen.push(key.clone());
        Ok(Some((key, value)))
    }
}

/// The `\s*(.+?)\s*$` tail of BuildKit's directive regex (`\s` = `[\t\n\f\r ]`).
fn directive_value(raw: &str) -> Option<String> {
    let is_re_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    if raw.is_empty() {
        return None;
    }
    let trimmed = raw.trim_matches(is_re_space);
    if trimmed.is_empty() {
        // Backtracking leaves exactly one whitespace character for `.+?`.
        return raw.chars().last().map(String::from);
    }
    Some(trimmed.to_string())
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// BuildKit's continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: returns the line without the
/// continuation and `false`, or the line unchanged and `true` (end of the logical line).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().last() {
        None => ("", false),
        Some(c) if c == escape => (line, true),
        Some(_) => (before, false),
    }
}

struct Lines<'a> {
    text: &'a str,
    /// Byte ranges of the physical lines (from the pest grammar).
    ranges: Vec<(usize, usize)>,
    /// Index of the next physical line.
    next: usize,
    /// Physical lines consumed so far.
    count: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines { text, ranges: crate::grammar::physical_lines(text), next: 0, count: 0 }
    }

    /// The next physical line with its ending, and its start offset.
    fn next_line(&mut self) -> Result<Option<(&'a str, usize)>, ParseError> {
        let Some(&(start, end)) = self.ranges.get(self.next) else {
            return Ok(None);
        };
        let line = &self.text[start..end];
        let limit = if line.ends_with('\n') { MAX_LINE } else { MAX_LINE - 1 };
        if line.len() > limit {
            let index = LineIndex::new(self.text);
            let location = index.location(self.text, Span::new(start, end));
            return Err(ParseError::new(ErrorKind::LineTooLong { max: MAX_LINE - 1 }, location));
        }
        self.next += 1;
        Ok(Some((line, start)))
    }
}

/// Parses a whole Dockerfile into BuildKit's untyped node list.
pub fn parse_raw<'a>(text: &'a str) -> Result<RawDockerfile, ParseError> {
    // Only error paths need arbitrary offsets mapped to lines; the happy path counts lines.
    let locate = |start: usize, end: usize| LineIndex::new(text).location(text, Span::new(start, end));
    let mut lines = Lines::new(text);
    let mut escape = '\\';
    let mut directive_parser = DirectiveParser { done: false, seen: Vec::new() };
    let mut directives = Vec::new();
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    // `processLine`: strips the line ending (and leading whitespace), feeds the directive
    // parser, and blanks comment lines.
    let mut process_line = |line: &'a str,
                            strip_left: bool,
                            line_no: usize,
                            escape: &mut char,
                            directives: &mut Vec<Directive>|
     -> Result<(&'a str, bool), ErrorKind> {
        let mut token = trim_newline(line);
        if strip_left {
            token = token.trim_start_matches(is_space);
        }
        let mut directive_ok = false;
        if let Some((name, value)) = directive_parser.parse_line(token)? {
            if name == "escape" {
                *escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(ErrorKind::InvalidEscapeToken(value)),
                };
            }
            directives.push(Directive { name, value, line: line_no });
            directive_ok = true;
        }
        let kept = if is_comment(token) { "" } else { token };
        Ok((kept, directive_ok))
    };

    while let Some((first_raw, first_start)) = lines.next_line()? {
        let mut raw = first_raw;
        let mut content_start = first_start;
        if lines.count == 0
            && let Some(stripped) = raw.strip_prefix('\u{feff}')
        {
            raw = stripped;
            content_start += 3;
        }
        if is_comment(raw) {
            let comment = raw.chars().skip(1).collect::<String>();
            let comment = comment.trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let line_no = lines.count + 1;
        let (processed, directive_ok) = process_line(raw, true, line_no, &mut escape, &mut directives)
            .map_err(|kind| ParseError::new(kind, locate(first_start, first_start + first_raw.len())))?;
        if directive_ok {
            comments.pop();
        }
        lines.count += 1;
        let start_line = lines.count;
        let (first, mut end_of_line) = trim_continuation(processed, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let leading = raw.len() - raw.trim_start_matches(is_space).len();
        let span_start = content_start + leading;
        let mut span_end = first_start + trim_newline(first_raw).len();
        let mut logical = first.to_string();
        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some((next_raw, next_start)) = lines.next_line()? else { break };
            let line_no = lines.count + 1;
            let (processed, _) = process_line(next_raw, false, line_no, &mut escape, &mut directives)
                .map_err(|kind| ParseError::new(kind, locate(next_start, next_start + next_raw.len())))?;
            lines.count += 1;
            span_end = next_start + trim_newline(next_raw).len();
            if is_comment(next_raw) {
                continue;
            }
            if processed.trim_start_matches(is_space).is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(processed, escape);
            logical.push_str(piece);
            end_of_line = eol;
        }
        if has_empty_continuation {
            warnings.push(Warning {
                message: format!("empty continuation line found in: {logical}"),
                line: lines.count,
            });
        }
        let has_heredoc_marker = logical.contains("<<");
        let mut node = node_from_line(logical, escape)
            .map_err(|kind| ParseError::new(kind, locate(span_start, span_end.max(span_start))))?;
        node.comments = std::mem::take(&mut comments);

        if has_heredoc_marker && can_contain_heredoc(&node) {
            let heredocs = heredocs_from_line(&node.original)
                .map_err(|kind| ParseError::new(kind, locate(span_start, span_end.max(span_start))))?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                let mut content = String::new();
                while let Some((body_line, body_start)) = lines.next_line()? {
                    lines.count += 1;
                    span_end = body_start + trim_newline(body_line).len();
                    let mut candidate = trim_newline(body_line);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body_line);
                }
                if !terminated {
                    let location = locate(span_start, span_end.max(span_start));
                    return Err(ParseError::new(
                        ErrorKind::UnterminatedHeredoc { name: heredoc.name },
                        location,
                    ));
                }
                heredoc.content = content;
                node.heredocs.push(heredoc);
            }
        }
        let column = text.get(first_start..span_start).map_or(1, |s| s.chars().count() + 1);
        let span = Span::new(span_start, span_end.max(span_start));
        let location = Location { span, start_line, end_line: lines.count, column };
        set_location(&mut node, location);
        nodes.push(node);
    }

    if nodes.is_empty() {
        let end = text.len();
        let last_line_start = text[..end].trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let mut location = locate(last_line_start, end);
        location.start_line = lines.count.max(1);
        location.end_line = location.start_line;
        location.column = 1;
        return Err(ParseError::new(ErrorKind::NoInstructions, location));
    }
    Ok(RawDockerfile { directives, escape, nodes, warnings })
}

fn set_location(node: &mut Node, location: Location) {
    node.location = location;
    for arg in &mut node.args {
        if let crate::node::Arg::Node(nested) = arg {
            set_location(nested, location);
        }
    }
}

/// Only RUN, COPY and ADD in shell form (also as an ONBUILD trigger) take heredocs.
fn can_contain_heredoc(node: &Node) -> bool {
    let mut node = node;
    if keyword_is(&node.keyword, "onbuild")
        && let Some(nested) = node.nested()
    {
        node = nested;
    }
    ["add", "copy", "run"].iter().any(|k| keyword_is(&node.keyword, k)) && !node.json
}

/// `heredocsFromLine`: the heredoc markers among the shell words of a logical line.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ErrorKind> {
    if !line.contains('<') {
        // Fast path: no word of a line without `<` can be a heredoc marker.
        return Ok(Vec::new());
    }
    let lexer = Lexer { raw_quotes: true, raw_escapes: true, skip_unset_env: true, ..Lexer::new('\\') };
    // BuildKit ignores lexing errors here (the line then has no heredoc); a nesting past
    // kiln's bound is reported instead, or the body lines would be read as instructions
    let words = match lexer.process(line, &crate::shell::EmptyEnv) {
        Ok(expansion) => expansion.words,
        Err(err) if matches!(err.kind, crate::shell::ShellErrorKind::TooDeep { .. }) => {
            return Err(ErrorKind::Heredoc(err));
        }
        Err(_) => Vec::new(),
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(heredoc) = parse_heredoc(&word)? {
            docs.push(heredoc);
        }
    }
    Ok(docs)
}

/// `ParseHeredoc`: whether one word (`[fd]<<[-]NAME`) starts a heredoc.
pub fn parse_heredoc_marker(word: &str) -> Result<Option<Heredoc>, ErrorKind> {
    parse_heredoc(word)
}

fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ErrorKind> {
    if !word.contains("<<") {
        return Ok(None);
    }
    let Some((fd, chomp, rest)) = split_heredoc_marker(word) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let cooked = Lexer { skip_unset_env: true, ..Lexer::new('\\') };
    let words = cooked.process(rest, &crate::shell::EmptyEnv).map_err(ErrorKind::Heredoc)?.words;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Lexer { raw_quotes: true, ..cooked };
    let raw_words = raw.process(rest, &crate::shell::EmptyEnv).map_err(ErrorKind::Heredoc)?.words;
    if raw_words.len() != words.len() {
        return Err(ErrorKind::InconsistentHeredoc(rest.to_string()));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    // Go's ParseUint ignores overflow here (the error is discarded): 0 on failure.
    let file_descriptor = fd.parse::<u32>().unwrap_or(0);
    Ok(Some(Heredoc { name: words[0].clone(), file_descriptor, expand, chomp, content: String::new() }))
}

/// Splits a word matching the grammar's `heredoc_marker` into (fd, chomp, word), or `None`.
/// Hand-written because it runs for every `<<` word; `marker_split_agrees_with_the_grammar`
/// checks it against the pest rule.
fn split_heredoc_marker(word: &str) -> Option<(&str, bool, &str)> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\x0C', '\r']);
    if rest.contains('<') {
        return None;
    }
    Some((&word[..digits], chomp, rest))
}

/// [`split_heredoc_marker`] with the pest grammar (the reference).
#[cfg(test)]
fn split_heredoc_marker_pest(word: &str) -> Option<(&str, bool, &str)> {
    let pair = parse_rule(Rule::heredoc_marker, word)?;
    let fd = inner(&pair, Rule::heredoc_fd).map_or("", |p| p.as_str());
    let chomp = inner(&pair, Rule::heredoc_chomp).is_some();
    let rest = inner(&pair, Rule::heredoc_word).map_or("", |p| p.as_str());
    Some((fd, chomp, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    /// All strings of length 0..=`max` over `alphabet`.
    pub(crate) fn all_strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn marker_split_agrees_with_the_grammar() {
        let words = [
            "<<EOF",
            "<<-EOF",
            "3<<EOF",
            "12<<-'EOF'",
            "<<\"EOF\"",
            "<< EOF",
            "<<-\t\nE",
            "<<",
            "<<-",
            "a<<EOF",
            "<<EOF<",
            "<<<EOF",
            "<<E<F",
            "<<--EOF",
            "-<<EOF",
            "<<é",
            "٣<<EOF",
            "<<  ",
        ];
        for word in words {
            assert_eq!(split_heredoc_marker(word), split_heredoc_marker_pest(word), "{word:?}");
        }
        // Every string of up to 5 characters over the interesting alphabet.
        for word in all_strings(&['<', '-', '1', ' ', 'E', '"', '\t'], 5) {
            assert_eq!(split_heredoc_marker(&word), split_heredoc_marker_pest(&word), "{word:?}");
        }
    }

    use super::*;

    #[test]
    fn continuation_regex() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\  \t", '\\'), ("a", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }

    #[test]
    fn directive_values() {
        assert_eq!(directive_value(" x "), Some("x".into()));
        assert_eq!(directive_value("  "), Some(" ".into()));
        assert_eq!(directive_value(""), None);
    }

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc("<<-'EOF'").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.chomp, h.expand), ("EOF", true, false));
        let h = parse_heredoc("3<<EOF").unwrap().unwrap();
        assert_eq!((h.file_descriptor, h.expand), (3, true));
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("x<<EOF").unwrap().is_none());
    }

    #[test]
    fn heredoc_bodies() {
        let raw = parse_raw("FROM a\nRUN <<A cat - <<-\"B\"\nx $y\nA\n\tz\n\tB\nRUN b\n").unwrap();
        assert_eq!(raw.nodes.len(), 3);
        let docs = &raw.nodes[1].heredocs;
        assert_eq!(docs[0].content, "x $y\n");
        assert_eq!(docs[1].content, "\tz\n");
        assert_eq!(docs[1].effective_content(), "z\n");
        assert!(!docs[1].expand);
        assert_eq!((raw.nodes[1].location.start_line, raw.nodes[1].location.end_line), (2, 6));
    }
}

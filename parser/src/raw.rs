//! The line assembler: BuildKit's `parser.Parse`. Takes the physical lines as the grammar
//! classifies them ([`crate::lines`]), reads parser directives, joins continuations (skipping
//! comment and blank lines inside them), takes heredoc bodies, and produces one [`Node`] per
//! instruction.

use serde::Serialize;

use crate::error::{ErrorKind, ParseError};
use crate::line_parsers::node_from_line;
use crate::lines::{LineKind, Lines};
use crate::location::{LineIndex, Location, Span};
use crate::node::{Heredoc, Node, keyword_is};
use crate::shell::Lexer;

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

/// The `\s*(.+?)\s*$` tail of BuildKit's directive regex (`\s` = `[\t\n\f\r ]`) on the
/// value the grammar matched (never empty).
fn directive_value(raw: &str) -> String {
    let is_re_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let trimmed = raw.trim_matches(is_re_space);
    if trimmed.is_empty() {
        // Backtracking leaves exactly one whitespace character for `.+?`.
        return raw.chars().last().map(String::from).unwrap_or_default();
    }
    trimmed.to_string()
}

/// Parses a whole Dockerfile into BuildKit's untyped node list.
pub fn parse_raw(text: &str) -> Result<RawDockerfile, ParseError> {
    // Only error paths need arbitrary offsets mapped to lines; the happy path counts lines.
    let locate = |start: usize, end: usize| LineIndex::new(text).location(text, Span::new(start, end));
    let mut lines = Lines::new(text);
    let mut escape = '\\';
    let mut seen_directives: Vec<String> = Vec::new();
    let mut directives = Vec::new();
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(first) = lines.next_line()? {
        let line_no = lines.count + 1;
        lines.count += 1;
        let (start, end, continued) = match first.kind {
            LineKind::Directive { name, value } => {
                // The directive line is also a comment, but is not kept as one.
                let key = name.to_ascii_lowercase();
                let value = directive_value(value);
                let error = |kind| ParseError::new(kind, locate(first.start, first.end));
                if seen_directives.contains(&key) {
                    return Err(error(ErrorKind::DuplicateDirective(key)));
                }
                if key == "escape" {
                    escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        _ => return Err(error(ErrorKind::InvalidEscapeToken(value))),
                    };
                }
                seen_directives.push(key.clone());
                directives.push(Directive { name: key, value, line: line_no });
                continue;
            }
            LineKind::Comment => {
                // BuildKit drops the first character of the line (the `#` unless indented).
                let raw = &text[first.content_start..first.end];
                let comment = raw.chars().skip(1).collect::<String>();
                let comment = comment.trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_string());
                }
                continue;
            }
            LineKind::Text { start, end, continued } => (start, end, continued),
        };
        if start == end && !continued {
            continue;
        }
        let start_line = lines.count;
        let span_start = start;
        let mut span_end = first.content_end;
        let mut logical = text[start..end].to_string();
        let mut end_of_line = !continued;
        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some(next) = lines.next_line()? else { break };
            lines.count += 1;
            span_end = next.content_end;
            if next.is_blank() {
                has_empty_continuation = true;
                continue;
            }
            // Comment lines inside a continuation are skipped; a continuation line keeps its
            // leading whitespace.
            if let LineKind::Text { end, continued, .. } = next.kind {
                logical.push_str(&text[next.start..end]);
                end_of_line = !continued;
            }
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
                while let Some(body) = lines.next_line()? {
                    lines.count += 1;
                    span_end = body.content_end;
                    let mut candidate = &text[body.start..body.content_end];
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(&text[body.start..body.end]);
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
        let column = text.get(first.start..span_start).map_or(1, |s| s.chars().count() + 1);
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
/// A hand-compiled copy of the rule, because it runs for every `<<` word and a pest parse
/// costs more than the rest of the marker's handling; `marker_split_agrees_with_the_grammar`
/// checks it against the rule.
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

    /// The grammar's `heredoc_marker` rule (the reference for [`split_heredoc_marker`]).
    fn split_heredoc_marker_pest(word: &str) -> Option<(&str, bool, &str)> {
        let pair = parse_rule(Rule::heredoc_marker, word)?;
        let fd = inner(&pair, Rule::heredoc_fd).map_or("", |p| p.as_str());
        let chomp = inner(&pair, Rule::heredoc_chomp).is_some();
        let rest = inner(&pair, Rule::heredoc_word).map_or("", |p| p.as_str());
        Some((fd, chomp, rest))
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
    use crate::grammar::{Rule, inner, parse_rule};

    /// The logical lines as the grammar's `*_logical_lines` rules join them.
    fn grammar_logical_lines(text: &str) -> Vec<String> {
        let pairs = crate::grammar::parse_logical_lines(text).unwrap();
        let is_text = |rule| matches!(rule, Rule::backslash_text | Rule::backtick_text);
        let mut logical = Vec::new();
        let logical_rules = [
            Rule::backslash_logical_line,
            Rule::backslash_last_logical_line,
            Rule::backtick_logical_line,
            Rule::backtick_last_logical_line,
        ];
        let text_rules = [
            Rule::backslash_continued_line,
            Rule::backslash_final_line,
            Rule::backslash_last_final_line,
            Rule::backtick_continued_line,
            Rule::backtick_final_line,
            Rule::backtick_last_final_line,
        ];
        for line in pairs.filter(|p| logical_rules.contains(&p.as_rule())) {
            let mut joined = String::new();
            let physical = line.into_inner().filter(|p| text_rules.contains(&p.as_rule()));
            for (index, physical) in physical.enumerate() {
                let line_start = physical.as_span().start();
                let piece = physical.into_inner().find(|p| is_text(p.as_rule())).unwrap();
                // The first line starts at its text, the others keep their leading whitespace.
                let start = if index == 0 { piece.as_span().start() } else { line_start };
                joined.push_str(&text[start..piece.as_span().end()]);
            }
            logical.push(joined);
        }
        logical
    }

    /// The logical lines as [`parse_raw`] joins them, or `None` when it refuses the text for
    /// another reason than having no instruction.
    fn raw_logical_lines(text: &str) -> Option<Vec<String>> {
        match parse_raw(text) {
            Ok(raw) => Some(raw.nodes.into_iter().map(|node| node.original).collect()),
            Err(err) if matches!(*err.kind, ErrorKind::NoInstructions) => Some(Vec::new()),
            Err(_) => None,
        }
    }

    fn check_logical_lines(text: &str) {
        if let Some(raw) = raw_logical_lines(text) {
            assert_eq!(raw, grammar_logical_lines(text), "{text:?}");
        }
    }

    #[test]
    fn joins_lines_as_the_grammar_does() {
        let alphabet = ['a', '\\', '`', ' ', '\t', '\r', '\n', '#'];
        for prefix in ["", "# escape=`\n", "\u{feff}"] {
            for tail in all_strings(&alphabet, if prefix.is_empty() { 5 } else { 4 }) {
                check_logical_lines(&format!("{prefix}{tail}"));
            }
        }
        for text in [
            "FROM a\nRUN a \\\n  # c\n\n   b \\\n\tc\nRUN d\\",
            "# escape=`\nFROM a\nRUN a `\n\n#x\n  b`\\\n",
            "FROM a\r\nRUN \\ \t\r\n\\\r\nx\r\n",
        ] {
            check_logical_lines(text);
        }
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
                    // Heredoc bodies are cut out by `parse_raw` alone (see the grammar).
                    if !text.contains("<<") {
                        check_logical_lines(&text);
                        files += 1;
                    }
                }
            }
        }
        assert!(files > 50, "only {files} corpus files without heredocs");
    }

    #[test]
    fn directive_values() {
        assert_eq!(directive_value(" x "), "x");
        assert_eq!(directive_value("  "), " ");
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

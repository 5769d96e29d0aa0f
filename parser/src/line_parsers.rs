//! BuildKit's per-instruction argument splitting (`line_parsers.go` and `split_command.go`):
//! keyword and builder flags, then arguments by the rule of each instruction.
//!
//! The grammar's `instruction` rules are the definition; this is the same layer compiled by
//! hand (walking pest's pairs per logical line costs more than the whole parse does today,
//! see `split_timing`). `line_parsers_grammar_tests.rs` checks it against the rules: the
//! corpus lines and every short line over the characters that matter, both escapes.

use crate::error::ErrorKind;
use crate::json::{JsonArgs, parse_json_args};
use crate::node::{Arg, Node, from_go_bytes, go_lower};

/// Arguments of one instruction, before being placed in a [`Node`].
#[derive(Debug, Default)]
pub(crate) struct ParsedArgs {
    pub args: Vec<Arg>,
    pub json: bool,
}

impl ParsedArgs {
    fn text(args: Vec<String>) -> ParsedArgs {
        ParsedArgs { args: args.into_iter().map(Arg::Text).collect(), json: false }
    }
}

/// Go's `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `[\t\v\f\r ]`.
fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// Splits a logical line into keyword, flags and the remaining argument text, then splits the
/// arguments for that keyword. `comments` and the location are filled in by the caller.
pub(crate) fn node_from_line(line: String, escape: char) -> Result<Node, ErrorKind> {
    node_at_depth(line, escape, 0)
}

/// How many `ONBUILD` keywords may prefix one instruction in the raw parse. BuildKit's raw
/// parser nests them without a limit (the typed parse then refuses `ONBUILD ONBUILD`); a
/// bound keeps a line of 8 000 `ONBUILD`s from exhausting the stack.
pub(crate) const MAX_ONBUILD_NESTING: usize = 16;

fn node_at_depth(line: String, escape: char, depth: usize) -> Result<Node, ErrorKind> {
    let trimmed = line.trim();
    // Go's `reWhitespace.Split(trimmed, 2)`: the keyword, then the rest after one run of
    // `[\t\v\f\r ]`.
    let (keyword, rest) = match trimmed.find(is_ascii_space) {
        Some(i) => (&trimmed[..i], Some(trimmed[i..].trim_start_matches(is_ascii_space))),
        None => (trimmed, None),
    };
    let (flags, args_text) = match rest {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest, escape);
            (flags, args)
        }
        None => (Vec::new(), String::new()),
    };
    let args_text = args_text.trim();
    let parsed = dispatch(keyword, args_text, escape, depth)?;
    let keyword = keyword.to_string();
    Ok(Node {
        keyword,
        flags,
        args: parsed.args,
        json: parsed.json,
        heredocs: Vec::new(),
        original: line,
        comments: Vec::new(),
        location: Default::default(),
    })
}

fn dispatch(keyword: &str, rest: &str, escape: char, depth: usize) -> Result<ParsedArgs, ErrorKind> {
    const KEYWORDS: [&str; 18] = [
        "add",
        "arg",
        "cmd",
        "copy",
        "entrypoint",
        "env",
        "expose",
        "from",
        "healthcheck",
        "label",
        "maintainer",
        "onbuild",
        "run",
        "shell",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    ];
    let key = if keyword.is_ascii() {
        KEYWORDS.iter().find(|k| keyword.eq_ignore_ascii_case(k)).copied().unwrap_or("")
    } else {
        let lower = go_lower(keyword);
        KEYWORDS.iter().find(|k| **k == lower).copied().unwrap_or("")
    };
    match key {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(rest),
        "arg" => Ok(ParsedArgs::text(parse_words(rest, escape))),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(rest),
        "env" => parse_name_val(rest, "ENV", escape),
        "label" => parse_name_val(rest, "LABEL", escape),
        "expose" | "from" => Ok(ParsedArgs::text(split_whitespace_delimited(rest))),
        "healthcheck" => parse_health_config(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            Ok(ParsedArgs::text(if rest.is_empty() { vec![] } else { vec![rest.to_string()] }))
        }
        "onbuild" => {
            if rest.is_empty() {
                return Ok(ParsedArgs::default());
            }
            if depth >= MAX_ONBUILD_NESTING {
                return Err(ErrorKind::NestingTooDeep { what: "ONBUILD", limit: MAX_ONBUILD_NESTING });
            }
            let child = node_at_depth(rest.to_string(), escape, depth + 1)?;
            Ok(ParsedArgs { args: vec![Arg::Node(Box::new(child))], json: false })
        }
        // BuildKit keeps unknown instructions with one empty argument.
        _ => Ok(ParsedArgs::text(vec![String::new()])),
    }
}

/// `extractBuilderFlags`: leading `--` words. BuildKit scans this byte by byte, treating each
/// byte as a Latin-1 rune, so non-ASCII text inside a flag is re-encoded the same way here.
pub(crate) fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let rest_from = |pos: usize| from_go_bytes(&bytes[pos..]);
    let is_byte_space = |b: u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0);
    let escape_byte = escape as u32 as u8;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= bytes.len() {
        let at_end = pos == bytes.len();
        let mut ch = if at_end { 0 } else { bytes[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_byte_space(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == bytes.len() || bytes[pos + 1] != b'-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_byte_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == escape_byte {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes[pos];
            }
            word.push(ch as char);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape_byte {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        word.push(ch as char);
        pos += 1;
    }
    (String::new(), words)
}

/// `parseWords`: quote-aware words; quotes and escapes stay in the text.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// Go's `regexp.MustCompile("[\t\v\f\r ]+").Split(s, n)` with `n < 0` (all) or `n == 2`.
pub(crate) fn split_ascii_whitespace_go(s: &str, limit: Option<usize>) -> Vec<String> {
    if s.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    let mut beg = 0;
    let mut end = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_ascii_space(c) {
            continue;
        }
        let mut match_end = i + c.len_utf8();
        while let Some(&(j, d)) = iter.peek() {
            if !is_ascii_space(d) {
                break;
            }
            match_end = j + d.len_utf8();
            iter.next();
        }
        if limit.is_some_and(|n| out.len() == n - 1) {
            break;
        }
        end = i;
        out.push(s[beg..end].to_string());
        beg = match_end;
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

fn split_whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ascii_whitespace_go(rest, None)
}

fn parse_name_val(rest: &str, instruction: &str, escape: char) -> Result<ParsedArgs, ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(ParsedArgs::default());
    };
    if !first.contains('=') {
        let parts = split_ascii_whitespace_go(rest, Some(2));
        let [key, value] = parts.as_slice() else {
            return Err(ErrorKind::MissingValue { instruction: instruction.to_string() });
        };
        return Ok(ParsedArgs::text(vec![key.clone(), value.clone(), String::new()]));
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals { word });
        };
        args.push(key.to_string());
        args.push(value.to_string());
        args.push("=".to_string());
    }
    Ok(ParsedArgs::text(args))
}

fn parse_maybe_json(rest: &str) -> Result<ParsedArgs, ErrorKind> {
    if rest.is_empty() {
        return Ok(ParsedArgs::default());
    }
    match parse_json_args(rest) {
        JsonArgs::Strings(strings) => Ok(ParsedArgs { json: true, ..ParsedArgs::text(strings) }),
        JsonArgs::NotStrings => Err(ErrorKind::NotStringArray),
        JsonArgs::NotJson => Ok(ParsedArgs::text(vec![rest.to_string()])),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Result<ParsedArgs, ErrorKind> {
    match parse_json_args(rest) {
        JsonArgs::Strings(strings) => Ok(ParsedArgs { json: true, ..ParsedArgs::text(strings) }),
        JsonArgs::NotStrings => Err(ErrorKind::NotStringArray),
        JsonArgs::NotJson => Ok(ParsedArgs::text(split_whitespace_delimited(rest))),
    }
}

/// `HEALTHCHECK TYPE rest`: the type word (split byte-wise, as BuildKit does), then `rest`
/// like CMD.
fn parse_health_config(rest: &str) -> Result<ParsedArgs, ErrorKind> {
    let bytes = rest.as_bytes();
    let is_byte_space = |b: u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0);
    let sep = bytes.iter().position(|b| is_byte_space(*b)).unwrap_or(bytes.len());
    if sep == 0 {
        return Ok(ParsedArgs::default());
    }
    let next = bytes[sep..].iter().position(|b| !is_byte_space(*b)).map_or(bytes.len(), |i| sep + i);
    let typ = from_go_bytes(&bytes[..sep]);
    let cmd_text = from_go_bytes(&bytes[next..]);
    let cmd = parse_maybe_json(&cmd_text)?;
    let mut args = vec![Arg::Text(typ)];
    args.extend(cmd.args);
    Ok(ParsedArgs { args, json: cmd.json })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builder_flags() {
        let (rest, flags) = extract_builder_flags("--from=a --chown='x y' -- --not src dst", '\\');
        assert_eq!(flags, ["--from=a", "--chown=x y"]);
        assert_eq!(rest, " --not src dst");
        let (rest, flags) = extract_builder_flags("apt-get --x", '\\');
        assert!(flags.is_empty());
        assert_eq!(rest, "apt-get --x");
        let (_, flags) = extract_builder_flags("--a=é x", '\\');
        assert_eq!(flags, ["--a=\u{c3}\u{a9}"]);
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(parse_words(r#"a="b c" d\ e 'f\'"#, '\\'), [r#"a="b c""#, r"d\ e", r"'f\'"]);
    }

    #[test]
    fn go_split() {
        assert_eq!(split_ascii_whitespace_go("a  b\tc", None), ["a", "b", "c"]);
        assert_eq!(split_ascii_whitespace_go(" a ", None), ["", "a", ""]);
        assert_eq!(split_ascii_whitespace_go("a b c", Some(2)), ["a", "b c"]);
        assert_eq!(split_ascii_whitespace_go("a", Some(2)), ["a"]);
    }
}

#[cfg(test)]
#[path = "line_parsers_grammar_tests.rs"]
mod grammar_tests;

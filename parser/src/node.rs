//! The untyped syntax tree, node for node the one BuildKit's `parser.Parse` builds, and its
//! dump format (the `result` files of BuildKit's parser tests).

use serde::Serialize;

use crate::location::Location;

/// One instruction as the line parser sees it: keyword, builder flags and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The keyword exactly as written (`FROM`, `run`, or an unknown word).
    pub keyword: String,
    /// Leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// Arguments after the flags, split per instruction (see BuildKit's line parsers).
    pub args: Vec<Arg>,
    /// Whether the arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies attached to this instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined, comments removed).
    pub original: String,
    /// Comment lines directly before the instruction (`#` and one char removed, trimmed).
    pub comments: Vec<String>,
    pub location: Location,
}

/// An argument: a string, or a nested instruction (the trigger of `ONBUILD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Arg {
    Text(String),
    Node(Box<Node>),
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// False when the delimiter was (partly) quoted: the body is not expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines.
    pub chomp: bool,
    /// The body lines as written, each with its line ending, tabs not yet stripped.
    pub content: String,
}

impl Heredoc {
    /// The body as the instruction uses it: with `<<-`, leading tabs removed from every line.
    pub fn effective_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

impl Node {
    /// The argument strings, with a nested instruction flattened as BuildKit does
    /// (its keyword, then its arguments).
    pub fn arg_strings(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            match arg {
                Arg::Text(s) => out.push(s.clone()),
                Arg::Node(node) => {
                    out.push(node.keyword.clone());
                    out.extend(node.arg_strings());
                }
            }
        }
        out
    }

    /// The nested instruction of `ONBUILD`, if any.
    pub fn nested(&self) -> Option<&Node> {
        self.args.iter().find_map(|a| match a {
            Arg::Node(n) => Some(n.as_ref()),
            Arg::Text(_) => None,
        })
    }

    /// BuildKit's `Node.Dump()` for one instruction, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut out = go_lower(&self.keyword);
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_quote_into(&mut out, flag);
            }
            out.push(']');
        }
        for arg in &self.args {
            out.push(' ');
            match arg {
                Arg::Text(s) => go_quote_into(&mut out, s),
                Arg::Node(node) => {
                    out.push('(');
                    out.push_str(&node.dump());
                    out.push(')');
                }
            }
        }
        out.trim().to_string()
    }
}

/// Whether `keyword` lower-cases (as Go does) to the ASCII word `lower`.
pub(crate) fn keyword_is(keyword: &str, lower: &str) -> bool {
    if keyword.is_ascii() { keyword.eq_ignore_ascii_case(lower) } else { go_lower(keyword) == lower }
}

/// Go's `strings.ToLower` (simple per-rune case mapping).
pub(crate) fn go_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            c => {
                let mut lower = c.to_lowercase();
                match (lower.next(), lower.next()) {
                    (Some(l), None) => l,
                    _ => c,
                }
            }
        })
        .collect()
}

/// First code point of the range that stands for raw bytes (see [`from_go_bytes`]).
pub(crate) const RAW_BYTE_BASE: u32 = 0x10_FE00;

/// Text cut by BuildKit at a byte that is not a character boundary. Go keeps the invalid
/// bytes; here each one becomes U+10FE00 + byte (private use), which the dumper prints as
/// `\xHH` exactly as Go's `strconv.Quote` does.
pub(crate) fn from_go_bytes(bytes: &[u8]) -> String {
    if let Ok(valid) = std::str::from_utf8(bytes) {
        return valid.to_string();
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.extend(char::from_u32(RAW_BYTE_BASE + u32::from(*b)));
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    go_quote_into(&mut out, s);
    out
}

fn go_quote_into(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (RAW_BYTE_BASE..=RAW_BYTE_BASE + 0xff).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32 - RAW_BYTE_BASE);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and ASCII space.
/// Without Unicode category tables this treats as unprintable: controls, separators other
/// than U+0020, the format characters (Cf), private use and noncharacters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}\0\u{1b}"), r#""\a\b\f\n\r\t\v\x00\x1b""#);
        assert_eq!(go_quote("☃♥한국어 é"), "\"☃♥한국어 é\"");
        assert_eq!(go_quote("\u{a0}\u{200b}\u{7f}\u{10ffff}"), r#""\u00a0\u200b\x7f\U0010ffff""#);
    }

    #[test]
    fn lowercase_like_go() {
        assert_eq!(go_lower("FROM"), "from");
        assert_eq!(go_lower("İX"), "ix");
        assert_eq!(go_lower("ΣΑΣ"), "σασ");
    }
}

//! Shell-word lexing and variable expansion with BuildKit's exact behaviour.
//!
//! This is the equivalent of BuildKit's `frontend/dockerfile/shell` package: quotes and escapes,
//! `$V ${V} ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?msg} ${V?msg} ${V#p} ${V##p} ${V%p} ${V%%p}
//! ${V/p/r} ${V//p/r}`, and word splitting after expansion (unquoted expansion results are
//! split, quoted ones are not). It passes every non-Windows line of BuildKit's `envVarTest` and
//! `wordsTest` (see `parser/tests/conformance.rs`).
//!
//! # Entry points
//!
//! | function | BuildKit | result |
//! |---|---|---|
//! | [`expand_word`] | `ProcessWord` | one string, no splitting |
//! | [`expand_words`] | `ProcessWords` | the result split into words |
//! | [`expand_word_with_matches`] / [`expand_words_with_matches`] | `ProcessWordWithMatches` | an [`Expansion`]: value, words and the variable names used ([`Expansion::matched`], [`Expansion::unmatched`], [`Expansion::used`]) |
//! | [`expand_heredoc`] | the `ExpandRaw` lexer | heredoc bodies: quotes kept, escape is always `\` |
//! | [`Lexer`] | `shell.Lex` | the switches (`raw_quotes`, `raw_escapes`, `skip_process_quotes`, `skip_unset_env`) |
//!
//! `escape` is the Dockerfile's escape character ([`crate::Dockerfile::escape`]). The
//! environment is anything implementing [`Env`]: ordered `Vec<(String, String)>` (later entries
//! win, like BuildKit's env list), `HashMap`, `BTreeMap` or [`EmptyEnv`].
//!
//! # What BuildKit expands, and how (for the Dockerfile → graph lowering)
//!
//! The AST keeps every value as written; the lowering expands them with the stage's current
//! environment (build args in scope + `ENV` so far, `ENV` winning), in this way:
//!
//! - single word ([`expand_word`]): `ENV` and `LABEL` keys and values; `ARG` defaults (names are
//!   not expanded); `WORKDIR`; `USER`; each `VOLUME` path; `STOPSIGNAL`; `COPY`/`ADD` sources,
//!   destination, `--from`, `--chown`, `--chmod`, ADD `--checksum` (not `--exclude`); the
//!   `RUN --mount` values (the parser already rejects a variable in `from=`; expand the other
//!   fields of [`crate::mount::Mount`] when lowering);
//! - several words ([`expand_words`]): each `EXPOSE` argument (`EXPOSE $PORTS` may give many);
//! - `FROM` base and `--platform`: single word, with only the global `ARG`s (those before the
//!   first `FROM`, [`crate::Dockerfile::global_args`]) plus `--build-arg` overrides; stage names
//!   are not expanded;
//! - heredoc bodies of `COPY`/`ADD` whose delimiter was not quoted (`expand == true`):
//!   [`expand_heredoc`]. `RUN` heredocs are not expanded by the builder (the shell does it);
//! - never expanded: `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK` commands, `ONBUILD`
//!   triggers (expanded when the trigger runs in a child build), `MAINTAINER`.
//!
//! Unset variables expand to the empty string. Names in [`Expansion::unmatched`] are what
//! BuildKit reports in its "undefined variable" lint.
//!
//! One BuildKit quirk is kept on purpose so results stay identical: in multi-word mode, a
//! `${V<op>…}` expansion drops the part of the current word that preceded it (BuildKit's
//! nested scan reuses the word buffer).

mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A source of variable values for expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Ordered `(name, value)` pairs; a later duplicate wins.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// An environment with no variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellErrorKind {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("variable substitutions nested more than {limit} levels deep")]
    TooDeep { limit: usize },
}

/// How deeply `${V:-${W:-…}}` substitutions may nest. Far beyond any real Dockerfile, and small
/// enough that the recursive scan stays within a 2 MiB thread stack even in debug builds.
pub const MAX_NESTING: usize = 100;

/// An expansion error, naming the text that was being expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", quoted_excerpt(source_text))]
pub struct ShellError {
    pub source_text: String,
    #[source]
    pub kind: ShellErrorKind,
}

/// `text` quoted like Go's `%q`; past 200 characters only its start and length (a hostile 60 KB
/// word must not be repeated in full in every message).
fn quoted_excerpt(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// The full result of one expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Single-word result: quotes removed, escapes processed, variables expanded.
    pub value: String,
    /// Multi-word result: `value` split on unquoted whitespace.
    pub words: Vec<String>,
    /// Variables that were looked up and set.
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and unset.
    pub unmatched: BTreeSet<String>,
}

impl Expansion {
    /// Every variable name the expansion looked up, set or not, in sorted order.
    pub fn used(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.matched.iter().chain(&self.unmatched).map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }
}

/// Expands `word` in single-word mode (no splitting): BuildKit's `ProcessWord`.
///
/// ```
/// use parser::shell::expand_word;
/// let env = vec![("NAME".to_string(), "world".to_string())];
/// assert_eq!(expand_word("'hello' \"${NAME:-x}\"", &env, '\\').unwrap(), "hello world");
/// ```
pub fn expand_word(word: &str, env: &dyn Env, escape: char) -> Result<String, ShellError> {
    Lexer::new(escape).process(word, env).map(|e| e.value)
}

/// Expands `word` and splits the result into words: BuildKit's `ProcessWords`.
///
/// ```
/// use parser::shell::expand_words;
/// let env = vec![("PORTS".to_string(), "80/tcp 443".to_string())];
/// assert_eq!(expand_words("$PORTS \"8 0\"", &env, '\\').unwrap(), ["80/tcp", "443", "8 0"]);
/// ```
pub fn expand_words(word: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, ShellError> {
    Lexer::new(escape).process(word, env).map(|e| e.words)
}

/// Expands `word` and reports the variables used: BuildKit's `ProcessWordWithMatches`.
/// Use [`Expansion::value`] for the single-word result.
///
/// ```
/// use parser::shell::expand_word_with_matches;
/// let env = vec![("A".to_string(), "1".to_string())];
/// let expansion = expand_word_with_matches("$A-${B:-2}", &env, '\\').unwrap();
/// assert_eq!(expansion.value, "1-2");
/// assert_eq!(expansion.used().collect::<Vec<_>>(), ["A", "B"]);
/// assert!(expansion.unmatched.contains("B"));
/// ```
pub fn expand_word_with_matches(word: &str, env: &dyn Env, escape: char) -> Result<Expansion, ShellError> {
    Lexer::new(escape).process(word, env)
}

/// Expands `word` in multi-word mode and reports the variables used; use [`Expansion::words`].
pub fn expand_words_with_matches(word: &str, env: &dyn Env, escape: char) -> Result<Expansion, ShellError> {
    Lexer::new(escape).process(word, env)
}

/// Expands a heredoc body (`COPY <<EOF` with an unquoted delimiter) as BuildKit does: escape
/// character `\` whatever the Dockerfile's, quotes left untouched (they belong to the file),
/// variables expanded. Use [`Expansion::value`].
///
/// ```
/// use parser::shell::expand_heredoc;
/// let env = vec![("USER".to_string(), "me".to_string())];
/// assert_eq!(expand_heredoc("echo '$USER' \"$USER\"\n", &env).unwrap().value, "echo 'me' \"me\"\n");
/// ```
pub fn expand_heredoc(content: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
    Lexer { skip_process_quotes: true, ..Lexer::new('\\') }.process(content, env)
}

/// A configurable lexer, mirroring BuildKit's `shell.Lex` switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables unexpanded (`$X` stays `$X`).
    pub skip_unset_env: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word`, returning both the single-word and the split result.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
        let mut chars: Vec<char> = word.chars().collect();
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut state = State {
            lexer: self,
            chars,
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            depth: 0,
            word_buf: String::new(),
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match state.process_stop_on(None, self.raw_escapes) {
            Ok((value, words)) => {
                Ok(Expansion { value, words, matched: state.matched, unmatched: state.unmatched })
            }
            Err(kind) => Err(ShellError { source_text: word.to_string(), kind }),
        }
    }
}

struct State<'a> {
    lexer: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    /// How many nested scans enclose the current position (bounded by [`MAX_NESTING`]).
    depth: usize,
    /// Shared between nested scans, like BuildKit's `wordsBuffer`.
    word_buf: String,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, ch);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

type Scan<T> = Result<T, ShellErrorKind>;

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Scan<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let result = self.scan_until(stop);
        self.raw_escapes = saved;
        result
    }

    fn scan_until(&mut self, stop: Option<char>) -> Scan<(String, Vec<String>)> {
        let mut result = String::new();
        self.word_buf.clear();
        let mut words = Words { words: Vec::new(), in_word: false };
        let escape = self.lexer.escape;
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.pos += 1;
                return Ok((result, words.finish(&mut self.word_buf)));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if quotes => Some(self.process_single_quote()?),
                '"' if quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&mut self.word_buf, &tmp);
                } else {
                    words.add_raw_string(&mut self.word_buf, &tmp);
                }
                continue;
            }
            self.pos += 1;
            let mut ch = ch;
            if ch == escape {
                if self.raw_escapes {
                    words.add_raw_char(&mut self.word_buf, ch);
                    result.push(ch);
                }
                match self.next() {
                    Some(escaped) => ch = escaped,
                    None => break,
                }
                words.add_raw_char(&mut self.word_buf, ch);
            } else {
                words.add_char(&mut self.word_buf, ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(ShellErrorKind::UnexpectedEnd(stop));
        }
        Ok((result, words.finish(&mut self.word_buf)))
    }

    fn process_single_quote(&mut self) -> Scan<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Scan<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        let escape = self.lexer.escape;
        loop {
            match self.peek() {
                None => return Err(ShellErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == escape => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Scan<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err(ShellErrorKind::MissingBrace);
        };
        let mut modifier = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            modifier.push(c);
                        }
                        None => return Err(ShellErrorKind::MissingBrace),
                    }
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(ShellErrorKind::UnsupportedModifier(modifier));
                }
                let word = self.nested(Some('}'), raw, ShellErrorKind::MissingBrace)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match ch {
                    '-' => Ok(if empty { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(ShellErrorKind::Required {
                            name,
                            message: if word.is_empty() { "is not allowed to be unset".into() } else { word },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ShellErrorKind::Required {
                            name,
                            message: if word.is_empty() { "is not allowed to be empty".into() } else { word },
                        }),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (pattern, greedy) = match word.strip_prefix(ch) {
                            Some(rest) => (rest.to_string(), true),
                            None => (word, false),
                        };
                        let value = value.unwrap_or_default();
                        if ch == '%' {
                            pattern::trim_suffix(&pattern, &value, greedy)
                        } else {
                            pattern::trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.nested(Some('/'), true, ShellErrorKind::MissingSlash)?;
                let replacement = self.nested(Some('}'), true, ShellErrorKind::MissingBrace)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pat}/{replacement}}}"));
                }
                pattern::replace(&pat, &value.unwrap_or_default(), &replacement, all)
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
        }
    }

    /// A nested scan up to `stop`; at end of input the error becomes `at_end`.
    fn nested(&mut self, stop: Option<char>, raw: bool, at_end: ShellErrorKind) -> Scan<String> {
        if self.depth >= MAX_NESTING {
            return Err(ShellErrorKind::TooDeep { limit: MAX_NESTING });
        }
        self.depth += 1;
        let result = self.process_stop_on(stop, raw);
        self.depth -= 1;
        match result {
            Ok((word, _)) => Ok(word),
            Err(err @ ShellErrorKind::TooDeep { .. }) => Err(err),
            Err(_) if self.peek().is_none() => Err(at_end),
            Err(err) => Err(err),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_digit(*c)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut result = "<<".to_string();
        while let Some(ch) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            result.push(ch);
            self.pos += 1;
        }
        result
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(value) => {
                if !self.matched.contains(name) {
                    self.matched.insert(name.to_string());
                }
                Some(value.to_string())
            }
            None => {
                if !self.unmatched.contains(name) {
                    self.unmatched.insert(name.to_string());
                }
                None
            }
        }
    }
}

/// Go's `unicode.IsDigit` (decimal digits), approximated for non-ASCII by `is_numeric`.
fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn modifiers() {
        let e = env(&[("V", "abcabc"), ("E", ""), ("P", "/a/b/c.tar.gz")]);
        let cases = [
            ("${V}", "abcabc"),
            ("${U:-w}", "w"),
            ("${E:-w}", "w"),
            ("${E-w}", ""),
            ("${V:+w}", "w"),
            ("${E+w}", "w"),
            ("${E:+w}", ""),
            ("${V#a*}", "bcabc"),
            ("${V##a*}", ""),
            ("${P%.*}", "/a/b/c.tar"),
            ("${P%%.*}", "/a/b/c"),
            ("${P##*/}", "c.tar.gz"),
            ("${V/b/X}", "aXcabc"),
            ("${V//b/X}", "aXcaXc"),
            ("${V:?}", "abcabc"),
        ];
        for (input, want) in cases {
            assert_eq!(expand_word(input, &e, '\\').unwrap(), want, "{input}");
        }
        assert!(expand_word("${U:?must be set}", &e, '\\').is_err());
        assert!(expand_word("${E:?}", &e, '\\').is_err());
        assert!(expand_word("${V:#a}", &e, '\\').is_err());
    }

    #[test]
    fn matches_are_reported() {
        let e = env(&[("A", "1")]);
        let got = expand_word_with_matches("$A ${B:-x}", &e, '\\').unwrap();
        assert_eq!(got.value, "1 x");
        assert_eq!(got.matched.into_iter().collect::<Vec<_>>(), ["A"]);
        assert_eq!(got.unmatched.into_iter().collect::<Vec<_>>(), ["B"]);
    }

    #[test]
    fn backtick_escape_and_words() {
        let e = env(&[("X", "a b")]);
        assert_eq!(expand_words("`$X $X \"$X\"", &e, '`').unwrap(), ["$X", "a", "b", "a b"]);
    }

    fn nested_default(depth: usize, quoted: bool) -> String {
        let (open, close) = if quoted { ("\"${X:-", "}\"") } else { ("${X:-", "}") };
        format!("{}a{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn nesting_is_bounded() {
        let e = env(&[]);
        // at the bound it still works, on a thread with the stack of a tokio worker (2 MiB)
        let ok = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let at_bound = nested_default(MAX_NESTING, false);
                let quoted = nested_default(MAX_NESTING, true);
                let replace =
                    format!("{}a{}", "${X/${X:-".repeat(MAX_NESTING / 2), "}/r}".repeat(MAX_NESTING / 2));
                (
                    expand_word(&at_bound, &EmptyEnv, '\\').unwrap(),
                    expand_word(&quoted, &EmptyEnv, '\\').unwrap(),
                    expand_word(&replace, &EmptyEnv, '\\').is_ok(),
                )
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ok, ("a".to_string(), "a".to_string(), true));
        // 10 000 levels (the reported crash) and one past the bound fail cleanly
        for depth in [MAX_NESTING + 1, 10_000] {
            for quoted in [false, true] {
                let err = expand_word(&nested_default(depth, quoted), &e, '\\').unwrap_err();
                assert_eq!(err.kind, ShellErrorKind::TooDeep { limit: MAX_NESTING }, "{depth} {quoted}");
                assert!(err.to_string().contains("nested more than 100 levels"), "{err}");
                assert!(err.to_string().len() < 400, "the message repeats the whole word: {err}");
            }
        }
        let heredoc = expand_heredoc(&nested_default(10_000, false), &e).unwrap_err();
        assert_eq!(heredoc.kind, ShellErrorKind::TooDeep { limit: MAX_NESTING });
    }
}

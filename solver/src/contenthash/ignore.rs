//! `.dockerignore` patterns with docker's rules (moby/patternmatcher semantics): patterns are
//! cleaned paths relative to the context root (a leading `/` is dropped), `*` and `?` never match
//! `/`, `**` matches any number of directories, `[…]` classes, `\` escapes, `!` re-includes, the
//! last matching pattern wins, and a path is matched when it or one of its parent directories
//! matches.

use std::path::{Path, PathBuf};

/// A pattern that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("illegal exclusion pattern: \"!\"")]
    LoneBang,
    #[error("syntax error in pattern {pattern:?}: {problem}")]
    Syntax { pattern: String, problem: &'static str },
    #[error("cannot read ignore file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    One,
    /// `[…]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` (or a `**` followed by more pattern): `(.*/)?`.
    AnyDirs,
    /// A trailing `**`: anything.
    AnyTail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix(String),
    Suffix(String),
    Tokens(Vec<Token>),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// The cleaned pattern text (without `!`).
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// True for `!` patterns.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// One path component of a wildcard source (`COPY src/*.rs /app/`, `RUN rm` of a file op),
    /// matched like Go's `filepath.Match` as BuildKit expands it: `*` and `?` within the name,
    /// `[…]` classes (`^` negates), `\` escapes. The text is taken as it is (no `!`, no
    /// cleaning); a malformed class is an error.
    pub fn component(text: &str) -> Result<Pattern, PatternError> {
        Ok(Pattern { cleaned: text.to_owned(), exclusion: false, kind: compile(text)? })
    }

    /// Matches a cleaned, slash-separated relative path.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Tokens(tokens) => {
                let chars: Vec<char> = path.chars().collect();
                match_tokens(tokens, &chars)
            }
        }
    }
}

fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Char(c) => text.first() == Some(c) && match_tokens(rest, &text[1..]),
        Token::One => text.first().is_some_and(|c| *c != '/') && match_tokens(rest, &text[1..]),
        Token::Class { negated, ranges } => {
            text.first().is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && match_tokens(rest, &text[1..])
        }
        Token::Star => {
            for i in 0..=text.len() {
                if match_tokens(rest, &text[i..]) {
                    return true;
                }
                if text.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Token::AnyTail => true,
        Token::AnyDirs => {
            // `(.*/)?`: nothing, or anything ending in `/`.
            if match_tokens(rest, text) {
                return true;
            }
            (0..text.len()).any(|i| text[i] == '/' && match_tokens(rest, &text[i + 1..]))
        }
    }
}

/// Whether `path` has wildcard characters (`*`, `?`, `[`): a source path with them is expanded,
/// component by component, with [`Pattern::component`].
pub fn has_wildcards(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Lexical cleaning like Go's `filepath.Clean` on slash paths.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn syntax(pattern: &str, problem: &'static str) -> PatternError {
    PatternError::Syntax { pattern: pattern.to_owned(), problem }
}

fn compile(pattern: &str) -> Result<Kind, PatternError> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut detected = Detected::Exact;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let first = i == 0;
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    detected = if detected == Detected::Exact { Detected::Prefix } else { Detected::Regexp };
                    tokens.push(Token::AnyTail);
                } else {
                    detected = Detected::Regexp;
                    tokens.push(Token::AnyDirs);
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                detected = Detected::Regexp;
            }
            '?' => {
                tokens.push(Token::One);
                detected = Detected::Regexp;
            }
            '\\' => {
                let Some(&next) = chars.get(i) else {
                    return Err(syntax(pattern, "trailing backslash"));
                };
                i += 1;
                tokens.push(Token::Char(next));
                detected = Detected::Regexp;
            }
            '[' => {
                let (token, used) =
                    parse_class(&chars[i..]).ok_or_else(|| syntax(pattern, "bad character class"))?;
                i += used;
                tokens.push(token);
                detected = Detected::Regexp;
            }
            ']' => {
                // Go's regexp treats a lone `]` as a literal.
                tokens.push(Token::Char(']'));
                detected = Detected::Regexp;
            }
            other => tokens.push(Token::Char(other)),
        }
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern.get(..pattern.len() - 2).unwrap_or("").to_owned()),
        Detected::Suffix => Kind::Suffix(pattern.get(2..).unwrap_or("").to_owned()),
        Detected::Regexp => Kind::Tokens(tokens),
    })
}

/// Parses a class after `[`; returns the token and the characters consumed (incl. `]`).
/// Follows `filepath.Match` validity: non-empty, `-` only between two characters.
fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let read_char = |i: &mut usize| -> Option<char> {
        let c = *chars.get(*i)?;
        *i += 1;
        if c == '\\' {
            let escaped = *chars.get(*i)?;
            *i += 1;
            return Some(escaped);
        }
        if c == '-' || c == ']' {
            return None;
        }
        Some(c)
    };
    loop {
        match chars.get(i) {
            None => return None,
            Some(']') if !ranges.is_empty() => return Some((Token::Class { negated, ranges }, i + 1)),
            Some(_) => {
                let lo = read_char(&mut i)?;
                let mut hi = lo;
                if chars.get(i) == Some(&'-') {
                    i += 1;
                    hi = read_char(&mut i)?;
                    if hi < lo {
                        return None;
                    }
                }
                ranges.push((lo, hi));
            }
        }
    }
}

/// An ordered list of patterns (`.dockerignore`, `COPY --exclude`).
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles patterns; blank ones are skipped, each is cleaned.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut out = PatternMatcher::default();
        for raw in patterns {
            let mut text = raw.as_ref().trim();
            if text.is_empty() {
                continue;
            }
            let exclusion = text.starts_with('!');
            if exclusion {
                text = text[1..].trim_start();
                if text.is_empty() {
                    return Err(PatternError::LoneBang);
                }
                out.exclusions = true;
            }
            let mut cleaned = clean_path(text);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let kind = compile(&cleaned)?;
            out.patterns.push(Pattern { cleaned, exclusion, kind });
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern starts with `!`.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Docker's `MatchesOrParentMatches`: `path` (relative, slash-separated) is matched when the
    /// last pattern that matches it or one of its parent directories is not a `!` pattern.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean_path(path);
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let hit = pattern.matches(&path) || parents.iter().any(|parent| pattern.matches(parent));
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a `!` pattern could re-include something below the excluded directory `dir`,
    /// so a walk must still descend into it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean_path(dir);
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let text = p.as_str();
            // A pattern with wildcards before the directory's depth may match anything.
            let literal_prefix: String =
                text.chars().take_while(|c| !matches!(c, '*' | '?' | '[' | '\\')).collect();
            if literal_prefix.len() < text.len() {
                let lp = literal_prefix.trim_end_matches('/');
                lp.is_empty() || dir.starts_with(lp) || lp.starts_with(&format!("{dir}/")) || lp == dir
            } else {
                text.starts_with(&format!("{dir}/"))
            }
        })
    }
}

/// Parses an ignore file like docker: UTF-8 BOM stripped, `#` comment lines skipped, patterns
/// trimmed and cleaned, a leading `/` dropped, `!` kept.
pub fn parse_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = if pattern.is_empty() { String::new() } else { clean_path(pattern) };
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        out.push(if invert { format!("!{cleaned}") } else { cleaned });
    }
    out
}

/// Finds the ignore file for a build: `<dockerfile>.dockerignore` next to the Dockerfile wins
/// over `<context>/.dockerignore`.
pub fn find_ignore_file(context: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    if let Some(dockerfile) = dockerfile
        && let Some(name) = dockerfile.file_name()
    {
        let mut specific = name.to_os_string();
        specific.push(".dockerignore");
        let candidate = dockerfile.with_file_name(specific);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let default = context.join(".dockerignore");
    default.is_file().then_some(default)
}

/// Reads the ignore patterns for a build (empty when there is no ignore file).
pub fn load_ignore_patterns(context: &Path, dockerfile: Option<&Path>) -> Result<Vec<String>, PatternError> {
    let Some(path) = find_ignore_file(context, dockerfile) else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|source| PatternError::Read { path: path.clone(), source })?;
    Ok(parse_ignore_file(&text))
}

#[cfg(test)]
#[path = "ignore_tests.rs"]
mod tests;

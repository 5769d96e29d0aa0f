//! Shell patterns of `${V#p}`, `${V%p}` and `${V/p/r}`, matched the way BuildKit does.
//!
//! BuildKit turns a pattern into a Go regular expression (`*` → `.*` or `.*?`, `?` → `.`,
//! no bracket expressions) and uses leftmost-first matching. Go's `.` does not match a
//! newline. This module matches the same language with a small dynamic program instead of a
//! regex engine: the first-priority match from a state depends only on the state, so one
//! table answers every start position in `O(pattern × value)` time.

use super::ShellErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
}

/// Compiles a pattern. `\*`, `\?` and `\\` are literal; `\}` and `\/` drop the backslash;
/// any other escape is an error, as in BuildKit.
fn compile(pattern: &[char]) -> Result<Vec<Token>, ShellErrorKind> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        let ch = pattern[i];
        i += 1;
        match ch {
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => {
                let next = pattern.get(i).copied();
                if matches!(next, Some('}') | Some('/')) {
                    continue;
                }
                i += 1;
                match next {
                    Some(c @ ('*' | '?' | '\\')) => tokens.push(Token::Literal(c)),
                    other => {
                        return Err(ShellErrorKind::InvalidPattern {
                            pattern: pattern.iter().collect(),
                            reason: match other {
                                Some(c) => format!("invalid escape '\\{c}'"),
                                None => "trailing backslash".to_string(),
                            },
                        });
                    }
                }
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

/// For each start position `vi` in `value`, where the first-priority match of the whole
/// pattern starting there ends, if it matches at all. Only the first row of the dynamic program
/// (`end[0][vi]`) is kept: rows are computed from the last token up, each from the one below,
/// so memory stays `O(value)` whatever the pattern's length (a 60 KB pattern against a 60 KB
/// value must not need a 29 GB table).
struct MatchTable {
    ends: Vec<Option<u32>>,
}

impl MatchTable {
    fn build(tokens: &[Token], value: &[char], greedy: bool) -> MatchTable {
        let n = value.len();
        // row for "no tokens left": the match ends where it starts
        let mut below: Vec<Option<u32>> = (0..=n).map(|vi| Some(vi as u32)).collect();
        let mut row: Vec<Option<u32>> = vec![None; n + 1];
        for token in tokens.iter().rev() {
            for vi in (0..=n).rev() {
                let here = value.get(vi).copied();
                row[vi] = match *token {
                    Token::Literal(c) => match here {
                        Some(h) if h == c => below[vi + 1],
                        _ => None,
                    },
                    Token::AnyChar => match here {
                        Some(h) if h != '\n' => below[vi + 1],
                        _ => None,
                    },
                    Token::Star => {
                        let consume = match here {
                            Some(h) if h != '\n' => row[vi + 1],
                            _ => None,
                        };
                        let skip = below[vi];
                        if greedy { consume.or(skip) } else { skip.or(consume) }
                    }
                };
            }
            std::mem::swap(&mut below, &mut row);
        }
        MatchTable { ends: below }
    }

    fn match_at(&self, start: usize) -> Option<usize> {
        self.ends[start].map(|end| end as usize)
    }

    /// Leftmost match starting at or after `from`.
    fn find_from(&self, from: usize) -> Option<(usize, usize)> {
        (from..self.ends.len()).find_map(|start| self.match_at(start).map(|end| (start, end)))
    }
}

fn invalid(pattern: &str, err: ShellErrorKind) -> ShellErrorKind {
    match err {
        ShellErrorKind::InvalidPattern { reason, .. } => {
            ShellErrorKind::InvalidPattern { pattern: pattern.to_string(), reason }
        }
        other => other,
    }
}

/// `${V#p}` / `${V##p}`: removes the shortest (longest with `greedy`) matching prefix.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellErrorKind> {
    let pattern_chars: Vec<char> = pattern.chars().collect();
    let tokens = compile(&pattern_chars).map_err(|e| invalid(pattern, e))?;
    let value_chars: Vec<char> = value.chars().collect();
    let table = MatchTable::build(&tokens, &value_chars, greedy);
    Ok(match table.match_at(0) {
        Some(end) => value_chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${V%p}` / `${V%%p}`: reverses pattern (keeping escape pairs in order) and value, then
/// trims a prefix, exactly like BuildKit.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellErrorKind> {
    let runes: Vec<char> = pattern.chars().collect();
    let mut reversed = vec!['\0'; runes.len()];
    let last = runes.len().saturating_sub(1);
    let mut i = 0;
    while i < runes.len() {
        let out = last - i;
        if runes[i] == '\\' && i != last {
            reversed[out - 1] = '\\';
            reversed[out] = runes[i + 1];
            i += 2;
        } else {
            reversed[out] = runes[i];
            i += 1;
        }
    }
    let reversed_pattern: String = reversed.into_iter().collect();
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_pattern, &reversed_value, greedy).map_err(|e| invalid(pattern, e))?;
    Ok(trimmed.chars().rev().collect())
}

/// `${V/p/r}` and `${V//p/r}`. Replace-all follows Go's `Regexp.ReplaceAllString`, including
/// `$0`/`${0}`/`$$` expansion in the replacement and the empty-match rules.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ShellErrorKind> {
    let pattern_chars: Vec<char> = pattern.chars().collect();
    let tokens = compile(&pattern_chars).map_err(|e| invalid(pattern, e))?;
    let chars: Vec<char> = value.chars().collect();
    let table = MatchTable::build(&tokens, &chars, true);
    if !all {
        return Ok(match table.find_from(0) {
            Some((start, end)) => {
                let mut out: String = chars[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&chars[end..]);
                out
            }
            None => value.to_string(),
        });
    }
    let mut out = String::with_capacity(value.len());
    let mut last_match_end = 0;
    let mut search = 0;
    while search <= chars.len() {
        let Some((start, end)) = table.find_from(search) else { break };
        out.extend(&chars[last_match_end..start]);
        if end > last_match_end || start == 0 {
            let matched: String = chars[start..end].iter().collect();
            expand_template(&mut out, replacement, &matched);
        }
        last_match_end = end;
        if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    out.extend(&chars[last_match_end.min(chars.len())..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regex whose only group is the whole match (group 0).
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        rest = &rest[idx + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match extract_group_name(rest) {
            Some((name, after)) => {
                if parse_group_number(name) == Some(0) {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

fn extract_group_name(template: &str) -> Option<(&str, &str)> {
    let (body, braced) = match template.strip_prefix('{') {
        Some(b) => (b, true),
        None => (template, false),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let after = &body[len..];
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

fn parse_group_number(name: &str) -> Option<u64> {
    if !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut num: u64 = 0;
    for b in name.bytes() {
        num = num * 10 + u64::from(b - b'0');
        if num >= 100_000_000 {
            return None;
        }
    }
    Some(num)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix() {
        assert_eq!(trim_prefix("a*", "abcabc", false).unwrap(), "bcabc");
        assert_eq!(trim_prefix("a*", "abcabc", true).unwrap(), "");
        assert_eq!(trim_prefix("*c", "abcabc", false).unwrap(), "abc");
        assert_eq!(trim_suffix("c*", "abcabc", false).unwrap(), "abcab");
        assert_eq!(trim_suffix("b*", "abcabc", true).unwrap(), "a");
        assert_eq!(trim_suffix("\\*", "ab*", false).unwrap(), "ab");
        assert_eq!(trim_prefix("?", "x\ny", false).unwrap(), "\ny");
        assert_eq!(trim_prefix("*y", "x\ny", true).unwrap(), "x\ny");
        assert!(trim_prefix("\\a", "x", false).is_err());
    }

    #[test]
    fn replacement() {
        assert_eq!(replace("b", "abcb", "X", false).unwrap(), "aXcb");
        assert_eq!(replace("b", "abcb", "X", true).unwrap(), "aXcX");
        assert_eq!(replace("*", "abc", "X", true).unwrap(), "X");
        assert_eq!(replace("x*", "abc", "-", true).unwrap(), "abc");
        assert_eq!(replace("", "abc", "-", true).unwrap(), "-a-b-c-");
        assert_eq!(replace("b", "abc", "[$0$$]", true).unwrap(), "a[b$]c");
        assert_eq!(replace("b", "abc", "$x", true).unwrap(), "ac");
    }

    #[test]
    fn long_pattern_and_value_need_little_memory() {
        // once a 29 GB table (tokens × value): now two rows
        let value = "ab".repeat(2_000);
        let pattern = "a*".repeat(1_000);
        assert_eq!(trim_prefix(&pattern, &value, false).unwrap(), value[1_999..]);
        assert_eq!(trim_suffix("*b", &value, false).unwrap(), value[..value.len() - 1]);
        assert_eq!(replace(&"x".repeat(4_000), &value, "-", true).unwrap(), value);
    }
}

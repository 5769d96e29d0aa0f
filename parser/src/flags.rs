//! Builder flags (`--name=value`) validated per instruction, like BuildKit's `BFlags`.

use crate::error::ErrorKind;

/// The kind of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--flag`, `--flag=true|false`.
    Bool,
    /// `--flag=value`, at most once.
    String,
    /// `--flag=value`, repeatable.
    Strings,
}

/// The flag values of one instruction, after validation.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

/// A flag error and the flag word that caused it (to point at it).
pub(crate) struct FlagError {
    pub kind: ErrorKind,
    pub word: String,
}

impl Flags {
    /// Validates `words` (as extracted by the line parser) against `allowed`.
    pub(crate) fn parse(
        instruction: &str,
        words: &[String],
        allowed: &[(&'static str, FlagKind)],
    ) -> Result<Flags, FlagError> {
        let mut flags = Flags::default();
        let fail = |kind: ErrorKind, word: &str| FlagError { kind, word: word.to_string() };
        for word in words {
            if word == "--" {
                break;
            }
            let Some(body) = word.strip_prefix("--") else {
                return Err(fail(
                    ErrorKind::NotAFlag { instruction: instruction.to_string(), word: word.clone() },
                    word,
                ));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag = || format!("--{name}");
            let Some(&(static_name, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
                let flag = flag();
                let suggestion = suggest(name, allowed.iter().map(|(n, _)| *n));
                return Err(fail(
                    ErrorKind::UnknownFlag { flag, instruction: instruction.to_string(), suggestion },
                    word,
                ));
            };
            let seen = flags.values.iter().any(|(n, _)| *n == static_name);
            if seen && kind != FlagKind::Strings {
                return Err(fail(
                    ErrorKind::DuplicateFlag { flag: flag(), instruction: instruction.to_string() },
                    word,
                ));
            }
            let missing =
                || ErrorKind::MissingFlagValue { flag: flag(), instruction: instruction.to_string() };
            let stored = match kind {
                FlagKind::Bool => match value {
                    Some("") => return Err(fail(missing(), word)),
                    None => "true".to_string(),
                    Some(v) if v.eq_ignore_ascii_case("true") => "true".to_string(),
                    Some(v) if v.eq_ignore_ascii_case("false") => "false".to_string(),
                    Some(v) => {
                        return Err(fail(
                            ErrorKind::InvalidBool {
                                flag: flag(),
                                instruction: instruction.to_string(),
                                value: v.to_string(),
                            },
                            word,
                        ));
                    }
                },
                FlagKind::String | FlagKind::Strings => match value {
                    Some(v) => v.to_string(),
                    None => return Err(fail(missing(), word)),
                },
            };
            match flags.values.iter_mut().find(|(n, _)| *n == static_name) {
                Some((_, list)) => list.push(stored),
                None => flags.values.push((static_name, vec![stored])),
            }
        }
        Ok(flags)
    }

    /// The value of a string flag, if given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.strings(name).last().cloned()
    }

    /// All values of a repeatable flag, in order.
    pub(crate) fn strings(&self, name: &str) -> &[String] {
        self.values.iter().find(|(n, _)| *n == name).map_or(&[], |(_, v)| v.as_slice())
    }

    /// A boolean flag: `None` when absent.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

/// The closest candidate within a small edit distance (BuildKit's "did you mean"), compared
/// without regard to case; `None` when nothing is close.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let word_lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = levenshtein(&word_lower, &candidate.to_ascii_lowercase());
        if distance == 0 {
            // an exact match: the error is about something else
            return None;
        }
        // BuildKit's rule (util/suggest): closer than 3 edits, the first closest wins
        if distance < 3 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COPY: &[(&str, FlagKind)] = &[
        ("from", FlagKind::String),
        ("chmod", FlagKind::String),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::Strings),
    ];

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn valid_flags() {
        let flags = Flags::parse("COPY", &words(&["--from=a", "--link", "--exclude=x", "--exclude=y"]), COPY)
            .ok()
            .unwrap();
        assert_eq!(flags.string("from").as_deref(), Some("a"));
        assert_eq!(flags.bool("link"), Some(true));
        assert_eq!(flags.strings("exclude"), ["x", "y"]);
        assert_eq!(flags.bool("missing"), None);
    }

    #[test]
    fn flag_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--chmodd=1"], "unknown flag: --chmodd (did you mean chmod?)"),
            (&["--from=a", "--from=b"], "duplicate flag `--from` for COPY"),
            (&["--from"], "flag `--from` of COPY needs a value"),
            (&["--link="], "flag `--link` of COPY needs a value"),
            (&["--link=yes"], "flag `--link` of COPY expects a boolean, not `yes`"),
        ];
        for (input, message) in cases {
            let err = Flags::parse("COPY", &words(input), COPY).err().unwrap();
            assert_eq!(err.kind.to_string(), *message);
        }
    }
}

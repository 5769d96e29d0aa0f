//! `--chmod` modes: octal (`0755`, replaces the mode) or symbolic as chmod(1) takes them
//! (`u+x`, `go-w`, `a+X`, `u=rw,g=r,o=r`, applied to each source's own mode).
//!
//! The graph keeps a symbolic mode as written (so the op and its cache key show it), and the
//! runner applies it per file. Semantics follow BSD `setmode(3)` with a zero umask, as BuildKit
//! (through `dchapes-mode`): an omitted "who" means all, `X` adds execute to directories and to
//! files that already have an execute bit (judged on the mode before the change), `s` applies to
//! the user and group, `t` to `a`/`u`/`g`/omitted who, and `u`/`g`/`o` as permission copy that
//! class's current bits.

use serde::{Deserialize, Serialize};

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Chmod {
    /// Replaces the permission bits (and setuid/setgid/sticky).
    Octal(u32),
    /// Applied to each entry's mode.
    Symbolic(String),
}

/// A `--chmod` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    /// Looks numeric but is not an octal mode up to 07777 (BuildKit's text).
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    NotOctal(String),
    #[error("invalid chmod parameter: '{0}': invalid syntax")]
    Syntax(String),
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o0007;
const ALL: u32 = USER | GROUP | OTHER;
const STICKY: u32 = 0o1000;

/// One `who op perms` clause step, parsed.
#[derive(Debug, Clone, Copy)]
struct Step {
    /// Who bits (0 = omitted).
    who: u32,
    op: u8,
    /// `rwxst` bits (spread over all classes), or a class to copy (`u`, `g`, `o`).
    perms: Perms,
}

#[derive(Debug, Clone, Copy)]
enum Perms {
    Bits { bits: u32, conditional_x: bool },
    Copy(u8),
}

fn parse_symbolic(text: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for clause in text.split(',') {
        let bytes = clause.as_bytes();
        let mut i = 0;
        let mut who = 0;
        while let Some(&c) = bytes.get(i) {
            who |= match c {
                b'u' => USER,
                b'g' => GROUP,
                b'o' => OTHER,
                b'a' => ALL,
                _ => break,
            };
            i += 1;
        }
        // at least one operation per clause
        if !matches!(bytes.get(i), Some(b'+' | b'-' | b'=')) {
            return None;
        }
        while let Some(&op) = bytes.get(i) {
            if !matches!(op, b'+' | b'-' | b'=') {
                return None;
            }
            i += 1;
            match bytes.get(i) {
                Some(&class @ (b'u' | b'g' | b'o')) => {
                    steps.push(Step { who, op, perms: Perms::Copy(class) });
                    i += 1;
                }
                _ => {
                    let (mut bits, mut conditional_x) = (0, false);
                    while let Some(&p) = bytes.get(i) {
                        match p {
                            b'r' => bits |= 0o444,
                            b'w' => bits |= 0o222,
                            b'x' => bits |= 0o111,
                            b'X' => conditional_x = true,
                            b's' => bits |= 0o6000,
                            b't' => bits |= STICKY,
                            _ => break,
                        }
                        i += 1;
                    }
                    steps.push(Step { who, op, perms: Perms::Bits { bits, conditional_x } });
                }
            }
        }
    }
    Some(steps)
}

impl Chmod {
    /// Parses a `--chmod` value: octal when it starts with a digit, symbolic otherwise.
    pub fn parse(value: &str) -> Result<Chmod, ChmodError> {
        if value.starts_with(|c: char| c.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(mode) if mode <= 0o7777 => Ok(Chmod::Octal(mode)),
                _ => Err(ChmodError::NotOctal(value.to_owned())),
            };
        }
        match parse_symbolic(value) {
            Some(_) if !value.is_empty() => Ok(Chmod::Symbolic(value.to_owned())),
            _ => Err(ChmodError::Syntax(value.to_owned())),
        }
    }

    /// The octal mode, if this is one.
    pub fn octal(&self) -> Option<u32> {
        match self {
            Chmod::Octal(mode) => Some(*mode),
            Chmod::Symbolic(_) => None,
        }
    }

    /// The new permission bits (`0o7777` part) of an entry whose mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode & 0o7777;
        let steps = match self {
            Chmod::Octal(octal) => return octal & 0o7777,
            Chmod::Symbolic(text) => parse_symbolic(text).unwrap_or_default(),
        };
        let mut current = original;
        for step in steps {
            let bits = match step.perms {
                Perms::Bits { bits, conditional_x } => {
                    let x = conditional_x && (is_dir || original & 0o111 != 0);
                    bits | if x { 0o111 } else { 0 }
                }
                Perms::Copy(class) => {
                    let value = match class {
                        b'u' => (current >> 6) & 7,
                        b'g' => (current >> 3) & 7,
                        _ => current & 7,
                    };
                    value * 0o111
                }
            };
            // sticky only for a/u/g or an omitted who
            let sticky = if step.who == 0 || step.who & (USER | GROUP) != 0 { STICKY } else { 0 };
            let who = if step.who == 0 { ALL } else { step.who };
            let affected = bits & (who | sticky);
            match step.op {
                b'+' => current |= affected,
                b'-' => current &= !affected,
                _ => current = (current & !who) | affected,
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(text).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_modes_replace() {
        assert_eq!(Chmod::parse("0755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("7777").unwrap(), Chmod::Octal(0o7777));
        assert_eq!(apply("640", 0o755, false), 0o640);
        for bad in ["64a", "99", "17777", "0x1"] {
            assert_eq!(Chmod::parse(bad), Err(ChmodError::NotOctal(bad.into())), "{bad}");
        }
        assert_eq!(
            ChmodError::NotOctal("64a".into()).to_string(),
            "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"
        );
    }

    #[test]
    fn symbolic_modes_apply_like_chmod() {
        let cases: &[(&str, u32, bool, u32)] = &[
            ("u+x", 0o644, false, 0o744),
            ("go-w", 0o666, false, 0o644),
            ("a+X", 0o644, false, 0o644),
            ("a+X", 0o744, false, 0o755),
            ("a+X", 0o600, true, 0o711),
            ("u=rw,g=r,o=r", 0o777, false, 0o644),
            ("+x", 0o600, false, 0o711),
            ("o=", 0o777, false, 0o770),
            ("g=u", 0o740, false, 0o770),
            ("u+s", 0o755, false, 0o4755),
            ("o+s", 0o755, false, 0o755),
            ("+t", 0o777, true, 0o1777),
            ("a=rwx,o-w", 0o000, false, 0o775),
            ("u-w+x", 0o644, false, 0o544),
            ("ug=rw", 0o4751, false, 0o661),
        ];
        for &(text, mode, is_dir, want) in cases {
            assert_eq!(apply(text, mode, is_dir), want, "{text} on {mode:o}");
        }
    }

    #[test]
    fn bad_symbolic_modes_are_rejected() {
        for bad in ["", "u", "z+x", "u+x,", "u*x", "u+q", "+x,,g+w"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_graph_keeps_the_written_form() {
        assert_eq!(serde_json::to_string(&Chmod::Octal(0o755)).unwrap(), "493");
        assert_eq!(serde_json::to_string(&Chmod::Symbolic("u+x".into())).unwrap(), "\"u+x\"");
        let back: Chmod = serde_json::from_str("\"go-w\"").unwrap();
        assert_eq!(back, Chmod::Symbolic("go-w".into()));
    }
}

//! Differential-testing helper: reads hex-encoded words (one per line) from stdin and prints,
//! for the escape characters `\` and `` ` ``, the single-word result with matched/unmatched
//! variables and the multi-word result, in the format of a Go program using BuildKit's
//! `shell.Lex` with the same environment. Not part of the test suite.

use std::io::BufRead as _;

use parser::go_quote;
use parser::shell::{Lexer, expand_words};

fn main() {
    let env: Vec<(String, String)> =
        [("A", "a b"), ("E", ""), ("P", "/x/y.tar.gz"), ("S", "  sp  "), ("N", "\n")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some(bytes) = decode_hex(line.trim()) else { continue };
        let Ok(word) = String::from_utf8(bytes) else { continue };
        for escape in ['\\', '`'] {
            match Lexer::new(escape).process(&word, &env) {
                Ok(e) => {
                    let join = |s: &std::collections::BTreeSet<String>| {
                        s.iter().cloned().collect::<Vec<_>>().join(",")
                    };
                    println!("word {} m={} u={}", go_quote(&e.value), join(&e.matched), join(&e.unmatched));
                }
                Err(_) => println!("word ERROR"),
            }
            match expand_words(&word, &env, escape) {
                Ok(words) => {
                    let quoted: Vec<String> = words.iter().map(|w| go_quote(w)).collect();
                    println!("words [{}]", quoted.join(" "));
                }
                Err(_) => println!("words ERROR"),
            }
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

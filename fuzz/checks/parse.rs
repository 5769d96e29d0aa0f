//! The properties the `parse` fuzz target checks, shared with the regression test
//! (`parser/tests/fuzz_regressions.rs`) that replays every committed corpus input and every
//! crash found so far: no input may make the parser (raw and typed), the BuildKit dump, the
//! JSON output or the shell expander panic, and every reported location must lie inside the
//! input.

pub fn check(data: &[u8]) {
    match parser::parse_raw_bytes(data) {
        Ok(raw) => {
            let _ = raw.dump();
            for node in &raw.nodes {
                assert!(node.location.span.end <= data.len(), "span out of bounds");
                assert!(node.location.start_line <= node.location.end_line);
            }
        }
        Err(err) => assert!(err.location.span.start <= data.len(), "error span out of bounds"),
    }
    match parser::parse_bytes(data) {
        Ok(dockerfile) => {
            let _ = dockerfile.to_json_pretty();
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let env: Vec<(String, String)> = vec![("A".into(), "a b".into()), ("E".into(), String::new())];
        for escape in ['\\', '`'] {
            let _ = parser::shell::expand_word_with_matches(text, &env, escape);
            let _ = parser::shell::expand_words(text, &env, escape);
        }
    }
}

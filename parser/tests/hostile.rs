//! Inputs built to exhaust the stack or memory: each must give a clean error (or parse), never
//! a crash. Run on a thread with a 1 MiB stack so a regression shows up even where the main
//! thread's 8 MiB would hide it.

#![allow(clippy::unwrap_used)]

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(1024 * 1024).spawn(f).unwrap().join().unwrap()
}

#[test]
fn onbuild_chain_on_one_line_is_refused_with_its_location() {
    let text = format!("FROM scratch\n{}RUN x\n", "ONBUILD ".repeat(8_000));
    let err = on_small_stack(move || parser::parse_raw_bytes(text.as_bytes()).unwrap_err());
    assert_eq!((err.location.start_line, err.location.column), (2, 1));
    assert_eq!(err.to_string(), "Dockerfile:2:1: ONBUILD nested more than 16 levels deep");
}

#[test]
fn onbuild_chain_over_continuation_lines_is_refused() {
    let text = format!("FROM scratch\n{}RUN x\n", "ONBUILD \\\n".repeat(100_000));
    let err = on_small_stack(move || parser::parse(&text).unwrap_err());
    assert_eq!(err.location.start_line, 2);
    assert!(err.to_string().contains("ONBUILD nested more than 16 levels deep"), "{err}");
}

#[test]
fn short_onbuild_chains_keep_buildkit_behaviour() {
    // the raw parse nests them, the typed parse refuses the chain
    let raw = parser::parse_raw("FROM scratch\nONBUILD ONBUILD ONBUILD RUN x\n").unwrap();
    assert_eq!(raw.nodes[1].dump(), "onbuild (onbuild (onbuild (run \"x\")))");
    let err = parser::parse("FROM scratch\nONBUILD ONBUILD RUN x\n").unwrap_err();
    assert!(err.to_string().contains("chaining ONBUILD"), "{err}");
}

#[test]
fn deep_json_arrays_do_not_crash() {
    for depth in [10_001, 30_000] {
        let text = format!("FROM scratch\nCMD {}\n", "[".repeat(depth));
        // not valid JSON: falls back to the shell form, as BuildKit does
        let json = on_small_stack(move || parser::parse(&text).map(|d| d.to_json_pretty()));
        assert!(json.unwrap().contains("[[[["), "depth {depth}");
        let text = format!("FROM scratch\nCMD {}\"a\"{}\n", "[".repeat(depth), "]".repeat(depth));
        on_small_stack(move || parser::parse(&text).map(|d| d.to_json_pretty())).unwrap();
    }
}

#[test]
fn deep_substitutions_parse_and_fail_to_expand_cleanly() {
    // the parser keeps values as written; expansion (frontend) bounds the nesting
    let value = format!("{}a{}", "${X:-".repeat(10_000), "}".repeat(10_000));
    let text = format!("FROM scratch\nENV Y={value}\n");
    let dockerfile = on_small_stack(move || parser::parse(&text).unwrap());
    assert_eq!(dockerfile.stages.len(), 1);
    let err = on_small_stack(move || {
        parser::shell::expand_word(&value, &parser::shell::EmptyEnv, '\\').unwrap_err()
    });
    assert!(err.to_string().contains("nested more than 100 levels deep"), "{err}");
}

#[test]
fn deep_substitutions_in_a_heredoc_line_are_refused() {
    let word = format!("{}a{}", "${X:-".repeat(10_000), "}".repeat(10_000));
    let text = format!("FROM scratch\nRUN cat <<EOF {word}\nbody\nEOF\n");
    let err = on_small_stack(move || parser::parse(&text).unwrap_err().to_string());
    assert!(err.starts_with("Dockerfile:2:1: invalid heredoc: "), "{err}");
    assert!(err.ends_with("variable substitutions nested more than 100 levels deep"), "{err}");
}

//! BuildKit's own parser and shell fixtures (see testdata/conformance/README.md).
//!
//! Reads `../shared/conformance` when it exists (set `KILN_CONFORMANCE_DIR` to override),
//! otherwise the byte-exact vendored copy in `testdata/conformance`, whose integrity is checked
//! against the sha256 sums in `MANIFEST.tsv` and `VENDORED.tsv`.

use std::path::{Path, PathBuf};

use parser::shell::{Lexer, expand_word, expand_words};
use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KILN_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let shared = repo_root().join("../shared/conformance");
    if shared.join("MANIFEST.tsv").is_file() {
        return shared;
    }
    repo_root().join("testdata/conformance")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every fixture listed in MANIFEST.tsv has the recorded sha256 (in whichever corpus is used).
#[test]
fn corpus_integrity() {
    let dir = corpus_dir();
    let manifest = String::from_utf8(read(&dir.join("MANIFEST.tsv"))).expect("utf-8 manifest");
    let mut checked = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, sha) = (cols[0], cols[5]);
        assert_eq!(sha256_hex(&read(&dir.join(path))), sha, "{path} differs from MANIFEST.tsv");
        checked += 1;
    }
    assert!(checked >= 75, "only {checked} fixtures listed");
}

/// The vendored copy matches the sha256 sums generated when it was vendored.
#[test]
fn vendored_copy_integrity() {
    let dir = repo_root().join("testdata/conformance");
    let sums = String::from_utf8(read(&dir.join("VENDORED.tsv"))).expect("utf-8");
    let mut checked = 0;
    for line in sums.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (path, sha) = line.split_once('\t').expect("path<TAB>sha256");
        assert_eq!(sha256_hex(&read(&dir.join(path))), sha, "vendored {path} was modified");
        checked += 1;
    }
    assert_eq!(checked, 76);
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn positive_parser_cases() {
    let dirs = case_dirs(&corpus_dir().join("buildkit-parser/testfiles"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let input = read(&dir.join("Dockerfile"));
        let expected = String::from_utf8(read(&dir.join("result"))).expect("utf-8 result");
        match parser::parse_raw_bytes(&input) {
            Ok(raw) if raw.dump() == expected => {}
            Ok(raw) => {
                failures.push(format!("{}:\n--- want\n{expected}--- got\n{}", dir.display(), raw.dump()))
            }
            Err(err) => failures.push(format!("{}: {err}", dir.display())),
        }
    }
    assert_eq!(dirs.len(), 33);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_parser_cases() {
    // (case, message, line, column): each rejection must point at the cause.
    let expected = [
        ("empty_dockerfile", "file with no instructions", 1, 1),
        ("env_no_value", "ENV must have two arguments", 3, 1),
        ("only_comments", "file with no instructions", 3, 1),
        (
            "shykes-nested-json",
            "when using JSON array syntax, arrays must be comprised of strings only",
            1,
            1,
        ),
    ];
    let dirs = case_dirs(&corpus_dir().join("buildkit-parser/testfiles-negative"));
    assert_eq!(dirs.len(), expected.len());
    let mut rejected = 0;
    for dir in &dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (_, message, line, column) = expected
            .iter()
            .find(|(case, ..)| *case == name)
            .unwrap_or_else(|| panic!("unexpected case {name}"));
        let input = read(&dir.join("Dockerfile"));
        for err in
            [parser::parse_raw_bytes(&input).expect_err(name), parser::parse_bytes(&input).expect_err(name)]
        {
            assert_eq!(err.kind.to_string(), *message, "{name}");
            assert_eq!((err.location.start_line, err.location.column), (*line, *column), "{name}: {err}");
            assert!(err.location.span.end <= input.len(), "{name}: {err:?}");
        }
        rejected += 1;
    }
    assert_eq!(rejected, 4);
}

#[test]
fn line_numbers() {
    let input = read(&corpus_dir().join("buildkit-parser/testfile-line/Dockerfile"));
    let raw = parser::parse_raw_bytes(&input).expect("parses");
    let got: Vec<(String, usize, usize)> = raw
        .nodes
        .iter()
        .map(|n| (n.keyword.to_lowercase(), n.location.start_line, n.location.end_line))
        .collect();
    assert_eq!(got, [("from".to_string(), 5, 5), ("env".to_string(), 11, 12), ("run".to_string(), 17, 31)]);
    let root_start = raw.nodes.first().map(|n| n.location.start_line);
    let root_end = raw.nodes.last().map(|n| n.location.end_line);
    assert_eq!((root_start, root_end), (Some(5), Some(31)));
}

#[test]
fn env_var_expansion() {
    let text = String::from_utf8(read(&corpus_dir().join("buildkit-shell/envVarTest"))).expect("utf-8");
    let env: Vec<(String, String)> =
        [("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let (mut passed, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for raw_line in text.lines() {
        if raw_line.starts_with('#') || raw_line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw_line.split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "bad test line {raw_line:?}");
        let (platform, input, expected) = (fields[0], fields[1], fields[2]);
        match platform {
            "A" | "U" => {}
            "W" => {
                skipped += 1;
                continue;
            }
            other => panic!("unknown platform {other:?}"),
        }
        let got = expand_word(input, &env, '\\');
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), want) => want != "error" && v == want,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{input:?}: want {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} failed ({passed} passed):\n{}", failures.len(), failures.join("\n"));
    assert_eq!((passed, skipped), (228, 2));
}

#[test]
fn words_splitting() {
    let text = String::from_utf8(read(&corpus_dir().join("buildkit-shell/wordsTest"))).expect("utf-8");
    let mut env: Vec<(String, String)> = Vec::new();
    let mut passed = 0;
    let mut failures = Vec::new();
    for raw_line in text.lines() {
        if raw_line.starts_with('#') {
            continue;
        }
        if let Some(def) = raw_line.strip_prefix("ENV ") {
            let (k, v) = def.trim_start_matches(' ').split_once('=').expect("NAME=VALUE");
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let (input, expected) = raw_line.split_once('|').expect("one |");
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = expand_words(input, &env, '\\').unwrap_or_else(|_| vec!["error".to_string()]);
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!("{input:?}: want {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} failed ({passed} passed):\n{}", failures.len(), failures.join("\n"));
    assert_eq!(passed, 24);
}

/// The raw-quote lexer mode keeps quotes (used for heredoc detection).
#[test]
fn raw_quote_mode_keeps_quotes() {
    let lexer = Lexer { raw_quotes: true, ..Lexer::new('\\') };
    let got = lexer.process("a'b c'\"d\"", &parser::shell::EmptyEnv).expect("expands");
    assert_eq!(got.words, ["a'b c'\"d\""]);
}

/// The typed parser accepts the positive corpus files that are complete Dockerfiles and
/// rejects the others (fragments without FROM, made-up flags) with the error BuildKit's
/// `instructions.Parse` gives.
#[test]
fn positive_cases_through_the_typed_parser() {
    let expected_errors = [
        ("flags", "unknown flag: --user"),
        ("health", "HEALTHCHECK requires at least one argument"),
        ("jeztah-invalid-json-json-inside-string", "no build stage in current context"),
        ("jeztah-invalid-json-json-inside-string-double", "no build stage in current context"),
        ("jeztah-invalid-json-single-quotes", "no build stage in current context"),
        ("jeztah-invalid-json-unterminated-bracket", "no build stage in current context"),
        ("jeztah-invalid-json-unterminated-string", "no build stage in current context"),
        ("json", "no build stage in current context"),
    ];
    let mut accepted = 0;
    for dir in case_dirs(&corpus_dir().join("buildkit-parser/testfiles")) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let result = parser::parse_bytes(&read(&dir.join("Dockerfile")));
        match expected_errors.iter().find(|(case, _)| *case == name) {
            Some((_, message)) => {
                let err = result.expect_err(&name);
                assert!(err.to_string().contains(message), "{name}: {err}");
            }
            None => {
                let dockerfile = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!dockerfile.stages.is_empty(), "{name}");
                accepted += 1;
            }
        }
    }
    assert_eq!(accepted, 25);
}

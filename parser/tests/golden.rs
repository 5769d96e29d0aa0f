//! Golden tests: every directory under `testdata/parser/` holds a `Dockerfile` and the expected
//! outputs, so a case needs no code:
//! - `buildkit.out`: BuildKit's AST dump (or `error: …` when the line parser rejects the file);
//! - `ast.json`: the typed AST, or `error.txt` with the located error when it is rejected.
//!
//! Run with `KILN_BLESS=1` to (re)write the expected files after reviewing a change (refused when
//! `CI=true`: CI must compare, never rewrite).

use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/parser")
}

fn outputs(input: &[u8]) -> (String, (&'static str, String)) {
    let buildkit = match parser::parse_raw_bytes(input) {
        Ok(raw) => raw.dump(),
        Err(err) => format!("error: {err}\n"),
    };
    let typed = match parser::parse_bytes(input) {
        Ok(dockerfile) => ("ast.json", dockerfile.to_json_pretty() + "\n"),
        Err(err) => {
            let loc = err.location;
            let text = format!(
                "error: {err}\nlines: {}-{}\nspan: {}..{}\n",
                loc.start_line, loc.end_line, loc.span.start, loc.span.end
            );
            ("error.txt", text)
        }
    };
    (buildkit, typed)
}

/// `KILN_BLESS=1`, refused under `CI=true` so a CI run can never rewrite and pass.
fn bless() -> bool {
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let ci = std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1");
    assert!(!(bless && ci), "KILN_BLESS=1 is refused when CI=true: bless goldens locally and commit them");
    bless
}

#[test]
fn golden_cases() {
    let bless = bless();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("testdata/parser exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 70, "only {} golden cases", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        let input = std::fs::read(dir.join("Dockerfile")).expect("read Dockerfile");
        let (buildkit, (typed_name, typed)) = outputs(&input);
        let other = if typed_name == "ast.json" { "error.txt" } else { "ast.json" };
        if bless {
            std::fs::write(dir.join("buildkit.out"), &buildkit).expect("write buildkit.out");
            std::fs::write(dir.join(typed_name), &typed).expect("write typed output");
            let _ = std::fs::remove_file(dir.join(other));
            continue;
        }
        for (file, got) in [("buildkit.out", &buildkit), (typed_name, &typed)] {
            match std::fs::read_to_string(dir.join(file)) {
                Ok(want) if want == *got => {}
                Ok(want) => {
                    failures.push(format!("{}/{file}:\n--- want\n{want}--- got\n{got}", dir.display()))
                }
                Err(_) => {
                    failures.push(format!("{}/{file} is missing (run with KILN_BLESS=1)", dir.display()))
                }
            }
        }
        if dir.join(other).exists() {
            failures.push(format!("{}/{other} is stale", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{} golden mismatches:\n{}", failures.len(), failures.join("\n"));
}

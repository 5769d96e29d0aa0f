//! Replays the fuzz target's checks (`fuzz/checks/parse.rs`) on every committed input of the
//! `parse` target: the corpus `fuzz/corpus/parse/` (what the fuzzer reached so far) and the
//! crashes it ever found, `fuzz/regressions/parse/` (`bench/fuzz.sh` copies each new crash
//! there, so a fixed crash stays fixed).

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/parse.rs"]
mod checks;

fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

fn replay(files: &[PathBuf]) {
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let result = std::panic::catch_unwind(|| checks::check(&data));
        assert!(result.is_ok(), "{} fails the fuzz checks (see the panic above)", file.display());
    }
}

#[test]
fn fuzz_corpus_replays_cleanly() {
    let files = inputs("corpus/parse");
    // the committed corpus: the golden Dockerfiles as seeds plus what fuzzing found
    assert!(files.len() >= 100, "only {} corpus inputs", files.len());
    replay(&files);
}

#[test]
fn fuzz_crashes_stay_fixed() {
    replay(&inputs("regressions/parse"));
}

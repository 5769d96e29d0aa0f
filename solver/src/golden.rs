//! Golden-file comparison for tests: `KILN_BLESS=1` rewrites the files (refused when `CI=true`).

use std::path::PathBuf;

/// `testdata/solver/<rel>` in the repository.
pub(crate) fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/solver").join(rel)
}

/// `KILN_BLESS=1`; panics under `CI=true` (CI compares, it never rewrites goldens).
pub(crate) fn bless_requested() -> bool {
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let ci = std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1");
    assert!(!(bless && ci), "KILN_BLESS=1 is refused when CI=true: bless goldens locally and commit them");
    bless
}

/// Compares `actual` with the golden file, or rewrites it when `KILN_BLESS=1`.
pub(crate) fn check(rel: &str, actual: &str) {
    let file = path(rel);
    if bless_requested() {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create golden dir");
        }
        std::fs::write(&file, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("read golden file {} ({e}); run with KILN_BLESS=1 to create it", file.display())
    });
    assert!(
        expected == actual,
        "golden file {} differs (KILN_BLESS=1 to update)\n--- expected\n{expected}\n--- actual\n{actual}",
        file.display()
    );
}

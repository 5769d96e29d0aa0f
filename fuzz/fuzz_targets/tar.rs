//! Fuzz target: a hostile layer archive (plain, gzip or zstd) applied with cache's
//! `apply_tar`, in both modes, must never panic and never create anything outside the
//! destination directory; applying it a second time (over the first result, as when a chain is
//! flattened) must not panic either.
//!
//! Run (as root, so device nodes and trusted xattrs are exercised as in production):
//! `cargo +nightly fuzz run tar fuzz/corpus/tar fuzz/seeds/tar -- -max_len=65536`.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cache::apply::{ApplyMode, apply_tar};
use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fn scratch() -> PathBuf {
    let base = std::env::var_os("KILN_FUZZ_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    base.join(format!("kiln-fuzz-tar-{}-{n}", std::process::id()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn apply(data: &[u8], dest: &Path, mode: ApplyMode) {
    match cache::compress::decompress(data) {
        Ok(reader) => {
            let _ = apply_tar(reader, dest, mode).map_err(|err| err.to_string());
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for mode in [ApplyMode::Overlay, ApplyMode::Merge] {
        let outer = scratch();
        let dest = outer.join("dest");
        std::fs::create_dir_all(&dest).expect("create scratch directory");
        apply(data, &dest, mode);
        apply(data, &dest, ApplyMode::Merge);
        assert_eq!(names(&outer), ["dest"], "the archive created something outside the destination");
        std::fs::remove_dir_all(&outer).expect("remove scratch directory");
    }
});

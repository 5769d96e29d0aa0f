//! Fuzz target: no input may make the parser (raw and typed), the BuildKit dump, the JSON
//! output or the shell expander panic, and every reported location must lie inside the input
//! (the checks live in `fuzz/checks/parse.rs`, shared with the regression test).
//!
//! Run: `bench/fuzz.sh parse` (bounded, with the committed corpus `fuzz/corpus/parse/`), or
//! `cargo +nightly fuzz run parse fuzz/corpus/parse -- -max_len=4096` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/parse.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));

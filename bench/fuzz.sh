#!/bin/sh
# Fuzzing with a trace: runs each fuzz target of fuzz/ for a bounded time (default 60 s each)
# on its committed corpus (fuzz/corpus/TARGET/, seeded from the goldens), merges what it reached
# back into that corpus (minimised: commit the change), and turns every crash into a regression
# input (fuzz/regressions/TARGET/, replayed by `cargo test`, e.g. parser/tests/fuzz_regressions.rs)
# — then exits 1 naming the crashes.
#   bench/fuzz.sh [TARGET…]        (env: FUZZ_SECONDS=60, FUZZ_MAX_LEN=4096)
# Needs the nightly toolchain (`rustup toolchain install nightly`) and a C++ compiler; uses
# `cargo fuzz` when installed, else the same sanitizer-coverage flags directly.
set -eu
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
max_len=${FUZZ_MAX_LEN:-4096}
targets=$*
if [ -z "$targets" ]; then
    targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v -- '-fuzz$')
fi
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
if cargo fuzz --version >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    for t in $targets; do cargo +nightly fuzz build -O "$t" >&2; done
    bin_dir=fuzz/target/$triple/release
else
    RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
        cargo +nightly build --release --manifest-path fuzz/Cargo.toml --target "$triple" >&2
    bin_dir=fuzz/target/$triple/release
fi

status=0
for t in $targets; do
    corpus=fuzz/corpus/$t
    regressions=fuzz/regressions/$t
    artifacts=$(mktemp -d "/tmp/kiln-fuzz-$t.XXXXXX")
    new=$(mktemp -d "/tmp/kiln-fuzz-$t-new.XXXXXX")
    mkdir -p "$corpus" "$regressions"
    echo "== $t: ${seconds}s on $(find "$corpus" -type f | wc -l) corpus inputs" >&2
    # new inputs go to $new; the committed corpus is only read (merged below)
    "$bin_dir/$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$new" "$corpus" "$regressions" >&2 || true
    crashes=$(find "$artifacts" -type f)
    if [ -n "$crashes" ]; then
        for c in $crashes; do
            cp "$c" "$regressions/"
            echo "CRASH $t: $regressions/$(basename "$c")" >&2
        done
        status=1
    fi
    # keep only inputs that add coverage (libFuzzer's merge) in the committed corpus
    "$bin_dir/$t" -merge=1 -max_len="$max_len" -timeout=10 "$corpus" "$new" >&2 2>/dev/null || true
    echo "== $t: $(find "$corpus" -type f | wc -l) corpus inputs after merging" >&2
    rm -rf "$artifacts" "$new"
done
if [ "$status" -ne 0 ]; then
    echo "crashes copied to fuzz/regressions/: fix them; cargo test replays them from now on" >&2
fi
exit "$status"

#!/bin/sh
# Benchmark: `kiln push` and `kiln pull` of an image with one 200 MB incompressible layer against
# Debian's docker-registry on 127.0.0.1 (started and stopped here). Reports wall time and peak
# RSS (and CPU time) of each command, measured with /usr/bin/time -v. Run once (under nice); it
# builds kiln in release mode.
#   bench/registry.sh            (env: KILN=path/to/kiln to skip the build, SIZE_MB=200)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
size_mb=${SIZE_MB:-200}
if [ -z "${KILN:-}" ]; then
    cargo build --release --locked -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-registry.XXXXXX)
trap cleanup_work EXIT INT TERM
start_registry "$work"

# One incompressible layer: random bytes, stored uncompressed-equivalent by gzip.
mkdir -p "$work/context"
head -c "$((size_mb * 1024 * 1024))" /dev/urandom > "$work/context/random.bin"
tar -C "$work/context" -cf "$work/layer.tar" .
image=$reg/bench/random:1
"$KILN" --root "$work/src" import "$work/layer.tar" "$image" >/dev/null

measure() { # name, command...
    name=$1; shift
    /usr/bin/time -v "$@" >/dev/null 2>"$work/$name.time" || { cat "$work/$name.time" >&2; exit 1; }
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/$name.time")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$name.time")
    user=$(sed -n 's/.*User time (seconds): //p' "$work/$name.time")
    sys=$(sed -n 's/.*System time (seconds): //p' "$work/$name.time")
    printf '%-5s wall %s  peak RSS %s MB  cpu user %ss sys %ss\n' "$name" "$wall" "$((rss / 1024))" "$user" "$sys"
}
layer_mb=$(du -m "$work/src/content/blobs/sha256" | tail -1 | cut -f1)
echo "image $image: one layer of ${size_mb} MiB random data (blobs ${layer_mb} MB)"
measure push "$KILN" --root "$work/src" push -q "$image"
measure pull "$KILN" --root "$work/dst" pull -q "$image"

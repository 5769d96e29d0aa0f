#!/bin/sh
# Benchmark: the container runtime — wall time of
#   run-d      `kiln run -d` until it returns (the process runs: the monitor reported)
#   exec       `kiln exec C true` in a running container
#   stop-t1    `kiln stop -t 1` of a PID 1 that ignores SIGTERM (grace, then SIGKILL)
#   ps-100     `kiln ps -a` with 100 containers (created, not started)
# and the peak RSS (VmHWM) of one container monitor. Fresh --root with a busybox image; runs
# once; builds kiln in release mode unless KILN is set. Compare docker/podman on the same
# machine where installed (`docker run -d`, `docker exec`, `docker stop -t 1`, conmon's RSS).
#   bench/runtime.sh          (env: KILN=path/to/kiln)
set -eu
cd "$(dirname "$0")/.."
if [ -z "${KILN:-}" ]; then
    cargo build --release -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-runtime.XXXXXX)
k() { "$KILN" --root "$work/root" "$@"; }
cleanup() {
    for id in $(k ps -aq --no-trunc 2>/dev/null); do k rm -f -v "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
k import "$work/rootfs.tar" busybox >/dev/null
k run --rm --network none busybox true # unpack the layer once

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

t0=$(now); id=$(k run -d --network none busybox sleep 1000); t1=$(now)
echo "run-d     $(elapsed "$t0" "$t1") s"
t0=$(now); k exec "$id" true; t1=$(now)
echo "exec      $(elapsed "$t0" "$t1") s"
monitor=$(sed -n 's/.*"monitor": "\([0-9]*\) .*/\1/p' "$work/root/runtime-v1/containers/$id/state.json")
echo "monitor   $(grep VmHWM /proc/"$monitor"/status | tr -s ' ' | cut -d' ' -f2-) peak RSS"
# what one more container costs: the binary's pages are shared by every monitor, so with ten
# monitors the proportional set size (PSS) and the private pages are the per-container memory
extra=''
i=0
while [ $i -lt 9 ]; do extra="$extra $(k run -d --network none busybox sleep 1000)"; i=$((i + 1)); done
awk '/^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { q += $2 } END { printf "monitor   %d kB PSS, %d kB private (one of ten)\n", p, q }' \
    /proc/"$monitor"/smaps_rollup
for c in $extra; do k rm -f "$c" >/dev/null; done
t0=$(now); k stop -t 1 "$id" >/dev/null; t1=$(now)
echo "stop-t1   $(elapsed "$t0" "$t1") s"
k rm "$id" >/dev/null
i=0
while [ $i -lt 100 ]; do k create --network none busybox true >/dev/null; i=$((i + 1)); done
t0=$(now); k ps -a >/dev/null; t1=$(now)
echo "ps-100    $(elapsed "$t0" "$t1") s"

#!/bin/sh
# Benchmark: container networking —
#   start-none / start-default   `kiln run --rm busybox true` wall time, median of 50, on
#                                 --network none and on the default bridge network
#   publish-throughput            1 GiB sent by the host to a published port (127.0.0.1:PORT,
#                                 DNAT) and to the container's address directly; the ratio
#                                 published / direct
# Fresh --root with a busybox image; builds kiln in release mode unless KILN is set. Traffic
# stays on this host (loopback and kiln's bridge). A benchmark: never run in CI.
#   bench/network.sh          (env: KILN=path/to/kiln, RUNS=50)
set -eu
cd "$(dirname "$0")/.."
if [ -z "${KILN:-}" ]; then
    cargo build --release -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
runs=${RUNS:-50}
work=$(mktemp -d /tmp/kiln-bench-network.XXXXXX)
k() { "$KILN" --root "$work/root" "$@"; }
cleanup() {
    for id in $(k ps -aq --no-trunc 2>/dev/null); do k rm -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
k import "$work/rootfs.tar" busybox >/dev/null

ms() { echo $(($(date +%s%N) / 1000000)); }
for mode in none default; do
    k run --rm --network "$mode" busybox true
    times=''
    i=0
    while [ $i -lt "$runs" ]; do
        t0=$(ms); k run --rm --network "$mode" busybox true; t1=$(ms)
        times="$times $((t1 - t0))"
        i=$((i + 1))
    done
    median=$(echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    echo "start-$mode  median ${median} ms of $runs"
done

id=$(k run -d -p 127.0.0.1::80 busybox sh -c 'while true; do nc -l -p 80 > /dev/null; done')
port=$(k port "$id" 80 | head -1 | cut -d: -f2)
address=$(k inspect -f '{{.State.Pid}}' "$id")
address=$(nsenter -t "$address" -n ip -4 -o addr show eth0 | awk '{ split($4, a, "/"); print a[1] }')
send() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
chunk = b"\0" * (1 << 20)
for attempt in range(100):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
start = time.time()
for _ in range(1024):
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(f"{1024 / (time.time() - start):.0f}")
PY
}
published=$(send 127.0.0.1 "$port")
direct=$(send "$address" 80)
echo "publish-throughput  published ${published} MiB/s  direct ${direct} MiB/s  ratio $(awk -v p="$published" -v d="$direct" 'BEGIN { printf "%.2f", p / d }')"

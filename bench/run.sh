#!/bin/sh
# Benchmark: `kiln run --rm busybox true` — median wall time over RUNS runs (default 50), and
# the split reported by the executor (KILN_LOG=debug "sandbox finished": setup = spawn until
# exec, process = exec until exit reported, teardown = reaping + cgroup/lease/state removal);
# "cli" is the rest (process start, store open, image resolution, snapshot check).
# Measured for --network none and default (bridge + NAT), plus crun on the same rootfs for
# reference, and the peak RSS of one kiln run (/usr/bin/time -v). Run once; builds kiln in
# release mode unless KILN is set.
#   bench/run.sh            (env: KILN=path/to/kiln, RUNS=50)
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-50}
if [ -z "${KILN:-}" ]; then
    cargo build --release -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
# the default bridge stays once made (like docker0): remove it afterwards unless it was there
had_bridge=no
[ -e /sys/class/net/kiln0 ] && had_bridge=yes
cleanup() {
    rm -rf "$work"
    if [ "$had_bridge" = no ] && [ -e /sys/class/net/kiln0 ]; then
        ip link del kiln0 || true
        iptables -t nat -D POSTROUTING -s 10.89.0.0/16 ! -o kiln0 -j MASQUERADE 2>/dev/null || true
        iptables -D FORWARD -i kiln0 -j ACCEPT 2>/dev/null || true
        iptables -D FORWARD -o kiln0 -j ACCEPT 2>/dev/null || true
        rm -rf /run/kiln/ipam/kiln0
    fi
}
trap cleanup EXIT
root=$work/root
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$KILN" --root "$root" import "$work/rootfs.tar" busybox >/dev/null

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_kiln() {
    network=$1
    : > "$work/total" ; : > "$work/setup" ; : > "$work/process" ; : > "$work/teardown"
    for _ in 1 2 3; do "$KILN" --root "$root" run --rm --network "$network" busybox true; done
    i=0
    while [ $i -lt "$runs" ]; do
        start=$(date +%s%N)
        KILN_LOG=debug NO_COLOR=1 "$KILN" --root "$root" run --rm --network "$network" busybox true 2>"$work/log"
        end=$(date +%s%N)
        echo $(( (end - start) / 1000 )) >> "$work/total"
        line=$(sed 's/\x1b\[[0-9;]*m//g' "$work/log" | grep 'sandbox finished')
        for part in setup process teardown; do
            echo "$line" | sed "s/.*${part}_us=\([0-9]*\).*/\1/" >> "$work/$part"
        done
        i=$((i + 1))
    done
    total=$(median < "$work/total"); setup=$(median < "$work/setup")
    process=$(median < "$work/process"); teardown=$(median < "$work/teardown")
    awk -v n="$network" -v t="$total" -v s="$setup" -v p="$process" -v d="$teardown" -v r="$runs" 'BEGIN {
        printf "kiln run --rm --network %-7s busybox true: median %.1f ms over %d runs (setup %.1f, process %.1f, teardown %.1f, cli+rest %.1f ms)\n",
            n, t / 1000, r, s / 1000, p / 1000, d / 1000, (t - s - p - d) / 1000 }'
}

bench_kiln none
bench_kiln default

if command -v crun >/dev/null 2>&1; then
    bundle=$work/bundle
    mkdir -p "$bundle"
    cp -a "$work/rootfs" "$bundle/rootfs"
    (cd "$bundle" && crun spec)
    sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/' "$bundle/config.json"
    : > "$work/crun"
    i=0
    while [ $i -lt "$runs" ]; do
        start=$(date +%s%N)
        if ! crun run --bundle "$bundle" "kiln-bench-$$-$i" </dev/null 2>"$work/crun.err"; then
            # e.g. "cgroups in hybrid mode not supported" on this machine's layout
            echo "crun reference skipped: $(cat "$work/crun.err")"
            break
        fi
        end=$(date +%s%N)
        echo $(( (end - start) / 1000 )) >> "$work/crun"
        i=$((i + 1))
    done
    [ -s "$work/crun" ] && awk -v t="$(median < "$work/crun")" -v r="$runs" 'BEGIN { printf "crun run (same rootfs, create→delete): median %.1f ms over %d runs\n", t / 1000, r }' || true
fi

/usr/bin/time -v "$KILN" --root "$root" run --rm --network none busybox true 2>"$work/time" || true
awk -F': ' '/Maximum resident set size/ { printf "peak RSS of one kiln run: %d KiB\n", $2 }' "$work/time"

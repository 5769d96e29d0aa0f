#!/bin/sh
# Benchmark: a 10-step, 3-stage build on a fresh store, without and with `--cache-from` a registry
# cache (exported by a first store with `--cache-to type=registry,mode=max`), against Debian's
# docker-registry on 127.0.0.1 (started and stopped here). The base image comes from the same
# registry. Reports wall time, steps run / cached, and layers fetched from the cache.
#   bench/build-cache.sh        (env: KILN=path/to/kiln, default target/debug/kiln; run as root)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
KILN=${KILN:-$PWD/target/debug/kiln}
work=$(mktemp -d /tmp/kiln-bench-cache.XXXXXX)
trap cleanup_work EXIT INT TERM
start_registry "$work"

sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs" >/dev/null
tar --sort=name --mtime=@0 -C "$work/rootfs" -cf "$work/busybox.tar" .
"$KILN" --root "$work/a" import "$work/busybox.tar" "$reg/base/busybox:1" >/dev/null
"$KILN" --root "$work/a" push -q "$reg/base/busybox:1" >/dev/null

mkdir -p "$work/ctx"
echo "deps v1" > "$work/ctx/deps.txt"
echo "src v1" > "$work/ctx/src.txt"
cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM $reg/base/busybox:1 AS deps
COPY deps.txt /deps.txt
RUN sleep 1 && dd if=/dev/urandom of=/deps.bin bs=1M count=16 2>/dev/null
RUN sleep 1 && sha256sum /deps.bin > /deps.sum
FROM $reg/base/busybox:1 AS build
COPY --from=deps /deps.sum /deps.sum
COPY src.txt /src.txt
RUN sleep 1 && cat /deps.sum /src.txt > /app
FROM $reg/base/busybox:1
COPY --from=build /app /app
RUN sleep 1 && sha256sum /app > /app.sum
RUN sleep 1 && echo done >> /app.sum
DOCKERFILE

build() { # name, extra args...
    name=$1; shift
    start=$(date +%s.%N)
    "$KILN" --root "$work/$name" build --progress plain "$@" -o "type=local,dest=$work/out-$name" "$work/ctx" \
        >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    ran=$(grep -c '^#[0-9]* DONE' "$work/$name.log" || true)
    cached=$(grep -c '^#[0-9]* CACHED' "$work/$name.log" || true)
    fetched=$(sed -n 's/^cache import: .*fetched \(.*\)$/\1/p' "$work/$name.log")
    printf '%-28s wall %6.2fs  steps done %2s cached %2s  %s\n' "$name" "$(echo "$end - $start" | bc)" \
        "$ran" "$cached" "${fetched:+fetched $fetched}"
}
build a --cache-to "type=registry,ref=$reg/cache/app:buildcache,mode=max"
build fresh-without-cache
build fresh-with-cache-from --cache-from "type=registry,ref=$reg/cache/app:buildcache"

#!/bin/sh
# Benchmark: `kiln build` — wall time and peak RSS (/usr/bin/time -v) of the issue's cases:
#   parallel   four independent stages each sleeping 2 s, gathered by a final stage (cold)
#   10-step    a 10-step Dockerfile whose step 8 COPYs a file: cold / no-change / one edit
#   5000-files 5 000 small files in one COPY: cold / no-change
#   200mb      one 200 MB layer (RUN dd): cold
# Each case starts from a fresh --root with a busybox base image. Run once; builds kiln in
# release mode unless KILN is set. BuildKit's figures on this machine (from the issue):
# parallel 2.99 cold; 10-step 3.98 cold, 0.09 no-change, 0.32 edit; 5000 files 1.84 cold,
# 0.20 no-change; 200 MB 1.43 cold.
#   bench/build.sh          (env: KILN=path/to/kiln)
set -eu
cd "$(dirname "$0")/.."
if [ -z "${KILN:-}" ]; then
    cargo build --release -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

fresh_root() {
    rm -rf "$work/root"
    "$KILN" --root "$work/root" import "$work/rootfs.tar" busybox >/dev/null
}

# measure LABEL CONTEXT [build args…]: one build, prints wall seconds and peak RSS
measure() {
    label=$1; ctx=$2; shift 2
    /usr/bin/time -v -o "$work/time" "$KILN" --root "$work/root" build --progress quiet "$@" "$ctx" \
        >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk -v l="$label" -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%-28s %7.2f s   peak RSS %6.1f MB\n", l, wall, rss / 1024 }' "$work/time"
}

# parallel stages
mkdir -p "$work/parallel"
cat > "$work/parallel/Dockerfile" <<'EOF'
FROM busybox AS a
RUN sleep 2 && echo a > /a
FROM busybox AS b
RUN sleep 2 && echo b > /b
FROM busybox AS c
RUN sleep 2 && echo c > /c
FROM busybox AS d
RUN sleep 2 && echo d > /d
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
COPY --from=c /c /c
COPY --from=d /d /d
EOF
fresh_root
measure "parallel stages cold" "$work/parallel"

# 10 steps, step 8 COPYs an edited file
cp -a testdata/build/cache10 "$work/ten"
fresh_root
measure "10-step cold" "$work/ten"
measure "10-step no-change" "$work/ten"
echo "edit $(date +%s%N)" > "$work/ten/edit.txt"
measure "10-step one edit" "$work/ten"

# 5 000 small files in one COPY
mkdir -p "$work/many/files"
i=0
while [ $i -lt 5000 ]; do
    d=$((i / 100))
    [ -d "$work/many/files/$d" ] || mkdir "$work/many/files/$d"
    echo "file $i" > "$work/many/files/$d/f$i"
    i=$((i + 1))
done
printf 'FROM busybox\nCOPY files /files\n' > "$work/many/Dockerfile"
fresh_root
measure "5000 files cold" "$work/many"
measure "5000 files no-change" "$work/many"

# one 200 MB layer
mkdir -p "$work/big"
printf 'FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null\n' > "$work/big/Dockerfile"
fresh_root
measure "200 MB layer cold" "$work/big"

#!/bin/sh
# Benchmark: kiln against dockerd's BuildKit, in one run, on the cases of issue 16:
#   parallel   four stages each COPYing a context file then sleeping 2 s, gathered by a final stage
#   10-step    testdata/build/cache10 (step 8 COPYs edit.txt)
#   5000-files 5 000 small files in one COPY
#   200mb      one RUN writing 200 MB of random data (after a COPY of an edited stamp file)
#   apt        debian:bookworm + `apt-get install curl` (only when a Debian rootfs can be made:
#              DEBIAN_ROOTFS=path/to/rootfs.tar, or mmdebstrap and a reachable mirror; else skipped)
# Each case: cold (fresh kiln root / pruned BuildKit cache), no-change, one edit. Prints wall
# seconds (median of RUNS runs, default 1) and kiln's peak RSS (/usr/bin/time -v), BuildKit's
# time and the ratio kiln / BuildKit when `docker` (DOCKER=path, default /usr/bin/docker) can
# reach a daemon (DOCKER_HOST or the default socket; this script never starts one). A push case (the 200 MB image to a local
# docker-registry, kiln push against docker push) runs when docker-registry is installed.
# A benchmark: never run in CI.
#   bench/compare.sh        (env: KILN=path/to/kiln, RUNS=3, CASES="parallel 10-step 5000-files 200mb apt push")
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-1}
cases=${CASES:-parallel 10-step 5000-files 200mb apt push}
if [ -z "${KILN:-}" ]; then
    cargo build --release -p kiln >&2
    KILN=$PWD/target/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-compare.XXXXXX)
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

# Debian's docker.io client (/usr/bin/docker) builds with BuildKit by itself; newer clients
# need the buildx plugin
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}
docker_ok=no
if [ -n "$docker" ] && "$docker" info >/dev/null 2>&1; then
    docker_ok=yes
    "$docker" import "$work/rootfs.tar" busybox:latest >/dev/null
else
    echo "(no reachable dockerd: kiln only)"
fi

# wall seconds of the last `timed` call, and its peak RSS in MB
last_wall=0
last_rss=0
timed() {
    /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
    last_wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time")
    last_rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$work/time")
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

kiln_build() { timed "$KILN" --root "$work/root" build --progress quiet -t bench "$@"; }
bk_build() { timed env DOCKER_BUILDKIT=1 "$docker" build -q -t bench "$@"; }

fresh_kiln() {
    rm -rf "$work/root"
    "$KILN" --root "$work/root" import "$work/rootfs.tar" busybox >/dev/null
}
fresh_bk() {
    "$docker" rmi -f bench >/dev/null 2>&1 || true
    "$docker" builder prune -af >/dev/null 2>&1 || true
}

# row LABEL KILN_TIMES KILN_RSS BK_TIMES
row() {
    k=$(echo "$2" | median)
    if [ -n "$4" ]; then
        b=$(echo "$4" | median)
        printf '%-24s kiln %6.2f s  RSS %6s MB   buildkit %6.2f s   ratio %5.2f\n' "$1" "$k" "$3" "$b" \
            "$(awk -v k="$k" -v b="$b" 'BEGIN { print (b > 0) ? k / b : 0 }')"
    else
        printf '%-24s kiln %6.2f s  RSS %6s MB\n' "$1" "$k" "$3"
    fi
}

# run_case NAME CONTEXT EDIT_COMMAND: cold / no-change / one edit, RUNS times each
run_case() {
    name=$1; ctx=$2; edit=$3
    k_cold=''; k_nochange=''; k_edit=''; b_cold=''; b_nochange=''; b_edit=''
    i=0
    while [ $i -lt "$runs" ]; do
        fresh_kiln
        kiln_build "$ctx"; k_cold="$k_cold $last_wall"; r_cold=$last_rss
        kiln_build "$ctx"; k_nochange="$k_nochange $last_wall"; r_nochange=$last_rss
        sh -c "$edit"
        kiln_build "$ctx"; k_edit="$k_edit $last_wall"; r_edit=$last_rss
        if [ "$docker_ok" = yes ]; then
            fresh_bk
            bk_build "$ctx"; b_cold="$b_cold $last_wall"
            bk_build "$ctx"; b_nochange="$b_nochange $last_wall"
            sh -c "$edit"
            bk_build "$ctx"; b_edit="$b_edit $last_wall"
        fi
        i=$((i + 1))
    done
    row "$name cold" "$k_cold" "$r_cold" "$b_cold"
    row "$name no-change" "$k_nochange" "$r_nochange" "$b_nochange"
    row "$name one edit" "$k_edit" "$r_edit" "$b_edit"
}

for case in $cases; do
    case $case in
    parallel)
        mkdir -p "$work/parallel"
        echo 0 > "$work/parallel/edit.txt"
        {
            for s in a b c d; do
                printf 'FROM busybox AS %s\nCOPY edit.txt /e\nRUN sleep 2 && echo %s > /%s\n' "$s" "$s" "$s"
            done
            printf 'FROM busybox\n'
            for s in a b c d; do printf 'COPY --from=%s /%s /%s\n' "$s" "$s" "$s"; done
        } > "$work/parallel/Dockerfile"
        run_case parallel "$work/parallel" "date +%s%N > $work/parallel/edit.txt"
        ;;
    10-step)
        cp -a testdata/build/cache10 "$work/ten"
        run_case 10-step "$work/ten" "date +%s%N > $work/ten/edit.txt"
        ;;
    5000-files)
        mkdir -p "$work/many/files"
        (cd "$work/many/files" && awk 'BEGIN { for (i = 0; i < 5000; i++) { d = int(i / 100); if (i % 100 == 0) system("mkdir " d); f = d "/f" i; print "file " i > f; close(f) } }')
        printf 'FROM busybox\nCOPY files /files\n' > "$work/many/Dockerfile"
        run_case 5000-files "$work/many" "date +%s%N > $work/many/files/7/f777"
        ;;
    200mb)
        mkdir -p "$work/big"
        echo 0 > "$work/big/stamp"
        printf 'FROM busybox\nCOPY stamp /stamp\nRUN dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null\n' \
            > "$work/big/Dockerfile"
        run_case 200mb "$work/big" "date +%s%N > $work/big/stamp"
        ;;
    apt)
        tarball=${DEBIAN_ROOTFS:-}
        if [ -z "$tarball" ] && command -v mmdebstrap >/dev/null 2>&1 \
            && timeout 10 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80' 2>/dev/null; then
            tarball=$work/debian.tar
            mmdebstrap --quiet --variant=minbase bookworm "$tarball" >/dev/null 2>&1 || tarball=
        fi
        if [ -z "$tarball" ]; then
            echo "apt case skipped: no Debian rootfs (set DEBIAN_ROOTFS=rootfs.tar, or install mmdebstrap with a reachable mirror)"
            continue
        fi
        mkdir -p "$work/apt"
        printf 'FROM debian:bookworm\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n' \
            > "$work/apt/Dockerfile"
        k=''; b=''; i=0
        while [ $i -lt "$runs" ]; do
            fresh_kiln
            "$KILN" --root "$work/root" import "$tarball" debian:bookworm >/dev/null
            kiln_build "$work/apt"; k="$k $last_wall"; r=$last_rss
            if [ "$docker_ok" = yes ]; then
                fresh_bk
                "$docker" import "$tarball" debian:bookworm >/dev/null
                bk_build "$work/apt"; b="$b $last_wall"
            fi
            i=$((i + 1))
        done
        row "apt cold" "$k" "$r" "$b"
        ;;
    push)
        if ! command -v docker-registry >/dev/null 2>&1; then
            echo "push case skipped: docker-registry is not installed"
            continue
        fi
        port=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
        cat > "$work/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
        docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
        registry_pid=$!
        until bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do sleep 0.1; done
        fresh_kiln
        kiln_build "$work/big"
        "$KILN" --root "$work/root" tag bench "127.0.0.1:$port/kiln/big:1" >/dev/null
        timed "$KILN" --root "$work/root" push "127.0.0.1:$port/kiln/big:1"
        k=$last_wall; r=$last_rss
        b=''
        if [ "$docker_ok" = yes ]; then
            fresh_bk
            bk_build "$work/big"
            "$docker" tag bench "127.0.0.1:$port/docker/big:1"
            timed "$docker" push -q "127.0.0.1:$port/docker/big:1"
            b=$last_wall
        fi
        row "push 200 MB image" "$k" "$r" "$b"
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=
        ;;
    *)
        echo "unknown case $case" >&2
        exit 2
        ;;
    esac
done

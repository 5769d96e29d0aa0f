#!/bin/bash
# Regenerates the BuildKit reference results in testdata/buildkit-reference/ (and, with `bench`,
# measures BuildKit on the benchmark cases of issue 5).
#
#   scripts/buildkit-reference.sh [cases] [CASE...]   # rebuild the outputs of all (or the named) cases
#   scripts/buildkit-reference.sh bench               # time BuildKit on the benchmark cases -> BENCH.md
#
# NEVER run this in CI and never from a test: it needs dockerd (Debian's docker.io, BuildKit inside
# dockerd 20.10), root, and minutes of CPU. kiln's tests only read the files it wrote.
#
# What it does:
#   * starts its own dockerd (data root /var/lib/kiln-bkref, exec root /run/kiln-bkref, socket
#     /run/kiln-bkref/docker.sock) on its own bridge `bkref0` (172.31.250.1/24) with --iptables=false,
#     so it touches neither docker0 nor iptables; on exit it stops that dockerd by PID, deletes the
#     bridge and the data root. Set BKREF_DOCKER_HOST=unix:///path.sock to use a dockerd that is
#     already running instead (it is then left alone).
#   * imports the base image busybox:latest from testdata/rootfs/busybox-rootfs.sh (no network: the
#     builder in dockerd resolves `FROM busybox` from its local image store).
#   * for each case directory testdata/buildkit-reference/<case>/ (Dockerfile, context/, optional
#     build-args, flags, prepare.sh, serve/, expect-failure), prunes the build cache, runs a cold build
#     and a no-change rebuild with --progress=plain, then `docker save`s the image and writes
#     config.json, history.json, layers.txt, contents.txt and progress.txt. The format is described in
#     testdata/buildkit-reference/README.md. Cases with serve/ need 127.0.0.1:39117 free.
#   * `bench` generates the benchmark Dockerfiles under $BKREF_WORK (default /tmp/kiln-bkref), times one
#     run of each and prints table rows for testdata/buildkit-reference/BENCH.md.
# Needs: docker.io, busybox-static, python3, iproute2. Scratch files go to $BKREF_WORK.
# Only /usr/bin/docker is used (the client in /usr/local/bin has no BuildKit support).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF="$ROOT/testdata/buildkit-reference"
WORK=${BKREF_WORK:-/tmp/kiln-bkref}
DOCKER=/usr/bin/docker
BRIDGE=bkref0
DATA_ROOT=/var/lib/kiln-bkref
EXEC_ROOT=/run/kiln-bkref
export DOCKER_BUILDKIT=1
# value for the build-arg given without a value in env-arg-scope/build-args
export FROM_HOSTENV=from-host-environment
# loopback port of the HTTP server of cases with a serve/ directory (add-url); must be free
HTTP_PORT=39117

mode=cases
if [ "${1:-}" = bench ] || [ "${1:-}" = cases ]; then
    mode=$1
    shift
fi

[ "$(id -u)" = 0 ] || { echo "buildkit-reference.sh: must run as root" >&2; exit 1; }
[ -x "$DOCKER" ] || { echo "buildkit-reference.sh: $DOCKER missing (apt-get install docker.io)" >&2; exit 1; }
mkdir -p "$WORK"

dockerd_pid=
made_bridge=
cleanup() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
        # dockerd may leave its own bind mount of the data root behind
        while mountpoint -q "$DATA_ROOT" 2>/dev/null; do umount "$DATA_ROOT" || break; done
        rm -rf "$DATA_ROOT" "$EXEC_ROOT"
    fi
    if [ -n "$made_bridge" ]; then ip link del "$BRIDGE" 2>/dev/null || true; fi
}
trap cleanup EXIT

start_dockerd() {
    if [ -n "${BKREF_DOCKER_HOST:-}" ]; then
        export DOCKER_HOST=$BKREF_DOCKER_HOST
        return
    fi
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        made_bridge=1
        ip addr add 172.31.250.1/24 dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    mkdir -p "$EXEC_ROOT"
    export DOCKER_HOST=unix://$EXEC_ROOT/docker.sock
    # niced: the machine is shared. Never use --bridge=none: dockerd then deletes the host's docker0.
    setsid nice -n 10 dockerd --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" -H "$DOCKER_HOST" \
        --pidfile "$EXEC_ROOT/dockerd.pid" --iptables=false --ip-masq=false --bridge="$BRIDGE" \
        >"$WORK/dockerd.log" 2>&1 </dev/null &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        "$DOCKER" version >/dev/null 2>&1 && return
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 1
    done
    echo "buildkit-reference.sh: dockerd did not start, see $WORK/dockerd.log" >&2
    exit 1
}

import_busybox() {
    if "$DOCKER" image inspect busybox:latest >/dev/null 2>&1; then return; fi
    rm -rf "$WORK/rootfs"
    "$ROOT/testdata/rootfs/busybox-rootfs.sh" "$WORK/rootfs"
    tar -C "$WORK/rootfs" -c . | "$DOCKER" import - busybox:latest >/dev/null
}

# Timings, vertex digests and image IDs change from run to run: replace them.
normalise_progress() {
    sed -E \
        -e 's/^(#[0-9]+) sha256:[0-9a-f]{64}$/\1 sha256:<vertex-digest>/' \
        -e 's/^(#[0-9]+) [0-9]+\.[0-9]+ /\1 <t> /' \
        -e 's/(DONE|CANCELED) [0-9]+\.[0-9]+s/\1 <t>s/' \
        -e 's/ [0-9]+\.[0-9]+s done$/ <t>s done/' \
        -e 's/sha256:[0-9a-f]{64}/sha256:<digest>/g'
}

build_args_of() { # CASE_DIR -> docker build arguments, one per line
    local d=$1 line
    if [ -f "$d/build-args" ]; then
        while IFS= read -r line; do [ -n "$line" ] && printf '%s\n' --build-arg "$line"; done <"$d/build-args"
    fi
    if [ -f "$d/flags" ]; then
        while IFS= read -r line; do [ -n "$line" ] && printf '%s\n' "$line"; done <"$d/flags"
    fi
    return 0
}

run_case() {
    local c=$1 d="$REF/$1" out="$WORK/$1" args=() rc
    [ -f "$d/Dockerfile" ] || { echo "no case $c" >&2; return 1; }
    mapfile -t args < <(build_args_of "$d")
    rm -rf "$out"
    mkdir -p "$out"
    # git keeps neither empty directories nor directory modes nor owners: recreate them
    mkdir -p "$d/context"
    if [ -f "$d/prepare.sh" ]; then (cd "$d" && sh ./prepare.sh); fi
    # a case with serve/ gets those files over HTTP on 127.0.0.1:$HTTP_PORT (dockerd fetches ADD URLs
    # from the host network namespace)
    local http_pid=
    if [ -d "$d/serve" ]; then
        python3 -m http.server --bind 127.0.0.1 --directory "$d/serve" "$HTTP_PORT" >"$out/http.log" 2>&1 &
        http_pid=$!
        for _ in $(seq 1 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && break
            sleep 0.1
        done
    fi
    "$DOCKER" rmi -f "kiln-ref/$c:latest" >/dev/null 2>&1 || true
    "$DOCKER" builder prune -af >/dev/null
    echo "== $c"
    # run from the case directory: --secret src= paths in `flags` are relative to it
    rc=0
    (cd "$d" && "$DOCKER" build --progress=plain -f Dockerfile -t "kiln-ref/$c:latest" "${args[@]}" context) \
        >"$out/cold.log" 2>&1 || rc=$?
    if [ -f "$d/expect-failure" ]; then
        if [ -f "$d/prepare.sh" ]; then chown -R --reference="$REF" "$d/context"; fi
        # an error case: only the failing build's output (and its exit code) is the reference
        {
            echo "# docker build --progress=plain -f Dockerfile -t kiln-ref/$c:latest ${args[*]} context"
            echo "# BuildKit of $("$DOCKER" version --format 'dockerd {{.Server.Version}}'); timings as <t>"
            echo "## failing build, exit code $rc"
            normalise_progress <"$out/cold.log"
        } >"$d/progress.txt"
        rm -f "$d/config.json" "$d/history.json" "$d/layers.txt" "$d/contents.txt"
        if [ "$rc" = 0 ]; then
            echo "   expected a failure but the build succeeded" >&2
            return 1
        fi
        return 0
    fi
    (cd "$d" && "$DOCKER" build --progress=plain -f Dockerfile -t "kiln-ref/$c:latest" "${args[@]}" context) \
        >"$out/warm.log" 2>&1 || rc=$?
    if [ -n "$http_pid" ]; then kill "$http_pid"; wait "$http_pid" 2>/dev/null || true; fi
    if [ -f "$d/prepare.sh" ]; then chown -R --reference="$REF" "$d/context"; fi
    {
        echo "# docker build --progress=plain -f Dockerfile -t kiln-ref/$c:latest ${args[*]} context"
        echo "# BuildKit of $("$DOCKER" version --format 'dockerd {{.Server.Version}}'); timings as <t>"
        echo "## cold build (build cache pruned)"
        normalise_progress <"$out/cold.log"
        echo "## no-change rebuild"
        normalise_progress <"$out/warm.log"
    } >"$d/progress.txt"
    if [ "$rc" != 0 ]; then
        echo "   build failed, see $d/progress.txt" >&2
        return 1
    fi
    "$DOCKER" image inspect "kiln-ref/$c:latest" --format '{{json .Config}}' >"$out/inspect-config.json"
    "$DOCKER" image inspect busybox:latest --format '{{json .RootFS.Layers}}' >"$out/base-layers.json"
    mkdir -p "$out/save"
    "$DOCKER" save "kiln-ref/$c:latest" | tar -x -C "$out/save"
    python3 - "$out" "$d" <<'PY'
import hashlib, json, os, stat, sys, tarfile

out, case = sys.argv[1], sys.argv[2]
save = os.path.join(out, "save")
manifest = json.load(open(os.path.join(save, "manifest.json")))[0]
raw = json.load(open(os.path.join(save, manifest["Config"])))
inspect = json.load(open(os.path.join(out, "inspect-config.json")))
base_layers = json.load(open(os.path.join(out, "base-layers.json")))

def norm_created(entry):
    entry = dict(entry)
    if "created" in entry:
        entry["created"] = "<created>"
    return entry

image = {k: v for k, v in raw.items()}
image["created"] = "<created>" if "created" in raw else None
image["history"] = [norm_created(h) for h in raw.get("history", [])]
diff_ids = raw["rootfs"]["diff_ids"]
image["rootfs"] = {"type": raw["rootfs"]["type"], "diff_ids": "<%d diff_ids>" % len(diff_ids)}
doc = {
    "inspect_config": inspect,
    "image": image,
    "diff_ids_count": len(diff_ids),
    "base_layers_count": len(base_layers),
}
with open(os.path.join(case, "config.json"), "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)
    f.write("\n")

history = [
    {
        "created_by": h.get("created_by", ""),
        "empty_layer": bool(h.get("empty_layer", False)),
        **({"comment": h["comment"]} if "comment" in h else {}),
    }
    for h in raw.get("history", [])
]
with open(os.path.join(case, "history.json"), "w") as f:
    json.dump(history, f, indent=2)
    f.write("\n")

def mode_string(ti):
    kind = {
        tarfile.REGTYPE: stat.S_IFREG, tarfile.AREGTYPE: stat.S_IFREG, tarfile.LNKTYPE: stat.S_IFREG,
        tarfile.SYMTYPE: stat.S_IFLNK, tarfile.DIRTYPE: stat.S_IFDIR, tarfile.CHRTYPE: stat.S_IFCHR,
        tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO,
    }.get(ti.type, stat.S_IFREG)
    return stat.filemode(kind | ti.mode)

lines, contents = [], []
for i, layer in enumerate(manifest["Layers"]):
    path = os.path.join(save, layer)
    digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
    with tarfile.open(path) as tf:
        members = tf.getmembers()
        if i < len(base_layers) and digest == base_layers[i]:
            lines.append("# layer %d: base image busybox:latest (%d entries, not listed)" % (i, len(members)))
            continue
        lines.append("# layer %d: %d entries" % (i, len(members)))
        entries = []
        for ti in members:
            name = ti.name.rstrip("/") + ("/" if ti.isdir() else "")
            e = "%s %d:%d %s" % (mode_string(ti), ti.uid, ti.gid, name)
            if ti.issym():
                e += " -> " + ti.linkname
            elif ti.islnk():
                e += " => " + ti.linkname  # hard link
            entries.append(e)
            if ti.isreg() and ti.size <= 2048:
                data = tf.extractfile(ti).read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if text is not None and "\0" not in text:
                    contents.append((i, name, text))
        entries.sort(key=lambda e: e.split(" ", 2)[2])
        lines.extend(entries)
with open(os.path.join(case, "layers.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(case, "contents.txt"), "w") as f:
    for i, name, text in sorted(contents, key=lambda c: (c[0], c[1])):
        f.write("== layer %d %s (%d bytes)\n%s" % (i, name, len(text.encode()), text))
        if text and not text.endswith("\n"):
            f.write("\n<no newline at end>\n")
PY
    rm -rf "$out/save"
}

all_cases() {
    # onbuild-parent must be built before onbuild-child (its image is the child's base)
    (cd "$REF" && for d in */; do [ -f "$d/Dockerfile" ] && echo "${d%/}"; done) |
        sort | awk '$0 == "onbuild-child" { child = 1; next } { print } END { if (child) print "onbuild-child" }'
}

bench_time() { # LABEL CMD... ; prints the wall time of one run in seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$WORK/bench-last.log" 2>&1 || { cat "$WORK/bench-last.log" >&2; return 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

run_bench() {
    local b="$WORK/bench" row=() t
    rm -rf "$b"
    mkdir -p "$b/parallel" "$b/tenstep" "$b/files/files" "$b/big"
    {
        for s in a b c d; do printf 'FROM busybox AS %s\nRUN sleep 2 && echo %s > /%s\n\n' $s $s $s; done
        echo "FROM busybox"
        for s in a b c d; do echo "COPY --from=$s /$s /$s"; done
    } >"$b/parallel/Dockerfile"
    {
        echo "FROM busybox"
        for i in 2 3 4 5 6 7; do echo "RUN echo step$i > /step$i && sleep 0.5"; done
        echo "COPY edited.txt /edited.txt"
        echo "RUN cat /edited.txt > /step9"
        echo "RUN wc -c /edited.txt > /step10"
    } >"$b/tenstep/Dockerfile"
    echo v1 >"$b/tenstep/edited.txt"
    for i in $(seq 1 5000); do echo "file $i" >"$b/files/files/f$i.txt"; done
    printf 'FROM busybox\nCOPY files /files\n' >"$b/files/Dockerfile"
    printf 'FROM busybox\nRUN head -c 209715200 /dev/urandom > /big\n' >"$b/big/Dockerfile"

    build() { "$DOCKER" build --progress=plain -t "kiln-bench/$1" "$b/$1"; }
    cold() { "$DOCKER" rmi -f "kiln-bench/$1" >/dev/null 2>&1 || true; "$DOCKER" builder prune -af >/dev/null; }
    cold parallel; row+=("parallel stages (4 x sleep 2, gathered) | cold | $(bench_time build parallel)")
    cold tenstep; row+=("10 steps, step 8 COPYs edited file | cold | $(bench_time build tenstep)")
    row+=("10 steps, step 8 COPYs edited file | no change | $(bench_time build tenstep)")
    echo v2 >"$b/tenstep/edited.txt"
    row+=("10 steps, step 8 COPYs edited file | one edit | $(bench_time build tenstep)")
    cp "$WORK/bench-last.log" "$WORK/bench-tenstep-edit.log"
    cold files; row+=("5 000 small files in one COPY | cold | $(bench_time build files)")
    row+=("5 000 small files in one COPY | no change | $(bench_time build files)")
    cold big; row+=("one 200 MiB random layer (RUN head -c 200MiB /dev/urandom) | cold | $(bench_time build big)")
    for t in parallel tenstep files big; do "$DOCKER" rmi -f "kiln-bench/$t" >/dev/null 2>&1 || true; done
    "$DOCKER" builder prune -af >/dev/null
    printf '%s\n' "${row[@]}" >"$WORK/bench-rows.txt"
    cat "$WORK/bench-rows.txt"
    echo "(rows also in $WORK/bench-rows.txt; copy them into $REF/BENCH.md)"
}

start_dockerd
import_busybox
if [ "$mode" = bench ]; then
    run_bench
    exit 0
fi
if [ $# -eq 0 ]; then
    mapfile -t cases < <(all_cases)
else
    cases=("$@")
fi
failed=()
for c in "${cases[@]}"; do
    run_case "$c" || failed+=("$c")
done
"$DOCKER" builder prune -af >/dev/null
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed cases: ${failed[*]}" >&2
    exit 1
fi

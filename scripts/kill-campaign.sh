#!/usr/bin/env bash
# The kill -9 campaign: kills kiln at random moments of build, pull, push and load against a
# temporary store and a docker-registry it starts on 127.0.0.1, and after every kill checks that
# `kiln system check` finds the store consistent and that the same command then succeeds.
#
#   scripts/kill-campaign.sh [ROUNDS]          (default 20; as root; not run in CI)
#
# Environment: KILN (default target/debug/kiln), KILN_CAMPAIGN_SEED (bash RANDOM seed),
# KILN_CAMPAIGN_KEEP=1 keeps the work directory for inspection.
# Needs: docker-registry, busybox-static (testdata/rootfs/busybox-rootfs.sh), python3.
# Exit code: 0 when every round held, 1 otherwise. Everything it starts is stopped by PID and
# its work directory (store, registry data, leftover mounts) removed on exit.
set -euo pipefail

rounds=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
kiln_bin=${KILN:-$repo/target/debug/kiln}
RANDOM=${KILN_CAMPAIGN_SEED:-$$}

[ "$(id -u)" = 0 ] || { echo "kill-campaign: run as root (builds use the sandbox)" >&2; exit 2; }
[ -x "$kiln_bin" ] || { echo "kill-campaign: no kiln binary at $kiln_bin (cargo build -p kiln, or set KILN)" >&2; exit 2; }
command -v docker-registry >/dev/null || { echo "kill-campaign: docker-registry is not installed" >&2; exit 2; }

work=$(mktemp -d /tmp/kiln-kill-campaign.XXXXXX)
root=$work/store
registry_pid=
victim_pid=

unmount_leftovers() {
    # deepest first; lazily, so a busy mount cannot stop the cleanup
    findmnt -rn -o TARGET | awk -v w="$work" 'index($0, w) == 1' | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done
}

cleanup() {
    set +e
    [ -n "$victim_pid" ] && kill -9 "$victim_pid" 2>/dev/null
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
    unmount_leftovers
    if [ "${KILN_CAMPAIGN_KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kiln() { "$kiln_bin" --root "$root" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- a registry on a free loopback port -------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

# --- fixtures: a base image, an image to pull and load, an archive, a build context ---------
sh "$repo/testdata/rootfs/busybox-rootfs.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
kiln import "$work/busybox.tar" "$reg/campaign/base:1" --change 'CMD ["sh"]' >/dev/null
kiln push -q "$reg/campaign/base:1" >/dev/null
mkdir -p "$work/big/data"
head -c 24000000 /dev/urandom > "$work/big/data/blob"
tar -C "$work/big" -cf "$work/big.tar" .
kiln import "$work/big.tar" "$reg/campaign/pullme:1" >/dev/null
kiln push -q "$reg/campaign/pullme:1" >/dev/null
kiln save -o "$work/archive.tar" "$reg/campaign/pullme:1"
kiln tag "$reg/campaign/pullme:1" campaign/loaded:1
kiln save -o "$work/loaded.tar" campaign/loaded:1
kiln rmi campaign/loaded:1 >/dev/null
mkdir -p "$work/ctx"
head -c 2000000 /dev/urandom > "$work/ctx/payload"
cat > "$work/ctx/Dockerfile" <<EOF
FROM $reg/campaign/base:1
ARG ROUND
COPY payload /payload
RUN echo "round \$ROUND" > /round && dd if=/dev/urandom of=/random bs=1M count=8 2>/dev/null && sleep 0.2
RUN cat /payload /random | sha256sum > /sum
EOF

# The command of each operation for round $2; `prepare` undoes the previous round's result so
# the command has real work to do.
op_prepare() {
    case $1 in
        build) ;;
        pull) kiln rmi "$reg/campaign/pullme:1" >/dev/null 2>&1 || true ;;
        push) kiln build -q -t "$reg/campaign/app:$2" --build-arg "ROUND=$2" "$work/ctx" >/dev/null 2>&1 || true ;;
        load) kiln rmi campaign/loaded:1 >/dev/null 2>&1 || true ;;
    esac
}
op_command() {
    case $1 in
        build) echo build -q -t "campaign/built:$2" --build-arg "ROUND=$2" "$work/ctx" ;;
        pull) echo pull -q "$reg/campaign/pullme:1" ;;
        push) echo push -q "$reg/campaign/app:$2" ;;
        load) echo load -q -i "$work/loaded.tar" ;;
    esac
}

# How long each operation takes undisturbed: kills land uniformly within that time.
declare -A duration kills finished check_failures rerun_failures
ops=(build pull push load)
for op in "${ops[@]}"; do
    op_prepare "$op" 0
    start=$(now_ms)
    # shellcheck disable=SC2046
    kiln $(op_command "$op" 0) >/dev/null 2>"$work/err" || { cat "$work/err"; echo "kill-campaign: $op fails undisturbed" >&2; exit 1; }
    duration[$op]=$(( $(now_ms) - start ))
    kills[$op]=0; finished[$op]=0; check_failures[$op]=0; rerun_failures[$op]=0
done
echo "undisturbed: build ${duration[build]}ms, pull ${duration[pull]}ms, push ${duration[push]}ms, load ${duration[load]}ms"

failed=0
leftover_processes=0
for round in $(seq 1 "$rounds"); do
    op=${ops[$((RANDOM % ${#ops[@]}))]}
    op_prepare "$op" "$round"
    delay=$(( (RANDOM * 32768 + RANDOM) % (duration[$op] * 9 / 10 + 1) ))
    # shellcheck disable=SC2046
    setsid "$kiln_bin" --root "$root" $(op_command "$op" "$round") >/dev/null 2>&1 &
    victim_pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    if kill -9 "$victim_pid" 2>/dev/null; then
        kills[$op]=$(( kills[$op] + 1 ))
        outcome="killed after ${delay}ms"
    else
        finished[$op]=$(( finished[$op] + 1 ))
        outcome="finished before ${delay}ms"
    fi
    wait "$victim_pid" 2>/dev/null || true
    # the sandbox and helpers of the killed kiln must not outlive it for long
    sleep 0.5
    leftovers=$(pgrep -s "$victim_pid" || true)
    if [ -n "$leftovers" ]; then
        leftover_processes=$((leftover_processes + 1))
        # shellcheck disable=SC2086
        kill -9 $leftovers 2>/dev/null || true
    fi
    victim_pid=
    status=ok
    if ! kiln system check -q > "$work/check" 2>&1; then
        check_failures[$op]=$(( check_failures[$op] + 1 )); status="store inconsistent"; failed=1
        sed 's/^/    /' "$work/check"
    fi
    # shellcheck disable=SC2046
    if ! kiln $(op_command "$op" "$round") >/dev/null 2>"$work/err"; then
        rerun_failures[$op]=$(( rerun_failures[$op] + 1 )); status="$status; next $op failed"; failed=1
        sed 's/^/    /' "$work/err"
    elif ! kiln system check -q > "$work/check" 2>&1; then
        check_failures[$op]=$(( check_failures[$op] + 1 )); status="$status; inconsistent after rerun"; failed=1
        sed 's/^/    /' "$work/check"
    fi
    printf 'round %d: %-5s %s: %s\n' "$round" "$op" "$outcome" "$status"
done

echo
echo "rounds: $rounds"
for op in "${ops[@]}"; do
    printf '  %-5s killed mid-run %3d, finished first %3d, inconsistent checks %d, failed reruns %d\n' \
        "$op" "${kills[$op]}" "${finished[$op]}" "${check_failures[$op]}" "${rerun_failures[$op]}"
done
echo "  process groups outliving their kiln by 0.5s: $leftover_processes"
echo "  mounts left under the work dir: $(findmnt -rn -o TARGET | awk -v w="$work" 'index($0, w) == 1' | wc -l)"
exit "$failed"

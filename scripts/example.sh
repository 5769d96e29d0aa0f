#!/bin/sh
# Builds kiln (release) and runs its main job on testdata/example: creates a busybox base image
# (from Debian's busybox-static) in a store, builds the multi-stage example with `kiln build`, and
# runs the result with `kiln run`. The store is a temp dir unless KILN_ROOT is set. Needs root.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --locked -p kiln
kiln=$PWD/target/release/kiln
work=$(mktemp -d /tmp/kiln-example.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=${KILN_ROOT:-$work/root}
sh testdata/rootfs/busybox-rootfs.sh "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
"$kiln" --root "$root" import "$work/busybox.tar" busybox --change 'CMD ["sh"]' >/dev/null
"$kiln" --root "$root" build -t example testdata/example
"$kiln" --root "$root" run --rm example

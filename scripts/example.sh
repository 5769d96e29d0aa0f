#!/bin/sh
# Builds kiln and runs its main job on the example in testdata/example.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked
./target/release/kiln debug parse testdata/example/Dockerfile

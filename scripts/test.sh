#!/bin/sh
# Runs every kiln test: unit, golden, conformance and the root integration tests.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo test --workspace --locked

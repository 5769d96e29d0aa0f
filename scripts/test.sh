#!/bin/sh
# Runs every kiln check: formatting, clippy (warnings are errors), the crate-internal module
# cycle check (a test of kiln-testkit), then every test: unit, golden, conformance and the root
# integration tests.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

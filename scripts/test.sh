#!/usr/bin/env bash
# Every test: formatting, the workspace's unit, integration and end-to-end tests.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
cargo fmt --all -- --check
# The end-to-end tests run the real binary: build it first.
cargo build --workspace --bins
cargo test --workspace

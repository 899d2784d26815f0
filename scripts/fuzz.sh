#!/usr/bin/env bash
# The bounded fuzzers that `cargo test` runs in seconds, run long: plan
# mutations through the engine's validator and executor
# (firmware/engine/tests/robustness.rs) and frames through the protocol's
# decoder and reader (firmware/proto/tests/fuzz.rs). Each fuzzer runs
# EDGEFIT_FUZZ_CASES cases (default here 1,000,000), seeded, so a failure
# reproduces with the same count.
#   scripts/fuzz.sh                 # 10^6 cases per fuzzer
#   EDGEFIT_FUZZ_CASES=50000 scripts/fuzz.sh
# Release mode for speed: only the two no_std crates and their tests are
# built (no tract), in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
export EDGEFIT_FUZZ_CASES="${EDGEFIT_FUZZ_CASES:-1000000}"
echo "fuzz: $EDGEFIT_FUZZ_CASES cases per fuzzer"
start=$(date +%s)
cargo test --release -p edgefit-engine --features std --test robustness -- \
    random_plan_mutations --nocapture
cargo test --release -p edgefit-proto --features std --test fuzz -- --nocapture
echo "fuzz: done in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# The main job: VGG against ResNet on every device profile. Compares the two
# bundled Fashion-MNIST models (int8, f16, f32; dense and LAMP-50% pruned) on the
# bundled test images and writes edgefit-report/ (table, results.json/.csv,
# plots, report.html).
#   scripts/main.sh [extra edgefit compare flags, e.g. --profiles nrf52840-dk,this-machine]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
# The dev profile optimises every dependency (tract) and the engine at opt-level 3.
# Exactly scripts/test.sh's build command (same packages, same features), so
# one build serves both: run either first, the other rebuilds nothing.
cargo build -q --workspace --bins --features edgefit/probe
"$CARGO_TARGET_DIR/debug/edgefit" compare --out edgefit-report "$@"

#!/usr/bin/env bash
# The main job: inspect the two bundled Fashion-MNIST models side by side.
#   scripts/main.sh [extra edgefit inspect flags, e.g. --json]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
# The dev profile optimises every dependency (tract) and the engine at opt-level 3 and
# shares its build with scripts/test.sh, so one tract build serves both.
cargo build -q -p edgefit
"$CARGO_TARGET_DIR/debug/edgefit" inspect models/vgg-fmnist.onnx models/resnet-fmnist.onnx "$@"

#!/usr/bin/env bash
# The main job: inspect the two bundled Fashion-MNIST models side by side.
#   scripts/main.sh [extra edgefit inspect flags, e.g. --json]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
cargo build --release -q -p edgefit
"$CARGO_TARGET_DIR/release/edgefit" inspect models/vgg-fmnist.onnx models/resnet-fmnist.onnx "$@"

#!/usr/bin/env bash
# The main job: VGG against ResNet on every device profile. Compares the two
# bundled Fashion-MNIST models (int8, f16, f32; dense and LAMP-50% pruned) on the
# bundled test images, the seed's ImageNet-size networks and a generated family
# sweep, and writes edgefit-report/ (verdict matrix, table, results.json/.csv,
# plots, report.html, family/*.onnx).
#   scripts/main.sh [extra edgefit compare flags, e.g. --profiles nrf52840-dk,this-machine]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
# The dev profile optimises every dependency (tract) and the engine at opt-level 3.
# Exactly scripts/test.sh's build command (same packages, same features), so
# one build serves both: run either first, the other rebuilds nothing.
cargo build -q --workspace --bins --features edgefit/probe
# Besides the bundled models: the seed's VGG11-19 / ResNet-18-50 at ImageNet size
# (from models/imagenet, always), and a family sweep — every torchvision VGG and
# ResNet depth at four widths and five resolutions, 10 classes — for which of each
# every board can hold.
"$CARGO_TARGET_DIR/debug/edgefit" compare --out edgefit-report \
    --family vgg,resnet --widths 0.125,0.25,0.5,1 --classes 10 "$@"

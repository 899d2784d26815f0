#!/usr/bin/env bash
# Every test: formatting, the firmware builds, the workspace's unit, integration
# and end-to-end tests (the firmware runs in QEMU, the aarch64 Linux agent
# and the engine's NEON kernels under qemu-aarch64).
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_rust
cargo fmt --all -- --check
# Lints: every crate and target, warnings are errors.
cargo clippy -q --workspace --all-targets --features edgefit/probe -- -D warnings
# The Cortex-M firmware: Debian's Rust and QEMU, then every board (the QEMU
# board runs in the end-to-end tests; the real boards are built, not run).
bash scripts/firmware.sh install
bash scripts/firmware.sh build
# The nRF52840 DK with an INA219 / INA226 fitted (features off by default).
bash scripts/firmware.sh check-features
# The Linux agent cross-built for aarch64 (native engine) runs under
# qemu-aarch64 in tests/tests/agent.rs: the toolchain, and the build.
bash scripts/agent-aarch64.sh build >/dev/null
# The end-to-end tests run the real binary: build it first. `edgefit/probe`
# (flash-firmware, probe-rs; pure Rust, no system libraries) in both, so the
# test run reuses the build; tests/tests/flash_firmware_cli.rs needs it.
cargo build --workspace --bins --features edgefit/probe
# The engine's aarch64 NEON int8 kernels: its tests cross-built and run under
# qemu-aarch64 as a Cortex-A72 (no SDOT) and as QEMU's max CPU (SDOT), the
# bundled models' plans (compiled by the edgefit just built) included.
bash scripts/engine-aarch64.sh test
# The benchmark a Pi or Jetson owner runs on the board, here on this CPU: a
# whole-tensor and a tiled plan, every kernel path checked bit for bit.
board_plans="$(mktemp -d)"
trap 'rm -rf "$board_plans"' EXIT
"$CARGO_TARGET_DIR/debug/edgefit" compile models/resnet-fmnist.onnx --calib-samples 50 \
    -o "$board_plans/resnet.efp" >/dev/null 2>&1
"$CARGO_TARGET_DIR/debug/edgefit" compile models/vgg-fmnist.onnx --calib-samples 50 \
    --no-scratch --ram-budget 8KiB -o "$board_plans/vgg-8k.efp" >/dev/null 2>&1
bash scripts/bench-board.sh --runs 1 "$board_plans/resnet.efp" "$board_plans/vgg-8k.efp" >/dev/null
# A CPU with AVX2 but no AVX-512 (issue 18's Zen 3), on this one when it can
# hide AVX-512 (CPUID faulting): `edgefit speed` must run, and name, the AVX2
# kernels for every precision.
if grep -qw cpuid_fault /proc/cpuinfo && grep -qw avx512f /proc/cpuinfo; then
    kernels="$(bash scripts/avx2-only.sh "$CARGO_TARGET_DIR/debug/edgefit" speed \
        models/resnet-fmnist.onnx --runs 2 --json 2>/dev/null | grep -o '"kernels": *"[^"]*"' | sort -u)"
    [ "$kernels" = "$(printf '"kernels": "avx2"\n"kernels": "tract"')" ] || {
        echo "scripts/avx2-only.sh: edgefit speed ran other kernels: $kernels" >&2
        exit 1
    }
fi
# The compare report test renders report.html in headless Chromium.
ensure_packages chromium
cargo test --workspace --features edgefit/probe

#!/usr/bin/env bash
# The official MLPerf Tiny runner against edgefit's Cortex-M4 firmware in QEMU
# (mps2-an386, -icount shift=0: virtual time, one instruction per ns), through
# a pseudo-terminal (socat), on a plan and images of your choice.
#
#   scripts/mlperf_qemu.sh RUNNER_DIR [PLAN.efp] [MODE a|p] [IMAGES] [-- mlperf-dataset flags]
#
# RUNNER_DIR: a checkout's benchmark/runner (git clone https://github.com/mlcommons/tiny).
# PLAN: default, the bundled ResNet compiled to int8 for a microcontroller.
# Performance mode: the runner accepts a result only when its five windows
# together take 10 s of wall-clock time; QEMU's virtual time is not wall time,
# so the script writes the runner's performance test with
# `infer $PERF_INFERENCES 5` (default 300) instead of `infer 20 5`.
# The runner's Python needs: pip install pyserial pyyaml numpy scikit-learn matplotlib pyusb
# Needs: qemu-system-arm, socat (apt-get install -y qemu-system-arm socat), and
# the firmware toolchain (scripts/firmware.sh install).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=${1:?usage: scripts/mlperf_qemu.sh RUNNER_DIR [PLAN] [a|p] [IMAGES]}
PLAN=${2:-}
MODE=${3:-a}
IMAGES=${4:-200}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
. scripts/env.sh
WORK=$(mktemp -d)
QEMU_PID=""
SOCAT_PID=""
cleanup() {
    [ -n "$SOCAT_PID" ] && kill "$SOCAT_PID" 2>/dev/null || true
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v socat >/dev/null || { echo "socat is missing: apt-get install -y socat" >&2; exit 1; }
cargo build -q --bin edgefit
EDGEFIT="$CARGO_TARGET_DIR/debug/edgefit"
ELF=$(bash scripts/firmware.sh build mps2-an386 | tail -1)
if [ -z "$PLAN" ]; then
    PLAN="$WORK/resnet-int8.efp"
    "$EDGEFIT" compile models/resnet-fmnist.onnx --precision int8 --no-scratch -o "$PLAN"
fi
PORT=$((20000 + RANDOM % 20000))
qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -serial "tcp:127.0.0.1:$PORT,server=on,wait=off,nodelay=on" \
    -kernel "$ELF" >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
sleep 1
XDG_CACHE_HOME="$WORK/cache" "$EDGEFIT" flash "$PLAN" --port "tcp:127.0.0.1:$PORT"
"$EDGEFIT" mlperf-dataset "$PLAN" --limit "$IMAGES" -o "$WORK/datasets" "$@"
# The UART as a serial device the runner opens by path.
socat "pty,link=$WORK/dut,raw,echo=0" "tcp:127.0.0.1:$PORT" &
SOCAT_PID=$!
for _ in $(seq 50); do [ -e "$WORK/dut" ] && break; sleep 0.1; done
TEST_SCRIPT=()
if [ "$MODE" = p ]; then
    cat >"$WORK/tests_performance.yaml" <<YAML
ic01:
  name: image_classification
  model: ic01
  truth_file: y_labels.csv
  script:
    - loop 5:
      - download
      - infer ${PERF_INFERENCES:-300} 5
YAML
    TEST_SCRIPT=(--test-script "$WORK/tests_performance.yaml")
fi
python3 scripts/mlperf_runner.py --runner "$RUNNER" --port "$WORK/dut" \
    --dataset-path "$WORK/datasets" --mode "$MODE" "${TEST_SCRIPT[@]}"

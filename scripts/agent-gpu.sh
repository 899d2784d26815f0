#!/usr/bin/env bash
# The GPU check of the Linux agent, as one script for a machine with an NVIDIA
# GPU: builds edgefit-agent with the `cuda` feature (tract-cuda; the driver is
# loaded at run time, no CUDA toolkit needed), starts it on loopback, and
# benchmarks the bundled models' f32 and f16 tract artifacts on tract-cuda and
# tract-cpu next to the native int8 plan. Without a GPU it shows the fallback
# (the hello's reason) and tract-cuda being refused.
#
#   scripts/agent-gpu.sh [OUT_DIR] [LIMIT]      (default gpu-check/, 1000 images)
#
# AGENT=path and EDGEFIT=path skip the builds (use binaries built elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
OUT="${1:-gpu-check}"
LIMIT="${2:-1000}"
mkdir -p "$OUT"
if [ -z "${AGENT:-}" ]; then
    cargo build --release -p edgefit-agent --features cuda >&2
    AGENT="$CARGO_TARGET_DIR/release/edgefit-agent"
fi
if [ -z "${EDGEFIT:-}" ]; then
    cargo build --release -p edgefit >&2
    EDGEFIT="$CARGO_TARGET_DIR/release/edgefit"
fi
PORT="${PORT:-4690}"
rm -rf "$OUT/store"
"$AGENT" serve --listen "127.0.0.1:$PORT" --store "$OUT/store" 2> "$OUT/agent.log" &
AGENT_PID=$!
trap 'kill $AGENT_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q " on 127.0.0.1:$PORT," "$OUT/agent.log" && break; sleep 0.1; done
head -1 "$OUT/agent.log"
P="--port tcp:127.0.0.1:$PORT"
summary() { grep -E "^(plan|tract|engine|accuracy|latency|process|gpu|error)" || true; }
for m in resnet-fmnist vgg-fmnist; do
    "$EDGEFIT" compile "models/$m.onnx" --calib-samples 200 -o "$OUT/$m-int8.efp" >/dev/null 2>&1
    "$EDGEFIT" flash $P "$OUT/$m-int8.efp" >/dev/null
    echo "== $m int8 plan, native"
    "$EDGEFIT" bench $P "$OUT/$m-int8.efp" --limit "$LIMIT" --out "$OUT/$m-int8-native.json" | summary
    for p in f32 f16; do
        "$EDGEFIT" compile "models/$m.onnx" --precision "$p" --target tract -o "$OUT/$m-$p.eftm" >/dev/null
        "$EDGEFIT" flash $P "$OUT/$m-$p.eftm" >/dev/null
        for e in tract-cuda tract-cpu; do
            n="$LIMIT"
            # f16 on a CPU without f16 arithmetic is ~100x slower than f32.
            [ "$p-$e" = "f16-tract-cpu" ] && n=$(( LIMIT < 100 ? LIMIT : 100 ))
            echo "== $m $p tract artifact, $e ($n images)"
            "$EDGEFIT" bench $P "$OUT/$m-$p.eftm" --engine "$e" --limit "$n" \
                --out "$OUT/$m-$p-$e.json" 2>&1 | summary || true
        done
    done
done
echo "reports in $OUT/*.json; the agent's log: $OUT/agent.log"

#!/usr/bin/env bash
# Real times on the board you have — a Raspberry Pi 4 or 5, a Jetson, any Linux
# machine — with the machine's own Rust (rustup, or Debian's rustc/cargo):
#
#   scripts/bench-board.sh [--runs N] PLAN.efp...
#
# 1. builds edgefit's engine alone (its examples; no tract, no host crate: about
#    a minute on a Pi 5), in release;
# 2. checks each plan gives the same bits on every kernel path this CPU has
#    (examples/plan_paths: the whole activation arena after every op, fastest
#    kernels against the portable ones, on seeded inputs);
# 3. times it op by op with the fastest kernels and with the portable ones
#    (examples/plan_profile: median ms per op, then whole runs), each report
#    starting with the kernels that ran: "neon-dotprod" (Cortex-A76/A78, Pi 5,
#    Jetson Orin), "neon" (Cortex-A72, Pi 4), "avx512-vnni" or "avx2" (x86-64).
#
# Plans come from `edgefit compile` on any machine (int8, f16 or f32; tiled
# ones too), e.g. `edgefit compile models/resnet-fmnist.onnx -o resnet.efp`.
# Figures are wall-clock on this machine, measured; the last line of each
# profile also gives the thread's CPU time. Exits non-zero if a plan does not
# parse or its kernel paths differ.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

runs=20
plans=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) [ $# -ge 2 ] || { echo "bench-board.sh: --runs needs a value" >&2; exit 2; }
                runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) plans+=("$1"); shift ;;
    esac
done
[ ${#plans[@]} -gt 0 ] || { echo "usage: scripts/bench-board.sh [--runs N] PLAN.efp..." >&2; exit 2; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench-board.sh: --runs: not a positive number: $runs" >&2; exit 2; }

cargo build -q --release -p edgefit-engine --features std --example plan_paths --example plan_profile
bin="$CARGO_TARGET_DIR/release/examples"
echo "== $(uname -m), $(grep -m1 -E 'model name|Model' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //' || echo 'unknown CPU')"
echo "== same bits on every kernel path"
"$bin/plan_paths" "${plans[@]}" --runs 2
for plan in "${plans[@]}"; do
    for kernels in auto portable; do
        echo "== $plan, $kernels kernels, $runs runs (measured, wall clock)"
        "$bin/plan_profile" "$plan" "$kernels" "$runs"
    done
done

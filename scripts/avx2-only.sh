#!/usr/bin/env bash
# Runs a command with AVX-512, VNNI and AMX hidden from it (scripts/avx2-only.c),
# so onnxruntime, numpy and the edgefit engine all take their AVX2 paths:
# the "AVX2, no VNNI" machine of issue 18, measured on this one.
#
#   bash scripts/avx2-only.sh python3 scripts/peer_ort.py --imagenet --edgefit
#   bash scripts/avx2-only.sh target/debug/edgefit speed models/resnet-fmnist.onnx
#
# Needs an x86-64 Linux CPU with CPUID faulting (`cpuid_fault` in
# /proc/cpuinfo) and a C compiler (cc, which Rust's linker needs anyway).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
grep -qw cpuid_fault /proc/cpuinfo || {
    echo "avx2-only: this CPU (or VM) has no CPUID faulting (no cpuid_fault in /proc/cpuinfo)" >&2
    exit 1
}
[ $# -gt 0 ] || { echo "usage: scripts/avx2-only.sh COMMAND [ARGS...]" >&2; exit 2; }
lib="${XDG_CACHE_HOME:-$HOME/.cache}/edgefit/avx2-only.so"
if [ ! -f "$lib" ] || [ "$here/avx2-only.c" -nt "$lib" ]; then
    mkdir -p "$(dirname "$lib")"
    cc -O2 -shared -fPIC -o "$lib" "$here/avx2-only.c"
fi
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"

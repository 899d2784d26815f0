#!/usr/bin/env bash
# The engine's NEON int8 kernels (aarch64) under qemu-aarch64: cross-build
# edgefit-engine's tests with Debian's Rust (as scripts/agent-aarch64.sh
# builds the agent: rustc-web + rust-web-src, -Zbuild-std with
# RUSTC_BOOTSTRAP=1, linked by gcc-aarch64-linux-gnu) and run them on two
# emulated CPUs: a Cortex-A72 (Raspberry Pi 4; NEON without the dot-product
# extension, so the SMLAL kernels run) and QEMU's `max` CPU (Armv8.x with
# SDOT, so the dot-product kernels run). Every test compares the NEON
# kernels against the portable ones (and the spec's references) byte for
# byte.
#
#   scripts/engine-aarch64.sh build        cross-build the tests (release)
#   scripts/engine-aarch64.sh test         build, then run them on both CPUs
#   scripts/engine-aarch64.sh insns        instructions per multiply-accumulate
#                                          of an int8 3x3 conv (16x16x32 -> 32),
#                                          portable / neon / neon-dotprod, and
#                                          of the same conv in f32, portable /
#                                          neon, counted under QEMU (emulated)
#   scripts/engine-aarch64.sh speed [MODEL]
#                                          the host CLI `edgefit` cross-built for
#                                          aarch64 (with tract, its own cache; the
#                                          cold build and both runs took 12.5
#                                          minutes on the Zen 4), then
#                                          `edgefit speed MODEL --precision int8,f32`
#                                          (default models/resnet-fmnist.onnx) on
#                                          both CPUs: what a board owner runs, and
#                                          the kernels it names (neon / neon-dotprod);
#                                          times under QEMU are not Arm times
#
# Build cache outside the clone: $EDGEFIT_AARCH64_ENGINE_TARGET_DIR, default
# ~/.cache/edgefit/aarch64-engine. `test` also runs the bundled models
# (models/*-fmnist.onnx) compiled to int8 plans, whole-tensor and tiled, by
# the host's `edgefit` binary where it is built ($CARGO_TARGET_DIR/debug/edgefit), through both
# kernel paths (tests/kernel_paths.rs); EDGEFIT_ENGINE_PLANS, a
# colon-separated list of .efp files, names other plans instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

TARGET=aarch64-unknown-linux-gnu
PACKAGES=(rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
SYSROOT=/usr/aarch64-linux-gnu
TARGET_DIR="${EDGEFIT_AARCH64_ENGINE_TARGET_DIR:-$HOME/.cache/edgefit/aarch64-engine}"
CPUS=(cortex-a72 max)

die() { echo "engine-aarch64.sh: $*" >&2; exit 2; }

# cargo_aarch64 ARGS...: Debian's cargo for the aarch64 target, none of the
# host build's wrappers or flags; the engine with std unless CROSS_PACKAGE
# names other cargo package arguments (and CROSS_DIR another cache).
cargo_aarch64() {
    local pkg=(-p edgefit-engine --features std)
    [ -n "${CROSS_PACKAGE:-}" ] && read -r -a pkg <<<"$CROSS_PACKAGE"
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
        -u CARGO_TARGET_DIR \
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
        AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
        /usr/bin/cargo "$@" --locked -Zbuild-std=std,panic_abort \
        --target "$TARGET" --target-dir "${CROSS_DIR:-$TARGET_DIR}" "${pkg[@]}"
}

# build: cross-builds the engine's test binaries and examples (release:
# the tests run several times faster under QEMU) and writes their paths,
# one a line, to $TARGET_DIR/engine-tests.txt.
build() {
    ensure_packages "${PACKAGES[@]}"
    mkdir -p "$TARGET_DIR"
    cargo_aarch64 test --release --no-run --message-format=json-render-diagnostics \
        | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
' >"$TARGET_DIR/engine-tests.txt.new"
    mv "$TARGET_DIR/engine-tests.txt.new" "$TARGET_DIR/engine-tests.txt"
    cargo_aarch64 build --release --example neon_insns -q
}

# bundled_plans: the bundled int8 models compiled by the host's `edgefit`
# (when it is built: scripts/test.sh builds it first), for
# tests/kernel_paths.rs; prints them colon-separated (nothing if no binary).
# EDGEFIT_ENGINE_PLANS, when set, is used instead.
bundled_plans() {
    if [ -n "${EDGEFIT_ENGINE_PLANS+x}" ]; then
        echo "$EDGEFIT_ENGINE_PLANS"
        return
    fi
    local edgefit="$CARGO_TARGET_DIR/debug/edgefit" list="" m out
    if [ ! -x "$edgefit" ]; then
        echo "engine-aarch64.sh: no $edgefit (cargo build -p edgefit): bundled plans not checked" >&2
        return
    fi
    mkdir -p "$TARGET_DIR/plans"
    # Each model whole-tensor and tiled (a 16 KiB budget: plan format 2).
    local budget
    for m in resnet-fmnist vgg-fmnist; do
        for budget in "" 16KiB; do
            out="$TARGET_DIR/plans/$m-int8${budget:+-$budget}.efp"
            if [ ! -f "$out" ] || [ "$edgefit" -nt "$out" ] || [ "models/$m.onnx" -nt "$out" ]; then
                "$edgefit" compile "models/$m.onnx" --calib-samples 200 \
                    ${budget:+--no-scratch --ram-budget "$budget"} -o "$out" >/dev/null 2>&1 \
                    || die "edgefit compile models/$m.onnx ${budget:+--ram-budget $budget} failed"
            fi
            list="$list${list:+:}$out"
        done
    done
    echo "$list"
}

# run_tests CPU: every test binary under qemu-aarch64 -cpu CPU.
run_tests() {
    local cpu="$1" bin out kernels
    kernels="$(qemu-aarch64 -L "$SYSROOT" -cpu "$cpu" \
        "$TARGET_DIR/$TARGET/release/examples/neon_insns" auto 0 | cut -d' ' -f1)"
    echo "== edgefit-engine tests under qemu-aarch64 -cpu $cpu ($kernels kernels)"
    while read -r bin; do
        if ! out="$(qemu-aarch64 -L "$SYSROOT" -cpu "$cpu" "$bin" -q 2>&1)"; then
            echo "$out" | tail -60
            die "$(basename "$bin") failed under -cpu $cpu"
        fi
        echo "$out" | grep "^test result" | sed "s|^|  $(basename "${bin%-*}"): |"
    done <"$TARGET_DIR/engine-tests.txt"
}

# count_insns CPU ARGS...: instructions the guest executes, counted from
# QEMU's per-block exec log with one instruction per block (-singlestep)
# and no block chaining (every block execution is logged).
count_insns() {
    local cpu="$1"
    shift
    local fifo
    fifo="$(mktemp -u)"
    mkfifo "$fifo"
    wc -l <"$fifo" >"$fifo.count" &
    local wc_pid=$!
    qemu-aarch64 -L "$SYSROOT" -cpu "$cpu" -singlestep -d exec,nochain -D "$fifo" \
        "$TARGET_DIR/$TARGET/release/examples/neon_insns" "$@" >/dev/null
    wait "$wc_pid"
    cat "$fifo.count"
    rm -f "$fifo" "$fifo.count"
}

insns() {
    local bin="$TARGET_DIR/$TARGET/release/examples/neon_insns"
    [ -x "$bin" ] || build
    local macs
    macs="$(qemu-aarch64 -L "$SYSROOT" "$bin" macs)"
    echo "int8 conv 3x3, 16x16x32 -> 16x16x32 (pad 1): $macs multiply-accumulates"
    echo "instructions, emulated (qemu-aarch64 $(qemu-aarch64 --version | head -1 | awk '{print $3}'), one run of the layer minus a run without it):"
    local rows=("portable cortex-a72 portable" "neon cortex-a72 auto" "neon-dotprod max auto")
    insns_rows "$macs" "" "${rows[@]}"
    echo "f32 conv 3x3, the same shape (f32 weights, bias, activations):"
    rows=("portable cortex-a72 portable" "neon cortex-a72 auto")
    insns_rows "$macs" f32 "${rows[@]}"
}

# insns_rows MACS PRECISION ROW...: one line per "name cpu path" ROW.
insns_rows() {
    local macs="$1" prec="$2" kernels cpu path with without
    shift 2
    for kernels in "$@"; do
        # shellcheck disable=SC2086
        set -- $kernels
        cpu="$2"
        path="$3"
        with="$(count_insns "$cpu" "$path" 1 ${prec:+"$prec"})"
        without="$(count_insns "$cpu" "$path" 0 ${prec:+"$prec"})"
        python3 -c "
import sys
name, cpu, n, macs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(f'  {name:<13} (-cpu {cpu:<10}) {n:>10} instructions, emulated  {n / macs:.3f} per MAC')
" "$1" "$cpu" "$((with - without))" "$macs"
    done
}

# speed [MODEL]: the host CLI for aarch64 (release, with tract), then
# `edgefit speed` on each QEMU CPU.
speed() {
    local model="${1:-models/resnet-fmnist.onnx}" dir="$TARGET_DIR-host" cpu
    ensure_packages "${PACKAGES[@]}"
    CROSS_DIR="$dir" CROSS_PACKAGE="-p edgefit --bin edgefit" cargo_aarch64 build --release -q
    for cpu in "${CPUS[@]}"; do
        echo "== edgefit speed $model under qemu-aarch64 -cpu $cpu (emulated: not Arm times)"
        qemu-aarch64 -L "$SYSROOT" -cpu "$cpu" "$dir/$TARGET/release/edgefit" \
            speed "$model" --precision int8,f32 --runs 3
    done
}

cmd="${1:-}"
case "$cmd" in
    build) build ;;
    test)
        build
        EDGEFIT_ENGINE_PLANS="$(bundled_plans)"
        export EDGEFIT_ENGINE_PLANS
        [ -n "$EDGEFIT_ENGINE_PLANS" ] && echo "compiled plans checked: ${EDGEFIT_ENGINE_PLANS//:/ }"
        for cpu in "${CPUS[@]}"; do run_tests "$cpu"; done
        ;;
    insns) build && insns ;;
    speed) shift; speed "$@" ;;
    *) die "usage: $0 build | test | insns | speed [MODEL]" ;;
esac

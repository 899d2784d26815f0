#!/usr/bin/env bash
# edgefit-agent for aarch64 Linux (Raspberry Pi, Jetson): cross-build with
# Debian's Rust (rustc-web 1.96 + rust-web-src: std is rebuilt from source with
# -Zbuild-std, allowed on a stable compiler by RUSTC_BOOTSTRAP=1; rustup cannot
# add targets on the project's machines), link with gcc-aarch64-linux-gnu, and
# run under qemu-aarch64 (Debian qemu-user) with the cross glibc.
#
#   scripts/agent-aarch64.sh install                 apt-get what is missing
#   scripts/agent-aarch64.sh build [--with-tract]    release build; prints the binary's path
#   scripts/agent-aarch64.sh run [--with-tract] -- AGENT_ARGS...
#                                                    run the agent under qemu-aarch64
#
# Without --with-tract the agent has the native engine only (what CI runs: a
# few minutes cold); --with-tract adds the tract-cpu engine (tract's NEON
# kernels; about 30 minutes cold on 2 cores). Each has its own build cache
# outside the clone ($EDGEFIT_AARCH64_TARGET_DIR, default
# ~/.cache/edgefit/aarch64-target[-tract]).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

TARGET=aarch64-unknown-linux-gnu
PACKAGES=(rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
SYSROOT=/usr/aarch64-linux-gnu

die() { echo "agent-aarch64.sh: $*" >&2; exit 2; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
tract=0
if [ "${1:-}" = "--with-tract" ]; then tract=1; shift; fi

if [ "$tract" = 1 ]; then
    FEATURES=()
    TARGET_DIR="${EDGEFIT_AARCH64_TARGET_DIR:-$HOME/.cache/edgefit/aarch64-target}-tract"
else
    FEATURES=(--no-default-features)
    TARGET_DIR="${EDGEFIT_AARCH64_TARGET_DIR:-$HOME/.cache/edgefit/aarch64-target}"
fi
BIN="$TARGET_DIR/$TARGET/release/edgefit-agent"

build() {
    ensure_packages "${PACKAGES[@]}"
    # Debian's toolchain by absolute path (the PATH's cargo is rustup's), and
    # none of the host build's wrappers or flags.
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
        -u CARGO_TARGET_DIR \
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
        AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
        /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_abort \
        --target "$TARGET" --target-dir "$TARGET_DIR" \
        -p edgefit-agent --bin edgefit-agent "${FEATURES[@]}" >&2
    echo "$BIN"
}

case "$cmd" in
    install) ensure_packages "${PACKAGES[@]}" ;;
    build) build ;;
    run)
        [ "${1:-}" = "--" ] && shift
        [ -x "$BIN" ] || build >/dev/null
        exec qemu-aarch64 -L "$SYSROOT" "$BIN" "$@"
        ;;
    *) die "usage: $0 install | build [--with-tract] | run [--with-tract] -- AGENT_ARGS..." ;;
esac

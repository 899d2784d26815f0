#!/usr/bin/env bash
# Cortex-M firmware: toolchain, build, QEMU, footprint. The board crates live in
# their own cargo workspace (firmware/boards) and build with Debian's Rust
# (rustc-web 1.96 + rust-web-src), not rustup's: rustup cannot add the
# thumbv7em-none-eabihf target on the project's machines, so core is rebuilt from
# source (-Zbuild-std=core, allowed on a stable compiler by RUSTC_BOOTSTRAP=1).
#
#   scripts/firmware.sh install               apt-get the toolchain and QEMU (only what is missing)
#   scripts/firmware.sh build [BOARD...]      release build; prints one ELF path per board
#   scripts/firmware.sh run [--port N] [--elf PATH] [-- QEMU_ARGS...]
#                                             boot mps2-an386 under QEMU, UART0 on a TCP socket
#   scripts/firmware.sh size [BOARD...]       code / data / bss of each ELF (builds first)
#   scripts/firmware.sh check-features        type-check the boards' optional features (the
#                                             nRF52840 DK's ina219 / ina226 power monitors)
#   scripts/firmware.sh boards                list the boards
#
# EDGEFIT_FW_FEATURES=F,... adds cargo features to `build` (e.g. ina226 for the
# nRF52840 DK with an INA226 fitted; see its src/power.rs for the settings).
#
# BOARD is a board name (mps2-an386, nrf52840-dk, engine-check) or its folder name under
# firmware/boards; none means all. The build cache is outside the clone
# ($EDGEFIT_FW_TARGET_DIR, default ~/.cache/edgefit/firmware-target), separate
# from the host one because another compiler builds it.
#
# `run` listens on 127.0.0.1:PORT (default 4545) and waits for a client before
# the CPU starts, so the first byte the firmware sends is not lost; connect with
# `edgefit ... --port tcp:127.0.0.1:PORT` (or any TCP client). `-icount shift=0`
# makes the virtual clock count one nanosecond per instruction: runs are
# deterministic and the firmware's SysTick ticks (25 MHz) are 40 instructions
# each. `nodelay=on` matters: QEMU sends the firmware's answer one byte per
# socket write, and Nagle's algorithm meeting the client's delayed ACK would
# add ~40 ms to every answer. Host-to-device throughput is ~15-25 KiB/s (QEMU
# hands the UART one byte per main-loop turn). Semihosting prints a panic
# message on QEMU's stderr and exits QEMU with status 1. A client may
# disconnect and connect again; QEMU runs until killed (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

BOARDS_DIR=firmware/boards
TARGET=thumbv7em-none-eabihf
FW_TARGET_DIR="${EDGEFIT_FW_TARGET_DIR:-$HOME/.cache/edgefit/firmware-target}"
# Debian's toolchain, by absolute path: the PATH's cargo/rustc are rustup's.
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
PACKAGES=(rustc-web cargo-web rust-web-src lld qemu-system-arm)
# engine-check is not a board: the engine's on-target self-test (portable vs
# DSP kernels, instructions per MAC) for mps2-an386, run by the e2e tests.
ALL_BOARDS=(mps2-an386 nrf52840-dk engine-check)

die() { echo "firmware.sh: $*" >&2; exit 2; }

# board_dir BOARD / board_pkg BOARD: folder and cargo package of a board.
board_dir() {
    case "$1" in
        mps2-an386 | qemu-mps2-an386) echo qemu-mps2-an386 ;;
        nrf52840-dk) echo nrf52840-dk ;;
        engine-check) echo engine-check ;;
        *) die "unknown board '$1' (boards: ${ALL_BOARDS[*]})" ;;
    esac
}
board_pkg() {
    case "$(board_dir "$1")" in
        qemu-mps2-an386) echo edgefit-fw-mps2-an386 ;;
        nrf52840-dk) echo edgefit-fw-nrf52840-dk ;;
        engine-check) echo edgefit-engine-check ;;
    esac
}
board_elf() { echo "$FW_TARGET_DIR/$TARGET/release/$(board_pkg "$1")"; }

cmd_install() {
    ensure_packages "${PACKAGES[@]}"
}

# fw_cargo ARGS...: Debian's cargo in the boards workspace, with an environment
# that cannot be steered by the caller's host-build settings (RUSTFLAGS from the
# environment would replace the linker flags in .cargo/config.toml).
fw_cargo() {
    cmd_install  # a few dpkg-query calls when everything is there
    (
        cd "$BOARDS_DIR"
        env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
            -u CARGO_BUILD_TARGET -u RUSTUP_TOOLCHAIN \
            RUSTC="$DEB_RUSTC" RUSTC_BOOTSTRAP=1 \
            CARGO_TARGET_DIR="$FW_TARGET_DIR" \
            "$DEB_CARGO" "$@"
    )
}

# boards_or_all ARGS...: the boards named, or all of them.
boards_or_all() {
    if [ $# -eq 0 ]; then printf '%s\n' "${ALL_BOARDS[@]}"; else printf '%s\n' "$@"; fi
}

cmd_build() {
    local boards b
    mapfile -t boards < <(boards_or_all "$@")
    # Check the names here: `die` inside $(...) would only end a subshell.
    for b in "${boards[@]}"; do board_dir "$b" >/dev/null; done
    # One cargo run per board: built together, cargo would unify features, and
    # the nRF PAC's `rt` turns on cortex-m-rt's `device`, which makes the QEMU
    # board (no PAC, no device.x) fail to link. --locked: the committed
    # Cargo.lock is the one CI and every machine use.
    for b in "${boards[@]}"; do
        fw_cargo build --release --locked -p "$(board_pkg "$b")" \
            ${EDGEFIT_FW_FEATURES:+--features "$EDGEFIT_FW_FEATURES"} >&2
    done
    for b in "${boards[@]}"; do board_elf "$b"; done
}

cmd_check_features() {
    local f
    for f in ina219 ina226; do
        fw_cargo check --release --locked -p edgefit-fw-nrf52840-dk --features "$f" >&2
    done
}

cmd_run() {
    local port=4545 elf=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --port) [ $# -ge 2 ] || die "--port needs a value"; port="$2"; shift 2 ;;
            --port=*) port="${1#--port=}"; shift ;;
            --elf) [ $# -ge 2 ] || die "--elf needs a value"; elf="$2"; shift 2 ;;
            --elf=*) elf="${1#--elf=}"; shift ;;
            --) shift; break ;;
            *) die "run: unknown option '$1'" ;;
        esac
    done
    [[ "$port" =~ ^[0-9]+$ ]] || die "--port: not a number: $port"
    command -v qemu-system-arm >/dev/null || cmd_install
    [ -n "$elf" ] || elf="$(cmd_build mps2-an386)"
    echo "firmware.sh: UART0 on tcp 127.0.0.1:$port (QEMU waits for a client)" >&2
    exec qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
        -nographic -monitor none \
        -icount shift=0 \
        -semihosting-config enable=on,target=native \
        -serial "tcp:127.0.0.1:$port,server=on,wait=on,nodelay=on" \
        -kernel "$elf" "$@"
}

cmd_size() {
    local tool elfs
    if command -v llvm-size >/dev/null; then tool=llvm-size
    elif command -v size >/dev/null; then tool=size  # binutils' size reads ARM ELF too
    else die "no llvm-size or size: apt-get install binutils"
    fi
    cmd_build "$@" >/dev/null
    mapfile -t elfs < <(boards_or_all "$@" | while read -r b; do board_elf "$b"; done)
    # Berkeley format: text = vector table + code + read-only data (flash),
    # data = initialised statics (flash and RAM), bss = zeroed statics (RAM;
    # includes the tensor arena). The stack and NOLOAD regions are not counted.
    "$tool" "${elfs[@]}"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    install) cmd_install ;;
    build) cmd_build "$@" ;;
    run) cmd_run "$@" ;;
    size) cmd_size "$@" ;;
    check-features) cmd_check_features ;;
    boards) printf '%s\n' "${ALL_BOARDS[@]}" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

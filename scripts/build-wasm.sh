#!/usr/bin/env bash
# Build WebAssembly modules for plwasm.
#
#   scripts/build-wasm.sh rust CRATE_DIR OUT.wasm [TARGET]   # TARGET: wasm32-wasip1 (default) or
#                                                            # wasm32-unknown-unknown
#   scripts/build-wasm.sh c FILE.c OUT.wasm                  # clang, wasm32-wasi reactor
#
# Rust: uses rustup's target when it is installed (`rustup target add wasm32-wasip1`); otherwise,
# as on machines without internet, Debian's rustc-web with -Zbuild-std (installed by
# scripts/setup.sh --wasm-toolchains). C: Debian's clang + wasi-libc.
set -euo pipefail

kind=${1:?usage: build-wasm.sh rust|c SOURCE OUT.wasm}
src=${2:?source}
out=${3:?output .wasm}
mkdir -p "$(dirname "$out")"

case $kind in
rust)
    target=${4:-wasm32-wasip1}
    target_dir=${CARGO_TARGET_DIR:-$src/target}
    if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "build-wasm: $src for $target with rustup's toolchain" >&2
        cargo build --quiet --release --manifest-path "$src/Cargo.toml" --target "$target" \
            --target-dir "$target_dir"
    else
        # Debian's toolchain: full std for wasm, built from rust-web-src.
        # Its wasm targets link with rust-lld, which the package does not always ship: use
        # lld-22's wasm-ld (the same linker) when rust-lld is not on PATH.
        flags=""
        if ! command -v rust-lld >/dev/null; then
            linker=$(command -v wasm-ld-22 || command -v wasm-ld || true)
            [[ -n $linker ]] || { echo "no wasm linker: install lld-22 (scripts/setup.sh --wasm-toolchains)" >&2; exit 1; }
            flags="-C linker=$linker"
        fi
        [[ $target == wasm32-wasip1 ]] && flags="$flags -L /usr/lib/wasm32-wasi"
        echo "build-wasm: $src for $target with Debian's toolchain (builds std too: a first build" \
            "takes a minute or two)" >&2
        RUSTFLAGS="$flags" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --quiet \
            --release --manifest-path "$src/Cargo.toml" --target "$target" \
            --target-dir "$target_dir" -Zbuild-std=std,panic_abort
    fi
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$src/Cargo.toml" | head -1 | tr - _)
    cp "$target_dir/$target/release/$name.wasm" "$out"
    ;;
c)
    clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wl,--strip-debug \
        -I "$(dirname "${BASH_SOURCE[0]}")/../udf-sdk/c" \
        -o "$out" "$src"
    ;;
*)
    echo "unknown kind $kind (rust or c)" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The Rust SDK outside this repository: a copy of udf-sdk/ (as a vendored directory or a git
# checkout would be) and a new UDF crate that depends on it by path, tested natively and built
# for wasm; then `cargo package` of both SDK crates, which builds them from their packaged
# sources alone, as crates.io would. Native builds must not warn (`#[udf]` functions are used by
# the wasm exports only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/sdk-outside
rm -rf "$WORK/udf-sdk" "$WORK/myudfs"
mkdir -p "$WORK/myudfs/src"
cp -r "$ROOT/udf-sdk" "$WORK/udf-sdk"
rm -rf "$WORK/udf-sdk"/*/target

cat > "$WORK/myudfs/Cargo.toml" <<'TOML'
[package]
name = "myudfs"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
plwasm-udf = { path = "../udf-sdk/plwasm-udf" }
TOML
cat > "$WORK/myudfs/src/lib.rs" <<'RUST'
use plwasm_udf::udf;

/// Adds one.
#[udf(immutable)]
fn add_one(x: i32) -> i32 {
    x + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add_one(1), 2);
    }
}
RUST

echo "sdk-outside: native cargo test of a crate depending on a copy of udf-sdk/"
RUSTFLAGS="-D warnings" cargo test --quiet --manifest-path "$WORK/myudfs/Cargo.toml" \
    --target-dir "$WORK/target"

echo "sdk-outside: the same crate built for wasm"
CARGO_TARGET_DIR=$WORK/wasm-target bash "$ROOT/scripts/build-wasm.sh" rust "$WORK/myudfs" \
    "$WORK/myudfs.wasm" wasm32-unknown-unknown
for section in plwasm.udfs plwasm.abi; do
    if ! grep -aq "$section" "$WORK/myudfs.wasm"; then
        echo "sdk-outside: myudfs.wasm has no $section section" >&2
        exit 1
    fi
done

echo "sdk-outside: cargo package of both SDK crates (each verified by building its package alone)"
# A fresh target directory each run: cargo unpacks the packaged macro crate from a temporary
# registry inside it, keyed by its path, and would reuse an older unpacked copy of the same
# version (as a second run on one machine did).
package_target=$(mktemp -d "$WORK/package-target.XXXXXX")
trap 'rm -rf "$package_target"' EXIT
cargo package --quiet --allow-dirty -p plwasm-udf-macros -p plwasm-udf \
    --manifest-path "$ROOT/Cargo.toml" --target-dir "$package_target"
ls "$package_target"/package/plwasm-udf-0.1.0.crate \
    "$package_target"/package/plwasm-udf-macros-0.1.0.crate
echo "sdk-outside: ok"

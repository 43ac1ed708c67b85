#!/usr/bin/env bash
# Set up plwasm on Debian 12: install what is missing, then build and install the extension into
# the system PostgreSQL. Idempotent; quick when nothing changed.
#
#   bash scripts/setup.sh                   # dependencies + build + install
#   bash scripts/setup.sh --deps-only       # dependencies only
#   bash scripts/setup.sh --wasm-toolchains # also compilers to build test modules to wasm:
#                                           # clang + wasi-libc (C), Debian's rustc-web (Rust)
#
# Environment: PLWASM_PG (default 15), PLWASM_PROFILE (release or dev, default release: what
# users run; PLWASM_PROFILE=dev builds faster while developing and runs wasm calls far slower).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${PLWASM_PG:-15}
PROFILE=${PLWASM_PROFILE:-release}
PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config
DEPS_ONLY=0
WASM_TOOLCHAINS=0
for arg in "$@"; do
    case $arg in
        --deps-only) DEPS_ONLY=1 ;;
        --wasm-toolchains) WASM_TOOLCHAINS=1 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*"; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: the server, its headers, clang for bindgen, contrib (dblink, used by the
#    tests), sudo (cargo-pgrx --runas uses it).
packages=(postgresql-$PG postgresql-server-dev-$PG postgresql-contrib libclang-dev clang sudo pkg-config)
# Building modules to wasm without internet: C with clang (compiler-rt builtins for wasm32,
# wasi-libc, wasm-ld), Rust with Debian's rustc-web and its std sources (-Zbuild-std), whose
# rust-lld is lld-22.
((WASM_TOOLCHAINS)) && packages+=(wasi-libc lld libclang-rt-14-dev-wasm32 rustc-web cargo-web rust-web-src lld-22)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. cargo-pgrx, exactly the version the extension is built with.
if ! cargo pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
    log "installing cargo-pgrx $PGRX_VERSION (takes several minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

# 3. Point pgrx at the system PostgreSQL (no download, no source build).
if ! grep -qs "^pg$PG = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "cargo pgrx init --pg$PG $PG_CONFIG"
    cargo pgrx init "--pg$PG" "$PG_CONFIG" >/dev/null
fi

((DEPS_ONLY)) && exit 0

# 4. Build and install, unless the installed build came from these exact sources.
cd "$ROOT"
stamp_dir=${CARGO_TARGET_DIR:-$ROOT/target}
stamp_file=$stamp_dir/.plwasm-installed-pg$PG-$PROFILE
# The sources (tracked or new, not ignored), hashed before the build: a source edited while it
# runs is not taken for built. Then the installed library itself.
sources=$(git ls-files -z -co --exclude-standard Cargo.toml Cargo.lock extension/Cargo.toml \
    extension/plwasm.control extension/src sql | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
source_stamp() {
    echo "$sources $(sha256sum "$($PG_CONFIG --pkglibdir)/plwasm.so" 2>/dev/null | cut -d' ' -f1)"
}
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$(source_stamp)" ]]; then
    log "plwasm is installed and up to date"
    exit 0
fi
log "building and installing plwasm ($PROFILE profile)"
profile_args=()
[[ "$PROFILE" == dev ]] && profile_args+=(--debug)
package=$stamp_dir/plwasm-package-pg$PG-$PROFILE
rm -rf "$package"
cargo pgrx package --pg-config "$PG_CONFIG" "${profile_args[@]}" \
    --manifest-path "$ROOT/extension/Cargo.toml" --out-dir "$package"
# Install each file by renaming a complete copy over the old one: a running backend keeps the
# library it loaded (overwriting it in place, as cargo pgrx install does, can crash it), and the
# path never points at a missing or half-written file.
(cd "$package" && find . -type f) | while read -r file; do
    dest=/${file#./}
    mode=644
    [[ $dest == *.so ]] && mode=755
    as_root install -D -m "$mode" "$package/$file" "$dest.plwasm-new"
    as_root mv -f "$dest.plwasm-new" "$dest"
done
mkdir -p "$stamp_dir"
source_stamp > "$stamp_file"

#!/usr/bin/env bash
# Run the SQL regression tests in extension/tests/pg_regress with pg_regress, against a
# throw-away cluster running as an unprivileged OS user.
#
#   bash tests/regress.sh            # run all (setup first, then the files in a shuffled order
#                                    # that PLWASM_REGRESS_SEED=N repeats), compare with expected/
#   bash tests/regress.sh --accept   # ... and copy changed outputs over expected/ (review the diff!)
#   bash tests/regress.sh traps      # only setup + the named tests
#
# The WASI tests need the psql variable wasmdir (fixtures built here), so they only run through
# this script. Non-root developers can run the other files with `cargo pgrx regress`; this script
# exists because
# cargo-pgrx 0.18.1's regress starts its server as the calling user (root in CI, which PostgreSQL
# refuses). It reproduces the settings cargo-pgrx uses (client_min_messages=warning, psql
# VERBOSITY=terse), so expected output is the same for both.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/regress
PORT=${PLWASM_REGRESS_PORT:-28899}
SUITE=$ROOT/extension/tests/pg_regress
ACCEPT=0
tests=()
for arg in "$@"; do
    case $arg in
        --accept) ACCEPT=1 ;;
        *) tests+=("$arg") ;;
    esac
done
if ((${#tests[@]} == 0)); then
    # Every file must stand alone and pass in any order: the whole suite runs in an order shuffled
    # by a seed it prints (PLWASM_REGRESS_SEED=N repeats an order).
    seed=${PLWASM_REGRESS_SEED:-$RANDOM}
    echo "regress: file order shuffled with PLWASM_REGRESS_SEED=$seed"
    # The order: each name sorted by the SHA-256 of "seed name" (the same on every machine).
    mapfile -t tests < <(for f in "$SUITE"/sql/*.sql; do
        name=$(basename "$f" .sql)
        [[ $name == setup ]] || printf '%s %s\n' "$(printf '%s %s' "$seed" "$name" | sha256sum | cut -c1-16)" "$name"
    done | sort | cut -d' ' -f2)
    files=$(find "$SUITE/sql" -name '*.sql' ! -name setup.sql | wc -l)
    if ((${#tests[@]} != files)); then
        echo "regress: the shuffled list has ${#tests[@]} files, not $files" >&2
        exit 1
    fi
    echo "regress: ${tests[*]}"
fi

bash "$ROOT/scripts/setup.sh" --wasm-toolchains

# WebAssembly fixtures built from source for this run (the WASI tests load them).
wasm_dir=$WORK/wasm
mkdir -p "$wasm_dir"
bash "$ROOT/scripts/build-wasm.sh" c "$ROOT/tests/wasi/c_hello.c" "$wasm_dir/c_hello.wasm"
bash "$ROOT/scripts/build-wasm.sh" c "$ROOT/examples/c/c_udfs.c" "$wasm_dir/c_udfs.wasm"
CARGO_TARGET_DIR=$WORK/wasm-target bash "$ROOT/scripts/build-wasm.sh" rust \
    "$ROOT/tests/wasi/rust-hello" "$wasm_dir/rust_hello.wasm"
for crate in examples/rust/text-udfs examples/rust/vector-udfs examples/rust/json-udfs examples/rust/triggers \
    tests/sdk-signatures tests/sdk-errors; do
    name=$(basename "$crate")
    CARGO_TARGET_DIR=$WORK/wasm-target bash "$ROOT/scripts/build-wasm.sh" rust \
        "$ROOT/$crate" "$wasm_dir/${name//-/_}.wasm" wasm32-unknown-unknown
done
chmod -R a+rX "$wasm_dir"

# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"
# RUST_BACKTRACE=1: a Rust backtrace must never reach a client, even when the server runs with it.
CLUSTER_ENV="RUST_BACKTRACE=1" cluster_start "$WORK" "$PORT" client_min_messages=warning
trap 'cluster_stop "$WORK"' EXIT

PGOPTIONS="-c client_min_messages=warning" cluster_psql "$WORK" "$PORT" -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS plwasm_regress" -c "CREATE DATABASE plwasm_regress"

out=$WORK/output
rm -rf "$out"
mkdir -p "$out"
launcher=$WORK/launcher.sh
printf '#!/bin/bash\n$* -v VERBOSITY=terse -v wasmdir=%s\n' "$wasm_dir" > "$launcher"
chmod 755 "$launcher"

status=0
(cd "$SUITE" && "$($PG_BIN/pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress" \
    --bindir="$PG_BIN" --host="$WORK" --port="$PORT" --user=postgres \
    --use-existing --dbname=plwasm_regress --launcher="$launcher" \
    --inputdir="$SUITE" --outputdir="$out" \
    setup "${tests[@]}") || status=$?

if ((status != 0)); then
    [[ -f "$out/regression.diffs" ]] && cat "$out/regression.diffs"
    if ((ACCEPT)); then
        for f in "$out"/results/*.out; do
            cp "$f" "$SUITE/expected/$(basename "$f")"
        done
        echo "accepted new output into $SUITE/expected (review with git diff)"
    fi
fi
exit "$status"

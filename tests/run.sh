#!/usr/bin/env bash
# The whole plwasm test suite. CI runs exactly this (through .ci/run).
#
#   1. cargo fmt --check and cargo clippy -D warnings
#   2. cargo pgrx test   — #[pg_test] in-backend tests and plain unit tests, in a real PostgreSQL
#   3. cargo pgrx regress — extension/tests/pg_regress SQL files against expected output
#   4. the demo (scripts/demo.sh) — the README's first command, end to end
#
# PostgreSQL refuses to run as root; as root, clusters run as the `postgres` OS user.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${PLWASM_PG:-15}
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}
cd "$ROOT"

bash scripts/setup.sh --deps-only || { echo "setup failed"; exit 1; }

runas=()
if [[ $(id -u) == 0 ]]; then
    runas=(--runas postgres)
    mkdir -p "$WORK"
    chown postgres "$WORK"
    # The postgres user reads the regression files and writes results next to them.
    chmod -R o+rX "$ROOT/extension/tests" 2>/dev/null || true
    mkdir -p "$ROOT/extension/tests/pg_regress/results"
    chown postgres "$ROOT/extension/tests/pg_regress" "$ROOT/extension/tests/pg_regress/results"
else
    mkdir -p "$WORK"
fi

passed=0
failed=0
failures=()
stage() {
    local name=$1
    shift
    echo
    echo "=== $name: $*"
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== $name: FAILED"
    fi
}

regress() {
    local out
    out=$(mktemp)
    cargo pgrx regress "pg$PG" "${runas[@]}" --pgdata "$WORK/regress-data" --resetdb \
        --manifest-path extension/Cargo.toml 2>&1 | tee "$out"
    local status=${PIPESTATUS[0]}
    # A test without expected output is skipped by pgrx; in this suite that is a failure.
    if grep -q "SKIP" "$out"; then
        echo "regression tests without expected output (see SKIP above)"
        status=1
    fi
    rm -f "$out"
    return "$status"
}

stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --all-targets --features "pg$PG pg_test" -- -D warnings
stage pg_test cargo pgrx test "pg$PG" "${runas[@]}" --pgdata "$WORK/test-data" \
    --manifest-path extension/Cargo.toml
stage regress regress
stage demo bash scripts/demo.sh

echo
((failed)) && echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
exit $((failed > 0))

#!/usr/bin/env bash
# Fuzzing of everything user input reaches, in a throw-away cluster started fresh by this test
# (as the unprivileged `postgres` OS user when run as root, with RUST_BACKTRACE=1 so a host
# backtrace would show).
#
# The generator (tests/fuzz/, its own Cargo workspace) makes each case from the seed and the
# case number alone, and runs its statements in a session of the cluster (one backend runs 25
# cases, then the next one starts): wasm-smith modules (valid under plwasm's feature set:
# functions with scalar signatures, some over text/bytea with a memory and an allocator, some
# importing the plwasm host API and WASI; start functions, reactors, tables, custom sections,
# `plwasm.udfs` and `plwasm.abi` sections) through wasm.load, CREATE FUNCTION (matching and
# mismatching signatures, exports that are no function), calls with random and edge arguments
# (0, -1, MIN/MAX, NaN, infinities, subnormals, NULL, long text) under a random wasm.fuel_limit
# and wasm.max_memory, replaces, rollbacks and wasm.create_functions; the same modules
# mutated (bit flips, truncation, inserted and deleted bytes, corrupted section sizes and
# vector counts, duplicated and swapped sections); modules made with proposals plwasm refuses
# (threads, memory64, multi-memory, exceptions, tail calls, relaxed SIMD, ...); WAT text of
# the modules, mutated (deep nesting, broken tokens, edge numbers), through wasm.wat and as
# inline function bodies. Every statement runs under statement_timeout = 2s.
#
# Checks: no backend crashed or was lost, and the postmaster never restarted (checkpointer pid
# unchanged; no crash, PANIC or restart in the server log); no statement ended in XX000 or
# showed a Rust panic, backtrace or "internal error", on the client or in the server log; no
# statement ran past the hang limit (10 s) and the whole run stayed within its time bound;
# every statement ended in an outcome it allows (wasm.load of a module that wasmparser validates
# with plwasm's features loads; one it refuses is refused with 22P03; a CREATE FUNCTION with a
# matching signature succeeds, a mismatching one is 42P13, ...); the background artifact
# worker never failed. And that the run exercised things, so it cannot pass vacuously: enough
# cases; most valid modules loaded; calls returned values; traps, fuel and statement_timeout
# errors happened; mutants, refused proposals and bad WAT were refused with 22P03 / 42601.
# Every saved case in tests/fuzz/corpus/ (one .sql file per case, as the generator writes it)
# is replayed first with the same checks.
#
# On a failure the case's SQL script and its inputs (module.wasm, module.wat, ...) are saved
# under $WORK/run/failures/, with the command that makes the same cases again.
#
#   bash tests/fuzz.sh           # smoke: 90 s of cases, ~2 min in all with the generator's
#                                # build from cold (25 s on an idle 2-core machine, warm registry)
#   bash tests/fuzz.sh --long    # 10 minutes
#   PLWASM_FUZZ_SEED=N PLWASM_FUZZ_FIRST=K PLWASM_FUZZ_CASES=M bash tests/fuzz.sh  # cases K..K+M-1
#   PLWASM_FUZZ_SECONDS=S        # run for S seconds instead
#   $PLWASM_TEST_DIR/fuzz-target/debug/plwasm-fuzz script --seed N --case K  # one case's SQL
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}
WORK=$BASE/fuzz
TARGET=$BASE/fuzz-target
PORT=${PLWASM_FUZZ_PORT:-28940}
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

long=0
[[ "${1:-}" == --long ]] && long=1
SEED=${PLWASM_FUZZ_SEED:-$(((RANDOM << 15 | RANDOM) + 1))}
FIRST=${PLWASM_FUZZ_FIRST:-0}
CASES=${PLWASM_FUZZ_CASES:-}
SECS=${PLWASM_FUZZ_SECONDS:-}
if [[ -z "$SECS" && -z "$CASES" ]]; then
    SECS=90
    ((long)) && SECS=600
fi
# The minimum number of cases a run must make (a smoke run makes about 3 per second).
min_cases=50
if [[ -n "$CASES" ]]; then
    min_cases=$CASES
elif ((SECS < 60)); then
    min_cases=$((SECS / 2))
fi
# Sanity thresholds apply to runs of at least 200 cases or 60 seconds (not to a replay of a
# few cases).
sanity=1
[[ -n "$CASES" ]] && ((CASES < 200)) && sanity=0
[[ -z "$CASES" ]] && ((SECS < 60)) && sanity=0

passed=0
failed=0
check() { # check NAME EXPECTED ACTUAL
    if [[ "$2" == "$3" ]]; then
        passed=$((passed + 1))
        echo "ok - $1"
    else
        failed=$((failed + 1))
        echo "not ok - $1: expected [$2], got [$3]"
    fi
}
# at_least NAME MIN ACTUAL
at_least() {
    if [[ "$3" =~ ^[0-9]+$ ]] && (($3 >= $2)); then
        check "$1 (at least $2: $3)" ok ok
    else
        check "$1" "at least $2" "$3"
    fi
}

echo "# seed $SEED (repeat with PLWASM_FUZZ_SEED=$SEED)"
build_start=$SECONDS
CARGO_TARGET_DIR=$TARGET cargo build --locked --quiet --manifest-path "$ROOT/tests/fuzz/Cargo.toml"
check "the generator builds" 0 "$?"
echo "# generator build: $((SECONDS - build_start)) s"
BIN=$TARGET/debug/plwasm-fuzz
[[ -x "$BIN" ]] || { echo "$passed passed, $failed failed"; exit 1; }

cluster_stop "$WORK"
rm -rf "$WORK"
CLUSTER_ENV="RUST_BACKTRACE=1" cluster_start "$WORK" "$PORT" || exit 1
trap 'cluster_stop "$WORK"' EXIT
log=$WORK/server.log
sql() { cluster_psql "$WORK" "$PORT" -d fuzz -v ON_ERROR_STOP=1 -At "$@" 2>&1; }
setup=$(cluster_psql "$WORK" "$PORT" -d postgres -v ON_ERROR_STOP=1 -At 2>&1 <<'EOF'
SET client_min_messages = warning;
-- The SQLSTATE in every log line; no statement text (modules are long hex strings).
ALTER SYSTEM SET log_line_prefix = '%m [%p] %e ';
ALTER SYSTEM SET log_min_error_statement = 'panic';
SELECT pg_reload_conf() \g /dev/null
CREATE DATABASE fuzz ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c fuzz
SET client_min_messages = warning;
CREATE EXTENSION plwasm;
CREATE SCHEMA fz;
EOF
)
[[ -z "$(tr -d '\n' <<<"$setup")" ]] || { echo "setup failed: $setup"; exit 1; }
checkpointer() { sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"; }
started=$(checkpointer)
conn="host=$WORK port=$PORT user=postgres dbname=fuzz application_name=plwasm-fuzz"

# Saved cases first.
mapfile -t corpus < <(ls "$ROOT"/tests/fuzz/corpus/*.sql 2>/dev/null)
if ((${#corpus[@]})); then
    "$BIN" replay --conn "$conn" --out "$WORK/corpus" "${corpus[@]}" >"$WORK/corpus.out" 2>&1
    check "every saved case in tests/fuzz/corpus passes (${#corpus[@]})" 0 "$?"
    grep '^FAILURE' "$WORK/corpus.out"
fi

# The run. The generator stops starting cases after SECS seconds; one case takes a few seconds
# at most (statements are bounded by statement_timeout), so the whole run is bounded too.
args=(run --conn "$conn" --out "$WORK/run" --seed "$SEED" --first "$FIRST")
[[ -n "$CASES" ]] && args+=(--cases "$CASES")
[[ -n "$SECS" ]] && args+=(--seconds "$SECS")
bound=$((${SECS:-$((${CASES:-0} * 2))} + 180))
run_start=$SECONDS
timeout --signal=INT --kill-after=30 "$bound" "$BIN" "${args[@]}" > >(tee "$WORK/run.out") 2>&1
rc=$?
echo "# run: $((SECONDS - run_start)) s"
check "the run ended within its time bound (${bound} s; no statement it could not stop)" "no" \
    "$( ((rc == 124 || rc == 137 || rc == 130)) && echo yes || echo no)"
check "the generator could stop every statement it started (no unkillable backend)" "" \
    "$(cat "$WORK/run/unkillable.txt" 2>/dev/null)"
check "no failing case (crash, lost backend, XX000, panic text, hang, unexpected outcome)" "0|0" \
    "$rc|$( [[ -f "$WORK/run/failures.txt" ]] && wc -l <"$WORK/run/failures.txt" || echo missing)"

stat() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$WORK/run/stats.txt" 2>/dev/null; }
stats_sum() { local total=0 k; for k in "$@"; do total=$((total + $(stat "$k"))); done; echo "$total"; }
check "no statement lost its backend or ended in FATAL/PANIC" 0 "$(stat lost)"
check "no statement ended in XX000 (internal error)" 0 "$(stat internal)"
check "no error showed a Rust panic, backtrace or 'internal error'" 0 "$(stat panic_text)"
check "no statement ran past the hang limit" 0 "$(stat hangs)"
check "every statement ended in an outcome it allows" 0 "$(stat mismatches)"
check "the postmaster never restarted (same checkpointer)" "$started" "$(checkpointer)"
check "the server log shows no crash, PANIC or restart" "" \
    "$(grep -E 'terminated by signal|was terminated|PANIC|all server processes terminated|exited with exit code [^01]|server process .* exited|database system was interrupted|in recovery' "$log" | head -5)"
check "the server log shows no XX000 or Rust panic" "" \
    "$(grep -E ' XX000 |panicked|RUST_BACKTRACE|stack backtrace' "$log" | head -5)"
check "the background artifact worker never failed" "" \
    "$(grep -E 'plwasm artifact refresh.*exited with exit code' "$log" | head -5)"

# Not vacuous: the run exercised what it is for.
cases=$(stat cases)
at_least "cases run" "$min_cases" "$cases"
loads=$(stat load.total)
loaded=$(stat load.ok)
if ((sanity)); then
    at_least "valid modules loaded (90% of $loads)" $(((loads * 9 + 9) / 10)) "$loaded"
    at_least "calls that returned a value" 100 "$(stats_sum call.rows call_rows.rows)"
    at_least "functions created over loaded modules" 50 "$(stat create.ok)"
    at_least "mismatching signatures refused with 42P13" 5 "$(stat create_mismatch.42P13)"
    at_least "traps (38000)" 5 "$(stats_sum call.38000 call_rows.38000)"
    at_least "calls stopped by wasm.fuel_limit or wasm.max_memory (54000)" 1 "$(stats_sum call.54000 call_rows.54000)"
    at_least "mutated modules refused with 22P03" 10 "$(stat load_mutant.22P03)"
    at_least "modules with refused proposals refused with 22P03" 3 "$(stat load_refused.22P03)"
    at_least "reserved export names and foreign ABIs refused (22P03, 0A000)" 1 "$(stats_sum load_bad.22P03 load_bad.0A000)"
    at_least "WAT compiled by wasm.wat" 5 "$(stat wat.ok)"
    at_least "mutated WAT refused with 42601" 3 "$(stat wat.42601)"
    at_least "inline bodies created" 5 "$(stat create_inline.ok)"
    at_least "wasm errors raised in parallel workers (force_parallel_mode cases)" 1 \
        "$(grep -c 'CONTEXT:  parallel worker' "$log")"
fi
echo "# $cases cases, $(stat statements) statements in $(stat seconds) s; $loaded of $loads valid modules loaded;" \
    "$(stats_sum call.rows call_rows.rows) calls returned a value; slowest statement $(stat slowest_ms) ms ($(stat slowest_what))"
echo "# outcomes by SQLSTATE: $(awk '$1 ~ /^sqlstate\./ { sub(/^sqlstate\./, "", $1); printf "%s=%s ", $1, $2 }' "$WORK/run/stats.txt" 2>/dev/null)"
if ((failed)); then
    echo "# seed $SEED; failing cases (inputs and case.sql under $WORK/run/failures/):"
    sed 's/^/#   /' "$WORK/run/failures.txt" 2>/dev/null | head -20
    echo "# the same cases again: PLWASM_FUZZ_SEED=$SEED PLWASM_FUZZ_FIRST=$FIRST${CASES:+ PLWASM_FUZZ_CASES=$CASES}${SECS:+ PLWASM_FUZZ_SECONDS=$SECS} bash tests/fuzz.sh"
fi
echo "$passed passed, $failed failed"
((failed == 0))

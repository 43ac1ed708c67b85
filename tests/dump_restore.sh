#!/usr/bin/env bash
# Dump and restore a database that uses plwasm, with PostgreSQL's own pg_dump and pg_restore, in
# a throw-away cluster (as the unprivileged `postgres` OS user when run as root).
#
# Checks: modules and functions come back; tables and domains whose CHECK constraints call wasm
# functions keep their rows with a plain pg_restore, a parallel one run section by section, and a
# plain SQL script
# (pg_dump writes those constraints after the data, see extension/src/catalog/restore_order.rs), and
# through scripts/restore-list.sh; a module's owner is restored by role name, not by OID; and —
# recorded as a known limitation, so a change in it is noticed — a stored generated column that
# calls a wasm function needs scripts/restore-list.sh (without it, its table's rows are lost).
#
#   bash tests/dump_restore.sh        # prints one line per check, then "N passed, M failed"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/dump-restore
PORT=${PLWASM_DUMP_PORT:-28897}
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

cluster_start "$WORK" "$PORT" client_min_messages=warning || exit 1
trap 'cluster_stop "$WORK"' EXIT
dump=$WORK/db.dump

sql() { # sql DB SQL... : run as superuser postgres, stop at the first error
    local db=$1
    shift
    cluster_psql "$WORK" "$PORT" -d "$db" -v ON_ERROR_STOP=1 -At "$@"
}
tool() { as_cluster_user "$PG_BIN/$1" -h "$WORK" -p "$PORT" -U postgres "${@:2}"; }

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

for db in src dst_naive dst_again dst_psql dst_jobs dst_list dst_parallel dst_plain src_gen dst_gen dst_gen_list; do
    sql postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null
done
sql postgres -c "DROP ROLE IF EXISTS dr_loader" -c "DROP ROLE IF EXISTS dr_filler" >/dev/null
sql postgres -c "CREATE ROLE dr_loader LOGIN" >/dev/null
sql postgres -c "CREATE DATABASE src" >/dev/null
sql src >/dev/null <<'EOF'
CREATE EXTENSION plwasm;
GRANT wasm_loader TO dr_loader;
SET ROLE dr_loader;
SELECT wasm.load('checks', wasm.wat('(module (func (export "positive") (param i32) (result i32)
    (i32.gt_s (local.get 0) (i32.const 0))))'));
RESET ROLE;
CREATE FUNCTION positive(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS 'checks';
-- A table in a schema that sorts before "wasm", and one after it.
CREATE TABLE public.orders (qty int CHECK (positive(qty)));
INSERT INTO public.orders SELECT g FROM generate_series(1, 100) g;
CREATE SCHEMA zeta;
CREATE TABLE zeta.items (qty int CHECK (public.positive(qty)));
INSERT INTO zeta.items VALUES (5), (6);
-- A domain, a partitioned table whose constraint was added by ALTER TABLE, and a constraint
-- over a function that was re-bound to the module after the constraint was created.
CREATE DOMAIN zeta.qty AS int CHECK (public.positive(VALUE));
CREATE TABLE zeta.boxes (q zeta.qty);
INSERT INTO zeta.boxes VALUES (1), (2), (3);
CREATE TABLE public.parted (x int) PARTITION BY RANGE (x);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (1) TO (1000);
ALTER TABLE public.parted ADD CONSTRAINT parted_positive CHECK (positive(x));
INSERT INTO public.parted SELECT g FROM generate_series(1, 10) g;
CREATE FUNCTION later(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "later") (param i32) (result i32) i32.const 1))';
CREATE TABLE public.late (x int CHECK (later(x)));
INSERT INTO public.late VALUES (1), (2), (3), (4);
CREATE OR REPLACE FUNCTION later(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    'checks:positive';
-- Its TOC entry reads "TABLE DATA wasm module_store t postgres": not the modules.
CREATE SCHEMA "wasm module_store";
CREATE TABLE "wasm module_store".t (x int);
INSERT INTO "wasm module_store".t VALUES (1);
EOF
# A module whose owner is dropped before the dump.
sql postgres -c "DROP ROLE IF EXISTS dr_gone" -c "CREATE ROLE dr_gone LOGIN" >/dev/null
sql src -c "GRANT wasm_loader TO dr_gone" -c "SET ROLE dr_gone" \
    -c "SELECT wasm.load('orphan', wasm.wat('(module)'))" >/dev/null
sql postgres -c "DROP ROLE dr_gone" >/dev/null
# A module with a capability (wasm.module_capabilities is dumped too).
sql src -c "SELECT wasm.set_capabilities('checks', '{query}')" >/dev/null
# A module with a previous version (wasm.module_history is dumped too).
sql src -c "SELECT wasm.load('versioned', wasm.wat('(module (func (export \"v\") (result i32) i32.const 1))'))" \
    -c "SELECT wasm.load('versioned', wasm.wat('(module (func (export \"v\") (result i32) i32.const 2))'), true)" >/dev/null
tool pg_dump -Fc -f "$dump" src || { echo "pg_dump failed"; exit 1; }
tool pg_dump -f "$WORK/plain.sql" src || { echo "pg_dump failed"; exit 1; }
chmod a+r "$WORK/plain.sql"

check "the constraints that call the module are dumped after the data (5; parted_1 inherits one)" "5" \
    "$(grep -c '^    ADD CONSTRAINT .*CHECK (.*\(positive\|later\)(' "$WORK/plain.sql")"

# orders / items / boxes / parted / late / module
all_rows="100/2/3/10/4/1"
counts() { sql "$1" -c "SELECT concat_ws('/', (SELECT count(*) FROM public.orders), (SELECT count(*) FROM zeta.items), (SELECT count(*) FROM zeta.boxes), (SELECT count(*) FROM public.parted), (SELECT count(*) FROM public.late), (SELECT count(*) FROM wasm.modules WHERE name = 'checks'))"; }

# The owner is restored by name: recreate the role so it gets another OID before restoring.
sql postgres -c "DROP DATABASE src" -c "DROP ROLE dr_loader" -c "CREATE ROLE dr_filler" \
    -c "CREATE ROLE dr_loader LOGIN" -c "GRANT wasm_loader TO dr_loader" >/dev/null

# pg_restore alone restores public.orders before wasm.module_store (pg_dump orders table data by
# schema name); the CHECK constraints that need the module come after all the data.
sql postgres -c "CREATE DATABASE dst_naive" >/dev/null
tool pg_restore --exit-on-error -d dst_naive "$dump"
check "plain pg_restore succeeds" "0" "$?"
check "plain pg_restore keeps the rows of tables and domains whose CHECK needs a module" \
    "$all_rows" "$(counts dst_naive)"
check "the restored constraints still check" "23514|23514|23514|23514|23514" \
    "$(for stmt in "INSERT INTO public.orders VALUES (-1)" "INSERT INTO zeta.items VALUES (-1)" \
        "INSERT INTO zeta.boxes VALUES (-1)" \
        "INSERT INTO public.parted VALUES (-1)" "INSERT INTO public.late VALUES (-1)"; do
        sql dst_naive -c "DO \$\$ BEGIN $stmt; EXCEPTION WHEN OTHERS THEN RAISE WARNING '%', SQLSTATE; END \$\$" 2>&1 |
            grep -o '[0-9A-Z]\{5\}$'
    done | paste -sd'|')"
check "the restored constraints keep their dependency on the modules" "6" \
    "$(sql dst_naive -c "SELECT count(*) FROM pg_depend WHERE classid = 'pg_constraint'::regclass AND refobjid = 'wasm.module_store_pkey'::regclass")"
# So a dump of the restored database restores as well.
sql postgres -c "DROP DATABASE IF EXISTS dst_again" -c "CREATE DATABASE dst_again" >/dev/null
tool pg_dump -Fc -f "$WORK/again.dump" dst_naive && tool pg_restore --exit-on-error -d dst_again "$WORK/again.dump"
check "a dump of the restored database restores every row" "$all_rows" "$(counts dst_again)"

# Parallel, section by section: every post-data item (the constraints) runs after all the data.
# (A single pg_restore -j may add a constraint as soon as its own table is loaded, possibly
# before the modules: not covered, see docs/sql-reference.md.)
sql postgres -c "CREATE DATABASE dst_jobs" >/dev/null
tool pg_restore --exit-on-error --section=pre-data -d dst_jobs "$dump" &&
    tool pg_restore --exit-on-error -j 2 --section=data -d dst_jobs "$dump" &&
    tool pg_restore --exit-on-error -j 2 --section=post-data -d dst_jobs "$dump"
check "parallel pg_restore, section by section, succeeds" "0" "$?"
check "parallel pg_restore -j 2, section by section, keeps every row" "$all_rows" "$(counts dst_jobs)"
check "... and every constraint" "6" \
    "$(sql dst_jobs -c "SELECT count(*) FROM pg_depend WHERE classid = 'pg_constraint'::regclass AND refobjid = 'wasm.module_store_pkey'::regclass")"

sql postgres -c "CREATE DATABASE dst_psql" >/dev/null
sql dst_psql -q --single-transaction -f "$WORK/plain.sql" >/dev/null
check "psql runs the plain script without an error" "0" "$?"
check "a plain pg_dump script run by psql keeps every row" "$all_rows" "$(counts dst_psql)"

# Serial restore through the reordered list.
tool pg_restore -l "$dump" | bash "$ROOT/scripts/restore-list.sh" > "$WORK/db.list"
sql postgres -c "CREATE DATABASE dst_list" >/dev/null
tool pg_restore --exit-on-error -L "$WORK/db.list" -d dst_list "$dump"
check "pg_restore -L with restore-list.sh keeps every row" "$all_rows" "$(counts dst_list)"
check "compiled artifacts are not dumped (machine code of one build and CPU)" "0" \
    "$(tool pg_restore -l "$dump" | grep -c 'TABLE DATA wasm module_artifacts')"
check "a restored module works at its first call" "t" "$(sql dst_list -c "SELECT positive(1)")"
# The first backend that had to compile it (the restore's own constraint checks, or the call
# above) started a background worker that stores the missing artifacts; then new sessions
# deserialize.
for _ in $(seq 600); do
    [[ "$(sql dst_list -c "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'checks'")" == 1 ]] && break
    sleep 0.1
done
check "a background worker stores the restored module's artifact" "1" \
    "$(sql dst_list -c "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'checks'")"
check "a new session then deserializes it instead of compiling" "t|0|1" \
    "$(sql dst_list -c "SELECT positive(1)" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|' | tr -s '|')"
check "restored functions call their module" "true|false" \
    "$(sql dst_list -c "SELECT positive(3)::text || '|' || positive(-3)::text")"
check "the module's owner is restored by role name" "dr_loader" \
    "$(sql dst_list -c "SELECT owner FROM wasm.modules WHERE name = 'checks'")"
check "a module whose owner was dropped comes back without an owner" "t" \
    "$(sql dst_list -c "SELECT owner IS NULL FROM wasm.modules WHERE name = 'orphan'")"
check "the restored owner (a new OID) may replace its module" "ok" \
    "$(sql dst_list -c "SET ROLE dr_loader" -c "SELECT wasm.load('checks', wasm.wat('(module (func (export \"positive\") (param i32) (result i32) i32.const 1))'), true)" -c "SELECT 'ok'" | tail -1)"

check "a module's previous versions are restored, and it can be rolled back to them" "1|false,2|true,1|true" \
    "$(sql dst_list -c "SELECT string_agg(version || '|' || current, ',' ORDER BY version) FROM wasm.module_versions WHERE name = 'versioned'" \
        -c "SELECT wasm.rollback('versioned')" \
        -c "SELECT string_agg(version || '|' || current, ',' ORDER BY version) FROM wasm.module_versions WHERE name = 'versioned'" | paste -sd',' | sed 's/,,/,/')"
check "a module's capabilities are restored" "{query}|postgres" \
    "$(sql dst_list -c "SELECT capabilities::text || '|' || granted_by FROM wasm.module_capabilities WHERE name = 'checks'")"
check "restore-list.sh --modules-only picks the modules' entry alone" "1" \
    "$(tool pg_restore -l "$dump" | bash "$ROOT/scripts/restore-list.sh" --modules-only | wc -l)"

# Parallel restore: schema, then modules, then the rest with -j.
tool pg_restore -l "$dump" | bash "$ROOT/scripts/restore-list.sh" --modules-only > "$WORK/modules.list"
tool pg_restore -l "$dump" | bash "$ROOT/scripts/restore-list.sh" --without-modules > "$WORK/rest.list"
sql postgres -c "CREATE DATABASE dst_parallel" >/dev/null
tool pg_restore --exit-on-error --section=pre-data -d dst_parallel "$dump" &&
    tool pg_restore --exit-on-error -L "$WORK/modules.list" -d dst_parallel "$dump" &&
    tool pg_restore --exit-on-error -j 2 --section=data --section=post-data -L "$WORK/rest.list" \
        -d dst_parallel "$dump"
check "parallel restore in three steps keeps every row" "$all_rows" "$(counts dst_parallel)"
check "a schema named \"wasm module_store\" is restored with the rest" "1" \
    "$(sql dst_parallel -c 'SELECT count(*) FROM "wasm module_store".t')"

# A plain SQL script in the right order, from the same list.
tool pg_restore -L "$WORK/db.list" -f "$WORK/db.sql" "$dump"
chmod a+r "$WORK/db.sql"
sql postgres -c "CREATE DATABASE dst_plain" >/dev/null
sql dst_plain -q -f "$WORK/db.sql" >/dev/null
check "a plain SQL script made with the list keeps every row" "$all_rows" "$(counts dst_plain)"

# Known limitation: a stored generated column is computed while its table's data is copied in,
# and cannot be added after the data, so its module must come first: scripts/restore-list.sh.
sql postgres -c "CREATE DATABASE src_gen" >/dev/null
sql src_gen >/dev/null <<'EOF'
CREATE EXTENSION plwasm;
SELECT wasm.load('gen', wasm.wat('(module (func (export "double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))'));
CREATE FUNCTION double(int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'gen';
CREATE TABLE public.doubled (x int, d int GENERATED ALWAYS AS (double(x)) STORED);
INSERT INTO public.doubled SELECT g FROM generate_series(1, 5) g;
EOF
tool pg_dump -Fc -f "$WORK/gen.dump" src_gen
sql postgres -c "CREATE DATABASE dst_gen" -c "CREATE DATABASE dst_gen_list" >/dev/null
tool pg_restore -d dst_gen "$WORK/gen.dump" >/dev/null 2>&1
check "plain pg_restore loses the rows of a table with a generated column over a module (known)" \
    "0" "$(sql dst_gen -c "SELECT count(*) FROM public.doubled")"
tool pg_restore -l "$WORK/gen.dump" | bash "$ROOT/scripts/restore-list.sh" > "$WORK/gen.list"
tool pg_restore --exit-on-error -L "$WORK/gen.list" -d dst_gen_list "$WORK/gen.dump"
check "pg_restore -L with restore-list.sh keeps them" "5|30" \
    "$(sql dst_gen_list -c "SELECT count(*) || '|' || sum(d) FROM public.doubled")"

# The database's owner may dump it without being a superuser (pg_dump reads wasm.module_store).
sql postgres -c "DROP DATABASE IF EXISTS dr_owned" -c "DROP ROLE IF EXISTS dr_owner" \
    -c "CREATE ROLE dr_owner LOGIN" -c "CREATE DATABASE dr_owned OWNER dr_owner" >/dev/null
sql dr_owned -c "CREATE EXTENSION plwasm" -c "SELECT wasm.load('owned', wasm.wat('(module)'))" >/dev/null
as_cluster_user "$PG_BIN/pg_dump" -h "$WORK" -p "$PORT" -U dr_owner -f "$WORK/owned.sql" dr_owned
check "the database owner (not a superuser) can pg_dump a database with modules" "1" \
    "$(grep -c '^owned	' "$WORK/owned.sql")"

for db in dst_naive dst_again dst_psql dst_jobs dst_list dst_parallel dst_plain src_gen dst_gen dst_gen_list dr_owned; do
    sql postgres -c "DROP DATABASE $db" >/dev/null
done
sql postgres -c "DROP ROLE dr_loader" -c "DROP ROLE dr_filler" -c "DROP ROLE dr_owner" >/dev/null

echo "$passed passed, $failed failed"
((failed == 0))

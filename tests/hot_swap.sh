#!/usr/bin/env bash
# Replacing a module while it is being called, in a throw-away cluster started fresh by this test
# (as the unprivileged `postgres` OS user when run as root).
#
# pgbench runs 8 clients for 20 seconds; each transaction is two statements that call the
# functions of module m over 200 rows (one with one call site, one with two call sites in each
# row) and record, in an unlogged table, when they started and ended and which versions of m
# computed their rows. Meanwhile another client (one session) replaces m every 100 ms,
# alternating two compatible versions: in version N, export `version` returns N and `f(x)`
# returns x + N, so any result tells which version computed it. The replacer records when each
# replace started and when its commit had returned.
#
# Checks: pgbench ends with status 0 and no failed transaction; every statement recorded its
# rows; only versions 1 and 2 computed anything, and the clients saw both; every statement that
# started after a replace had committed (and ended before the next began) ran that version
# (docs/sql-reference.md, "Changes from other sessions": seen by the next statement); no statement
# saw both versions, with one call site or two; the replacer made at least 50 replaces, none of
# which failed; the server log has no ERROR, FATAL, PANIC or crash; afterwards a new session runs
# the last version, from its artifact.
#
# Then, deterministically, a statement during which another session replaces m (while the
# statement sleeps in pg_sleep between two rows) keeps the version it started with: with one call
# site; with two call sites, the second called first after the replace; with one call site and,
# after the replace, a call of an SQL function that locks a table the statement had not locked
# (Postgres then takes in the other sessions' invalidations).
#
#   bash tests/hot_swap.sh        # prints one line per check, then "N passed, M failed"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/hot-swap
PORT=${PLWASM_HOT_SWAP_PORT:-28935}
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

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

cluster_stop "$WORK"
rm -rf "$WORK"
cluster_start "$WORK" "$PORT" || exit 1
trap 'cluster_stop "$WORK"' EXIT
log=$WORK/server.log

# sql SQL... : psql as superuser postgres in database hs; prints errors too.
sql() { cluster_psql "$WORK" "$PORT" -d hs -v ON_ERROR_STOP=1 -At "$@" 2>&1; }
# The same as the role that owns module m.
as_loader() { cluster_psql "$WORK" "$PORT" -U hs_loader -d hs -v ON_ERROR_STOP=1 -At "$@" 2>&1; }

# Version N of module m.
module_wat() {
    echo "(module (func (export \"version\") (result i32) i32.const $1)
        (func (export \"f\") (param i32) (result i32) (i32.add (local.get 0) (i32.const $1))))"
}
cluster_psql "$WORK" "$PORT" -d postgres -c "CREATE DATABASE hs" >/dev/null
setup=$(sql <<EOF
SET client_min_messages = warning;
CREATE EXTENSION plwasm;
CREATE ROLE hs_loader LOGIN IN ROLE wasm_loader;
SET ROLE hs_loader;
SELECT wasm.load('m', wasm.wat('$(module_wat 1)'));
RESET ROLE;
CREATE FUNCTION m_version() RETURNS int LANGUAGE wasm AS 'm:version';
CREATE FUNCTION m_f(int) RETURNS int LANGUAGE wasm AS 'm:f';
-- One row per statement: when it started and when its last call had returned, its call sites
-- (one, or two in the same rows), and the lowest and highest version that computed its rows.
CREATE UNLOGGED TABLE results (at timestamptz DEFAULT statement_timestamp(), done timestamptz,
    sites int, lo int, hi int);
-- One row per replace: the version loaded, when the replace started and when it had committed.
CREATE UNLOGGED TABLE replaces (version int, started timestamptz, committed timestamptz);
GRANT INSERT ON replaces TO hs_loader;
-- Locks a table the calling statement has not locked yet (see the end).
CREATE TABLE other (x int);
CREATE FUNCTION touch_other() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT count(*)::int FROM other';
EOF
)
[[ -z "$(tr -d '\n' <<<"$setup")" ]] || { echo "setup failed: $setup"; exit 1; }
hex1=$(sql -c "SELECT encode(wasm.wat('$(module_wat 1)'), 'hex')")
hex2=$(sql -c "SELECT encode(wasm.wat('$(module_wat 2)'), 'hex')")
check "versions 1 and 2 compute their own results" "1|2|2|4" \
    "$(sql -c "SELECT m_version(), m_f(1)" -c "SET ROLE hs_loader" \
        -c "SELECT wasm.load('m', '\\x$hex2'::bytea, true)" -c "SELECT m_version(), m_f(2)" |
        grep '|' | paste -sd'|')"

# Each transaction: a statement with one call site over 200 rows, and one with two call sites
# (both functions in each of 200 rows); each records the versions its rows saw.
cat >"$WORK/bench.sql" <<'EOF'
INSERT INTO results (done, sites, lo, hi) SELECT clock_timestamp(), 1, min(v), max(v)
    FROM (SELECT m_version() AS v FROM generate_series(1, 200)) s;
INSERT INTO results (done, sites, lo, hi) SELECT clock_timestamp(), 2, min(least(v, d)), max(greatest(v, d))
    FROM (SELECT m_version() AS v, m_f(g) - g AS d FROM generate_series(1, 200) g) s;
EOF
chmod a+r "$WORK/bench.sql"
as_cluster_user "$PG_BIN/pgbench" -h "$WORK" -p "$PORT" -U postgres -n -c 8 -j 2 -T 20 \
    -f "$WORK/bench.sql" hs >"$WORK/pgbench.out" 2>&1 &
bench=$!

# The replacer: one session, one replace every 100 ms (versions 1 and 2 alternating) until
# pgbench ends; each replace that succeeded is recorded with its times.
sleep 1
version=2
while kill -0 "$bench" 2>/dev/null; do
    version=$((3 - version))
    hex=$hex1
    ((version == 2)) && hex=$hex2
    printf '%s\n' "SELECT clock_timestamp() AS started \\gset" \
        "SELECT wasm.load('m', '\\x$hex'::bytea, true);" \
        "\\if :ERROR" "\\else" \
        "INSERT INTO replaces VALUES ($version, :'started', clock_timestamp());" "\\endif"
    sleep 0.1
done | cluster_psql "$WORK" "$PORT" -U hs_loader -d hs -At >/dev/null 2>"$WORK/replacer.err"
wait "$bench"
check "pgbench ends with status 0" "0" "$?"
check "no transaction failed" "1" "$(grep -c '^number of failed transactions: 0 ' "$WORK/pgbench.out")"
transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
check "pgbench ran more than 200 transactions" "t" "$(sql -c "SELECT ${transactions:-0} > 200")"
check "every statement recorded its rows (two per transaction)" "$((${transactions:-0} * 2))" \
    "$(sql -c "SELECT count(*) FROM results")"
replaces=$(sql -c "SELECT count(*) FROM replaces")
check "the replacer made at least 50 replaces, none failed" "t|" \
    "$(sql -c "SELECT $replaces >= 50")|$(cat "$WORK/replacer.err")"
check "only versions 1 and 2 computed anything, and the clients saw both" "1,2" \
    "$(sql -c "SELECT string_agg(DISTINCT v::text, ',' ORDER BY v::text) FROM results, LATERAL (VALUES (lo), (hi)) x (v)")"
# Statements that started after a replace had committed, and were done before the next replace
# started. (One that runs into the next replace may see either version.)
after_sql="WITH r AS (SELECT version, committed, lead(started) OVER (ORDER BY started) AS next
    FROM replaces)
    SELECT count(*) FILTER (WHERE lo <> r.version OR hi <> r.version), count(*) > 1000
    FROM results JOIN r ON at > r.committed AND (r.next IS NULL OR done < r.next)"
check "every statement between two replaces (over 1000) ran the version last committed" "0|t" \
    "$(sql -c "$after_sql")"
check "no statement with one call site saw both versions" "0" \
    "$(sql -c "SELECT count(*) FROM results WHERE sites = 1 AND lo <> hi")"
check "no statement with two call sites saw both versions" "0" \
    "$(sql -c "SELECT count(*) FROM results WHERE sites = 2 AND lo <> hi")"
last=$(sql -c "SELECT version FROM replaces ORDER BY started DESC LIMIT 1")
check "a new session runs the version last loaded, from its artifact" "$last|$((last + 1))|0|1" \
    "$(sql -c "SELECT m_version(), m_f(1)" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|')"
check "the server log has no ERROR, FATAL, PANIC or crash" "" \
    "$(grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$log")"
echo "# $transactions transactions, $replaces replaces"

# mid_statement SQL : run SQL (a statement with pg_sleep(3) in its second row); once it sleeps,
# replace m by the other version from another session; print what SQL printed.
mid_statement() {
    local out=$WORK/mid.out pid other
    sql -c "$1" >"$out" &
    pid=$!
    for _ in $(seq 100); do
        [[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'
            AND query LIKE '%/* mid */%' AND pid <> pg_backend_pid()")" == 1 ]] && break
        sleep 0.1
    done
    other=$((3 - $(sql -c "SELECT m_version()")))
    as_loader -c "SELECT wasm.load('m', wasm.wat('$(module_wat "$other")'), true)" >/dev/null
    kill -0 "$pid" 2>/dev/null || echo "(the statement had ended before the replace)"
    wait "$pid"
    cat "$out"
}
# The versions the rows of a statement saw, in row order, when m is replaced while the statement
# sleeps in row 2: VALUES is the expression computing each row's versions.
versions_sql() {
    echo "SELECT string_agg(v, ',' ORDER BY g) FROM (SELECT g, $1 AS v,
        CASE WHEN g = 2 THEN pg_sleep(3) END AS sleep FROM generate_series(1, 4) g) s
        WHERE v IS NOT NULL /* mid */"
}
v=$(sql -c "SELECT m_version()")
check "a statement replaced under it keeps its version: one call site" "$v,$v,$v,$v" \
    "$(mid_statement "$(versions_sql "m_version()::text")")"
v=$(sql -c "SELECT m_version()")
check "... two call sites, the second called first after the replace (rows 1, 3, 4)" "$v,$v,$v" \
    "$(mid_statement "$(versions_sql "CASE WHEN g IN (1, 4) THEN m_version()::text WHEN g = 3 THEN m_f(0)::text END")")"
v=$(sql -c "SELECT m_version()")
check "... one call site, and a new table locked after the replace (in row 3)" "$v,$v,$v,$v" \
    "$(mid_statement "$(versions_sql "m_version() || CASE WHEN g = 3 THEN left(touch_other()::text, 0) ELSE '' END")")"

echo "$passed passed, $failed failed"
((failed == 0))

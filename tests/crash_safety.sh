#!/usr/bin/env bash
# Crash safety of the module catalog, in a throw-away cluster started fresh by this test (as the
# unprivileged `postgres` OS user when run as root). A process is killed with SIGKILL, so the
# postmaster ends every session and runs crash recovery, as after a real crash.
#
# Checks, after each crash: the cluster takes connections again (with a new checkpointer) and the
# server log shows the crash-restart ("terminated by signal 9"); every module is there with the
# SHA-256 it had, every function (over stored modules, one of a few MB, and inline bodies) gives
# its results, the compiled artifacts are the same rows and are used (a new session deserializes
# every module, compiles none, refuses none), and every artifact row of a module is of that
# module's bytes (no row half-written, or left by an uncommitted change).
#
#   1. a backend killed in the middle of a long wasm call (an endless loop); everything was
#      loaded since the last checkpoint, so recovery replays it from the WAL;
#   2. a backend killed while wasm.load compiles a module of a few MB (autocommit), while
#      another session holds an uncommitted transaction that loaded a module of a few MB,
#      replaced three modules (one of a few MB) and unloaded another: none of it survives;
#   3. the background worker that stores missing artifacts killed in the middle of its pass
#      (compiling a large module): it stored nothing, and afterwards the next backend that has to
#      compile starts a worker again, which stores the artifact;
#   4. (no crash) wasm.load / replace / unload inside savepoints rolled back, in a transaction
#      that commits: nothing of them is left, in the same session and in a new one.
#
#   bash tests/crash_safety.sh        # prints one line per check, then "N passed, M failed"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/crash-safety
PORT=${PLWASM_CRASH_PORT:-28930}
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
cluster_start "$WORK" "$PORT" client_min_messages=warning || exit 1
trap 'cluster_stop "$WORK"' EXIT
log=$WORK/server.log

# sql SQL... : psql as superuser postgres in database cs; prints errors too.
sql() { cluster_psql "$WORK" "$PORT" -d cs -v ON_ERROR_STOP=1 -At "$@" 2>&1; }
# The same as the role that loads the modules and owns the functions, in its schema cs.
as_loader() {
    PGOPTIONS='-c search_path=cs' cluster_psql "$WORK" "$PORT" -U cs_loader -d cs -v ON_ERROR_STOP=1 -At "$@" 2>&1
}

cluster_psql "$WORK" "$PORT" -d postgres -c "CREATE DATABASE cs" >/dev/null
start_lsn=$(sql -c "SELECT pg_current_wal_insert_lsn()")
m1_v1='(module (func (export "version") (result i32) i32.const 1)
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'
m1_v2='(module (func (export "version") (result i32) i32.const 2)
    (func (export "add") (param i32 i32) (result i32)
        (i32.add (i32.add (local.get 0) (local.get 1)) (i32.const 100))))'
m3_v2='(module (memory 1) (data (i32.const 0) "PLWASM")
    (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))'
setup=$(sql <<EOF
CREATE EXTENSION plwasm;
CREATE ROLE cs_loader LOGIN IN ROLE wasm_loader;
CREATE SCHEMA cs AUTHORIZATION cs_loader;
SET ROLE cs_loader;
SET search_path = cs;
SELECT wasm.load('m1', wasm.wat('$m1_v1'));
-- m2 has a previous version (wasm.module_versions).
SELECT wasm.load('m2', wasm.wat('(module (func (export "mul") (param i32 i32) (result i32) i32.const 0))'));
SELECT wasm.load('m2', wasm.wat('(module (func (export "mul") (param i32 i32) (result i32)
    (i32.mul (local.get 0) (local.get 1))))'), true);
SELECT wasm.load('m3', wasm.wat('(module (memory 1) (data (i32.const 0) "plwasm")
    (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))'));
SELECT wasm.load('spinner', wasm.wat('(module (func (export "spin") (result i32) (loop \$l (br \$l)) i32.const 0)
    (func (export "ready") (result i32) i32.const 1))'));
CREATE FUNCTION m1_version() RETURNS int LANGUAGE wasm AS 'm1:version';
CREATE FUNCTION m1_add(int, int) RETURNS int LANGUAGE wasm AS 'm1:add';
CREATE FUNCTION mul(int, int) RETURNS int LANGUAGE wasm AS 'm2';
CREATE FUNCTION peek(int) RETURNS int LANGUAGE wasm AS 'm3';
CREATE FUNCTION spin() RETURNS int LANGUAGE wasm AS 'spinner';
CREATE FUNCTION spinner_ready() RETURNS int LANGUAGE wasm AS 'spinner:ready';
CREATE FUNCTION five() RETURNS int LANGUAGE wasm AS
    '(module (func (export "five") (result i32) i32.const 5))';
CREATE FUNCTION twice(int) RETURNS int LANGUAGE wasm AS
    '(module (func (export "twice") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))';
EOF
)
# The large modules (a few MB): 'big' and 'kept' have a 3 MB data segment of MD5 digests (which
# TOAST cannot compress), byte k of module X being byte k % 16 of md5(X || k / 16 + 1); 'deep'
# has 600000 nested blocks (over a second to compile).
setup+=$(sql <<'EOF'
CREATE TABLE public.big_src (name text PRIMARY KEY, bytes bytea);
INSERT INTO public.big_src
    SELECT name, wasm.wat('(module (memory 64) (data (i32.const 0) "'
        || regexp_replace(string_agg(md5(name || g), '' ORDER BY g), '(..)', '\\\1', 'g') || '")
        (func (export "peek_big") (param i32) (result i32) (i32.load8_u (local.get 0))))')
    FROM (VALUES ('big'), ('kept')) n (name), generate_series(1, 187500) g
    GROUP BY name;
INSERT INTO public.big_src VALUES ('deep', wasm.wat('(module (func (export "deep") '
    || repeat('(block ', 600000) || repeat(')', 600000) || '))'));
GRANT SELECT ON public.big_src TO cs_loader;
EOF
)
setup+=$(as_loader -c "SELECT wasm.load('kept', (SELECT bytes FROM public.big_src WHERE name = 'kept'))" \
    -c "CREATE FUNCTION peek_big(int) RETURNS int LANGUAGE wasm AS 'kept'")
[[ -z "$(tr -d '\n' <<<"$setup")" ]] || { echo "setup failed: $setup"; exit 1; }
check "the large modules are a few MB (in kB)" "big:3000|deep:1800|kept:3000" \
    "$(sql -c "SELECT string_agg(name || ':' || length(bytes) / 100000 * 100, '|' ORDER BY name) FROM big_src")"

# Every module and every function, as they should stay.
behaviour_sql="SELECT concat_ws('|', cs.m1_version(), cs.m1_add(2, 3), cs.mul(6, 7), cs.peek(0),
    cs.five(), cs.twice(21), cs.spinner_ready(), (SELECT bool_and(cs.peek_big(k)
        = get_byte(decode(md5('kept' || k / 16 + 1), 'hex'), k % 16))
        FROM generate_series(0, 2999999, 99991) k))"
behaviour="1|5|42|112|5|42|1|t"
# Every version of every module (the current ones and those kept for wasm.rollback).
modules_sql="SELECT string_agg(name || '@' || version || '=' || sha256, ',' ORDER BY name, version)
    FROM wasm.module_versions"
artifacts_sql="SELECT string_agg(name || '=' || sha256 || '/' || md5(artifact), ',' ORDER BY name)
    FROM wasm.module_artifacts"
# Artifact rows that are empty, or of other bytes than their module's (or of no module).
stray_sql="SELECT count(*) FROM wasm.module_artifacts a LEFT JOIN wasm.module_store s USING (name)
    WHERE length(a.artifact) = 0
       OR (a.name NOT LIKE '(inline) %' AND a.sha256 IS DISTINCT FROM s.sha256)"
# A new session calls every function, then prints compiled|from_artifact|artifacts_refused:
# each of the 7 modules (5 stored, 2 inline bodies) should be deserialized from its artifact.
fresh_session() {
    sql -c "$behaviour_sql" \
        -c "SELECT concat_ws('|', compiled, from_artifact, artifacts_refused) FROM wasm.cache_stats()" |
        paste -sd' '
}
# The first calls compile the inline bodies; the background worker stores their artifacts.
check "every function gives its result" "$behaviour" "$(sql -c "$behaviour_sql")"
for _ in $(seq 600); do
    [[ "$(sql -c "SELECT count(*) FROM wasm.module_artifacts")" == 7 ]] && break
    sleep 0.1
done
check "every module and inline body has its artifact (5 + 2)" "7|0" \
    "$(sql -c "SELECT count(*) FROM wasm.module_artifacts" -c "$stray_sql" | paste -sd'|')"
modules_before=$(sql -c "$modules_sql")
artifacts_before=$(sql -c "$artifacts_sql")
check "a new session deserializes every module" "$behaviour 0|7|0" "$(fresh_session)"

checkpointer() { sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"; }
# wait_for CLIENT CONDITION : print the pid of the process that has been active for 300 ms and
# matches CONDITION (on pg_stat_activity); polls up to 20 s, while the client process CLIENT (a
# job of this shell) runs.
wait_for() {
    local pid
    for _ in $(seq 200); do
        kill -0 "$1" 2>/dev/null || break
        pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE $2 AND pid <> pg_backend_pid()
            AND clock_timestamp() - coalesce(query_start, backend_start) >= interval '300 ms'")
        [[ "$pid" =~ ^[0-9]+$ ]] && { echo "$pid"; return 0; }
        sleep 0.1
    done
    echo "# nothing ran with [$2]" >&2
    return 1
}
# wait_restart OLD_CHECKPOINTER : wait (up to 60 s) for the cluster to take connections again
# after the crash, with a new checkpointer.
wait_restart() {
    local now
    for _ in $(seq 600); do
        now=$(checkpointer)
        [[ "$now" =~ ^[0-9]+$ && "$now" != "$1" ]] && return 0
        sleep 0.1
    done
    return 1
}
# after_crash N : the checks after the Nth crash.
after_crash() {
    check "crash $1: the postmaster restarted every process after the kill" "$1" \
        "$(grep -c 'was terminated by signal 9: Killed' "$log")"
    check "crash $1: every module is there with its SHA-256" "$modules_before" "$(sql -c "$modules_sql")"
    check "crash $1: every function gives its result" "$behaviour" "$(sql -c "$behaviour_sql")"
    check "crash $1: the artifacts are the same rows, each of its module's bytes" \
        "$artifacts_before|0" "$(sql -c "$artifacts_sql" -c "$stray_sql" | paste -sd'|')"
    check "crash $1: a new session deserializes every module from its artifact" "$behaviour 0|7|0" \
        "$(fresh_session)"
}

# 1. A backend killed in the middle of a long wasm call.
started=$(checkpointer)
sql -c "SET statement_timeout = '60s'" -c "SELECT cs.spin() /* crash me */" >"$WORK/spin.out" &
spinner=$!
pid=$(wait_for "$spinner" "state = 'active' AND wait_event_type IS NULL
    AND query LIKE 'SELECT cs.spin() /* crash me */%'")
check "crash 1: a backend runs the endless wasm loop" "running" "${pid:+running}"
check "crash 1: no checkpoint since before the extension was created (recovery replays it all)" "t" \
    "$(sql -c "SELECT redo_lsn <= '$start_lsn' FROM pg_control_checkpoint()")"
[[ -n "$pid" ]] && kill -9 "$pid"
wait_restart "$started"
check "crash 1: the cluster takes connections again, with a new checkpointer" "0" "$?"
wait "$spinner"
check "crash 1: the killed session's client lost its connection" "1" \
    "$(grep -c 'server closed the connection unexpectedly' "$WORK/spin.out")"
after_crash 1

# 2. A backend killed while wasm.load compiles a large module (autocommit), while another session
# holds an uncommitted transaction that loaded a large module, replaced m1, m3 and kept (with
# large bytes of another content) and unloaded m2.
started=$(checkpointer)
as_loader >"$WORK/hold.out" <<EOF &
BEGIN;
SELECT wasm.load('big', (SELECT bytes FROM public.big_src WHERE name = 'big'));
SELECT wasm.load('m1', wasm.wat('$m1_v2'), replace => true);
SELECT wasm.unload('m2', cascade => true);
SELECT wasm.load('m3', wasm.wat('$m3_v2'), replace => true);
SELECT wasm.load('kept', (SELECT bytes FROM public.big_src WHERE name = 'big'), replace => true);
SELECT m1_version(), peek(0), peek_big(0) = get_byte(decode(md5('big1'), 'hex'), 0);
SELECT pg_sleep(60) /* hold */;
COMMIT;
EOF
holder=$!
wait_for "$holder" "state = 'active' AND wait_event = 'PgSleep'
    AND query LIKE 'SELECT pg_sleep(60) /* hold */%'" >/dev/null
check "crash 2: a session holds an uncommitted load, replaces and unload" "2|80|t" \
    "$(grep '|' "$WORK/hold.out")"
check "crash 2: other sessions see none of its artifact writes" "$artifacts_before" \
    "$(sql -c "$artifacts_sql")"
as_loader -c "SELECT wasm.load('deep', (SELECT bytes FROM public.big_src WHERE name = 'deep')) /* crash me */" \
    >"$WORK/deep.out" &
loader=$!
pid=$(wait_for "$loader" "state = 'active' AND wait_event_type = 'Extension'
    AND query LIKE '%/* crash me */'")
check "crash 2: a backend is compiling the module wasm.load loads" "compiling" "${pid:+compiling}"
[[ -n "$pid" ]] && kill -9 "$pid"
wait_restart "$started"
check "crash 2: the cluster takes connections again, with a new checkpointer" "0" "$?"
wait "$loader" "$holder"
check "crash 2: neither module being loaded exists" "0" \
    "$(sql -c "SELECT count(*) FROM wasm.module_store WHERE name IN ('big', 'deep')")"
after_crash 2
check "crash 2: the unloaded module's function is back with it" "cs.mul(integer,integer)" \
    "$(sql -c "SELECT string_agg(function::text, ',') FROM wasm.functions WHERE module = 'm2'")"

# 3. The background worker killed in the middle of its pass. 'deep' is loaded (wasm.load stores
# its artifact), its artifact deleted, and a session calls it: it compiles, and at commit starts
# the worker, which compiles it again (over a second) before storing the artifact.
setup=$(as_loader -c "SELECT wasm.load('deep', (SELECT bytes FROM public.big_src WHERE name = 'deep'))" \
    -c "CREATE FUNCTION deep() RETURNS void LANGUAGE wasm AS 'deep'")
setup+=$(sql -c "DELETE FROM wasm.module_artifacts WHERE name = 'deep'")
[[ -z "$(tr -d '\n' <<<"$setup")" ]] || { echo "loading deep failed: $setup"; exit 1; }
modules_before=$(sql -c "$modules_sql")
artifacts_before=$(sql -c "$artifacts_sql")
started=$(checkpointer)
check "crash 3: a session without deep's artifact compiles it" "1" \
    "$(sql -c "SELECT cs.deep()" -c "SELECT compiled FROM wasm.cache_stats()" | tail -1)"
worker_sql="backend_type = 'plwasm artifact refresh'"
pid=$(wait_for $$ "$worker_sql")
check "crash 3: the background worker runs" "running" "${pid:+running}"
[[ -n "$pid" ]] && kill -9 "$pid"
wait_restart "$started"
check "crash 3: the cluster takes connections again, with a new checkpointer" "0" "$?"
check "crash 3: the worker was killed before it stored deep's artifact" "0" \
    "$(sql -c "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'deep'")"
after_crash 3
check "crash 3: the next session without the artifact compiles deep" "1" \
    "$(sql -c "SELECT cs.deep()" -c "SELECT compiled FROM wasm.cache_stats()" | tail -1)"
for _ in $(seq 600); do
    [[ "$(sql -c "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'deep'")" == 1 ]] && break
    sleep 0.1
done
check "crash 3: ... and a background worker stores the artifact again" "1|0" \
    "$(sql -c "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'deep'" -c "$stray_sql" | paste -sd'|')"
check "crash 3: a new session then deserializes deep" "0|1|0" \
    "$(sql -c "SELECT cs.deep()" -c "SELECT concat_ws('|', compiled, from_artifact, artifacts_refused) FROM wasm.cache_stats()" | tail -1)"
artifacts_before=$(sql -c "$artifacts_sql")

# 4. Savepoints rolled back, in a transaction that commits (by the modules' owner; then the
# same session, as superuser, reads the artifacts).
out=$(sql <<EOF
SET ROLE cs_loader;
SET search_path = cs;
BEGIN;
SAVEPOINT a;
SELECT wasm.load('sp_new', wasm.wat('(module (func (export "g") (result i32) i32.const 9))'));
CREATE FUNCTION sp_g() RETURNS int LANGUAGE wasm AS 'sp_new:g';
SELECT 'a', sp_g();
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
SELECT wasm.load('m1', wasm.wat('$m1_v2'), replace => true);
SELECT 'b', m1_version(), m1_add(2, 3);
ROLLBACK TO SAVEPOINT b;
SELECT 'after b', m1_version(), m1_add(2, 3);
SAVEPOINT c;
SELECT wasm.unload('m2', cascade => true);
SELECT 'c', count(*) FROM wasm.modules WHERE name = 'm2';
ROLLBACK TO SAVEPOINT c;
SELECT 'after c', mul(6, 7);
SAVEPOINT d;
SELECT wasm.load('m3', wasm.wat('$m3_v2'), replace => true);
SELECT 'd', peek(0);
SAVEPOINT e;
SELECT wasm.unload('m3', cascade => true);
RELEASE SAVEPOINT e;
SELECT 'e', count(*) FROM wasm.modules WHERE name = 'm3';
SELECT wasm.load('kept', (SELECT bytes FROM public.big_src WHERE name = 'big'), replace => true);
SELECT 'kept', peek_big(0) = get_byte(decode(md5('big1'), 'hex'), 0);
ROLLBACK TO SAVEPOINT d;
SELECT 'after d', peek(0);
COMMIT;
RESET ROLE;
$behaviour_sql;
$modules_sql;
$artifacts_sql;
$stray_sql;
EOF
)
check "savepoints: each change is seen inside its savepoint, and gone after ROLLBACK TO" \
    "a|9
b|2|105
after b|1|5
c|0
after c|42
d|80
e|0
kept|t
after d|112" "$(grep -v '^$' <<<"$out" | head -9)"
check "savepoints: after COMMIT the same session has every function, module and artifact as before" \
    "$behaviour
$modules_before
$artifacts_before
0" "$(grep -v '^$' <<<"$out" | tail -n +10)"
check "savepoints: a new session has every module and artifact as before" \
    "$modules_before|$artifacts_before|0" \
    "$(sql -c "$modules_sql" -c "$artifacts_sql" -c "$stray_sql" | paste -sd'|')"
check "savepoints: nothing of the rolled-back module or its function is left" "0|0" \
    "$(sql -c "SELECT count(*) FROM wasm.module_store WHERE name = 'sp_new'" \
        -c "SELECT count(*) FROM pg_proc WHERE proname = 'sp_g'" | paste -sd'|')"
check "savepoints: a new session deserializes every module" "$behaviour 0|7|0" "$(fresh_session)"

check "the server log has no PANIC" "0" "$(grep -c 'PANIC' "$log")"

echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# plwasm on replicas, in three throw-away clusters started by this test (as the unprivileged
# `postgres` OS user when run as root), talking over their Unix sockets:
#
#   primary     wal_level=logical; modules are loaded, replaced and unloaded here
#   standby     a streaming hot standby of the primary (pg_basebackup -R), cloned before plwasm
#               was created there
#   subscriber  its own cluster, subscribed to a FOR ALL TABLES publication of the primary's
#               database (so wasm.module_store, and wasm.module_artifacts too)
#
# Checks, each in a session that stays open across the change on the primary: the standby's
# next statement after replay runs a module loaded, replaced or unloaded on the primary, and
# uses the primary's compiled artifact without writing anything (once it has the primary's
# artifact key: a standby cloned before the primary made one compiles, and says so); the subscriber's next
# statement after apply runs the replaced module (it used to keep the old one until
# reconnecting); replicated artifacts (machine code for another cluster) are skipped, the
# subscriber compiles and stores its own, and the subscription keeps running; a subscriber's
# function bound to an export that a replicated version dropped fails cleanly.
#
#   bash tests/replication.sh        # prints one line per check, then "N passed, M failed"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/replication
PORT=${PLWASM_REPLICATION_PORT:-28916}
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

primary=$WORK/primary
standby=$WORK/standby
subscriber=$WORK/subscriber
primary_port=$PORT
standby_port=$((PORT + 1))
subscriber_port=$((PORT + 2))

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

stop_all() {
    cluster_stop "$subscriber"
    cluster_stop "$standby"
    cluster_stop "$primary"
}
stop_all
rm -rf "$WORK"
mkdir -p "$WORK"
chown "$CLUSTER_OS_USER" "$WORK"
trap stop_all EXIT

cluster_start "$primary" "$primary_port" wal_level=logical client_min_messages=warning || exit 1

# sql DIR PORT SQL... : psql as superuser postgres in database src; prints errors too.
sql() {
    local dir=$1 port=$2
    shift 2
    cluster_psql "$dir" "$port" -d src -v ON_ERROR_STOP=1 -At "$@" 2>&1
}
on_primary() { sql "$primary" "$primary_port" "$@"; }
on_standby() { sql "$standby" "$standby_port" "$@"; }
on_subscriber() { sql "$subscriber" "$subscriber_port" "$@"; }
# Version N of module m: its export `version` returns N; while N < 3 it also exports `extra`
# (bound by a function of the subscriber's own).
module_wat() {
    local extra=''
    (($1 < 3)) && extra=' (func (export "extra") (result i32) i32.const 7)'
    echo "(module (func (export \"version\") (result i32) i32.const $1)$extra)"
}
module_sql() { echo "SELECT wasm.load('m', wasm.wat('$(module_wat "$1")'), replace => true);"; }
# The SHA-256 of version N's bytes, as wasm.modules shows it.
module_sha() { on_primary <<<"SELECT encode(sha256(wasm.wat('$(module_wat "$1")')), 'hex')"; }
# wait_until DIR PORT SQL EXPECTED : poll (up to 60 s) until SQL prints EXPECTED.
wait_until() {
    local i
    for i in $(seq 600); do
        [[ "$(sql "$1" "$2" -c "$3")" == "$4" ]] && return 0
        sleep 0.1
    done
    echo "# timed out waiting for [$3] to be [$4]"
    return 1
}

cluster_psql "$primary" "$primary_port" -d postgres -c "CREATE DATABASE src" >/dev/null
# The standby, from a base backup taken before plwasm was used: without the primary's artifact
# key (plwasm makes it at the first wasm.load).
as_cluster_user "$PG_BIN/pg_basebackup" -h "$primary" -p "$primary_port" -U postgres \
    -D "$standby/data" -R -X stream -c fast || exit 1
cluster_start "$standby" "$standby_port" client_min_messages=warning || exit 1

on_primary >/dev/null <<EOF
CREATE EXTENSION plwasm;
CREATE ROLE loader LOGIN IN ROLE wasm_loader;
SET ROLE loader;
$(module_sql 1)
RESET ROLE;
CREATE FUNCTION m_version() RETURNS int LANGUAGE wasm AS 'm:version';
CREATE PUBLICATION everything FOR ALL TABLES;
EOF
wait_until "$standby" "$standby_port" "SELECT count(*) FROM pg_proc WHERE proname = 'm_version'" 1
check "the standby runs the primary's module (compiling it: it lacks the key)" "1|1|0" \
    "$(on_standby -c "SELECT m_version()" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|')"
check "the standby made no key of its own" "absent" \
    "$([[ -e "$standby/data/plwasm_artifact.key" ]] && echo present || echo absent)"
check "the standby's log says what to do" "1" \
    "$(grep -c 'copy the file from the primary' "$standby/server.log")"
install -o "$CLUSTER_OS_USER" -m 600 "$primary/data/plwasm_artifact.key" "$standby/data/"
check "with the primary's key, a new standby session uses the primary's artifact" "1|0|1" \
    "$(on_standby -c "SELECT m_version()" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|')"

# The subscriber: the same roles and (DDL is not replicated) its own functions.
cluster_start "$subscriber" "$subscriber_port" client_min_messages=warning || exit 1
cluster_psql "$subscriber" "$subscriber_port" -d postgres -c "CREATE DATABASE src" >/dev/null
on_subscriber >/dev/null <<EOF
CREATE EXTENSION plwasm;
CREATE ROLE loader LOGIN IN ROLE wasm_loader;
CREATE SUBSCRIPTION modules CONNECTION 'host=$primary port=$primary_port user=postgres dbname=src'
    PUBLICATION everything;
EOF
wait_until "$subscriber" "$subscriber_port" "SELECT count(*) FROM wasm.modules WHERE name = 'm'" 1
on_subscriber >/dev/null <<'EOF'
CREATE FUNCTION m_version() RETURNS int LANGUAGE wasm AS 'm:version';
CREATE FUNCTION extra() RETURNS int LANGUAGE wasm AS 'm';
EOF
# The same inline function on both sides, compiled first on the subscriber: both store an
# artifact under the same key, and the primary's replicated insert must not conflict with the
# subscriber's own row (that would stop the subscription until someone deletes the row).
inline_sql="CREATE FUNCTION five() RETURNS int LANGUAGE wasm AS
    '(module (func (export \"five\") (result i32) i32.const 5))'; SELECT five();"
inline_rows="SELECT count(*) FROM wasm.module_artifacts WHERE name LIKE '(inline) %'"
on_subscriber -c "$inline_sql" >/dev/null
wait_until "$subscriber" "$subscriber_port" "$inline_rows" 1
on_primary -c "$inline_sql" >/dev/null
wait_until "$primary" "$primary_port" "$inline_rows" 1
check "the subscriber has the module with its owner" "loader" \
    "$(on_subscriber -c "SELECT owner FROM wasm.modules WHERE name = 'm'")"
# (The subscriber's own background worker compiles m too, after five()'s first call.)
artifact_macs="SELECT encode(mac, 'hex') FROM wasm.module_artifacts ORDER BY 1"
check "the primary's artifacts (2) were not copied to the subscriber" "2|0" \
    "$(on_primary -c "$artifact_macs" | wc -l)|$(comm -12 <(on_primary -c "$artifact_macs") \
        <(on_subscriber -c "$artifact_macs") | wc -l)"

# Each change on the primary is made from inside a session on the replica that stays open.
printf '%s\n' "SET ROLE loader;" "$(module_sql 2)" > "$WORK/v2.sql"
printf '%s\n' "SET ROLE loader;" "$(module_sql 3)" > "$WORK/v3.sql"
cat > "$WORK/more.sql" <<'EOF'
SET ROLE loader;
SELECT wasm.load('later', wasm.wat('(module (func (export "later") (result i32) i32.const 40))'));
RESET ROLE;
CREATE FUNCTION later() RETURNS int LANGUAGE wasm AS 'later';
EOF
echo "SELECT wasm.unload('later', cascade => true);" > "$WORK/unload.sql"
chmod a+r "$WORK"/*.sql
primary_psql="psql -X -q -h $primary -p $primary_port -U postgres -d src -v ON_ERROR_STOP=1 -o /dev/null"
sha_of() { # the SHA-256 the module m has on the primary now
    on_primary -c "SELECT sha256 FROM wasm.modules WHERE name = 'm'"
}
# Poll, inside the session, until the replica has what the primary committed.
wait_sql() { # wait_sql CONDITION : a DO block that waits (up to 60 s) until CONDITION holds
    echo "DO \$\$ BEGIN FOR i IN 1..600 LOOP EXIT WHEN $1; PERFORM pg_sleep(0.1); END LOOP; END \$\$;"
}

out=$(on_subscriber <<EOF
SELECT m_version(), extra();
\! $primary_psql -f $WORK/v2.sql
$(wait_sql "(SELECT sha256 FROM wasm.modules WHERE name = 'm') = '$(module_sha 2)'")
SELECT m_version(), extra();
EOF
)
check "a session open on the subscriber runs the replaced module at its next statement" \
    "1|7
2|7" "$out"

sha2=$(sha_of)
check "the primary has version 2" "$(module_sha 2)" "$sha2"
check "the subscriber's module is the primary's" "$sha2" \
    "$(on_subscriber -c "SELECT sha256 FROM wasm.modules WHERE name = 'm'")"
versions_sql="SELECT string_agg(version || ':' || current || ':' || sha256, ',' ORDER BY version)
    FROM wasm.module_versions WHERE name = 'm'"
check "the subscriber has the primary's versions of m (wasm.module_history is published too)" \
    "$(on_primary -c "$versions_sql")" "$(on_subscriber -c "$versions_sql")"
# The subscriber compiled m for itself; its background worker stores the artifact, and a new
# session loads it instead of compiling.
wait_until "$subscriber" "$subscriber_port" \
    "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'm' AND sha256 = '$sha2'" 1
check "a new session on the subscriber uses the subscriber's own artifact" "2|0|1" \
    "$(on_subscriber -c "SELECT m_version()" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|')"

# A capability given on the primary reaches a session open on the subscriber at its next
# statement (each statement's call sites read the replicated wasm.module_capabilities).
on_primary >/dev/null <<'EOF'
SELECT wasm.load('qm', wasm.wat('(module
  (import "plwasm" "query" (func $query (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "SELECT 1")
  (func (export "one") (result i32)
    (call $query (i32.const 0) (i32.const 8) (i32.const 0) (i32.const 0))))'));
EOF
wait_until "$subscriber" "$subscriber_port" "SELECT count(*) FROM wasm.modules WHERE name = 'qm'" 1
on_subscriber >/dev/null <<'EOF'
CREATE FUNCTION qm_one() RETURNS int LANGUAGE wasm AS 'qm:one';
CREATE FUNCTION try_qm() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qm_one();
    RETURN 'queried';
EXCEPTION WHEN insufficient_privilege THEN
    RETURN 'refused';
END $$;
EOF
echo "SELECT wasm.set_capabilities('qm', '{query}');" > "$WORK/capability.sql"
chmod a+r "$WORK/capability.sql"
out=$(on_subscriber <<EOF
SELECT try_qm();
\! $primary_psql -f $WORK/capability.sql
$(wait_sql "(SELECT count(*) FROM wasm.module_capabilities WHERE name = 'qm') = 1")
SELECT try_qm();
EOF
)
check "a capability given on the primary reaches a session open on the subscriber" \
    "refused
queried" "$out"

out=$(on_standby <<EOF
SELECT m_version();
\! $primary_psql -f $WORK/v3.sql
$(wait_sql "(SELECT sha256 FROM wasm.modules WHERE name = 'm') = '$(module_sha 3)'")
SELECT m_version();
\! $primary_psql -f $WORK/more.sql
$(wait_sql "(SELECT count(*) FROM pg_proc WHERE proname = 'later') = 1")
SELECT later();
\! $primary_psql -f $WORK/unload.sql
$(wait_sql "(SELECT count(*) FROM wasm.modules WHERE name = 'later') = 0")
SELECT count(*) FROM pg_proc WHERE proname = 'later';
SELECT compiled FROM wasm.cache_stats();
EOF
)
check "a session open on the standby runs modules replaced, loaded and unloaded on the primary" \
    "2
3
40
0
0" "$out"
check "the standby used the primary's artifacts (none compiled, all deserialized)" "3|0|1" \
    "$(on_standby -c "SELECT m_version()" -c "SELECT compiled, from_artifact FROM wasm.cache_stats()" | paste -sd'|')"

wait_until "$subscriber" "$subscriber_port" \
    "SELECT count(*) FROM wasm.module_artifacts WHERE name = 'later'" 0
check "the subscriber has the last version" "3" "$(on_subscriber -c "SELECT m_version()")"
check "the subscriber's apply worker left no error in its log" "" \
    "$(grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$subscriber/server.log")"
check "the standby's log has no error (nothing tried to write there)" "" \
    "$(grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$standby/server.log")"
check "a subscriber's function over an export the new version dropped fails cleanly" \
    'ERROR:  42883: function extra(): module "m" has no export named "extra"' \
    "$(on_subscriber -v VERBOSITY=verbose -c "SELECT extra()" | head -1)"
check "the subscription still runs (no conflict over artifacts)" "t" \
    "$(on_subscriber -c "SELECT pid IS NOT NULL FROM pg_stat_subscription WHERE subname = 'modules'")"

echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# ALTER EXTENSION plwasm UPDATE from every released version, in a throw-away cluster (as the
# unprivileged `postgres` OS user when run as root).
#
# A released version's install script is kept as it shipped in sql/released/plwasm--V.sql; the
# update scripts are sql/plwasm--V--W.sql (installed by scripts/setup.sh with the extension).
# For each released version V, the test
#   - installs V's script beside the current one (this needs write access to the server's
#     share directory: run as root, as CI does),
#   - creates a database at V that uses plwasm (a loader role's module, stored and inline
#     functions, a CHECK constraint that calls wasm), updates it, and checks that everything
#     still works and belongs to the same roles, and that modules can still be replaced;
#   - updates an empty database from V and compares it with a fresh CREATE EXTENSION of the
#     current version: `pg_dump --binary-upgrade --schema-only` (which lists every object of
#     the extension, its grants and triggers) must be the same once OIDs are taken out.
#
#   bash tests/upgrade.sh        # prints one line per check, then "N passed, M failed"
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/upgrade
PORT=${PLWASM_UPGRADE_PORT:-28915}
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

extension_dir=$("$PG_BIN/pg_config" --sharedir)/extension

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

cluster_start "$WORK" "$PORT" client_min_messages=warning || exit 1
trap 'cluster_stop "$WORK"' EXIT

sql() { # sql DB SQL... : as superuser postgres; prints errors, returns psql's status
    local db=$1
    shift
    cluster_psql "$WORK" "$PORT" -d "$db" -v ON_ERROR_STOP=1 -At "$@" 2>&1
}
# The extension's objects as pg_dump sees them, without what differs between two databases
# with the same objects (OIDs, transaction ids, comments naming the database).
schema_of() {
    as_cluster_user "$PG_BIN/pg_dump" -h "$WORK" -p "$PORT" -U postgres --binary-upgrade \
        --schema-only "$1" |
        grep -v -e '^--' -e '^$' -e 'relfrozenxid' -e '^\\restrict' -e '^\\unrestrict' |
        sed -E -e "s/'[0-9]+'/'N'/g" -e 's/\{[0-9,]+\}/{N}/g' -e 's/[0-9A-F]+\/[0-9A-F]+/LSN/g'
}

current=$(sql postgres -c "SELECT default_version FROM pg_catalog.pg_available_extensions
                           WHERE name = 'plwasm'")
[[ -n "$current" ]] || {
    echo "plwasm is not installed (bash scripts/setup.sh)"
    exit 1
}
echo "# current version $current"

sql postgres -c "DROP DATABASE IF EXISTS fresh" >/dev/null
sql postgres -c "CREATE DATABASE fresh" -c "\c fresh" -c "CREATE EXTENSION plwasm" >/dev/null
fresh_schema=$(schema_of fresh)

released=("$ROOT"/sql/released/plwasm--*.sql)
[[ -f "${released[0]}" ]] || {
    echo "no released version in sql/released/"
    exit 1
}
for script in "${released[@]}"; do
    version=$(basename "$script" .sql)
    version=${version#plwasm--}
    [[ "$version" == "$current" ]] && continue
    if ! cmp -s "$script" "$extension_dir/plwasm--$version.sql"; then
        install -m 644 "$script" "$extension_dir/" || {
            echo "cannot install $script into $extension_dir (run as root)"
            exit 1
        }
    fi
    db=up_${version//./_}
    bare=bare_${version//./_}
    for d in "$db" "$bare"; do sql postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null; done
    sql postgres -c "DROP ROLE IF EXISTS up_loader" >/dev/null
    sql postgres -c "CREATE ROLE up_loader LOGIN" -c "CREATE DATABASE $db" -c "CREATE DATABASE $bare" >/dev/null

    check "$version: an update path to $current" "t" \
        "$(sql postgres -c "SELECT path IS NOT NULL FROM pg_catalog.pg_extension_update_paths('plwasm')
                            WHERE source = '$version' AND target = '$current'")"

    # A database in use at the old version.
    out=$(sql "$db" <<EOF
CREATE EXTENSION plwasm VERSION '$version';
GRANT wasm_loader TO up_loader;
GRANT CREATE ON SCHEMA public TO up_loader;
SET ROLE up_loader;
SELECT wasm.load('math', wasm.wat('(module
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "positive") (param i32) (result i32) (i32.gt_s (local.get 0) (i32.const 0))))'));
CREATE FUNCTION add(int, int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'math';
CREATE FUNCTION positive(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS 'math';
CREATE FUNCTION twice(int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "twice") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))';
CREATE TABLE orders (qty int CHECK (positive(qty)));
INSERT INTO orders SELECT g FROM generate_series(1, 10) g;
SELECT add(2, 3), twice(21);
EOF
    )
    out=${out##*$'\n'}
    check "$version: a database at $version" "5|42" "$out"
    check "$version: ALTER EXTENSION plwasm UPDATE" "$current" \
        "$(sql "$db" -c "ALTER EXTENSION plwasm UPDATE" \
            -c "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'plwasm'")"
    check "$version: its functions after the update" "5|42|10" \
        "$(sql "$db" -c "SELECT add(2, 3), twice(21), (SELECT count(*) FROM orders)")"
    check "$version: its CHECK constraint after the update" \
        'ERROR:  new row for relation "orders" violates check constraint "orders_qty_check"' \
        "$(sql "$db" -c "INSERT INTO orders VALUES (-1)" | head -1)"
    check "$version: the module keeps its owner" "up_loader|t" \
        "$(sql "$db" -c "SELECT owner, exports @> '[{\"name\": \"add\"}]' FROM wasm.modules")"
    out=$(sql "$db" <<'EOF'
SET ROLE up_loader;
SELECT wasm.load('math', wasm.wat('(module
    (func (export "add") (param i32 i32) (result i32) (i32.sub (local.get 0) (local.get 1)))
    (func (export "positive") (param i32) (result i32) (i32.gt_s (local.get 0) (i32.const 0))))'),
    replace => true);
SELECT add(2, 3);
EOF
    )
    out=${out##*$'\n'}
    check "$version: a replace after the update" "-1" "$out"
    check "$version: the replace kept the previous version, and a rollback restores it" "1|false,2|true 5" \
        "$(sql "$db" -c "SELECT string_agg(version || '|' || current, ',' ORDER BY version)
                         FROM wasm.module_versions WHERE name = 'math'" |
            tr '\n' ' ')$(sql "$db" -c "SET ROLE up_loader" -c "SELECT wasm.rollback('math')" -c "SELECT add(2, 3)" | tail -1)"

    # An empty database updated from the old version has what a fresh install has.
    sql "$bare" -c "CREATE EXTENSION plwasm VERSION '$version'" -c "ALTER EXTENSION plwasm UPDATE" >/dev/null
    updated_schema=$(schema_of "$bare")
    difference=$(diff <(echo "$fresh_schema") <(echo "$updated_schema"))
    check "$version: updated objects are those of a fresh $current (diff fresh updated)" "" "$difference"
done

echo "$passed passed, $failed failed"
((failed == 0))

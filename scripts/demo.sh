#!/usr/bin/env bash
# The plwasm demo: set up (if needed), start a throw-away PostgreSQL cluster as an unprivileged
# OS user, create the extension, load examples/wat/geo.wat, create functions and query them.
#
# Environment: PLWASM_DEMO_DIR (default /tmp/plwasm-demo), PLWASM_DEMO_PORT (default 5499),
# PLWASM_DEMO_KEEP=1 leaves the server running afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${PLWASM_PG:-15}
BIN=/usr/lib/postgresql/$PG/bin
DIR=${PLWASM_DEMO_DIR:-/tmp/plwasm-demo}
PORT=${PLWASM_DEMO_PORT:-5499}

bash "$ROOT/scripts/setup.sh"

# PostgreSQL refuses to run as root: run the server as the `postgres` OS user when we are root.
if [[ $(id -u) == 0 ]]; then
    OS_USER=postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    OS_USER=$(id -un)
    as_pg() { "$@"; }
fi
mkdir -p "$DIR"
chown "$OS_USER" "$DIR"
if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
    echo "==> initdb $DIR/data"
    as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
fi
stop() { as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
# Restart so the server loads the freshly installed library.
stop
echo "==> starting PostgreSQL $PG on port $PORT (socket in $DIR)"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=''" start >/dev/null
[[ "${PLWASM_DEMO_KEEP:-0}" == 1 ]] || trap stop EXIT

PSQL=(psql -X -q -h "$DIR" -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS plwasm_demo" -c "CREATE DATABASE plwasm_demo" 2>&1 \
    | grep -v "does not exist, skipping" || true
"${PSQL[@]}" -d plwasm_demo -v geo="$(cat "$ROOT/examples/wat/geo.wat")" -f "$ROOT/examples/demo.sql"
echo "==> demo finished"
[[ "${PLWASM_DEMO_KEEP:-0}" == 1 ]] && echo "server left running: psql -h $DIR -p $PORT -U postgres plwasm_demo"
exit 0

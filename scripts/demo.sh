#!/usr/bin/env bash
# The plwasm demo: set up (if needed), start a throw-away PostgreSQL cluster as an unprivileged
# OS user, create the extension, load examples/wat/geo.wat, create functions and query them.
#
# Environment: PLWASM_DEMO_DIR (default /tmp/plwasm-demo), PLWASM_DEMO_PORT (default 5499),
# PLWASM_DEMO_KEEP=1 leaves the server running afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${PLWASM_PG:-15}
DIR=${PLWASM_DEMO_DIR:-/tmp/plwasm-demo}
PORT=${PLWASM_DEMO_PORT:-5499}

bash "$ROOT/scripts/setup.sh"

# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"
echo "==> starting PostgreSQL $PG on port $PORT (socket in $DIR)"
cluster_start "$DIR" "$PORT"
[[ "${PLWASM_DEMO_KEEP:-0}" == 1 ]] || trap 'cluster_stop "$DIR"' EXIT

PSQL=(cluster_psql "$DIR" "$PORT")
PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS plwasm_demo" -c "CREATE DATABASE plwasm_demo"
"${PSQL[@]}" -d plwasm_demo -v geo="$(cat "$ROOT/examples/wat/geo.wat")" -f "$ROOT/examples/demo.sql"
echo "==> demo finished"
[[ "${PLWASM_DEMO_KEEP:-0}" == 1 ]] && echo "server left running: psql -h $DIR -p $PORT -U postgres plwasm_demo"
exit 0

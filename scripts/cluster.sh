# Shared helpers for throw-away PostgreSQL clusters (sourced by demo.sh and tests/regress.sh).
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` OS user.
#
#   cluster_start DIR PORT [extra postgres -c settings...]  # initdb if needed, (re)start
#   cluster_stop DIR
#   cluster_psql DIR PORT [psql args...]                    # psql as role postgres

PG=${PLWASM_PG:-15}
PG_BIN=/usr/lib/postgresql/$PG/bin

if [[ $(id -u) == 0 ]]; then
    CLUSTER_OS_USER=postgres
    as_cluster_user() { runuser -u postgres -- "$@"; }
else
    CLUSTER_OS_USER=$(id -un)
    as_cluster_user() { "$@"; }
fi

cluster_stop() {
    [[ -f "$1/data/PG_VERSION" ]] || return 0
    as_cluster_user "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

cluster_start() {
    local dir=$1 port=$2
    shift 2
    local opts="-p $port -k $dir -c listen_addresses=''"
    local setting
    for setting in "$@"; do opts+=" -c $setting"; done
    mkdir -p "$dir"
    chown "$CLUSTER_OS_USER" "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_cluster_user "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    fi
    # Restart so the server loads the freshly installed extension library.
    cluster_stop "$dir"
    # The server does not inherit developer settings such as RUST_BACKTRACE (slow, noisy errors);
    # CLUSTER_ENV adds variables on purpose (the regression tests set RUST_BACKTRACE=1 to prove
    # no backtrace reaches a client).
    # shellcheck disable=SC2086
    as_cluster_user env -u RUST_BACKTRACE -u RUST_LOG ${CLUSTER_ENV:-} "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$opts" start >/dev/null
}

cluster_psql() {
    local dir=$1 port=$2
    shift 2
    psql -X -q -h "$dir" -p "$port" -U postgres "$@"
}

#!/usr/bin/env bash
# The plwasm CLI against a real cluster: `plwasm new` -> `plwasm build` -> `plwasm deploy`
# (--dry-run first) -> a call from psql -> `plwasm ls`; then the error paths and their exit codes
# (1 failed, 3 cannot connect): bad connection strings, permission denied, a module that is not
# one, a module for another ABI, a database without plwasm, a deploy over a deployed module; and
# a password from a pgpass file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}/cli
PORT=${PLWASM_CLI_PORT:-28913}

bash "$ROOT/scripts/setup.sh"
echo "cli: building the CLI (release)"
cargo build --quiet --release -p plwasm-cli --manifest-path "$ROOT/Cargo.toml"
PLWASM=$ROOT/target/release/plwasm

source "$ROOT/scripts/cluster.sh"
rm -rf "$WORK/crates"
mkdir -p "$WORK/crates"
chmod 755 "$WORK"
cluster_start "$WORK" "$PORT"
trap 'cluster_stop "$WORK"' EXIT
cluster_psql "$WORK" "$PORT" -d postgres -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
DROP DATABASE IF EXISTS cli_test;
DROP DATABASE IF EXISTS cli_bare;
CREATE DATABASE cli_test;
CREATE DATABASE cli_bare;
\c cli_test
CREATE EXTENSION plwasm;
DROP ROLE IF EXISTS cli_nobody;
DROP ROLE IF EXISTS cli_pw;
CREATE ROLE cli_nobody LOGIN;
CREATE ROLE cli_pw LOGIN PASSWORD 'pw-from-file' IN ROLE wasm_loader;
GRANT CREATE ON SCHEMA public TO cli_pw;
CREATE SCHEMA big_fns;
SQL

failures=0
check() { # check NAME EXPECTED_EXIT PATTERN -- command...
    local name=$1 want=$2 pattern=$3
    shift 4
    local out status=0
    out=$("$@" 2>&1) || status=$?
    if [[ $status != "$want" ]] || ! grep -qE -- "$pattern" <<<"$out"; then
        echo "cli: FAILED $name (exit $status, wanted $want; output must match /$pattern/):"
        sed 's/^/    /' <<<"$out"
        failures=$((failures + 1))
    else
        echo "cli: ok $name"
    fi
}

export PLWASM_DSN="host=$WORK port=$PORT user=postgres dbname=cli_test"
export CARGO_TARGET_DIR=$WORK/target
cd "$WORK/crates"

check new 0 'created myfns' -- "$PLWASM" new myfns
check new_exists 1 'already exists' -- "$PLWASM" new myfns
check native_test 0 'test result: ok. 2 passed' -- cargo test --manifest-path myfns/Cargo.toml
check build 0 'myfns\.wasm' -- "$PLWASM" build myfns
# A crate that builds no cdylib: an error, not the module an earlier build left behind.
cp -r myfns rlibonly
sed -i 's/^name = "myfns"/name = "rlibonly"/; s/crate-type = .*/crate-type = ["rlib"]/' rlibonly/Cargo.toml
check build_no_cdylib 1 'builds no \.wasm module' -- "$PLWASM" build rlibonly
check new_reserved 1 'keyword or standard crate name' -- "$PLWASM" new test
MODULE=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/myfns.wasm

# --dry-run: the server checks everything, the output says what would change, nothing stays.
out=$("$PLWASM" deploy myfns --dry-run 2>/dev/null)
expected='module "myfns": N bytes, sha256 X, new
  + add_one(integer) -> integer
  + words(text) -> SETOF text
dry run: rolled back, nothing was changed'
got=$(sed -E 's/[0-9]+ bytes/N bytes/; s/sha256 [0-9a-f]{16}/sha256 X/' <<<"$out")
if [[ $got == "$expected" ]]; then echo "cli: ok dry_run output"; else
    echo "cli: FAILED dry_run output:"; diff <(echo "$expected") <(echo "$got") || true
    failures=$((failures + 1))
fi
check ls_after_dry_run 0 '\(no modules\)' -- "$PLWASM" ls

check deploy 0 'deployed \(2 functions and aggregates\)' -- "$PLWASM" deploy myfns
check call 0 '^42\|hello,world$' -- cluster_psql "$WORK" "$PORT" -d cli_test -At -c \
    "SELECT add_one(41) || '|' || (SELECT string_agg(w, ',') FROM words('Hello, World') w)"
check comment 0 '^Adds one to an integer\.$' -- cluster_psql "$WORK" "$PORT" -d cli_test -At -c \
    "SELECT obj_description('add_one(int)'::regprocedure, 'pg_proc')"
check ls 0 'myfns +postgres +[0-9]+ .* 2$' -- "$PLWASM" ls
check ls_functions 0 'words\(text\) -> SETOF text' -- "$PLWASM" ls --functions
check deploy_again 1 'already deployed; pass --replace' -- "$PLWASM" deploy "$MODULE"
check replace 0 '= add_one\(integer\) -> integer' -- "$PLWASM" deploy "$MODULE" --replace
check replace_same 0 'the same bytes as deployed' -- "$PLWASM" deploy "$MODULE" --replace

# A module over 256 kB goes up in chunks with progress, and arrives intact: the module with a
# 3 MB custom section appended.
leb128() {
    local n=$1 byte
    while :; do
        byte=$((n & 0x7f))
        n=$((n >> 7))
        if ((n)); then printf '\\x%02x' $((byte | 0x80)); else printf '\\x%02x' $byte; break; fi
    done
}
bulk=$((3 << 20))
{ cat "$MODULE"; printf '\x00'; printf "$(leb128 $((5 + bulk)))"; printf '\x04bulk'; head -c $bulk /dev/zero; } >big.wasm
check chunked_upload 0 'uploading 3\.[0-9] MB: 100%' -- "$PLWASM" deploy big.wasm --name big --schema big_fns
want_sha=$(sha256sum big.wasm | cut -d' ' -f1)
check chunked_upload_intact 0 "^$want_sha\$" -- cluster_psql "$WORK" "$PORT" -d cli_test -At -c \
    "SELECT sha256 FROM wasm.modules WHERE name = 'big'"

# Error paths and exit codes.
check bad_dsn_syntax 2 'invalid --dsn: .*port' -- "$PLWASM" ls --dsn "host=$WORK port=notaport"
check help_hides_dsn 0 'PLWASM_DSN' -- env PLWASM_DSN="host=x password=TopSecretPW" "$PLWASM" ls --help
if env PLWASM_DSN="host=x password=TopSecretPW" "$PLWASM" ls --help | grep -q TopSecretPW; then
    echo "cli: FAILED --help shows the DSN's password"; failures=$((failures + 1))
fi
# PGSSLMODE is read; like libpq, it does not apply to Unix sockets (the test cluster has only a
# socket, so sslmode=require refusing a TCP connection in the clear is checked by reading
# connect.rs only).
check sslmode_invalid 2 'invalid PGSSLMODE "bogus"' -- env PGSSLMODE=bogus "$PLWASM" ls
check sslmode_socket 0 'myfns' -- env PGSSLMODE=require "$PLWASM" ls
check no_server 3 'cannot connect to database "cli_test" on /nonexistent:1' -- \
    "$PLWASM" ls --dsn "host=/nonexistent port=1 dbname=cli_test user=postgres"
check permission_denied 1 'permission denied.*SQLSTATE 42501' -- \
    "$PLWASM" deploy "$MODULE" --name other --dsn "host=$WORK port=$PORT user=cli_nobody dbname=cli_test"
printf 'not a module' >junk.wasm
check not_a_module 1 'junk.wasm is not a WebAssembly module' -- "$PLWASM" deploy junk.wasm
printf '\0asm\1\0\0\0\1\5' >truncated.wasm
check invalid_module 1 'truncated.wasm is not a valid module' -- "$PLWASM" deploy truncated.wasm
# A module whose plwasm.abi section names ABI 2: refused before anything is sent.
printf '\0asm\1\0\0\0\0\015\012plwasm.abi2\n' >abi2.wasm
check foreign_abi 1 'built for plwasm ABI "2"' -- "$PLWASM" deploy abi2.wasm
check not_installed 1 'plwasm is not installed in this database' -- \
    "$PLWASM" ls --dsn "host=$WORK port=$PORT user=postgres dbname=cli_bare"
check not_installed_deploy 1 'plwasm is not installed in this database' -- \
    "$PLWASM" deploy "$MODULE" --dsn "host=$WORK port=$PORT user=postgres dbname=cli_bare"

# A password from a pgpass file (libpq's format), for a role that must give one.
hba=$WORK/data/pg_hba.conf
if ! grep -q cli_pw "$hba"; then
    sed -i '1i local all cli_pw scram-sha-256' "$hba"
    as_cluster_user "$PG_BIN/pg_ctl" -D "$WORK/data" reload >/dev/null
    sleep 1
fi
# A socket directory other than the default one matches only itself, not localhost (libpq).
printf 'localhost:%s:cli_test:cli_pw:pw-from-file\n' "$PORT" >pgpass
chmod 600 pgpass
check pgpass_localhost_is_not_a_socket 3 'password' -- env PGPASSFILE="$WORK/crates/pgpass" \
    "$PLWASM" ls --dsn "host=$WORK port=$PORT user=cli_pw dbname=cli_test"
printf '# plwasm CLI test\n%s:%s:cli_test:cli_pw:pw-from-file\n' "${WORK//:/\\:}" "$PORT" >pgpass
check pgpass 0 'myfns' -- env PGPASSFILE="$WORK/crates/pgpass" "$PLWASM" ls \
    --dsn "host=$WORK port=$PORT user=cli_pw dbname=cli_test"
check no_password 3 'password' -- env PGPASSFILE=/nonexistent "$PLWASM" ls \
    --dsn "host=$WORK port=$PORT user=cli_pw dbname=cli_test"
chmod 644 pgpass
check pgpass_too_open 3 'has group or world access' -- env PGPASSFILE="$WORK/crates/pgpass" \
    "$PLWASM" ls --dsn "host=$WORK port=$PORT user=cli_pw dbname=cli_test"

if ((failures)); then
    echo "cli: $failures check(s) failed"
    exit 1
fi
echo "cli: all checks passed"

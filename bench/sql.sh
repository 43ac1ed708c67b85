#!/usr/bin/env bash
# plwasm against PostgreSQL's builtins and other procedural languages, in one run on a real
# server (release build, throw-away cluster). Prints a table of times and ratios measured in the
# same run; docs/benchmarks.md holds the latest full run.
#
#   bash bench/sql.sh            # full run (a few minutes)
#   bash bench/sql.sh --smoke    # tiny sizes, one repetition: checks that every case runs
#                                # (tests/run.sh runs this; its times mean nothing)
#   PLWASM_BENCH_CASES='json|kernel' bash bench/sql.sh
#                                # only the rows whose name matches (grep -iE); the sections
#                                # after the table are named "first call", "parallel",
#                                # "memory" and "pgbench"
#
# It first runs scripts/setup.sh --wasm-toolchains (which installs missing Debian packages and
# builds and installs plwasm, release unless PLWASM_PROFILE says otherwise: the footer prints
# the profile), builds the example crates and bench/kernels to wasm, and installs the native
# reference extension bench/native into the system PostgreSQL (cargo pgrx install): run it as
# root or with sudo. A first run on a new machine spends most of its time building.
#
# Each case is timed as the best of several runs of one SQL statement (clock_timestamp around
# EXECUTE in PL/pgSQL, so no client round trips are counted). It installs what it compares with
# (Debian's postgresql-plpython3-15 and postgresql-plperl-15) when they are missing.
# Environment: PLWASM_BENCH_DIR (default /tmp/plwasm-bench), PLWASM_BENCH_PORT (default 28890).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${PLWASM_PG:-15}
DIR=${PLWASM_BENCH_DIR:-/tmp/plwasm-bench}
PORT=${PLWASM_BENCH_PORT:-28890}
SMOKE=0
[[ "${1:-}" == --smoke ]] && SMOKE=1

if ((SMOKE)); then
    ROWS=2000 PAIRS=200 TEXTS=200 ORDERS=200 VECTORS=200 FIB=15 FIB_KERNEL=15 RUNS=1 CONNECTIONS=3
    MODULE_COUNTS="1 2 3" PGBENCH="-t 20" BIG_FUNCS=20
else
    ROWS=2000000 PAIRS=200000 TEXTS=200000 ORDERS=100000 VECTORS=20000 FIB=22 FIB_KERNEL=30 RUNS=5
    CONNECTIONS=30
    MODULE_COUNTS="1 10 50" PGBENCH="-T 3" BIG_FUNCS=1100
fi
ONLY=${PLWASM_BENCH_CASES:-}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
missing=()
for p in postgresql-plpython3-$PG postgresql-plperl-$PG; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

bash "$ROOT/scripts/setup.sh" --wasm-toolchains
wasm_dir=$DIR/wasm
mkdir -p "$wasm_dir"
for crate in examples/rust/text-udfs examples/rust/json-udfs examples/rust/vector-udfs bench/kernels; do
    name=$(basename "$crate")
    CARGO_TARGET_DIR=$DIR/wasm-target bash "$ROOT/scripts/build-wasm.sh" rust \
        "$ROOT/$crate" "$wasm_dir/${name//-/_}.wasm" wasm32-unknown-unknown
done
# The native references: the same kernel sources as a pgrx extension (release build).
cargo pgrx install --release --manifest-path "$ROOT/bench/native/Cargo.toml" \
    --pg-config "/usr/lib/postgresql/$PG/bin/pg_config" >/dev/null 2>&1 ||
    cargo pgrx install --release --manifest-path "$ROOT/bench/native/Cargo.toml" \
        --pg-config "/usr/lib/postgresql/$PG/bin/pg_config"
chmod -R a+rX "$wasm_dir"

# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"
cluster_start "$DIR" "$PORT" client_min_messages=warning
trap 'cluster_stop "$DIR"' EXIT
psql_bench() { cluster_psql "$DIR" "$PORT" -d plwasm_bench -v ON_ERROR_STOP=1 "$@"; }
cluster_psql "$DIR" "$PORT" -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS plwasm_bench" -c "CREATE DATABASE plwasm_bench" >/dev/null

psql_bench -v wasmdir="$wasm_dir" -v pairs="$PAIRS" -v texts="$TEXTS" -v orders="$ORDERS" \
    -v vectors="$VECTORS" -v big_funcs="$BIG_FUNCS" >/dev/null <<'SQL'
CREATE EXTENSION plwasm;
CREATE EXTENSION plpython3u;
CREATE EXTENSION plperl;
CREATE EXTENSION fuzzystrmatch;
CREATE EXTENSION dblink;
CREATE EXTENSION plwasm_bench_native;

-- The timer: best of `runs` executions of `query`, in milliseconds.
CREATE FUNCTION bench_ms(query text, runs int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    best float8 := 'Infinity';
    t0 timestamptz;
BEGIN
    FOR i IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE query;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN best;
END $$;

-- A connection string to this database (as postgres) with extra server `options`.
CREATE FUNCTION bench_conninfo(options text DEFAULT '') RETURNS text LANGUAGE sql AS $$
    SELECT format('dbname=%s port=%s host=%s user=postgres options=%L', current_database(),
        current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1),
        options)
$$;

-- Cold start: mean time of `n` new connections (through dblink) that each run `query` first.
CREATE FUNCTION cold_ms(query text, n int, options text DEFAULT '') RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    total float8 := 0;
    t0 timestamptz;
    conninfo text := bench_conninfo(options);
BEGIN
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        PERFORM dblink_connect('cold', conninfo);
        PERFORM * FROM dblink('cold', query) AS r(x text);
        total := total + extract(epoch FROM clock_timestamp() - t0) * 1000;
        PERFORM dblink_disconnect('cold');
    END LOOP;
    RETURN total / n;
END $$;

-- Scalar call overhead: the same int + int in every language.
SELECT wasm.load('bench_add', wasm.wat('(module (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))'));
CREATE FUNCTION add_wasm(int, int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'bench_add:add';
CREATE FUNCTION add_plpgsql(a int, b int) RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT AS
    $$ BEGIN RETURN a + b; END $$;
CREATE FUNCTION add_python(a int, b int) RETURNS int LANGUAGE plpython3u IMMUTABLE STRICT AS
    $$ return a + b $$;
CREATE FUNCTION add_perl(int, int) RETURNS int LANGUAGE plperl IMMUTABLE STRICT AS
    $$ return $_[0] + $_[1]; $$;

-- A query from a function (plwasm.query: a read-only subtransaction, the statement parsed and
-- planned each call, rows as JSON), against PL/pgSQL's dynamic EXECUTE (parsed each call, no
-- subtransaction) and PL/Python's plpy.execute of a statement prepared each call (a
-- subtransaction each, as plwasm).
SELECT wasm.load('bench_query', wasm.wat($wat$(module
  (import "plwasm" "query" (func $query (param i32 i32 i32 i32) (result i32)))
  (import "plwasm" "query_read" (func $read (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func $alloc (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "plwasm_free") (param i32 i32) (global.set $next (i32.const 1024)))
  (func (export "q") (param $s i32) (param $sn i32) (param $p i32) (param $pn i32) (result i64)
    (local $n i32) (local $buf i32)
    (local.set $n (call $query (local.get $s) (local.get $sn) (local.get $p) (local.get $pn)))
    (local.set $buf (call $alloc (local.get $n)))
    (drop (call $read (local.get $buf) (local.get $n)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $buf)) (i64.const 32))
            (i64.extend_i32_u (local.get $n)))))$wat$));
SELECT wasm.set_capabilities('bench_query', '{query}');
CREATE FUNCTION query_wasm(sql text, params text) RETURNS text LANGUAGE wasm AS 'bench_query:q';
CREATE FUNCTION query_plpgsql(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE 'SELECT json_agg(x)::text FROM (SELECT $1 + 1 AS n) x' INTO r USING i;
    RETURN r;
END $$;
CREATE FUNCTION query_python(i int) RETURNS text LANGUAGE plpython3u AS $$
plan = plpy.prepare("SELECT $1 + 1 AS n", ["bigint"])
return str(list(plpy.execute(plan, [i])))
$$;

-- The JSON form's own cost: the same identity function over numeric (JSON text through
-- memory) and over float8 (a native wasm f64).
SELECT wasm.load('bench_echo', wasm.wat('(module
    (memory (export "memory") 1)
    (func (export "plwasm_alloc") (param i32) (result i32) i32.const 1024)
    (func (export "echo") (param i32 i32) (result i64)
        (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1))))
    (func (export "id_f64") (param f64) (result f64) local.get 0))'));
CREATE FUNCTION echo_numeric(numeric) RETURNS numeric LANGUAGE wasm IMMUTABLE STRICT AS 'bench_echo:echo';
CREATE FUNCTION id_float8(float8) RETURNS float8 LANGUAGE wasm IMMUTABLE STRICT AS 'bench_echo:id_f64';

-- SETOF throughput: n integer rows emitted by a wasm loop.
SELECT wasm.load('bench_series', wasm.wat('(module
    (import "plwasm" "emit_i32" (func $emit (param i32)))
    (func (export "series") (param $n i32) (local $i i32)
        (block $done (loop $next
            (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (call $emit (local.get $i))
            (br $next)))))'));
CREATE FUNCTION series_wasm(int) RETURNS SETOF int LANGUAGE wasm IMMUTABLE STRICT AS 'bench_series:series';

-- Recursive fib: wasm against PL/pgSQL.
SELECT wasm.load('bench_fib', wasm.wat('(module (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_s (local.get 0) (i32.const 2)) (then (local.get 0))
        (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                       (call $fib (i32.sub (local.get 0) (i32.const 2))))))))'));
CREATE FUNCTION fib_wasm(int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'bench_fib:fib';
CREATE FUNCTION fib_plpgsql(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    IF n < 2 THEN RETURN n; END IF;
    RETURN fib_plpgsql(n - 1) + fib_plpgsql(n - 2);
END $$;

-- Compute kernels, one Rust source compiled two ways: bench/kernels (SDK, wasm, opt-level 3) and
-- bench/native (pgrx).
SELECT wasm.load('bench_kernels', pg_read_binary_file(:'wasmdir' || '/kernels.wasm'));
CREATE SCHEMA k;
SELECT count(*) FROM wasm.create_functions('bench_kernels', 'k');
CREATE TABLE blobs AS
    SELECT decode(repeat(md5(i::text), 32), 'hex') AS b FROM generate_series(1, :pairs) i;

-- Text: the Rust example crate (levenshtein, slugify, tokens).
SELECT wasm.load('text_udfs', pg_read_binary_file(:'wasmdir' || '/text_udfs.wasm'));
CREATE SCHEMA w;
SELECT count(*) FROM wasm.create_functions('text_udfs', 'w');
CREATE TABLE pairs AS
    SELECT md5(i::text) AS a, md5((i * 7)::text) AS b FROM generate_series(1, :pairs) i;
CREATE TABLE texts AS
    SELECT 'Hello, World! ' || md5(i::text) || ' The Quick Brown Fox ' || i AS t
      FROM generate_series(1, :texts) i;

-- The JSON form (numeric, composite rows, SETOF rows, jsonb) and arrays: the json-udfs and
-- vector-udfs example crates, against the nearest SQL.
SELECT wasm.load('json_udfs', pg_read_binary_file(:'wasmdir' || '/json_udfs.wasm'));
SELECT wasm.load('vector_udfs', pg_read_binary_file(:'wasmdir' || '/vector_udfs.wasm'));
CREATE TYPE order_total AS (id bigint, units integer, total numeric);
SELECT count(*) FROM wasm.create_functions('json_udfs', 'w');
SELECT count(*) FROM wasm.create_functions('vector_udfs', 'w');
CREATE AGGREGATE w.wasm_stddev(float8) (sfunc = w.stddev_accum, stype = float8[],
    finalfunc = w.stddev_final, initcond = '{0,0,0}');
CREATE TABLE orders AS
    SELECT jsonb_build_object('id', i, 'coupon', CASE WHEN i % 3 = 0 THEN 'TENOFF' END,
               'tags', jsonb_build_array('Red', 'red', 'Blue'),
               'items', jsonb_build_array(
                   jsonb_build_object('sku', 'a' || i % 10, 'qty', 1 + i % 5, 'unit_price', 1.25),
                   jsonb_build_object('sku', 'b', 'qty', 2, 'unit_price', 0.5))) AS doc,
           (i % 1000)::numeric / 8 AS price
      FROM generate_series(1, :orders) i;
-- (`i % 1` makes the subqueries correlated, so each row gets its own random vectors.)
CREATE TABLE vectors AS
    SELECT array(SELECT random() FROM generate_series(1, 64 + i % 1)) AS a,
           array(SELECT random() FROM generate_series(1, 64 + i % 1)) AS b
      FROM generate_series(1, :vectors) i;
ANALYZE pairs, texts, orders, vectors, blobs;

-- Cold start and memory: generated modules of about 10 KiB and (full run) over 1 MiB of code
-- (functions of 100 additions each, about 1 kB), each loaded twice: `big` keeps the artifact
-- wasm.load stored, `big_compiled` has it deleted (its first call in a backend compiles).
CREATE FUNCTION big_module(funcs int) RETURNS bytea LANGUAGE sql AS $$
    SELECT wasm.wat('(module ' || string_agg(format(
        '(func (export "f%s") (param i32) (result i32) %s local.get 0)', i,
        repeat(format('(local.set 0 (i32.add (local.get 0) (i32.const %s))) ', i * 7919 + 100000), 100)),
        ' ') || ')')
      FROM generate_series(1, funcs) i
$$;
SELECT wasm.load('small', big_module(11)), wasm.load('small_compiled', big_module(11));
SELECT wasm.load('big', big_module(:big_funcs)), wasm.load('big_compiled', big_module(:big_funcs));
DELETE FROM wasm.module_artifacts WHERE name IN ('small_compiled', 'big_compiled');
CREATE FUNCTION small_f1(int) RETURNS int LANGUAGE wasm IMMUTABLE PARALLEL SAFE AS 'small:f1';
CREATE FUNCTION small_compiled_f1(int) RETURNS int LANGUAGE wasm IMMUTABLE PARALLEL SAFE AS 'small_compiled:f1';
CREATE FUNCTION big_f1(int) RETURNS int LANGUAGE wasm IMMUTABLE PARALLEL SAFE AS 'big:f1';
CREATE FUNCTION big_compiled_f1(int) RETURNS int LANGUAGE wasm IMMUTABLE PARALLEL SAFE AS 'big_compiled:f1';
CREATE TABLE par_t AS SELECT i FROM generate_series(1, 1000) i;
ANALYZE par_t;

-- Memory: the text-udfs module under 50 names, and the backend's resident set size (kB) after
-- calling one function of each of the first n.
SELECT count(wasm.load('tu_' || k, pg_read_binary_file(:'wasmdir' || '/text_udfs.wasm')))
  FROM generate_series(1, 50) k;
DO $$ BEGIN
    FOR k IN 1..50 LOOP
        EXECUTE format('CREATE FUNCTION tu_slug_%s(text) RETURNS text LANGUAGE wasm AS %L', k, 'tu_' || k || ':slugify');
    END LOOP;
END $$;
CREATE FUNCTION rss_kb_after(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1..n LOOP
        EXECUTE format('SELECT tu_slug_%s($1)', k) USING 'Cold Start';
    END LOOP;
    RETURN substring(pg_read_file('/proc/self/status') FROM 'VmRSS:\s+(\d+)')::bigint;
END $$;
SQL

# Each case: name | statement | reference name | reference statement. The statements aggregate,
# so only the functions' own work and one aggregate per row are timed.
cases=(
    "scalar call int+int ($ROWS rows)|SELECT sum(add_wasm(i, 1)) FROM generate_series(1, $ROWS) i|builtin i + 1|SELECT sum(i + 1) FROM generate_series(1, $ROWS) i"
    "scalar call int+int ($ROWS rows)|SELECT sum(add_wasm(i, 1)) FROM generate_series(1, $ROWS) i|PL/pgSQL|SELECT sum(add_plpgsql(i, 1)) FROM generate_series(1, $ROWS) i"
    "scalar call int+int ($ROWS rows)|SELECT sum(add_wasm(i, 1)) FROM generate_series(1, $ROWS) i|PL/Python|SELECT sum(add_python(i, 1)) FROM generate_series(1, $ROWS) i"
    "scalar call int+int ($ROWS rows)|SELECT sum(add_wasm(i, 1)) FROM generate_series(1, $ROWS) i|PL/Perl|SELECT sum(add_perl(i, 1)) FROM generate_series(1, $ROWS) i"
    "scalar call int+int ($ROWS rows)|SELECT sum(add_wasm(i, 1)) FROM generate_series(1, $ROWS) i|native pgrx function|SELECT sum(add_native(i, 1)) FROM generate_series(1, $ROWS) i"
    "query from a function, $((TEXTS / 10)) calls|SELECT count(query_wasm('SELECT \$1 + 1 AS n', format('[%s]', i))) FROM generate_series(1, $((TEXTS / 10))) i|PL/pgSQL EXECUTE|SELECT count(query_plpgsql(i)) FROM generate_series(1, $((TEXTS / 10))) i"
    "query from a function, $((TEXTS / 10)) calls|SELECT count(query_wasm('SELECT \$1 + 1 AS n', format('[%s]', i))) FROM generate_series(1, $((TEXTS / 10))) i|PL/Python plpy.execute|SELECT count(query_python(i)) FROM generate_series(1, $((TEXTS / 10))) i"
    "recursive fib($FIB)|SELECT fib_wasm($FIB)|PL/pgSQL|SELECT fib_plpgsql($FIB)"
    "kernel: recursive fib($FIB_KERNEL), Rust SDK|SELECT k.kernel_fib($FIB_KERNEL)|same source, native pgrx|SELECT fib_native($FIB_KERNEL)"
    "kernel: levenshtein, $PAIRS pairs, Rust SDK (opt-level 3)|SELECT sum(k.kernel_levenshtein(a, b)) FROM pairs|same source, native pgrx|SELECT sum(levenshtein_native(a, b)) FROM pairs"
    "kernel: sha256 of $PAIRS 512-byte values, Rust SDK|SELECT count(k.kernel_sha256(b)) FROM blobs|same source, native pgrx|SELECT count(sha256_native(b)) FROM blobs"
    "kernel: sha256 of $PAIRS 512-byte values, Rust SDK|SELECT count(k.kernel_sha256(b)) FROM blobs|builtin encode(sha256(b), 'hex')|SELECT count(encode(sha256(b), 'hex')) FROM blobs"
    "kernel: slugify, $TEXTS texts, Rust SDK (opt-level 3)|SELECT sum(length(k.kernel_slugify(t))) FROM texts|same source, native pgrx|SELECT sum(length(slugify_native(t))) FROM texts"
    "levenshtein, $PAIRS pairs of 32 chars|SELECT sum(w.levenshtein(a, b)) FROM pairs|fuzzystrmatch (C)|SELECT sum(levenshtein(a, b)) FROM pairs"
    "slugify, $TEXTS texts|SELECT sum(length(w.slugify(t))) FROM texts|lower + regexp_replace|SELECT sum(length(trim(both '-' FROM regexp_replace(lower(t), '[^a-z0-9]+', '-', 'g')))) FROM texts"
    "JSON form: numeric identity, $ORDERS rows|SELECT sum(echo_numeric(price)) FROM orders|the same over float8 (native)|SELECT sum(id_float8(price::float8)) FROM orders"
    "numeric in and out (JSON form), $ORDERS rows|SELECT sum(w.discounted(price, 10)) FROM orders|numeric expression|SELECT sum(round(price * 90) / 100) FROM orders"
    "composite result (JSON form), $ORDERS orders|SELECT sum((w.order_total(doc)).total) FROM orders|SQL over jsonb|SELECT sum(round((SELECT sum((e->>'qty')::numeric * (e->>'unit_price')::numeric) FROM jsonb_array_elements(doc->'items') e) * CASE WHEN doc->>'coupon' = 'TENOFF' THEN 0.9 ELSE 1 END, 2)) FROM orders"
    "SETOF rows (JSON form), $ORDERS orders|SELECT count(*), sum(amount) FROM orders, w.order_lines(doc)|jsonb_to_recordset|SELECT count(*), sum(round(qty * unit_price, 2)) FROM orders, jsonb_to_recordset(doc->'items') AS r(sku text, qty int, unit_price numeric)"
    "jsonb in and out, $ORDERS documents|SELECT count(w.normalize_tags(doc)) FROM orders|jsonb_set + jsonb_agg|SELECT count(jsonb_set(doc, '{tags}', (SELECT jsonb_agg(DISTINCT lower(t)) FROM jsonb_array_elements_text(doc->'tags') t))) FROM orders"
    "float8[] in (64-d cosine), $VECTORS pairs|SELECT sum(w.cosine_similarity(a, b)) FROM vectors|SQL over unnest|SELECT sum((SELECT sum(x * y) / (sqrt(sum(x * x)) * sqrt(sum(y * y))) FROM unnest(a, b) u(x, y))) FROM vectors"
    "aggregate over wasm sfunc (float8[] state), $((ROWS / 2)) rows|SELECT w.wasm_stddev(i) FROM generate_series(1, $((ROWS / 2))) i|builtin stddev_samp|SELECT stddev_samp(i::float8) FROM generate_series(1, $((ROWS / 2))) i"
    "median, #[aggregate] (state kept in the module), $((ROWS / 2)) rows|SELECT w.median(i::float8) FROM generate_series(1, $((ROWS / 2))) i|percentile_cont(0.5)|SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY i::float8) FROM generate_series(1, $((ROWS / 2))) i"
    "SETOF int, $ROWS rows from one call|SELECT count(*) FROM series_wasm($ROWS)|generate_series|SELECT count(*) FROM generate_series(1, $ROWS)"
    "tokens (SETOF), $TEXTS texts|SELECT count(*) FROM texts, w.tokens(t)|regexp_split_to_table|SELECT count(*) FROM texts, regexp_split_to_table(lower(t), '[^a-z0-9]+') s WHERE s <> ''"
)

echo
echo "| case | plwasm ms | reference | reference ms | plwasm / reference |"
echo "|---|---:|---|---:|---:|"
for case in "${cases[@]}"; do
    IFS='|' read -r name wasm_sql ref_name ref_sql <<<"$case"
    [[ -z "$ONLY" ]] || grep -qiE -- "$ONLY" <<<"$name" || continue
    # Warm up both (compile, instantiate, caches) before timing.
    psql_bench -Atc "SELECT bench_ms(\$q\$$wasm_sql\$q\$, 1), bench_ms(\$q\$$ref_sql\$q\$, 1)" >/dev/null
    read -r wasm_ms ref_ms < <(psql_bench -AtF ' ' -c \
        "SELECT round(bench_ms(\$q\$$wasm_sql\$q\$, $RUNS)::numeric, 1), round(bench_ms(\$q\$$ref_sql\$q\$, $RUNS)::numeric, 1)")
    ratio=$(awk -v a="$wasm_ms" -v b="$ref_ms" 'BEGIN { if (b > 0) printf "%.3gx", a / b; else print "-" }')
    echo "| $name | $wasm_ms | $ref_name | $ref_ms | $ratio |"
done

# Cold start: a new connection whose first statement calls a function (the library loads, the
# module is deserialized from its stored artifact or compiled, an instance is created), against a
# new connection running SELECT 1. Mean over the connections, through dblink from the server.
# Connections that compile run with wasm.refresh_artifacts off, so no background worker stores
# the artifact the case deleted.
wanted() { [[ -z "$ONLY" ]] || grep -qiE -- "$ONLY" <<<"$1"; }
cold_ms() { psql_bench -Atc "SELECT round(cold_ms(\$q\$$1\$q\$, $CONNECTIONS, '${2:-}')::numeric, 2)"; }
size_of() { psql_bench -Atc "SELECT octet_length(bytes) FROM wasm.module_store WHERE name = '$1'"; }
if wanted "first call in a new connection"; then
    base=$(cold_ms "SELECT 1::text")
    for f in "add_wasm(1, 1)|a tiny WAT module|" \
        "w.slugify('A b')|the text-udfs module ($(size_of text_udfs) bytes), artifact|" \
        "small_f1(1)|a $(size_of small)-byte module, artifact|" \
        "small_compiled_f1(1)|the same, no artifact (compiled)|-cwasm.refresh_artifacts=off" \
        "big_f1(1)|a $(size_of big)-byte module, artifact|" \
        "big_compiled_f1(1)|the same, no artifact (compiled)|-cwasm.refresh_artifacts=off"; do
        IFS='|' read -r call label options <<<"$f"
        ms=$(cold_ms "SELECT $call::text" "$options")
        extra=$(awk -v a="$ms" -v b="$base" 'BEGIN { printf "%.2f", a - b }')
        echo "| first call in a new connection, $label | $ms | new connection, SELECT 1 | $base | +$extra ms |"
    done
fi

# Parallel workers start cold on every query: two workers (the leader does not run the plan) each
# call the function on their first row. Against the same parallel query over a builtin.
if wanted "parallel query, 2 workers"; then
    par="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;"
    ref_ms=$(psql_bench -Atc "$par SELECT round(bench_ms('SELECT count(abs(i)) FROM par_t', $RUNS)::numeric, 1)" | tail -1)
    for f in "big_f1|artifact" "big_compiled_f1|no artifact (each worker compiles)"; do
        IFS='|' read -r fn label <<<"$f"
        ms=$(psql_bench -Atc "$par SELECT round(bench_ms('SELECT count($fn(i)) FROM par_t', $RUNS)::numeric, 1)" | tail -1)
        extra=$(awk -v a="$ms" -v b="$ref_ms" 'BEGIN { printf "%.1f", a - b }')
        echo "| parallel query, 2 workers each calling the $(size_of big)-byte module first, $label | $ms | same query over abs() | $ref_ms | +$extra ms |"
    done
fi

# Memory: resident set size of a new backend after calling one function of each of n modules
# (the text-udfs module loaded under n names), against a new backend after SELECT 1.
if wanted "memory: backend RSS"; then
    rss_base=$(psql_bench -Atc "SELECT kb FROM dblink(bench_conninfo(), 'SELECT rss_kb_after(0)') AS t(kb bigint)")
    for n in $MODULE_COUNTS; do
        kb=$(psql_bench -Atc "SELECT kb FROM dblink(bench_conninfo(), 'SELECT rss_kb_after($n)') AS t(kb bigint)")
        echo "| memory: backend RSS after calling functions of $n modules | $((kb / 1024)) MB | new backend | $((rss_base / 1024)) MB | +$(((kb - rss_base) / 1024)) MB |"
    done
fi

# Throughput under concurrency: pgbench, one statement per transaction, against the builtin.
if wanted "pgbench TPS"; then
    pgbench_tps() { # pgbench_tps SCRIPT CLIENTS: the best of 3 runs (single runs are noisy)
        local best=0 tps
        for _ in 1 2 3; do
            # shellcheck disable=SC2086
            tps=$(as_cluster_user "$PG_BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -c "$2" \
                -j "$2" $PGBENCH -f "$1" plwasm_bench 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
            ((${tps:-0} > best)) && best=$tps
        done
        echo "$best"
    }
    printf '\\set x random(1, 1000000)\nSELECT add_wasm(:x, 1);\n' >"$DIR/pgbench_wasm.sql"
    printf '\\set x random(1, 1000000)\nSELECT :x + 1;\n' >"$DIR/pgbench_builtin.sql"
    printf '\\set x random(1, 1000000)\nSELECT add_plpgsql(:x, 1);\n' >"$DIR/pgbench_plpgsql.sql"
    printf '\\set x random(1, 1000000)\nSELECT add_native(:x, 1);\n' >"$DIR/pgbench_native.sql"
    chmod a+r "$DIR"/pgbench_*.sql
    for clients in 1 2 8; do
        wasm_tps=$(pgbench_tps "$DIR/pgbench_wasm.sql" $clients)
        for ref in "builtin :x + 1|pgbench_builtin" "native pgrx add_native|pgbench_native" "PL/pgSQL|pgbench_plpgsql"; do
            IFS='|' read -r ref_name ref_script <<<"$ref"
            ref_tps=$(pgbench_tps "$DIR/$ref_script.sql" $clients)
            ratio=$(awk -v a="$wasm_tps" -v b="$ref_tps" 'BEGIN { if (b > 0) printf "%.3gx", a / b; else print "-" }')
            echo "| pgbench TPS, $clients clients, SELECT add_wasm(:x, 1) | $wasm_tps tps | $ref_name | $ref_tps tps | $ratio |"
        done
    done
fi
echo
echo "bench: $(date -u +%Y-%m-%d), PostgreSQL $PG, plwasm ${PLWASM_PROFILE:-release} build, $(nproc) cores, best of $RUNS runs$( ((SMOKE)) && echo ' (smoke run: sizes too small to mean anything)')"

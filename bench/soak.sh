#!/usr/bin/env bash
# Soak: pgbench over every example function for a long run, in a throw-away cluster started fresh
# by this script (as the unprivileged `postgres` OS user when run as root), sampling the memory of
# every pgbench backend: after a warm-up, a backend's RSS must stay flat.
#
# It builds the example modules (examples/wat/geo.wat is compiled by wasm.wat in the server;
# examples/rust/{vector,json,text}-udfs to wasm32-unknown-unknown and examples/c/c_udfs.c with
# scripts/build-wasm.sh, cached in $PLWASM_TEST_DIR/soak-target so a rerun takes a second), loads
# them, declares geo's functions as examples/demo.sql does and the SDK modules' with
# wasm.create_functions, plus the aggregates of examples/rust/README.md (wasm_stddev, tally;
# median is declared by create_functions). Tables of generated titles and texts, orders (jsonb),
# 64-d vectors and samples hold the arguments, with each function's result computed at set-up.
#
# Then pgbench (-n, CLIENTS clients, 2 threads) runs six scripts picked at random, each one
# transaction of one to three statements over 10 to 600 rows (a random range of a table, a grid):
#   geo     dist, in_box, ratio over a 21x21 grid, fib(15..20);
#   text    slugify, levenshtein, left_chars (NULL too), tokens and word_lengths (set-returning),
#           greet (a NOTICE);
#   vector  cosine_similarity, cosine_similarity_f4, vector_add; wasm_stddev (stddev_accum,
#           stddev_final) and median (#[aggregate]: median__step, median__final) over one group,
#           over three groups at once and as a running window aggregate;
#   json    order_summary, normalize_tags, order_total (composite), discounted (numeric),
#           order_lines (RETURNS TABLE), tally (tally_accum, jsonb state);
#   c       c_mean, c_reverse, c_clamp (one NOTICE);
#   errors  one call of each error path, caught by PL/pgSQL (a subtransaction each): left_chars
#           with n < 0 (Err), boom (a panic), ratio(1, 0) (a trap), c_reverse of non-ASCII
#           (plwasm_error_code), order_summary of a mismatched document (serde), vector_add of
#           different lengths (Err).
# Every statement checks its results (against the values computed at set-up, or a builtin: SQL
# levenshtein, left, reverse, stddev_samp, percentile_cont, avg, a closed-form fib, ...) and
# raises an ERROR otherwise, which aborts the pgbench client: a soak that computes wrong answers
# fails.
#
# Every INTERVAL seconds it samples VmRSS and RssAnon (/proc/PID/status) and Pss
# (/proc/PID/smaps_rollup) of each pgbench backend (pg_stat_activity, application_name pgbench)
# into $WORK/rss.csv.
#
# Checks: pgbench ends with status 0 and no failed transaction, and made at least
# MIN_TPS x SECONDS transactions (a floor against stalls, not a performance target); the same
# CLIENTS backends served the whole run; every greet and c_clamp NOTICE reached a client (one per
# text and c transaction, give or take the transactions cut at the end); pgbench printed nothing
# else on stderr; the server log has no ERROR, FATAL, PANIC or crash; and, per backend, RSS is
# flat after the warm-up (the first 20 % of the run, at least 10 s): its peak growth = (highest
# RSS sampled after the warm-up) - (highest RSS sampled up to the end of the warm-up) is below
# THRESHOLD_MB; the same for RssAnon (private anonymous memory: the heap, wasm linear memories,
# Wasmer's code; RSS also counts the pages of shared libraries and shared buffers it touched).
#
# The threshold, 4 MB (PLWASM_SOAK_THRESHOLD_MB). High-water marks, not two single samples, so
# that normal jitter cancels out: glibc's malloc keeps freed memory and trims the top of its heap
# only past a (dynamic) trim threshold, so RSS moves by tens of kB between samples (RssAnon by up
# to ~0.1 MB); Postgres's caches (catalog, plans), the pages of plwasm.so and of the shared
# buffers a backend touches, and the wasm instances' linear memories (which never shrink) reach
# their high-water marks during the warm-up, when every statement has run thousands of times
# (RSS rises by 5-11 MB over the first minute, then stays). On the project machine the peak
# growth after the warm-up was 0 kB in the 10-minute run (docs/benchmarks.md, "Soak"); 4 MB
# leaves room for a one-off event (a first large allocation moving glibc's mmap threshold, a
# rare plan) without coming near what a leak does. A transaction makes about 470 wasm calls on
# average (geo and vector over 1,300 each, text, json and c 50-80, errors 6); the rarest calls
# (fib, greet, the clamping c_clamp, each error path) come once in 6 transactions. At about 190
# transactions per second per backend (4 clients on 2 busy cores), the 480 s after the full
# run's warm-up are about 90,000 transactions per backend: 4 MB is 47 bytes per transaction, so
# a leak of about 300 bytes per call of even the rarest function fails, and a few kB per call
# fails by far. --smoke (20 s after its warm-up, about 3,700 transactions per backend) catches
# about 1.1 kB per transaction: a few bytes per call of the per-row functions, 7 kB per call of
# the rarest. The summary prints the leak per transaction the run could have detected
# (threshold / transactions per backend after the warm-up).
#
#   bash bench/soak.sh            # 10 minutes (plus about 10 s of set-up)
#   bash bench/soak.sh --smoke    # 30 s (CI): the same checks over a shorter run
#   PLWASM_SOAK_SECONDS=120 bash bench/soak.sh
#
# It installs nothing: plwasm must be installed in the system PostgreSQL and the wasm toolchains
# present (scripts/setup.sh --wasm-toolchains, which tests/run.sh runs first); pgbench and
# fuzzystrmatch (a reference for levenshtein) come with Debian's postgresql-15.
#
# Prints one line per check, a summary table (and the same as markdown, for docs/benchmarks.md),
# then "N passed, M failed"; exits non-zero on a failure. Environment: PLWASM_TEST_DIR (default
# /tmp/plwasm-tests; the cluster is in its soak/), PLWASM_SOAK_PORT (28945), PLWASM_SOAK_SECONDS,
# PLWASM_SOAK_CLIENTS (4), PLWASM_SOAK_INTERVAL (2 s), PLWASM_SOAK_THRESHOLD_MB (4),
# PLWASM_SOAK_MIN_TPS (20).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${PLWASM_TEST_DIR:-/tmp/plwasm-tests}
WORK=$BASE/soak
BUILD=$BASE/soak-target
PORT=${PLWASM_SOAK_PORT:-28945}
SMOKE=0
case ${1:-} in
    "") ;;
    --smoke) SMOKE=1 ;;
    *) echo "usage: bash bench/soak.sh [--smoke]" >&2; exit 2 ;;
esac
DURATION=${PLWASM_SOAK_SECONDS:-$((SMOKE ? 30 : 600))}
CLIENTS=${PLWASM_SOAK_CLIENTS:-4}
INTERVAL=${PLWASM_SOAK_INTERVAL:-2}
THRESHOLD_MB=${PLWASM_SOAK_THRESHOLD_MB:-4}
MIN_TPS=${PLWASM_SOAK_MIN_TPS:-20}
WARMUP=$((DURATION / 5 > 10 ? DURATION / 5 : 10))
if ((DURATION < WARMUP + 2 * INTERVAL)); then
    echo "soak: $DURATION s leaves nothing after the $WARMUP s warm-up" >&2
    exit 2
fi
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

# The example modules, built (or found up to date) in $BUILD.
mkdir -p "$BUILD/wasm"
for crate in vector-udfs json-udfs text-udfs; do
    CARGO_TARGET_DIR=$BUILD bash "$ROOT/scripts/build-wasm.sh" rust "$ROOT/examples/rust/$crate" \
        "$BUILD/wasm/${crate//-/_}.wasm" wasm32-unknown-unknown 2>/dev/null ||
        { echo "soak: building examples/rust/$crate failed"; exit 1; }
done
bash "$ROOT/scripts/build-wasm.sh" c "$ROOT/examples/c/c_udfs.c" "$BUILD/wasm/c_udfs.wasm" ||
    { echo "soak: building examples/c/c_udfs.c failed"; exit 1; }

cluster_stop "$WORK"
rm -rf "$WORK"
cluster_start "$WORK" "$PORT" || exit 1
trap 'cluster_stop "$WORK"' EXIT
log=$WORK/server.log
cp -r "$BUILD/wasm" "$WORK/wasm"
chmod -R a+rX "$WORK/wasm"

# sql SQL... : psql as superuser postgres in database soak; prints errors too.
sql() { cluster_psql "$WORK" "$PORT" -d soak -v ON_ERROR_STOP=1 -At "$@" 2>&1; }
cluster_psql "$WORK" "$PORT" -d postgres -c "CREATE DATABASE soak" >/dev/null
setup=$(sql -v wasmdir="$WORK/wasm" -v geo="$(cat "$ROOT/examples/wat/geo.wat")" <<'EOF'
SET client_min_messages = warning;
CREATE EXTENSION plwasm;
-- Builtin references (fuzzystrmatch's levenshtein has the same name as text_udfs').
CREATE SCHEMA ref;
CREATE EXTENSION fuzzystrmatch SCHEMA ref;
-- The modules and their functions (geo as in examples/demo.sql, the others self-described).
SELECT wasm.load('geo', wasm.wat(:'geo')) \g /dev/null
CREATE FUNCTION dist(x1 float8, y1 float8, x2 float8, y2 float8) RETURNS float8
    LANGUAGE wasm IMMUTABLE STRICT AS 'geo:dist';
CREATE FUNCTION in_box(x float8, y float8, w float8, h float8) RETURNS bool
    LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
CREATE FUNCTION fib(n int) RETURNS int8 LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
CREATE FUNCTION ratio(a int, b int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
SELECT wasm.load(m, pg_read_binary_file(:'wasmdir' || '/' || m || '.wasm'))
  FROM unnest(ARRAY['text_udfs', 'vector_udfs', 'json_udfs', 'c_udfs']) m \g /dev/null
CREATE TYPE order_total AS (id bigint, units integer, total numeric);
SELECT count(*) FROM wasm.create_functions('text_udfs') \g /dev/null
SELECT count(*) FROM wasm.create_functions('vector_udfs') \g /dev/null
SELECT count(*) FROM wasm.create_functions('json_udfs') \g /dev/null
SELECT count(*) FROM wasm.create_functions('c_udfs') \g /dev/null
CREATE AGGREGATE wasm_stddev(float8) (sfunc = stddev_accum, stype = float8[],
                                     initcond = '{0,0,0}', finalfunc = stddev_final);
CREATE AGGREGATE tally(text) (sfunc = tally_accum, stype = jsonb, initcond = '{}');

-- expect(ok, what): an ERROR unless ok (which aborts the pgbench client).
CREATE FUNCTION expect(ok boolean, what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'soak: % gave a wrong result', what;
    END IF;
    RETURN true;
END $$;
-- The error paths, each caught (a subtransaction): their SQLSTATEs.
CREATE FUNCTION error_paths(k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    states text[] := '{}';
    calls text[] := ARRAY[
        format('SELECT left_chars(%L, %s)', 'title ' || k, -k),
        format('SELECT boom(%L)', 'soak panic ' || k),
        format('SELECT ratio(%s, 0)', k),
        format('SELECT c_reverse(%L)', 'caf' || chr(233) || ' ' || k),
        format('SELECT order_summary(%L)', jsonb_build_object('id', 'order ' || k)),
        format('SELECT vector_add(ARRAY[%s, 1], ARRAY[1.5])', k)];
    c text;
BEGIN
    FOREACH c IN ARRAY calls LOOP
        BEGIN
            EXECUTE c;
            states := states || 'none'::text;
        EXCEPTION WHEN OTHERS THEN
            states := states || SQLSTATE::text;
        END;
    END LOOP;
    RETURN array_to_string(states, ',');
END $$;

-- Arguments, with each function's result computed now (the soak checks it stays the same).
CREATE FUNCTION words(seed int, n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg((ARRAY['the', 'Quick', 'brown', 'fox', 'jumps', 'over', 'a', 'lazy',
        'dog', 'Écoutez', 'naïve', 'café', 'PostgreSQL', 'wasm', 'Hello,', 'World!', '2024',
        'über', 'data', 'is', 'fast', '-', 'and', 'rust'])[1 + (seed * 7919 + k * 104729) % 24], ' ')
    FROM generate_series(1, n) k $$;
CREATE TABLE docs AS
    SELECT i AS id, words(i, 6) AS title, words(i + 1, 6) AS other, words(i * 3, 40) AS body,
           md5(i::text) || ' ' || md5((-i)::text) AS ascii
    FROM generate_series(1, 1000) i;
ALTER TABLE docs ADD PRIMARY KEY (id),
    ADD slug text, ADD toks text[], ADD lens int[];
UPDATE docs SET slug = slugify(title),
    toks = ARRAY(SELECT t FROM tokens(body) WITH ORDINALITY x (t, o) ORDER BY o),
    lens = ARRAY(SELECT l FROM word_lengths(body) WITH ORDINALITY x (l, o) ORDER BY o);
CREATE TABLE vectors AS
    SELECT i AS id, a, b, a::float4[] AS a4, b::float4[] AS b4
    FROM generate_series(1, 1000) i,
         LATERAL (SELECT array_agg(sin(i * 64 + k) * 10) AS a, array_agg(cos(i * 7 + k * 3) * 10) AS b
                  FROM generate_series(1, 64) k) v;
ALTER TABLE vectors ADD PRIMARY KEY (id), ADD cos float8, ADD cos4 float8, ADD sum float8[];
UPDATE vectors SET cos = cosine_similarity(a, b), cos4 = cosine_similarity_f4(a4, b4),
    sum = vector_add(a, b);
CREATE TABLE samples AS
    SELECT i AS id, (i - 1) / 200 + 1 AS grp, round((100 + 40 * sin(i) + (i * 37 % 101))::numeric, 3)::float8 AS x
    FROM generate_series(1, 10000) i;
CREATE INDEX ON samples (grp);
CREATE TABLE orders AS
    SELECT i AS id, jsonb_build_object('id', i,
               'items', (SELECT jsonb_agg(jsonb_build_object('sku', 'sku-' || (i * k % 97),
                             'qty', 1 + (i + k) % 5, 'unit_price', ((i * k) % 2000) / 100.0))
                         FROM generate_series(1, 1 + i % 6) k),
               'tags', (SELECT jsonb_agg((ARRAY['SQL', 'sql', 'Wasm', 'rust', 'Rust', 'gift'])[1 + (i + k) % 6])
                        FROM generate_series(1, 1 + i % 5) k))
           || CASE WHEN i % 3 = 0 THEN '{"coupon": "TENOFF"}'::jsonb ELSE '{}' END AS doc,
           ((i * 13) % 10000) / 100.0 AS price, i % 30 AS pct
    FROM generate_series(1, 1000) i;
ALTER TABLE orders ADD PRIMARY KEY (id), ADD summary jsonb, ADD tags jsonb, ADD total order_total,
    ADD disc numeric, ADD lines int;
UPDATE orders SET summary = order_summary(doc), tags = normalize_tags(doc), total = order_total(doc),
    disc = discounted(price, pct), lines = (SELECT count(*) FROM order_lines(doc));
VACUUM ANALYZE;
EOF
)
[[ -z "$(tr -d '\n' <<<"$setup")" ]] || { echo "setup failed: $setup"; exit 1; }
echo "# $(sql -c "SELECT count(*) || ' functions: ' || string_agg(function::text, ' ' ORDER BY function::text)
    FROM wasm.functions")"

# The pgbench scripts: one transaction each, picked at random (equal weights).
cat >"$WORK/geo.sql" <<'EOF'
\set x random(-100, 1100)
\set y random(-100, 1100)
\set d random(1, 9)
\set n random(15, 20)
SELECT expect(count(*) FILTER (WHERE in_box(px, py, 500, 500))
              = count(*) FILTER (WHERE px BETWEEN 0 AND 500 AND py BETWEEN 0 AND 500)
          AND max(abs(dist(:x, :y, px, py) - sqrt((px - :x) ^ 2 + (py - :y) ^ 2))) < 1e-9
          AND bool_and(ratio(px::int + :x, :d) = (px::int + :x) / :d), 'geo grid')
  FROM generate_series(0, 1000, 50) px, generate_series(0, 1000, 50) py;
SELECT expect(fib(:n) = round(((1 + sqrt(5)) / 2) ^ :n / sqrt(5))::int8, 'fib');
EOF
cat >"$WORK/text.sql" <<'EOF'
\set id random(1, 991)
\set n random(0, 12)
SELECT expect(bool_and(slugify(title) = slug
                       AND levenshtein(title, other) = ref.levenshtein(title, other)
                       AND left_chars(title, :n) = left(title, :n)
                       AND left_chars(NULL, :n) IS NULL), 'text scalars')
  FROM docs WHERE id BETWEEN :id AND :id + 9;
SELECT expect(bool_and(toks = ARRAY(SELECT t FROM tokens(body) WITH ORDINALITY x (t, o) ORDER BY o)
                       AND lens = ARRAY(SELECT l FROM word_lengths(body) WITH ORDINALITY x (l, o) ORDER BY o)),
              'tokens, word_lengths')
  FROM docs WHERE id BETWEEN :id AND :id + 9;
SELECT expect(greet('soak ' || :id) = length('soak ' || :id), 'greet');
EOF
cat >"$WORK/vector.sql" <<'EOF'
\set id random(1, 981)
\set g random(1, 48)
SELECT expect(bool_and(cosine_similarity(a, b) = cos AND cosine_similarity_f4(a4, b4) = cos4
                       AND vector_add(a, b) = sum), 'vectors')
  FROM vectors WHERE id BETWEEN :id AND :id + 19;
SELECT expect(bool_and(abs(sd - ref_sd) < 1e-9 * ref_sd AND m = ref_m) AND count(*) = 3,
              'wasm_stddev, median by group')
  FROM (SELECT wasm_stddev(x) AS sd, stddev_samp(x) AS ref_sd,
               median(x) AS m, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS ref_m
          FROM samples WHERE grp BETWEEN :g AND :g + 2 GROUP BY grp) s;
SELECT expect(bool_and(running = (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x)
                                   FROM samples s2 WHERE s2.grp = :g AND s2.id <= w.id)), 'running median')
  FROM (SELECT id, median(x) OVER (ORDER BY id) AS running
          FROM samples WHERE grp = :g ORDER BY id LIMIT 20) w;
EOF
cat >"$WORK/json.sql" <<'EOF'
\set id random(1, 991)
SELECT expect(bool_and(order_summary(doc) = summary AND normalize_tags(doc) = tags
                       AND order_total(doc) = total AND discounted(price, pct) = disc),
              'order_summary, normalize_tags, order_total, discounted')
  FROM orders WHERE id BETWEEN :id AND :id + 9;
SELECT expect(count(*) = (SELECT sum(lines) FROM orders WHERE id BETWEEN :id AND :id + 9)
              AND sum(l.qty) = (SELECT sum((summary->>'units')::int) FROM orders WHERE id BETWEEN :id AND :id + 9),
              'order_lines')
  FROM orders o, order_lines(o.doc) l WHERE o.id BETWEEN :id AND :id + 9;
SELECT expect(tally(t) = (SELECT jsonb_object_agg(t, n) FROM (SELECT t, count(*) AS n
                            FROM orders, jsonb_array_elements_text(doc->'tags') t
                           WHERE id BETWEEN :id AND :id + 9 GROUP BY t) c), 'tally')
  FROM orders, jsonb_array_elements_text(doc->'tags') t WHERE id BETWEEN :id AND :id + 9;
EOF
cat >"$WORK/c.sql" <<'EOF'
\set id random(1, 981)
\set x random(-50, 150)
SELECT expect(bool_and(abs(c_mean(a) - (SELECT avg(v) FROM unnest(a) v)) < 1e-12
                       AND c_reverse(ascii) = reverse(ascii)
                       AND c_clamp(id % 100, 0, 99) = id % 100), 'c_mean, c_reverse, c_clamp')
  FROM vectors JOIN docs USING (id) WHERE id BETWEEN :id AND :id + 19;
SELECT expect(c_clamp(:x, 200, 300) = 200, 'c_clamp clamped');
EOF
cat >"$WORK/errors.sql" <<'EOF'
\set k random(1, 1000000)
SELECT expect(error_paths(:k) = 'P0001,38000,38000,22021,22023,P0001', 'error paths');
EOF
scripts=(geo text vector json c errors)
bench_args=()
for s in "${scripts[@]}"; do bench_args+=(-f "$WORK/$s.sql"); done
chmod a+r "$WORK"/*.sql

# One transaction of each script before the run: a wrong script fails here, readably.
for s in "${scripts[@]}"; do
    out=$(as_cluster_user "$PG_BIN/pgbench" -h "$WORK" -p "$PORT" -U postgres -n -t 1 \
        -f "$WORK/$s.sql" soak 2>&1) ||
        { echo "soak: script $s failed:"; grep -v '^NOTICE' <<<"$out"; exit 1; }
done

# The backends of those runs may not have exited yet: wait, so only the soak's are sampled.
for _ in $(seq 100); do
    [[ $(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'") == 0 ]] && break
    sleep 0.1
done

echo "# pgbench: $CLIENTS clients, $DURATION s (warm-up $WARMUP s), RSS sampled every $INTERVAL s"
load_start=$(cut -d" " -f1-3 /proc/loadavg)
started=$(date +%s%N)
as_cluster_user "$PG_BIN/pgbench" -h "$WORK" -p "$PORT" -U postgres -n -c "$CLIENTS" -j $((CLIENTS > 1 ? 2 : 1)) \
    -T "$DURATION" -P $((DURATION >= 120 ? 60 : 10)) "${bench_args[@]}" soak >"$WORK/pgbench.out" 2>"$WORK/pgbench.err" &
bench=$!
pids=()
for _ in $(seq 100); do
    mapfile -t pids < <(sql -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'
        AND backend_type = 'client backend' ORDER BY pid")
    ((${#pids[@]} >= CLIENTS)) && break
    sleep 0.1
done
check "pgbench opened $CLIENTS backends" "$CLIENTS" "${#pids[@]}"

csv=$WORK/rss.csv
echo "seconds,pid,rss_kb,anon_kb,pss_kb" >"$csv"
# kb FILE FIELD: the value of "FIELD: N kB" in FILE.
kb() { awk -v f="$2:" '$1 == f { print $2; exit }' "$1" 2>/dev/null; }
progress=$((DURATION / 10 > 10 ? DURATION / 10 : 10))
next_progress=$progress
while kill -0 "$bench" 2>/dev/null; do
    t=$((($(date +%s%N) - started) / 1000000))
    line=""
    for pid in "${pids[@]}"; do
        rss=$(kb "/proc/$pid/status" VmRSS)
        anon=$(kb "/proc/$pid/status" RssAnon)
        pss=$(kb "/proc/$pid/smaps_rollup" Pss)
        # (A backend that has exited, or is exiting, has no such lines any more.)
        [[ -n $rss && -n $anon && -n $pss ]] || continue
        printf '%d.%03d,%s,%s,%s,%s\n' $((t / 1000)) $((t % 1000)) "$pid" "$rss" "$anon" "$pss" >>"$csv"
        line+=" $((rss / 1024))"
    done
    if ((t / 1000 >= next_progress)); then
        echo "# $((t / 1000)) s: RSS of each backend, MB:$line"
        next_progress=$((next_progress + progress))
    fi
    sleep "$INTERVAL"
done
wait "$bench"
status=$?
elapsed=$((($(date +%s%N) - started) / 1000000000))
load_end=$(cut -d" " -f1-3 /proc/loadavg)

check "pgbench ends with status 0" "0" "$status"
check "no transaction failed" "1" "$(grep -c '^number of failed transactions: 0 ' "$WORK/pgbench.out")"
transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$WORK/pgbench.out")
check "pgbench made at least $((MIN_TPS * DURATION)) transactions ($MIN_TPS/s)" "yes" \
    "$( ((${transactions:-0} >= MIN_TPS * DURATION)) && echo yes || echo "${transactions:-0}")"
# Transactions of script N (pgbench's per-script lines, in the order of the -f options).
script_tx() { awk -v n="$1" '/^SQL script [0-9]+:/ { s++ } s == n && / transactions \(/ { print $2; exit }' "$WORK/pgbench.out"; }
notice='^NOTICE: +(hello, soak [0-9]+!|c_clamp: value clamped)$'
# (pgbench does not count the transactions its clients are in when the time is up, whose NOTICE
# may have come: at most one per client.)
notices_expected=$(($(script_tx 2) + $(script_tx 5)))
notices=$(grep -cE "$notice" "$WORK/pgbench.err")
check "every greet and c_clamp NOTICE reached a client (one per text and c transaction)" "yes" \
    "$( ((notices >= notices_expected && notices <= notices_expected + CLIENTS)) && echo yes ||
        echo "$notices NOTICEs for $notices_expected transactions")"
check "pgbench printed nothing else on stderr" "" \
    "$(grep -vE "$notice|^progress: " "$WORK/pgbench.err" | head -5)"
check "the server log has no ERROR, FATAL, PANIC or crash" "" \
    "$(grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$log" | head -5)"
alive=0
for pid in "${pids[@]}"; do
    last=$(awk -F, -v p="$pid" -v d="$DURATION" '$2 == p && $1 + 0 <= d { t = int($1) } END { print t + 0 }' "$csv")
    ((last >= DURATION - 2 * INTERVAL - 1)) && alive=$((alive + 1))
done
check "the same $CLIENTS backends served the whole run (sampled up to its end)" "$CLIENTS" "$alive"

# Per backend, in kB, over the samples taken during the run (up to DURATION s after pgbench was
# started; pgbench starts its clock once connected, so later ones may catch backends exiting): the
# first sample's RSS, RSS at the end of the warm-up (its last sample) and at the end (the last
# sample), the high-water marks of RSS and RssAnon up to the end of the
# warm-up and after it, PSS at the end, and the number of samples after the warm-up.
stats=$(awk -F, -v w="$WARMUP" -v d="$DURATION" 'NR > 1 && $1 + 0 <= d {
        p = $2
        if (!(p in first)) first[p] = $3
        if ($1 + 0 <= w) {
            rw[p] = $3
            if ($3 > mrw[p]) mrw[p] = $3
            if ($4 > maw[p]) maw[p] = $4
        } else {
            re[p] = $3; pe[p] = $5; n[p]++
            if ($3 > mra[p]) mra[p] = $3
            if ($4 > maa[p]) maa[p] = $4
        }
    }
    END { for (p in first) print p, first[p], rw[p] + 0, re[p] + 0, mrw[p] + 0, mra[p] + 0, maw[p] + 0, maa[p] + 0, pe[p] + 0, n[p] + 0 }' "$csv" | sort -n)
threshold_kb=$((THRESHOLD_MB * 1024))
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_client_tps=$(awk -v t="${tps:-0}" -v c="$CLIENTS" 'BEGIN { printf "%.0f", t / c }')
flat_rss=0
flat_anon=0
rows=()
while read -r pid first rw re mrw mra maw maa pe n; do
    ((n > 0)) || continue
    growth=$((mra - mrw))
    anon_growth=$((maa - maw))
    ((growth < threshold_kb)) && flat_rss=$((flat_rss + 1))
    ((anon_growth < threshold_kb)) && flat_anon=$((flat_anon + 1))
    rows+=("$pid|$(mb "$first")|$(mb "$rw")|$(mb "$re")|$((re - rw))|$growth|$anon_growth|$(mb "$pe")|$per_client_tps")
done <<<"$stats"
check "RSS is flat after the warm-up: peak growth < $THRESHOLD_MB MB, every backend" "$CLIENTS" "$flat_rss"
check "RssAnon is flat after the warm-up: peak growth < $THRESHOLD_MB MB, every backend" "$CLIENTS" "$flat_anon"

after_tx=$(awk -v t="${tps:-0}" -v c="$CLIENTS" -v s=$((DURATION - WARMUP)) 'BEGIN { printf "%.0f", t / c * s }')
detectable=$(awk -v k="$threshold_kb" -v n="$after_tx" 'BEGIN { printf "%.0f", n ? k * 1024 / n : 0 }')
{
    echo "| backend | RSS at start, MB | RSS at warm-up end, MB | RSS at end, MB | growth, kB | peak growth, kB | RssAnon peak growth, kB | PSS at end, MB | tps (mean per client) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
} >"$WORK/backends.md"
{
    echo "| script | transactions | tps | latency, ms |"
    echo "|---|---:|---:|---:|"
    awk '/^SQL script [0-9]+:/ { name = $4; sub(/.*\//, "", name); sub(/\.sql$/, "", name) }
        name && / transactions \(/ { tx = $2; t = $NF; sub(/\)$/, "", t) }
        name && /latency average/ { printf "| %s | %s | %.1f | %s |\n", name, tx, t, $(NF - 1) }' \
        "$WORK/pgbench.out"
} >"$WORK/scripts.md"
echo
echo "# $transactions transactions in $elapsed s: $tps tps, $per_client_tps per backend ($CLIENTS clients)"
echo "# after the $WARMUP s warm-up, about $after_tx transactions per backend: a leak of more than" \
    "$detectable bytes per transaction would have grown a backend by $THRESHOLD_MB MB"
echo "# tps per $((DURATION >= 120 ? 60 : 10)) s:" \
    "$(awk '/^progress: / { printf "%s%.0f", n++ ? " " : "", $4 }' "$WORK/pgbench.err")"
echo "# machine: $(nproc) cores, load average $load_start at the start, $load_end at the end;" \
    "$("$PG_BIN/postgres" --version)"
echo "# growth: the last sample minus the last sample of the warm-up; peak growth (checked): the" \
    "highest sample after the warm-up minus the highest up to its end"
for table in backends scripts; do
    column -t -s'|' -o'|' "$WORK/$table.md" 2>/dev/null || cat "$WORK/$table.md"
    echo
done
echo "markdown:"
echo
cat "$WORK/backends.md"
echo
cat "$WORK/scripts.md"
echo
echo "$passed passed, $failed failed"
((failed == 0))

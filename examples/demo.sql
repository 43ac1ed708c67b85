-- The plwasm demo, run by scripts/demo.sh: load a module, bind SQL functions to its exports,
-- call them. Expects psql variable :geo to hold the text of examples/wat/geo.wat.
\set ON_ERROR_STOP on
\pset footer off
CREATE EXTENSION plwasm;

\echo '--- 1. Load the module (WebAssembly text compiled to binary by wasm.wat)'
SELECT wasm.load('geo', wasm.wat(:'geo'));
SELECT name, size_bytes, left(sha256, 16) AS sha256_prefix,
       (SELECT string_agg(e->>'name' || '(' || array_to_string(ARRAY(SELECT jsonb_array_elements_text(e->'params')), ', ') || ')', ', ')
          FROM jsonb_array_elements(exports) e) AS exports
  FROM wasm.modules;

\echo '--- 2. Declare SQL functions over its exports'
CREATE FUNCTION dist(x1 float8, y1 float8, x2 float8, y2 float8) RETURNS float8
    LANGUAGE wasm IMMUTABLE STRICT AS 'geo:dist';
CREATE FUNCTION in_box(x float8, y float8, w float8, h float8) RETURNS bool
    LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
CREATE FUNCTION fib(n int) RETURNS int8 LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
CREATE FUNCTION ratio(a int, b int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'geo';
CREATE FUNCTION fib_plpgsql(n int) RETURNS int8 LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    IF n < 2 THEN RETURN n; END IF;
    RETURN fib_plpgsql(n - 1) + fib_plpgsql(n - 2);
END $$;

\echo '--- 3. Call them'
SELECT dist(0, 0, 3, 4) AS dist, in_box(1, 2, 10, 10) AS inside, in_box(11, 2, 10, 10) AS outside,
       fib(30) AS fib30, ratio(22, 7) AS ratio;
SELECT count(*) FILTER (WHERE in_box(x, y, 50, 50)) AS points_in_box,
       round(avg(dist(0, 0, x, y))::numeric, 3) AS mean_dist
  FROM generate_series(1, 100) x, generate_series(1, 100) y;
-- The demo checks its answers: a wrong one stops it with an ERROR (and scripts/demo.sh fails).
DO $$
BEGIN
    IF NOT (dist(0, 0, 3, 4) = 5 AND in_box(1, 2, 10, 10) AND NOT in_box(11, 2, 10, 10)
            AND fib(30) = 832040 AND ratio(22, 7) = 3 AND fib(22) = fib_plpgsql(22)) THEN
        RAISE EXCEPTION 'demo: a wasm function returned a wrong answer';
    END IF;
END $$;

\echo '--- 4. Same answer as PL/pgSQL, much faster (see the timings)'
\timing on
SELECT fib(22) AS wasm_fib22;
SELECT fib_plpgsql(22) AS plpgsql_fib22;
\timing off

\echo '--- 5. A trap is an ordinary ERROR (SQLSTATE 38000); the session carries on'
\set ON_ERROR_STOP off
\set VERBOSITY default
SELECT ratio(1, 0);
\echo 'SQLSTATE of that error:' :LAST_ERROR_SQLSTATE
\set ON_ERROR_STOP on
SELECT :'LAST_ERROR_SQLSTATE' = '38000' AS trap_is_38000 \gset
\if :trap_is_38000
\else
    \echo 'demo: the trap was not SQLSTATE 38000'
    SELECT 'demo check failed'::int;
\endif
SELECT ratio(9, 3) AS after_the_trap;

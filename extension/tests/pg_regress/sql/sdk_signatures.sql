-- The Rust SDK's glue, in wasm: every #[udf] signature of
-- udf-sdk/plwasm-udf/tests/common/signatures.rs (the SDK's native test calls the same functions
-- as plain Rust), built for wasm32-unknown-unknown during the test run, declared from its
-- plwasm.udfs description and called with values and NULLs.
CREATE SCHEMA sig;
CREATE TYPE sig.point2d AS (x double precision, y double precision);
SELECT wasm.load('sdk_signatures', pg_read_binary_file(:'wasmdir' || '/sdk_signatures.wasm'));
SELECT * FROM wasm.create_functions('sdk_signatures', 'sig') ORDER BY 1;

-- What the description declared: arguments, results, strictness and volatility.
SELECT p.proname, pg_get_function_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
       p.proisstrict AS strict, p.provolatile AS volatility, p.proretset AS set
  FROM pg_proc p WHERE p.pronamespace = 'sig'::regnamespace ORDER BY 1;
-- Parallel safety (#[udf(parallel_safe)] and friends; by default safe when immutable, else
-- unsafe), COST (default: Postgres's 100 for procedural languages) and ROWS (default 1000).
SELECT p.proname, p.provolatile AS volatility, p.proparallel AS parallel, p.procost AS cost,
       p.prorows AS rows
  FROM pg_proc p WHERE p.pronamespace = 'sig'::regnamespace ORDER BY 1;

-- Doc comments (///) become COMMENT ON FUNCTION; functions without one have none.
SELECT p.proname, pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_proc p WHERE p.pronamespace = 'sig'::regnamespace
   AND p.proname IN ('mirror', 'halve', 'varchar_len', 'nothing') ORDER BY 1;

-- An aggregate without arguments is row_count(*).
SELECT sig.row_count(*) AS rows FROM generate_series(1, 7);
SELECT sig.row_count(*) AS no_rows FROM generate_series(1, 0);

-- Scalars, text and bytea.
SELECT sig.add(2, 3) AS add, sig.add(NULL, 3) IS NULL AS strict_null,
       sig.shout_sql('ab', 2::int2) AS shout, sig.scalars(1, 0.5, 0.25, true) AS scalars,
       sig.bytes('\x01', '\x0203') AS bytes, sig.varchar_len('abc'::varchar) AS varchar_len;
-- Packed arrays of every element type.
SELECT sig.arrays('{1.5,2}', '{1}', '{true,false}', '{1}'::int2[], '{1}'::int8[], '{1}'::float4[]) AS arrays;
-- jsonb and serde types (Option<T> arguments: NULL-able, CALLED ON NULL INPUT).
SELECT sig.json('[1,2]') AS json, sig.mirror('{"x": 1, "y": 2}', NULL) AS mirror_none,
       sig.mirror('{"x": 1, "y": 2}', '{"x": 5, "y": 5}') AS mirror_some;
SELECT sig.nullable(NULL, 'x') AS a_null, sig.nullable(1, NULL) AS b_null, sig.nullable(NULL, NULL) AS both_null;
-- Result<T, String>: Err is an ERROR naming the function.
SELECT sig.fallible(4) AS ok;
SELECT sqlstate_of('SELECT sig.fallible(-1)') AS err;
-- Its DETAIL names the SQL function (the ERROR is intended).
\set VERBOSITY default
SELECT sig.fallible(-1);
\set VERBOSITY terse
-- No result: RETURNS void.
SELECT sig.nothing(1) IS NOT NULL AS returns_void;

-- Set-returning: an iterator, a Vec<Option<String>> with NULL rows, serde rows as jsonb.
SELECT * FROM sig.evens(7);
SELECT w, w IS NULL AS is_null FROM sig.maybe_words('a  b ') AS w;
SELECT * FROM sig.points(2);

-- SQL types without a native encoding (JSON form), a composite result, RETURNS TABLE.
SELECT sig.halve(3, NULL) AS halve, sig.halve(5, '2024-01-31') AS halve_with_date;
SELECT * FROM sig.origin();
SELECT * FROM sig.diagonal(3);

-- The log macros: DEBUG (DEBUG1, shown only from client_min_messages = debug1), INFO, NOTICE and
-- WARNING messages, in that order, then the result.
SET client_min_messages = info;
SELECT sig.chatty(7) AS chatty;
SET client_min_messages = debug1;
SELECT sig.chatty(8) AS chatty;
RESET client_min_messages;

DROP SCHEMA sig CASCADE;
SELECT wasm.unload('sdk_signatures');

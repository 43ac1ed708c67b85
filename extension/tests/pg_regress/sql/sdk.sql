-- Modules written with the Rust SDK (udf-sdk/plwasm-udf, #[udf]) describe their functions in a
-- plwasm.udfs section; wasm.create_functions declares them. The examples in examples/rust/ are
-- built for wasm32-unknown-unknown during the test run.
SET client_min_messages = notice;
SELECT wasm.load('text_udfs', pg_read_binary_file(:'wasmdir' || '/text_udfs.wasm'));
SELECT wasm.load('vector_udfs', pg_read_binary_file(:'wasmdir' || '/vector_udfs.wasm'));
SELECT wasm.load('json_udfs', pg_read_binary_file(:'wasmdir' || '/json_udfs.wasm'));
CREATE SCHEMA sdk;
-- json_udfs' order_total returns this composite type; it must exist before create_functions.
CREATE TYPE sdk.order_total AS (id bigint, units integer, total numeric);
SELECT * FROM wasm.create_functions('text_udfs', 'sdk') ORDER BY 1;
SELECT * FROM wasm.create_functions('vector_udfs', 'sdk') ORDER BY 1;
SELECT * FROM wasm.create_functions('json_udfs', 'sdk') ORDER BY 1;
-- A module whose description names a type that does not exist cannot declare it.
SELECT wasm.load('json_udfs_again', pg_read_binary_file(:'wasmdir' || '/json_udfs.wasm'));
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('json_udfs_again', 'public')$$) AS missing_type;
SELECT wasm.unload('json_udfs_again');
-- Type names in a description are resolved by Postgres, never spliced: SQL in one is an error.
SELECT wasm.load('injected', wasm.wat($$(module
  (func (export "f") (param i32) (result i32) local.get 0)
  (@custom "plwasm.udfs" "{\"name\":\"f\",\"export\":\"f\",\"args\":[{\"name\":\"x\",\"type\":\"int); DROP SCHEMA sdk CASCADE; --\"}],\"returns\":\"integer\",\"volatility\":\"immutable\"}\n"))$$));
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('injected', 'sdk')$$) AS injected;
SELECT count(*) AS sdk_schema_still_there FROM pg_namespace WHERE nspname = 'sdk';
SELECT wasm.unload('injected');
SELECT function, module, export, inline FROM wasm.functions WHERE module IN ('text_udfs', 'vector_udfs', 'json_udfs') ORDER BY function::text;
SELECT p.proname, p.proisstrict, p.provolatile, pg_get_function_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p WHERE p.pronamespace = 'sdk'::regnamespace ORDER BY 1, 4;

-- Text.
SELECT sdk.slugify('Hello, World! Écoutez 2024') AS slug, sdk.levenshtein('kitten', 'sitting') AS distance;
SELECT sdk.left_chars('héllo', 2) AS two, sdk.left_chars(NULL, 2) IS NULL AS null_in_null_out;
SELECT sqlstate_of($$SELECT sdk.left_chars('x', -1)$$) AS err;
SELECT sdk.greet('plwasm') AS chars;
SELECT sqlstate_of($$SELECT sdk.boom('something broke')$$) AS panic;
SELECT sdk.slugify(title) FROM (VALUES ('A B'), ('C  D!')) t(title);

-- Set-returning: a tokenizer (impl Iterator<Item = String>) and #[udf(setof)] over a Vec<i32>.
SELECT * FROM sdk.tokens('Hello, wasm-World! Hello again.');
SELECT token, count(*) FROM sdk.tokens('to be or not to be') token GROUP BY token ORDER BY 2 DESC, 1;
SELECT sdk.word_lengths('a bb  ccc') AS lengths;
SELECT count(*) AS no_tokens FROM sdk.tokens(' ,.; ');

-- Vectors (float8[] and float4[] packed).
SELECT round(sdk.cosine_similarity(ARRAY[1, 2, 3], ARRAY[2, 4, 6])::numeric, 6) AS same_direction,
       sdk.cosine_similarity(ARRAY[1, 0], ARRAY[0, 1]) AS orthogonal,
       sdk.cosine_similarity('{}', '{}') IS NULL AS empty_is_null,
       round(sdk.cosine_similarity_f4('{1,1}'::float4[], '{1,0}'::float4[])::numeric, 6) AS f4;
SELECT sdk.vector_add(ARRAY[1.5, 2], ARRAY[0.5, 1]) AS added;
SELECT sqlstate_of($$SELECT sdk.vector_add(ARRAY[1.0], ARRAY[1.0, 2.0])$$) AS err;

-- An aggregate over wasm state transition and final functions (state: float8[]).
CREATE AGGREGATE sdk.wasm_stddev(float8) (
    sfunc = sdk.stddev_accum, stype = float8[], initcond = '{0,0,0}', finalfunc = sdk.stddev_final);
SELECT round(sdk.wasm_stddev(x)::numeric, 9) AS wasm, round(stddev_samp(x)::numeric, 9) AS builtin
  FROM (VALUES (2), (4), (4), (4), (5), (5), (7), (9)) v(x);
SELECT g, round(sdk.wasm_stddev(x)::numeric, 6) AS wasm, round(stddev_samp(x)::numeric, 6) AS builtin
  FROM generate_series(1, 3000) x, LATERAL (SELECT x % 3 AS g) k GROUP BY g ORDER BY g;
SELECT sdk.wasm_stddev(x) IS NULL AS one_value_is_null FROM (VALUES (1.0)) v(x);
-- #[aggregate]: wasm.create_functions declared sdk.median and its support functions; the
-- state (every value) stays in the module, Postgres holds a bigint handle.
SELECT pg_catalog.pg_get_function_identity_arguments('sdk.median'::regproc) AS args,
       a.aggtransfn, a.aggfinalfn, a.aggtranstype::regtype, a.agginitval
  FROM pg_aggregate a WHERE a.aggfnoid = 'sdk.median'::regproc;
SELECT obj_description('sdk.median'::regproc, 'pg_proc') AS comment;
SELECT sdk.median(x) AS wasm, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS builtin
  FROM (VALUES (5.0), (1.0), (NULL), (3.0), (2.0)) v(x);
SELECT sdk.median(x) IS NULL AS no_rows FROM (SELECT 1.0 WHERE false) v(x);
-- Many states in one statement (one per group), and the same statement again.
SELECT g, sdk.median(x) AS wasm, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS builtin
  FROM generate_series(1, 30001) x, LATERAL (SELECT x % 3 AS g) k GROUP BY g ORDER BY g;
SELECT g, sdk.median(x) AS wasm FROM generate_series(1, 30001) x, LATERAL (SELECT x % 3 AS g) k
 GROUP BY g ORDER BY g;
-- As a window aggregate: the final function runs once per row on the growing state.
SELECT x, sdk.median(x) OVER (ORDER BY x) AS running FROM generate_series(1, 5) x;
-- A correlated subquery finalizes the groups of a rescanned hash aggregate again.
SELECT a, (SELECT max(m) FROM (SELECT x % 3 AS g, sdk.median(x) m FROM generate_series(1, 30) x
                                GROUP BY x % 3) s WHERE s.m < a * 10) AS best
  FROM generate_series(1, 3) a;
-- Handles are random 63-bit numbers, not a counter another query could guess (the odds of a
-- handle below 2^20 are 2^-43).
SELECT bool_and(h > 1048576) AS random_looking, count(DISTINCT h) AS distinct_handles
  FROM (SELECT sdk.median__step(0, 1.0) AS h FROM generate_series(1, 5)) s;
-- A handle that is not a state of this instance is an ERROR, never another query's state.
SELECT sqlstate_of($$SELECT sdk.median__step(123456, 1.0)$$) AS foreign_handle;
-- A statement cancelled in the middle of an aggregate (the ERROR is intended: PL/pgSQL cannot
-- catch a cancel) leaves the next one correct.
SET statement_timeout = '50ms';
SELECT sdk.median(x) FROM (SELECT generate_series(1, 100000000)::float8 AS x) s;
RESET statement_timeout;
SELECT sdk.median(x) AS after_cancel FROM generate_series(1, 9) x;

-- State as jsonb (a serde BTreeMap), and as a scalar (an inline WAT transition function).
CREATE AGGREGATE sdk.tally(text) (sfunc = sdk.tally_accum, stype = jsonb, initcond = '{}');
SELECT sdk.tally(w) FROM unnest(string_to_array('to be or not to be', ' ')) w;
SELECT g % 2 AS parity, sdk.tally(g::text) FROM generate_series(1, 5) g GROUP BY 1 ORDER BY 1;
CREATE FUNCTION sdk.wmax(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE STRICT AS
  '(module (func (export "wmax") (param i64 i64) (result i64)
     (select (local.get 0) (local.get 1) (i64.gt_s (local.get 0) (local.get 1)))))';
CREATE AGGREGATE sdk.wasm_max(bigint) (sfunc = sdk.wmax, stype = bigint);
SELECT sdk.wasm_max(x) AS wasm, max(x) AS builtin FROM (VALUES (3), (-7), (42), (5)) v(x);

-- jsonb through serde structs.
SELECT sdk.order_summary('{"id": 7, "items": [{"sku": "a", "qty": 2, "unit_price": 1.5},
                                              {"sku": "b", "qty": 1, "unit_price": 10}],
                           "coupon": "TENOFF"}') AS summary;
SELECT sqlstate_of($$SELECT sdk.order_summary('{"id": "seven"}')$$) AS mismatch;
SELECT sdk.normalize_tags('{"title": "x", "tags": ["SQL", "wasm", "sql", "Rust"]}') AS normalized;
-- RETURNS TABLE rows and a composite result from serde structs; numeric through JSON.
SELECT * FROM sdk.order_lines('{"id": 7, "items": [{"sku": "a", "qty": 2, "unit_price": 1.5},
                                                   {"sku": "b", "qty": 3, "unit_price": 0.1}]}');
SELECT (sdk.order_total('{"id": 7, "items": [{"sku": "a", "qty": 2, "unit_price": 1.5}]}')).*;
SELECT sdk.discounted(19.99, 10) AS discounted, pg_typeof(sdk.discounted(1, 0)) AS type;

-- C, with udf-sdk/c/plwasm.h (examples/c/c_udfs.c): the same ABI, self-description and host API.
SELECT wasm.load('c_udfs', pg_read_binary_file(:'wasmdir' || '/c_udfs.wasm'));
SELECT * FROM wasm.create_functions('c_udfs', 'sdk') ORDER BY 1;
SELECT sdk.c_mean(ARRAY[1, 2, 3, 4]) AS mean, sdk.c_mean('{}') IS NULL AS empty_is_null,
       sdk.c_reverse('plwasm') AS reversed, sdk.c_clamp(5, 0, 10) AS inside;
SELECT sdk.c_clamp(50, 0, 10) AS clamped;
SELECT sqlstate_of($$SELECT sdk.c_reverse('héllo')$$) AS non_ascii;

-- Replacing existing functions needs replace => true.
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('text_udfs', 'sdk')$$) AS again;
SELECT count(*) AS replaced FROM wasm.create_functions('text_udfs', 'sdk', replace => true);

-- Without a schema, the functions go to the current schema.
CREATE SCHEMA sdk_default;
-- (Schema sdk stays on the path: the module's descriptions name its composite types.)
SET search_path = sdk_default, sdk, public;
SELECT * FROM wasm.create_functions('json_udfs') ORDER BY 1;
SELECT pronamespace::regnamespace AS schema, count(*) FROM pg_proc
 WHERE proname IN ('order_summary', 'normalize_tags') GROUP BY 1 ORDER BY pronamespace::regnamespace::text;
RESET search_path;
DROP SCHEMA sdk_default CASCADE;

-- A module without a description, and one that does not exist.
SELECT wasm.load('plain', wasm.wat('(module (func (export "f")))'));
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('plain')$$);
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('nope')$$);

DROP SCHEMA sdk CASCADE;
RESET client_min_messages;

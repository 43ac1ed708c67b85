-- Modules written with the Rust SDK (udf-sdk/plwasm-udf, #[udf]) describe their functions in a
-- plwasm.udfs section; wasm.create_functions declares them. The examples in examples/rust/ are
-- built for wasm32-unknown-unknown during the test run.
SET client_min_messages = notice;
SELECT wasm.load('text_udfs', pg_read_binary_file(:'wasmdir' || '/text_udfs.wasm'));
SELECT wasm.load('vector_udfs', pg_read_binary_file(:'wasmdir' || '/vector_udfs.wasm'));
CREATE SCHEMA sdk;
SELECT * FROM wasm.create_functions('text_udfs', 'sdk') ORDER BY 1;
SELECT * FROM wasm.create_functions('vector_udfs', 'sdk') ORDER BY 1;
SELECT function, module, export, inline FROM wasm.functions WHERE module IN ('text_udfs', 'vector_udfs') ORDER BY 1::text;
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

-- Vectors (float8[] and float4[] packed).
SELECT round(sdk.cosine_similarity(ARRAY[1, 2, 3], ARRAY[2, 4, 6])::numeric, 6) AS same_direction,
       sdk.cosine_similarity(ARRAY[1, 0], ARRAY[0, 1]) AS orthogonal,
       sdk.cosine_similarity('{}', '{}') IS NULL AS empty_is_null,
       round(sdk.cosine_similarity_f4('{1,1}'::float4[], '{1,0}'::float4[])::numeric, 6) AS f4;
SELECT sdk.vector_add(ARRAY[1.5, 2], ARRAY[0.5, 1]) AS added;
SELECT sqlstate_of($$SELECT sdk.vector_add(ARRAY[1.0], ARRAY[1.0, 2.0])$$) AS err;

-- Replacing existing functions needs replace => true.
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('text_udfs', 'sdk')$$) AS again;
SELECT count(*) AS replaced FROM wasm.create_functions('text_udfs', 'sdk', replace => true);

-- A module without a description, and one that does not exist.
SELECT wasm.load('plain', wasm.wat('(module (func (export "f")))'));
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('plain')$$);
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('nope')$$);

DROP SCHEMA sdk CASCADE;
RESET client_min_messages;

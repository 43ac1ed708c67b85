-- CREATE FUNCTION ... LANGUAGE wasm: bodies, the scalar type mapping and the validator.
SELECT wasm.load('types', wasm.wat($$
  (module
    (func (export "id_i32") (param i32) (result i32) local.get 0)
    (func (export "id_i64") (param i64) (result i64) local.get 0)
    (func (export "id_f32") (param f32) (result f32) local.get 0)
    (func (export "id_f64") (param f64) (result f64) local.get 0)
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "mix") (param i32 i64 f32 f64 i32) (result f64)
      local.get 0 f64.convert_i32_s
      local.get 1 f64.convert_i64_s f64.add
      local.get 2 f64.promote_f32 f64.add
      local.get 3 f64.add
      local.get 4 f64.convert_i32_s f64.add)
    (func (export "seven") (result i32) i32.const 7)
    (func (export "nothing"))
    (memory (export "memory") 1))
$$));

-- 'module:export', and 'module' alone meaning the export named like the function.
CREATE FUNCTION add(int, int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'types:add';
CREATE FUNCTION seven() RETURNS int LANGUAGE wasm AS 'types';
CREATE FUNCTION nothing() RETURNS void LANGUAGE wasm AS 'types';
SELECT add(2, 3), seven(), nothing();
SELECT sum(add(i, i)) FROM generate_series(1, 1000) i;

-- Each scalar type, through an identity export.
CREATE FUNCTION id2(int2) RETURNS int2 LANGUAGE wasm STRICT AS 'types:id_i32';
CREATE FUNCTION id4(int4) RETURNS int4 LANGUAGE wasm STRICT AS 'types:id_i32';
CREATE FUNCTION id8(int8) RETURNS int8 LANGUAGE wasm STRICT AS 'types:id_i64';
CREATE FUNCTION idf4(float4) RETURNS float4 LANGUAGE wasm STRICT AS 'types:id_f32';
CREATE FUNCTION idf8(float8) RETURNS float8 LANGUAGE wasm STRICT AS 'types:id_f64';
CREATE FUNCTION idb(bool) RETURNS bool LANGUAGE wasm STRICT AS 'types:id_i32';
CREATE FUNCTION int_as_bool(int4) RETURNS bool LANGUAGE wasm STRICT AS 'types:id_i32';
CREATE FUNCTION int_as_int2(int4) RETURNS int2 LANGUAGE wasm STRICT AS 'types:id_i32';
SELECT id2((-32768)::int2) AS min2, id2(32767::int2) AS max2,
       id4(-2147483648) AS min4, id4(2147483647) AS max4,
       id8(-9223372036854775808) AS min8, id8(9223372036854775807) AS max8;
SELECT idf4(1.5::float4) AS f4, idf4('-Infinity') AS f4_inf, idf4('NaN') AS f4_nan,
       idf8(1e300) AS f8, idf8('-0') AS f8_negzero, idf8('Infinity') AS f8_inf;
SELECT idb(true) AS t, idb(false) AS f,
       int_as_bool(0) AS zero, int_as_bool(1) AS one, int_as_bool(-5) AS minus_five;
SELECT int_as_int2(-32768) AS lowest, int_as_int2(32767) AS highest;
SELECT sqlstate_of('SELECT int_as_int2(32768)');
SELECT sqlstate_of('SELECT int_as_int2(-32769)');
CREATE FUNCTION mix(int2, int8, float4, float8, bool) RETURNS float8
    LANGUAGE wasm STRICT AS 'types';
SELECT mix(1::int2, 10, 0.5, 100.25, true);

-- NULL: STRICT functions are never called with NULL; others get a clear ERROR for now.
SELECT add(1, NULL) IS NULL AS strict_null;
CREATE FUNCTION add_lax(int, int) RETURNS int LANGUAGE wasm AS 'types:add';
SELECT add_lax(1, 2);
SELECT sqlstate_of('SELECT add_lax(1, NULL)');

-- Inline modules in WebAssembly text: the export named like the function is called.
CREATE FUNCTION cube(x int8) RETURNS int8 LANGUAGE wasm IMMUTABLE STRICT AS $$
(module
  (func (export "cube") (param i64) (result i64)
    local.get 0 local.get 0 i64.mul local.get 0 i64.mul))
$$;
SELECT cube(3), cube(-1000000);

-- CREATE OR REPLACE takes effect at once.
CREATE OR REPLACE FUNCTION seven() RETURNS int LANGUAGE wasm AS
  '(module (func (export "seven") (result i32) i32.const 77))';
SELECT seven();
CREATE OR REPLACE FUNCTION seven() RETURNS int LANGUAGE wasm AS 'types';
SELECT seven();

-- The validator: every way a function can fail to bind.
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'nosuch:f'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'types:nosuch'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'types:memory'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'types:add'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int, int) RETURNS int8 LANGUAGE wasm AS 'types:add'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(float4) RETURNS float4 LANGUAGE wasm AS 'types:id_f64'$$);
SELECT sqlstate_of($$CREATE FUNCTION v() RETURNS void LANGUAGE wasm AS 'types:seven'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(anyelement) RETURNS int LANGUAGE wasm AS 'types:add'$$);
SELECT sqlstate_of($$CREATE FUNCTION v() RETURNS event_trigger LANGUAGE wasm AS 'types:seven'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(internal) RETURNS internal LANGUAGE wasm AS 'types:id_i32'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS SETOF int LANGUAGE wasm AS 'types:id_i32'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS ''$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'types:'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS 'no such:f'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS '(module (func (export "v")'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS int LANGUAGE wasm AS '(module)'$$);
SELECT sqlstate_of($$CREATE FUNCTION v() RETURNS int LANGUAGE wasm AS '(module (import "env" "x" (func)) (func (export "v") (result i32) i32.const 1))'$$);
SELECT sqlstate_of($$CREATE FUNCTION v() RETURNS int LANGUAGE wasm AS '(module (func $s unreachable) (start $s) (func (export "v") (result i32) i32.const 1))'$$);

-- With check_function_bodies off (as pg_dump restores), only the signature is checked; the
-- binding is checked again at the first call.
SET check_function_bodies = off;
CREATE FUNCTION late(int) RETURNS int LANGUAGE wasm AS 'later:f';
SELECT sqlstate_of($$CREATE FUNCTION v(anyelement) RETURNS int LANGUAGE wasm AS 'later:f'$$);
RESET check_function_bodies;
SELECT sqlstate_of('SELECT late(1)');
SELECT wasm.load('later', wasm.wat('(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 100 i32.add))'));
SELECT late(1);

-- Functions bound to a module keep it from being unloaded or broken by a replace.
SELECT sqlstate_of($$SELECT wasm.unload('later')$$);
-- Its HINT (VERBOSITY default); the ERROR is intended.
\set VERBOSITY default
SELECT wasm.unload('later');
\set VERBOSITY terse
SELECT sqlstate_of($$SELECT wasm.load('later', wasm.wat('(module (func (export "f") (param i64) (result i64) local.get 0))'), true)$$);
SELECT sqlstate_of($$SELECT wasm.load('later', wasm.wat('(module (func (export "g")))'), true)$$);
SELECT wasm.load('later', wasm.wat('(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 200 i32.add) (func (export "p") (param i32)))'), true);
SELECT late(1);
-- wasm.unload(name, cascade => true) drops the bound functions (and, like DROP ... CASCADE, what
-- depends on them), then the module, in one statement.
CREATE FUNCTION late_twice(int) RETURNS int LANGUAGE wasm AS 'later:f';
CREATE PROCEDURE late_proc(int) LANGUAGE wasm AS 'later:p';
CREATE VIEW late_view AS SELECT late(1) AS v;
SELECT wasm.unload('later', cascade => true);
SELECT (SELECT count(*) FROM pg_proc WHERE proname IN ('late', 'late_twice', 'late_proc')) AS functions_left,
       (SELECT count(*) FROM pg_class WHERE relname = 'late_view') AS views_left,
       (SELECT count(*) FROM wasm.modules WHERE name = 'later') AS modules_left;

-- Procedures work too.
CREATE PROCEDURE noop() LANGUAGE wasm AS 'types:nothing';
CALL noop();

-- Set-returning functions (RETURNS SETOF t): the export returns nothing and emits each row with
-- plwasm.emit_i32 / emit_i64 / emit_f32 / emit_f64 / emit_bytes / emit_null. Rows are kept by
-- Postgres (a tuplestore), not in the module's memory, and returned in materialize mode.
SELECT wasm.load('sets', wasm.wat($$
(module
  (import "plwasm" "emit_i32" (func $emit (param i32)))
  (import "plwasm" "emit_f64" (func $emit_f64 (param f64)))
  (import "plwasm" "emit_bytes" (func $emit_bytes (param i32 i32)))
  (import "plwasm" "emit_null" (func $emit_null))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (func (export "series") (param $n i32) (local $i i32)
    (block $done (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $done (i32.gt_s (local.get $i) (local.get $n)))
      (call $emit (local.get $i))
      (br $l))))
  (func (export "words") (param $p i32) (param $n i32) (local $i i32) (local $start i32)
    (block $done (loop $l
      (if (i32.or (i32.ge_u (local.get $i) (local.get $n))
                  (i32.eq (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 32)))
        (then
          (if (i32.gt_u (local.get $i) (local.get $start))
            (then (call $emit_bytes (i32.add (local.get $p) (local.get $start))
                                    (i32.sub (local.get $i) (local.get $start)))))
          (local.set $start (i32.add (local.get $i) (i32.const 1)))))
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func (export "with_null")
    (call $emit (i32.const 1)) (call $emit_null) (call $emit (i32.const 3)))
  (func (export "halves") (param $n i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      (call $emit_f64 (f64.div (f64.convert_i32_s (local.get $i)) (f64.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func (export "wrong_kind") (call $emit_f64 (f64.const 1)))
  (func (export "rows_then_trap") (call $emit (i32.const 1)) unreachable))
$$));
CREATE FUNCTION series(int) RETURNS SETOF int LANGUAGE wasm STRICT AS 'sets';
CREATE FUNCTION words(text) RETURNS SETOF text LANGUAGE wasm STRICT AS 'sets';
CREATE FUNCTION with_null() RETURNS SETOF int LANGUAGE wasm AS 'sets';
CREATE FUNCTION halves(int) RETURNS SETOF float8 LANGUAGE wasm STRICT AS 'sets';
CREATE FUNCTION wrong_kind() RETURNS SETOF int LANGUAGE wasm AS 'sets';
CREATE FUNCTION rows_then_trap() RETURNS SETOF int LANGUAGE wasm AS 'sets';

SELECT * FROM series(5);
SELECT series(3) AS in_target_list, 'x' AS other;
SELECT count(*) AS none FROM series(0);
SELECT count(*), sum(s) FROM series(200000) s;
SELECT w, length(w) FROM words('  hello big   wasm world ') WITH ORDINALITY AS t(w, n) ORDER BY n;
SELECT * FROM with_null();
SELECT * FROM halves(4);
SELECT t.id, w FROM (VALUES (1, 'a b'), (2, 'c')) t(id, s), LATERAL words(t.s) w ORDER BY 1, 2;
SELECT sqlstate_of('SELECT * FROM wrong_kind()');
SELECT sqlstate_of('SELECT * FROM rows_then_trap()');
SELECT * FROM series(2) AS healthy;

-- The validator: SETOF needs an export that returns nothing.
SELECT sqlstate_of($$CREATE FUNCTION v(int) RETURNS SETOF int LANGUAGE wasm AS '(module (func (export "v") (param i32) (result i32) local.get 0))'$$);

-- Converting a JSON-form argument can run user code (a user's cast to json), which may call wasm.
-- That call is over before this one is set up: its rows do not land in this call's set, and its
-- NULL mask does not replace this call's (arg_is_null(1) is 0 here, the argument is given).
SELECT wasm.load('reenter', wasm.wat($$(module
  (import "plwasm" "emit_bytes" (func $emit (param i32 i32)))
  (import "plwasm" "arg_is_null" (func $is_null (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "INJECTED")
  (data (i32.const 16) "second argument NULL")
  (data (i32.const 48) "second argument given")
  (func (export "plwasm_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "plwasm_free") (param i32 i32))
  (func (export "inner") (param i32 i32) (result i32) (call $emit (i32.const 0) (i32.const 8)) i32.const 0)
  (func (export "outer") (param i32 i32 i32 i32)
    (if (call $is_null (i32.const 1))
      (then (call $emit (i32.const 16) (i32.const 20)))
      (else (call $emit (i32.const 48) (i32.const 21))))))$$));
CREATE TYPE reenter_mood AS ENUM ('calm');
CREATE FUNCTION reenter_inner(int, int) RETURNS int LANGUAGE wasm AS 'reenter:inner';
CREATE FUNCTION reenter_mood_json(reenter_mood) RETURNS json LANGUAGE sql AS
    $$ SELECT json_build_object('m', $1::text, 'inner', reenter_inner(1, NULL)) $$;
CREATE CAST (reenter_mood AS json) WITH FUNCTION reenter_mood_json(reenter_mood);
CREATE FUNCTION reenter_outer(reenter_mood, text) RETURNS SETOF text LANGUAGE wasm AS 'reenter:outer';
SELECT * FROM reenter_outer('calm', 'given');
DROP CAST (reenter_mood AS json);

-- Sets of a native scalar type go straight into the result as they are emitted; a row that does
-- not fit the type still fails the call after it returns, with the same errors as other rows:
-- out of range (22003), bytes or another wasm type (38000). Rows emitted before proc_exit(0)
-- are the result.
SELECT wasm.load('direct_sets', wasm.wat($$(module
  (import "plwasm" "emit_i32" (func $emit (param i32)))
  (import "plwasm" "emit_bytes" (func $emit_bytes (param i32 i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "too_big") (call $emit (i32.const 7)) (call $emit (i32.const 40000)) (call $emit (i32.const 8)))
  (func (export "bytes_row") (call $emit (i32.const 7)) (call $emit_bytes (i32.const 0) (i32.const 3)))
  (func (export "then_exit") (call $emit (i32.const 1)) (call $emit (i32.const 2)) (call $exit (i32.const 0)) (call $emit (i32.const 3))))$$));
CREATE FUNCTION too_big() RETURNS SETOF int2 LANGUAGE wasm AS 'direct_sets';
CREATE FUNCTION bytes_row() RETURNS SETOF int LANGUAGE wasm AS 'direct_sets';
CREATE FUNCTION then_exit() RETURNS SETOF int LANGUAGE wasm AS 'direct_sets';
SELECT sqlstate_of('SELECT * FROM too_big()') AS out_of_range;
SELECT sqlstate_of('SELECT * FROM bytes_row()') AS bytes_in_int_set;
SELECT * FROM then_exit();
-- A cast whose function runs with another wasm.max_memory makes the module's instance for this
-- role be rebuilt, which leaves this call's instance stale: the call resolves again and goes
-- on with the arguments already converted (the cast runs once).
CREATE TYPE reenter_level AS ENUM ('high');
CREATE SEQUENCE reenter_casts;
CREATE FUNCTION reenter_level_json(reenter_level) RETURNS json LANGUAGE sql SET wasm.max_memory = '128MB' AS
    $$ SELECT json_build_object('l', $1::text, 'n', nextval('reenter_casts'), 'inner', reenter_inner(2, 3)) $$;
CREATE CAST (reenter_level AS json) WITH FUNCTION reenter_level_json(reenter_level);
CREATE FUNCTION reenter_level_outer(reenter_level, text) RETURNS SETOF text LANGUAGE wasm AS 'reenter:outer';
SELECT * FROM reenter_level_outer('high', 'given');
SELECT currval('reenter_casts') AS casts_run;
DROP CAST (reenter_level AS json);

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

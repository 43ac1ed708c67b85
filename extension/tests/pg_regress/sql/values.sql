-- ABI v1 variable-length values: text, bytea, json/jsonb and packed arrays travel through the
-- module's memory. This module is hand-written WAT: a bump allocator, and exports that echo or
-- transform what they get. Arguments arrive as (ptr, len); results leave as (ptr << 32) | len.
SELECT wasm.load('bytes', wasm.wat($$
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.and (i32.add (i32.add (global.get $next) (local.get $len)) (i32.const 7))
                               (i32.const -8)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (global.get $next) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then (return (i32.const 0))))
        (br $grow)))
    (local.get $p))
  (func (export "plwasm_free") (param i32 i32))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func (export "echo") (param i32 i32) (result i64) (call $pack (local.get 0) (local.get 1)))
  (func (export "byte_len") (param i32 i32) (result i32) (local.get 1))
  (func (export "upper") (param $p i32) (param $n i32) (result i64) (local $i i32) (local $c i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
        (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $pack (local.get $p) (local.get $n)))
  (func (export "sum_f64") (param $p i32) (param $n i32) (result f64) (local $i i32) (local $s f64)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (f64.add (local.get $s) (f64.load (i32.add (local.get $p) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br $l)))
    (local.get $s))
  (func (export "double_i32") (param $p i32) (param $n i32) (result i64) (local $i i32) (local $a i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $a (i32.add (local.get $p) (local.get $i)))
      (i32.store (local.get $a) (i32.mul (i32.load (local.get $a)) (i32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $l)))
    (call $pack (local.get $p) (local.get $n)))
  (data (i32.const 16) "\ff\fe")
  (data (i32.const 32) "{\"a\": [1, 2, {\"b\": null}]}")
  (data (i32.const 64) "{oops")
  (data (i32.const 80) "a\00b")
  (func (export "bad_utf8") (result i64) (call $pack (i32.const 16) (i32.const 2)))
  (func (export "json_const") (result i64) (call $pack (i32.const 32) (i32.const 26)))
  (func (export "not_json") (result i64) (call $pack (i32.const 64) (i32.const 5)))
  (func (export "with_nul") (result i64) (call $pack (i32.const 80) (i32.const 3)))
  (func (export "three_bytes") (result i64) (call $pack (i32.const 32) (i32.const 3)))
  (func (export "out_of_bounds") (result i64) (call $pack (i32.const -256) (i32.const 4096)))
  (func (export "memory_bytes") (result i64) (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16))))
$$));

-- text, varchar, bpchar, name: UTF-8 both ways.
CREATE FUNCTION echo_text(text) RETURNS text LANGUAGE wasm IMMUTABLE STRICT AS 'bytes:echo';
CREATE FUNCTION upper_ascii(text) RETURNS text LANGUAGE wasm IMMUTABLE STRICT AS 'bytes:upper';
CREATE FUNCTION byte_len(text) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS 'bytes';
CREATE FUNCTION echo_varchar(varchar) RETURNS varchar LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_bpchar(char(5)) RETURNS char(5) LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_name(name) RETURNS name LANGUAGE wasm STRICT AS 'bytes:echo';
SELECT echo_text('héllo wörld') AS echoed, upper_ascii('abc-é-xyz') AS upper, byte_len('héllo') AS bytes;
SELECT echo_text('') = '' AS empty_ok, byte_len('') AS empty_len;
SELECT echo_varchar('vc'), echo_bpchar('ab') AS bpchar, echo_name('pg_class') AS name;
SELECT length(echo_text(repeat('ß', 3000000))) AS chars, octet_length(echo_text(repeat('x', 6000000))) AS bytes;
SELECT sum(byte_len(md5(i::text))) AS many_calls FROM generate_series(1, 2000) i;

-- bytea: raw bytes.
CREATE FUNCTION echo_bytea(bytea) RETURNS bytea LANGUAGE wasm STRICT AS 'bytes:echo';
SELECT echo_bytea('\x00ff10'), echo_bytea('') AS empty, length(echo_bytea(decode(repeat('ab', 2000000), 'hex'))) AS big;

-- json and jsonb: their text; results go through Postgres's own JSON parser.
CREATE FUNCTION echo_json(json) RETURNS json LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_jsonb(jsonb) RETURNS jsonb LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION json_const() RETURNS jsonb LANGUAGE wasm AS 'bytes';
CREATE FUNCTION not_json() RETURNS jsonb LANGUAGE wasm AS 'bytes';
SELECT echo_json('{"b": 1,   "a": [true]}'), echo_jsonb('{"b": 1,   "a": [true]}'), json_const();
SELECT sqlstate_of('SELECT not_json()');

-- One-dimensional arrays without NULLs of int2/int4/int8/float4/float8/bool: packed elements.
CREATE FUNCTION sum_f64(float8[]) RETURNS float8 LANGUAGE wasm IMMUTABLE STRICT AS 'bytes';
CREATE FUNCTION double_i32(int4[]) RETURNS int4[] LANGUAGE wasm STRICT AS 'bytes';
CREATE FUNCTION echo_i2(int2[]) RETURNS int2[] LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_i8(int8[]) RETURNS int8[] LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_f4(float4[]) RETURNS float4[] LANGUAGE wasm STRICT AS 'bytes:echo';
CREATE FUNCTION echo_bool(bool[]) RETURNS bool[] LANGUAGE wasm STRICT AS 'bytes:echo';
SELECT sum_f64(ARRAY[1.5, 2.25, -1]) AS sum, double_i32(ARRAY[1, -2, 2147483647]) AS doubled;
SELECT echo_i2('{1,-32768,32767}'), echo_i8(ARRAY[9223372036854775807, -1]), echo_f4('{1.5,NaN,-Infinity}'), echo_bool('{t,f,t}');
SELECT double_i32('{}') AS empty, sum_f64('{}') AS empty_sum, double_i32('[5:6]={7,8}') AS bounds_not_passed;  -- documented in abi.md: elements only
SELECT sum_f64(array_agg(i::float8)) AS sum_100k FROM generate_series(1, 100000) i;
SELECT sqlstate_of($$SELECT double_i32(ARRAY[1, NULL])$$);
SELECT sqlstate_of($$SELECT double_i32(ARRAY[[1, 2], [3, 4]])$$);

-- Results are checked: invalid UTF-8 or a NUL in text (22021), partial array elements and
-- pointers outside the module's memory (38000).
CREATE FUNCTION bad_utf8() RETURNS text LANGUAGE wasm AS 'bytes';
CREATE FUNCTION with_nul() RETURNS text LANGUAGE wasm AS 'bytes';
CREATE FUNCTION three_bytes() RETURNS int4[] LANGUAGE wasm AS 'bytes';
CREATE FUNCTION out_of_bounds() RETURNS bytea LANGUAGE wasm AS 'bytes';
SELECT sqlstate_of('SELECT bad_utf8()');
SELECT sqlstate_of('SELECT with_nul()');
SELECT sqlstate_of('SELECT three_bytes()');
-- (The memory's size depends on what earlier calls allocated: it is shown as N, and checked
-- against the size the module itself reports just before.)
CREATE FUNCTION memory_bytes() RETURNS int8 LANGUAGE wasm AS 'bytes';
SELECT memory_bytes() AS memory_bytes \gset
WITH e AS (SELECT sqlstate_of('SELECT out_of_bounds()') AS msg)
SELECT regexp_replace(msg, 'memory of \d+ bytes', 'memory of N bytes') AS out_of_bounds,
       (regexp_match(msg, 'memory of (\d+) bytes'))[1]::bigint = :memory_bytes AS actual_size FROM e;
SELECT echo_text('still fine') AS healthy;

-- NULL: STRICT functions return NULL without a call.
SELECT echo_text(NULL) IS NULL AS strict_null;

-- The validator checks the wasm signature of each form and the exports the ABI needs.
SELECT sqlstate_of($$CREATE FUNCTION v(text) RETURNS text LANGUAGE wasm AS 'bytes:byte_len'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(text, int) RETURNS int LANGUAGE wasm AS 'bytes:byte_len'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(text) RETURNS int LANGUAGE wasm AS '(module (memory (export "memory") 1) (func (export "v") (param i32 i32) (result i32) local.get 1))'$$);
SELECT sqlstate_of($$CREATE FUNCTION v() RETURNS text LANGUAGE wasm AS '(module (func (export "v") (result i64) i64.const 0))'$$);
SELECT sqlstate_of($$CREATE FUNCTION v(text) RETURNS int LANGUAGE wasm AS '(module (memory (export "memory") 1) (func (export "plwasm_alloc") (param i32) (result i32) i32.const 8) (func (export "plwasm_free") (param i32) ) (func (export "v") (param i32 i32) (result i32) local.get 1))'$$);
CREATE FUNCTION no_free(text) RETURNS int LANGUAGE wasm STRICT AS '(module (memory (export "memory") 1) (func (export "plwasm_alloc") (param i32) (result i32) i32.const 8) (func (export "no_free") (param i32 i32) (result i32) local.get 1))';
SELECT no_free('plwasm_free is optional') AS len;
CREATE FUNCTION alloc_fails(text) RETURNS int LANGUAGE wasm STRICT AS '(module (memory (export "memory") 1) (func (export "plwasm_alloc") (param i32) (result i32) i32.const 0) (func (export "alloc_fails") (param i32 i32) (result i32) local.get 1))';
SELECT sqlstate_of($$SELECT alloc_fails('x')$$);
SELECT alloc_fails('') AS empty_needs_no_memory;

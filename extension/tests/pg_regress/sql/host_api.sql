-- The plwasm host API: NULL-aware calls, return_null, log and error. Messages are reported after
-- the call returns.
SET client_min_messages = notice;
SELECT wasm.load('host', wasm.wat($$
(module
  (import "plwasm" "arg_is_null" (func $arg_is_null (param i32) (result i32)))
  (import "plwasm" "return_null" (func $return_null))
  (import "plwasm" "log" (func $log (param i32 i32 i32)))
  (import "plwasm" "error" (func $error (param i32 i32)))
  (import "plwasm" "error_code" (func $error_code (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (data (i32.const 0) "a notice from wasm")
  (data (i32.const 32) "a warning from wasm")
  (data (i32.const 64) "division by zero, says the guest")
  (data (i32.const 128) "22012")
  (data (i32.const 136) "ZZ999")
  (data (i32.const 144) "nope")
  (data (i32.const 152) "XX000")
  (data (i32.const 160) "57P01")
  ;; coalesce(a, b) for int4, NULL if both are NULL.
  (func (export "coalesce2") (param $a i32) (param $b i32) (result i32)
    (if (i32.eqz (call $arg_is_null (i32.const 0))) (then (return (local.get $a))))
    (if (i32.eqz (call $arg_is_null (i32.const 1))) (then (return (local.get $b))))
    (call $return_null)
    (i32.const 0))
  ;; length in bytes of a text, or -1 for NULL.
  (func (export "len_or_minus_one") (param $p i32) (param $n i32) (result i32)
    (if (result i32) (call $arg_is_null (i32.const 0))
      (then (i32.const -1)) (else (local.get $n))))
  (func (export "chatty") (param $x i32) (result i32)
    (call $log (i32.const 3) (i32.const 0) (i32.const 18))
    (call $log (i32.const 4) (i32.const 32) (i32.const 19))
    (call $log (i32.const 0) (i32.const 32) (i32.const 19))
    (call $log (i32.const 1) (i32.const 0) (i32.const 18))
    (call $log (i32.const 2) (i32.const 32) (i32.const 19))
    (i32.mul (local.get $x) (i32.const 2)))
  (func (export "fail") (param i32) (result i32)
    (call $error (i32.const 64) (i32.const 32))
    (i32.const 0))
  (func (export "fail_with_code") (param i32) (result i32)
    (call $error_code (i32.const 128) (i32.const 5) (i32.const 64) (i32.const 32))
    (i32.const 0))
  (func (export "fail_unknown_code") (result i32)
    (call $error_code (i32.const 136) (i32.const 5) (i32.const 64) (i32.const 32))
    (i32.const 0))
  (func (export "fail_bad_code") (result i32)
    (call $error_code (i32.const 144) (i32.const 4) (i32.const 64) (i32.const 32))
    (i32.const 0))
  (func (export "fail_reserved_code") (param i32) (result i32)
    (call $error_code (local.get 0) (i32.const 5) (i32.const 64) (i32.const 32))
    (i32.const 0)))
$$));

-- NULL-aware: a non-STRICT function of a module importing plwasm.arg_is_null gets NULLs.
CREATE FUNCTION coalesce2(int, int) RETURNS int LANGUAGE wasm AS 'host';
SELECT coalesce2(1, 2) AS both, coalesce2(NULL, 2) AS second, coalesce2(NULL, NULL) IS NULL AS neither;
CREATE FUNCTION len_or_minus_one(text) RETURNS int LANGUAGE wasm AS 'host';
SELECT len_or_minus_one('héllo') AS len, len_or_minus_one(NULL) AS null_len;
SELECT count(*) FILTER (WHERE coalesce2(CASE WHEN i % 3 = 0 THEN NULL ELSE i END, NULL) IS NULL) AS null_rows
  FROM generate_series(1, 300) i;

-- log: DEBUG(0) LOG(1) INFO(2) NOTICE(3) WARNING(4), reported after the call.
CREATE FUNCTION chatty(int) RETURNS int LANGUAGE wasm STRICT AS 'host';
SELECT chatty(21);
-- All five levels, each as the Postgres level it maps to, in the order logged.
SET client_min_messages = debug1;
SELECT chatty(1);
SET client_min_messages = notice;

-- error: the guest's message as an ERROR, P0001 by default, or a chosen standard SQLSTATE.
CREATE FUNCTION fail(int) RETURNS int LANGUAGE wasm STRICT AS 'host';
CREATE FUNCTION fail_with_code(int) RETURNS int LANGUAGE wasm STRICT AS 'host';
CREATE FUNCTION fail_unknown_code() RETURNS int LANGUAGE wasm AS 'host';
CREATE FUNCTION fail_bad_code() RETURNS int LANGUAGE wasm AS 'host';
SELECT sqlstate_of('SELECT fail(1)');
SELECT sqlstate_of('SELECT fail_with_code(1)');
SELECT sqlstate_of('SELECT fail_unknown_code()');
SELECT sqlstate_of('SELECT fail_bad_code()');
-- Postgres's own classes that callers act on (XX internal, 57 operator intervention, 58 system)
-- are not a module's to raise: P0001, with a DETAIL naming the code it asked for.
CREATE FUNCTION fail_reserved_code(int) RETURNS int LANGUAGE wasm STRICT AS 'host';
SELECT sqlstate_of('SELECT fail_reserved_code(152)') AS internal,
       sqlstate_of('SELECT fail_reserved_code(160)') AS shutdown;
\set VERBOSITY default
SELECT fail_reserved_code(160);
\set VERBOSITY terse
-- The ERROR's DETAIL names the SQL function that raised it (the ERROR is intended).
\set VERBOSITY default
SELECT fail(1);
\set VERBOSITY terse
-- It can be caught like any ERROR, and the session carries on.
DO $$
BEGIN
    PERFORM fail_with_code(1);
EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SELECT coalesce2(7, NULL) AS healthy;

-- Modules that do not import arg_is_null still cannot see NULLs: ERROR 22004.
CREATE FUNCTION unaware(int) RETURNS int LANGUAGE wasm AS '(module (func (export "unaware") (param i32) (result i32) local.get 0))';
SELECT sqlstate_of('SELECT unaware(NULL)');

-- Only these five functions, with these signatures, are provided.
SELECT sqlstate_of($$SELECT wasm.load('bad_host', wasm.wat('(module (import "plwasm" "log" (func (param i32 i32))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('bad_host', wasm.wat('(module (import "plwasm" "spi_exec" (func (param i32 i32))))'))$$);
RESET client_min_messages;

-- Every trap is an ERROR (SQLSTATE 38000) naming the trap, the SQL function, the module and the
-- export; the backend stays up and the next query succeeds.
SELECT wasm.load('traps', wasm.wat($$
  (module
    (type $unary (func (param i32) (result i32)))
    (table 2 funcref)
    (elem (i32.const 0) $ok)
    (memory 1 1)
    (func $ok (param i32) (result i32) local.get 0)
    (func (export "unreachable") (result i32) unreachable)
    (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
    (func (export "load") (param i32) (result i32) local.get 0 i32.load)
    (func $recurse (export "recurse") (param i32) (result i32)
      local.get 0 i32.const 1 i32.add call $recurse)
    (func (export "to_int") (param f64) (result i32) local.get 0 i32.trunc_f64_s)
    (func (export "indirect") (param i32 i32) (result i32)
      local.get 1 local.get 0 call_indirect (type $unary))
    (func (export "wrong_type") (param i32) (result i32)
      local.get 0 local.get 0 i32.const 0 call_indirect (param i32 i32) (result i32)))
$$));
CREATE FUNCTION t_unreachable() RETURNS int LANGUAGE wasm AS 'traps:unreachable';
CREATE FUNCTION t_div(int, int) RETURNS int LANGUAGE wasm STRICT AS 'traps:div';
CREATE FUNCTION t_load(int) RETURNS int LANGUAGE wasm STRICT AS 'traps:load';
CREATE FUNCTION t_recurse(int) RETURNS int LANGUAGE wasm STRICT AS 'traps:recurse';
CREATE FUNCTION t_to_int(float8) RETURNS int LANGUAGE wasm STRICT AS 'traps:to_int';
CREATE FUNCTION t_indirect(int, int) RETURNS int LANGUAGE wasm STRICT AS 'traps:indirect';
CREATE FUNCTION t_wrong_type(int) RETURNS int LANGUAGE wasm STRICT AS 'traps:wrong_type';

SELECT t_unreachable();
SELECT t_div(7, 2) AS healthy;
SELECT t_div(1, 0);
SELECT t_div(7, 2) AS healthy;
SELECT t_div(-2147483648, -1);
SELECT t_div(7, 2) AS healthy;
SELECT t_load(65536);
SELECT t_load(0) AS healthy;
SELECT t_recurse(0);
SELECT t_div(7, 2) AS healthy;
SELECT t_to_int('NaN'::float8);
SELECT t_to_int(1e20);
SELECT t_to_int(42.9) AS healthy;
SELECT t_indirect(0, 5) AS healthy;
SELECT t_indirect(1, 5);
SELECT t_indirect(7, 5);
SELECT t_wrong_type(0);
SELECT t_div(7, 2) AS healthy;

-- The SQLSTATE, through a PL/pgSQL exception block (a subtransaction): 38000 for every trap,
-- 54001 for the exhausted stack.
SELECT t.q, split_part(sqlstate_of(t.q), ':', 1) AS sqlstate
  FROM (VALUES ('SELECT t_unreachable()'), ('SELECT t_div(1, 0)'), ('SELECT t_div(-2147483648, -1)'),
               ('SELECT t_load(65536)'), ('SELECT t_to_int(''NaN'')'), ('SELECT t_indirect(1, 5)'),
               ('SELECT t_indirect(7, 5)'), ('SELECT t_wrong_type(0)'), ('SELECT t_recurse(0)')) t(q);

-- A trap in the middle of a scan aborts the statement; the next one works.
SELECT sum(t_div(100, i)) FROM generate_series(-5, 5) i;
SELECT sum(t_div(100, i)) FROM generate_series(1, 5) i;

-- A trap during instantiation (start function) is an ERROR too.
SELECT wasm.load('bad_start', wasm.wat('(module (func $s unreachable) (start $s) (func (export "f") (result i32) i32.const 1))'));
SET check_function_bodies = off;
CREATE FUNCTION bad_start() RETURNS int LANGUAGE wasm AS 'bad_start:f';
RESET check_function_bodies;
SELECT bad_start();
SELECT split_part(sqlstate_of('SELECT bad_start()'), ':', 1) AS start_trap_sqlstate;
SELECT t_div(9, 3) AS healthy;

-- What the terse output above leaves out: each error's DETAIL and HINT (the promise that every
-- error says where it came from and what to do). The backtrace names the wasm function.
\set VERBOSITY default
SELECT t_div(1, 0);
CREATE FUNCTION deep_trap(int) RETURNS int LANGUAGE wasm AS '(module
    (func $inner (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
    (func (export "deep_trap") (param i32) (result i32) (call $inner (local.get 0))))';
SELECT deep_trap(0);
SELECT wasm.load('bad_start', wasm.wat('(module)'));
CREATE FUNCTION lax(int) RETURNS int LANGUAGE wasm AS '(module (func (export "lax") (param i32) (result i32) local.get 0))';
SELECT lax(NULL);
SELECT wasm.load('needs_env', wasm.wat('(module (import "env" "f" (func)))'));
CREATE FUNCTION raiser() RETURNS int LANGUAGE wasm AS '(module
    (import "plwasm" "error_code" (func $err (param i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "00000boom")
    (func (export "raiser") (result i32) (call $err (i32.const 0) (i32.const 5) (i32.const 5) (i32.const 4)) i32.const 0))';
SELECT raiser();
SET wasm.fuel_limit = 1000;
SELECT t_recurse(0);
RESET wasm.fuel_limit;
\set VERBOSITY terse

-- Limits: memory, fuel, stack, module size, and Postgres's own interrupts while wasm runs.
SELECT wasm.load('limits', wasm.wat($$
  (module
    (memory (export "memory") 1)
    (func (export "spin") (result i32) (loop $l (br $l)) i32.const 0)
    (func $recurse (export "recurse") (param i32) (result i32)
      local.get 0 i32.const 1 i32.add call $recurse)
    (func $fib (export "fib") (param i32) (result i64)
      (if (result i64) (i32.lt_s (local.get 0) (i32.const 2))
        (then (i64.extend_i32_s (local.get 0)))
        (else (i64.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                       (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    (func (export "pages") (result i32) memory.size)
    (func (export "churn") (result i32)
      (drop (memory.grow (i32.const 255)))
      (loop $l
        (memory.fill (i32.const 0) (i32.const 7) (i32.const 16777216))
        (memory.copy (i32.const 0) (i32.const 8388608) (i32.const 8388608))
        br $l)
      i32.const 0)
    (func (export "count") (param i64) (result i64) (local $i i64)
      (loop $l
        local.get $i i64.const 1 i64.add local.tee $i
        local.get 0 i64.lt_s br_if $l)
      local.get $i))
$$));
-- (Named limits_spin: interrupts.sql has its own spin(), and each file must run alone.)
CREATE FUNCTION limits_spin() RETURNS int LANGUAGE wasm AS 'limits:spin';
CREATE FUNCTION recurse(int) RETURNS int LANGUAGE wasm AS 'limits';
CREATE FUNCTION fib(int) RETURNS int8 LANGUAGE wasm AS 'limits';
CREATE FUNCTION grow(int) RETURNS int LANGUAGE wasm AS 'limits';
CREATE FUNCTION pages() RETURNS int LANGUAGE wasm AS 'limits';
CREATE FUNCTION count_to(int8) RETURNS int8 LANGUAGE wasm AS 'limits:count';
CREATE FUNCTION churn() RETURNS int LANGUAGE wasm AS 'limits';

-- The settings (they exist once the library is loaded: here by wasm.load above).
SELECT name, setting, unit, context, short_desc FROM pg_settings WHERE name LIKE 'wasm.%' ORDER BY name;
SHOW wasm.max_memory;
SHOW wasm.max_module_size;

-- statement_timeout stops a loop without calls with Postgres's own error.
SET statement_timeout = '200ms';
SELECT limits_spin();
-- ... and deep, exponential recursion.
SELECT fib(60);
-- ... and endless bulk memory work (16MB memory.fill and 8MB memory.copy per iteration).
SELECT churn();
RESET statement_timeout;
SELECT fib(20) AS healthy;

-- Memory: memory.grow past wasm.max_memory returns -1 (the module starts with 1 page of 64kB).
SELECT grow(1) AS old_pages, pages() AS pages;
SELECT grow(10000) AS grow_past_64mb;
SET wasm.max_memory = '256kB';
SELECT pages() AS fresh_instance_pages, grow(3) AS to_four_pages, grow(1) AS fifth_page;
RESET wasm.max_memory;
-- A module whose declared minimum exceeds the limit cannot be instantiated: 54000.
SELECT wasm.load('big_memory', wasm.wat('(module (memory 20) (func (export "f") (result i32) i32.const 1))'));
CREATE FUNCTION big_memory() RETURNS int LANGUAGE wasm AS 'big_memory:f';
SET wasm.max_memory = '1MB';
SELECT sqlstate_of('SELECT big_memory()');
RESET wasm.max_memory;
SELECT big_memory() AS fits_again;

-- Fuel: wasm.fuel_limit instructions per call, 54000 when used up.
SET wasm.fuel_limit = 100000;
SELECT count_to(1000) AS within_budget;
SELECT sqlstate_of('SELECT count_to(1000000)');
SELECT sqlstate_of('SELECT fib(25)');
RESET wasm.fuel_limit;
SELECT count_to(1000000) AS unlimited;

-- Unbounded recursion: 54001, and the backend survives.
SELECT sqlstate_of('SELECT recurse(0)');
SELECT fib(10) AS healthy;

-- Module size and reserved export names.
SET wasm.max_module_size = 16;
SELECT sqlstate_of($$SELECT wasm.load('too_big', wasm.wat('(module (func (export "f")))'))$$);
RESET wasm.max_module_size;
SELECT sqlstate_of($$SELECT wasm.load('sneaky', wasm.wat('(module (global (export "__plwasm_fuel") (mut i64) (i64.const 0)))'))$$);
SELECT jsonb_array_length(exports) AS exports_shown FROM wasm.modules WHERE name = 'limits';

-- Only superusers may change the limits.
DROP ROLE IF EXISTS limits_user;   -- (left by a run that died half-way)
CREATE ROLE limits_user;
SET ROLE limits_user;
SELECT sqlstate_of($$SET wasm.fuel_limit = 0$$);
SELECT sqlstate_of($$SET wasm.max_memory = '1GB'$$);
RESET ROLE;
DROP ROLE limits_user;

-- The DETAIL and HINT of the limit errors (VERBOSITY default): each ERROR below is intended.
\set VERBOSITY default
SET wasm.max_memory = '1MB';
SELECT big_memory();
CREATE FUNCTION limits_big_table() RETURNS int LANGUAGE wasm AS
    '(module (table 1000000 funcref) (func (export "limits_big_table") (result i32) i32.const 0))';
RESET wasm.max_memory;
SELECT recurse(0);
SET wasm.max_module_size = 16;
SELECT wasm.load('too_big', wasm.wat('(module (func (export "f")))'));
RESET wasm.max_module_size;
\set VERBOSITY terse

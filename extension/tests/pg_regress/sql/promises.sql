-- Promises of docs/sql-reference.md and docs/abi.md that no other file checks (issue
-- "test-honesty"). Each case names the promise it checks. The file stands alone.
CREATE SCHEMA prom;

-- sql-reference "WASI": empty stdin, no arguments or environment, sched_yield returns at once,
-- proc_raise is ENOTSUP (58), descriptors beyond 0-2 are EBADF (8), random_get serves up to 1MB
-- per call (more is EINVAL, 28).
CREATE FUNCTION prom.wasi(what int, n int) RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
    (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
    (memory (export "memory") 48)
    (func (export "wasi") (param $what i32) (param $n i32) (result i32)
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 16))
        (i32.store (i32.const 8) (i32.const 99))
        (i32.store (i32.const 16) (i32.const 99))
        (i32.store (i32.const 20) (i32.const 99))
        (if (i32.eq (local.get $what) (i32.const 0))   ;; errno * 1000 + bytes read from stdin
            (then (return (i32.add
                (i32.mul (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))
                         (i32.const 1000))
                (i32.load (i32.const 8))))))
        (if (i32.eq (local.get $what) (i32.const 1))   ;; argc + argv bytes
            (then (drop (call $args (i32.const 16) (i32.const 20)))
                  (return (i32.add (i32.load (i32.const 16)) (i32.load (i32.const 20))))))
        (if (i32.eq (local.get $what) (i32.const 2))   ;; environment count + bytes
            (then (drop (call $env (i32.const 16) (i32.const 20)))
                  (return (i32.add (i32.load (i32.const 16)) (i32.load (i32.const 20))))))
        (if (i32.eq (local.get $what) (i32.const 3)) (then (return (call $yield))))
        (if (i32.eq (local.get $what) (i32.const 4)) (then (return (call $raise (i32.const 2)))))
        (if (i32.eq (local.get $what) (i32.const 5))
            (then (return (call $fd_write (i32.const 5) (i32.const 0) (i32.const 1) (i32.const 8)))))
        (call $random (i32.const 65536) (local.get $n))))';
SELECT prom.wasi(0, 0) AS stdin_errno_and_bytes, prom.wasi(1, 0) AS args, prom.wasi(2, 0) AS environ,
       prom.wasi(3, 0) AS sched_yield, prom.wasi(4, 0) AS proc_raise, prom.wasi(5, 0) AS fd_5,
       prom.wasi(6, 1048576) AS random_1mb, prom.wasi(6, 1048577) AS random_past_1mb;

-- sql-reference "WASI" and abi.md "host API": output and log messages are reported after the
-- call, also when the call then fails; plwasm.log levels map to Postgres's (2 INFO, 4 WARNING).
CREATE FUNCTION prom.talk_then_trap(trap bool) RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
    (import "plwasm" "log" (func $log (param i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 100) "printed before the trap\n")
    (data (i32.const 200) "an info message")
    (data (i32.const 300) "a warning")
    (data (i32.const 0) "\64\00\00\00\18\00\00\00")
    (func (export "talk_then_trap") (param i32) (result i32)
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
        (call $log (i32.const 2) (i32.const 200) (i32.const 15))
        (call $log (i32.const 4) (i32.const 300) (i32.const 9))
        (if (local.get 0) (then unreachable))
        i32.const 1))';
SET client_min_messages = notice;
SELECT prom.talk_then_trap(false);
SELECT prom.talk_then_trap(true);
RESET client_min_messages;

-- abi.md "host API": error_code with a SQLSTATE Postgres knows ends the call with it.
CREATE FUNCTION prom.reject(code text) RETURNS int LANGUAGE wasm STRICT AS '(module
    (import "plwasm" "error_code" (func $err (param i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "plwasm_alloc") (param i32) (result i32) (local $p i32)
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get 0)))
        (local.get $p))
    (data (i32.const 0) "rejected by the module")
    (func (export "reject") (param i32 i32) (result i32)
        (call $err (local.get 0) (local.get 1) (i32.const 0) (i32.const 22)) i32.const 0))';
SELECT sqlstate_of($$SELECT prom.reject('23514')$$) AS check_violation,
       sqlstate_of($$SELECT prom.reject('22007')$$) AS invalid_datetime_format;

-- sql-reference "Settings": wasm.max_memory is rounded down to whole 64kB pages; the fuel
-- limit goes up to 2147483647; the settings are superuser-only.
CREATE FUNCTION prom.grow(int) RETURNS int LANGUAGE wasm AS
    '(module (memory 1) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))';
SET wasm.max_memory = '127kB';                 -- one page
SELECT prom.grow(1) AS grow_past_one_page;
SET wasm.max_memory = '128kB';                 -- two pages (a new instance)
SELECT prom.grow(1) AS grow_to_two_pages;
RESET wasm.max_memory;
SELECT sqlstate_of('SET wasm.fuel_limit = 2147483647') AS fuel_max,
       sqlstate_of('SET wasm.fuel_limit = 2147483648') AS fuel_past_max;
RESET wasm.fuel_limit;
CREATE ROLE prom_plain;
SET ROLE prom_plain;
SELECT sqlstate_of('SET wasm.max_module_size = 1000') AS non_superuser_set;
RESET ROLE;

-- sql-reference "Who may load": a member of the owning role may replace the module, which keeps
-- its owner.
CREATE ROLE prom_owner;
CREATE ROLE prom_member IN ROLE prom_owner;
GRANT wasm_loader TO prom_owner, prom_member;
SET ROLE prom_owner;
SELECT wasm.load('prom_shared', wasm.wat('(module (func (export "v") (result i32) i32.const 1))'));
RESET ROLE;
SET ROLE prom_member;
SELECT wasm.load('prom_shared', wasm.wat('(module (func (export "v") (result i32) i32.const 2))'), true);
RESET ROLE;
SELECT name, owner FROM wasm.modules WHERE name = 'prom_shared';

-- sql-reference "wasm.modules": table exports are listed with their kind.
SELECT wasm.load('prom_table', wasm.wat('(module (table (export "t") 1 funcref) (memory (export "m") 1))'));
SELECT exports FROM wasm.modules WHERE name = 'prom_table';

-- sql-reference "wasm.functions": module, export, inline and owner of each wasm function.
CREATE FUNCTION prom.stored() RETURNS int LANGUAGE wasm AS 'prom_shared:v';
CREATE FUNCTION prom.inline_one() RETURNS int LANGUAGE wasm AS
    '(module (func (export "inline_one") (result i32) i32.const 1))';
SELECT function, module, export, inline, owner FROM wasm.functions
 WHERE function::text IN ('prom.stored()', 'prom.inline_one()') ORDER BY function::text;

-- sql-reference "Errors while calling": an export that no longer fits its function (bound with
-- check_function_bodies off, as pg_restore does) is 42P13 at the call.
SET check_function_bodies = off;
CREATE FUNCTION prom.wrong_sig(int) RETURNS int LANGUAGE wasm AS 'prom_shared:v';
RESET check_function_bodies;
SELECT sqlstate_of('SELECT prom.wrong_sig(1)');

-- abi.md "Set-returning functions": emit_i64 and emit_f32 rows.
CREATE FUNCTION prom.big_numbers() RETURNS SETOF int8 LANGUAGE wasm AS '(module
    (import "plwasm" "emit_i64" (func $e (param i64)))
    (func (export "big_numbers") (call $e (i64.const 9223372036854775807)) (call $e (i64.const -1))))';
CREATE FUNCTION prom.halves() RETURNS SETOF float4 LANGUAGE wasm AS '(module
    (import "plwasm" "emit_f32" (func $e (param f32)))
    (func (export "halves") (call $e (f32.const 0.5)) (call $e (f32.const -1.5))))';
SELECT * FROM prom.big_numbers();
SELECT * FROM prom.halves();

DROP SCHEMA prom CASCADE;
SELECT wasm.unload('prom_shared'), wasm.unload('prom_table');
DROP ROLE prom_plain, prom_member, prom_owner;

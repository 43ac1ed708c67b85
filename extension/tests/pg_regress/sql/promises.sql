-- Promises of docs/sql-reference.md and docs/abi.md that no other file checks (issue
-- "test-honesty"). Each case names the promise it checks. The file stands alone.
CREATE SCHEMA prom;
-- (Roles and databases are cluster-wide: a run that died half-way may have left them.)
DROP DATABASE IF EXISTS prom_db;
DROP ROLE IF EXISTS prom_plain, prom_owner, prom_member, prom_loader;

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
    (func (export "wasi") (param $what i32) (param $n i32) (result i32) (local $e i32) (local $i i32) (local $c i32)
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
        (if (i32.eq (local.get $what) (i32.const 7))   ;; errno * 10000 + nonzero bytes of the last 1024
            (then (memory.fill (i32.const 65536) (i32.const 0) (local.get $n))
                  (local.set $e (call $random (i32.const 65536) (local.get $n)))
                  (local.set $i (i32.add (i32.const 64512) (local.get $n)))
                  (block $d (loop $l
                      (br_if $d (i32.ge_u (local.get $i) (i32.add (i32.const 65536) (local.get $n))))
                      (if (i32.load8_u (local.get $i))
                          (then (local.set $c (i32.add (local.get $c) (i32.const 1)))))
                      (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br $l)))
                  (return (i32.add (i32.mul (local.get $e) (i32.const 10000)) (local.get $c)))))
        (call $random (i32.const 65536) (local.get $n))))';
SELECT prom.wasi(0, 0) AS stdin_errno_and_bytes, prom.wasi(1, 0) AS args, prom.wasi(2, 0) AS environ,
       prom.wasi(3, 0) AS sched_yield, prom.wasi(4, 0) AS proc_raise, prom.wasi(5, 0) AS fd_5,
       prom.wasi(6, 1048576) AS random_1mb, prom.wasi(6, 1048577) AS random_past_1mb;
-- random_get fills the whole buffer: the buffer is zeroed, then of the last 1024 bytes of a 1MB
-- draw all but a few are nonzero (the chance of more than 30 zero bytes among 1024 random ones
-- is below 1e-9).
SELECT prom.wasi(7, 1048576) BETWEEN 994 AND 1024 AS random_fills_1mb;

-- sql-reference "WASI" and abi.md "host API": output and log messages are reported after the
-- call (log messages first), also when the call then fails; plwasm.log levels map to Postgres's (2 INFO, 4 WARNING).
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
SELECT function, module, export, inline, owner = current_user AS owned_by_me FROM wasm.functions
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

-- sql-reference "WASI": stderr goes to the server log at LOG, prefixed with the function (shown
-- here because client_min_messages = log also sends LOG messages to the client).
CREATE FUNCTION prom.to_stderr() RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 100) "written to stderr\n")
    (data (i32.const 0) "\64\00\00\00\12\00\00\00")
    (func (export "to_stderr") (result i32)
        (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16))) i32.const 1))';
SET client_min_messages = log;
SELECT prom.to_stderr();
RESET client_min_messages;

-- abi.md "Host API": log messages are cut at 8kB, and at most 1000 messages (and 64kB) are kept
-- per call. Seen through the dropped count (level DEBUG1 is not shown): 1001 one-byte messages
-- drop one; nine messages of 9000 bytes are cut to 8192 bytes, so eight fit in 64kB and one is
-- dropped (uncut, only seven would fit).
CREATE FUNCTION prom.many_logs(n int, len int) RETURNS int LANGUAGE wasm AS '(module
    (import "plwasm" "log" (func $log (param i32 i32 i32)))
    (memory (export "memory") 1)
    (func (export "many_logs") (param $n i32) (param $len i32) (result i32) (local $i i32)
        (memory.fill (i32.const 0) (i32.const 97) (i32.const 9000))
        (block $done (loop $l
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (call $log (i32.const 0) (i32.const 0) (local.get $len))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $l)))
        (local.get $i)))';
SET client_min_messages = notice;
SELECT prom.many_logs(1000, 1) AS none_dropped;
SELECT prom.many_logs(1001, 1) AS one_dropped;
SELECT prom.many_logs(9, 9000) AS one_dropped;
RESET client_min_messages;

-- abi.md "Results": a name result is at most 63 bytes; a longer one is 38000, not truncated.
CREATE FUNCTION prom.as_name(text) RETURNS name LANGUAGE wasm AS '(module
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "plwasm_alloc") (param i32) (result i32) (local $p i32)
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get 0)))
        (local.get $p))
    (func (export "as_name") (param i32 i32) (result i64)
        (global.set $next (i32.const 1024))
        (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1)))))';
SELECT length(prom.as_name(repeat('n', 63))) AS name_of_63_bytes;
SELECT sqlstate_of($$SELECT prom.as_name(repeat('n', 64))$$) AS name_of_64_bytes;

-- abi.md "Module interface": plwasm_free is called for each argument buffer after the call and
-- for the result buffer after it was copied; a result that is an argument's buffer is freed
-- twice (once as the result, once as the argument). The counters live in the instance, which
-- every function over the stored module shares.
SELECT wasm.load('prom_buffers', wasm.wat('(module
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (global $frees (mut i32) (i32.const 0))
    (global $freed (mut i32) (i32.const 0))
    (func (export "plwasm_alloc") (param i32) (result i32) (local $p i32)
        (local.set $p (global.get $next))
        (global.set $next (i32.add (global.get $next) (local.get 0)))
        (local.get $p))
    (func (export "plwasm_free") (param i32 i32)
        (global.set $frees (i32.add (global.get $frees) (i32.const 1)))
        (global.set $freed (i32.add (global.get $freed) (local.get 1))))
    (func (export "first") (param i32 i32 i32 i32) (result i64)
        (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1))))
    (func (export "frees") (result i32) (global.get $frees))
    (func (export "freed_bytes") (result i32) (global.get $freed)))'));
CREATE FUNCTION prom.first(text, text) RETURNS text LANGUAGE wasm AS 'prom_buffers';
CREATE FUNCTION prom.frees() RETURNS int LANGUAGE wasm AS 'prom_buffers';
CREATE FUNCTION prom.freed_bytes() RETURNS int LANGUAGE wasm AS 'prom_buffers';
SELECT prom.first('abc', 'de') AS first;
SELECT prom.frees() AS frees, prom.freed_bytes() AS freed_bytes;
SELECT prom.first('', 'x') AS first_empty;
SELECT prom.frees() AS frees, prom.freed_bytes() AS freed_bytes;

-- abi.md "Errors, budget and state": plwasm_alloc and plwasm_free run under the call's fuel
-- budget and are interruptible: a loop in either is stopped by the fuel limit (54000) and by
-- statement_timeout (57014).
CREATE FUNCTION prom.alloc_spins(text) RETURNS int LANGUAGE wasm AS '(module
    (memory (export "memory") 1)
    (func (export "plwasm_alloc") (param i32) (result i32) (loop $l (br $l)) i32.const 0)
    (func (export "alloc_spins") (param i32 i32) (result i32) i32.const 0))';
CREATE FUNCTION prom.free_spins(text) RETURNS int LANGUAGE wasm AS '(module
    (memory (export "memory") 1)
    (func (export "plwasm_alloc") (param i32) (result i32) i32.const 1024)
    (func (export "plwasm_free") (param i32 i32) (loop $l (br $l)))
    (func (export "free_spins") (param i32 i32) (result i32) i32.const 0))';
SET wasm.fuel_limit = 100000;
SELECT sqlstate_of($$SELECT prom.alloc_spins('x')$$) AS alloc_out_of_fuel,
       sqlstate_of($$SELECT prom.free_spins('x')$$) AS free_out_of_fuel;
RESET wasm.fuel_limit;
-- The two ERRORs below are the intended statement_timeout cancels (PL/pgSQL cannot catch them).
SET statement_timeout = '300ms';
SELECT prom.alloc_spins('x');
SELECT prom.free_spins('x');
RESET statement_timeout;

-- sql-reference "Settings": with session_preload_libraries = 'plwasm' the settings exist from
-- the start of a session; without it, only once the library is loaded.
SELECT * FROM dblink(format('dbname=%s port=%s host=%s user=%s',
        current_database(), current_setting('port'),
        split_part(current_setting('unix_socket_directories'), ',', 1), current_user),
    $$SELECT current_setting('wasm.max_memory', true)$$) AS t(max_memory_without_preload text);
SELECT * FROM dblink(format('dbname=%s port=%s host=%s user=%s options=-csession_preload_libraries=plwasm',
        current_database(), current_setting('port'),
        split_part(current_setting('unix_socket_directories'), ',', 1), current_user),
    $$SELECT current_setting('wasm.max_memory', true)$$) AS t(max_memory_with_preload text);

-- sql-reference "Objects created": the role wasm_loader is not dropped with the extension, and
-- keeps its members, so CREATE EXTENSION again finds it as it was.
CREATE DATABASE prom_db;
CREATE ROLE prom_loader IN ROLE wasm_loader;
SELECT dblink_connect('prom_db', format('dbname=prom_db port=%s host=%s user=%s',
       current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1),
       current_user));
SELECT dblink_exec('prom_db', 'CREATE EXTENSION plwasm');
SELECT dblink_exec('prom_db', 'DROP EXTENSION plwasm');
SELECT count(*) AS wasm_loader_roles, pg_has_role('prom_loader', 'wasm_loader', 'member') AS still_member
  FROM pg_roles WHERE rolname = 'wasm_loader';
SELECT dblink_exec('prom_db', 'CREATE EXTENSION plwasm');
SELECT pg_has_role('prom_loader', 'wasm_loader', 'member') AS member_after_create_again;
SELECT * FROM dblink('prom_db', $$SELECT has_function_privilege('wasm_loader',
    'wasm.load(text, bytea, boolean)', 'EXECUTE')$$) AS t(loader_may_load_again boolean);
SELECT dblink_disconnect('prom_db');
DROP DATABASE prom_db;
DROP ROLE prom_loader;

-- abi.md "Set-returning functions": one row's value is at most 1GB (checked before anything is
-- read or allocated): 54000.
CREATE FUNCTION prom.huge_row() RETURNS SETOF bytea LANGUAGE wasm AS '(module
    (import "plwasm" "emit_bytes" (func $e (param i32 i32)))
    (memory (export "memory") 1)
    (func (export "huge_row") (call $e (i32.const 0) (i32.const 1073741824))))';
SELECT sqlstate_of('SELECT count(*) FROM prom.huge_row()') AS row_of_1gb;

-- sql-reference "WASI": a reactor's _initialize is called once per instance, before the first
-- call; the instance (and its state) is kept for the next calls.
CREATE FUNCTION prom.reactor() RETURNS int LANGUAGE wasm AS '(module
    (global $inits (mut i32) (i32.const 0))
    (global $calls (mut i32) (i32.const 0))
    (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
    (func (export "reactor") (result i32)
        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
        (i32.add (i32.mul (global.get $inits) (i32.const 100)) (global.get $calls))))';
SELECT prom.reactor() AS first_call, prom.reactor() AS second_call;

-- sql-reference "wasm.set_owner": a renamed owner no longer owns its module (superusers only);
-- a renamed role that gets its old name back owns it again.
ALTER ROLE prom_owner RENAME TO prom_renamed;
SELECT name, owner FROM wasm.modules WHERE name = 'prom_shared';
SET ROLE prom_renamed;
SELECT sqlstate_of($$SELECT wasm.load('prom_shared', wasm.wat('(module)'), true)$$) AS renamed_replaces;
RESET ROLE;
ALTER ROLE prom_renamed RENAME TO prom_owner;
SELECT name, owner FROM wasm.modules WHERE name = 'prom_shared';
-- (It passes the ownership check again: its replace now fails only because prom.wrong_sig (above)
-- would break: 2BP01, not 42501.)
SET ROLE prom_owner;
SELECT sqlstate_of($$SELECT wasm.load('prom_shared',
    wasm.wat('(module (func (export "v") (result i32) i32.const 3))'), true)$$) AS owner_again;
RESET ROLE;

-- sql-reference "LANGUAGE wasm": everything after the first colon is the export name, so export
-- names may contain colons.
SELECT wasm.load('prom_colon', wasm.wat('(module
    (func (export "a:b") (result i32) i32.const 12)
    (func (export "a") (result i32) i32.const 1))'));
CREATE FUNCTION prom.colon() RETURNS int LANGUAGE wasm AS 'prom_colon:a:b';
SELECT prom.colon() AS colon_export, export FROM wasm.functions WHERE function = 'prom.colon()'::regprocedure;

-- sql-reference "wasm.create_functions": it runs as the caller, so it needs CREATE on the schema
-- (42501, nothing created), and the functions it creates belong to the caller.
SELECT wasm.load('prom_described', wasm.wat('(module
    (@custom "plwasm.udfs" "{\"name\":\"described\",\"export\":\"f\",\"args\":[],\"returns\":\"integer\",\"volatility\":\"immutable\"}\n")
    (func (export "f") (result i32) i32.const 7))'));
CREATE SCHEMA prom_closed;
GRANT USAGE ON SCHEMA prom_closed TO prom_plain;
SET ROLE prom_plain;
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('prom_described', 'prom_closed')$$) AS without_create;
RESET ROLE;
SELECT count(*) AS created FROM pg_proc WHERE pronamespace = 'prom_closed'::regnamespace;
GRANT CREATE ON SCHEMA prom_closed TO prom_plain;
SET ROLE prom_plain;
SELECT * FROM wasm.create_functions('prom_described', 'prom_closed');
SELECT prom_closed.described() AS described;
RESET ROLE;
SELECT proowner::regrole AS created_function_owner FROM pg_proc
 WHERE pronamespace = 'prom_closed'::regnamespace;
DROP SCHEMA prom_closed CASCADE;

-- docs/sql-reference.md "Backup and restore": a missing module's ERROR carries a HINT that
-- points there (VERBOSITY default; the ERROR is intended).
\set VERBOSITY default
SELECT wasm.unload('prom_no_such_module');
\set VERBOSITY terse

DROP SCHEMA prom CASCADE;
SELECT wasm.unload('prom_shared'), wasm.unload('prom_table'), wasm.unload('prom_buffers'),
       wasm.unload('prom_colon'), wasm.unload('prom_described');
DROP ROLE prom_plain, prom_member, prom_owner;

-- What a hostile SQL user and a hostile module author can try (issue "security"). Every case
-- checks that no privilege changed, that the backend answers the next statement, and that the
-- postmaster did not restart; every wait is bounded by statement_timeout, and "stopped_promptly"
-- checks that a stop landed within seconds on the statement it was meant for.
-- The file stands alone: it creates what it uses in schema sec and drops it at the end.
CREATE SCHEMA sec;
-- The superuser running the tests (its name depends on the installation; outputs show <superuser>).
SELECT current_user AS superuser \gset
-- A crash restarts the checkpointer (pg_postmaster_start_time() survives a crash-restart).
CREATE TEMP TABLE sec_checkpointer AS
    SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer';
-- (Roles are cluster-wide: a run that died half-way may have left them.)
DROP ROLE IF EXISTS sec_plain, sec_loader, sec_gone;
DROP DATABASE IF EXISTS sec_schema_db;
CREATE ROLE sec_plain LOGIN;                    -- no privilege at all
CREATE ROLE sec_loader LOGIN IN ROLE wasm_loader;
GRANT USAGE ON SCHEMA sec TO sec_plain, sec_loader;
GRANT CREATE ON SCHEMA sec TO sec_plain, sec_loader;
SELECT wasm.load('sec_basic', wasm.wat('(module (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))'));
CREATE FUNCTION sec.add(int, int) RETURNS int LANGUAGE wasm STRICT AS 'sec_basic:add';

------------------------------------------------------------------------------------------------
-- 1. Escalation through objects the caller controls. plwasm reads and writes its catalog without
--    SQL and without switching user, so a type in pg_temp (searched first for types) or an
--    operator in the caller's schema never runs with rights the caller lacks.
SET SESSION AUTHORIZATION sec_plain;
CREATE FUNCTION pg_temp.evil(t pg_catalog.text) RETURNS boolean LANGUAGE plpgsql AS
    $f$ BEGIN EXECUTE 'ALTER ROLE sec_plain SUPERUSER'; RETURN true; END $f$;
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.evil(VALUE));
-- Binding a function to a stored module (the validator reads and locks the module's row).
CREATE FUNCTION pg_temp.x(int, int) RETURNS int LANGUAGE wasm AS 'sec_basic:add';
SELECT pg_temp.x(1, 2);
-- Calling a function over a stored module: this role's first call reads the catalog.
SELECT sec.add(20, 22);
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('sec_basic', 'sec')$$);
DROP FUNCTION pg_temp.x(int, int);
RESET SESSION AUTHORIZATION;
SELECT rolsuper AS plain_became_superuser FROM pg_roles WHERE rolname = 'sec_plain';

-- A loader that owns a schema puts an operator "=" (text, text) before pg_catalog.
CREATE SCHEMA sec_ops AUTHORIZATION sec_loader;
SET SESSION AUTHORIZATION sec_loader;
CREATE FUNCTION sec_ops.evil_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS
    $f$ BEGIN EXECUTE 'ALTER ROLE sec_loader SUPERUSER'; RETURN a OPERATOR(pg_catalog.=) b; END $f$;
CREATE OPERATOR sec_ops.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sec_ops.evil_eq);
SET search_path = sec_ops, pg_catalog;
SELECT wasm.load('sec_mine', wasm.wat('(module (func (export "one") (result i32) i32.const 1))'));
SELECT wasm.load('sec_mine', wasm.wat('(module (func (export "one") (result i32) i32.const 2))'), replace => true);
CREATE FUNCTION sec.one() RETURNS int LANGUAGE wasm AS 'sec_mine';
SELECT sec.one();
DROP FUNCTION sec.one();
SELECT wasm.unload('sec_mine');
-- Someone else's module: refused, whatever the operators say. (The owner is the superuser running
-- the tests, whose name depends on the installation; it is shown as <superuser>.)
SELECT pg_catalog.regexp_replace(e.msg, ' it belongs to .*$', ' it belongs to <superuser>') AS unload_others,
       (pg_catalog.regexp_match(e.msg, 'it belongs to (.*)$'))[1] OPERATOR(pg_catalog.=) :'superuser'
           AS names_the_owner
  FROM (SELECT public.sqlstate_of($$SELECT wasm.unload('sec_basic')$$) AS msg) e;
RESET search_path;
RESET SESSION AUTHORIZATION;
SELECT rolsuper AS loader_became_superuser FROM pg_roles WHERE rolname = 'sec_loader';
DROP SCHEMA sec_ops CASCADE;

------------------------------------------------------------------------------------------------
-- 2. Tables are capped like memory: all tables of an instance together hold at most
--    wasm.max_memory bytes (8 bytes per element). table.grow past it returns -1; a declared
--    minimum past it is refused (54000). -16 asked for 34 GB and aborted the backend.
CREATE FUNCTION sec.tg(int) RETURNS int LANGUAGE wasm AS '(module (table $t 0 funcref)
    (func (export "tg") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0))))';
SELECT sec.tg(-16) AS grow_minus_16;
SELECT sec.tg(1000) AS grow_1000;
SELECT sec.tg(8388608) AS grow_past_64mb;          -- 64 MB / 8 = 8388608 elements in all
SET wasm.max_memory = '1MB';                         -- a new instance, 131072 elements in all
SELECT sec.tg(131072) AS grow_to_budget, sec.tg(1) AS grow_past_budget;
-- Two tables share the budget: the first may take it all, the second keeps its minimum.
CREATE FUNCTION sec.tg2(int, int) RETURNS int LANGUAGE wasm AS '(module
    (table $a 0 funcref) (table $b 0 funcref)
    (func (export "tg2") (param i32 i32) (result i32)
        (i32.add (i32.mul (table.grow $a (ref.null func) (local.get 0)) (i32.const 10))
                 (table.grow $b (ref.null func) (local.get 1)))))';
SELECT sec.tg2(100000, 100000) AS a_ok_then_b_refused;   -- 0 * 10 + -1
SELECT sqlstate_of($$CREATE FUNCTION sec.bigtable() RETURNS int LANGUAGE wasm AS
    '(module (table 100000000 funcref) (func (export "bigtable") (result i32) i32.const 0))'$$);
RESET wasm.max_memory;

------------------------------------------------------------------------------------------------
-- 3 and 11. Proposals that escape a limit are refused when the module is compiled: threads
--    (a shared memory's memory.atomic.wait32 with timeout -1 blocked the backend in a futex no
--    signal ended), multi-memory (wasm.max_memory caps the one memory), memory64.
SELECT sqlstate_of($$SELECT wasm.load('sec_wait', wasm.wat('(module (memory 1 1 shared)
    (func (export "w") (result i32)
        (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('sec_mm', wasm.wat('(module (memory 1) (memory 1))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('sec_m64', wasm.wat('(module (memory i64 1))'))$$);
-- Exceptions, tail calls and relaxed SIMD are refused too (not covered by the instrumentation's
-- accounting); SIMD and extended constant expressions are accepted.
SELECT sqlstate_of($$SELECT wasm.load('sec_exn', wasm.wat('(module (tag $e))'))$$) AS exceptions;
SELECT sqlstate_of($$SELECT wasm.load('sec_tail', wasm.wat('(module (func $f (return_call $f)))'))$$) AS tail_calls;
SELECT sqlstate_of($$SELECT wasm.load('sec_rsimd', wasm.wat('(module (func (result v128)
    (f32x4.relaxed_madd (v128.const i64x2 0 0) (v128.const i64x2 0 0) (v128.const i64x2 0 0))))'))$$) AS relaxed_simd;
SELECT sqlstate_of($$SELECT wasm.load('sec_simd', wasm.wat('(module (func (result v128) (v128.const i64x2 1 2)))'))$$) AS simd;
SELECT sqlstate_of($$SELECT wasm.load('sec_xconst', wasm.wat('(module (global i32 (i32.add (i32.const 1) (i32.const 2))))'))$$) AS extended_const;
SELECT count(*) AS stored FROM wasm.modules
 WHERE name IN ('sec_wait', 'sec_mm', 'sec_m64', 'sec_exn', 'sec_tail', 'sec_rsimd');
SELECT wasm.unload('sec_simd'), wasm.unload('sec_xconst');

------------------------------------------------------------------------------------------------
-- 4. A start function runs armed like a call, and bulk instructions cost fuel by length: a loop
--    of 64 MB memory.fill ran forever during CREATE FUNCTION (1 fuel per fill, no interrupt).
--    The ERRORs below are intended: statement_timeout (57014), then the fuel limit (54000) in
--    the start function at CREATE FUNCTION and in calls.
SET statement_timeout = '300ms';
SELECT clock_timestamp() AS t0 \gset
CREATE FUNCTION sec.fill_start() RETURNS int LANGUAGE wasm AS '(module (memory 1024)
    (func $s (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 67108864)) (br $l)))
    (start $s) (func (export "fill_start") (result i32) i32.const 1))';
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS stopped_promptly;
RESET statement_timeout;
SET wasm.fuel_limit = 100000000;
CREATE FUNCTION sec.fill_start() RETURNS int LANGUAGE wasm AS '(module (memory 1024)
    (func $s (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 67108864)) (br $l)))
    (start $s) (func (export "fill_start") (result i32) i32.const 1))';
-- The same at call time, with memory.copy and table.fill.
CREATE FUNCTION sec.copy_loop() RETURNS int LANGUAGE wasm AS '(module (memory 1024)
    (func (export "copy_loop") (result i32)
        (loop $l (memory.copy (i32.const 0) (i32.const 33554432) (i32.const 33554432)) (br $l))
        i32.const 0))';
SELECT sec.copy_loop();
CREATE FUNCTION sec.tfill_loop() RETURNS int LANGUAGE wasm AS '(module (table 1000000 funcref)
    (func (export "tfill_loop") (result i32)
        (loop $l (table.fill (i32.const 0) (ref.null func) (i32.const 1000000)) (br $l))
        i32.const 0))';
SELECT sec.tfill_loop();
RESET wasm.fuel_limit;
-- A start function that finishes still runs, once, before the first call.
CREATE FUNCTION sec.started() RETURNS int LANGUAGE wasm AS '(module (global $g (mut i32) (i32.const 0))
    (func $s (global.set $g (i32.add (global.get $g) (i32.const 41)))) (start $s)
    (func (export "started") (result i32) (global.get $g)))';
SELECT sec.started();
-- What a start function does to "the current call" belongs to no call: return_null and emitted
-- rows there do not leak into the first call.
CREATE FUNCTION sec.start_rn() RETURNS int LANGUAGE wasm AS '(module
    (import "plwasm" "return_null" (func $rn)) (start $rn)
    (func (export "start_rn") (result i32) i32.const 7))';
SELECT sec.start_rn() AS not_null;
CREATE FUNCTION sec.start_emit() RETURNS SETOF int LANGUAGE wasm AS '(module
    (import "plwasm" "emit_null" (func $en)) (import "plwasm" "emit_i32" (func $emit (param i32)))
    (start $en) (func (export "start_emit") (call $emit (i32.const 5))))';
SELECT * FROM sec.start_emit();

------------------------------------------------------------------------------------------------
-- 5. WASI fd_write copies only what it keeps: 1000 iovecs of 64 MB each took 295 s in host code,
--    allocating and copying every byte.
SET statement_timeout = '20s';
CREATE FUNCTION sec.flood(int) RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1024)
    (func (export "flood") (param $n i32) (result i32) (local $i i32)
        (memory.fill (i32.const 16384) (i32.const 120) (i32.const 1048576))
        (loop $l
            (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 16384))
            (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4))
                       (i32.const 67092480))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (call $w (i32.const 1) (i32.const 0) (local.get $n) (i32.const 65536))))';
SELECT clock_timestamp() AS t0 \gset
SELECT sec.flood(1000) AS errno_1000_iovecs;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS stopped_promptly;
SELECT sec.flood(5000) AS errno_5000_iovecs;      -- EINVAL (28): more than IOV_MAX
RESET statement_timeout;

------------------------------------------------------------------------------------------------
-- 6. Compiling runs on a worker thread while the backend keeps serving interrupts: 400000 nested
--    blocks compile for over a second (release build); statement_timeout stops the CREATE
--    promptly (the ERROR below is intended) and is not left over for the next statement
--    (signals were blocked while compiling, so a timeout cancelled whatever ran next).
SET statement_timeout = '300ms';
SELECT clock_timestamp() AS t0 \gset
DO $$ BEGIN EXECUTE format('CREATE FUNCTION sec.deep() RETURNS void LANGUAGE wasm AS %L',
    '(module (func (export "deep") ' || repeat('(block ', 400000) || repeat(')', 400000) || '))'); END $$;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS stopped_promptly;
RESET statement_timeout;
SELECT pg_sleep(0.5);
SELECT 'the next statement runs' AS after_timeout;
-- An abandoned compile may still hold the engine; a new instance (here: a new memory cap) waits
-- for it interruptibly instead of blocking where no cancel reaches (it hung past terminate).
SET statement_timeout = '60s';
SET wasm.max_memory = '32MB';
SELECT sec.add(2, 3) AS new_instance_after_abandoned_compile;
RESET wasm.max_memory;
RESET statement_timeout;
-- Inline modules are capped like loaded ones (wasm.max_module_size, checked before parsing).
SET wasm.max_module_size = 100;
SELECT sqlstate_of(format('CREATE FUNCTION sec.big() RETURNS int LANGUAGE wasm AS %L',
    '(module (func (export "big") (result i32) i32.const 1) ' || repeat(' ', 200) || ')'));
RESET wasm.max_module_size;

------------------------------------------------------------------------------------------------
-- 9. Unload and replace see a function bound while they waited, under REPEATABLE READ too: they
--    wait for the binding transaction's lock on the module's name, then list bound functions
--    from the latest committed catalog, not from their transaction's old snapshot. The unload's
--    2BP01 and the replace's 2BP01 below are the intended outcome: each saw the new function.
CREATE FUNCTION sec.wait_for_lock_waiter() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1000 LOOP
        IF EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'object') THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT wasm.load('sec_pin', wasm.wat('(module (func (export "one") (result i32) i32.const 1))'));
SELECT dblink_connect('sec_other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));
SELECT dblink_exec('sec_other', 'SET statement_timeout = ''20s''');
SELECT dblink_exec('sec_other', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT * FROM dblink('sec_other', 'SELECT 1') AS t(snapshot_taken int);
BEGIN;
CREATE FUNCTION sec.pinned() RETURNS int LANGUAGE wasm AS 'sec_pin:one';
SELECT dblink_send_query('sec_other', 'SELECT wasm.unload(''sec_pin'')');
SELECT sec.wait_for_lock_waiter() AS unload_waits;
COMMIT;
SELECT * FROM dblink_get_result('sec_other') AS t(r text);
SELECT * FROM dblink_get_result('sec_other') AS t(r text);
SELECT dblink_exec('sec_other', 'ROLLBACK');
SELECT sec.pinned() AS still_bound;
DROP FUNCTION sec.pinned();
-- The same for a replace that would break the new function.
SELECT dblink_exec('sec_other', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT * FROM dblink('sec_other', 'SELECT 1') AS t(snapshot_taken int);
BEGIN;
CREATE FUNCTION sec.pinned2() RETURNS int LANGUAGE wasm AS 'sec_pin:one';
SELECT dblink_send_query('sec_other',
    'SELECT wasm.load(''sec_pin'', wasm.wat(''(module (func (export "two") (result i32) i32.const 2))''), true)');
SELECT sec.wait_for_lock_waiter() AS replace_waits;
COMMIT;
SELECT * FROM dblink_get_result('sec_other') AS t(r text);
SELECT * FROM dblink_get_result('sec_other') AS t(r text);
SELECT dblink_exec('sec_other', 'ROLLBACK');
SELECT sec.pinned2() AS still_works;
SELECT dblink_disconnect('sec_other');
DROP FUNCTION sec.pinned2();

------------------------------------------------------------------------------------------------
-- 10. Pinning: only functions in permanent schemas keep a module from being unloaded or replaced.
--     A temporary function (which any role can create, and only its session can drop) bound to
--     another role's module no longer blocks its owner; it fails at its next call instead.
SET SESSION AUTHORIZATION sec_loader;
SELECT wasm.load('sec_pinme', wasm.wat('(module (func (export "one") (result i32) i32.const 1))'));
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION sec_plain;
CREATE FUNCTION pg_temp.pin() RETURNS int LANGUAGE wasm AS 'sec_pinme:one';
SELECT pg_temp.pin() AS temp_function_works;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION sec_loader;
SELECT wasm.unload('sec_pinme');
RESET SESSION AUTHORIZATION;
SELECT sqlstate_of('SELECT pg_temp.pin()');
-- A loader outside the role of a function that already names an unused module name (one created
-- while function bodies were not checked, as pg_restore does) cannot claim that name: that
-- function would run its code (42501, intended). The function's own role, or a superuser, can.
-- Temporary functions neither pin a module nor reserve its name: the loader may load sec_pinme
-- again although sec_plain's pg_temp.pin() names it.
SET SESSION AUTHORIZATION sec_loader;
SELECT wasm.load('sec_pinme', wasm.wat('(module (func (export "one") (result i32) i32.const 1))'));
SELECT wasm.unload('sec_pinme');
RESET SESSION AUTHORIZATION;
SET check_function_bodies = off;
SET SESSION AUTHORIZATION sec_plain;
CREATE FUNCTION sec.late() RETURNS int LANGUAGE wasm AS 'sec_late:one';
RESET SESSION AUTHORIZATION;
RESET check_function_bodies;
SET SESSION AUTHORIZATION sec_loader;
SELECT sqlstate_of($$SELECT wasm.load('sec_late',
    wasm.wat('(module (func (export "one") (result i32) i32.const 666))'))$$) AS claim_a_named_name;
RESET SESSION AUTHORIZATION;
SELECT wasm.load('sec_late', wasm.wat('(module (func (export "one") (result i32) i32.const 7))'));
SELECT sec.late() AS loaded_by_a_superuser;
DROP FUNCTION sec.late();
SELECT wasm.unload('sec_late');
-- A loader may claim a name that only its own functions use.
SET check_function_bodies = off;
SET SESSION AUTHORIZATION sec_loader;
CREATE FUNCTION sec.own_late() RETURNS int LANGUAGE wasm AS 'sec_own_late:one';
SELECT wasm.load('sec_own_late', wasm.wat('(module (func (export "one") (result i32) i32.const 8))'));
SELECT sec.own_late() AS loaded_by_its_own_role;
DROP FUNCTION sec.own_late();
SELECT wasm.unload('sec_own_late');
RESET SESSION AUTHORIZATION;
RESET check_function_bodies;
DROP FUNCTION pg_temp.pin();
-- 8. The owner is a role reference: dumped (COPY, as pg_dump does) by name, not by OID.
SET SESSION AUTHORIZATION sec_loader;
SELECT wasm.load('sec_owned', wasm.wat('(module)'));
RESET SESSION AUTHORIZATION;
SELECT pg_typeof(owner) AS owner_type FROM wasm.module_store WHERE name = 'sec_owned';
COPY (SELECT name, owner FROM wasm.module_store WHERE name = 'sec_owned') TO STDOUT;
SELECT wasm.unload('sec_owned');

-- A dropped owner leaves its module without an owner (superusers only). pg_dump writes such an
-- owner as a bare OID, which a restore maps to whichever role has that OID there; the owner's
-- recorded name keeps that role from becoming the owner. (The UPDATE does what such a restore
-- does.) A superuser gives the module an owner with wasm.set_owner.
CREATE ROLE sec_gone LOGIN IN ROLE wasm_loader;
SET SESSION AUTHORIZATION sec_gone;
SELECT wasm.load('sec_orphan', wasm.wat('(module)'));
RESET SESSION AUTHORIZATION;
DROP ROLE sec_gone;
SELECT owner IS NULL AS ownerless FROM wasm.modules WHERE name = 'sec_orphan';
UPDATE wasm.module_store SET owner = 'sec_loader'::regrole WHERE name = 'sec_orphan';
SELECT owner IS NULL AS still_ownerless FROM wasm.modules WHERE name = 'sec_orphan';
SET SESSION AUTHORIZATION sec_loader;
SELECT sqlstate_of($$SELECT wasm.unload('sec_orphan')$$);
SELECT sqlstate_of($$SELECT wasm.set_owner('sec_orphan', 'sec_loader'::regrole)$$);
RESET SESSION AUTHORIZATION;
SELECT sqlstate_of($$SELECT wasm.set_owner('sec_orphan', 0)$$);   -- not a role
SELECT wasm.set_owner('sec_orphan', 'sec_loader'::regrole);
SELECT owner FROM wasm.modules WHERE name = 'sec_orphan';
SET SESSION AUTHORIZATION sec_loader;
SELECT wasm.unload('sec_orphan');
RESET SESSION AUTHORIZATION;

------------------------------------------------------------------------------------------------
-- 13, 14. Errors carry the SQLSTATE Postgres would use, never XX000.
-- statement_timeout during _initialize: 57014, as anywhere else (was 38000); the ERROR below is
-- intended.
SET statement_timeout = '300ms';
CREATE FUNCTION sec.init_spin() RETURNS int LANGUAGE wasm AS
    '(module (func (export "_initialize") (loop $l (br $l)))
             (func (export "init_spin") (result i32) i32.const 1))';
RESET statement_timeout;
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions(NULL)$$);
SET search_path = '';
SELECT public.sqlstate_of($$SELECT * FROM wasm.create_functions('sec_basic')$$);
RESET search_path;
-- A description whose names carry NUL: 22023, nothing created.
SELECT wasm.load('sec_nul', wasm.wat('(module
    (@custom "plwasm.udfs" "{\"name\":\"a\00b\",\"export\":\"f\",\"args\":[],\"returns\":\"integer\",\"volatility\":\"immutable\"}\n")
    (func (export "f") (result i32) i32.const 1))'));
SELECT sqlstate_of($$SELECT * FROM wasm.create_functions('sec_nul', 'sec')$$);
-- No host backtrace reaches a client, although this server runs with RUST_BACKTRACE=1 (see
-- tests/regress.sh): a Postgres error raised inside plwasm's Rust code (CREATE FUNCTION run by
-- wasm.create_functions, a second time: the intended 42723 ERROR below) keeps its own message
-- and no DETAIL.
SELECT wasm.load('sec_desc', wasm.wat('(module
    (@custom "plwasm.udfs" "{\"name\":\"described\",\"export\":\"f\",\"args\":[],\"returns\":\"integer\",\"volatility\":\"immutable\"}\n")
    (func (export "f") (result i32) i32.const 7))'));
SELECT * FROM wasm.create_functions('sec_desc', 'sec');
\set VERBOSITY default
SELECT * FROM wasm.create_functions('sec_desc', 'sec');
\set VERBOSITY terse
SELECT sec.described();
-- NUL bytes a module prints or logs reach the client as U+FFFD, not as an internal error.
CREATE FUNCTION sec.nul_out() RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
    (import "plwasm" "log" (func $log (param i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 100) "a\00b\n")
    (data (i32.const 0) "\64\00\00\00\04\00\00\00")
    (func (export "nul_out") (result i32)
        (call $log (i32.const 4) (i32.const 100) (i32.const 3))
        (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))';
SET client_min_messages = notice;
SELECT sec.nul_out();
RESET client_min_messages;
-- proc_exit(0) in a set-returning function ends the set: the rows emitted so far are its result.
CREATE FUNCTION sec.two_then_exit() RETURNS SETOF int LANGUAGE wasm AS '(module
    (import "plwasm" "emit_i32" (func $emit (param i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (func (export "two_then_exit") (call $emit (i32.const 1)) (call $emit (i32.const 2))
        (call $exit (i32.const 0))))';
SELECT * FROM sec.two_then_exit();

-- 12. Rows of a set-returning call go to a tuplestore as they are emitted (memory context
--     "plwasm SETOF rows": work_mem in memory, then temporary files), not to host memory: 10
--     million empty rows took ~385 MB of Rust heap. Postgres's own limits apply, and an ERROR
--     raised while a row is stored (here temp_file_limit: the intended ERROR below) ends the call
--     cleanly.
CREATE FUNCTION sec.many(int) RETURNS SETOF int LANGUAGE wasm AS '(module
    (import "plwasm" "emit_i32" (func $emit (param i32)))
    (func (export "many") (param $n i32) (local $i i32)
        (loop $l (call $emit (local.get $i))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_s (local.get $i) (local.get $n))))))';
SET work_mem = '64kB';
SELECT count(*), sum(n) FROM sec.many(300000) AS n;   -- spills past work_mem
SET temp_file_limit = '1MB';
SELECT count(*) FROM sec.many(2000000);
RESET temp_file_limit;
RESET work_mem;
SELECT count(*) AS after_error FROM sec.many(10);

------------------------------------------------------------------------------------------------
-- 15. plwasm.log keeps at most 1000 messages or 64 kB per call (1000 messages of 8 kB wrote
--     8 MB to the server log per call); the rest are counted, not read.
CREATE FUNCTION sec.chatty() RETURNS int LANGUAGE wasm AS '(module
    (import "plwasm" "log" (func $log (param i32 i32 i32)))
    (memory (export "memory") 1)
    (func (export "chatty") (result i32) (local $i i32)
        (loop $l
            (call $log (i32.const 0) (i32.const 0) (i32.const 8192))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
        (local.get $i)))';
SET client_min_messages = notice;
SELECT sec.chatty();
RESET client_min_messages;

------------------------------------------------------------------------------------------------
-- 16. plwasm's own tables cannot be stood in for. A schema `wasm` that a non-superuser owns
--     before CREATE EXTENSION is refused (42501): its owner could rename it and create look-alike
--     tables. And plwasm finds its tables in the extension's schema (pg_extension.extnamespace),
--     not by the name `wasm`: with the real schema renamed and a look-alike `wasm.module_store`
--     holding other code under the same name, the function still runs the loaded module.
CREATE DATABASE sec_schema_db OWNER sec_plain;
SELECT dblink_connect('sec_schema', format('dbname=sec_schema_db port=%s host=%s user=%s',
       current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1),
       current_user));
SELECT dblink_exec('sec_schema', 'SET ROLE sec_plain');
SELECT dblink_exec('sec_schema', 'CREATE SCHEMA wasm');
SELECT dblink_exec('sec_schema', 'RESET ROLE');
SELECT dblink_exec('sec_schema', 'CREATE EXTENSION plwasm', false) AS create_extension,
       dblink_error_message('sec_schema') AS message;
SELECT * FROM dblink('sec_schema', $$SELECT count(*) FROM pg_extension WHERE extname = 'plwasm'$$)
    AS t(extensions bigint);
SELECT dblink_disconnect('sec_schema');
DROP DATABASE sec_schema_db;

SELECT wasm.load('sec_real', wasm.wat('(module (func (export "v") (result i32) i32.const 1))'));
SET check_function_bodies = off;      -- bound without a call, so nothing is cached yet
CREATE FUNCTION sec.real_v() RETURNS int LANGUAGE wasm AS 'sec_real:v';
RESET check_function_bodies;
BEGIN;
ALTER SCHEMA wasm RENAME TO wasm_real;
CREATE SCHEMA wasm;
CREATE TABLE wasm.module_store (LIKE wasm_real.module_store);
ALTER TABLE wasm.module_store ADD PRIMARY KEY (name);
INSERT INTO wasm.module_store
SELECT 'sec_real', owner, m, encode(sha256(m), 'hex'), exports, now(), owner_name
  FROM wasm_real.module_store, wasm_real.wat('(module (func (export "v") (result i32) i32.const 666))') AS m
 WHERE name = 'sec_real';
SELECT sec.real_v() AS runs_the_loaded_module;
ROLLBACK;
DROP FUNCTION sec.real_v();

------------------------------------------------------------------------------------------------
-- After all of it: the backend answers, no role gained anything, the postmaster did not restart.
SELECT sec.add(1, 1) AS still_answering;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN ('sec_plain', 'sec_loader') ORDER BY 1;
SELECT (SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer') = pid
    AS postmaster_not_restarted FROM sec_checkpointer;
DROP SCHEMA sec CASCADE;
SELECT wasm.unload(name) FROM wasm.modules WHERE name LIKE 'sec\_%' ORDER BY name;
DROP OWNED BY sec_plain, sec_loader;
DROP ROLE sec_plain, sec_loader;

-- Read-only queries from wasm (plwasm.query and its cursors), for modules given the query
-- capability. A query runs as the calling role in a read-only subtransaction; its ERRORs reach
-- SQL with their own SQLSTATE after the wasm call returned, and the backend lives on.
SET client_min_messages = warning;
DROP ROLE IF EXISTS query_loader, query_granter, query_user;
SET client_min_messages = notice;
CREATE TEMP TABLE qry_src AS SELECT $wat$(module
  (import "plwasm" "query" (func $query (param i32 i32 i32 i32) (result i32)))
  (import "plwasm" "query_read" (func $read (param i32 i32) (result i32)))
  (import "plwasm" "cursor_open" (func $open (param i32 i32 i32 i32) (result i32)))
  (import "plwasm" "cursor_fetch" (func $fetch (param i32 i32) (result i32)))
  (import "plwasm" "cursor_close" (func $close (param i32)))
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 65536))
  ;; A bump allocator; plwasm_free (called after each call) starts it over.
  (func $alloc (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32) (local $end i32)
    (local.set $p (global.get $next))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                  (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
                  (i32.const 0)) (then (return (i32.const 0))))))
    (global.set $next (local.get $end))
    (local.get $p))
  (func (export "plwasm_free") (param i32 i32) (global.set $next (i32.const 65536)))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  ;; The pending result of the last query or fetch, copied into fresh memory: (ptr, len).
  (func $take (param $n i32) (result i64) (local $buf i32)
    (local.set $buf (call $alloc (local.get $n)))
    (drop (call $read (local.get $buf) (local.get $n)))
    (call $pack (local.get $buf) (local.get $n)))
  ;; q(sql, params) -> text: the rows of one query.
  (func $q (export "q") (param $s i32) (param $sn i32) (param $p i32) (param $pn i32) (result i64)
    (call $take (call $query (local.get $s) (local.get $sn) (local.get $p) (local.get $pn))))
  ;; c(sql, params, rows) -> text: the batches of a cursor, one per line.
  (func (export "c") (param $s i32) (param $sn i32) (param $p i32) (param $pn i32) (param $rows i32)
    (result i64) (local $h i32) (local $n i32) (local $start i32) (local $nl i32)
    (local.set $h (call $open (local.get $s) (local.get $sn) (local.get $p) (local.get $pn)))
    (local.set $start (global.get $next))
    (block $done (loop $more
      (local.set $n (call $fetch (local.get $h) (local.get $rows)))
      (br_if $done (i32.eq (local.get $n) (i32.const 2)))
      (drop (call $take (local.get $n)))
      (local.set $nl (call $alloc (i32.const 1)))
      (i32.store8 (local.get $nl) (i32.const 10))
      (br $more)))
    (call $close (local.get $h))
    (call $pack (local.get $start) (i32.sub (global.get $next) (local.get $start))))
  ;; c_open(sql, rows) -> text: the first batch of a cursor it leaves open.
  (func (export "c_open") (param $s i32) (param $sn i32) (param $rows i32) (result i64)
    (call $take (call $fetch (call $open (local.get $s) (local.get $sn) (i32.const 0) (i32.const 0))
                             (local.get $rows))))
  ;; c_bad(handle) -> int: fetch from a handle that is not an open cursor.
  (func (export "c_bad") (param $h i32) (result i32) (call $fetch (local.get $h) (i32.const 1)))
  ;; c_rows(sql, rows) -> int: fetch with a row count that may be out of range.
  (func (export "c_rows") (param $s i32) (param $sn i32) (param $rows i32) (result i32)
    (call $fetch (call $open (local.get $s) (local.get $sn) (i32.const 0) (i32.const 0)) (local.get $rows)))
  ;; deep(n, sql) -> text: recurse n frames deep in wasm, then query.
  (func $deep (export "deep") (param $n i32) (param $s i32) (param $sn i32) (result i64)
    (if (result i64) (i32.gt_s (local.get $n) (i32.const 0))
      (then (call $deep (i32.sub (local.get $n) (i32.const 1)) (local.get $s) (local.get $sn)))
      (else (call $q (local.get $s) (local.get $sn) (i32.const 0) (i32.const 0)))))
  ;; spin_after(sql) -> int: query, then loop forever (only a cancel or timeout ends it).
  (func (export "spin_after") (param $s i32) (param $sn i32) (result i32)
    (drop (call $query (local.get $s) (local.get $sn) (i32.const 0) (i32.const 0)))
    (loop $l (br $l))
    (i32.const 0))
  ;; bad_sql() -> int: a query that is not in the module memory.
  (func (export "bad_sql") (result i32)
    (call $query (i32.const -16) (i32.const 64) (i32.const 0) (i32.const 0))))$wat$ AS wat;
SELECT wasm.load('qry', wasm.wat(wat)) FROM qry_src;
SELECT wasm.load('qry2', wasm.wat(wat)) FROM qry_src;
CREATE FUNCTION q(sql text, params text DEFAULT '') RETURNS text LANGUAGE wasm AS 'qry:q';
CREATE FUNCTION q_stable(sql text, params text DEFAULT '') RETURNS text STABLE LANGUAGE wasm AS 'qry:q';
CREATE FUNCTION q2(sql text, params text DEFAULT '') RETURNS text LANGUAGE wasm AS 'qry2:q';
CREATE FUNCTION c(sql text, params text, rows int) RETURNS text LANGUAGE wasm AS 'qry:c';
CREATE FUNCTION c_open(sql text, rows int) RETURNS text LANGUAGE wasm AS 'qry:c_open';
CREATE FUNCTION c_bad(handle int) RETURNS int LANGUAGE wasm AS 'qry:c_bad';
CREATE FUNCTION c_rows(sql text, rows int) RETURNS int LANGUAGE wasm AS 'qry:c_rows';
CREATE FUNCTION deep(n int, sql text) RETURNS text LANGUAGE wasm AS 'qry:deep';
CREATE FUNCTION spin_after(sql text) RETURNS int LANGUAGE wasm AS 'qry:spin_after';
CREATE FUNCTION bad_sql() RETURNS int LANGUAGE wasm AS 'qry:bad_sql';

-- The capability is off by default: the module asked (it imports plwasm.query), nobody allowed.
SELECT q('SELECT 1 AS one');
SELECT * FROM wasm.module_capabilities;
-- Only superusers and members of wasm_capabilities may give it; a loader may not.
CREATE ROLE query_loader IN ROLE wasm_loader;
CREATE ROLE query_granter IN ROLE wasm_capabilities;
SET ROLE query_loader;
SELECT wasm.set_capabilities('qry', '{query}');
RESET ROLE;
SELECT wasm.set_capabilities('qry', '{query, spy}');
SELECT wasm.set_capabilities('qry', '{NULL}');
SELECT wasm.set_capabilities('nope', '{query}');
SET ROLE query_granter;
SELECT wasm.set_capabilities('qry', '{query,query}');
RESET ROLE;
-- Setting what a module already has changes nothing, not even who gave it (the owner may not
-- put its own name on the record).
SELECT wasm.set_capabilities('qry', '{query}');
SELECT wasm.set_capabilities('qry2', '{query}');
SELECT name, capabilities, granted_by FROM wasm.module_capabilities ORDER BY name;

-- Rows come back as a JSON array of objects (row_to_json); parameters are a JSON array typed by
-- kind: null a NULL text, booleans boolean, integers bigint, other numbers numeric, strings
-- text, arrays and objects jsonb.
SELECT q('SELECT 1 AS one, ''x'' AS two');
SELECT q('SELECT g, g * 1.5 AS half_again, NULL AS nothing FROM generate_series(1, 3) g');
SELECT q('SELECT 1 WHERE false');
SELECT q('SELECT $1 + 1 AS n, $2 AS s, $3 * 2 AS x, $4::int IS NULL AS null_, $5 -> ''k'' AS j, NOT $6 AS b',
         '[41, "t", 0.25, null, {"k": [1, "two"]}, true]');
SELECT q('SELECT pg_typeof($1) AS a, pg_typeof($2) AS b, pg_typeof($3) AS c, pg_typeof($4) AS d, pg_typeof($5) AS e',
         '[1, 1.5, "s", true, []]');
SELECT q('VALUES (1, ''a''), (2, ''b'')'), q('TABLE wasm.module_capabilities LIMIT 0');
CREATE TABLE q_items (id int PRIMARY KEY, name text, price numeric, made date);
INSERT INTO q_items VALUES (1, 'bolt', 0.10, '2026-01-02'), (2, 'nut', 0.05, NULL);
SELECT q('SELECT * FROM q_items WHERE id = $1', '[2]'), q('SELECT i FROM q_items i ORDER BY id');
-- Bad parameter lists.
SELECT q('SELECT $1', '{"a": 1}');
SELECT q('SELECT $1', '[1');
SELECT q('SELECT $1', '["nul\u0000"]');
SELECT q('SELECT $1');

-- Read-only: one SELECT, VALUES or TABLE statement; writes are refused whatever path they take.
SELECT q('INSERT INTO q_items VALUES (3, ''washer'', 0.01, NULL) RETURNING id');
SELECT q('DELETE FROM q_items');
SELECT q('CREATE TABLE q_sneaky (x int)');
SELECT q('SET work_mem = ''1GB''');
SELECT q('SELECT 1; SELECT 2');
SELECT q('WITH gone AS (DELETE FROM q_items RETURNING *) SELECT count(*) FROM gone');
SELECT q_stable('WITH gone AS (DELETE FROM q_items RETURNING *) SELECT count(*) FROM gone');
SELECT q('SELECT * FROM q_items FOR UPDATE');
CREATE SEQUENCE q_seq;
SELECT q('SELECT nextval(''q_seq'')');
CREATE FUNCTION q_writer() RETURNS int LANGUAGE plpgsql AS $$
BEGIN INSERT INTO q_items VALUES (9, 'sneaky', 0, NULL); RETURN 1; END $$;
SELECT q('SELECT q_writer()');
SELECT count(*) AS items_still FROM q_items;

-- ERRORs inside queries reach SQL with their own SQLSTATE, message and a detail naming the
-- function; the backend lives on.
\set VERBOSITY default
SELECT q('SELEC 1');
SELECT q('SELECT 1 / $1', '[0]');
SELECT q('SELECT * FROM q_no_such_table');
\set VERBOSITY terse
SELECT sqlstate_of($$SELECT q('SELEC 1')$$) AS syntax,
       sqlstate_of($$SELECT q('SELECT 1 / 0')$$) AS division,
       sqlstate_of($$SELECT q('SELECT 32767::int2 + 1::int2')$$) AS out_of_range;
SELECT sqlstate_of($$SELECT q('SELECT (''{"a":'' || $1)::jsonb', '["1"]')$$) AS bad_json;
SELECT 'alive' AS backend;
-- The guest cannot go on after an ERROR: the call ends, even when the caller catches it.
DO $$
BEGIN
    PERFORM q('SELECT 1 / 0');
EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught %', SQLSTATE;
END $$;
SELECT q('SELECT count(*) FROM q_items');
-- A pointer outside the module's memory.
SELECT bad_sql();

-- As the calling role: a role without SELECT on the table is refused (42501); a SECURITY
-- DEFINER function queries as its owner.
CREATE ROLE query_user;
GRANT SELECT ON q_items TO query_loader;
CREATE FUNCTION q_definer(sql text, params text DEFAULT '') RETURNS text LANGUAGE wasm SECURITY DEFINER AS 'qry:q';
SET ROLE query_user;
SELECT q('SELECT current_user AS who');
SELECT q('SELECT count(*) FROM q_items');
SELECT sqlstate_of($$SELECT q('SELECT count(*) FROM q_items')$$) AS permission;
SELECT q_definer('SELECT current_user AS who, count(*) AS items FROM q_items');
RESET ROLE;

-- Cursors: batches of rows; a cursor left open is closed when the call ends.
SELECT c('SELECT g FROM generate_series(1, 5) g', '', 2);
SELECT c('SELECT g FROM generate_series(1, $1) g WHERE g % 2 = 0', '[7]', 10);
BEGIN;
SELECT c_open('SELECT g FROM generate_series(1, 5) g', 3), c_open('SELECT 1 AS one', 1);
SELECT count(*) AS open_cursors FROM pg_cursors;
COMMIT;
SELECT c_bad(0), c_bad(-1);
SELECT c_rows('SELECT 1', 0);
SELECT c_rows('SELECT 1', 1000000);
SELECT c('INSERT INTO q_items VALUES (4, ''x'', 0, NULL) RETURNING id', '', 1);

-- A column of a type with a user's cast to json is refused: row_to_json would run the type's
-- owner's code as the caller. As text it is fine.
CREATE TYPE q_mood AS ENUM ('ok');
CREATE FUNCTION q_mood_json(q_mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'the cast ran as %', current_user; RETURN to_json($1::text); END $$;
CREATE CAST (q_mood AS json) WITH FUNCTION q_mood_json(q_mood);
CREATE TABLE q_moods (m q_mood, ms q_mood[]);
INSERT INTO q_moods VALUES ('ok', '{ok}');
SELECT q('SELECT m FROM q_moods');
SELECT q('SELECT ms FROM q_moods');
SELECT q('SELECT t FROM q_moods t');
SELECT q('SELECT m::text, ms::text[] FROM q_moods');
DROP TABLE q_moods;
DROP CAST (q_mood AS json);
DROP FUNCTION q_mood_json(q_mood);
DROP TYPE q_mood;

-- An ERROR while the query's subtransaction commits (postgres_fdw releasing its remote savepoint
-- on a connection that died) is caught like any other: the session is not left in a broken
-- transaction, and a caller's exception block rolls back its own work.
CREATE EXTENSION postgres_fdw;
DO $$ BEGIN
    EXECUTE format('CREATE SERVER q_loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L, application_name %L)',
        split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
        current_database(), 'q_loop');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER q_loop;
CREATE TABLE q_remote (a int);
CREATE FOREIGN TABLE q_foreign (a int) SERVER q_loop OPTIONS (table_name 'q_remote');
CREATE FUNCTION q_touch_and_kill() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
    SELECT count(*) INTO n FROM q_foreign;
    PERFORM pg_terminate_backend(pid, 5000) FROM pg_stat_activity
      WHERE application_name = 'q_loop' AND pid <> pg_backend_pid();
    RETURN n;
END $$;
CREATE TABLE q_log (a int);
BEGIN;
INSERT INTO q_log VALUES (1);
DO $$ BEGIN
    BEGIN
        INSERT INTO q_log VALUES (2);
        PERFORM q('SELECT q_touch_and_kill() AS n');
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'caught %', SQLSTATE;
    END;
    INSERT INTO q_log VALUES (3);
END $$;
SELECT array_agg(a ORDER BY a) AS kept FROM q_log;
ROLLBACK;
SELECT 'not in a broken transaction' AS session;
DROP TABLE q_log;
DROP FOREIGN TABLE q_foreign;
DROP TABLE q_remote;
DROP FUNCTION q_touch_and_kill();
DROP USER MAPPING FOR CURRENT_USER SERVER q_loop;
DROP SERVER q_loop;
DROP EXTENSION postgres_fdw;

-- A result larger than the module's memory may be is refused before it is copied (54000).
SET wasm.max_memory = '2MB';
SELECT length(q('SELECT repeat(''x'', 1000) FROM generate_series(1, 100)'));
SELECT q('SELECT repeat(''x'', 1000) FROM generate_series(1, 3000)');
SELECT length(c('SELECT repeat(''x'', 1000) FROM generate_series(1, 3000)', '', 1000)) AS by_cursor;
RESET wasm.max_memory;

-- Triggers query too: an AFTER trigger of a VOLATILE function sees the row its statement wrote.
CREATE FUNCTION q_trigger_show() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'trigger sees %', q('SELECT count(*) AS n FROM q_items');
    RETURN NULL;
END $$;
CREATE TRIGGER q_after AFTER INSERT ON q_items FOR EACH ROW EXECUTE FUNCTION q_trigger_show();
INSERT INTO q_items VALUES (5, 'gear', 2.5, NULL);
DROP TRIGGER q_after ON q_items;

-- Recursion through SQL: a query may call another module's function, which may query in turn;
-- a module already running in this backend is not re-entered (55000).
SELECT q('SELECT q2(''SELECT 2 AS inner_one'') AS outer_one');
SELECT q('SELECT q(''SELECT 1'')');
SELECT sqlstate_of($$SELECT q('SELECT q2(''SELECT q(''''SELECT 1'''')'')')$$) AS reentered;
-- Deep wasm recursion, then a query: the query runs on the backend's own stack.
SELECT deep(5000, 'SELECT 1 AS one');
-- A query that recurses too deeply for Postgres's stack is Postgres's own error (54001).
CREATE FUNCTION q_recurse(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN RETURN q_recurse(n + 1); END $$;
SELECT sqlstate_of($$SELECT deep(5000, 'SELECT q_recurse(1)')$$) AS too_deep;
SELECT 'alive' AS backend;

-- statement_timeout during a long query, and during wasm after a query that called wasm.
SET statement_timeout = '300ms';
SELECT q('SELECT pg_sleep(10)');
SELECT spin_after('SELECT q2(''SELECT 1'')');
RESET statement_timeout;
-- A cancel from another session during a long query.
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));
SELECT dblink_exec('other', 'SET statement_timeout = ''20s''');
SELECT dblink_send_query('other', 'SELECT q(''SELECT pg_sleep(15)'') /* cancel me */');
SELECT pg_cancel_backend(wait_running('SELECT q(''SELECT pg_sleep(15)'') /* cancel me */', 'Timeout'));
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT * FROM dblink('other', 'SELECT q(''SELECT 42 AS still_usable'')') AS t(r text);
SELECT dblink_disconnect('other');

-- In a parallel worker a query cannot start a subtransaction: a clear ERROR.
CREATE FUNCTION q_parallel(sql text, params text DEFAULT '') RETURNS text LANGUAGE wasm PARALLEL SAFE AS 'qry:q';
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SELECT q_parallel('SELECT 1') FROM q_items LIMIT 1;
RESET force_parallel_mode;
RESET parallel_setup_cost;

-- The owner may take the capability away; the next call is refused again. An unload forgets it.
SELECT wasm.set_capabilities('qry', '{}');
SELECT q('SELECT 1');
SELECT wasm.unload('qry2', cascade => true);
SELECT name FROM wasm.module_capabilities;
-- An inline module has no capabilities.
DO $$
BEGIN
    EXECUTE format('CREATE FUNCTION pg_temp.q(sql text, params text DEFAULT %L) RETURNS text LANGUAGE wasm AS %L',
                   '', (SELECT wat FROM qry_src));
END $$;
SELECT pg_temp.q('SELECT 1');
DROP FUNCTION pg_temp.q(text, text);

DROP TABLE q_items;
DROP SEQUENCE q_seq;
DROP FUNCTION q_writer(), q_recurse(int), q_trigger_show();
SELECT wasm.unload('qry', cascade => true);
DROP ROLE query_loader, query_granter, query_user;

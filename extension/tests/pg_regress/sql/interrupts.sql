-- pg_cancel_backend and pg_terminate_backend from another session stop a wasm loop; the
-- postmaster does not restart. The other session is a dblink connection; every wait is bounded.
SELECT wasm.load('spinner', wasm.wat('(module (func (export "spin") (result i32) (loop $l (br $l)) i32.const 0)
    (func (export "ready") (result i32) i32.const 1))'));
CREATE FUNCTION spin() RETURNS int LANGUAGE wasm AS 'spinner';
CREATE FUNCTION spinner_ready() RETURNS int LANGUAGE wasm AS 'spinner:ready';
CREATE TEMP TABLE postmaster AS SELECT pg_postmaster_start_time() AS started;

-- wait_running(query_like, wait_event_type) is in setup.sql. The spinner's module is compiled
-- and instantiated beforehand (below), so spin() is then inside the wasm loop: not in parsing or
-- planning, and not waiting for a compile (which shows as wait_event_type "Extension", see the
-- last case).

SELECT dblink_connect('other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));
-- A safety net: the other session gives up after 20 s whatever happens.
SELECT dblink_exec('other', 'SET statement_timeout = ''20s''');
-- Compile and instantiate the module in the other session first, so that the cancel below
-- lands while spin() runs wasm (a cancel during the compile would also be 57014, but would not
-- exercise the interrupt of running code).
SELECT * FROM dblink('other', 'SELECT spinner_ready()') AS t(ready int);

-- Cancel.
SELECT dblink_send_query('other', 'SELECT spin() /* cancel me */');
SELECT pg_cancel_backend(wait_running('SELECT spin() /* cancel me */'));
-- The other session's statement failed with Postgres's own cancel error (57014); then the
-- connection is free again.
SELECT * FROM dblink_get_result('other') AS t(r int);
SELECT * FROM dblink_get_result('other') AS t(r int);
SELECT * FROM dblink('other', 'SELECT 42') AS t(still_usable int);

-- Terminate: the backend exits normally.
SELECT dblink_send_query('other', 'SELECT spin() /* terminate me */');
SELECT pg_terminate_backend(wait_running('SELECT spin() /* terminate me */'), 10000);

SELECT dblink_disconnect('other');

-- While a backend waits for a compile (on a worker thread), pg_stat_activity shows it waiting
-- (wait_event_type "Extension"), and a cancel stops the wait: 57014, the intended ERROR below.
-- (600000 nested blocks take over a second to compile in a release build; the cancel comes at
-- 0.3 s.)
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));
SELECT dblink_exec('other', 'SET statement_timeout = ''20s''');
-- (The module's binary is made here first, so the other session spends its time compiling.)
CREATE TABLE deep_module AS SELECT wasm.wat('(module (func (export "deep") '
    || repeat('(block ', 600000) || repeat(')', 600000) || '))') AS bytes;
SELECT dblink_send_query('other',
    '/* compile me */ SELECT wasm.load(''deep'', (SELECT bytes FROM deep_module))');
CREATE TEMP TABLE compiling AS SELECT wait_running('/* compile me */%', 'Extension') AS pid;
SELECT clock_timestamp() AS cancelled_at \gset
SELECT pg_cancel_backend(pid) FROM compiling;
SELECT * FROM dblink_get_result('other') AS t(r text);
-- The wait ended at once, not when the compile (over a second more) would have finished.
SELECT clock_timestamp() - :'cancelled_at'::timestamptz < interval '1 s' AS cancelled_promptly;
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT * FROM dblink('other', 'SELECT 42') AS t(still_usable int);
-- A cancelled compile is not counted by wasm.cache_stats(), and stored nothing.
SELECT * FROM dblink('other', 'SELECT compiled FROM wasm.cache_stats()') AS t(compiled bigint);
SELECT count(*) AS stored FROM wasm.modules WHERE name = 'deep';
DROP TABLE deep_module;
SELECT dblink_disconnect('other');
SELECT started = pg_postmaster_start_time() AS postmaster_not_restarted FROM postmaster;
SELECT count(*) AS spinning_backends FROM pg_stat_activity WHERE query LIKE 'SELECT spin()%' AND pid <> pg_backend_pid();

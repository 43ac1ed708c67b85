-- pg_cancel_backend and pg_terminate_backend from another session stop a wasm loop; the
-- postmaster does not restart. The other session is a dblink connection; every wait is bounded.
SELECT wasm.load('spinner', wasm.wat('(module (func (export "spin") (result i32) (loop $l (br $l)) i32.const 0)
    (func (export "ready") (result i32) i32.const 1))'));
CREATE FUNCTION spin() RETURNS int LANGUAGE wasm AS 'spinner';
CREATE FUNCTION spinner_ready() RETURNS int LANGUAGE wasm AS 'spinner:ready';
CREATE TEMP TABLE postmaster AS SELECT pg_postmaster_start_time() AS started;

-- Wait (at most 10 s) until the other connection has been running `query` for 300 ms; return
-- its pid. Its module is compiled and instantiated beforehand (below), so after 300 ms the
-- statement is inside the wasm loop, not in parsing, planning or instantiation. Statistics are
-- read afresh on each try (pg_stat_activity is otherwise a snapshot per transaction).
CREATE FUNCTION wait_running(query text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    found int;
BEGIN
    FOR i IN 1..1000 LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid INTO found FROM pg_stat_activity
         WHERE state = 'active' AND pg_stat_activity.query = wait_running.query
           AND clock_timestamp() - query_start >= interval '300 ms';
        IF found IS NOT NULL THEN RETURN found; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'query % did not start', query;
END $$;

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
SELECT started = pg_postmaster_start_time() AS postmaster_not_restarted FROM postmaster;
SELECT count(*) AS spinning_backends FROM pg_stat_activity WHERE query LIKE 'SELECT spin()%' AND pid <> pg_backend_pid();

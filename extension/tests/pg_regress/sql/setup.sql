-- Runs once when the regression database is created.
CREATE EXTENSION plwasm;
CREATE EXTENSION dblink;

-- Run a statement and report its SQLSTATE and message instead of failing the script.
CREATE FUNCTION sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Wait (at most 10 s) until another connection has been running a query LIKE `query_like` for
-- 300 ms with wait_event_type `wait_event_type` (NULL: not waiting on anything); return its pid.
-- Statistics are read afresh on each try
-- (pg_stat_activity is otherwise a snapshot per transaction).
CREATE FUNCTION wait_running(query_like text, wait_event_type text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    found int;
BEGIN
    FOR i IN 1..1000 LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid INTO found FROM pg_stat_activity a
         WHERE a.state = 'active' AND a.query LIKE query_like AND a.pid <> pg_backend_pid()
           AND a.wait_event_type IS NOT DISTINCT FROM wait_running.wait_event_type
           AND clock_timestamp() - a.query_start >= interval '300 ms';
        IF found IS NOT NULL THEN RETURN found; END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'query % did not start', query_like;
END $$;

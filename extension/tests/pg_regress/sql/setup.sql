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

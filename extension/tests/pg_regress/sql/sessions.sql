-- A module replaced or unloaded in another session is seen by this session's next statement
-- after that commit. The other session is a dblink connection to this database.
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));

SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 1))'));
CREATE FUNCTION shared_version() RETURNS int LANGUAGE wasm AS 'shared:version';
SELECT shared_version();

-- The other session replaces the module and commits.
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 2))'), true)$$) AS other(done text);
SELECT shared_version();

-- Inside a transaction that already ran the function, a commit from the other session is still
-- seen by the next statement (code resolution follows the latest committed catalog).
BEGIN;
SELECT shared_version();
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 3))'), true)$$) AS other(done text);
SELECT shared_version();
COMMIT;

-- Also under REPEATABLE READ: code follows the latest committed catalog, not the snapshot.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT shared_version();
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 33))'), true)$$) AS other(done text);
SELECT shared_version();
SELECT count(*) AS rows_in_snapshot FROM wasm.modules WHERE name = 'shared' AND sha256 = encode(sha256(wasm.wat('(module (func (export "version") (result i32) i32.const 33))')), 'hex');
COMMIT;
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 3))'), true)$$) AS other(done text);

-- An uncommitted replace in the other session is not seen.
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 4))'), true)$$) AS other(done text);
SELECT shared_version();
SELECT dblink_exec('other', 'ROLLBACK');
SELECT shared_version();

-- The other session calls the function too, and sees this session's replace.
SELECT * FROM dblink('other', 'SELECT shared_version()') AS t(v int);
SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 5))'), true);
SELECT * FROM dblink('other', 'SELECT shared_version()') AS t(v int);

-- Unloaded and loaded again elsewhere: the cached instance is not reused.
SELECT shared_version();
SELECT dblink_exec('other', $$DROP FUNCTION shared_version()$$);
SELECT * FROM dblink('other', $$SELECT wasm.unload('shared')$$) AS other(done text);
SELECT count(*) AS modules_named_shared FROM wasm.modules WHERE name = 'shared';
SELECT * FROM dblink('other', $$SELECT wasm.load('shared', wasm.wat('(module (func (export "version") (result i32) i32.const 6))'))$$) AS other(done text);
SELECT dblink_exec('other', $$CREATE FUNCTION shared_version() RETURNS int LANGUAGE wasm AS 'shared:version'$$);
SELECT shared_version();

-- A write that does not come through plwasm (a superuser's UPDATE, or logical replication's
-- apply worker on a subscriber: tests/replication.sh) is seen by the next statement too.
SELECT wasm.load('shared_next', wasm.wat('(module (func (export "version") (result i32) i32.const 7))'));
SELECT dblink_exec('other', $$UPDATE wasm.module_store m SET bytes = n.bytes, sha256 = n.sha256, exports = n.exports
    FROM wasm.module_store n WHERE m.name = 'shared' AND n.name = 'shared_next'$$);
SELECT shared_version();
SELECT dblink_exec('other', $$DELETE FROM wasm.module_store WHERE name = 'shared'$$);
SELECT sqlstate_of('SELECT shared_version()');
DROP FUNCTION shared_version();
SELECT wasm.unload('shared_next');
-- One statement runs one version of a module, even when another session's replace commits
-- while it runs (here in its second row, through dblink) and the statement then takes that
-- change in: a second call site resolving (row 3), a table locked for the first time (row 4,
-- through an SQL function), the first call site after that (rows 4 and 5).
SELECT wasm.load('pinned', wasm.wat('(module (func (export "v") (result i32) i32.const 1)
                                              (func (export "w") (result i32) i32.const 1))'));
CREATE FUNCTION pinned_v() RETURNS int LANGUAGE wasm AS 'pinned:v';
CREATE FUNCTION pinned_w() RETURNS int LANGUAGE wasm AS 'pinned:w';
CREATE TABLE pinned_other (x int);
CREATE FUNCTION pinned_touch() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM pinned_other';
SELECT g, CASE WHEN g = 1 THEN pinned_v() END AS v,
       CASE WHEN g = 2 THEN (SELECT 'committed' FROM dblink('other', $$SELECT wasm.load('pinned', wasm.wat('(module
           (func (export "v") (result i32) i32.const 2) (func (export "w") (result i32) i32.const 2))'), true)$$)
           AS t(done text)) END AS replaced_elsewhere,
       CASE WHEN g = 3 THEN pinned_w() END AS w,
       CASE WHEN g = 4 THEN pinned_touch() END AS locked,
       CASE WHEN g >= 4 THEN pinned_v() END AS v_again
  FROM generate_series(1, 5) g;
-- The next statement runs the new version.
SELECT pinned_v(), pinned_w();
-- A statement's own replace (or rollback, unload) takes effect at once, for every call site:
-- what it changed itself, it sees.
DO $$
BEGIN
    RAISE WARNING 'before: %', pinned_v();
    PERFORM wasm.load('pinned', wasm.wat('(module (func (export "v") (result i32) i32.const 3)
                                                   (func (export "w") (result i32) i32.const 3))'), true);
    RAISE WARNING 'after its own replace: %, %', pinned_v(), pinned_w();
END
$$;
SELECT pinned_v(), pinned_w();
-- Also, after another session's replace, the cursors a statement runs (a PL/pgSQL FOR loop
-- over a query: a portal of its own) and another role's instance (a SECURITY DEFINER function).
DROP ROLE IF EXISTS pinned_definer;
CREATE ROLE pinned_definer;
CREATE FUNCTION pinned_definer_v() RETURNS int LANGUAGE wasm SECURITY DEFINER AS 'pinned:v';
ALTER FUNCTION pinned_definer_v() OWNER TO pinned_definer;
DO $$
DECLARE
    r record;
BEGIN
    RAISE WARNING 'first: %', pinned_v();
    PERFORM * FROM dblink('other', $q$SELECT wasm.load('pinned', wasm.wat('(module
        (func (export "v") (result i32) i32.const 4) (func (export "w") (result i32) i32.const 4))'), true)$q$)
        AS t(done text);
    FOR r IN SELECT pinned_v() AS v LOOP
        RAISE WARNING 'in a FOR loop over a query: %', r.v;
    END LOOP;
    RAISE WARNING 'as the SECURITY DEFINER function''s owner: %', pinned_definer_v();
END
$$;
SELECT pinned_v(), pinned_definer_v();
DROP FUNCTION pinned_definer_v();
DROP ROLE pinned_definer;
DROP FUNCTION pinned_touch();
DROP TABLE pinned_other;
SELECT wasm.unload('pinned', cascade => true);

-- The trigger functions behind it refuse to run as anything else than the triggers they are.
CREATE TABLE not_modules (x int);
CREATE TRIGGER wrong BEFORE INSERT ON not_modules FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
INSERT INTO not_modules VALUES (1);
DROP TRIGGER wrong ON not_modules;
CREATE TRIGGER wrong AFTER INSERT ON not_modules FOR EACH STATEMENT EXECUTE FUNCTION wasm.artifact_not_replicated();
INSERT INTO not_modules VALUES (1);
DROP TABLE not_modules;
SELECT dblink_disconnect('other');

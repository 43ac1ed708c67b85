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
-- The trigger functions behind it refuse to run as anything else than the triggers they are.
CREATE TABLE not_modules (x int);
CREATE TRIGGER wrong BEFORE INSERT ON not_modules FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
INSERT INTO not_modules VALUES (1);
DROP TRIGGER wrong ON not_modules;
CREATE TRIGGER wrong AFTER INSERT ON not_modules FOR EACH STATEMENT EXECUTE FUNCTION wasm.artifact_not_replicated();
INSERT INTO not_modules VALUES (1);
DROP TABLE not_modules;
SELECT dblink_disconnect('other');

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
SELECT dblink_disconnect('other');

-- wasm.load, wasm.unload, wasm.wat and the wasm.modules view.
BEGIN;
SELECT wasm.load('calc', wasm.wat($$
  (module
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "half") (param f64) (result f64) local.get 0 f64.const 0.5 f64.mul)
    (memory (export "memory") 1)
    (global (export "answer") i32 (i32.const 42)))
$$));
SELECT name, owner = current_user AS owned, size_bytes, length(sha256) AS sha_len,
       loaded_at = now() AS loaded_by_this_transaction
  FROM wasm.modules WHERE name = 'calc';
SELECT jsonb_array_elements(exports) AS export FROM wasm.modules WHERE name = 'calc';
SELECT wasm.load('empty', wasm.wat('(module)'));
SELECT sha256 = encode(sha256(wasm.wat('(module)')), 'hex') AS sha_matches
  FROM wasm.modules WHERE name = 'empty';

-- A name is loaded once unless replace => true.
SELECT sqlstate_of($$SELECT wasm.load('calc', wasm.wat('(module)'))$$);
SELECT wasm.load('empty', wasm.wat('(module (func (export "f")))'), replace => true);
-- replace => true with no module of that name simply loads.
SELECT wasm.load('fresh', wasm.wat('(module)'), replace => true);
SELECT name FROM wasm.modules WHERE name = 'fresh';
SELECT exports FROM wasm.modules WHERE name = 'empty';

-- Bytes that are not a module, and modules plwasm cannot link.
SELECT sqlstate_of($$SELECT wasm.load('bad', '\x00')$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', '')$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', '\x0061736d01000000ff')$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', convert_to('(module)', 'UTF8'))$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', wasm.wat('(module (import "env" "log" (func (param i32))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', wasm.wat('(module (import "wasi_snapshot_preview1" "fd_write" (func (param i64) (result i32))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('bad', wasm.wat('(module (import "wasi_snapshot_preview1" "memory" (memory 1)))'))$$);

-- Module names.
SELECT sqlstate_of($$SELECT wasm.load('', wasm.wat('(module)'))$$);
SELECT sqlstate_of($$SELECT wasm.load('a:b', wasm.wat('(module)'))$$);
SELECT sqlstate_of($$SELECT wasm.load('-x', wasm.wat('(module)'))$$);
SELECT sqlstate_of(format('SELECT wasm.load(%L, wasm.wat(%L))', repeat('n', 129), '(module)'));
SELECT count(*) AS stored_bad FROM wasm.modules WHERE name = 'bad' OR name LIKE 'nnn%' OR name IN ('', 'a:b', '-x');

-- wasm.wat reports line and column.
SELECT sqlstate_of($$SELECT wasm.wat(E'(module\n  (func (export "f") (result i32)\n    i32.const 1\n    i32.bogus))')$$);
SELECT length(wasm.wat('(module)')) AS empty_module_bytes;

-- wasm.unload.
SELECT wasm.unload('empty');
SELECT sqlstate_of($$SELECT wasm.unload('empty')$$);
SELECT name FROM wasm.modules WHERE name IN ('calc', 'empty', 'fresh') ORDER BY name;
ROLLBACK;

-- A module built for another plwasm ABI (its plwasm.abi section, written by the SDKs) is refused
-- with what to do; one for ABI v1 (the section has a line per object file) loads.
SELECT sqlstate_of($$SELECT wasm.load('abi2', wasm.wat('(module (@custom "plwasm.abi" "2\0a"))'))$$);
\set VERBOSITY default
SELECT wasm.load('abi2', wasm.wat('(module (@custom "plwasm.abi" "1\0a2\0a"))'));
SELECT wasm.load('abi_bad', wasm.wat('(module (@custom "plwasm.abi" "v1\0a"))'));
\set VERBOSITY terse
-- Separate sections are all read (Wasmer itself keeps only the last one of a name).
SELECT sqlstate_of($$SELECT wasm.load('abi2', wasm.wat('(module (@custom "plwasm.abi" "2") (@custom "plwasm.abi" "1"))'))$$);
SELECT wasm.load('abi1', wasm.wat('(module (@custom "plwasm.abi" "1\0a1\0a"))'));
SELECT count(*) AS stored_foreign FROM wasm.modules WHERE name IN ('abi2', 'abi_bad');
SELECT wasm.unload('abi1');

-- wasm.load is transactional: a rolled-back load stores nothing.
BEGIN;
SELECT wasm.load('temp', wasm.wat('(module (func (export "f") (result i32) i32.const 7))'));
CREATE FUNCTION temp_f() RETURNS int LANGUAGE wasm AS 'temp:f';
SELECT temp_f();
ROLLBACK;
SELECT count(*) AS after_rollback FROM wasm.modules WHERE name = 'temp';
SELECT sqlstate_of('SELECT temp_f()');

-- So are unload and replace.
SELECT wasm.load('keep', wasm.wat('(module (func (export "f") (result i32) i32.const 1))'));
CREATE FUNCTION keep_f() RETURNS int LANGUAGE wasm AS 'keep:f';
BEGIN;
SELECT wasm.load('keep', wasm.wat('(module (func (export "f") (result i32) i32.const 2))'), true);
SELECT keep_f() AS inside_replace;
ROLLBACK;
SELECT keep_f() AS after_rollback;
DROP FUNCTION keep_f();
BEGIN;
SELECT wasm.unload('keep');
ROLLBACK;
SELECT name FROM wasm.modules WHERE name = 'keep';
SELECT wasm.unload('keep');

-- The catalog is extension configuration: pg_dump keeps loaded modules, their previous versions
-- and their capabilities.
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'plwasm';

-- Writing the catalog in a read-only transaction (or on a hot standby) is 25006, as for
-- Postgres's own commands.
SELECT wasm.load('ro', wasm.wat('(module)'));
BEGIN READ ONLY;
SELECT sqlstate_of($$SELECT wasm.load('ro2', wasm.wat('(module)'))$$);
SELECT sqlstate_of($$SELECT wasm.load('ro', wasm.wat('(module)'), true)$$);
SELECT sqlstate_of($$SELECT wasm.rollback('ro')$$);
SELECT sqlstate_of($$SELECT wasm.unload('ro')$$);
SELECT sqlstate_of($$SELECT wasm.set_owner('ro', current_user::regrole)$$);
ROLLBACK;
SELECT wasm.unload('ro');

-- An export name with U+0000 cannot be stored (exports are kept in jsonb): 22P03 naming it, not
-- a jsonb error (found by tests/fuzz.sh).
SELECT sqlstate_of($$SELECT wasm.load('nul_export', wasm.wat('(module (func (export "a\00b") (result i32) i32.const 1))'))$$);

-- Module versions: a replace keeps the version it replaces (up to wasm.module_history of them,
-- 3 by default); wasm.rollback makes the newest previous one current again, with the checks of
-- a replace; wasm.module_versions lists them.
-- (Roles are cluster-wide: a run that died half-way may have left them.)
DROP ROLE IF EXISTS ver_owner, ver_other, ver_user;
CREATE ROLE ver_owner IN ROLE wasm_loader;
CREATE ROLE ver_other IN ROLE wasm_loader;
CREATE ROLE ver_user;
GRANT CREATE ON SCHEMA public TO ver_owner;
CREATE FUNCTION ver_wat(n int) RETURNS bytea LANGUAGE sql AS
  $$SELECT wasm.wat(format('(module (func (export "v") (result i32) i32.const %s))', n))$$;

SET ROLE ver_owner;
SELECT wasm.load('ver', ver_wat(1));
CREATE FUNCTION ver_v() RETURNS int LANGUAGE wasm AS 'ver:v';
SELECT name, version, current, replaced_at IS NULL AS not_replaced
  FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;

-- Two replaces: versions 1 and 2 are kept, 3 is current.
SELECT wasm.load('ver', ver_wat(2), replace => true);
SELECT wasm.load('ver', ver_wat(3), replace => true);
SELECT ver_v();
SELECT v.version, v.current, v.sha256 = encode(sha256(ver_wat(v.version::int)), 'hex') AS its_bytes,
       v.size_bytes = octet_length(ver_wat(v.version::int)) AS its_size,
       v.replaced_at IS NOT NULL AS replaced, v.exports = m.exports AS same_exports
  FROM wasm.module_versions v JOIN wasm.modules m USING (name)
 WHERE v.name = 'ver' ORDER BY v.version;
-- Loading the same bytes again (to store an artifact, say) keeps no new version.
SELECT wasm.load('ver', ver_wat(3), replace => true);
SELECT count(*) AS versions FROM wasm.module_versions WHERE name = 'ver';

-- Roll back: version 2 is current again (under its number), version 3 is gone; the next
-- statement runs it, and its compiled artifact is stored for other backends.
SELECT wasm.rollback('ver');
SELECT ver_v();
SELECT version, current FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;
RESET ROLE;
SELECT count(*) AS artifact_of_version_2 FROM wasm.module_artifacts
 WHERE name = 'ver' AND sha256 = encode(sha256(ver_wat(2)), 'hex');
SET ROLE ver_owner;
-- Once more, then nothing is left to roll back to.
SELECT wasm.rollback('ver');
SELECT ver_v();
SELECT version, current FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;
\set VERBOSITY default
SELECT wasm.rollback('ver');
\set VERBOSITY terse

-- A rollback is transactional, like a replace.
SELECT wasm.load('ver', ver_wat(4), replace => true);
BEGIN;
SELECT wasm.rollback('ver');
SELECT ver_v() AS inside;
ROLLBACK;
SELECT ver_v() AS after_rollback;
SELECT version, current FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;

-- The history is bounded: the oldest versions beyond wasm.module_history go (superusers set
-- it); numbers keep counting up. 0 keeps none (a rollback then has nothing).
RESET ROLE;
SET wasm.module_history = 2;
SET ROLE ver_owner;
SELECT wasm.load('ver', ver_wat(n), replace => true) FROM generate_series(5, 8) n;
-- (loaded_from: the n of the ver_wat(n) each version was loaded from)
SELECT version, current,
       (SELECT n FROM generate_series(1, 20) n WHERE encode(sha256(ver_wat(n)), 'hex') = sha256) AS loaded_from
  FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;
RESET ROLE;
SET wasm.module_history = 0;
SET ROLE ver_owner;
SELECT wasm.load('ver', ver_wat(9), replace => true);
SELECT version, current FROM wasm.module_versions WHERE name = 'ver' ORDER BY version;
SELECT sqlstate_of($$SELECT wasm.rollback('ver')$$);
RESET ROLE;
RESET wasm.module_history;

-- A rollback to a version that lacks an export a function is bound to: 2BP01, nothing changes.
SET ROLE ver_owner;
SELECT wasm.load('ver', wasm.wat('(module (func (export "v") (result i32) i32.const 10)
                                        (func (export "w") (result i32) i32.const 11))'), replace => true);
CREATE FUNCTION ver_w() RETURNS int LANGUAGE wasm AS 'ver:w';
\set VERBOSITY default
SELECT wasm.rollback('ver');
\set VERBOSITY terse
SELECT ver_v(), ver_w();
SELECT count(*) AS versions FROM wasm.module_versions WHERE name = 'ver';
DROP FUNCTION ver_w();

-- Who may roll back: the owner (or a superuser); not another loader, not a role outside
-- wasm_loader (no EXECUTE); an unknown module is 42704.
SET ROLE ver_other;
SELECT sqlstate_of($$SELECT wasm.rollback('ver')$$);
SELECT sqlstate_of($$SELECT wasm.rollback('no_such_module')$$);
SET ROLE ver_user;
SELECT sqlstate_of($$SELECT wasm.rollback('ver')$$);
-- Everyone sees which versions exist, not their bytes.
SELECT count(*) > 0 AS listed FROM wasm.module_versions WHERE name = 'ver';
SELECT sqlstate_of($$SELECT count(*) FROM wasm.module_history$$);
RESET ROLE;
SELECT wasm.rollback('ver') AS superuser_may;
SELECT ver_v();

-- An unload forgets the history: loaded anew, the module starts at version 1.
SET ROLE ver_owner;
SELECT wasm.unload('ver', cascade => true);
SELECT count(*) AS left_behind FROM wasm.module_versions WHERE name = 'ver';
SELECT wasm.load('ver', ver_wat(12));
SELECT version, current FROM wasm.module_versions WHERE name = 'ver';
SELECT sqlstate_of($$SELECT wasm.rollback('ver')$$);
SELECT wasm.unload('ver');
RESET ROLE;
-- Rows left under a free name (written by SQL, or replicated) do not become the history of a
-- module loaded anew under that name.
INSERT INTO wasm.module_history
SELECT 'ver', 1, ver_wat(13), encode(sha256(ver_wat(13)), 'hex'), '[]', now(), now();
SET ROLE ver_owner;
SELECT wasm.load('ver', ver_wat(14));
SELECT version, current FROM wasm.module_versions WHERE name = 'ver';
SELECT wasm.unload('ver');
RESET ROLE;

DROP FUNCTION ver_wat(int);
REVOKE CREATE ON SCHEMA public FROM ver_owner;
DROP ROLE ver_owner, ver_other, ver_user;

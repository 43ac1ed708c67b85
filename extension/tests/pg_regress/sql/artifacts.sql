-- Compiled artifacts: wasm.load keeps what it compiled in wasm.module_artifacts, and a backend
-- that calls the module later (another session, a parallel worker) deserializes it instead of
-- compiling. An artifact that does not fit (damaged, not written by plwasm in this cluster, from
-- another build of plwasm/Wasmer or another CPU) is refused and the module compiled from its
-- bytes; the call works either way.
-- wasm.cache_stats() counts, per backend, what was compiled and what came from an artifact.
-- (This session never starts the background worker that stores missing artifacts, tested
-- below: only the sessions that ask for it do.)
SET wasm.refresh_artifacts = off;
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))'));
CREATE FUNCTION art_twice(int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT PARALLEL SAFE AS 'art:twice';
SELECT a.name, a.sha256 = m.sha256 AS for_these_bytes, a.engine LIKE 'plwasm %' AS engine_named,
       length(a.artifact) > 0 AS has_code
  FROM wasm.module_artifacts a JOIN wasm.modules m USING (name) WHERE name = 'art';

-- Call art_twice(21) in a new session and report its result and that session's cache_stats
-- right after the call. A session that had to compile would start a background worker that
-- stores a fresh artifact (tested below); here it does not (wasm.refresh_artifacts off), so the
-- artifacts each case prepares stay as they are.
-- A connection string to this database as this role; with `refresh`, the new session's
-- wasm.refresh_artifacts.
CREATE FUNCTION art_conninfo(refresh boolean DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
  SELECT format('dbname=%s port=%s host=%s user=%s', current_database(), current_setting('port'),
         split_part(current_setting('unix_socket_directories'), ',', 1), current_user)
      || coalesce(' options=-cwasm.refresh_artifacts=' || refresh, '')
$$;
CREATE FUNCTION art_new_session(refresh boolean DEFAULT false) RETURNS TABLE (result int,
    compiled bigint, from_artifact bigint, artifacts_refused bigint) LANGUAGE sql AS $$
  SELECT * FROM dblink(art_conninfo(refresh),
      'WITH r AS MATERIALIZED (SELECT art_twice(21) AS v)
       SELECT r.v, s.* FROM r, LATERAL (SELECT * FROM wasm.cache_stats() WHERE r.v IS NOT NULL) s')
    AS t(result int, compiled bigint, from_artifact bigint, artifacts_refused bigint)
$$;
-- A new session compiles nothing.
SELECT * FROM art_new_session();

-- A damaged artifact (its MAC no longer verifies) is refused: the module is compiled.
UPDATE wasm.module_artifacts SET artifact = overlay(artifact PLACING '\xdeadbeef' FROM 200)
 WHERE name = 'art';
SELECT * FROM art_new_session();

-- Replacing the module writes a new artifact; one made by another build or CPU is refused.
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.shl (local.get 0) (i32.const 1))))'), true);
SELECT * FROM art_new_session();
UPDATE wasm.module_artifacts SET engine = 'plwasm 0.0.0 on another machine' WHERE name = 'art';
SELECT * FROM art_new_session();
-- An artifact of other bytes (same name) is not used for these.
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.add (local.get 0) (local.get 0))))'), true);
UPDATE wasm.module_artifacts SET sha256 = repeat('0', 64) WHERE name = 'art';
SELECT * FROM art_new_session();

-- A role that may write every table (pg_write_all_data) cannot plant code: another module's
-- valid artifact and MAC copied into this module's row fail the MAC (it binds the module's name
-- and SHA-256 too), so the module is compiled and runs its own code.
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))'), true);
SELECT wasm.load('art_other', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.const 666)))'));
SELECT * FROM art_new_session();
DROP ROLE IF EXISTS art_writer, art_user;   -- (left by a run that died half-way)
CREATE ROLE art_writer IN ROLE pg_read_all_data, pg_write_all_data;
SET ROLE art_writer;
UPDATE wasm.module_artifacts a SET artifact = o.artifact, mac = o.mac
  FROM wasm.module_artifacts o WHERE a.name = 'art' AND o.name = 'art_other';
RESET ROLE;
DROP ROLE art_writer;
SELECT * FROM art_new_session();
SELECT wasm.unload('art_other');

-- After a restore (no artifacts) or with artifacts of another build or CPU, the first backend
-- that has to compile a module starts a background worker: in its own transactions it compiles
-- every module of the database that lacks a usable artifact and stores one, so later sessions
-- (and parallel workers) deserialize. Here: one module's artifact deleted, another's made by
-- "another build".
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))'), true);
SELECT wasm.load('art_more', wasm.wat('(module (func (export "v") (result i32) i32.const 7))'));
SELECT wasm.load('art_ref', wasm.wat('(module)'));
DELETE FROM wasm.module_artifacts WHERE name = 'art';
UPDATE wasm.module_artifacts SET engine = 'plwasm 0.0.0 on another machine' WHERE name = 'art_more';
-- Waits (up to 60 s) until the boolean query `condition` is true (the background worker
-- works asynchronously); false if it never is.
CREATE FUNCTION art_wait(condition text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    met boolean;
BEGIN
    FOR i IN 1..600 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE condition INTO met;
        IF met THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN false;
END $$;
-- Refreshed: both carry this build's fingerprint (art_ref's, made by wasm.load).
CREATE FUNCTION art_wait_refreshed() RETURNS boolean LANGUAGE sql AS $$
    SELECT art_wait($q$SELECT count(*) = 2 FROM wasm.module_artifacts
        WHERE name IN ('art', 'art_more')
          AND engine = (SELECT engine FROM wasm.module_artifacts WHERE name = 'art_ref')$q$)
$$;
-- With wasm.refresh_artifacts off, a session that compiles starts no worker: after 2 s, still
-- no artifact.
SELECT * FROM art_new_session(false);
SELECT pg_sleep(2);
SELECT count(*) AS not_refreshed FROM wasm.module_artifacts WHERE name = 'art';
-- On (the default): the session compiles, the worker stores both artifacts.
SELECT * FROM art_new_session(true);
SELECT art_wait_refreshed() AS refreshed;
SELECT * FROM art_new_session(false);
CREATE FUNCTION art_more_v() RETURNS int LANGUAGE wasm AS 'art_more:v';
SELECT * FROM dblink(art_conninfo(),
      'WITH r AS MATERIALIZED (SELECT art_more_v() AS v)
       SELECT r.v, s.compiled, s.from_artifact FROM r, LATERAL (SELECT * FROM wasm.cache_stats() WHERE r.v IS NOT NULL) s')
    AS t(result int, compiled bigint, from_artifact bigint);
DROP FUNCTION art_more_v();

-- Inline modules (function bodies in WebAssembly text) get artifacts too, keyed by the SHA-256
-- of their text: the first backend that compiles one starts the worker, later backends
-- deserialize. The worker deletes the rows of texts that no function has any more.
CREATE FUNCTION art_inline(int) RETURNS int LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "art_inline") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1000))))';
CREATE FUNCTION art_inline_session(refresh boolean) RETURNS TABLE (result int, compiled bigint,
    from_artifact bigint) LANGUAGE sql AS $$
  SELECT * FROM dblink(art_conninfo(refresh),
      'WITH r AS MATERIALIZED (SELECT art_inline(1) AS v)
       SELECT r.v, s.compiled, s.from_artifact FROM r, LATERAL (SELECT * FROM wasm.cache_stats() WHERE r.v IS NOT NULL) s')
    AS t(result int, compiled bigint, from_artifact bigint)
$$;
-- Its row's name: "(inline) " and the SHA-256 of the body's text. (Other files' inline
-- functions in this database get rows too.)
CREATE TEMP TABLE art_inline_row AS
    SELECT '(inline) ' || encode(sha256(convert_to(prosrc, 'UTF8')), 'hex') AS name
      FROM pg_proc WHERE proname = 'art_inline';
-- Waits until that row exists (`present`) or not.
CREATE FUNCTION art_wait_inline(present boolean) RETURNS boolean LANGUAGE sql AS $$
    SELECT art_wait(format('SELECT EXISTS (SELECT FROM wasm.module_artifacts JOIN art_inline_row USING (name)) = %L', present))
$$;
-- A body that does not compile (accepted with check_function_bodies off) is marked in the same
-- pass: a row with no code, so later passes do not compile it again.
SET check_function_bodies = off;
CREATE FUNCTION art_broken() RETURNS int LANGUAGE wasm AS
    '(module (func (export "art_broken") (result i32) i64.const 1))';
RESET check_function_bodies;
CREATE TEMP TABLE art_broken_row AS
    SELECT '(inline) ' || encode(sha256(convert_to(prosrc, 'UTF8')), 'hex') AS name
      FROM pg_proc WHERE proname = 'art_broken';
SELECT * FROM art_inline_session(true);
SELECT art_wait_inline(true) AS inline_stored;
SELECT art_wait($$SELECT EXISTS (SELECT FROM wasm.module_artifacts JOIN art_broken_row USING (name))$$) AS broken_marked;
SELECT octet_length(artifact) AS no_code,
       engine = (SELECT engine FROM wasm.module_artifacts WHERE name = 'art_ref') AS this_build
  FROM wasm.module_artifacts JOIN art_broken_row USING (name);
DROP FUNCTION art_broken();
DROP TABLE art_broken_row;
SELECT engine = (SELECT engine FROM wasm.module_artifacts WHERE name = 'art_ref') AS this_build
  FROM wasm.module_artifacts JOIN art_inline_row USING (name);
SELECT * FROM art_inline_session(false);
-- Dropped: the next worker run (here started by a session that compiles 'art') deletes its row.
DROP FUNCTION art_inline(int);
DELETE FROM wasm.module_artifacts WHERE name = 'art';
SELECT result FROM art_new_session(true);
SELECT art_wait_inline(false) AS inline_row_deleted;
DROP FUNCTION art_inline_session(boolean);
DROP FUNCTION art_wait_inline(boolean);
DROP TABLE art_inline_row;
DROP FUNCTION art_wait_refreshed();
SELECT wasm.unload('art_more'), wasm.unload('art_ref');

-- The worker never waits for a module's lock: a user's open transaction that binds a function
-- to the module (and so holds its name's lock) makes the worker skip it for this pass, instead
-- of queueing behind it and holding up everyone else's CREATE FUNCTION.
SELECT dblink_connect('art_holder', art_conninfo());
SELECT dblink_exec('art_holder', 'BEGIN');
SELECT dblink_exec('art_holder', $$CREATE FUNCTION art_held(int) RETURNS int LANGUAGE wasm AS 'art:twice'$$);
-- art_side, also without an artifact, shows when the pass has run: the worker stores it.
SELECT wasm.load('art_side', wasm.wat('(module)'));
DELETE FROM wasm.module_artifacts WHERE name IN ('art', 'art_side');
SELECT result, compiled FROM art_new_session(true);
SELECT art_wait($$SELECT EXISTS (SELECT FROM wasm.module_artifacts WHERE name = 'art_side')$$) AS pass_ran,
       art_wait($$SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'plwasm artifact refresh')$$) AS worker_done,
       (SELECT count(*) FROM wasm.module_artifacts WHERE name = 'art') AS skipped_while_locked;
SET lock_timeout = '5s';
CREATE FUNCTION art_not_blocked(int) RETURNS int LANGUAGE wasm AS 'art:twice';
RESET lock_timeout;
SELECT dblink_exec('art_holder', 'ROLLBACK');
SELECT dblink_disconnect('art_holder');
DROP FUNCTION art_not_blocked(int);
SELECT wasm.unload('art_side');

-- A request made in a subtransaction that rolls back is dropped with it, and compiling a
-- temporary function's inline body asks for nothing (the worker never sees it): no pass runs.
-- (A pass would store the missing artifact of art_probe, which shows whether one ran.)
SELECT wasm.load('art_probe', wasm.wat('(module)'));
DELETE FROM wasm.module_artifacts WHERE name = 'art_probe';
SELECT dblink_connect('art_savepoint', art_conninfo());
SELECT dblink_exec('art_savepoint', $$CREATE FUNCTION pg_temp.art_temp() RETURNS int LANGUAGE wasm AS
    '(module (func (export "art_temp") (result i32) i32.const 40))'$$);
SELECT * FROM dblink('art_savepoint', 'SELECT pg_temp.art_temp()') AS t(temporary_function int);
SELECT dblink_exec('art_savepoint', 'BEGIN');
SELECT dblink_exec('art_savepoint', 'SAVEPOINT s');
SELECT dblink_exec('art_savepoint', $$CREATE FUNCTION art_rolled_back() RETURNS int LANGUAGE wasm AS
    '(module (func (export "art_rolled_back") (result i32) i32.const 41))'$$);
SELECT dblink_exec('art_savepoint', 'ROLLBACK TO s');
SELECT dblink_exec('art_savepoint', 'COMMIT');
SELECT pg_sleep(2);
SELECT count(*) AS no_pass_after_rollback FROM wasm.module_artifacts WHERE name = 'art_probe';
-- The same in a subtransaction that commits: the request survives into the transaction's commit.
SELECT dblink_exec('art_savepoint', 'BEGIN');
SELECT dblink_exec('art_savepoint', 'SAVEPOINT s');
SELECT dblink_exec('art_savepoint', $$CREATE FUNCTION art_kept() RETURNS int LANGUAGE wasm AS
    '(module (func (export "art_kept") (result i32) i32.const 42))'$$);
SELECT dblink_exec('art_savepoint', 'RELEASE s');
SELECT dblink_exec('art_savepoint', 'COMMIT');
SELECT art_wait($$SELECT EXISTS (SELECT FROM wasm.module_artifacts WHERE name = 'art_probe')$$) AS pass_after_commit;
SELECT dblink_disconnect('art_savepoint');
DROP FUNCTION art_kept();
SELECT wasm.unload('art_probe');
DROP FUNCTION art_wait(text);

-- Parallel workers deserialize too: every row is computed in a worker (the leader does not
-- participate), and each worker reports what it did after its first call (this session, which
-- compiled each module it loaded, would not report 0 compiled).
SELECT wasm.load('art', wasm.wat('(module (func (export "twice") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))'), true);
CREATE TABLE art_data AS SELECT i FROM generate_series(1, 20000) i;
ANALYZE art_data;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
-- art_stats_after(v) reads the calling process's pid and counts after v (an art_twice call) is
-- computed. Every row comes from a process other than this session (a worker), and each such
-- process compiled nothing (this session compiled each module it loaded).
CREATE FUNCTION art_stats_after(v int) RETURNS text LANGUAGE sql VOLATILE PARALLEL SAFE AS
    $$SELECT pg_backend_pid() || ' ' || compiled || ' compiled, ' || from_artifact || ' from artifact'
        FROM wasm.cache_stats()$$;
EXPLAIN (COSTS OFF, VERBOSE) SELECT art_stats_after(art_twice(i)) FROM art_data WHERE i % 500 = 0;
SELECT substr(s, strpos(s, ' ') + 1) AS per_process, count(*) AS rows,
       bool_and(split_part(s, ' ', 1)::int <> pg_backend_pid()) AS all_in_workers
  FROM (SELECT art_stats_after(art_twice(i)) AS s FROM art_data WHERE i % 500 = 0) w
 GROUP BY 1;
RESET ALL;
DROP TABLE art_data;
DROP FUNCTION art_stats_after(int);

-- A role without those predefined roles cannot even read it (no grants).
CREATE ROLE art_user;
SET ROLE art_user;
SELECT sqlstate_of('SELECT count(*) FROM wasm.module_artifacts') AS read_artifacts;
RESET ROLE;
DROP ROLE art_user;

-- The cluster's key: 32 bytes in the data directory, made at first use.
SELECT size AS key_bytes FROM pg_stat_file('plwasm_artifact.key');

-- An extension whose script predates the table (no wasm.module_artifacts): modules still load and
-- run, compiled (nothing is stored, nothing fails).
BEGIN;
ALTER EXTENSION plwasm DROP TABLE wasm.module_artifacts;
DROP TABLE wasm.module_artifacts;
SELECT wasm.load('art_old', wasm.wat('(module (func (export "v") (result i32) i32.const 5))'));
CREATE FUNCTION art_old_v() RETURNS int LANGUAGE wasm AS 'art_old:v';
SELECT art_old_v() AS without_artifacts_table;
ROLLBACK;
-- A table whose columns are not the expected ones is refused (55000), not read blindly (a
-- retyped column was read as a pointer).
BEGIN;
ALTER TABLE wasm.module_artifacts ALTER COLUMN mac TYPE text USING encode(mac, 'hex');
SELECT sqlstate_of($$SELECT wasm.load('art_typed', wasm.wat('(module)'))$$) AS retyped_column;
ROLLBACK;

-- Unloading removes it.
DROP FUNCTION art_twice(int);
SELECT wasm.unload('art');
SELECT count(*) AS artifacts_left FROM wasm.module_artifacts WHERE name = 'art';
DROP FUNCTION art_new_session(boolean);
DROP FUNCTION art_conninfo(boolean);

-- Constraints that call functions over stored modules are restored after the modules: pg_dump
-- writes them after all the data because each depends on wasm.module_store's key index, a
-- dependency an event trigger records when a table or domain is created or altered
-- (restore_order.rs). tests/dump_restore.sh checks the dumps and restores; this file checks which
-- constraints get the dependency. The file stands alone.
DROP ROLE IF EXISTS ro_user;
CREATE ROLE ro_user;
CREATE SCHEMA ro;
SELECT wasm.load('ro_mod', wasm.wat('(module (func (export "pos") (param i32) (result i32)
    (i32.gt_s (local.get 0) (i32.const 0))))'));
CREATE FUNCTION ro.pos(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS 'ro_mod';
CREATE FUNCTION ro.inline_pos(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "inline_pos") (param i32) (result i32) (i32.gt_s (local.get 0) (i32.const 0))))';
CREATE FUNCTION ro.ordered() RETURNS TABLE (object text, constraint_name name, after_modules boolean)
LANGUAGE sql AS $$
    SELECT CASE WHEN c.conrelid <> 0 THEN c.conrelid::regclass::text
                ELSE 'domain ' || c.contypid::regtype::text END, c.conname,
           EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = 'wasm.module_store_pkey'::regclass)
      FROM pg_constraint c WHERE c.connamespace = 'ro'::regnamespace ORDER BY 1, 2
$$;

-- Only constraints calling a function over a stored module: not inline modules, not others.
CREATE TABLE ro.t (a int CONSTRAINT t_stored CHECK (ro.pos(a)),
                   b int CONSTRAINT t_inline CHECK (ro.inline_pos(b)),
                   c int CONSTRAINT t_plain CHECK (c > 0));
-- Domains, at CREATE DOMAIN and ALTER DOMAIN.
CREATE DOMAIN ro.d AS int CONSTRAINT d_stored CHECK (ro.pos(VALUE));
ALTER DOMAIN ro.d ADD CONSTRAINT d_added CHECK (ro.pos(VALUE + 1));
-- ALTER TABLE on a partitioned table reaches its partitions; a partition created later gets
-- the constraint and the dependency.
CREATE TABLE ro.p (x int) PARTITION BY LIST (x);
CREATE TABLE ro.p1 PARTITION OF ro.p FOR VALUES IN (1);
ALTER TABLE ro.p ADD CONSTRAINT p_stored CHECK (ro.pos(x));
CREATE TABLE ro.p2 PARTITION OF ro.p FOR VALUES IN (2);
-- Inheritance children.
CREATE TABLE ro.child () INHERITS (ro.t);
-- A table created inside CREATE SCHEMA.
CREATE SCHEMA ro_inner CREATE TABLE inner_t (x int CONSTRAINT inner_stored CHECK (ro.pos(x)));
-- Through an operator whose function is the wasm function, and through a function with an
-- SQL-standard body (pg_depend records what both call).
CREATE OPERATOR ro.>>> (FUNCTION = ro.pos, RIGHTARG = int);
CREATE TABLE ro.via_operator (x int CONSTRAINT op_stored CHECK (OPERATOR(ro.>>>) x));
CREATE FUNCTION ro.pos_sql(int) RETURNS boolean LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC SELECT ro.pos($1); END;
CREATE TABLE ro.via_sql (x int CONSTRAINT sql_stored CHECK (ro.pos_sql(x)));
-- A typed table, whose constraints ALTER TYPE ... CASCADE rebuilds.
CREATE TYPE ro.pair AS (a int, b int);
CREATE TABLE ro.typed OF ro.pair (CONSTRAINT typed_stored CHECK (ro.pos(a) AND b IS NOT NULL));
ALTER TYPE ro.pair ALTER ATTRIBUTE b TYPE int8 CASCADE;
SELECT * FROM ro.ordered();
SELECT conrelid::regclass AS object, conname AS constraint_name,
       EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                  AND d.refobjid = 'wasm.module_store_pkey'::regclass) AS after_modules
  FROM pg_constraint c WHERE conname = 'inner_stored';
DROP SCHEMA ro_inner CASCADE;

-- CREATE OR REPLACE re-binding the inline function to the stored module: its constraint follows.
CREATE OR REPLACE FUNCTION ro.inline_pos(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    'ro_mod:pos';
SELECT * FROM ro.ordered() WHERE constraint_name = 't_inline';

-- wasm.depend_on_modules records nothing for a constraint that calls no stored module, and
-- records a dependency once however often it is called, also twice in one statement (its
-- dependency is deleted first, so that the first call records one).
SELECT wasm.depend_on_modules(oid) AS plain_constraint FROM pg_constraint
 WHERE conname = 't_plain' AND conrelid = 'ro.t'::regclass;
DELETE FROM pg_depend d USING pg_constraint c
 WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid AND c.conname = 't_stored'
   AND c.conrelid = 'ro.t'::regclass AND d.refobjid = 'wasm.module_store_pkey'::regclass;
SELECT wasm.depend_on_modules(oid) AS first, wasm.depend_on_modules(oid) AS again FROM pg_constraint
 WHERE conname = 't_stored' AND conrelid = 'ro.t'::regclass;
SELECT count(*) AS dependency_rows FROM pg_depend d JOIN pg_constraint c ON d.objid = c.oid
 WHERE d.classid = 'pg_constraint'::regclass AND c.conname = 't_stored' AND c.conrelid = 'ro.t'::regclass
   AND d.refobjid = 'wasm.module_store_pkey'::regclass;
-- A constraint that reaches a re-bound function two ways (directly and through an SQL-standard
-- body) gets one dependency row.
CREATE FUNCTION ro.later(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "later") (param i32) (result i32) i32.const 1))';
CREATE FUNCTION ro.later_sql(int) RETURNS boolean LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC SELECT ro.later($1); END;
CREATE TABLE ro.two_ways (x int CONSTRAINT two_ways CHECK (ro.later(x) AND ro.later_sql(x)));
CREATE OR REPLACE FUNCTION ro.later(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS 'ro_mod:pos';
SELECT count(*) AS dependency_rows FROM pg_depend d JOIN pg_constraint c ON d.objid = c.oid
 WHERE d.classid = 'pg_constraint'::regclass AND c.conname = 'two_ways'
   AND d.refobjid = 'wasm.module_store_pkey'::regclass;
-- Re-bound to an inline module again, the function no longer needs a stored one: the dependency
-- goes (so DROP EXTENSION ... CASCADE would not drop a constraint that no longer uses plwasm).
CREATE OR REPLACE FUNCTION ro.later(int) RETURNS boolean LANGUAGE wasm IMMUTABLE STRICT AS
    '(module (func (export "later") (param i32) (result i32) i32.const 1))';
SELECT * FROM ro.ordered() WHERE constraint_name = 'two_ways';
-- A function of another language (an SQL-standard body) redefined to call a stored module: the
-- constraints that use it follow.
CREATE FUNCTION ro.sqlg(int) RETURNS boolean LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT $1 > 0; END;
CREATE TABLE ro.via_redefined (x int CONSTRAINT redefined_stored CHECK (ro.sqlg(x)));
SELECT * FROM ro.ordered() WHERE constraint_name = 'redefined_stored';
CREATE OR REPLACE FUNCTION ro.sqlg(int) RETURNS boolean LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC SELECT ro.pos($1); END;
SELECT * FROM ro.ordered() WHERE constraint_name = 'redefined_stored';

-- A constraint made while event triggers did not fire gets its dependency by hand; not in a
-- read-only transaction (25006).
SET session_replication_role = replica;
CREATE TABLE ro.unseen (x int CONSTRAINT unseen_stored CHECK (ro.pos(x)));
RESET session_replication_role;
SELECT * FROM ro.ordered() WHERE constraint_name = 'unseen_stored';
-- Only the owner of the table (or a superuser) changes anything: another role's call takes no
-- lock and writes nothing.
GRANT USAGE ON SCHEMA ro TO ro_user;
SET ROLE ro_user;
SELECT wasm.depend_on_modules(oid) AS not_the_owner FROM pg_constraint WHERE conname = 'unseen_stored';
RESET ROLE;
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'object'
   AND classid = 'pg_constraint'::regclass AND pid = pg_backend_pid();
BEGIN READ ONLY;
SELECT sqlstate_of($$SELECT wasm.depend_on_modules(oid) FROM pg_constraint WHERE conname = 'unseen_stored'$$)
    AS read_only;
ROLLBACK;
SELECT wasm.depend_on_modules(oid) AS recorded FROM pg_constraint WHERE conname = 'unseen_stored';

-- A dependency is never recorded for a constraint being dropped: wasm.depend_on_modules waits
-- for the dropping transaction (here until lock_timeout: 55P03), and afterwards finds nothing.
-- (Its dependency is deleted first, as if it had been made without the event trigger, so that
-- a call would record one.)
CREATE TABLE ro.doomed (x int CONSTRAINT doomed_stored CHECK (ro.pos(x)));
SELECT oid AS doomed FROM pg_constraint WHERE conname = 'doomed_stored' \gset
DELETE FROM pg_depend WHERE classid = 'pg_constraint'::regclass AND objid = :doomed
   AND refobjid = 'wasm.module_store_pkey'::regclass;
SELECT dblink_connect('ro_other', format('dbname=%s port=%s host=%s user=%s',
       current_database(), current_setting('port'),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_user));
SELECT dblink_exec('ro_other', 'BEGIN'), dblink_exec('ro_other', 'DROP TABLE ro.doomed');
SET lock_timeout = '200ms';
SELECT sqlstate_of('SELECT wasm.depend_on_modules(' || :doomed || ')') AS while_dropping;
RESET lock_timeout;
SELECT dblink_exec('ro_other', 'COMMIT'), dblink_disconnect('ro_other');
SELECT wasm.depend_on_modules(:doomed) AS after_drop,
       count(*) AS stray_rows FROM pg_depend WHERE classid = 'pg_constraint'::regclass AND objid = :doomed;

-- The event trigger runs as the role that ran the command, immune to that role's objects: its
-- search_path is pinned (shown), and every operator is qualified besides, so an operator "="
-- (oid, oid) ahead of pg_catalog in the role's search_path is never called.
SELECT proconfig FROM pg_proc WHERE oid = 'wasm.order_constraints_after_modules'::regproc;
GRANT USAGE, CREATE ON SCHEMA ro TO ro_user;
SET ROLE ro_user;
CREATE FUNCTION ro.evil_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
    $f$ BEGIN RAISE EXCEPTION 'the caller''s operator ran'; END $f$;
CREATE OPERATOR ro.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = ro.evil_eq);
SET search_path = ro, pg_catalog;
CREATE TABLE ro.u (x int CONSTRAINT u_stored CHECK (ro.pos(x)));
RESET search_path;
RESET ROLE;
SELECT * FROM ro.ordered() WHERE constraint_name = 'u_stored';

-- A command touches only constraints owned by the owner of what it (re)defines: ro_user's
-- constraint over the superuser's function keeps its dependency when the superuser redefines the
-- function not to call wasm (its owner brings it in step by hand), while the superuser's own
-- constraint follows.
CREATE TABLE ro.theirs (x int);
ALTER TABLE ro.theirs OWNER TO ro_user;
SET ROLE ro_user;
ALTER TABLE ro.theirs ADD CONSTRAINT theirs_stored CHECK (ro.sqlg(x));
RESET ROLE;
CREATE OR REPLACE FUNCTION ro.sqlg(int) RETURNS boolean LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC SELECT $1 > 0; END;
SELECT * FROM ro.ordered() WHERE constraint_name IN ('redefined_stored', 'theirs_stored');
SET ROLE ro_user;
SELECT wasm.depend_on_modules(oid) AS brought_in_step FROM pg_constraint WHERE conname = 'theirs_stored';
RESET ROLE;
DROP TABLE ro.theirs;

-- A role that may not call wasm.depend_on_modules (an administrator revoked it) still runs its
-- DDL; its constraints just get no dependency.
REVOKE EXECUTE ON FUNCTION wasm.depend_on_modules(oid) FROM PUBLIC;
SET ROLE ro_user;
CREATE TABLE ro.revoked (x int CONSTRAINT revoked_stored CHECK (ro.pos(x)));
RESET ROLE;
GRANT EXECUTE ON FUNCTION wasm.depend_on_modules(oid) TO PUBLIC;
SELECT * FROM ro.ordered() WHERE constraint_name = 'revoked_stored';
DROP TABLE ro.revoked;

-- The dependency does not get in the way of dropping the constraint, its table or its function.
ALTER TABLE ro.u DROP CONSTRAINT u_stored;
DROP TABLE ro.u;
DROP FUNCTION ro.pos(int) CASCADE;
SELECT * FROM ro.ordered();

DROP SCHEMA ro CASCADE;
SELECT wasm.unload('ro_mod');
DROP ROLE ro_user;

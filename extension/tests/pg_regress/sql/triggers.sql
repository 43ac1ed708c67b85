-- Trigger functions in wasm (docs/abi.md, "Triggers"): RETURNS trigger, the event as JSON text
-- in, what to do as JSON text out. A WAT module pins the protocol down byte by byte; the Rust
-- SDK (#[trigger], examples/rust/triggers) and C (plwasm.h, examples/c) use it as authors would.
SET client_min_messages = notice;
SELECT wasm.load('trg', wasm.wat($$
(module
  (import "plwasm" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    (local.get $p))
  (data (i32.const 1024) "\"skip\"")
  (data (i32.const 1040) "null")
  (data (i32.const 1056) "{\"b\":\"changed\"}")
  (data (i32.const 1088) "[1]")
  (data (i32.const 1104) "{\"nope\":1}")
  (data (i32.const 1120) "{\"a\":\"x\"}")
  (data (i32.const 1136) "\"unchanged\"")
  (data (i32.const 1152) "{\"c\":null,\"a\":7}")
  (data (i32.const 1184) "{")
  (func $ret (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  ;; Each export first shows the event it got (a NOTICE), then returns its fixed result.
  (func $show (param $p i32) (param $n i32)
    (call $log (i32.const 3) (local.get $p) (local.get $n)))
  (func (export "show") (param i32 i32) (result i64)
    (call $show (local.get 0) (local.get 1)) (i64.const 0))
  (func (export "quiet") (param i32 i32) (result i64) (i64.const 0))
  (func (export "skip") (param i32 i32) (result i64)
    (call $show (local.get 0) (local.get 1)) (call $ret (i32.const 1024) (i32.const 6)))
  (func (export "null") (param i32 i32) (result i64) (call $ret (i32.const 1040) (i32.const 4)))
  (func (export "change") (param i32 i32) (result i64)
    (call $show (local.get 0) (local.get 1)) (call $ret (i32.const 1056) (i32.const 15)))
  (func (export "array") (param i32 i32) (result i64) (call $ret (i32.const 1088) (i32.const 3)))
  (func (export "unknown_column") (param i32 i32) (result i64) (call $ret (i32.const 1104) (i32.const 10)))
  (func (export "bad_value") (param i32 i32) (result i64) (call $ret (i32.const 1120) (i32.const 9)))
  (func (export "unchanged") (param i32 i32) (result i64) (call $ret (i32.const 1136) (i32.const 11)))
  (func (export "set_a_null_c") (param i32 i32) (result i64) (call $ret (i32.const 1152) (i32.const 16)))
  (func (export "not_json") (param i32 i32) (result i64) (call $ret (i32.const 1184) (i32.const 1)))
  (func (export "trap") (param i32 i32) (result i64) unreachable)
  (func (export "scalar") (param i32) (result i32) (local.get 0)))
$$));
CREATE FUNCTION trg_show() RETURNS trigger LANGUAGE wasm AS 'trg:show';
CREATE FUNCTION trg_quiet() RETURNS trigger LANGUAGE wasm AS 'trg:quiet';
CREATE FUNCTION trg_skip() RETURNS trigger LANGUAGE wasm AS 'trg:skip';
CREATE FUNCTION trg_null() RETURNS trigger LANGUAGE wasm AS 'trg:null';
CREATE FUNCTION trg_change() RETURNS trigger LANGUAGE wasm AS 'trg:change';
CREATE FUNCTION trg_array() RETURNS trigger LANGUAGE wasm AS 'trg:array';
CREATE FUNCTION trg_unknown_column() RETURNS trigger LANGUAGE wasm AS 'trg:unknown_column';
CREATE FUNCTION trg_bad_value() RETURNS trigger LANGUAGE wasm AS 'trg:bad_value';
CREATE FUNCTION trg_unchanged() RETURNS trigger LANGUAGE wasm AS 'trg:unchanged';
CREATE FUNCTION trg_set_a_null_c() RETURNS trigger LANGUAGE wasm AS 'trg:set_a_null_c';
CREATE FUNCTION trg_not_json() RETURNS trigger LANGUAGE wasm AS 'trg:not_json';
CREATE FUNCTION trg_trap() RETURNS trigger LANGUAGE wasm AS 'trg:trap';

-- The validator: a trigger function takes no declared arguments (the trigger's arguments are in
-- the event), cannot return a set, and needs an export (i32, i32) -> (i64).
CREATE FUNCTION trg_args(int) RETURNS trigger LANGUAGE wasm AS 'trg:show';
CREATE FUNCTION trg_wrong() RETURNS trigger LANGUAGE wasm AS 'trg:scalar';
SELECT sqlstate_of($$CREATE FUNCTION trg_args(int) RETURNS trigger LANGUAGE wasm AS 'trg:show'$$) AS with_arguments,
       sqlstate_of($$CREATE FUNCTION trg_wrong() RETURNS trigger LANGUAGE wasm AS 'trg:scalar'$$) AS wrong_signature,
       sqlstate_of($$CREATE FUNCTION trg_set() RETURNS SETOF trigger LANGUAGE wasm AS 'trg:show'$$) AS setof,
       sqlstate_of($$CREATE FUNCTION trg_event() RETURNS event_trigger LANGUAGE wasm AS 'trg:show'$$) AS event_trigger;
-- A trigger function called as a plain function.
SELECT trg_show();

-- BEFORE row triggers: the event, then each kind of result.
CREATE TABLE items (a int, b text, c numeric);
CREATE TRIGGER t1_show BEFORE INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION trg_show('x', 'it''s', '"q"\');
INSERT INTO items VALUES (1, 'one', 1.50), (2, NULL, 2.25);
UPDATE items SET b = 'uno' WHERE a = 1;
DELETE FROM items WHERE a = 2;
DROP TRIGGER t1_show ON items;
-- An object changes only the columns it names (b); a and c keep theirs.
CREATE TRIGGER t2_change BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION trg_change();
UPDATE items SET c = 9.99 RETURNING *;
DROP TRIGGER t2_change ON items;
-- Columns set to null, and to a value, in the same result.
CREATE TRIGGER t2_set BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_set_a_null_c();
INSERT INTO items VALUES (3, 'three', 3.0) RETURNING *;
DROP TRIGGER t2_set ON items;
-- "skip" and null skip the row's operation; "unchanged" and an empty result go on with it.
CREATE TRIGGER t3_skip BEFORE DELETE ON items FOR EACH ROW EXECUTE FUNCTION trg_skip();
DELETE FROM items;
DROP TRIGGER t3_skip ON items;
CREATE TRIGGER t3_null BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_null();
INSERT INTO items VALUES (4, 'four', 4);
DROP TRIGGER t3_null ON items;
CREATE TRIGGER t3_unchanged BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_unchanged();
CREATE TRIGGER t3_quiet BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_quiet();
INSERT INTO items VALUES (5, 'five', 5) RETURNING *;
DROP TRIGGER t3_unchanged ON items;
DROP TRIGGER t3_quiet ON items;
SELECT * FROM items ORDER BY a NULLS FIRST;

-- Results that are not one of those are errors naming the function, and nothing is changed.
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_array();
INSERT INTO items VALUES (6, 'six', 6);
DROP TRIGGER t4 ON items;
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_unknown_column();
INSERT INTO items VALUES (6, 'six', 6);
DROP TRIGGER t4 ON items;
\set VERBOSITY default
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_bad_value();
INSERT INTO items VALUES (6, 'six', 6);
DROP TRIGGER t4 ON items;
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_not_json();
INSERT INTO items VALUES (6, 'six', 6);
DROP TRIGGER t4 ON items;
\set VERBOSITY terse
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_trap();
INSERT INTO items VALUES (6, 'six', 6);
SELECT sqlstate_of($$INSERT INTO items VALUES (6, 'six', 6)$$) AS trap;
DROP TRIGGER t4 ON items;
CREATE TRIGGER t4 BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_array();
SELECT sqlstate_of($$INSERT INTO items VALUES (6, 'six', 6)$$) AS array_result,
       sqlstate_of($$INSERT INTO items SELECT 6, 'six', 6$$) AS again;
DROP TRIGGER t4 ON items;
SELECT count(*) AS rows_after_errors FROM items;

-- AFTER row triggers see the rows as stored; Postgres ignores their result, so even a result
-- that would be an error in a BEFORE trigger is ignored.
CREATE TRIGGER t5_show AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION trg_show();
CREATE TRIGGER t5_array AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION trg_array();
INSERT INTO items VALUES (7, 'seven', 7);
UPDATE items SET b = 'SEVEN' WHERE a = 7;
DELETE FROM items WHERE a = 7;
DROP TRIGGER t5_show ON items;
DROP TRIGGER t5_array ON items;

-- Statement-level triggers, TRUNCATE included: no rows.
CREATE TRIGGER t6_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION trg_show('before');
CREATE TRIGGER t6_after AFTER TRUNCATE ON items FOR EACH STATEMENT EXECUTE FUNCTION trg_skip();
UPDATE items SET b = b WHERE false;
TRUNCATE items;
DROP TRIGGER t6_before ON items;
DROP TRIGGER t6_after ON items;

-- INSTEAD OF triggers on a view: the row they return is what RETURNING shows; skip is "no row".
CREATE VIEW items_view AS SELECT a, b, c FROM items;
CREATE TRIGGER t7 INSTEAD OF INSERT OR UPDATE ON items_view FOR EACH ROW EXECUTE FUNCTION trg_change();
CREATE TRIGGER t7_delete INSTEAD OF DELETE ON items_view FOR EACH ROW EXECUTE FUNCTION trg_skip();
INSERT INTO items_view VALUES (8, 'eight', 8) RETURNING *;
INSERT INTO items VALUES (9, 'nine', 9);
UPDATE items_view SET c = 90 RETURNING *;
DELETE FROM items_view;
DROP VIEW items_view;

-- Rows with dropped and generated columns, a composite column, and a table changed by ALTER
-- TABLE between two calls of the same trigger (its row decoder is remade).
CREATE TYPE trg_pair AS (x int, y text);
CREATE TABLE wide (id int, gone text, p trg_pair, d date, g int GENERATED ALWAYS AS (id * 10) STORED,
                   b text);
ALTER TABLE wide DROP COLUMN gone;
CREATE TRIGGER t8 BEFORE INSERT OR UPDATE ON wide FOR EACH ROW EXECUTE FUNCTION trg_change();
INSERT INTO wide (id, p, d, b) VALUES (1, (2, 'two'), '2026-11-29', 'b') RETURNING *;
ALTER TABLE wide ADD COLUMN e numeric DEFAULT 1.5;
UPDATE wide SET id = 2 RETURNING *;
ALTER TABLE wide DROP COLUMN b;
SELECT sqlstate_of($$UPDATE wide SET id = 3$$) AS no_column_b_any_more;
-- The columns a result does not name keep their values exactly: a json column keeps its
-- duplicate keys and spacing, an array its lower bound, a float8 all its digits.
CREATE TABLE exact (b text, j json, arr int[], f float8);
INSERT INTO exact VALUES ('b', '{"z": 1,  "a": [1, 2], "z": 2}', '[0:2]={7,8,9}', 0.1234567890123456789);
CREATE TRIGGER t9 BEFORE UPDATE ON exact FOR EACH ROW EXECUTE FUNCTION trg_change();
SET client_min_messages = warning;
SET extra_float_digits = -3;
UPDATE exact SET f = f;
RESET extra_float_digits;
RESET client_min_messages;
SELECT b, j, arr, f = 0.1234567890123456789 AS same_float FROM exact;
DROP TABLE exact;
-- A row larger than the module's memory may be is refused before its event is built.
CREATE TABLE big_rows (b text, v text);
INSERT INTO big_rows VALUES ('b', repeat('x', 3000000));
CREATE TRIGGER t10 BEFORE UPDATE ON big_rows FOR EACH ROW EXECUTE FUNCTION trg_quiet();
SET wasm.max_memory = '2MB';
UPDATE big_rows SET b = 'c';
RESET wasm.max_memory;
DROP TABLE big_rows;
-- The same function on two tables.
CREATE TABLE other (b text, n int);
CREATE TRIGGER t8 BEFORE INSERT ON other FOR EACH ROW EXECUTE FUNCTION trg_change();
INSERT INTO other VALUES ('x', 1) RETURNING *;
DROP TABLE wide, other;
DROP TYPE trg_pair;

-- The Rust SDK: #[trigger] functions of examples/rust/triggers, declared by create_functions.
SELECT wasm.load('triggers', pg_read_binary_file(:'wasmdir' || '/triggers.wasm'));
SELECT * FROM wasm.create_functions('triggers') ORDER BY 1;
CREATE TABLE customers (id int PRIMARY KEY, email text, name text, status text DEFAULT 'open');
CREATE TRIGGER normalize BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION normalize_customer();
CREATE TRIGGER protect BEFORE UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION protect_rows('status', 'locked');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_changes();
INSERT INTO customers VALUES (1, '  Ann@Example.COM ', ' Ann   Lee ');
INSERT INTO customers VALUES (2, 'bob@example.com', 'Bob', 'locked');
INSERT INTO customers VALUES (3, 'nobody', 'Nemo');
SELECT sqlstate_of($$INSERT INTO customers VALUES (3, 'nobody', 'Nemo')$$) AS bad_email;
UPDATE customers SET name = 'Ann  B. Lee';
DELETE FROM customers;
SELECT * FROM customers ORDER BY id;
-- check_customer reads customers with a query (as the inserting role): it needs the module's
-- query capability.
CREATE TABLE orders (id int, customer_id bigint, qty int);
CREATE TRIGGER check_customer BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION check_customer();
INSERT INTO orders VALUES (1, 2, 1);
SELECT wasm.set_capabilities('triggers', '{query}');
INSERT INTO orders VALUES (1, 2, 1);
INSERT INTO orders VALUES (1, 9, 1);
INSERT INTO customers VALUES (4, 'dee@example.com', 'Dee');
INSERT INTO orders VALUES (1, 4, 1);
SELECT * FROM orders;
DROP TABLE orders;
-- Its Err result is an ERROR (P0001) with its message.
DROP TRIGGER protect ON customers;
CREATE TRIGGER protect_wrong BEFORE DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION protect_rows('status');
DELETE FROM customers;
DROP TABLE customers;

-- C (plwasm.h): examples/c/c_udfs.c's c_guard skips row DELETEs and refuses TRUNCATE.
SELECT wasm.load('c_triggers', pg_read_binary_file(:'wasmdir' || '/c_udfs.wasm'));
CREATE FUNCTION c_guard() RETURNS trigger LANGUAGE wasm AS 'c_triggers:c_guard';
CREATE TABLE guarded (x int);
CREATE TRIGGER g BEFORE INSERT OR DELETE ON guarded FOR EACH ROW EXECUTE FUNCTION c_guard();
CREATE TRIGGER g_truncate BEFORE TRUNCATE ON guarded FOR EACH STATEMENT EXECUTE FUNCTION c_guard();
INSERT INTO guarded VALUES (1), (2);
DELETE FROM guarded WHERE x = 1;
SELECT sqlstate_of($$TRUNCATE guarded$$) AS truncate;
SELECT * FROM guarded ORDER BY x;
-- ... and c_query runs a read-only query (plwasm_query), once the module may.
CREATE FUNCTION c_query(sql text) RETURNS text LANGUAGE wasm AS 'c_triggers:c_query';
SELECT wasm.set_capabilities('c_triggers', '{query}');
SELECT c_query('SELECT x FROM guarded ORDER BY x');
DROP FUNCTION c_query(text);
DROP TABLE guarded;

DROP TABLE items;
DROP FUNCTION c_guard();
SELECT wasm.unload('c_triggers');
SELECT wasm.unload('triggers', cascade => true);
SELECT wasm.unload('trg', cascade => true);

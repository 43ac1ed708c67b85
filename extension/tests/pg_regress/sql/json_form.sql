-- ABI v1 JSON form: every type without a native encoding (numeric, date/time, uuid, enums,
-- domains, ranges, composite types, records, arrays other than the packed ones) travels as the
-- JSON Postgres's to_json prints, and results are parsed back as jsonb_populate_record would.
-- The module echoes its argument, so f(x) shows the JSON form in and the conversion out; a text
-- argument echoed as a typed result shows how results are checked.
SELECT wasm.load('jf', wasm.wat($$
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (func (export "plwasm_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.and (i32.add (i32.add (global.get $next) (local.get $len)) (i32.const 7))
                               (i32.const -8)))
    (block $fits
      (loop $grow
        (br_if $fits (i32.le_u (global.get $next) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then (return (i32.const 0))))
        (br $grow)))
    (local.get $p))
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
  (func (export "echo") (param i32 i32) (result i64) (call $pack (local.get 0) (local.get 1)))
  (func (export "echo2") (param i32 i32 i32 i32) (result i64) (call $pack (local.get 0) (local.get 1)))
  (func (export "len") (param i32 i32) (result i32) (local.get 1))
  (data (i32.const 16) "1\00x")
  (func (export "nul_json") (result i64) (call $pack (i32.const 16) (i32.const 3))))
$$));

-- JSON form of arguments, seen as text (the echo's result is declared text).
CREATE FUNCTION form_numeric(numeric) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_date(date) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_ts(timestamptz) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_uuid(uuid) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_text_array(text[]) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_int_matrix(numeric[]) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_range(int4range) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION form_record(record) RETURNS text LANGUAGE wasm STRICT AS 'jf:echo';
SET TimeZone = 'UTC';
SELECT form_numeric(12.50) AS numeric, form_numeric('NaN') AS nan, form_date('2026-11-27') AS date,
       form_ts('2026-11-27 13:45:00+00') AS timestamptz;
SELECT form_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11') AS uuid, form_range('[1,5)') AS range;
SELECT form_text_array(ARRAY['a', NULL, 'c"d']) AS text_array,
       form_int_matrix('{{1,2},{3,NULL}}') AS matrix, form_text_array('{}') AS empty;
SELECT form_record(ROW(1, 'two', NULL::date)) AS anonymous_record;

-- Enums, domains and composite types, both ways.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN percent AS numeric CHECK (VALUE BETWEEN 0 AND 100);
CREATE TYPE point2d AS (x float8, y float8, label text);
CREATE TYPE segment AS (a point2d, b point2d, tags text[]);
CREATE FUNCTION echo_mood(mood) RETURNS mood LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_percent(percent) RETURNS percent LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_point(point2d) RETURNS point2d LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_segment(segment) RETURNS segment LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_numeric(numeric) RETURNS numeric LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_interval(interval) RETURNS interval LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_ts_array(timestamp[]) RETURNS timestamp[] LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION echo_int_matrix(numeric[]) RETURNS numeric[] LANGUAGE wasm STRICT AS 'jf:echo';
SELECT echo_mood('happy') AS mood, echo_percent(42.5) AS percent, echo_numeric(-0.000123) AS numeric,
       echo_interval('1 day 02:03:04') AS interval;
SELECT echo_point(ROW(1.5, -2, 'p')::point2d) AS point;
SELECT (echo_point(ROW(1.5, -2, NULL)::point2d)).*;
SELECT echo_segment(ROW(ROW(0, 0, 'o'), ROW(3, 4, NULL), ARRAY['x', NULL])::segment) AS segment;
SELECT echo_ts_array(ARRAY['2026-01-01 10:00', NULL]::timestamp[]) AS ts_array,
       echo_int_matrix('{{1,2},{3,NULL}}') AS matrix;
-- Round trips of a whole table's worth of values.
SELECT count(*) FILTER (WHERE echo_numeric(n) = n) AS numeric_same,
       count(*) FILTER (WHERE echo_point(ROW(n, -n, n::text)::point2d) = ROW(n, -n, n::text)::point2d) AS point_same
  FROM (SELECT (i / 7.0)::numeric AS n FROM generate_series(1, 1000) i) t;

-- Results are converted from JSON text: a text argument echoed as a typed result.
CREATE FUNCTION to_numeric(text) RETURNS numeric LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_date(text) RETURNS date LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_mood(text) RETURNS mood LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_percent(text) RETURNS percent LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_point(text) RETURNS point2d LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_int_array(text) RETURNS numeric[] LANGUAGE wasm STRICT AS 'jf:echo';
SELECT to_numeric('3.25') AS number, to_numeric('"7"') AS string, to_numeric('null') IS NULL AS null_is_null,
       to_date('"2026-02-28"') AS date, to_mood('"ok"') AS mood, to_int_array('[[1,2],[3,4]]') AS matrix;
SELECT to_point('{"x": 1, "label": "missing y is NULL"}') AS point, to_point('null') IS NULL AS null_row;
-- Numbers keep every digit (they are never read as floating point).
SELECT to_numeric('123456789012345678901234567890.000000001') AS exact, to_numeric('1e40') AS big,
       to_numeric(' "\u0037\u0035" ') AS escaped_string;
\set VERBOSITY default
-- Mismatches are errors with the function named.
SELECT to_date('"yesterday-ish"');
SELECT to_mood('"grumpy"');
SELECT to_percent('101');
SELECT to_numeric('{oops');
SELECT to_point('{"x": 1, "z": 2}');
SELECT to_point('[1, 2]');
\set VERBOSITY terse
-- The SQLSTATEs of the first and third above: the type's own (22007, 23514).
SELECT sqlstate_of($$SELECT to_date('"yesterday-ish"')$$) AS bad_date,
       sqlstate_of($$SELECT to_percent('101')$$) AS domain_check;
SELECT sqlstate_of($$SELECT to_numeric('"abc"')$$) AS bad_number,
       sqlstate_of($$SELECT to_int_array('[[1,2],[3]]')$$) AS ragged,
       sqlstate_of($$SELECT to_point('{"x": "east"}')$$) AS bad_field;
-- JSON text is text: a NUL byte is refused, not read up to.
CREATE FUNCTION nul_numeric() RETURNS numeric LANGUAGE wasm AS 'jf:nul_json';
SELECT sqlstate_of($$SELECT nul_numeric()$$) AS nul;

-- NULL arguments follow the rules of every variable-length value (values, host_api); a STRICT
-- function is not called.
SELECT echo_point(NULL) IS NULL AS strict_null;

-- Large values: a 3 MB numeric[] and a composite with a 2 MB text field.
SELECT array_length(echo_int_matrix(array_agg(i::numeric)), 1) AS elements,
       length(echo_int_matrix(array_agg(i::numeric))::text) AS text_length
  FROM generate_series(1, 400000) i;
SELECT length((echo_point(ROW(0, 0, repeat('é', 1000000))::point2d)).label) AS label_chars;

-- A composite type changed between two calls at the same call site (one PL/pgSQL expression
-- in one transaction): the second result is built for the new layout.
CREATE TYPE pair AS (a int, b float8);
CREATE FUNCTION to_pair(text) RETURNS pair LANGUAGE wasm STRICT AS 'jf:echo';
CREATE TEMP TABLE seen (i int, v text);
DO $$
DECLARE
    v text;
BEGIN
    FOR i IN 1..2 LOOP
        -- a simple expression: one call site. 2.50 reads as 2.5 in float8 and stays 2.50 in
        -- text, so the two rows differ only if the second is built for the new layout.
        v := to_pair('{"a": 1, "b": 2.50}')::text;
        INSERT INTO seen VALUES (i, v);
        IF i = 1 THEN
            ALTER TYPE pair ALTER ATTRIBUTE b TYPE text;
        END IF;
    END LOOP;
END
$$;
SELECT * FROM seen ORDER BY i;

-- An empty object is a row of NULLs (not a NULL row); a domain over a composite type is built
-- from an object and its constraint checked.
SELECT to_point('{}') AS empty_object, to_point('{}')::text IS NULL AS is_null_row;
CREATE DOMAIN east_point AS point2d CHECK ((VALUE).x >= 0);
CREATE FUNCTION to_east_point(text) RETURNS east_point LANGUAGE wasm STRICT AS 'jf:echo';
SELECT to_east_point('{"x": 2, "y": 1}') AS east,
       sqlstate_of($$SELECT to_east_point('{"x": -2}')$$) AS west;

-- Domains are checked even for missing keys and JSON null: a NOT NULL domain column that the
-- object leaves out is an ERROR (23502), as jsonb_to_record has it, in a row and as a single
-- value.
CREATE DOMAIN required_int AS int NOT NULL;
CREATE TYPE with_required AS (k required_int, note text);
CREATE FUNCTION to_with_required(text) RETURNS with_required LANGUAGE wasm STRICT AS 'jf:echo';
CREATE FUNCTION to_required(text) RETURNS required_int LANGUAGE wasm STRICT AS 'jf:echo';
SELECT to_with_required('{"k": 1}') AS present,
       sqlstate_of($$SELECT to_with_required('{"note": "no k"}')$$) AS missing_key,
       sqlstate_of($$SELECT to_with_required('{}')$$) AS empty_object,
       sqlstate_of($$SELECT to_required('null')$$) AS null_value;
-- A domain over jsonb keeps a JSON string a string; a number jsonb prints differently goes
-- through jsonb (1E2 is 100, -0 is 0).
CREATE DOMAIN doc AS jsonb;
CREATE FUNCTION to_doc(text) RETURNS doc LANGUAGE wasm STRICT AS 'jf:echo';
CREATE DOMAIN label AS text;
CREATE FUNCTION to_label(text) RETURNS label LANGUAGE wasm STRICT AS 'jf:echo';
SELECT to_doc('"abc"') AS string, to_doc('"[1,2]"') AS string_not_array, to_doc('[1, 2]') AS array,
       to_numeric('1E2') AS exponent, to_label('1E2') AS label_exponent, to_label('-0') AS label_negative_zero;

-- Conversion errors caught by the caller leave the call site's decoders usable: one PL/pgSQL
-- expression (one call site per function) alternates good and bad results.
CREATE TEMP TABLE decoded (i int, point text, matrix text, failed text);
DO $$
DECLARE
    p text;
    m text;
BEGIN
    FOR i IN 1..6 LOOP
        BEGIN
            p := to_point(CASE WHEN i % 2 = 0 THEN '{"x": "east"}' ELSE format('{"x": %s}', i) END)::text;
            m := to_int_array(CASE WHEN i % 3 = 0 THEN '[[1], [2, 3]]' ELSE format('[[%s, 1]]', i) END)::text;
            INSERT INTO decoded VALUES (i, p, m, NULL);
        EXCEPTION WHEN others THEN
            INSERT INTO decoded VALUES (i, NULL, NULL, SQLSTATE);
        END;
    END LOOP;
END
$$;
SELECT * FROM decoded ORDER BY i;

-- Records: OUT parameters, RETURNS TABLE and a column definition list.
CREATE FUNCTION split_point(text, OUT x int, OUT y int) LANGUAGE wasm STRICT AS 'jf:echo';
SELECT * FROM split_point('{"x": 1, "y": 2}');
SELECT split_point('{"y": 5}') AS partial;
CREATE FUNCTION any_record(text) RETURNS record LANGUAGE wasm STRICT AS 'jf:echo';
SELECT * FROM any_record('{"a": 1, "b": "two"}') AS r(a int, b text);
SELECT sqlstate_of($$SELECT any_record('{}')$$) AS record_needs_columns;

-- Set-returning functions with composite rows: SETOF a composite type and RETURNS TABLE.
SELECT wasm.load('rows', wasm.wat($$
(module
  (import "plwasm" "emit_bytes" (func $emit (param i32 i32)))
  (import "plwasm" "emit_null" (func $emit_null))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"x\": 1, \"y\": 2, \"label\": \"a\"}")
  (data (i32.const 64) "{\"x\": 3}")
  (data (i32.const 128) "{\"word\": \"hello\", \"n\": 5, \"at\": \"2026-11-27\"}")
  (data (i32.const 192) "{\"word\": \"nope\", \"n\": \"many\"}")
  (func (export "points")
    (call $emit (i32.const 0) (i32.const 30))
    (call $emit (i32.const 64) (i32.const 8))
    (call $emit_null))
  (func (export "words") (call $emit (i32.const 128) (i32.const 45)) (call $emit (i32.const 128) (i32.const 45)))
  (func (export "bad_words") (call $emit (i32.const 192) (i32.const 29)))
  (func (export "extra_key") (call $emit (i32.const 128) (i32.const 45))))
$$));
CREATE FUNCTION points() RETURNS SETOF point2d LANGUAGE wasm AS 'rows';
CREATE FUNCTION words() RETURNS TABLE (word text, n int, at date) LANGUAGE wasm AS 'rows';
CREATE FUNCTION bad_words() RETURNS TABLE (word text, n int) LANGUAGE wasm AS 'rows';
CREATE FUNCTION extra_key() RETURNS TABLE (word text, n int) LANGUAGE wasm AS 'rows';
SELECT * FROM points();
SELECT points() AS in_target_list;
SELECT w.word, w.n, w.at + 1 AS next_day FROM words() w;
SELECT count(*) FROM words(), LATERAL (SELECT * FROM points()) p;
SELECT sqlstate_of($$SELECT * FROM bad_words()$$) AS bad_row;
SELECT sqlstate_of($$SELECT * FROM extra_key()$$) AS unknown_column;

-- Types that cannot travel at all are refused at CREATE time.
SELECT sqlstate_of($$CREATE FUNCTION poly(anyelement) RETURNS int LANGUAGE wasm AS 'jf:len'$$) AS polymorphic;
SELECT sqlstate_of($$CREATE FUNCTION internal_arg(internal) RETURNS int LANGUAGE wasm AS 'jf:len'$$) AS internal;
-- The wasm signature of a JSON-form argument is (ptr, len): a scalar export does not fit.
SELECT sqlstate_of($$CREATE FUNCTION wrong(numeric) RETURNS int LANGUAGE wasm AS '(module (func (export "wrong") (param f64) (result i32) i32.const 0))'$$) AS signature;

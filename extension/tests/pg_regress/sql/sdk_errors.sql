-- How failures of a Rust module reach SQL (tests/sdk-errors, built with DWARF line tables during
-- the test run): a panic is SQLSTATE 38000 with DETAIL "panic at file:line", distinct from an Err
-- (P0001); traps carry a wasm backtrace with demangled names and file:line; recursion past the
-- module's own stack is 54001, like native recursion. Every message names the SQL function, the
-- module and the export.
CREATE SCHEMA errs;
SELECT wasm.load('sdk_errors', pg_read_binary_file(:'wasmdir' || '/sdk_errors.wasm'));
SELECT * FROM wasm.create_functions('sdk_errors', 'errs') ORDER BY 1;

SELECT errs.panics(0) AS no_panic, errs.fails(0) AS no_err, errs.recurse(1000) AS shallow,
       errs.unreachable_trap(0) AS no_trap;
SELECT t.q, sqlstate_of(t.q) AS outcome
  FROM (VALUES ('SELECT errs.panics(1)'), ('SELECT errs.fails(1)'), ('SELECT errs.recurse(100000000)'),
               ('SELECT errs.bad_pointer(3)'), ('SELECT errs.unreachable_trap(1)')) t(q);

\set VERBOSITY default
-- A panic: its message, and where it happened.
SELECT errs.panics(7);
-- An Err result: the author's message, raised by the function of that module and export.
SELECT errs.fails(7);
-- Recursion past the 1 MiB stack Rust keeps in linear memory: the frames of the recursing
-- function are one line and a count (the count depends on the compiler's frame sizes: shown as N).
\set VERBOSITY terse
CREATE FUNCTION errs.report_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || E'\n' || regexp_replace(detail, '\d+ more frames', 'N more frames') || E'\n' || hint;
END
$$;
SELECT errs.report_of('SELECT errs.recurse(100000000)') AS report;
\set VERBOSITY default
-- A load outside the module's memory: each frame with its source line (an export's wrapper and
-- the function inlined into it are one line).
SELECT errs.bad_pointer(3);
\set VERBOSITY terse
-- The backend is fine, and the same instance-per-module works after each failure.
SELECT errs.panics(0) AS after_panic, errs.recurse(10) AS after_overflow;

-- Modules without DWARF: names from the name section, and the function's offset.
-- Wasmer's own stack (no shadow stack) overflowing: 54001 too (Wasmer records no frames then).
\set VERBOSITY default
CREATE FUNCTION errs.spin(int) RETURNS int LANGUAGE wasm AS '(module
    (func $spin (export "spin") (param i32) (result i32)
      (i32.add (call $spin (i32.add (local.get 0) (i32.const 1))) (i32.const 1))))';
SELECT errs.spin(0);
-- Mutual recursion does not collapse: the trace stops at 20 lines.
CREATE FUNCTION errs.ping(int) RETURNS int LANGUAGE wasm AS '(module
    (func $ping (export "ping") (param i32) (result i32)
      (if (result i32) (i32.eqz (local.get 0))
        (then (i32.div_s (i32.const 1) (local.get 0)))
        (else (call $pong (i32.sub (local.get 0) (i32.const 1))))))
    (func $pong (param i32) (result i32) (call $ping (local.get 0))))';
SELECT errs.ping(30);
-- Names come from the module: control characters in them cannot add lines to the DETAIL.
CREATE FUNCTION errs.forged(int) RETURNS int LANGUAGE wasm AS '(module
    (func $"evil\0a  at fake (src/lib.rs:1)" (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
    (func (export "forged") (param i32) (result i32) (call 0 (local.get 0))))';
SELECT errs.forged(0);
-- A panic's file comes from the module too: it cannot add a line either.
CREATE FUNCTION errs.forged_panic(int) RETURNS int LANGUAGE wasm AS '(module
    (import "plwasm" "panic" (func $panic (param i32 i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "boom")
    (data (i32.const 16) "src/lib.rs:1\0awasm backtrace:\0a  at fake")
    (func (export "forged_panic") (param i32) (result i32)
      (call $panic (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 38) (i32.const 42))
      (i32.const 0)))';
SELECT errs.forged_panic(0);
\set VERBOSITY terse

-- An out-of-bounds access is 54001 only when the shadow stack really left memory: not for a
-- module whose memory is exported under another name, nor when its name section calls a
-- global plwasm added __stack_pointer.
CREATE FUNCTION errs.oob_named_memory(int) RETURNS int LANGUAGE wasm AS '(module
    (global $__stack_pointer (mut i32) (i32.const 65000))
    (memory (export "mem") 1)
    (func (export "oob_named_memory") (param i32) (result i32)
      (global.set $__stack_pointer (i32.const 65000))
      (i32.load (i32.const 70000))))';
CREATE FUNCTION errs.oob_full_stack(int) RETURNS int LANGUAGE wasm AS '(module
    (global $__stack_pointer (mut i32) (i32.const 65536))
    (memory (export "memory") 1)
    (func (export "oob_full_stack") (param i32) (result i32) (i32.load (i32.const 70000))))';
CREATE FUNCTION errs.oob_names_ours(int) RETURNS int LANGUAGE wasm AS '(module
    (memory (export "memory") 1)
    (func (export "oob_names_ours") (param i32) (result i32) (i32.load (i32.const 70000)))
    (@custom "name" "\07\12\01\01\0f__stack_pointer"))';
SELECT split_part(sqlstate_of($$SELECT errs.oob_named_memory(0)$$), ':', 1) AS named_memory,
       split_part(sqlstate_of($$SELECT errs.oob_full_stack(0)$$), ':', 1) AS empty_stack_at_top,
       split_part(sqlstate_of($$SELECT errs.oob_names_ours(0)$$), ':', 1) AS names_plwasm_global;

DROP SCHEMA errs CASCADE;
SELECT wasm.unload('sdk_errors');

-- WASI preview 1, deny by default. The modules are built from tests/wasi/ during the test run
-- (tests/regress.sh passes their directory as the psql variable wasmdir).
SET client_min_messages = notice;
SELECT wasm.load('c_hello', pg_read_binary_file(:'wasmdir' || '/c_hello.wasm'));
SELECT wasm.load('rust_hello', pg_read_binary_file(:'wasmdir' || '/rust_hello.wasm'));

-- C (clang, wasm32-wasi): printf reaches the client as NOTICE (stderr goes to the server log).
CREATE FUNCTION c_greet(int) RETURNS int LANGUAGE wasm AS 'c_hello:greet';
CREATE FUNCTION c_now() RETURNS int8 LANGUAGE wasm AS 'c_hello:now_seconds';
CREATE FUNCTION c_random_differs() RETURNS bool LANGUAGE wasm AS 'c_hello:random_differs';
CREATE FUNCTION c_open_passwd() RETURNS int LANGUAGE wasm AS 'c_hello:open_passwd';
CREATE FUNCTION c_quit(int) RETURNS void LANGUAGE wasm AS 'c_hello:quit';
SELECT c_greet(7) AS printed;
SELECT abs(c_now() - extract(epoch FROM clock_timestamp())::int8) < 60 AS clock_works;
SELECT c_random_differs() AS random_works;
-- Files are denied: there are no preopened directories (76 is ENOTCAPABLE).
SELECT c_open_passwd() AS open_result;
-- proc_exit(0) ends the call normally; another code is an ERROR. Either way the instance is done
-- and the next call gets a fresh one (count_calls counts the calls an instance has seen).
CREATE FUNCTION c_count() RETURNS int LANGUAGE wasm AS 'c_hello:count_calls';
SELECT c_count() AS first_call, c_count() AS second_call;
SELECT c_quit(0);
SELECT c_count() AS fresh_after_exit_0, c_count() AS second_call;
SELECT sqlstate_of('SELECT c_quit(3)');
SELECT c_count() AS fresh_after_exit_3;
SELECT c_greet(1) AS after_exit;
-- A function with a result that calls proc_exit(0) returns NULL.
CREATE FUNCTION exit_with_result() RETURNS int LANGUAGE wasm AS '(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (func (export "exit_with_result") (result i32) (call $exit (i32.const 0)) i32.const 5))';
SELECT exit_with_result() IS NULL AS null_after_exit;

-- Rust (wasm32-wasip1): println! and eprintln!, SystemTime, a randomly seeded HashMap hasher.
CREATE FUNCTION rs_shout(int) RETURNS int LANGUAGE wasm AS 'rust_hello:shout';
CREATE FUNCTION rs_now() RETURNS int8 LANGUAGE wasm AS 'rust_hello:now_seconds';
CREATE FUNCTION rs_random_differs() RETURNS bool LANGUAGE wasm AS 'rust_hello:random_differs';
CREATE FUNCTION rs_read_passwd() RETURNS bool LANGUAGE wasm AS 'rust_hello:read_passwd';
CREATE FUNCTION rs_env_count() RETURNS int LANGUAGE wasm AS 'rust_hello:env_count';
SELECT rs_shout(21) AS doubled;
SELECT abs(rs_now() - extract(epoch FROM clock_timestamp())::int8) < 60 AS clock_works;
SELECT rs_random_differs() AS random_works;
SELECT rs_read_passwd() AS read_host_file;
SELECT rs_env_count() AS environment_variables;

-- Output is bounded: 64kB per stream and call are kept, lines are cut at 4kB.
CREATE FUNCTION flood() RETURNS void LANGUAGE wasm AS $$
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "flood") (local $i i32)
    (memory.fill (i32.const 1024) (i32.const 120) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))))
$$;
SELECT flood();

-- Only wasi_snapshot_preview1, with exact signatures, is provided.
SELECT sqlstate_of($$SELECT wasm.load('wasix', wasm.wat('(module (import "wasix_32v1" "thread_spawn" (func (param i32) (result i32))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('bad_sig', wasm.wat('(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32))))'))$$);
SELECT sqlstate_of($$SELECT wasm.load('no_such', wasm.wat('(module (import "wasi_snapshot_preview1" "thread_spawn" (func (param i32) (result i32))))'))$$);

-- Sockets and polling are denied too (58 is ENOTSUP); nothing blocks in the host.
CREATE FUNCTION try_poll() RETURNS int LANGUAGE wasm AS $$
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "try_poll") (result i32)
    (i32.add
      (i32.mul (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)) (i32.const 100))
      (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))))
$$;
SELECT try_poll() AS poll_and_accept_errnos;
RESET client_min_messages;

-- This backend's module cache: what it holds (wasm.cache), its budget (wasm.cache_memory:
-- linear memory plus compiled code; idle instances are evicted, least recently used first,
-- instances in use never), and the calls of each function (wasm.stats).
SELECT wasm.load('cache_' || m, wasm.wat(format(
    '(module (memory 16) (func (export "f") (result i32) i32.const %s))', n)))
  FROM (VALUES ('a', 1), ('b', 2), ('c', 3)) v (m, n);
CREATE FUNCTION cache_a() RETURNS int LANGUAGE wasm AS 'cache_a:f';
CREATE FUNCTION cache_b() RETURNS int LANGUAGE wasm AS 'cache_b:f';
CREATE FUNCTION cache_c() RETURNS int LANGUAGE wasm AS 'cache_c:f';
SELECT cache_a(), cache_b(), cache_c();
-- Each instance has 16 pages (1MB) of linear memory; wasm.load stored the compiled code, so this
-- backend deserialized it. Not in use: the statement that called them has ended.
SELECT module, role = current_user AS mine, kind, memory_bytes, code_bytes > 0 AS has_code,
       in_use, hits, last_used <= now() + interval '1 hour' AS used, source
  FROM wasm.cache WHERE module LIKE 'cache\_%' ORDER BY module;
SELECT cache_a();
SELECT hits FROM wasm.cache WHERE module = 'cache_a';

-- A budget of 2MB holds one of these instances with room for code, not two: each statement's
-- new instance evicts the least recently used idle one.
SELECT evictions AS evictions_before FROM wasm.cache_usage() \gset
SET wasm.cache_memory = '2MB';
SELECT cache_b();
SELECT cache_c();
SELECT string_agg(module, ',' ORDER BY module) AS cached FROM wasm.cache WHERE module LIKE 'cache\_%';
SELECT evictions - :evictions_before > 0 AS evicted, cache_bytes <= budget_bytes AS within_budget,
       budget_bytes = 2 * 1024 * 1024 AS budget
  FROM wasm.cache_usage();
-- An evicted module is made again at its next call.
SELECT cache_a();
SELECT string_agg(module, ',' ORDER BY module) AS cached FROM wasm.cache WHERE module LIKE 'cache\_%';
-- Instances a running statement uses are never evicted: the budget is exceeded meanwhile.
SELECT cache_a(), cache_b(), cache_c(),
       (SELECT count(*) FROM wasm.cache WHERE module LIKE 'cache\_%' AND in_use) AS in_use,
       (SELECT cache_bytes > budget_bytes FROM wasm.cache_usage()) AS over_budget;
-- Once it ended, its instances are idle: the cache is back within the budget as soon as
-- anything looks at it (or resolves a module).
SELECT cache_bytes <= budget_bytes AS within_budget FROM wasm.cache_usage();
RESET wasm.cache_memory;
-- Compiled code stays for the backend's life (Wasmer frees machine code only with its engine):
-- an evicted instance is made again from the module this backend already has, without
-- deserializing or compiling it again.
SET wasm.cache_memory = '2MB';
SELECT compiled + from_artifact AS made_before FROM wasm.cache_stats() \gset
SELECT cache_a();
SELECT cache_b();
SELECT cache_a();
SELECT compiled + from_artifact - :made_before AS made_again FROM wasm.cache_stats();
SELECT kind, source FROM wasm.cache WHERE module = 'cache_a';
RESET wasm.cache_memory;
-- Only superusers set it. Another role sees its own instances and statistics only (a superuser
-- sees all).
CREATE ROLE cache_user;
GRANT EXECUTE ON FUNCTION cache_a() TO cache_user;
SET ROLE cache_user;
SELECT sqlstate_of($$SET wasm.cache_memory = '1GB'$$);
SELECT count(*) AS others_visible FROM wasm.cache WHERE role <> 'cache_user';
SELECT cache_a();
SELECT module, role, kind FROM wasm.cache WHERE role IS NOT NULL;
SELECT function, role, calls FROM wasm.stats;
RESET ROLE;
SELECT cache_a();
SELECT count(DISTINCT role) AS superuser_sees_both FROM wasm.cache WHERE module = 'cache_a';
-- Per-backend views read this backend's state: never in a parallel worker.
SELECT p.proname, p.proparallel FROM pg_proc p
 WHERE p.pronamespace = 'wasm'::regnamespace
   AND p.proname IN ('cache_stats', 'cache_usage', 'cache_entries', 'function_stats', 'stats_reset')
 ORDER BY 1;
DROP OWNED BY cache_user;
DROP ROLE cache_user;

-- wasm.stats: calls, calls that failed in wasm, fuel; times only while track_functions is pl
-- or all (as Postgres times functions for pg_stat_user_functions).
SELECT wasm.stats_reset();
SET track_functions = 'none';
SELECT count(cache_a()) FROM generate_series(1, 5);
CREATE FUNCTION cache_trap() RETURNS int LANGUAGE wasm AS
    '(module (func (export "cache_trap") (result i32) unreachable))';
SELECT sqlstate_of('SELECT cache_trap()') FROM generate_series(1, 2);
SELECT function, role = current_user AS mine, module, export, calls, failures,
       fuel > 0 AS fuel_counted, timed_calls, total_time IS NULL AS untimed
  FROM wasm.stats ORDER BY function::text;
SET track_functions = 'pl';
SELECT count(cache_a()) FROM generate_series(1, 3);
SELECT calls, timed_calls, total_time >= max_time AND max_time > 0 AS timed
  FROM wasm.stats WHERE function = 'cache_a()'::regprocedure;
RESET track_functions;
-- Fuel counts the work done: a loop of 1000 iterations uses about 100 times the fuel of 10.
CREATE FUNCTION cache_loop(int) RETURNS int LANGUAGE wasm AS '(module (func (export "cache_loop")
    (param $n i32) (result i32) (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
    (local.get $i)))';
SELECT wasm.stats_reset();
SELECT cache_loop(10);
SELECT fuel AS fuel_10 FROM wasm.stats WHERE function = 'cache_loop(integer)'::regprocedure \gset
SELECT wasm.stats_reset();
SELECT cache_loop(1000);
SELECT fuel / :fuel_10 BETWEEN 50 AND 150 AS proportional
  FROM wasm.stats WHERE function = 'cache_loop(integer)'::regprocedure;
SELECT wasm.stats_reset();
SELECT count(*) AS after_reset FROM wasm.stats;

DROP FUNCTION cache_a(), cache_b(), cache_c(), cache_trap(), cache_loop(int);
SELECT wasm.unload('cache_' || m) FROM (VALUES ('a'), ('b'), ('c')) v (m);

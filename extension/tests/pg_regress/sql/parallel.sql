-- PARALLEL SAFE wasm functions run in parallel workers (each worker has its own instances) and in
-- the leader, which is in parallel mode during the query.
SELECT wasm.load('par', wasm.wat('(module (func (export "twice") (param i64) (result i64) local.get 0 i64.const 2 i64.mul))'));
CREATE FUNCTION twice(int8) RETURNS int8 LANGUAGE wasm IMMUTABLE STRICT PARALLEL SAFE AS 'par';
CREATE TABLE par_data AS SELECT i::int8 AS i FROM generate_series(1, 200000) i;
ANALYZE par_data;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT sum(twice(i)) FROM par_data;
SELECT sum(twice(i)) FROM par_data;
-- Without the leader's participation every row goes through a worker: both launched and called
-- wasm (each scanning half of the rows), and the sum is the same.
SET parallel_leader_participation = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(twice(i)) FROM par_data;
SELECT sum(twice(i)) FROM par_data;
-- Replaced: the workers of the next query see the new module too (still without the leader, so
-- the sum comes from the workers).
SELECT wasm.load('par', wasm.wat('(module (func (export "twice") (param i64) (result i64) local.get 0 i64.const 3 i64.mul))'), true);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(twice(i)) FROM par_data;
SELECT sum(twice(i)) FROM par_data;
RESET parallel_leader_participation;
RESET ALL;
DROP TABLE par_data;

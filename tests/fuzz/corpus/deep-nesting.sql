-- Deeply nested text and code: the WAT parser, the validator, plwasm's instrumentation and
-- Cranelift must neither overflow a stack (a backend crash) nor run past statement_timeout.
-- @stmt 0 wat expect=ok
SELECT length(wasm.wat('(module (func ' || repeat('(block ', 10000) || repeat(')', 10000) || '))'));
-- @stmt 1 wat expect=42601
SELECT length(wasm.wat('(module (func ' || repeat('(', 100000) || '))'));
-- @stmt 2 load expect=ok
SELECT wasm.load('corpus_deep', wasm.wat('(module (func (export "deep") (result i32) i32.const 1 '
    || repeat('(i32.add (i32.const 1) ', 10000) || repeat(')', 10000) || ')
    (func (export "blocks") (result i32) ' || repeat('(block (result i32) ', 10000) || 'i32.const 7' || repeat(')', 10000) || '))'));
-- @stmt 3 create expect=ok requires=2
CREATE FUNCTION fz.corpus_deep() RETURNS integer LANGUAGE wasm AS 'corpus_deep:deep';
-- @stmt 4 call expect=ok requires=3
SELECT fz.corpus_deep();
-- @stmt 5 create expect=42P13 requires=2
CREATE FUNCTION fz.corpus_blocks() RETURNS bigint LANGUAGE wasm AS 'corpus_deep:blocks';
-- @stmt 6 cleanup expect=ok
SELECT wasm.unload('corpus_deep', cascade => true);

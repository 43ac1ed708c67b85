-- Export names SQL and plwasm must handle with care: colons (everything after the first ':' of
-- the body is the export name), quotes, non-ASCII, and white space (the body is trimmed, so today a
-- name ending in white space cannot be bound: 42883 names the trimmed name; binding it would be
-- right too; an empty name is 'module:', 42P13).
-- @stmt 0 load expect=ok
SELECT wasm.load('corpus_names', wasm.wat('(module
    (func (export "a:b:c") (result i32) i32.const 1)
    (func (export "it''s \"q\"") (result i32) i32.const 2)
    (func (export "ünï 🦀") (result i32) i32.const 3)
    (func (export " lead") (result i32) i32.const 4)
    (func (export "trail ") (result i32) i32.const 5)
    (func (export "") (result i32) i32.const 6))'));
-- @stmt 1 create expect=ok requires=0
CREATE FUNCTION fz.corpus_n1() RETURNS integer LANGUAGE wasm AS 'corpus_names:a:b:c';
-- @stmt 2 create expect=ok requires=0
CREATE FUNCTION fz.corpus_n2() RETURNS integer LANGUAGE wasm AS 'corpus_names:it''s "q"';
-- @stmt 3 create expect=ok requires=0
CREATE FUNCTION fz.corpus_n3() RETURNS integer LANGUAGE wasm AS 'corpus_names:ünï 🦀';
-- @stmt 4 create expect=ok requires=0
CREATE FUNCTION fz.corpus_n4() RETURNS integer LANGUAGE wasm AS 'corpus_names: lead';
-- @stmt 5 call expect=ok requires=1
SELECT fz.corpus_n1() + fz.corpus_n2() + fz.corpus_n3() + fz.corpus_n4();
-- @stmt 6 create expect=ok|42883 requires=0
CREATE FUNCTION fz.corpus_n5() RETURNS integer LANGUAGE wasm AS 'corpus_names:trail ';
-- @stmt 7 create expect=42P13 requires=0
CREATE FUNCTION fz.corpus_n6() RETURNS integer LANGUAGE wasm AS 'corpus_names:';
-- @stmt 8 cleanup expect=ok
SELECT wasm.unload('corpus_names', cascade => true);

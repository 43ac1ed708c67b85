-- plwasm 0.1.0 -> 0.2.0. Run by ALTER EXTENSION plwasm UPDATE; tests/upgrade.sh checks that an
-- updated database has exactly the objects of a fresh CREATE EXTENSION of this version.
\echo Use "ALTER EXTENSION plwasm UPDATE TO '0.2.0'" to load this file. \quit

-- Writes that do not come through plwasm: logical replication's apply worker on a subscriber, a
-- superuser's SQL (extension/src/catalog/replicated.rs). A replicated or hand-written change of a
-- module reaches every backend's next statement, as plwasm's own writes do; a replicated
-- artifact (machine code for another cluster) is skipped, and each subscriber compiles its own.
CREATE FUNCTION wasm.module_store_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'plwasm_module_store_changed';
CREATE TRIGGER module_store_changed AFTER INSERT OR UPDATE OR DELETE ON wasm.module_store
    FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
ALTER TABLE wasm.module_store ENABLE ALWAYS TRIGGER module_store_changed;
CREATE FUNCTION wasm.artifact_not_replicated() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'plwasm_artifact_not_replicated';
CREATE TRIGGER artifact_not_replicated BEFORE INSERT OR UPDATE ON wasm.module_artifacts
    FOR EACH ROW EXECUTE FUNCTION wasm.artifact_not_replicated();
ALTER TABLE wasm.module_artifacts ENABLE REPLICA TRIGGER artifact_not_replicated;

-- Previous versions of modules, for wasm.rollback (extension/src/catalog/history.rs): a replace
-- keeps the version it replaces, up to wasm.module_history of them per module. Kept in pg_dump
-- output, like the modules.
CREATE TABLE wasm.module_history (
    name        text NOT NULL,
    version     integer NOT NULL,
    bytes       bytea NOT NULL,
    sha256      text NOT NULL,
    exports     jsonb NOT NULL,
    loaded_at   timestamptz NOT NULL,
    replaced_at timestamptz NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE wasm.module_history IS
    'Previous versions of the modules in wasm.module_store, for wasm.rollback(); read through the wasm.module_versions view';
SELECT pg_catalog.pg_extension_config_dump('wasm.module_history', '');
REVOKE ALL ON wasm.module_history FROM PUBLIC;

-- Every module's current version and the previous ones kept for wasm.rollback. The current
-- version is numbered one above the newest previous one.
CREATE VIEW wasm.module_versions AS
SELECT m.name,
       coalesce((SELECT max(h.version) FROM wasm.module_history h WHERE h.name = m.name), 0)::bigint
           + 1 AS version,
       true AS current,
       pg_catalog.octet_length(m.bytes) AS size_bytes,
       m.sha256,
       m.loaded_at,
       NULL::timestamptz AS replaced_at,
       m.exports
  FROM wasm.module_store m
UNION ALL
SELECT h.name, h.version::bigint, false, pg_catalog.octet_length(h.bytes), h.sha256, h.loaded_at,
       h.replaced_at, h.exports
  FROM wasm.module_history h;
COMMENT ON VIEW wasm.module_versions IS
    'Versions of each loaded module: the current one and those wasm.rollback can restore';
GRANT SELECT ON wasm.module_versions TO PUBLIC;

-- Role whose members may give modules capabilities (as at CREATE EXTENSION).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'wasm_capabilities') THEN
        CREATE ROLE wasm_capabilities NOLOGIN;
    END IF;
END
$$;
-- Capabilities given to modules (extension/src/catalog/capabilities.rs), today only "query":
-- given with wasm.set_capabilities by superusers and members of wasm_capabilities. Kept in pg_dump
-- output, like the modules; everyone may see which module has which.
CREATE TABLE wasm.module_capabilities (
    name         text PRIMARY KEY,
    capabilities text[] NOT NULL,
    granted_by   text NOT NULL,
    granted_at   timestamptz NOT NULL
);
COMMENT ON TABLE wasm.module_capabilities IS
    'What each module may do beyond computing (query: read-only SQL as the calling role); set with wasm.set_capabilities()';
SELECT pg_catalog.pg_extension_config_dump('wasm.module_capabilities', '');
REVOKE ALL ON wasm.module_capabilities FROM PUBLIC;
GRANT SELECT ON wasm.module_capabilities TO PUBLIC;
CREATE TRIGGER module_capabilities_changed AFTER INSERT OR UPDATE OR DELETE
    ON wasm.module_capabilities FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
ALTER TABLE wasm.module_capabilities ENABLE ALWAYS TRIGGER module_capabilities_changed;

-- wasm.set_capabilities (extension/src/api.rs): giving is for superusers and members of
-- wasm_capabilities, taking away also for the module's owner.
CREATE FUNCTION wasm."set_capabilities"(
	"name" TEXT, /* & str */
	"capabilities" TEXT[] /* Vec < Option < String > > */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_capabilities_wrapper';
REVOKE ALL ON FUNCTION wasm.set_capabilities(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wasm.set_capabilities(text, text[]) TO wasm_loader, wasm_capabilities;

-- As at CREATE EXTENSION: the database's owner may read what pg_dump dumps.
DO $$
BEGIN
    EXECUTE pg_catalog.format('GRANT SELECT ON wasm.module_history TO %I',
        (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
END
$$;

-- wasm.rollback (extension/src/api.rs), for superusers and members of wasm_loader.
CREATE FUNCTION wasm."rollback"(
	"name" TEXT /* & str */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rollback_wrapper';
REVOKE ALL ON FUNCTION wasm.rollback(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wasm.rollback(text) TO wasm_loader;

-- The bounded cache and call statistics (runtime/cache.rs, call/stats.rs). They read this
-- backend's state, so not in parallel workers: wasm.cache_stats() becomes PARALLEL RESTRICTED
-- (altered, not dropped: views and grants that use it stay).
ALTER FUNCTION wasm.cache_stats() PARALLEL RESTRICTED;
CREATE FUNCTION wasm."cache_usage"() RETURNS TABLE (
	"cache_bytes" bigint,  /* i64 */
	"budget_bytes" bigint,  /* i64 */
	"evictions" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cache_usage_wrapper';
CREATE FUNCTION wasm."cache_entries"() RETURNS TABLE (
	"module" TEXT,  /* String */
	"role" TEXT,  /* Option < String > */
	"kind" TEXT,  /* String */
	"sha256" TEXT,  /* String */
	"memory_bytes" bigint,  /* i64 */
	"code_bytes" bigint,  /* i64 */
	"in_use" bool,  /* bool */
	"hits" bigint,  /* i64 */
	"last_used" timestamp with time zone,  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"source" TEXT  /* Option < String > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cache_entries_wrapper';
CREATE FUNCTION wasm."function_stats"() RETURNS TABLE (
	"function" oid,  /* pg_sys :: Oid */
	"role" TEXT,  /* Option < String > */
	"module" TEXT,  /* String */
	"export" TEXT,  /* String */
	"calls" bigint,  /* i64 */
	"failures" bigint,  /* i64 */
	"fuel" bigint,  /* i64 */
	"timed_calls" bigint,  /* i64 */
	"total_time" double precision,  /* Option < f64 > */
	"max_time" double precision  /* Option < f64 > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'function_stats_wrapper';
CREATE FUNCTION wasm."stats_reset"() RETURNS void
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'stats_reset_wrapper';
CREATE VIEW wasm.cache AS SELECT * FROM wasm.cache_entries();
COMMENT ON VIEW wasm.cache IS
    'This backend''s WebAssembly cache: instances (module, role, memory, code, use) and kept compiled code';
GRANT SELECT ON wasm.cache TO PUBLIC;
CREATE VIEW wasm.stats AS
SELECT function::pg_catalog.regprocedure AS function, role, module, export, calls, failures,
       fuel, timed_calls, total_time, max_time
  FROM wasm.function_stats();
COMMENT ON VIEW wasm.stats IS
    'This backend''s calls of LANGUAGE wasm functions: calls, failures, fuel, times (with track_functions)';
GRANT SELECT ON wasm.stats TO PUBLIC;

-- plwasm module catalog. Included into the extension script by extension/src/lib.rs.

-- The extension's schema must belong to a superuser: CREATE EXTENSION reuses an existing schema
-- `wasm`, and a role that owned it could create or drop objects beside plwasm's own.
DO $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
              JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
             WHERE n.nspname OPERATOR(pg_catalog.=) 'wasm') THEN
        RAISE EXCEPTION 'schema "wasm" already exists and belongs to a role that is not a superuser'
            USING ERRCODE = '42501',
                  HINT = 'Drop or rename it, or give it to a superuser, before CREATE EXTENSION plwasm.';
    END IF;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'wasm_loader') THEN
        CREATE ROLE wasm_loader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'wasm_capabilities') THEN
        CREATE ROLE wasm_capabilities NOLOGIN;
    END IF;
END
$$;

CREATE TABLE wasm.module_store (
    name      text PRIMARY KEY
              CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' AND length(name) <= 128),
    -- A role reference (an OID inside) that pg_dump writes, and a restore reads, as the role's
    -- name: a restored module belongs to the role of that name, or the restore of this table
    -- fails loudly if there is none (restore roles first, e.g. pg_dumpall --roles-only).
    owner     regrole NOT NULL,
    bytes     bytea NOT NULL,
    sha256    text NOT NULL,
    exports   jsonb NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    -- The owner's name when it was recorded: the role owns the module only while its name is
    -- still this. A dropped owner's OID is dumped as a bare number, which a restore would map to
    -- whichever role has that OID there; the name check makes such a module owner-less instead.
    owner_name name
);
COMMENT ON TABLE wasm.module_store IS
    'WebAssembly modules loaded with wasm.load(); read through the wasm.modules view';

-- Keep loaded modules in pg_dump output.
SELECT pg_catalog.pg_extension_config_dump('wasm.module_store', '');

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

-- Compiled modules (see extension/src/catalog/artifacts.rs): what wasm.load compiled, kept so that
-- backends and parallel workers deserialize it instead of compiling. An artifact is machine code
-- for one build of plwasm and one CPU, used only if its MAC (under a key in the data directory)
-- verifies; no grants (beyond pg_read/write_all_data, which the MAC defeats), and pg_dump leaves
-- it out (it is not configuration).
CREATE TABLE wasm.module_artifacts (
    name     text PRIMARY KEY,
    sha256   text NOT NULL,   -- of the module's bytes it was compiled from
    engine   text NOT NULL,   -- the build and CPU that compiled it (artifacts::fingerprint)
    mac      bytea NOT NULL,  -- HMAC-SHA256 under the cluster's key (artifacts.rs)
    artifact bytea NOT NULL
);
-- Machine code does not compress well; store it out of line, uncompressed, to read it fast.
ALTER TABLE wasm.module_artifacts ALTER COLUMN artifact SET STORAGE EXTERNAL;
COMMENT ON TABLE wasm.module_artifacts IS
    'Compiled forms of the modules in wasm.module_store, written and read only by plwasm';
REVOKE ALL ON wasm.module_artifacts FROM PUBLIC;

-- Writes that do not come through plwasm: logical replication's apply worker on a subscriber, a
-- superuser's SQL (extension/src/catalog/replicated.rs). A replicated or hand-written change of a
-- module reaches every backend's next statement, as plwasm's own writes do; a replicated
-- artifact (machine code for another cluster) is skipped, and each subscriber compiles its own.
CREATE FUNCTION wasm.module_store_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'plwasm_module_store_changed';
CREATE TRIGGER module_store_changed AFTER INSERT OR UPDATE OR DELETE ON wasm.module_store
    FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
ALTER TABLE wasm.module_store ENABLE ALWAYS TRIGGER module_store_changed;
CREATE TRIGGER module_capabilities_changed AFTER INSERT OR UPDATE OR DELETE
    ON wasm.module_capabilities FOR EACH ROW EXECUTE FUNCTION wasm.module_store_changed();
ALTER TABLE wasm.module_capabilities ENABLE ALWAYS TRIGGER module_capabilities_changed;
CREATE FUNCTION wasm.artifact_not_replicated() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'plwasm_artifact_not_replicated';
CREATE TRIGGER artifact_not_replicated BEFORE INSERT OR UPDATE ON wasm.module_artifacts
    FOR EACH ROW EXECUTE FUNCTION wasm.artifact_not_replicated();
ALTER TABLE wasm.module_artifacts ENABLE REPLICA TRIGGER artifact_not_replicated;

CREATE VIEW wasm.modules AS
SELECT name,
       CASE WHEN pg_catalog.pg_get_userbyid(owner::pg_catalog.oid) OPERATOR(pg_catalog.=) owner_name
            THEN owner_name END AS owner,
       pg_catalog.octet_length(bytes)    AS size_bytes,
       sha256,
       loaded_at,
       exports
  FROM wasm.module_store;
COMMENT ON VIEW wasm.modules IS 'Loaded WebAssembly modules: size, SHA-256 and exports';

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

-- Everyone may see which modules exist (not their bytes); only plwasm itself reads and writes
-- wasm.module_store, after its own privilege checks.
GRANT USAGE ON SCHEMA wasm TO PUBLIC;
GRANT SELECT ON wasm.modules TO PUBLIC;
REVOKE ALL ON wasm.module_store FROM PUBLIC;

-- pg_dump reads these tables (they are extension configuration data): let the database's owner
-- read them, so that the owner can dump the database without being a superuser. Members of
-- pg_read_all_data can too; other roles dump with --exclude-table-data='wasm.module_*'.
DO $$
BEGIN
    EXECUTE pg_catalog.format('GRANT SELECT ON wasm.module_store, wasm.module_history TO %I',
        (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
END
$$;

-- SQL functions bound to WebAssembly (inline modules have module NULL).
CREATE VIEW wasm.functions AS
SELECT p.oid::regprocedure AS function,
       CASE WHEN src LIKE '(module%' THEN NULL
            ELSE split_part(src, ':', 1) END AS module,
       CASE WHEN src LIKE '(module%' OR position(':' IN src) = 0 THEN p.proname::text
            ELSE substr(src, position(':' IN src) + 1) END AS export,
       src LIKE '(module%' AS inline,
       pg_catalog.pg_get_userbyid(p.proowner) AS owner
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang,
       LATERAL (SELECT regexp_replace(p.prosrc, '^\s+|\s+$', '', 'g') AS src) s
 WHERE l.lanname = 'wasm';
COMMENT ON VIEW wasm.functions IS 'SQL functions written in LANGUAGE wasm, with their module and export';
GRANT SELECT ON wasm.functions TO PUBLIC;

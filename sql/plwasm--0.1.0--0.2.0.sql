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

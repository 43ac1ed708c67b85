//! plwasm: SQL functions written in WebAssembly.
//!
//! `CREATE EXTENSION plwasm` creates schema `wasm`, the module catalog, `wasm.load` /
//! `wasm.unload` / `wasm.wat`, and the trusted procedural language `wasm`. The code is in layers,
//! one folder each (lower layers never call higher ones, except where noted):
//!
//! - [`abi`]: ABI v1, the SQL ↔ wasm type mapping; [`abi::values`]: variable-length values as
//!   bytes; [`abi::json_form`]: the JSON form of every other type. Depends on nothing else.
//! - [`runtime`]: Wasmer in a backend. The engine and compiling ([`runtime`] itself), the
//!   compile-time fuel and interrupt checks ([`runtime::instrument`]), memory cap, fuel and
//!   Postgres interrupts while wasm runs ([`runtime::limits`]), one module instantiated and
//!   called ([`runtime::instance`], [`runtime::typed_call`], failures in
//!   [`runtime::failure`]), the guest's imports ([`runtime::wasi`], [`runtime::host_api`],
//!   [`runtime::guest`], [`runtime::guest_output`], [`runtime::spool`] for emitted rows), and
//!   the per-backend cache of modules and instances ([`runtime::cache`], which reads the
//!   catalog).
//! - [`catalog`]: the module catalog (no SQL), its change notification, compiled artifacts
//!   ([`catalog::artifacts`], which use the engine), who may do what
//!   ([`catalog::privileges`]), function bodies ([`catalog::target`]) and the dump order of
//!   constraints ([`catalog::restore_order`]).
//! - [`call`]: the call handler in stages (resolve, marshal, call, deliver), and
//!   [`call::binding`]: does an export implement a SQL function?
//! - SQL entry points: [`validator`] (the language validator), [`api`] (`wasm.load`,
//!   `wasm.unload`, `wasm.wat`), [`udfs`] (`wasm.create_functions` from a module's
//!   `plwasm.udfs` self-description); [`gucs`]: the `wasm.*` settings; [`errors`]: every error,
//!   with its SQLSTATE.

// Nothing reachable from SQL or a module may panic: failures are typed errors with SQLSTATEs.
// The few invariants that keep an `expect`/`unreachable!` say why, in an `allow` with a reason
// (`grep -rn "allow(clippy::" extension/src` lists them).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

use pgrx::prelude::*;

pub mod abi;
pub mod api;
pub mod call;
pub mod catalog;
pub mod errors;
pub mod gucs;
pub mod runtime;
pub mod udfs;
pub mod validator;

#[cfg(any(test, feature = "pg_test"))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "in-backend tests fail by panicking"
)]
pub mod tests;

::pgrx::pg_module_magic!(name, version);

/// Library load: registers the GUCs. Nothing else runs here: Wasmer is set up lazily in each
/// backend on first use, never in the postmaster.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    hide_host_backtraces();
    gucs::init();
}

/// pgrx attaches a Rust backtrace to the DETAIL of an error raised through Rust whenever the
/// server runs with `RUST_BACKTRACE` set: host internals, never for a client. `RUST_LIB_BACKTRACE`
/// takes precedence for `Backtrace::capture` (what pgrx uses), so turning it off here keeps
/// backtraces out of every error while leaving panic messages on stderr as they were.
fn hide_host_backtraces() {
    // SAFETY (of the environment write): _PG_init runs at library load, before this process
    // starts any thread of plwasm's (Wasmer's threads are created lazily, later).
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
}

extension_sql_file!("../../sql/catalog.sql", name = "catalog");

extension_sql!(
    r#"
CREATE FUNCTION wasm.plwasm_call_handler() RETURNS language_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'plwasm_call_handler';

CREATE TRUSTED LANGUAGE wasm
    HANDLER wasm.plwasm_call_handler
    VALIDATOR wasm.plwasm_validator;

COMMENT ON LANGUAGE wasm IS 'SQL functions written in WebAssembly (plwasm)';
"#,
    name = "language",
    requires = ["catalog", validator::plwasm_validator],
);

extension_sql!(
    r#"
-- Constraints that call functions over stored modules must be restored after the modules:
-- after each DDL command that can create one or change what it calls, bring their dependency in
-- step (restore_order.rs).
-- Runs as the role that ran the command; every name is qualified and the search_path pinned.
-- A role that may not call wasm.depend_on_modules (an administrator revoked it) is skipped rather
-- than kept from running DDL.
CREATE FUNCTION wasm.order_constraints_after_modules() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    constraint_oid pg_catalog.oid;
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'wasm'
           AND p.proname OPERATOR(pg_catalog.=) 'depend_on_modules'
           AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
           AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')) THEN
        RETURN;
    END IF;
    -- Only constraints of tables and domains owned by the owner of the object the command
    -- created or altered (or of the function it (re)defined): another role's objects hanging off
    -- them (typed tables of a type, constraints over a function) are never locked or searched
    -- by this command; their owners bring them in step with wasm.depend_on_modules.
    FOR constraint_oid IN
        WITH RECURSIVE commands AS (
            SELECT d.classid, d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d
        ), relations(relid, owner) AS (
            SELECT r.oid, r.relowner FROM commands c
              JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.objid
             WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
            UNION
            -- typed tables of a composite type (ALTER TYPE ... CASCADE rebuilds their
            -- constraints; the command reports the type or its relation)
            SELECT r.oid, r.relowner FROM pg_catalog.pg_class r
              JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) r.reloftype
              JOIN commands c
                ON (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                    AND c.objid OPERATOR(pg_catalog.=) t.oid)
                OR (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND c.objid OPERATOR(pg_catalog.=) t.typrelid)
             WHERE r.relowner OPERATOR(pg_catalog.=) t.typowner
            UNION
            SELECT child.oid, child.relowner FROM pg_catalog.pg_inherits i
              JOIN relations r ON i.inhparent OPERATOR(pg_catalog.=) r.relid
              JOIN pg_catalog.pg_class child ON child.oid OPERATOR(pg_catalog.=) i.inhrelid
             WHERE child.relowner OPERATOR(pg_catalog.=) r.owner
        ), users(classid, objid, owner, depth) AS (
            -- what uses a (re)defined function: constraints, directly or through operators and
            -- functions whose SQL-standard bodies call it
            SELECT c.classid, c.objid, p.proowner, 0 FROM commands c
              JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) c.objid
             WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
            UNION
            SELECT d.classid, d.objid, u.owner, u.depth OPERATOR(pg_catalog.+) 1
              FROM pg_catalog.pg_depend d
              JOIN users u ON d.refclassid OPERATOR(pg_catalog.=) u.classid
                          AND d.refobjid OPERATOR(pg_catalog.=) u.objid
             WHERE u.classid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass,
                                                              'pg_catalog.pg_operator'::pg_catalog.regclass]::pg_catalog.oid[])
               AND u.depth OPERATOR(pg_catalog.<) 16
        )
        SELECT k.oid FROM pg_catalog.pg_constraint k
          JOIN relations r ON k.conrelid OPERATOR(pg_catalog.=) r.relid
         WHERE k.contype OPERATOR(pg_catalog.=) 'c'::pg_catalog."char"
        UNION
        SELECT k.oid FROM pg_catalog.pg_constraint k
          JOIN commands c ON c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                         AND k.contypid OPERATOR(pg_catalog.=) c.objid
         WHERE k.contype OPERATOR(pg_catalog.=) 'c'::pg_catalog."char"
        UNION
        SELECT k.oid FROM users u
          JOIN pg_catalog.pg_constraint k ON k.oid OPERATOR(pg_catalog.=) u.objid
          LEFT JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) k.conrelid
          LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) k.contypid
         WHERE u.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
           AND k.contype OPERATOR(pg_catalog.=) 'c'::pg_catalog."char"
           AND coalesce(r.relowner, t.typowner) OPERATOR(pg_catalog.=) u.owner
    LOOP
        PERFORM wasm.depend_on_modules(constraint_oid);
    END LOOP;
END
$$;
CREATE EVENT TRIGGER plwasm_order_constraints_after_modules ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE DOMAIN', 'ALTER DOMAIN', 'CREATE SCHEMA',
                 'ALTER TYPE', 'CREATE FUNCTION', 'ALTER FUNCTION')
    EXECUTE FUNCTION wasm.order_constraints_after_modules();
"#,
    name = "restore_order",
    requires = ["catalog", catalog::restore_order::depend_on_modules],
);

extension_sql!(
    r#"
-- What this backend's module cache holds, and its calls per function (runtime/cache.rs,
-- call/stats.rs). Each session sees its own backend's.
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
"#,
    name = "observability",
    requires = [api::cache_entries, api::function_stats],
);

extension_sql!(
    r#"
-- Loading and unloading modules is for superusers and members of wasm_loader.
REVOKE ALL ON FUNCTION wasm.load(text, bytea, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION wasm.unload(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION wasm.rollback(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION wasm.set_owner(text, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION wasm.set_capabilities(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wasm.load(text, bytea, boolean) TO wasm_loader;
GRANT EXECUTE ON FUNCTION wasm.unload(text, boolean) TO wasm_loader;
GRANT EXECUTE ON FUNCTION wasm.rollback(text) TO wasm_loader;
-- Giving modules capabilities is for superusers and members of wasm_capabilities; taking them
-- away also for the module's owner.
GRANT EXECUTE ON FUNCTION wasm.set_capabilities(text, text[]) TO wasm_loader, wasm_capabilities;
"#,
    name = "privileges",
    requires = [
        "catalog",
        api::load,
        api::unload,
        api::rollback,
        api::set_owner,
        api::set_capabilities
    ],
);

#[cfg(test)]
pub use tests::pg_test;

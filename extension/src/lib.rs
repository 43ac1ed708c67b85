//! plwasm: SQL functions written in WebAssembly.
//!
//! `CREATE EXTENSION plwasm` creates schema `wasm`, the module catalog, `wasm.load` /
//! `wasm.unload` / `wasm.wat`, and the trusted procedural language `wasm`. Each concern has its
//! own module:
//!
//! - [`abi`]: the SQL ↔ wasm type mapping (ABI v1 scalar fast path);
//! - [`target`]: parsing a function body (`module:export`, `module`, inline `(module ...)`);
//! - [`runtime`]: the Wasmer engine, compiling, exports;
//! - [`instrument`]: compile-time fuel and interrupt checks injected into every module;
//! - [`limits`]: memory cap, fuel and Postgres interrupts while wasm runs;
//! - [`gucs`]: the `wasm.*` settings;
//! - [`catalog`]: the module catalog and cross-backend change notification;
//! - [`cache`]: per-backend compiled modules and instances;
//! - [`binding`]: does an export implement a SQL function?
//! - [`handler`] / [`validator`]: the language's call handler and validator;
//! - [`api`]: `wasm.load`, `wasm.unload`, `wasm.wat`;
//! - [`errors`]: every error, with its SQLSTATE.

use pgrx::prelude::*;

pub mod abi;
pub mod api;
pub mod binding;
pub mod cache;
pub mod catalog;
pub mod errors;
pub mod gucs;
pub mod handler;
pub mod instrument;
pub mod limits;
pub mod runtime;
pub mod target;
pub mod validator;

#[cfg(any(test, feature = "pg_test"))]
pub mod tests;

::pgrx::pg_module_magic!(name, version);

/// Library load: registers the GUCs. Nothing else runs here: Wasmer is set up lazily in each
/// backend on first use, never in the postmaster.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
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

#[cfg(test)]
pub use tests::pg_test;

//! The SQL functions of schema `wasm` that manage modules: `wasm.load`, `wasm.rollback`,
//! `wasm.unload`, `wasm.set_owner`, `wasm.wat`.
//!
//! `load` and `unload` are for superusers and members of `wasm_loader`; replacing or unloading
//! a module needs its ownership (see `privileges.rs`). Each one checks everything before writing, writes the catalog (transactionally: a
//! rolled-back load leaves nothing behind), and then announces the change to every backend.

use pgrx::prelude::*;

use crate::call::binding;
use crate::call::stats;
use crate::catalog::artifacts;
use crate::catalog::history;
use crate::catalog::privileges;
use crate::catalog::target::check_module_name;
use crate::catalog::{self, ModuleLock};
use crate::errors::{OrReport, PlWasmError};
use crate::gucs;
use crate::runtime;
use crate::runtime::cache::{self, sha256_hex};

/// Validate, compile and store a module under `name`.
///
/// Refuses (storing nothing): bytes that are not a valid module, modules with imports, a taken
/// name unless `replace`, and with `replace` a new version that would break a bound function.
/// A replace keeps the version it replaces for `wasm.rollback` (see `catalog/history.rs`).
#[pg_extern(volatile, parallel_unsafe)]
fn load(name: &str, module: &[u8], replace: default!(bool, false)) {
    refuse_if_read_only(c"wasm.load()");
    privileges::require_loader("load modules").or_report();
    check_module_name(name)
        .map_err(|reason| PlWasmError::InvalidModuleName {
            name: name.to_string(),
            reason,
        })
        .or_report();
    let checked = CheckedModule::new(name, module);

    // The name's lock serializes this load with every other load, replace, unload and binding
    // of the same name; the row is read after it is granted.
    match catalog::lock(name, ModuleLock::Change) {
        Some(_) if !replace => PlWasmError::ModuleExists {
            name: name.to_string(),
        }
        .report(),
        Some(owner) => {
            privileges::require_owner(name, &owner, "replace").or_report();
            checked.check_bound_functions(name);
            let current = catalog::lookup(name, false).map(|m| m.sha256);
            if current.as_deref() != Some(checked.sha256.as_str()) {
                history::keep_current(name, gucs::MODULE_HISTORY.get().max(0) as usize);
            }
            catalog::update(name, module, &checked.sha256, &checked.exports_json);
        }
        None => {
            privileges::require_may_claim(name, &catalog::bound_functions(name)).or_report();
            history::forget(name);
            catalog::insert(name, module, &checked.sha256, &checked.exports_json)
        }
    }
    checked.after_write(name);
}

/// Make a module's newest previous version current again, with the checks of a replace (by
/// its owner; the version must still compile, and fit every function bound to the module).
/// The version rolled back from is not kept: a second rollback goes one version further back.
#[pg_extern(volatile, parallel_unsafe)]
fn rollback(name: &str) {
    refuse_if_read_only(c"wasm.rollback()");
    privileges::require_loader("roll back modules").or_report();
    let Some(owner) = catalog::lock(name, ModuleLock::Change) else {
        PlWasmError::ModuleNotFound {
            name: name.to_string(),
        }
        .report();
    };
    privileges::require_owner(name, &owner, "roll back").or_report();
    let Some(previous) = history::newest(name) else {
        PlWasmError::NoPreviousVersion {
            name: name.to_string(),
        }
        .report();
    };
    let checked = CheckedModule::new(name, &previous.bytes);
    checked.check_bound_functions(name);
    catalog::update(
        name,
        &previous.bytes,
        &checked.sha256,
        &checked.exports_json,
    );
    history::remove(name, previous.version);
    checked.after_write(name);
}

/// ERROR 25006 in a read-only transaction, on a hot standby included (where the name's lock
/// would otherwise fail with a less helpful message), as Postgres does for its own commands.
fn refuse_if_read_only(what: &std::ffi::CStr) {
    // SAFETY: raises an ERROR or returns; `what` is a NUL-terminated string.
    unsafe { pg_sys::PreventCommandIfReadOnly(what.as_ptr()) };
}

/// A module's bytes that passed every check of `wasm.load` that does not depend on the
/// catalog: size, validation and compilation, ABI, imports.
struct CheckedModule {
    compiled: wasmer::Module,
    exports: Vec<runtime::Export>,
    exports_json: serde_json::Value,
    sha256: String,
}

impl CheckedModule {
    /// Check `module` (to be stored under `name`), or report why not.
    fn new(name: &str, module: &[u8]) -> Self {
        cache::check_size(name, module.len()).or_report();
        let compiled = runtime::compile(module)
            .map_err(|reason| PlWasmError::InvalidModule {
                module: name.to_string(),
                reason,
            })
            .or_report();
        if let Some(declared) = runtime::foreign_abi_in_bytes(module) {
            PlWasmError::ForeignAbi {
                module: name.to_string(),
                declared,
            }
            .report();
        }
        let imports = runtime::unsupported_imports(&compiled);
        if !imports.is_empty() {
            PlWasmError::UnsupportedImports {
                module: name.to_string(),
                imports: imports.join(", "),
            }
            .report();
        }
        let exports = runtime::exports(&compiled);
        // Export names are stored in jsonb, which cannot hold U+0000 (found by tests/fuzz.sh:
        // such a valid module was refused with a jsonb error, 22P05).
        if let Some(export) = exports.iter().find(|e| e.name.contains('\0')) {
            PlWasmError::InvalidModule {
                module: name.to_string(),
                reason: format!(
                    "export name {:?} contains a NUL character, which plwasm cannot store",
                    export.name
                ),
            }
            .report();
        }
        Self {
            exports_json: runtime::exports_to_json(&exports),
            exports,
            sha256: sha256_hex(module),
            compiled,
        }
    }

    /// Report (2BP01) if these exports would break a SQL function bound to module `name`.
    fn check_bound_functions(&self, name: &str) {
        let problems: Vec<String> = catalog::bound_functions(name)
            .iter()
            .filter_map(|f| {
                let checked = binding::sql_signature(f).and_then(|sig| {
                    let target = binding::target(f)?;
                    binding::check(f, &sig, &target, &self.exports)
                });
                checked.err().map(|e| e.to_string())
            })
            .collect();
        if !problems.is_empty() {
            PlWasmError::ReplaceBreaksFunctions {
                name: name.to_string(),
                problems: problems.join("; "),
            }
            .report();
        }
    }

    /// After the catalog write: keep what was compiled to validate the module, so backends
    /// need not compile it again, and announce the change to every backend.
    fn after_write(&self, name: &str) {
        artifacts::store(name, &self.sha256, &self.compiled);
        catalog::announce_change();
        cache::unpin(name);
        use crate::catalog::capabilities::{self, Capability};
        if runtime::query::imports_query(&self.compiled)
            && !capabilities::of(name).contains(&Capability::Query)
        {
            pgrx::notice!(
                "module \"{name}\" imports plwasm.query, which it may not call until it is given \
                 the query capability: SELECT wasm.set_capabilities('{name}', '{{query}}') (by a \
                 superuser or a member of wasm_capabilities)"
            );
        }
    }
}

/// Remove a module. Refuses while SQL functions are bound to it, naming them; with `cascade`,
/// drops them first (`DROP ROUTINE ... CASCADE` as the caller, who must own each one, with
/// Postgres's own checks, notices and event triggers).
#[pg_extern(volatile, parallel_unsafe)]
fn unload(name: &str, cascade: default!(bool, false)) {
    refuse_if_read_only(c"wasm.unload()");
    privileges::require_loader("unload modules").or_report();
    let Some(owner) = catalog::lock(name, ModuleLock::Change) else {
        PlWasmError::ModuleNotFound {
            name: name.to_string(),
        }
        .report();
    };
    privileges::require_owner(name, &owner, "unload").or_report();
    let bound = catalog::bound_functions(name);
    if !bound.is_empty() && !cascade {
        PlWasmError::ModuleInUse {
            name: name.to_string(),
            count: bound.len(),
            functions: bound
                .iter()
                .map(|f| f.display.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .report();
    }
    for function in &bound {
        drop_function(function.oid);
    }
    catalog::delete(name);
    history::forget(name);
    artifacts::remove(name);
    crate::catalog::capabilities::forget(name);
    catalog::announce_change();
    cache::unpin(name);
}

/// `DROP ROUTINE ... CASCADE` of the function or procedure `oid`, as the caller. The statement
/// names it by schema-qualified name and schema-qualified argument types, so nothing in it is
/// resolved through the caller's search_path. One already dropped (as a dependent of an earlier
/// one) is skipped. Postgres's own ERROR (e.g. 42501, not the owner) ends the statement.
fn drop_function(oid: pg_sys::Oid) {
    // SAFETY: format_procedure_extended with FORMAT_PROC_INVALID_AS_NULL returns NULL for an
    // OID that is no longer a function, else a palloc'd string.
    let qualified = unsafe {
        let text = pg_sys::format_procedure_extended(
            oid,
            (pg_sys::FORMAT_PROC_INVALID_AS_NULL | pg_sys::FORMAT_PROC_FORCE_QUALIFY) as u16,
        );
        if text.is_null() {
            return;
        }
        std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned()
    };
    Spi::run(&format!("DROP ROUTINE {qualified} CASCADE"))
        .unwrap_or_else(|e| pgrx::error!("wasm.unload: dropping {qualified}: {e}"));
}

/// Give a module to another role (superusers only): for modules whose owner is gone (dropped,
/// renamed, or restored from another cluster), or to hand one over.
#[pg_extern(volatile, parallel_unsafe)]
fn set_owner(name: &str, role: pg_sys::Oid) {
    refuse_if_read_only(c"wasm.set_owner()");
    privileges::require_superuser("change the owner of a module").or_report();
    if privileges::role_name_of(role).is_none() {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("wasm.set_owner: role with OID {role} does not exist")
        );
    }
    if catalog::lock(name, ModuleLock::Change).is_none() {
        PlWasmError::ModuleNotFound {
            name: name.to_string(),
        }
        .report();
    }
    catalog::set_owner(name, role);
    catalog::announce_change();
}

/// Give module `name` exactly the capabilities `capabilities` (see `catalog/capabilities.rs`):
/// adding one is for superusers and members of `wasm_capabilities`; taking them away is also
/// for the module's owner.
#[pg_extern(volatile, parallel_unsafe)]
fn set_capabilities(name: &str, capabilities: Vec<Option<String>>) {
    use crate::catalog::capabilities::{self, Capability};
    refuse_if_read_only(c"wasm.set_capabilities()");
    let mut wanted = Vec::new();
    for entry in &capabilities {
        let Some(capability) = entry.as_deref().and_then(Capability::parse) else {
            let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
            pgrx::ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "wasm.set_capabilities: unknown capability {}",
                    entry.as_deref().map_or("NULL".to_string(), |e| format!(
                        "\"{}\"",
                        crate::runtime::backtrace::shown(e)
                    ))
                ),
                format!("Known capabilities: {}.", known.join(", "))
            );
        };
        if !wanted.contains(&capability) {
            wanted.push(capability);
        }
    }
    let Some(owner) = catalog::lock(name, ModuleLock::Change) else {
        PlWasmError::ModuleNotFound {
            name: name.to_string(),
        }
        .report();
    };
    let current = capabilities::of(name);
    if wanted.iter().any(|c| !current.contains(c)) {
        privileges::require_granter(name).or_report();
    } else if privileges::require_granter(name).is_err() {
        privileges::require_owner(name, &owner, "take capabilities from").or_report();
    }
    // Nothing changes: the record of who gave them, and when, stays as it is.
    if wanted.len() == current.len() && wanted.iter().all(|c| current.contains(c)) {
        return;
    }
    capabilities::set(name, &wanted);
    catalog::announce_change();
}

/// WebAssembly text to binary. Syntax errors give line and column. Runs on a worker thread, so
/// a cancel or statement_timeout stops it.
#[pg_extern(immutable, parallel_safe)]
fn wat(source: &str) -> Vec<u8> {
    cache::wat_to_wasm(source).or_report()
}

/// This backend's module cache: modules it compiled, modules it loaded from their stored
/// compiled artifact instead, and artifacts it found but could not use (compiled by another
/// build of plwasm or Wasmer, for another CPU, or damaged) — those modules were compiled.
#[pg_extern(volatile, parallel_restricted)]
fn cache_stats() -> TableIterator<
    'static,
    (
        name!(compiled, i64),
        name!(from_artifact, i64),
        name!(artifacts_refused, i64),
    ),
> {
    let (from_artifact, refused) = artifacts::stats();
    TableIterator::once((runtime::compile_count(), from_artifact, refused))
}

/// What this backend's module cache holds in bytes (as `wasm.cache_memory` counts it), that
/// budget, and how many instances it evicted to stay within it.
#[pg_extern(volatile, parallel_restricted)]
fn cache_usage() -> TableIterator<
    'static,
    (
        name!(cache_bytes, i64),
        name!(budget_bytes, i64),
        name!(evictions, i64),
    ),
> {
    let (bytes, evictions) = cache::totals();
    TableIterator::once((
        bytes as i64,
        crate::gucs::cache_memory_bytes() as i64,
        evictions as i64,
    ))
}

/// What this backend's module cache holds (the view `wasm.cache`): one row per instance
/// (module, role, memory, code, use), and one per compiled module kept from a discarded
/// instance (kind `code`).
#[pg_extern(volatile, parallel_restricted)]
#[allow(
    clippy::type_complexity,
    reason = "pgrx reads the column names from name!() in the signature itself"
)]
fn cache_entries() -> TableIterator<
    'static,
    (
        name!(module, String),
        name!(role, Option<String>),
        name!(kind, String),
        name!(sha256, String),
        name!(memory_bytes, i64),
        name!(code_bytes, i64),
        name!(in_use, bool),
        name!(hits, i64),
        name!(last_used, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(source, Option<String>),
    ),
> {
    let rows: Vec<_> = cache::rows()
        .into_iter()
        .map(|row| {
            (
                row.module,
                row.role.and_then(privileges::role_name_of),
                row.kind.to_string(),
                row.sha256,
                row.memory_bytes,
                row.code_bytes,
                row.in_use,
                row.hits,
                row.last_used
                    .and_then(|at| pgrx::datum::TimestampWithTimeZone::try_from(at).ok()),
                row.source.map(str::to_string),
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// This backend's call statistics per function (the view `wasm.stats`).
#[pg_extern(volatile, parallel_restricted)]
#[allow(
    clippy::type_complexity,
    reason = "pgrx reads the column names from name!() in the signature itself"
)]
fn function_stats() -> TableIterator<
    'static,
    (
        name!(function, pg_sys::Oid),
        name!(role, Option<String>),
        name!(module, String),
        name!(export, String),
        name!(calls, i64),
        name!(failures, i64),
        name!(fuel, i64),
        name!(timed_calls, i64),
        name!(total_time, Option<f64>),
        name!(max_time, Option<f64>),
    ),
> {
    let rows: Vec<_> = stats::rows()
        .into_iter()
        .map(|r| {
            (
                r.function,
                privileges::role_name_of(r.role),
                r.module,
                r.export,
                r.calls,
                r.failures,
                r.fuel,
                r.timed_calls,
                r.total_time,
                r.max_time,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Zero this backend's `wasm.stats` (of the roles the caller has the privileges of).
#[pg_extern(volatile, parallel_restricted)]
fn stats_reset() {
    stats::reset();
}

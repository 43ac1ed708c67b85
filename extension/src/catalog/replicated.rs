//! Writes to plwasm's tables that do not come through plwasm: logical replication's apply
//! worker on a subscriber, and SQL run by a superuser (a restore's COPY, a hand-made UPDATE).
//!
//! plwasm's own writes announce themselves ([`super::announce_change`]); a write through the
//! executor does not, so backends already open would keep running the module they had cached.
//! Two trigger functions, attached in `sql/catalog.sql`, close that gap:
//!
//! - [`plwasm_module_store_changed`]: `AFTER INSERT OR UPDATE OR DELETE` (per row) on
//!   `wasm.module_store` and `wasm.module_capabilities`, enabled `ALWAYS` so that it also fires in the apply worker (which
//!   runs with `session_replication_role = replica`). It queues the same relcache invalidation
//!   plwasm's own writes queue; every backend sees it once the writing transaction commits, so
//!   the next statement on a subscriber uses the replicated module. (A `TRUNCATE`, replicated
//!   or not, gives the table a new file, which invalidates it already.)
//! - [`plwasm_artifact_not_replicated`]: `BEFORE INSERT OR UPDATE` (per row) on
//!   `wasm.module_artifacts`, enabled `REPLICA` so that it fires only in the apply worker. It
//!   skips the row. An artifact is machine code for one build, one CPU and one cluster's key: a
//!   replicated one would never verify on the subscriber, and a replicated insert of a name the
//!   subscriber had already compiled for itself would stop the subscription with a duplicate key.
//!   Each subscriber compiles its own (see `refresh.rs`). Replicated deletes go through.
//!
//! Neither runs SQL or module code; both only look at the trigger event they are given.

use pgrx::pg_sys;
use pgrx::trigger_support::{
    called_as_trigger, trigger_fired_after, trigger_fired_before, trigger_fired_by_delete,
    trigger_fired_by_truncate, trigger_fired_for_row,
};

/// The trigger event of a call, or an ERROR if the function was not called as a trigger
/// (`check` says for which events it is meant).
///
/// # Safety
/// `fcinfo` is a valid function call.
unsafe fn trigger_event(
    fcinfo: pg_sys::FunctionCallInfo,
    function: &str,
    check: impl Fn(u32) -> bool,
    meant_for: &str,
) -> *mut pg_sys::TriggerData {
    // SAFETY: the caller's contract; `context` is a TriggerData when called_as_trigger says so.
    unsafe {
        if !called_as_trigger(fcinfo) {
            pgrx::ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                format!("{function} must be called as a trigger")
            );
        }
        let data = (*fcinfo).context as *mut pg_sys::TriggerData;
        if !check((*data).tg_event) {
            pgrx::ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                format!("{function} must be fired {meant_for}")
            );
        }
        data
    }
}

/// Tells the function manager that `plwasm_module_store_changed` uses the version-1 calling
/// convention.
#[no_mangle]
pub extern "C" fn pg_finfo_plwasm_module_store_changed() -> &'static pg_sys::Pg_finfo_record {
    static RECORD: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &RECORD
}

/// `wasm.module_store_changed()`: an AFTER trigger that announces a change of modules or their
/// capabilities to every backend, as plwasm's own writes do.
///
/// # Safety
/// Called by Postgres's function manager with a valid `fcinfo`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn plwasm_module_store_changed(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the caller's contract (a valid fcinfo).
    unsafe {
        trigger_event(
            fcinfo,
            "wasm.module_store_changed()",
            trigger_fired_after,
            "AFTER",
        );
    }
    // The module table's invalidation, whichever table fired (module_store or
    // module_capabilities): every backend resolves its call sites again at its next statement.
    // It is transactional (sent at commit, dropped with an abort).
    super::announce_change();
    // An AFTER trigger's result is ignored.
    pg_sys::Datum::from(0usize)
}

/// Tells the function manager that `plwasm_artifact_not_replicated` uses the version-1 calling
/// convention.
#[no_mangle]
pub extern "C" fn pg_finfo_plwasm_artifact_not_replicated() -> &'static pg_sys::Pg_finfo_record {
    static RECORD: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &RECORD
}

/// `wasm.artifact_not_replicated()`: a BEFORE ROW trigger for inserts and updates that skips
/// the row (deletes go through).
///
/// # Safety
/// Called by Postgres's function manager with a valid `fcinfo`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn plwasm_artifact_not_replicated(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the caller's contract.
    let data = unsafe {
        trigger_event(
            fcinfo,
            "wasm.artifact_not_replicated()",
            |event| {
                trigger_fired_before(event)
                    && trigger_fired_for_row(event)
                    && !trigger_fired_by_truncate(event)
            },
            "BEFORE, FOR EACH ROW",
        )
    };
    // SAFETY: `data` is the trigger's event; a BEFORE DELETE keeps its row by returning it.
    unsafe {
        if trigger_fired_by_delete((*data).tg_event) {
            return pg_sys::Datum::from((*data).tg_trigtuple);
        }
        // A null pointer from a BEFORE ROW trigger skips the operation for this row (the
        // function manager's isnull flag is not what the trigger manager reads).
        (*fcinfo).isnull = false;
    }
    pg_sys::Datum::from(0usize)
}

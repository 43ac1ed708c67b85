//! Artifacts refreshed in the background.
//!
//! A backend that finds no artifact it can use for a stored module (none after a restore, one
//! made by another plwasm or Wasmer build or for another CPU, a damaged one) compiles the
//! module's bytes for itself, and then asks for a dynamic background worker ([`request`]). The
//! worker connects to the same database and, in its own transactions, compiles every stored
//! module whose artifact is missing or unusable and stores the new artifact, so the next
//! backends and parallel workers deserialize instead of compiling.
//!
//! Why a worker and not the calling backend: writing from the caller's transaction is unsafe
//! where Postgres runs functions under special snapshot rules (a lazy VACUUM that summarizes a
//! BRIN index over a wasm function runs as `PROC_IN_VACUUM`), and holding a module name's lock
//! from a caller's transaction can block or deadlock its owner's replace.
//!
//! The worker runs no SQL and no module code: it reads the catalog through indexes, compiles
//! (Cranelift, on the same interruptible compiler thread as every compile) and writes the
//! artifact under the name's lock, after checking that the module is still the one it compiled
//! and still lacks a usable artifact. A module loaded or replaced meanwhile keeps the artifact
//! its `wasm.load` stored. One worker per database runs at a time (a session-level lock that no
//! SQL can take); more requests while it runs end at once. Never on a standby (nothing may be
//! written there), never from a parallel worker or another background worker, at most once per
//! module version per backend, and not at all with `wasm.refresh_artifacts = off`. When no
//! background worker slot is free (`max_worker_processes`), nothing happens: the next backend
//! that compiles asks again.

use std::cell::RefCell;
use std::collections::HashSet;

use pgrx::bgworkers::BackgroundWorkerBuilder;
use pgrx::pg_sys;

use crate::catalog::{self, artifacts, ModuleLock};

/// The background worker's type in `pg_stat_activity.backend_type`.
pub const WORKER_TYPE: &str = "plwasm artifact refresh";

thread_local! {
    /// SHA-256s of the module versions this backend has asked a refresh for.
    static REQUESTED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// After this backend compiled stored module `name` (bytes with `sha256`) for want of a usable
/// artifact: start a worker that stores one, where that is allowed (see the module docs).
pub fn request(name: &str, sha256: &str) {
    if !crate::gucs::REFRESH_ARTIFACTS.get() {
        return;
    }
    // SAFETY: reads of process state.
    let allowed = unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::IsBackgroundWorker };
    if !allowed || !artifacts::can_store() {
        return;
    }
    let first = REQUESTED.with(|requested| requested.borrow_mut().insert(sha256.to_string()));
    if !first {
        return;
    }
    // SAFETY: the database this backend is connected to.
    let database = unsafe { pg_sys::MyDatabaseId };
    let started = BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_library("plwasm")
        .set_function("plwasm_artifact_worker")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(database)))
        .load_dynamic();
    if started.is_err() {
        pgrx::debug1!(
            "plwasm: no background worker slot free to store the artifact of module \"{name}\""
        );
    }
}

/// Postgres's own SIGTERM handler for backends: it only sets `ProcDiePending`, which the next
/// interrupt check (the compiler thread's waiter makes them often) turns into a clean exit.
mod postgres {
    unsafe extern "C-unwind" {
        pub fn die(signal: std::ffi::c_int);
    }
}

/// The worker's entry point (`bgw_function_name`); its argument is the database's OID.
///
/// # Safety
/// Called by Postgres in a new background worker process registered by [`request`].
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn plwasm_artifact_worker(argument: pg_sys::Datum) {
    // SAFETY: the documented start of a background worker: signal handlers, then a database
    // connection as the bootstrap superuser (nothing runs as that role but catalog reads and
    // writes that take no privilege, and compiling).
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres::die));
        pg_sys::BackgroundWorkerUnblockSignals();
        let database = pg_sys::Oid::from(argument.value() as u32);
        pg_sys::BackgroundWorkerInitializeConnectionByOid(database, pg_sys::InvalidOid, 0);
    }
    if !in_transaction(lock_refresh) {
        return;
    }
    let names = in_transaction(catalog::module_names);
    let mut stored = 0;
    for name in names {
        if in_transaction(|| refresh(&name)) {
            stored += 1;
        }
    }
    if stored > 0 {
        pgrx::log!("plwasm: compiled {stored} modules and stored their artifacts");
    }
}

/// Run `body` in a transaction of its own, with a snapshot.
fn in_transaction<R>(body: impl FnOnce() -> R) -> R {
    // SAFETY: outside any transaction (the worker's top level); an ERROR in `body` ends the
    // worker, and Postgres aborts the transaction on the way out.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let result = body();
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
        result
    }
}

/// Take, without waiting, this database's refresh lock for the rest of the worker's life
/// (session level): false if another worker holds it.
fn lock_refresh() -> bool {
    let Some(artifacts_table) = artifacts::table_oid() else {
        return false;
    };
    // SAFETY: a lock tag of an object class only plwasm's code names (the artifact table's OID
    // as class, object 0): SQL cannot lock it. Session locks are released at process exit.
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: u32::from(pg_sys::MyDatabaseId),
            locktag_field2: u32::from(artifacts_table),
            locktag_field3: 0,
            locktag_field4: 0,
            locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
            locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
        };
        pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, true, true)
            != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}

/// Store module `name`'s artifact if it has no usable one; true if it compiled and stored.
fn refresh(name: &str) -> bool {
    let Some(module) = catalog::lookup(name, true) else {
        return false;
    };
    if artifacts::is_current(name, &module.sha256) {
        return false;
    }
    let Some(bytes) = module.bytes else {
        return false;
    };
    let compiled = match crate::runtime::compile(&bytes) {
        Ok(compiled) => compiled,
        Err(reason) => {
            pgrx::log!("plwasm: module \"{name}\" was not compiled for its artifact: {reason}");
            return false;
        }
    };
    // Compiled without the lock; stored under it, if nothing changed meanwhile.
    catalog::lock(name, ModuleLock::Change);
    let current = catalog::lookup(name, false);
    if current.is_none_or(|current| current.sha256 != module.sha256)
        || artifacts::is_current(name, &module.sha256)
    {
        return false;
    }
    // (A module whose artifact Wasmer cannot serialize, or that is too large, gets none.)
    artifacts::store(name, &module.sha256, &compiled);
    true
}

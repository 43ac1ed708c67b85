//! Artifacts refreshed in the background.
//!
//! A backend that finds no artifact it can use for a stored module (none after a restore, one
//! made by another plwasm or Wasmer build or for another CPU, a damaged one) compiles the
//! module's bytes for itself, and then asks for a dynamic background worker ([`request`]). The
//! worker connects to the same database and, in its own transactions, compiles every stored
//! module whose artifact is missing or unusable and stores the new artifact, so the next
//! backends and parallel workers deserialize instead of compiling. Inline modules (function
//! bodies `(module ...)`) get the same, keyed by the SHA-256 of their text (see
//! [`artifacts::inline_name`]), after a backend compiled one (at CREATE FUNCTION or a first
//! call); each pass also deletes the rows of texts no function has any more.
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
//! its `wasm.load` stored. One worker per database runs a pass at a time, and at most one more
//! waits to run the next pass (session-level locks that no SQL can take); further requests end
//! at once. The worker is started when the asking transaction commits (so it sees what that
//! transaction wrote: a module, a function, a whole restore), never for one that aborts, nor
//! for a request made in a savepoint rolled back. Never on a standby (nothing may be written
//! there), never from a background worker (parallel workers included: each is a new process
//! that remembers nothing), at most once per module version per backend, and not at all with
//! `wasm.refresh_artifacts = off`. A module whose lock a transaction holds is skipped, without
//! compiling it; a pass compiles at most `MAX_PASS_BYTES`. When no background worker slot is free
//! (`max_worker_processes`), nothing happens: the next backend that compiles asks again.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use pgrx::bgworkers::BackgroundWorkerBuilder;
use pgrx::pg_sys;

use crate::catalog::{self, artifacts, ModuleLock};

/// Most bytes of modules and inline texts one pass compiles (about a minute of Cranelift on
/// this project's machine). What is left waits for the next pass, so no pass runs unbounded.
const MAX_PASS_BYTES: usize = 64 * 1024 * 1024;

/// The background worker's type in `pg_stat_activity.backend_type`.
pub const WORKER_TYPE: &str = "plwasm artifact refresh";

thread_local! {
    /// SHA-256s of the module versions (and inline texts) this backend has asked a refresh
    /// for, in a committed transaction.
    static REQUESTED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    /// Asked for in the current transaction, with the subtransaction that asked: the worker
    /// starts when the transaction commits; what an aborted subtransaction asked is dropped.
    static PENDING: RefCell<HashMap<String, pg_sys::SubTransactionId>> =
        RefCell::new(HashMap::new());
    static CALLBACK_REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// After this backend compiled stored module `name` (bytes with `sha256`), or an inline body
/// (`name` "(inline)", text with `sha256`), for want of a usable artifact: have a worker store
/// one once this transaction commits (see the module docs). The worker starts only at commit,
/// so that it sees what this transaction wrote (a module loaded, a function created, a
/// restore run in one transaction); an aborted transaction asks for nothing.
pub fn request(name: &str, sha256: &str) {
    if !crate::gucs::REFRESH_ARTIFACTS.get() {
        return;
    }
    // SAFETY: reads of process state. Background workers, parallel workers included, do not
    // ask: each is a new process with nothing remembered, so every parallel query would start
    // workers again (its leader asks when it compiles).
    let allowed = unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::IsBackgroundWorker };
    if !allowed || !artifacts::can_store() {
        return;
    }
    if REQUESTED.with(|requested| requested.borrow().contains(sha256)) {
        return;
    }
    // SAFETY: the current subtransaction's id (a plain read).
    let subtransaction = unsafe { pg_sys::GetCurrentSubTransactionId() };
    PENDING.with(|pending| {
        pending
            .borrow_mut()
            .entry(sha256.to_string())
            .or_insert(subtransaction);
    });
    if !CALLBACK_REGISTERED.with(std::cell::Cell::get) {
        // SAFETY: registering callbacks that only touch this module's thread-locals and start
        // a worker.
        unsafe {
            pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(at_subtransaction_end), std::ptr::null_mut());
        }
        CALLBACK_REGISTERED.with(|c| c.set(true));
    }
    pgrx::debug1!("plwasm: an artifact for \"{name}\" will be stored after this transaction");
}

/// At commit, start one worker for everything asked in the transaction (it passes over every
/// module and inline body of the database); at abort, forget the requests. Runs inside
/// Postgres's commit: it must not raise an ERROR (registering a worker only returns false
/// when no slot is free).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT => {
            let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
            if pending.is_empty() {
                return;
            }
            if start_worker() {
                REQUESTED.with(|requested| requested.borrow_mut().extend(pending.into_keys()));
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PREPARE => {
            PENDING.with(|pending| pending.borrow_mut().clear());
        }
        _ => {}
    }
}

/// A subtransaction's requests become its parent's when it commits, and are dropped when it
/// aborts (a savepoint rolled back asks for nothing).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_subtransaction_end(
    event: pg_sys::SubXactEvent::Type,
    subtransaction: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        match event {
            SUBXACT_EVENT_COMMIT_SUB => {
                for owner in pending.values_mut() {
                    if *owner == subtransaction {
                        *owner = parent;
                    }
                }
            }
            SUBXACT_EVENT_ABORT_SUB => pending.retain(|_, owner| *owner != subtransaction),
            _ => {}
        }
    });
}

/// Register a refresh worker for this database; false when no background worker slot is free
/// (`max_worker_processes`), so the next compile asks again.
fn start_worker() -> bool {
    // SAFETY: the database this backend is connected to.
    let database = unsafe { pg_sys::MyDatabaseId };
    let started = BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_library("plwasm")
        .set_function("plwasm_artifact_worker")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(database)))
        .load_dynamic();
    started.is_ok()
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
    // Session locks are not released at a normal exit (only advisory ones are): release ours on
    // every way out, or the next worker on this PGPROC finds them still held.
    // SAFETY: registering an exit callback in this process.
    unsafe { pg_sys::before_shmem_exit(Some(release_session_locks), pg_sys::Datum::from(0)) };
    // The lock waits outside any transaction, so a waiting worker holds back no snapshot.
    let Some(artifacts_table) = in_transaction(artifacts::table_oid) else {
        return;
    };
    if !lock_refresh(artifacts_table) {
        return;
    }
    let names = in_transaction(catalog::module_names);
    let mut budget = MAX_PASS_BYTES;
    let mut stored = 0;
    for name in names {
        if refresh(&name, &mut budget) {
            stored += 1;
        }
    }
    let mut inline_stored = 0;
    // Inline modules: one artifact per distinct body text; rows of texts no function has any
    // more are deleted.
    let sources = in_transaction(catalog::inline_sources);
    let mut live = HashSet::new();
    for source in sources {
        let sha256 = crate::runtime::cache::sha256_hex(source.as_bytes());
        if refresh_inline(&source, &sha256, &mut budget) {
            inline_stored += 1;
        }
        live.insert(sha256);
    }
    in_transaction(|| {
        for sha256 in artifacts::inline_rows() {
            if !live.contains(&sha256) {
                artifacts::remove(&artifacts::inline_name(&sha256));
            }
        }
    });
    if stored + inline_stored > 0 {
        let database = in_transaction(|| {
            // SAFETY: the name of the database this worker is connected to (palloc'd).
            unsafe {
                let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
                if name.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned()
                }
            }
        });
        pgrx::log!(
            "plwasm: stored the compiled artifacts of {stored} modules and {inline_stored} inline bodies in database \"{database}\""
        );
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

/// Exit callback: drop this worker's session-level locks (see [`lock_refresh`]).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn release_session_locks(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    // SAFETY: called once at process exit; the worker holds no other session locks.
    unsafe { pg_sys::LockReleaseSession(pg_sys::DEFAULT_LOCKMETHOD as pg_sys::LOCKMETHODID) };
}

/// The two session-level locks that order the workers of one database: `RUNNING` is held by the
/// worker doing a pass, `QUEUED` by at most one worker waiting for the next pass.
const RUNNING: u32 = 0;
const QUEUED: u32 = 1;

/// A lock tag of an object class only plwasm's code names (the artifact table's OID as class):
/// SQL cannot take it.
fn refresh_tag(artifacts_table: pg_sys::Oid, which: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: the database this worker is connected to.
        locktag_field1: u32::from(unsafe { pg_sys::MyDatabaseId }),
        locktag_field2: u32::from(artifacts_table),
        locktag_field3: which,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

/// Become the worker that does the next pass: false if one is already waiting for it (it will
/// see everything this one would). Otherwise wait (interruptibly) until the running pass, if
/// any, ends. So a request never gets lost behind a pass that already looked at its module, and
/// at most two workers per database exist. Session locks, released at process exit.
fn lock_refresh(artifacts_table: pg_sys::Oid) -> bool {
    let queued = refresh_tag(artifacts_table, QUEUED);
    let running = refresh_tag(artifacts_table, RUNNING);
    let exclusive = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: session-level locks on tags made above; waiting for one serves interrupts.
    unsafe {
        if pg_sys::LockAcquire(&queued, exclusive, true, true)
            == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
        {
            return false;
        }
        pg_sys::LockAcquire(&running, exclusive, true, false);
        pg_sys::LockRelease(&queued, exclusive, true);
    }
    true
}

/// Store the artifact of the inline module `source` (text with `sha256`) if it has no usable
/// one; true if it compiled and stored. Only this worker writes inline artifacts (under the
/// refresh lock), so no name lock is needed.
fn refresh_inline(source: &str, sha256: &str, budget: &mut usize) -> bool {
    let name = artifacts::inline_name(sha256);
    let wanted = in_transaction(|| {
        !artifacts::is_current(&name, sha256)
            && crate::runtime::cache::check_size("(inline)", source.len()).is_ok()
    });
    if !wanted || !spend(budget, source.len()) {
        return false;
    }
    // Compiled outside any transaction: no snapshot or table lock held meanwhile.
    let compiled = crate::runtime::cache::wat_to_wasm(source)
        .map_err(|e| crate::runtime::CompileFailure {
            reason: e.to_string(),
            transient: false,
        })
        .and_then(|bytes| crate::runtime::compile_or_why(&bytes));
    match compiled {
        Ok(compiled) => in_transaction(|| {
            !artifacts::is_current(&name, sha256) && artifacts::store(&name, sha256, &compiled)
        }),
        Err(failure) => {
            pgrx::log!(
                "plwasm: an inline module was not compiled for its artifact: {}",
                failure.reason
            );
            // A body that does not compile is marked, so later passes do not try it again
            // (until the build changes); a compiler that failed is tried again next pass.
            if !failure.transient {
                in_transaction(|| artifacts::mark_unstorable(&name, sha256));
            }
            false
        }
    }
}

/// Take `len` bytes from the pass's budget; false (nothing taken) when they do not fit.
fn spend(budget: &mut usize, len: usize) -> bool {
    if len > *budget {
        return false;
    }
    *budget -= len;
    true
}

/// Store module `name`'s artifact if it has no usable one; true if it compiled and stored one.
fn refresh(name: &str, budget: &mut usize) -> bool {
    let wanted = in_transaction(|| {
        let module = catalog::lookup(name, true)?;
        // A module whose lock a transaction holds now is skipped without compiling it (it is
        // tried again, under the lock, before storing).
        if artifacts::is_current(name, &module.sha256)
            || catalog::try_lock(name, ModuleLock::Change).is_none()
        {
            return None;
        }
        Some((module.sha256, module.bytes?))
    });
    let Some((sha256, bytes)) = wanted else {
        return false;
    };
    if !spend(budget, bytes.len()) {
        return false;
    }
    // Compiled outside any transaction: no snapshot or table lock held meanwhile, so DROP
    // EXTENSION or a load does not wait for it.
    let compiled = match crate::runtime::compile(&bytes) {
        Ok(compiled) => compiled,
        Err(reason) => {
            pgrx::log!("plwasm: module \"{name}\" was not compiled for its artifact: {reason}");
            return false;
        }
    };
    // Stored under the name's lock, if nothing changed meanwhile. Never waiting for it: a
    // user's transaction may hold it as long as it likes (binding a function to the module),
    // and a worker queued behind it would hold up everyone else's binds. Skipped this pass.
    in_transaction(|| {
        if catalog::try_lock(name, ModuleLock::Change).is_none() {
            return false;
        }
        let current = catalog::lookup(name, false);
        if current.is_none_or(|current| current.sha256 != sha256)
            || artifacts::is_current(name, &sha256)
        {
            return false;
        }
        artifacts::store(name, &sha256, &compiled)
    })
}

//! The module catalog (`wasm.module_store`) and how other backends learn that it changed.
//!
//! Every access runs as the catalog's owner ([`as_catalog_owner`]): ordinary roles can neither
//! read nor write `wasm.module_store`; the checks of who may do what are in `privileges.rs`.
//!
//! Reads for code resolution use the latest committed state (plus this transaction's own
//! changes), like Postgres's own catalog caches, so a module replaced in another session is
//! never run stale just because this transaction's snapshot is old.
//!
//! Change notification: every write calls [`announce_change`], which queues a relcache
//! invalidation for the catalog table. Postgres delivers it to every backend after commit (and to
//! this one at the next command); a relcache callback then bumps this backend's catalog
//! [`generation`]. Call sites remember the generation they were resolved at, so the per-call
//! check is one integer comparison and no catalog access.

use std::cell::Cell;
use std::ffi::CString;

use pgrx::prelude::*;
use pgrx::spi::SpiTupleTable;
use pgrx::{pg_sys, FromDatum, IntoDatum};

use crate::privileges::as_catalog_owner;
use crate::runtime::{exports_from_json, Export};
use crate::target::{self, FunctionTarget};

/// A module as stored in the catalog.
pub struct StoredModule {
    /// False when read with the query's snapshot instead of the latest one (in parallel mode,
    /// where Postgres forbids new snapshots): then the answer may be older than the latest commit
    /// and must not be trusted beyond the current statement.
    pub latest: bool,
    pub sha256: String,
    pub exports: Vec<Export>,
    /// The module's bytes, when asked for.
    pub bytes: Option<Vec<u8>>,
}

/// A SQL function written in `LANGUAGE wasm`, as read from `pg_proc`.
pub struct SqlFunction {
    pub oid: pg_sys::Oid,
    /// `name(argtypes)` as Postgres prints a regprocedure; used in every message.
    pub display: String,
    pub name: String,
    pub prosrc: String,
    pub arg_types: Vec<pg_sys::Oid>,
    pub result_type: pg_sys::Oid,
    pub returns_set: bool,
}

impl SqlFunction {
    /// Read a function from the syscache.
    pub fn from_oid(oid: pg_sys::Oid) -> Self {
        let proc = pgrx::pg_catalog::pg_proc::PgProc::new(oid)
            .unwrap_or_else(|| pgrx::error!("cache lookup failed for function {}", oid));
        // SAFETY: the function exists (just looked up); both return palloc'd C strings.
        let (display, name) = unsafe {
            (
                cstr_to_string(pg_sys::format_procedure(oid)),
                cstr_to_string(pg_sys::get_func_name(oid)),
            )
        };
        Self {
            oid,
            display,
            name,
            prosrc: proc.prosrc(),
            arg_types: proc.proargtypes(),
            result_type: proc.prorettype(),
            returns_set: proc.proretset(),
        }
    }

    pub fn target(&self) -> Result<FunctionTarget, String> {
        target::parse(&self.prosrc, &self.name)
    }
}

unsafe fn cstr_to_string(ptr: *const std::ffi::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: the caller passes a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned() }
}

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static STORE_RELID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    static LOOKUPS: Cell<u64> = const { Cell::new(0) };
}

/// How many catalog look-ups [`lookup`] made in this backend (tests prove the call path makes none).
pub fn lookup_count() -> u64 {
    LOOKUPS.with(Cell::get)
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Runs during invalidation processing: touch nothing but our own counters.
    if relid == pg_sys::InvalidOid || relid == STORE_RELID.with(Cell::get) {
        GENERATION.with(|g| g.set(g.get() + 1));
    }
}

/// This backend's catalog generation: it changes whenever the module catalog may have changed.
#[inline]
pub fn generation() -> u64 {
    if !CALLBACK_REGISTERED.with(Cell::get) {
        // SAFETY: registering a callback that only updates thread-local counters.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(on_relcache_invalidation),
                pg_sys::Datum::from(0usize),
            )
        };
        CALLBACK_REGISTERED.with(|c| c.set(true));
        refresh_store_relid();
    }
    GENERATION.with(Cell::get)
}

/// The OID of `wasm.module_store` (it changes if the extension is dropped and re-created).
fn refresh_store_relid() -> pg_sys::Oid {
    // SAFETY: plain catalog lookups by name; both return InvalidOid when missing.
    let relid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"wasm".as_ptr(), true);
        pg_sys::get_relname_relid(c"module_store".as_ptr(), nsp)
    };
    STORE_RELID.with(|r| r.set(relid));
    relid
}

/// Process invalidations other sessions have committed since this backend last looked.
///
/// Postgres does this at transaction start and when it takes a new lock; inside a transaction
/// that already holds its locks it would not, and a module replaced and committed elsewhere would
/// stay unseen until the transaction ends. Called once per call-site resolution, so each new
/// statement sees every commit that preceded it.
pub fn accept_invalidations() {
    // SAFETY: safe at any point where a lock could be taken, which includes function calls.
    unsafe { pg_sys::AcceptInvalidationMessages() };
}

/// Tell every backend (this one at the next command, others after commit) that the catalog changed.
pub fn announce_change() {
    let relid = refresh_store_relid();
    // SAFETY: a transactional invalidation of an existing relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// Look a module up by name in the latest committed state of the catalog (see
/// [`StoredModule::latest`] for the one exception).
pub fn lookup(name: &str, with_bytes: bool) -> Option<StoredModule> {
    LOOKUPS.with(|n| n.set(n.get() + 1));
    refresh_store_relid();
    let query = if with_bytes {
        "SELECT sha256, exports::text, bytes FROM wasm.module_store WHERE name = $1"
    } else {
        "SELECT sha256, exports::text FROM wasm.module_store WHERE name = $1"
    };
    let query = CString::new(query).expect("static query");
    as_catalog_owner(|| {
        Spi::connect(|_client| {
            // SAFETY: raw SPI inside a connected SPI session (pgrx's `Spi::connect` owns connect and
            // finish); Postgres errors raised here unwind through pgrx's guards as usual.
            unsafe {
                let mut arg_types = [pg_sys::TEXTOID];
                let plan = pg_sys::SPI_prepare(query.as_ptr(), 1, arg_types.as_mut_ptr());
                if plan.is_null() {
                    pgrx::error!("plwasm: could not prepare the module catalog query");
                }
                let mut values = [name.into_datum().expect("text datum")];
                let nulls = [b' ' as std::ffi::c_char];
                // Parallel mode (a parallel query's leader or worker) forbids taking a new snapshot;
                // a null snapshot makes SPI use the query's active one.
                let latest = !pg_sys::IsInParallelMode();
                let snapshot = if latest {
                    pg_sys::GetLatestSnapshot()
                } else {
                    std::ptr::null_mut()
                };
                let rc = pg_sys::SPI_execute_snapshot(
                    plan,
                    values.as_mut_ptr(),
                    nulls.as_ptr(),
                    snapshot,
                    std::ptr::null_mut(),
                    true,
                    false,
                    1,
                );
                if rc != pg_sys::SPI_OK_SELECT as i32 {
                    pgrx::error!("plwasm: module catalog query failed (SPI code {rc})");
                }
                let found = if pg_sys::SPI_processed == 0 {
                    None
                } else {
                    let table = pg_sys::SPI_tuptable;
                    let tuple = *(*table).vals;
                    let desc = (*table).tupdesc;
                    let mut isnull = false;
                    let sha256 = String::from_datum(
                        pg_sys::SPI_getbinval(tuple, desc, 1, &mut isnull),
                        isnull,
                    )
                    .unwrap_or_default();
                    let exports_text = String::from_datum(
                        pg_sys::SPI_getbinval(tuple, desc, 2, &mut isnull),
                        isnull,
                    )
                    .unwrap_or_default();
                    let bytes = if with_bytes {
                        Vec::<u8>::from_datum(
                            pg_sys::SPI_getbinval(tuple, desc, 3, &mut isnull),
                            isnull,
                        )
                    } else {
                        None
                    };
                    Some(StoredModule {
                        latest,
                        sha256,
                        exports: exports_from_json(
                            &serde_json::from_str(&exports_text).unwrap_or_default(),
                        ),
                        bytes,
                    })
                };
                pg_sys::SPI_freeplan(plan);
                found
            }
        })
    })
}

/// Lock a module's row until the end of the transaction. `exclusive` for replace/unload,
/// otherwise a key-share lock that keeps it from being unloaded (taken when a function binds to
/// it). Returns the module's owner, or None if there is no such module.
pub fn lock(name: &str, exclusive: bool) -> Option<pg_sys::Oid> {
    let query = if exclusive {
        "SELECT owner FROM wasm.module_store WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT owner FROM wasm.module_store WHERE name = $1 FOR KEY SHARE"
    };
    as_catalog_owner(|| {
        Spi::connect_mut(|client| {
            let table = client.update(query, None, &[name.into()])?;
            match table.first().get_one::<pg_sys::Oid>() {
                Ok(owner) => Ok(owner),
                Err(pgrx::spi::Error::InvalidPosition) => Ok(None),
                Err(e) => Err(e),
            }
        })
    })
    .unwrap_or_else(|e| pgrx::error!("plwasm: module catalog query failed: {e}"))
}

/// Store a new module. Returns false, storing nothing, if the name is taken.
pub fn insert(name: &str, bytes: &[u8], sha256: &str, exports: &serde_json::Value) -> bool {
    // SAFETY: GetUserId has no preconditions inside a transaction.
    let owner = unsafe { pg_sys::GetUserId() };
    as_catalog_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "INSERT INTO wasm.module_store (name, owner, bytes, sha256, exports) \
                 VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (name) DO NOTHING RETURNING name",
                    None,
                    &[
                        name.into(),
                        owner.into(),
                        bytes.into(),
                        sha256.into(),
                        exports.to_string().into(),
                    ],
                )
                .map(|t| !t.is_empty())
        })
    })
    .unwrap_or_else(|e| pgrx::error!("plwasm: could not store module \"{name}\": {e}"))
}

/// Replace the bytes of an existing module (its owner stays).
pub fn update(name: &str, bytes: &[u8], sha256: &str, exports: &serde_json::Value) {
    as_catalog_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "UPDATE wasm.module_store SET bytes = $2, sha256 = $3, exports = $4::jsonb, \
                 loaded_at = now() WHERE name = $1",
                    None,
                    &[
                        name.into(),
                        bytes.into(),
                        sha256.into(),
                        exports.to_string().into(),
                    ],
                )
                .map(|_| ())
        })
    })
    .unwrap_or_else(|e| pgrx::error!("plwasm: could not replace module \"{name}\": {e}"))
}

/// Remove a module.
pub fn delete(name: &str) {
    as_catalog_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "DELETE FROM wasm.module_store WHERE name = $1",
                    None,
                    &[name.into()],
                )
                .map(|_| ())
        })
    })
    .unwrap_or_else(|e| pgrx::error!("plwasm: could not unload module \"{name}\": {e}"))
}

/// The SQL functions of this database whose body names the stored module `module`.
pub fn bound_functions(module: &str) -> Vec<SqlFunction> {
    let rows = Spi::connect(|client| {
        let table: SpiTupleTable = client.select(
            "SELECT p.oid, p.oid::regprocedure::text, p.proname::text, p.prosrc, \
                    p.proargtypes::oid[], p.prorettype, p.proretset \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
             WHERE l.lanname = 'wasm' ORDER BY p.oid",
            None,
            &[],
        )?;
        table
            .map(|row| {
                Ok(SqlFunction {
                    oid: row.get(1)?.unwrap_or(pg_sys::InvalidOid),
                    display: row.get(2)?.unwrap_or_default(),
                    name: row.get(3)?.unwrap_or_default(),
                    prosrc: row.get(4)?.unwrap_or_default(),
                    arg_types: row.get::<Vec<pg_sys::Oid>>(5)?.unwrap_or_default(),
                    result_type: row.get(6)?.unwrap_or(pg_sys::InvalidOid),
                    returns_set: row.get(7)?.unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| pgrx::error!("plwasm: could not list wasm functions: {e}"));
    rows.into_iter()
        .filter(
            |f| matches!(f.target(), Ok(FunctionTarget::Stored { module: m, .. }) if m == module),
        )
        .collect()
}

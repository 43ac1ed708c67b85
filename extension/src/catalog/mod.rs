//! The module catalog (`wasm.module_store`) and how other backends learn that it changed.
//!
//! Ordinary roles can neither read nor write `wasm.module_store`. plwasm reads and writes it
//! without SQL and without switching user (table and index access by OID, see below), so no
//! object a role can create — a type, operator, cast or function in any schema, `pg_temp`
//! included — is ever reached by these accesses. The checks of who may do what are in
//! `privileges.rs`.
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

pub mod artifacts;
pub mod capabilities;
pub mod history;
pub mod privileges;
pub mod refresh;
pub mod replicated;
pub mod restore_order;
pub mod target;

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use pgrx::{pg_guard, pg_sys, FromDatum, IntoDatum};
use sha2::Digest;

use crate::errors::PlWasmError;
use crate::runtime::{exports_from_json, Export};
use target::FunctionTarget;

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
    /// The role that owns the function.
    pub owner: pg_sys::Oid,
    /// The function lives in a temporary schema (it goes with its session).
    pub temporary: bool,
    /// `VOLATILE` (its queries see changes made since the statement began, like PL/pgSQL's).
    pub volatile: bool,
}

impl SqlFunction {
    /// Read a function from the syscache.
    pub fn from_oid(oid: pg_sys::Oid) -> Self {
        Self::try_from_oid(oid)
            .unwrap_or_else(|| pgrx::error!("cache lookup failed for function {}", oid))
    }

    /// Read a function from the syscache; None if it does not exist (any more).
    pub fn try_from_oid(oid: pg_sys::Oid) -> Option<Self> {
        let proc = pgrx::pg_catalog::pg_proc::PgProc::new(oid)?;
        // SAFETY: the function exists (just looked up); both return palloc'd C strings.
        let (display, name) = unsafe {
            (
                cstr_to_string(pg_sys::format_procedure(oid)),
                cstr_to_string(pg_sys::get_func_name(oid)),
            )
        };
        Some(Self {
            oid,
            display,
            name,
            prosrc: proc.prosrc(),
            arg_types: proc.proargtypes(),
            result_type: proc.prorettype(),
            returns_set: proc.proretset(),
            owner: proc.proowner(),
            // SAFETY: syscache lookups of an existing function and its namespace.
            temporary: unsafe { pg_sys::isAnyTempNamespace(pg_sys::get_func_namespace(oid)) },
            volatile: matches!(
                proc.provolatile(),
                pgrx::pg_catalog::pg_proc::ProVolatile::Volatile
            ),
        })
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

// Per-process state (a backend is a process; only its main thread resolves and calls): plain
// statics, since `generation` is read on every call and a thread-local costs a
// `__tls_get_addr` call per access in a shared library.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static STORE_RELID: AtomicU32 = AtomicU32::new(0);
static CALLBACK_REGISTERED: AtomicBool = AtomicBool::new(false);
static LOOKUPS: AtomicU64 = AtomicU64::new(0);

/// How many catalog look-ups [`lookup`] made in this backend (tests prove the call path makes none).
pub fn lookup_count() -> u64 {
    LOOKUPS.load(Ordering::Relaxed)
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Runs during invalidation processing: touch nothing but our own counters.
    if relid == pg_sys::InvalidOid || u32::from(relid) == STORE_RELID.load(Ordering::Relaxed) {
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

/// This backend's catalog generation: it changes whenever the module catalog may have changed.
#[inline]
pub fn generation() -> u64 {
    if !CALLBACK_REGISTERED.load(Ordering::Relaxed) {
        // SAFETY: registering a callback that only updates thread-local counters.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(on_relcache_invalidation),
                pg_sys::Datum::from(0usize),
            )
        };
        CALLBACK_REGISTERED.store(true, Ordering::Relaxed);
        refresh_store_relid();
    }
    GENERATION.load(Ordering::Relaxed)
}

/// Read the rows of system catalog `relation` whose OID columns equal `keys` (attribute number,
/// value), through `index` (a sequential scan when it is InvalidOid), with the catalog snapshot
/// `systable_beginscan` takes (the latest committed state); `each` sees every row while the scan
/// is open. No SQL, no operator a role could define (`oideq` by its OID).
///
/// # Safety
/// `relation` is a system catalog, `index` one of its indexes over the key columns (or
/// InvalidOid), and `each` must not keep the tuple past its call.
pub(crate) unsafe fn scan_catalog(
    relation: pg_sys::Oid,
    index: pg_sys::Oid,
    keys: &[(pg_sys::AttrNumber, pg_sys::Oid)],
    mut each: impl FnMut(pg_sys::HeapTuple),
) {
    // SAFETY: the caller's contract; each key is an OID compared with oideq, the relation is
    // closed after the scan ends, and an ERROR in between releases both with the transaction.
    unsafe {
        let rel = pg_sys::table_open(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let mut scan_keys: Vec<pg_sys::ScanKeyData> = vec![std::mem::zeroed(); keys.len()];
        for (key, (attno, value)) in scan_keys.iter_mut().zip(keys) {
            pg_sys::ScanKeyInit(
                key,
                *attno,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::Oid::from(pg_sys::F_OIDEQ),
                pg_sys::Datum::from(*value),
            );
        }
        let scan = pg_sys::systable_beginscan(
            rel,
            index,
            index != pg_sys::InvalidOid,
            std::ptr::null_mut(),
            keys.len() as i32,
            scan_keys.as_mut_ptr(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            each(tuple);
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
}

/// The schema the extension plwasm was created in (`pg_extension.extnamespace`), InvalidOid if
/// it is not created. Not looked up by name: a role that owns a schema named `wasm` (e.g. one
/// it renamed the extension's away from and created anew) must not be able to stand in for it.
fn extension_namespace() -> pg_sys::Oid {
    // SAFETY: get_extension_oid (a catalog scan by name), then pg_extension by OID through
    // its index; the namespace is copied out of the tuple inside the callback.
    unsafe {
        let extension = pg_sys::get_extension_oid(c"plwasm".as_ptr(), true);
        if extension == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        let mut namespace = pg_sys::InvalidOid;
        scan_catalog(
            pg_sys::ExtensionRelationId,
            pg_sys::Oid::from(pg_sys::ExtensionOidIndexId),
            &[(
                pg_sys::Anum_pg_extension_oid as pg_sys::AttrNumber,
                extension,
            )],
            |tuple| {
                namespace =
                    (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_extension>(tuple))
                        .extnamespace;
            },
        );
        namespace
    }
}

/// The OID of plwasm's table `relname` in the extension's schema (InvalidOid if missing).
pub(crate) fn relid_of(relname: &CStr) -> pg_sys::Oid {
    let namespace = extension_namespace();
    if namespace == pg_sys::InvalidOid {
        return pg_sys::InvalidOid;
    }
    // SAFETY: a plain catalog lookup by name in a given namespace; InvalidOid when missing.
    unsafe { pg_sys::get_relname_relid(relname.as_ptr(), namespace) }
}

/// The OID of `wasm.module_store`'s primary-key index (InvalidOid if the extension is not
/// created): what constraints that call stored modules depend on (see `restore_order.rs`).
pub fn module_store_key_index() -> pg_sys::Oid {
    relid_of(MODULES.key_index)
}

/// The OID of `wasm.module_store` (it changes if the extension is dropped and re-created).
fn refresh_store_relid() -> pg_sys::Oid {
    let relid = relid_of(MODULES.relname);
    STORE_RELID.store(u32::from(relid), Ordering::Relaxed);
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

// ---------------------------------------------------------------------------------------------
// Reading and writing `wasm.module_store` without the SQL parser
//
// Nothing here parses SQL, resolves a name through search_path, calls an operator, a cast or a
// function a role could define, or switches user: the table is opened by OID, scanned through
// its primary-key index with the key compared by `texteq` under the column's own collation, and
// written with heap_insert/update/delete plus index maintenance (Postgres's CatalogTuple*
// routines). No privilege check applies at this level: the checks of who may do what are in
// `privileges.rs` and run before any write.

/// Column numbers of `wasm.module_store` (see `sql/catalog.sql`).
const COL_NAME: i16 = 1;
const COL_OWNER: i16 = 2;
const COL_BYTES: i16 = 3;
const COL_SHA256: i16 = 4;
const COL_EXPORTS: i16 = 5;
const COL_LOADED_AT: i16 = 6;
const COL_OWNER_NAME: i16 = 7;
/// The type of each column of `wasm.module_store`, in order.
const MODULE_COLUMN_TYPES: [pg_sys::Oid; 7] = [
    pg_sys::TEXTOID,
    pg_sys::REGROLEOID,
    pg_sys::BYTEAOID,
    pg_sys::TEXTOID,
    pg_sys::JSONBOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::NAMEOID,
];
const NATTS: usize = MODULE_COLUMN_TYPES.len();

/// One of plwasm's tables in schema `wasm`, keyed by its first column (`name text`) through
/// its primary-key index.
pub(crate) struct TableSpec {
    pub relname: &'static CStr,
    pub key_index: &'static CStr,
    /// The type of each column, in order (the key, `text`, first).
    pub types: &'static [pg_sys::Oid],
}

/// `wasm.module_store`.
static MODULES: TableSpec = TableSpec {
    relname: c"module_store",
    key_index: c"module_store_pkey",
    types: &MODULE_COLUMN_TYPES,
};

/// A plwasm table opened with a lock, closed (keeping the lock to the end of the transaction,
/// as Postgres does for catalogs) when dropped — also while an ERROR unwinds.
pub(crate) struct StoreTable {
    rel: pg_sys::Relation,
    spec: &'static TableSpec,
}

impl StoreTable {
    /// Open `spec`'s table; ERROR (42P01) if it does not exist.
    pub(crate) fn open(spec: &'static TableSpec, lockmode: u32) -> Self {
        Self::try_open(spec, lockmode).unwrap_or_else(|| {
            let relname = spec.relname.to_string_lossy();
            pgrx::ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("plwasm: the catalog table wasm.{relname} does not exist")
            );
        })
    }

    /// Open `spec`'s table, or None if the extension's schema has no such table. A table whose
    /// columns are not exactly the expected ones is an ERROR (55000): every access deforms and
    /// forms tuples of exactly those columns.
    pub(crate) fn try_open(spec: &'static TableSpec, lockmode: u32) -> Option<Self> {
        let relid = if std::ptr::eq(spec, &MODULES) {
            refresh_store_relid()
        } else {
            relid_of(spec.relname)
        };
        if relid == pg_sys::InvalidOid {
            return None;
        }
        // SAFETY: a relation that exists (checked above); table_open raises if it vanished.
        let rel = unsafe { pg_sys::table_open(relid, lockmode as pg_sys::LOCKMODE) };
        let table = Self { rel, spec };
        // SAFETY: an open relation's descriptor and its attributes.
        let columns: Vec<(pg_sys::Oid, bool)> = unsafe {
            let desc = table.desc();
            (*desc)
                .attrs
                .as_slice((*desc).natts.max(0) as usize)
                .iter()
                .map(|attr| (attr.atttypid, attr.attisdropped))
                .collect()
        };
        let expected: Vec<(pg_sys::Oid, bool)> = spec.types.iter().map(|t| (*t, false)).collect();
        if columns != expected {
            let relname = spec.relname.to_string_lossy();
            pgrx::ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "plwasm: the columns of wasm.{relname} are not the ones this library expects ({} columns of fixed types)",
                    spec.types.len()
                ),
                "The extension's SQL and its library are from different versions, or the table was altered: ALTER EXTENSION plwasm UPDATE, or reinstall."
            );
        }
        Some(table)
    }

    pub(crate) fn desc(&self) -> pg_sys::TupleDesc {
        // SAFETY: an open relation.
        unsafe { (*self.rel).rd_att }
    }

    /// The OID of the table's primary-key index.
    fn key_index(&self) -> pg_sys::Oid {
        // SAFETY: a lookup by name in the table's own namespace; InvalidOid if missing.
        unsafe {
            pg_sys::get_relname_relid(
                self.spec.key_index.as_ptr(),
                (*(*self.rel).rd_rel).relnamespace,
            )
        }
    }

    /// Scan for the row named `name` with `snapshot`; call `f` with the tuple if found.
    pub(crate) fn find<R>(
        &self,
        name: &str,
        snapshot: pg_sys::Snapshot,
        f: impl FnOnce(pg_sys::HeapTuple) -> R,
    ) -> Option<R> {
        let mut f = Some(f);
        let mut found = None;
        self.scan_key(name, snapshot, |tuple| {
            found = f.take().map(|f| f(tuple));
            false
        });
        found
    }

    /// Scan for the rows whose key column (the first) is `name`, with `snapshot`, through the
    /// primary-key index; `each` sees each tuple (only while it is called) until it returns
    /// false.
    pub(crate) fn scan_key(
        &self,
        name: &str,
        snapshot: pg_sys::Snapshot,
        mut each: impl FnMut(pg_sys::HeapTuple) -> bool,
    ) {
        let index = self.key_index();
        // SAFETY: an open relation and a valid snapshot; the key is a text datum compared with
        // texteq under the column's collation (the index's), so an index scan finds exactly it.
        unsafe {
            let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
            pg_sys::ScanKeyInit(
                &mut key,
                COL_NAME,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::Oid::from(pg_sys::F_TEXTEQ),
                name.into_datum().unwrap_or(pg_sys::Datum::from(0usize)),
            );
            // The key column is the first; the slice covers only the descriptor's attributes.
            let desc = self.desc();
            let attrs = (*desc).attrs.as_slice((*desc).natts.max(0) as usize);
            key.sk_collation = attrs
                .get((COL_NAME - 1) as usize)
                .map_or(pg_sys::DEFAULT_COLLATION_OID, |attr| attr.attcollation);
            let scan = pg_sys::systable_beginscan(
                self.rel,
                index,
                index != pg_sys::InvalidOid,
                snapshot,
                1,
                &mut key,
            );
            loop {
                let tuple = pg_sys::systable_getnext(scan);
                if tuple.is_null() || !each(tuple) {
                    break;
                }
            }
            pg_sys::systable_endscan(scan);
        }
    }

    /// The columns of `tuple` (datums point into it or are detoasted copies on demand).
    pub(crate) fn deform(&self, tuple: pg_sys::HeapTuple) -> (Vec<pg_sys::Datum>, Vec<bool>) {
        let mut values = vec![pg_sys::Datum::from(0usize); self.spec.types.len()];
        let mut nulls = vec![true; self.spec.types.len()];
        // SAFETY: a tuple of this table, arrays sized to its descriptor.
        unsafe {
            pg_sys::heap_deform_tuple(tuple, self.desc(), values.as_mut_ptr(), nulls.as_mut_ptr())
        };
        (values, nulls)
    }
}

impl StoreTable {
    /// Replace the columns flagged in `replace` of the row named `name` (current as of
    /// `snapshot`) by `values`; false if there is no such row. The caller holds the name's
    /// [`ModuleLock::Change`], so no other writer can touch the row. One entry per column.
    fn update_row(
        &self,
        name: &str,
        snapshot: &LatestSnapshot,
        values: &mut [pg_sys::Datum],
        replace: &mut [bool],
    ) -> bool {
        let mut nulls = vec![false; values.len()];
        self.find(name, snapshot.snapshot, |old| {
            // SAFETY: `old` is the current row (the caller's lock excludes other writers); the
            // arrays have one entry per column of this table.
            unsafe {
                let new = pg_sys::heap_modify_tuple(
                    old,
                    self.desc(),
                    values.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                    replace.as_mut_ptr(),
                );
                pg_sys::CatalogTupleUpdate(self.rel, &mut (*old).t_self, new);
                pg_sys::heap_freetuple(new);
            }
        })
        .is_some()
    }

    /// Insert a row of non-NULL `values` (one per column) with its index entries.
    fn insert_row(&self, values: &mut [pg_sys::Datum]) {
        let mut nulls = vec![false; values.len()];
        // SAFETY: a tuple of this table's descriptor (one value per column).
        unsafe {
            let tuple =
                pg_sys::heap_form_tuple(self.desc(), values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::CatalogTupleInsert(self.rel, tuple);
            pg_sys::heap_freetuple(tuple);
        }
    }
}

impl Drop for StoreTable {
    fn drop(&mut self) {
        // SAFETY: closes what `open` opened; the lock stays until the end of the transaction.
        unsafe { pg_sys::relation_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
    }
}

/// A registered snapshot of the latest committed state (the query's own snapshot in parallel
/// mode, where Postgres forbids new ones), unregistered when dropped.
pub(crate) struct LatestSnapshot {
    pub(crate) snapshot: pg_sys::Snapshot,
    registered: bool,
    latest: bool,
}

impl LatestSnapshot {
    pub(crate) fn take() -> Self {
        // SAFETY: snapshot management inside a transaction.
        unsafe {
            if pg_sys::IsInParallelMode() {
                Self {
                    snapshot: pg_sys::GetActiveSnapshot(),
                    registered: false,
                    latest: false,
                }
            } else {
                Self {
                    snapshot: pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot()),
                    registered: true,
                    latest: true,
                }
            }
        }
    }
}

impl Drop for LatestSnapshot {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: unregisters what `take` registered.
            unsafe { pg_sys::UnregisterSnapshot(self.snapshot) };
        }
    }
}

pub(crate) fn text_at(values: &[pg_sys::Datum], nulls: &[bool], col: i16) -> String {
    let i = (col - 1) as usize;
    // SAFETY: a text column of the tuple just deformed.
    unsafe { String::from_datum(values[i], nulls[i]) }.unwrap_or_default()
}

/// Look a module up by name in the latest committed state of the catalog (see
/// [`StoredModule::latest`] for the one exception).
pub fn lookup(name: &str, with_bytes: bool) -> Option<StoredModule> {
    LOOKUPS.fetch_add(1, Ordering::Relaxed);
    let table = StoreTable::open(&MODULES, pg_sys::AccessShareLock);
    let snapshot = LatestSnapshot::take();
    table.find(name, snapshot.snapshot, |tuple| {
        let (values, nulls) = table.deform(tuple);
        let exports_index = (COL_EXPORTS - 1) as usize;
        // SAFETY: the jsonb column of the tuple just deformed.
        let exports =
            unsafe { pgrx::JsonB::from_datum(values[exports_index], nulls[exports_index]) }
                .map(|j| exports_from_json(&j.0))
                .unwrap_or_default();
        let bytes_index = (COL_BYTES - 1) as usize;
        let bytes = with_bytes
            .then(|| {
                // SAFETY: the bytea column of the tuple just deformed (detoasted into a copy).
                unsafe { Vec::<u8>::from_datum(values[bytes_index], nulls[bytes_index]) }
            })
            .flatten();
        StoredModule {
            latest: snapshot.latest,
            sha256: text_at(&values, &nulls, COL_SHA256),
            exports,
            bytes,
        }
    })
}

/// The names of all stored modules in the latest committed state (none without the extension).
pub fn module_names() -> Vec<String> {
    row_names(&MODULES)
}

/// The key column (`name`) of every row of one of plwasm's tables, in the latest committed state
/// (none if the table is missing).
pub(crate) fn row_names(spec: &'static TableSpec) -> Vec<String> {
    let Some(table) = StoreTable::try_open(spec, pg_sys::AccessShareLock) else {
        return Vec::new();
    };
    let snapshot = LatestSnapshot::take();
    let mut names = Vec::new();
    // SAFETY: a sequential scan of the open table with a registered snapshot; each name is
    // copied out of its tuple before the next one is read.
    unsafe {
        let scan = pg_sys::systable_beginscan(
            table.rel,
            pg_sys::InvalidOid,
            false,
            snapshot.snapshot,
            0,
            std::ptr::null_mut(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let (values, nulls) = table.deform(tuple);
            names.push(text_at(&values, &nulls, COL_NAME));
        }
        pg_sys::systable_endscan(scan);
    }
    names
}

/// How strongly a module's name is locked (see [`lock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleLock {
    /// Taken when a function binds to the module: keeps it from being replaced or unloaded
    /// until the binding transaction ends.
    Bind,
    /// Taken to load, replace or unload: excludes every other holder.
    Change,
}

/// Who owns a module: the role it was loaded by (`owner`, a regrole) and that role's name when it
/// was recorded (`owner_name`). The role owns it only while both still agree (see
/// [`ModuleOwner::role`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleOwner {
    pub oid: pg_sys::Oid,
    pub name: Option<String>,
}

impl ModuleOwner {
    /// The role that owns the module, or None when it has no owner any more: its role was
    /// dropped, renamed, or the row was restored from another cluster where that OID (which
    /// pg_dump writes as a number once the role is gone) belongs to somebody else. Then only
    /// superusers may replace, unload or give it an owner (`wasm.set_owner`).
    pub fn role(&self) -> Option<pg_sys::Oid> {
        let name = self.name.as_deref()?;
        let current = crate::catalog::privileges::role_name_of(self.oid)?;
        (current == name).then_some(self.oid)
    }
}

/// Lock a module's name until the end of the transaction, then read its owner in the latest
/// committed state (None if there is no such module).
///
/// The lock is a heavyweight lock on an object tag derived from the name (the catalog table's
/// OID, and 48 bits of the name's SHA-256): no role can take it by hand, and holding it
/// serializes every load, replace, unload and binding of that name across sessions. Because
/// the row is read after the lock is granted, with a new snapshot, a waiter always sees what
/// the holder committed — under every isolation level.
pub fn lock(name: &str, mode: ModuleLock) -> Option<ModuleOwner> {
    lock_name(name, mode, true).flatten()
}

/// [`lock`] without waiting: None if another transaction holds a conflicting lock on the name
/// (the background refresh worker must never queue behind a user's transaction).
pub fn try_lock(name: &str, mode: ModuleLock) -> Option<Option<ModuleOwner>> {
    lock_name(name, mode, false)
}

fn lock_name(name: &str, mode: ModuleLock, wait: bool) -> Option<Option<ModuleOwner>> {
    let table = StoreTable::open(&MODULES, pg_sys::AccessShareLock);
    let digest = sha2::Sha256::digest(name.as_bytes());
    let objid = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let objsubid = u16::from_le_bytes([digest[4], digest[5]]);
    let lockmode = match mode {
        ModuleLock::Bind => pg_sys::AccessShareLock,
        ModuleLock::Change => pg_sys::AccessExclusiveLock,
    } as pg_sys::LOCKMODE;
    // SAFETY: an object lock held to the end of the transaction; acquiring it processes
    // pending invalidations, so the snapshot taken next sees every commit before the grant.
    let granted = unsafe {
        let class = (*table.rel).rd_id;
        let object = pg_sys::Oid::from(objid);
        if wait {
            pg_sys::LockDatabaseObject(class, object, objsubid, lockmode);
            true
        } else {
            pg_sys::ConditionalLockDatabaseObject(class, object, objsubid, lockmode)
        }
    };
    if !granted {
        return None;
    }
    let snapshot = LatestSnapshot::take();
    Some(table.find(name, snapshot.snapshot, |tuple| {
        let (values, nulls) = table.deform(tuple);
        owner_of(&values, &nulls)
    }))
}

fn owner_of(values: &[pg_sys::Datum], nulls: &[bool]) -> ModuleOwner {
    let i = (COL_OWNER - 1) as usize;
    let n = (COL_OWNER_NAME - 1) as usize;
    // SAFETY: the regrole (an oid) and name columns of a tuple just deformed.
    unsafe {
        ModuleOwner {
            oid: pg_sys::Oid::from_datum(values[i], nulls[i]).unwrap_or(pg_sys::InvalidOid),
            name: (!nulls[n]).then(|| {
                // A `name` datum points at a fixed-size, NUL-terminated NameData (not a varlena).
                let data = values[n].cast_mut_ptr::<pg_sys::NameData>();
                std::ffi::CStr::from_ptr((*data).data.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            }),
        }
    }
}

/// A new row's or a replacement's column values.
fn row_values(
    name: &str,
    bytes: &[u8],
    sha256: &str,
    exports: &serde_json::Value,
) -> [pg_sys::Datum; NATTS] {
    let zero = pg_sys::Datum::from(0usize);
    // SAFETY: no preconditions inside a transaction.
    let (owner, now) = unsafe {
        (
            pg_sys::GetUserId(),
            pg_sys::GetCurrentTransactionStartTimestamp(),
        )
    };
    let owner_name = crate::catalog::privileges::role_name_of(owner).unwrap_or_default();
    [
        name.into_datum().unwrap_or(zero),
        owner.into_datum().unwrap_or(zero),
        bytes.into_datum().unwrap_or(zero),
        sha256.into_datum().unwrap_or(zero),
        pgrx::JsonB(exports.clone()).into_datum().unwrap_or(zero),
        pg_sys::Datum::from(now),
        name_datum(&owner_name),
    ]
}

/// Store a new module owned by the current user. The caller holds [`ModuleLock::Change`] on
/// the name and has checked that no module has it.
pub fn insert(name: &str, bytes: &[u8], sha256: &str, exports: &serde_json::Value) {
    let table = StoreTable::open(&MODULES, pg_sys::RowExclusiveLock);
    table.insert_row(&mut row_values(name, bytes, sha256, exports));
    // SAFETY: makes the new row visible to this transaction's next reads.
    unsafe { pg_sys::CommandCounterIncrement() };
}

/// Replace the bytes of an existing module (its owner stays). The caller holds
/// [`ModuleLock::Change`] on the name.
pub fn update(name: &str, bytes: &[u8], sha256: &str, exports: &serde_json::Value) {
    let mut values = row_values(name, bytes, sha256, exports);
    let mut replace = [true; NATTS];
    replace[(COL_NAME - 1) as usize] = false;
    replace[(COL_OWNER - 1) as usize] = false;
    replace[(COL_OWNER_NAME - 1) as usize] = false;
    modify(name, &mut values, &mut replace);
}

/// Replace the columns flagged in `replace` of module `name`'s row by `values`, and make the
/// change visible to this transaction's next reads. The caller holds [`ModuleLock::Change`] on
/// the name, so no other writer can touch the row; a missing row is 42704.
fn modify(name: &str, values: &mut [pg_sys::Datum; NATTS], replace: &mut [bool; NATTS]) {
    let table = StoreTable::open(&MODULES, pg_sys::RowExclusiveLock);
    let snapshot = LatestSnapshot::take();
    if !table.update_row(name, &snapshot, values, replace) {
        PlWasmError::ModuleNotFound {
            name: name.to_string(),
        }
        .report();
    }
    // SAFETY: makes the change visible to this transaction's next reads.
    unsafe { pg_sys::CommandCounterIncrement() };
}

/// A `name` datum (NAMEDATALEN bytes, NUL-padded; longer input is cut like Postgres does).
fn name_datum(text: &str) -> pg_sys::Datum {
    // SAFETY: a palloc'd NameData filled from a C string without interior NUL.
    unsafe {
        let data =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::NameData>()) as *mut pg_sys::NameData;
        let bytes = text.as_bytes();
        let len = bytes
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(bytes.len())
            .min(pg_sys::NAMEDATALEN as usize - 1);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (*data).data.as_mut_ptr().cast(), len);
        pg_sys::Datum::from(data)
    }
}

/// Give a module to `role` (both columns of its owner). The caller holds
/// [`ModuleLock::Change`] on the name and has checked it may.
pub fn set_owner(name: &str, role: pg_sys::Oid) {
    let role_name = crate::catalog::privileges::role_name_of(role).unwrap_or_default();
    let zero = pg_sys::Datum::from(0usize);
    let mut values = [zero; NATTS];
    values[(COL_OWNER - 1) as usize] = role.into_datum().unwrap_or(zero);
    values[(COL_OWNER_NAME - 1) as usize] = name_datum(&role_name);
    let mut replace = [false; NATTS];
    replace[(COL_OWNER - 1) as usize] = true;
    replace[(COL_OWNER_NAME - 1) as usize] = true;
    modify(name, &mut values, &mut replace);
}

/// Remove a module. The caller holds [`ModuleLock::Change`] on the name.
pub fn delete(name: &str) {
    delete_row(&MODULES, name);
}

/// Delete the row named `name` of `spec`'s table, if there is one (and the table). The caller holds
/// [`ModuleLock::Change`] on the name.
pub(crate) fn delete_row(spec: &'static TableSpec, name: &str) {
    let Some(table) = StoreTable::try_open(spec, pg_sys::RowExclusiveLock) else {
        return;
    };
    let snapshot = LatestSnapshot::take();
    table.find(name, snapshot.snapshot, |old| {
        // SAFETY: `old` is the current row (the caller's lock excludes other writers).
        unsafe { pg_sys::CatalogTupleDelete(table.rel, &mut (*old).t_self) };
    });
    // SAFETY: makes the deletion visible to this transaction's next reads.
    unsafe { pg_sys::CommandCounterIncrement() };
}

/// Write the row named `name` of `spec`'s table: replace every column of the existing row, or
/// insert one (nothing if the table does not exist). `values` has one non-NULL datum per
/// column, the key first. The caller holds
/// [`ModuleLock::Change`] on the name.
pub(crate) fn upsert_row(spec: &'static TableSpec, name: &str, values: &mut [pg_sys::Datum]) {
    let Some(table) = StoreTable::try_open(spec, pg_sys::RowExclusiveLock) else {
        return;
    };
    if values.len() != spec.types.len() {
        return;
    }
    let snapshot = LatestSnapshot::take();
    let mut replace = vec![true; values.len()];
    if !table.update_row(name, &snapshot, values, &mut replace) {
        table.insert_row(values);
    }
    // SAFETY: makes the change visible to this transaction's next reads.
    unsafe { pg_sys::CommandCounterIncrement() };
}

/// The SQL functions of this database whose body names the stored module `module`, and so keep
/// it from being unloaded or replaced incompatibly (they "pin" it).
///
/// Temporary functions are left out: any role can create them, their owner's session alone can
/// drop them, and the module's owner cannot even see them — so they must not block it. A
/// temporary function whose module is unloaded or replaced under it fails at its next call with
/// the usual errors (42704, or the binding errors of the validator).
///
/// Read from `pg_proc` with a catalog snapshot (the latest committed state, whatever the
/// transaction's isolation level) through a plain catalog scan: no SQL, no operator or function
/// a role could define.
pub fn bound_functions(module: &str) -> Vec<SqlFunction> {
    let mut functions: Vec<SqlFunction> = permanent_wasm_functions()
        .into_iter()
        .filter(
            |f| matches!(f.target(), Ok(FunctionTarget::Stored { module: m, .. }) if m == module),
        )
        .collect();
    functions.sort_by_key(|f| u32::from(f.oid));
    functions
}

/// The distinct inline module texts (`(module ...)` bodies) of the database's `LANGUAGE wasm`
/// functions outside temporary schemas, read like [`bound_functions`].
pub fn inline_sources() -> Vec<String> {
    let mut sources: Vec<String> = permanent_wasm_functions()
        .into_iter()
        .filter_map(|f| match f.target() {
            Ok(FunctionTarget::Inline { source, .. }) => Some(source),
            _ => None,
        })
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

/// Every `LANGUAGE wasm` function outside temporary schemas, from a catalog scan of `pg_proc`
/// (catalog snapshot, no SQL).
fn permanent_wasm_functions() -> Vec<SqlFunction> {
    // SAFETY: a sequential catalog scan of pg_proc keyed by prolang (no index covers it); the
    // OIDs are copied out of each tuple inside the callback.
    let oids = unsafe {
        let language = pg_sys::get_language_oid(c"wasm".as_ptr(), true);
        if language == pg_sys::InvalidOid {
            return Vec::new();
        }
        let mut oids = Vec::new();
        scan_catalog(
            pg_sys::ProcedureRelationId,
            pg_sys::InvalidOid,
            &[(pg_sys::Anum_pg_proc_prolang as pg_sys::AttrNumber, language)],
            |tuple| {
                let form = pg_sys::GETSTRUCT(tuple) as pg_sys::Form_pg_proc;
                // Temporary functions (any session's) do not pin a module: see `bound_functions`.
                if !pg_sys::isAnyTempNamespace((*form).pronamespace) {
                    oids.push((*form).oid);
                }
            },
        );
        oids
    };
    oids.into_iter()
        .filter_map(SqlFunction::try_from_oid)
        .collect()
}

//! Dump order: constraints that call wasm functions over stored modules are restored after the
//! modules.
//!
//! pg_dump restores `wasm.module_store`'s rows with the other tables' data, ordered by schema
//! name, and a CHECK constraint written inside `CREATE TABLE` (or `CREATE DOMAIN`) is checked
//! while a table's data is copied in. A constraint that calls a function bound to a stored
//! module would then run before its module exists, and the copy fails (the table comes back
//! empty). pg_dump has no dependency on another table's data, but it does follow `pg_depend`: a
//! constraint that depends on a post-data object (module_store's primary-key index) cannot be
//! created with its table, so pg_dump writes it as a separate `ALTER TABLE/ALTER DOMAIN ... ADD
//! CONSTRAINT` after all the data, serial or parallel, plain script or archive.
//!
//! This module records that dependency: [`depend_on_modules`] for one constraint (after checking
//! that it calls such a function, directly or through operators and SQL-standard function
//! bodies, so calling it on any other constraint changes nothing), the event trigger
//! `wasm.order_constraints_after_modules` (extension script) for every constraint of a table,
//! its partitions, children and typed tables, or a domain a DDL command touched, and the
//! validator for the constraints that use a function re-bound with `CREATE OR REPLACE`. Catalog
//! access is by OID through indexes: no SQL, nothing a role can define is reached.
//!
//! Restores this covers: a serial `pg_restore`, a plain script through psql, and a parallel
//! restore run section by section (pre-data, then data, then post-data). A single `pg_restore -j`
//! schedules a post-data item as soon as its own table is loaded, and nothing in the archive ties
//! it to the modules' data (the index is the extension's, not in the archive), so there a
//! constraint may still be added before the modules are back.

use pgrx::prelude::*;

use crate::catalog::{self, SqlFunction};
use crate::target::FunctionTarget;

// Catalog OIDs and attribute numbers that pgrx does not bind (fixed by PostgreSQL's catalog
// headers: pg_constraint.h, pg_depend.h).
const CONSTRAINT_RELATION_ID: u32 = 2606;
const DEPEND_RELATION_ID: u32 = 2608;
const DEPEND_DEPENDER_INDEX_ID: u32 = 2673;
const DEPEND_REFERENCE_INDEX_ID: u32 = 2674;
const ANUM_PG_DEPEND_CLASSID: i16 = 1;
const ANUM_PG_DEPEND_OBJID: i16 = 2;
const ANUM_PG_DEPEND_REFCLASSID: i16 = 4;
const ANUM_PG_DEPEND_REFOBJID: i16 = 5;

/// A `pg_depend` row (`FormData_pg_depend`, whose layout has not changed since PostgreSQL 8.0).
#[repr(C)]
struct DependRow {
    classid: pg_sys::Oid,
    objid: pg_sys::Oid,
    objsubid: i32,
    refclassid: pg_sys::Oid,
    refobjid: pg_sys::Oid,
    refobjsubid: i32,
    deptype: std::ffi::c_char,
}

/// The `(classid, objid, refclassid, refobjid)` of the `pg_depend` rows whose `key_class` and
/// `key_object` are `class` and `object`, through `index` (depender or referenced side).
fn depend_rows(
    index: u32,
    key_class: i16,
    key_object: i16,
    class: pg_sys::Oid,
    object: pg_sys::Oid,
) -> Vec<(pg_sys::Oid, pg_sys::Oid, pg_sys::Oid, pg_sys::Oid)> {
    let mut rows = Vec::new();
    // SAFETY: an index scan of pg_depend with two equality keys and the catalog snapshot
    // systable_beginscan takes; each tuple is read before the next getnext, and the relation is
    // closed after the scan ends.
    unsafe {
        let rel = pg_sys::table_open(
            pg_sys::Oid::from(DEPEND_RELATION_ID),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        for (key, (attno, value)) in keys
            .iter_mut()
            .zip([(key_class, class), (key_object, object)])
        {
            pg_sys::ScanKeyInit(
                key,
                attno,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::Oid::from(pg_sys::F_OIDEQ),
                pg_sys::Datum::from(value),
            );
        }
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::Oid::from(index),
            true,
            std::ptr::null_mut(),
            2,
            keys.as_mut_ptr(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let row = &*(pg_sys::GETSTRUCT(tuple) as *const DependRow);
            rows.push((row.classid, row.objid, row.refclassid, row.refobjid));
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    rows
}

/// Whether `function` is a `LANGUAGE wasm` function bound to a stored module.
fn calls_stored_module(function: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup by name; InvalidOid when the language does not exist.
    let wasm = unsafe { pg_sys::get_language_oid(c"wasm".as_ptr(), true) };
    let Some(proc) = pgrx::pg_catalog::pg_proc::PgProc::new(function) else {
        return false;
    };
    if wasm == pg_sys::InvalidOid || proc.prolang() != wasm {
        return false;
    }
    SqlFunction::try_from_oid(function)
        .is_some_and(|f| matches!(f.target(), Ok(FunctionTarget::Stored { .. })))
}

/// How many functions and operators a search through `pg_depend` visits at most: a constraint
/// reaches a wasm function directly, through an operator, or through functions with SQL-standard
/// bodies (whose calls `pg_depend` records); anything deeper is unusual, and the bound keeps
/// every DDL command cheap.
const MAX_VISITED: usize = 256;

/// Whether `(class, object)` is a function or an operator (the links followed in searches).
fn is_link(class: pg_sys::Oid) -> bool {
    class == pg_sys::ProcedureRelationId || class == pg_sys::OperatorRelationId
}

/// Whether `constraint` calls a function bound to a stored module, directly or through
/// operators and functions, following what it depends on.
fn reaches_stored_module(constraint: pg_sys::Oid) -> bool {
    let mut queue = vec![(pg_sys::Oid::from(CONSTRAINT_RELATION_ID), constraint)];
    let mut visited = std::collections::HashSet::new();
    while let Some((class, object)) = queue.pop() {
        if !visited.insert((class, object)) || visited.len() > MAX_VISITED {
            continue;
        }
        let refs = depend_rows(
            DEPEND_DEPENDER_INDEX_ID,
            ANUM_PG_DEPEND_CLASSID,
            ANUM_PG_DEPEND_OBJID,
            class,
            object,
        );
        for (_, _, ref_class, ref_object) in refs {
            if ref_class == pg_sys::ProcedureRelationId && calls_stored_module(ref_object) {
                return true;
            }
            if is_link(ref_class) {
                queue.push((ref_class, ref_object));
            }
        }
    }
    false
}

/// Make constraint `constraint` depend on `wasm.module_store`'s key index when it calls a
/// function bound to a stored module (directly, or through operators and functions), so pg_dump
/// restores it after the modules. Returns whether the constraint has that dependency now;
/// calling it again, or on any other constraint, changes nothing.
///
/// The constraint is share-locked first, as Postgres locks an object it records a dependency
/// on, so a concurrent DROP either has committed (and the constraint is gone: nothing is
/// recorded) or waits until this transaction ends: no dependency ever outlives its constraint.
pub fn order_after_modules(constraint: pg_sys::Oid) -> bool {
    let key_index = catalog::module_store_key_index();
    if key_index == pg_sys::InvalidOid {
        return false;
    }
    let constraint_class = pg_sys::Oid::from(CONSTRAINT_RELATION_ID);
    // SAFETY: a lock on a catalog object by OID (which also processes invalidations), then a
    // syscache probe by OID.
    let exists = unsafe {
        pg_sys::LockDatabaseObject(
            constraint_class,
            constraint,
            0,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::CONSTROID as i32,
            pg_sys::Datum::from(constraint),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        )
    };
    if !exists {
        return false;
    }
    let depends = depend_rows(
        DEPEND_DEPENDER_INDEX_ID,
        ANUM_PG_DEPEND_CLASSID,
        ANUM_PG_DEPEND_OBJID,
        constraint_class,
        constraint,
    );
    if depends
        .iter()
        .any(|&(_, _, class, object)| class == pg_sys::RelationRelationId && object == key_index)
    {
        return true;
    }
    if !reaches_stored_module(constraint) {
        return false;
    }
    // SAFETY: reports (as an ERROR) a read-only transaction, where nothing may be written.
    unsafe { pg_sys::PreventCommandIfReadOnly(c"wasm.depend_on_modules()".as_ptr()) };
    let depender = pg_sys::ObjectAddress {
        classId: constraint_class,
        objectId: constraint,
        objectSubId: 0,
    };
    let referenced = pg_sys::ObjectAddress {
        classId: pg_sys::RelationRelationId,
        objectId: key_index,
        objectSubId: 0,
    };
    // SAFETY: both objects exist (the constraint is locked and was just found, the index was just
    // looked up); recordDependencyOn inserts one pg_depend row.
    unsafe {
        pg_sys::recordDependencyOn(
            &depender,
            &referenced,
            pg_sys::DependencyType::DEPENDENCY_NORMAL,
        )
    };
    true
}

/// Order every constraint that uses `function` (directly, or through operators and functions
/// that use it) after the modules, when the function is bound to a stored module: a
/// `CREATE OR REPLACE FUNCTION` may re-bind a function that constraints already call.
pub fn order_users_of(function: pg_sys::Oid) {
    if !calls_stored_module(function) {
        return;
    }
    let mut queue = vec![(pg_sys::ProcedureRelationId, function)];
    let mut visited = std::collections::HashSet::new();
    while let Some((class, object)) = queue.pop() {
        if !visited.insert((class, object)) || visited.len() > MAX_VISITED {
            continue;
        }
        let users = depend_rows(
            DEPEND_REFERENCE_INDEX_ID,
            ANUM_PG_DEPEND_REFCLASSID,
            ANUM_PG_DEPEND_REFOBJID,
            class,
            object,
        );
        for (user_class, user, _, _) in users {
            if user_class == pg_sys::Oid::from(CONSTRAINT_RELATION_ID) {
                order_after_modules(user);
            } else if is_link(user_class) {
                queue.push((user_class, user));
            }
        }
    }
}

/// `wasm.depend_on_modules(constraint)`: see [`order_after_modules`]. Called by the event trigger
/// for the constraints of what a DDL command created or altered; for databases that had such
/// constraints before, `SELECT wasm.depend_on_modules(oid) FROM pg_constraint` records them all.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn depend_on_modules(constraint: pg_sys::Oid) -> bool {
    order_after_modules(constraint)
}

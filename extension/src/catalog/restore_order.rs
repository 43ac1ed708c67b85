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
//! This module keeps that dependency in step: [`depend_on_modules`] for one constraint records it
//! when the constraint calls such a function (directly, or through operators and functions with
//! SQL-standard bodies, whose calls `pg_depend` records) and removes it when the constraint no
//! longer does; the event trigger `wasm.order_constraints_after_modules` (extension script) calls
//! it for the constraints of what a DDL command created or altered (tables, their partitions,
//! children and typed tables, domains) and of the functions it (re)defined, transitively. Only the
//! owner of the constraint's table or domain (or a superuser) changes anything, so no role can
//! lock or alter another role's constraints through it. Catalog access is by OID through indexes:
//! no SQL, nothing a role can define is reached.
//!
//! Restores this covers: a serial `pg_restore`, a plain script through psql, and a parallel
//! restore run section by section (pre-data, then data, then post-data). A single `pg_restore -j`
//! schedules a post-data item as soon as its own table is loaded, and nothing in the archive ties
//! it to the modules' data (the index is the extension's, not in the archive), so there a
//! constraint may still be added before the modules are back.

use pgrx::prelude::*;

use crate::catalog;
use crate::catalog::target::{self, FunctionTarget};

// Catalog OIDs and attribute numbers that pgrx does not bind (fixed by PostgreSQL's catalog
// headers: pg_constraint.h, pg_depend.h).
const CONSTRAINT_RELATION_ID: u32 = 2606;
const DEPEND_RELATION_ID: u32 = 2608;
const DEPEND_DEPENDER_INDEX_ID: u32 = 2673;
const ANUM_PG_DEPEND_CLASSID: i16 = 1;
const ANUM_PG_DEPEND_OBJID: i16 = 2;

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

/// What one object depends on: `(refclassid, refobjid, deptype)` of each `pg_depend` row whose
/// depender is `(class, object)`.
fn depends_on(class: pg_sys::Oid, object: pg_sys::Oid) -> Vec<(pg_sys::Oid, pg_sys::Oid, u8)> {
    let mut rows = Vec::new();
    // SAFETY: pg_depend through its depender index, both keys OID columns; each row is copied
    // out of its tuple inside the callback.
    unsafe {
        crate::catalog::scan_catalog(
            pg_sys::Oid::from(DEPEND_RELATION_ID),
            pg_sys::Oid::from(DEPEND_DEPENDER_INDEX_ID),
            &[
                (ANUM_PG_DEPEND_CLASSID, class),
                (ANUM_PG_DEPEND_OBJID, object),
            ],
            |tuple| {
                let row = &*(pg_sys::GETSTRUCT(tuple) as *const DependRow);
                rows.push((row.refclassid, row.refobjid, row.deptype as u8));
            },
        );
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
    // Only whether the body names a stored module matters here, not the export's name (which
    // defaults to the function's): no need to look the function's name up for each edge.
    matches!(
        target::parse(&proc.prosrc(), "function"),
        Ok(FunctionTarget::Stored { .. })
    )
}

/// How many functions and operators a search through `pg_depend` visits at most: a constraint
/// reaches a wasm function directly, through an operator, or through functions with SQL-standard
/// bodies; deeper chains than this are not followed (documented), which keeps every DDL command
/// cheap.
const MAX_VISITED: usize = 1024;

/// Whether `class` is a function's or an operator's (the links followed in searches).
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
        for (ref_class, ref_object, _) in depends_on(class, object) {
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

/// Whether the current user owns (or, as a superuser, may act for the owner of) the table or
/// domain of a constraint, given what the constraint depends on (its table's columns or its
/// domain, automatically).
fn owns_constraint(depends: &[(pg_sys::Oid, pg_sys::Oid, u8)]) -> bool {
    let user = crate::catalog::privileges::current_user();
    depends.iter().any(|&(class, object, deptype)| {
        deptype == pg_sys::DependencyType::DEPENDENCY_AUTO as u8
            // SAFETY: plain catalog checks; true for superusers.
            && ((class == pg_sys::RelationRelationId
                && unsafe { pg_sys::pg_class_ownercheck(object, user) })
                || (class == pg_sys::TypeRelationId
                    && unsafe { pg_sys::pg_type_ownercheck(object, user) }))
    })
}

/// Keep constraint `constraint`'s dependency on `wasm.module_store`'s key index in step with
/// what it calls: present when it calls a function bound to a stored module (directly, or
/// through operators and functions), absent otherwise. Returns whether it has the dependency
/// now. Only the owner of the constraint's table or domain (or a superuser) changes anything;
/// for others, and when nothing needs to change, it takes no lock and writes nothing.
///
/// Before writing, the constraint is share-locked, as Postgres locks an object it records a
/// dependency on, so a concurrent DROP either has committed (and the constraint is gone:
/// nothing is written) or waits until this transaction ends: no row ever outlives its
/// constraint.
pub fn order_after_modules(constraint: pg_sys::Oid) -> bool {
    let key_index = catalog::module_store_key_index();
    if key_index == pg_sys::InvalidOid {
        return false;
    }
    let constraint_class = pg_sys::Oid::from(CONSTRAINT_RELATION_ID);
    let depends = depends_on(constraint_class, constraint);
    let has = depends
        .iter()
        .any(|&(class, object, _)| class == pg_sys::RelationRelationId && object == key_index);
    let reaches = reaches_stored_module(constraint);
    if has == reaches || !owns_constraint(&depends) {
        return has;
    }
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
    // looked up); one pg_depend row is inserted or deleted. The CommandCounterIncrement makes the
    // change visible to this command's next look, so a constraint reached twice in one command
    // gets one row.
    unsafe {
        if reaches {
            pg_sys::recordDependencyOn(
                &depender,
                &referenced,
                pg_sys::DependencyType::DEPENDENCY_NORMAL,
            );
        } else {
            pg_sys::deleteDependencyRecordsForSpecific(
                constraint_class,
                constraint,
                pg_sys::DependencyType::DEPENDENCY_NORMAL as std::ffi::c_char,
                pg_sys::RelationRelationId,
                key_index,
            );
        }
        pg_sys::CommandCounterIncrement();
    }
    reaches
}

/// `wasm.depend_on_modules(constraint)`: see [`order_after_modules`]. Called by the event trigger
/// for the constraints of what a DDL command created or altered; for constraints made before (or
/// while event triggers did not fire), `SELECT wasm.depend_on_modules(oid) FROM pg_constraint`
/// brings them all in step.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn depend_on_modules(constraint: pg_sys::Oid) -> bool {
    order_after_modules(constraint)
}

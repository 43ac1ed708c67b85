//! Previous versions of modules (`wasm.module_history`), for `wasm.rollback`.
//!
//! A replace that changes a module's bytes first keeps the version it replaces as the module's
//! newest previous version, numbered one above the newest kept so far, then deletes the oldest
//! beyond `wasm.module_history`. The current version's number is one above the newest previous
//! one (the `wasm.module_versions` view computes it), so a rollback, which makes the newest
//! previous version current and deletes it from the history, gives the current version back
//! the number it had. A module loaded anew (first load, or after an unload) has no history:
//! rows left under its name (written by SQL, or replicated) are deleted first.
//!
//! Same access rules as the module table (see `mod.rs`): no SQL, tables opened by OID, rows
//! found through the primary-key index `(name, version)`; callers hold the name's
//! [`ModuleLock::Change`](super::ModuleLock::Change).

use pgrx::{pg_sys, FromDatum, IntoDatum};

use super::{LatestSnapshot, StoreTable, TableSpec, MODULES};

/// `wasm.module_history`.
static HISTORY: TableSpec = TableSpec {
    relname: c"module_history",
    key_index: c"module_history_pkey",
    types: &[
        pg_sys::TEXTOID,        // name
        pg_sys::INT4OID,        // version
        pg_sys::BYTEAOID,       // bytes
        pg_sys::TEXTOID,        // sha256
        pg_sys::JSONBOID,       // exports
        pg_sys::TIMESTAMPTZOID, // loaded_at
        pg_sys::TIMESTAMPTZOID, // replaced_at
    ],
};
const COL_VERSION: usize = 1;
const COL_BYTES: usize = 2;

/// A previous version of a module.
pub struct PreviousVersion {
    pub version: i32,
    pub bytes: Vec<u8>,
}

/// The versions kept for `name` (ascending) with their tuples' ids.
fn versions(table: &StoreTable, name: &str) -> Vec<(i32, pg_sys::ItemPointerData)> {
    let snapshot = LatestSnapshot::take();
    let mut found = Vec::new();
    table.scan_key(name, snapshot.snapshot, |tuple| {
        let (values, nulls) = table.deform(tuple);
        // SAFETY: the int4 column of the tuple just deformed; t_self identifies the tuple.
        let version = unsafe { i32::from_datum(values[COL_VERSION], nulls[COL_VERSION]) };
        found.push((version.unwrap_or(0), unsafe { (*tuple).t_self }));
        true
    });
    found.sort_by_key(|(version, _)| *version);
    found
}

/// Keep module `name`'s current version (its row in `wasm.module_store`) as its newest
/// previous version, then delete the oldest beyond `keep` (all of them for 0).
pub fn keep_current(name: &str, keep: usize) {
    let Some(history) = StoreTable::try_open(&HISTORY, pg_sys::RowExclusiveLock) else {
        return;
    };
    let mut kept = versions(&history, name);
    if keep > 0 {
        let modules = StoreTable::open(&MODULES, pg_sys::AccessShareLock);
        let snapshot = LatestSnapshot::take();
        let next = match kept.last() {
            None => 1,
            Some((newest, _)) => match newest.checked_add(1) {
                Some(next) => next,
                None => {
                    pgrx::ereport!(
                        ERROR,
                        pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        format!("module \"{name}\" has run out of version numbers"),
                        "Unload it and load it anew, which starts again at version 1."
                    );
                }
            },
        };
        modules.find(name, snapshot.snapshot, |tuple| {
            let (mut values, nulls) = modules.deform(tuple);
            // The bytes are copied out (detoasted): the new row must not point into another
            // table's TOAST data.
            let bytes_at = (super::COL_BYTES - 1) as usize;
            // SAFETY: the bytea column of the tuple just deformed.
            let bytes = unsafe { Vec::<u8>::from_datum(values[bytes_at], nulls[bytes_at]) };
            values[bytes_at] = bytes.into_datum().unwrap_or(pg_sys::Datum::from(0usize));
            // SAFETY: no preconditions inside a transaction.
            let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
            let mut row = [
                values[(super::COL_NAME - 1) as usize],
                pg_sys::Datum::from(next),
                values[bytes_at],
                values[(super::COL_SHA256 - 1) as usize],
                values[(super::COL_EXPORTS - 1) as usize],
                values[(super::COL_LOADED_AT - 1) as usize],
                pg_sys::Datum::from(now),
            ];
            history.insert_row(&mut row);
        });
        // SAFETY: makes the new row visible to this transaction's next reads.
        unsafe { pg_sys::CommandCounterIncrement() };
        kept = versions(&history, name);
    }
    let excess = kept.len().saturating_sub(keep);
    delete(&history, &kept[..excess]);
}

/// The newest previous version of `name`, with its bytes.
pub fn newest(name: &str) -> Option<PreviousVersion> {
    let history = StoreTable::try_open(&HISTORY, pg_sys::AccessShareLock)?;
    let newest = versions(&history, name).last()?.0;
    let snapshot = LatestSnapshot::take();
    let mut found = None;
    history.scan_key(name, snapshot.snapshot, |tuple| {
        let (values, nulls) = history.deform(tuple);
        // SAFETY: the int4 and bytea columns of the tuple just deformed.
        unsafe {
            if i32::from_datum(values[COL_VERSION], nulls[COL_VERSION]) == Some(newest) {
                found = Vec::<u8>::from_datum(values[COL_BYTES], nulls[COL_BYTES]).map(|bytes| {
                    PreviousVersion {
                        version: newest,
                        bytes,
                    }
                });
            }
        }
        found.is_none()
    });
    found
}

/// Delete version `version` of `name` (a rollback made it current).
pub fn remove(name: &str, version: i32) {
    let Some(history) = StoreTable::try_open(&HISTORY, pg_sys::RowExclusiveLock) else {
        return;
    };
    let rows: Vec<_> = versions(&history, name)
        .into_iter()
        .filter(|(v, _)| *v == version)
        .collect();
    delete(&history, &rows);
}

/// Delete every previous version of `name` (it was unloaded, or is loaded anew).
pub fn forget(name: &str) {
    let Some(history) = StoreTable::try_open(&HISTORY, pg_sys::RowExclusiveLock) else {
        return;
    };
    let rows = versions(&history, name);
    delete(&history, &rows);
}

fn delete(history: &StoreTable, rows: &[(i32, pg_sys::ItemPointerData)]) {
    for (_, tid) in rows {
        let mut tid = *tid;
        // SAFETY: a tuple of this table found under the name's lock (no other writer).
        unsafe { pg_sys::CatalogTupleDelete(history.rel, &mut tid) };
    }
    if !rows.is_empty() {
        // SAFETY: makes the deletions visible to this transaction's next reads.
        unsafe { pg_sys::CommandCounterIncrement() };
    }
}

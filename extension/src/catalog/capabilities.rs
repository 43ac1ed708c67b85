//! Module capabilities (`wasm.module_capabilities`): what a module may do beyond computing, today
//! only `query` (read-only SQL through `plwasm.query`, as the calling role).
//!
//! A module asks for a capability by importing its host functions; it has it only once a
//! superuser or a member of `wasm_capabilities` gave it with `wasm.set_capabilities`. A
//! capability belongs to the module's name: a replace or rollback keeps it, an unload drops it.
//! The module's owner may take capabilities away, not give them.
//!
//! Same access rules as the module table (see `mod.rs`): no SQL, the table opened by OID, its row
//! found through the primary-key index; writers hold the name's
//! [`ModuleLock::Change`](super::ModuleLock::Change).

use pgrx::{pg_sys, FromDatum, IntoDatum};

use super::{LatestSnapshot, StoreTable, TableSpec};

/// `wasm.module_capabilities`.
static CAPABILITIES: TableSpec = TableSpec {
    relname: c"module_capabilities",
    key_index: c"module_capabilities_pkey",
    types: &[
        pg_sys::TEXTOID,        // name
        pg_sys::TEXTARRAYOID,   // capabilities
        pg_sys::TEXTOID,        // granted_by
        pg_sys::TIMESTAMPTZOID, // granted_at
    ],
};
const COL_CAPABILITIES: usize = 1;

/// The role whose members may give modules capabilities.
pub const GRANTER_ROLE: &std::ffi::CStr = c"wasm_capabilities";

/// A capability a module can be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Read-only queries through `plwasm.query` and its cursors.
    Query,
}

impl Capability {
    pub const ALL: &'static [Capability] = &[Capability::Query];

    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "query",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// The capabilities module `name` has (none if it has no row, or the table does not exist).
pub fn of(name: &str) -> Vec<Capability> {
    let Some(table) = StoreTable::try_open(&CAPABILITIES, pg_sys::AccessShareLock) else {
        return Vec::new();
    };
    let snapshot = LatestSnapshot::take();
    table
        .find(name, snapshot.snapshot, |tuple| {
            let (values, nulls) = table.deform(tuple);
            // SAFETY: the text[] column of the tuple just deformed.
            let names = unsafe {
                Vec::<Option<String>>::from_datum(values[COL_CAPABILITIES], nulls[COL_CAPABILITIES])
            };
            names
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .filter_map(|n| Capability::parse(&n))
                .collect()
        })
        .unwrap_or_default()
}

/// Give module `name` exactly `capabilities` (none: delete its row), recorded as given by the
/// current user now. The caller holds the name's lock and has checked it may.
pub fn set(name: &str, capabilities: &[Capability]) {
    if capabilities.is_empty() {
        forget(name);
        return;
    }
    let names: Vec<String> = capabilities.iter().map(|c| c.name().to_string()).collect();
    let granted_by =
        super::privileges::role_name_of(super::privileges::current_user()).unwrap_or_default();
    let zero = pg_sys::Datum::from(0usize);
    // SAFETY: no preconditions inside a transaction.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let mut values = [
        name.into_datum().unwrap_or(zero),
        names.into_datum().unwrap_or(zero),
        granted_by.into_datum().unwrap_or(zero),
        pg_sys::Datum::from(now),
    ];
    super::upsert_row(&CAPABILITIES, name, &mut values);
}

/// Drop module `name`'s capabilities (it was unloaded).
pub fn forget(name: &str) {
    super::delete_row(&CAPABILITIES, name);
}

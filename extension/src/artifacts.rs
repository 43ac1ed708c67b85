//! Compiled modules kept in the catalog (`wasm.module_artifacts`), so that a backend or a
//! parallel worker deserializes a stored module instead of compiling it.
//!
//! `wasm.load` compiles every module anyway (to validate it); it keeps the compiled,
//! instrumented code beside the module, tagged with the module's SHA-256, this build's engine
//! [`fingerprint`] and a CRC-32C of the artifact. A backend uses an artifact only if all three
//! match; anything else (another plwasm or Wasmer build, another CPU, a damaged row) falls back
//! to compiling the module's bytes, and is counted in [`stats`].
//!
//! Deserializing maps machine code, so nothing but plwasm writes the table: it is readable and
//! writable only by its owner (the superuser who created the extension; a superuser can run
//! native code anyway). pg_dump leaves it out (an artifact belongs to one build and CPU); it
//! travels in WAL to physical standbys with the rest of the database.

use std::cell::Cell;
use std::sync::OnceLock;

use pgrx::{pg_sys, FromDatum, IntoDatum};
use sha2::Digest as _;
use wasmer::Module;

use crate::catalog::{self, LatestSnapshot, StoreTable, TableSpec};

const COL_SHA256: i16 = 2;
const COL_ENGINE: i16 = 3;
const COL_CRC32C: i16 = 4;
const COL_ARTIFACT: i16 = 5;

/// `wasm.module_artifacts` (see `sql/catalog.sql`).
static ARTIFACTS: TableSpec = TableSpec {
    relname: c"module_artifacts",
    key_index: c"module_artifacts_pkey",
    natts: 5,
};

/// Sources whose change changes the code plwasm generates: the instrumentation, the engine's
/// configuration, the tunables, and the exact versions of Wasmer and Cranelift.
const CODEGEN_SOURCES: [&[u8]; 4] = [
    include_bytes!("instrument.rs"),
    include_bytes!("runtime.rs"),
    include_bytes!("limits.rs"),
    include_bytes!("../../Cargo.lock"),
];

/// What an artifact must have been compiled by to be used here: plwasm's version and codegen
/// sources, Wasmer's compiler configuration, and the host's architecture and CPU features.
pub fn fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let mut sources = sha2::Sha256::new();
        for source in CODEGEN_SOURCES {
            sources.update((source.len() as u64).to_le_bytes());
            sources.update(source);
        }
        let sources = sources.finalize();
        let engine = crate::runtime::engine();
        format!(
            "plwasm {} codegen {} engine {} target {} cpu {:?}",
            env!("CARGO_PKG_VERSION"),
            sources
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            engine.deterministic_id(),
            wasmer::sys::Triple::host(),
            wasmer::sys::CpuFeature::for_host(),
        )
    })
}

thread_local! {
    static FROM_ARTIFACT: Cell<i64> = const { Cell::new(0) };
    static REFUSED: Cell<i64> = const { Cell::new(0) };
}

/// This backend's counts: modules deserialized from an artifact, and artifacts found but not
/// used (built elsewhere, damaged, or refused by Wasmer).
pub fn stats() -> (i64, i64) {
    (FROM_ARTIFACT.with(Cell::get), REFUSED.with(Cell::get))
}

/// CRC-32C of `bytes`, with Postgres's own (hardware-assisted where the CPU has it) routine.
fn crc32c(bytes: &[u8]) -> u32 {
    // SAFETY: Postgres sets the function pointer when the library loads; the buffer is valid.
    unsafe {
        match pg_sys::pg_comp_crc32c {
            Some(comp) => !comp(0xFFFF_FFFF, bytes.as_ptr().cast(), bytes.len()),
            None => 0,
        }
    }
}

/// Keep `module` (compiled from the bytes with `sha256`) as module `name`'s artifact, replacing
/// any earlier one. A module Wasmer cannot serialize gets none (calls compile it). The caller
/// holds the name's [`catalog::ModuleLock::Change`].
pub fn store(name: &str, sha256: &str, module: &Module) {
    let Ok(artifact) = module.serialize() else {
        remove(name);
        return;
    };
    let zero = pg_sys::Datum::from(0usize);
    let mut values = [
        name.into_datum().unwrap_or(zero),
        sha256.into_datum().unwrap_or(zero),
        fingerprint().into_datum().unwrap_or(zero),
        i64::from(crc32c(&artifact)).into_datum().unwrap_or(zero),
        artifact.as_ref().into_datum().unwrap_or(zero),
    ];
    catalog::upsert_row(&ARTIFACTS, name, &mut values);
}

/// Forget module `name`'s artifact. The caller holds the name's
/// [`catalog::ModuleLock::Change`].
pub fn remove(name: &str) {
    catalog::delete_row(&ARTIFACTS, name);
}

/// Module `name` deserialized from its artifact, if it has one made from the bytes with
/// `sha256` by a build like this one, intact.
pub fn load(name: &str, sha256: &str) -> Option<Module> {
    let table = StoreTable::open(&ARTIFACTS, pg_sys::AccessShareLock);
    let snapshot = LatestSnapshot::take();
    let artifact = table
        .find(name, snapshot.snapshot, |tuple| {
            let (values, nulls) = table.deform(tuple);
            let matches = catalog::text_at(&values, &nulls, COL_SHA256) == sha256
                && catalog::text_at(&values, &nulls, COL_ENGINE) == fingerprint();
            if !matches {
                return None;
            }
            let (crc, bytes) = ((COL_CRC32C - 1) as usize, (COL_ARTIFACT - 1) as usize);
            // SAFETY: the bigint and bytea columns of the tuple just deformed (the bytea is
            // detoasted into a copy).
            let crc = unsafe { i64::from_datum(values[crc], nulls[crc]) }?;
            let bytes = unsafe { Vec::<u8>::from_datum(values[bytes], nulls[bytes]) }?;
            (i64::from(crc32c(&bytes)) == crc).then_some(bytes)
        })
        .flatten();
    let Some(artifact) = artifact else {
        REFUSED.with(|n| n.set(n.get() + i64::from(table_has(&table, name, &snapshot))));
        return None;
    };
    let engine = crate::runtime::engine();
    // SAFETY: the bytes are an artifact plwasm serialized (only plwasm writes the table), for
    // this build and CPU (fingerprint) and intact (CRC-32C).
    match unsafe { Module::deserialize(&engine, artifact) } {
        Ok(module) => {
            FROM_ARTIFACT.with(|n| n.set(n.get() + 1));
            Some(module)
        }
        Err(_) => {
            REFUSED.with(|n| n.set(n.get() + 1));
            None
        }
    }
}

/// Whether the table has a row for `name` (an artifact was there but not usable).
fn table_has(table: &StoreTable, name: &str, snapshot: &LatestSnapshot) -> bool {
    table.find(name, snapshot.snapshot, |_| ()).is_some()
}

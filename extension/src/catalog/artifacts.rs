//! Compiled modules kept in the catalog (`wasm.module_artifacts`), so that a backend or a
//! parallel worker deserializes a stored module instead of compiling it.
//!
//! `wasm.load` compiles every module anyway (to validate it); it keeps the compiled,
//! instrumented code beside the module, with the module's SHA-256, this build's engine
//! [`fingerprint`], and a MAC: HMAC-SHA256 over all of it (and the module's name) under a key
//! that only this cluster's files hold ([`key`], a file in the data directory). A backend uses an
//! artifact only if the SHA-256 and fingerprint match and the MAC verifies; anything else
//! (another plwasm or Wasmer build, another CPU, another cluster, a row written by anything but
//! plwasm) falls back to compiling the module's bytes, and is counted in [`stats`].
//!
//! The MAC is what makes deserializing (mapping machine code) safe: table privileges alone are
//! not enough, since members of `pg_write_all_data` may write any table. Forging a MAC needs the
//! key file, i.e. the server's files (superusers, `pg_read_server_files`). pg_dump leaves the
//! table out; physical standbys receive it in WAL and the key with the data directory.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::sync::OnceLock;

use hmac::Mac as _;
use pgrx::{pg_sys, FromDatum, IntoDatum};
use sha2::Digest as _;
use wasmer::Module;

use crate::catalog::{self, LatestSnapshot, StoreTable, TableSpec};

const COL_SHA256: i16 = 2;
const COL_ENGINE: i16 = 3;
const COL_MAC: i16 = 4;
const COL_ARTIFACT: i16 = 5;

/// `wasm.module_artifacts` (see `sql/catalog.sql`).
static ARTIFACTS: TableSpec = TableSpec {
    relname: c"module_artifacts",
    key_index: c"module_artifacts_pkey",
    types: &[
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::BYTEAOID,
        pg_sys::BYTEAOID,
    ],
};

/// Largest artifact kept; a larger one is not stored (its module is compiled at first call).
/// Compiled code can be tens of times larger than the module.
const MAX_ARTIFACT_BYTES: usize = 256 * 1024 * 1024;

/// The key file, in the data directory (copied to standbys by pg_basebackup).
const KEY_FILE: &str = "plwasm_artifact.key";
const KEY_LEN: usize = 32;

/// Sources whose change changes the code plwasm generates: the instrumentation, the engine's
/// configuration, the tunables, and the exact versions of Wasmer and Cranelift.
const CODEGEN_SOURCES: [&[u8]; 4] = [
    include_bytes!("../runtime/instrument.rs"),
    include_bytes!("../runtime/mod.rs"),
    include_bytes!("../runtime/limits.rs"),
    include_bytes!("../../../Cargo.lock"),
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
    static KEY: RefCell<Option<Option<[u8; KEY_LEN]>>> = const { RefCell::new(None) };
}

/// This backend's counts: modules deserialized from an artifact, and artifacts found but not
/// used (built elsewhere, for other bytes, or not written by plwasm here).
pub fn stats() -> (i64, i64) {
    (FROM_ARTIFACT.with(Cell::get), REFUSED.with(Cell::get))
}

/// The cluster's artifact key: read from the data directory, or created there (32 bytes from
/// Postgres's strong random source, mode 0600, published atomically with a hard link so
/// concurrent backends agree). None if it cannot be read or made: artifacts are then neither
/// written nor used. A standby never makes one: its key must be the primary's (pg_basebackup
/// copies it, if the primary had made it by then), or none of the artifacts it replays would
/// verify, and a promoted standby would keep a key of its own.
fn key() -> Option<[u8; KEY_LEN]> {
    KEY.with(|cached| *cached.borrow_mut().get_or_insert_with(read_or_create_key))
}

fn read_or_create_key() -> Option<[u8; KEY_LEN]> {
    // SAFETY: DataDir is set for the life of every backend.
    let dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) }
        .to_str()
        .ok()?
        .to_owned();
    let path = std::path::Path::new(&dir).join(KEY_FILE);
    if let Ok(bytes) = std::fs::read(&path) {
        return bytes.try_into().ok();
    }
    // SAFETY: a read of shared recovery state.
    if unsafe { pg_sys::RecoveryInProgress() } {
        pgrx::log!(
            "plwasm: this standby has no {KEY_FILE} in its data directory, so it compiles every \
             module instead of using the primary's compiled artifacts; copy the file from the \
             primary's data directory (mode 0600) for new sessions to use them"
        );
        return None;
    }
    let mut fresh = [0u8; KEY_LEN];
    // SAFETY: a buffer of KEY_LEN bytes.
    if !unsafe { pg_sys::pg_strong_random(fresh.as_mut_ptr().cast(), KEY_LEN) } {
        return None;
    }
    let temp = path.with_extension(format!("key.{}", std::process::id()));
    let written = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(&fresh).and_then(|()| file.sync_all()))
    };
    // Whoever links first wins; everyone then reads the one key file.
    let linked = written.and_then(|()| std::fs::hard_link(&temp, &path));
    let _ = std::fs::remove_file(&temp);
    if let Err(e) = linked {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return None;
        }
    }
    std::fs::read(&path).ok()?.try_into().ok()
}

/// HMAC-SHA256 under the cluster's key over everything a row binds together.
fn mac(key: &[u8; KEY_LEN], name: &str, sha256: &str, engine: &str, artifact: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: this cannot fail (an empty MAC would never verify).
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in [
        name.as_bytes(),
        sha256.as_bytes(),
        engine.as_bytes(),
        artifact,
    ] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Keep `module` (compiled from the bytes with `sha256`) as module `name`'s artifact, replacing
/// any earlier one; true if it was kept. A module Wasmer cannot serialize, or whose artifact is
/// over [`MAX_ARTIFACT_BYTES`], gets an empty artifact instead: calls compile it, and nobody
/// tries again until the build changes. Never fails the load. The caller holds the name's
/// [`catalog::ModuleLock::Change`] (or, for inline modules, is the refresh worker).
pub fn store(name: &str, sha256: &str, module: &Module) -> bool {
    match module.serialize() {
        Ok(artifact) if artifact.len() <= MAX_ARTIFACT_BYTES => write(name, sha256, &artifact),
        _ => {
            write(name, sha256, &[]);
            false
        }
    }
}

/// Mark module `name` (bytes or text with `sha256`) as one this build does not keep an artifact
/// for: an inline body that does not compile (so the refresh worker does not try it again on
/// every pass). Same locking as [`store`].
pub fn mark_unstorable(name: &str, sha256: &str) {
    write(name, sha256, &[]);
}

/// Write one row (an empty `artifact` is the unstorable mark); true if it was written with
/// code in it.
fn write(name: &str, sha256: &str, artifact: &[u8]) -> bool {
    let Some(key) = key() else {
        remove(name);
        return false;
    };
    if table_oid().is_none() {
        return false;
    }
    let kept = !artifact.is_empty();
    let engine = fingerprint();
    let zero = pg_sys::Datum::from(0usize);
    let mut values = [
        name.into_datum().unwrap_or(zero),
        sha256.into_datum().unwrap_or(zero),
        engine.into_datum().unwrap_or(zero),
        mac(&key, name, sha256, engine, artifact)
            .into_datum()
            .unwrap_or(zero),
        artifact.into_datum().unwrap_or(zero),
    ];
    catalog::upsert_row(&ARTIFACTS, name, &mut values);
    kept
}

/// Forget module `name`'s artifact. The caller holds the name's
/// [`catalog::ModuleLock::Change`].
pub fn remove(name: &str) {
    catalog::delete_row(&ARTIFACTS, name);
}

/// What `wasm.module_artifacts` holds for one module.
enum Verified {
    /// No row.
    Missing,
    /// A row plwasm here cannot use: other bytes, another build or CPU, or a MAC that does not
    /// verify.
    Refused,
    /// The artifact of these bytes, for this build, written by plwasm in this cluster.
    Valid(Vec<u8>),
    /// Written by plwasm for these bytes and this build, empty: the compiled module could not
    /// be kept (see [`store`]).
    Unstorable,
}

/// Why [`load`] gave no module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoArtifact {
    /// None stored, or one this build cannot use: a refresh would help.
    Missing,
    /// This build cannot keep this module's compiled code: a refresh would not help.
    Unstorable,
}

/// Module `name`'s artifact, checked against the bytes' `sha256`, this build's fingerprint and
/// the cluster's key.
fn verified(name: &str, sha256: &str) -> Verified {
    let Some(table) = StoreTable::try_open(&ARTIFACTS, pg_sys::AccessShareLock) else {
        return Verified::Missing;
    };
    let Some(key) = key() else {
        return Verified::Missing;
    };
    let snapshot = LatestSnapshot::take();
    let row = table.find(name, snapshot.snapshot, |tuple| {
        let (values, nulls) = table.deform(tuple);
        let engine = fingerprint();
        if catalog::text_at(&values, &nulls, COL_SHA256) != sha256
            || catalog::text_at(&values, &nulls, COL_ENGINE) != engine
        {
            return None;
        }
        let (mac_col, bytes_col) = ((COL_MAC - 1) as usize, (COL_ARTIFACT - 1) as usize);
        // SAFETY: the two bytea columns of the tuple just deformed (detoasted into copies).
        let stored_mac = unsafe { Vec::<u8>::from_datum(values[mac_col], nulls[mac_col]) }?;
        let bytes = unsafe { Vec::<u8>::from_datum(values[bytes_col], nulls[bytes_col]) }?;
        let expected = mac(&key, name, sha256, engine, &bytes);
        // Constant-time comparison of the two MACs.
        let same = stored_mac.len() == expected.len()
            && stored_mac
                .iter()
                .zip(&expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then_some(bytes)
    });
    match row {
        None => Verified::Missing,
        Some(None) => Verified::Refused,
        Some(Some(bytes)) if bytes.is_empty() => Verified::Unstorable,
        Some(Some(bytes)) => Verified::Valid(bytes),
    }
}

/// Whether module `name` has what this build stores for the bytes with `sha256`: an artifact
/// it would use, or the mark that it cannot keep one.
pub fn is_current(name: &str, sha256: &str) -> bool {
    matches!(
        verified(name, sha256),
        Verified::Valid(_) | Verified::Unstorable
    )
}

/// The row name of the artifact of an inline module (a function body `(module ...)`) whose text
/// has SHA-256 `sha256`: no module name can look like it (module names have no spaces or
/// parentheses).
pub fn inline_name(sha256: &str) -> String {
    format!("{INLINE_PREFIX}{sha256}")
}

const INLINE_PREFIX: &str = "(inline) ";

/// The SHA-256s of the inline modules that have a row (usable or not).
pub fn inline_rows() -> Vec<String> {
    catalog::row_names(&ARTIFACTS)
        .into_iter()
        .filter_map(|name| name.strip_prefix(INLINE_PREFIX).map(str::to_string))
        .collect()
}

/// The OID of `wasm.module_artifacts` (None without the extension).
pub fn table_oid() -> Option<pg_sys::Oid> {
    Some(catalog::relid_of(ARTIFACTS.relname)).filter(|oid| *oid != pg_sys::InvalidOid)
}

/// Whether this backend can write artifacts (it has the cluster's key).
pub fn can_store() -> bool {
    key().is_some()
}

/// Module `name` deserialized from its artifact, if it has one made from the bytes with
/// `sha256` by a build like this one, that plwasm wrote in this cluster.
pub fn load(name: &str, sha256: &str) -> Result<Module, NoArtifact> {
    let artifact = match verified(name, sha256) {
        Verified::Missing => return Err(NoArtifact::Missing),
        Verified::Unstorable => return Err(NoArtifact::Unstorable),
        Verified::Refused => {
            REFUSED.with(|n| n.set(n.get() + 1));
            return Err(NoArtifact::Missing);
        }
        Verified::Valid(bytes) => bytes,
    };
    let engine = crate::runtime::engine();
    // SAFETY: the bytes are an artifact plwasm serialized in this cluster (the MAC proves it)
    // for this build and CPU (fingerprint) from this module's bytes (SHA-256).
    match unsafe { Module::deserialize(&engine, artifact) } {
        Ok(module) => {
            FROM_ARTIFACT.with(|n| n.set(n.get() + 1));
            Ok(module)
        }
        Err(_) => {
            REFUSED.with(|n| n.set(n.get() + 1));
            Err(NoArtifact::Missing)
        }
    }
}

//! The Wasmer engine of this backend: creating it, compiling modules, describing their exports.
//!
//! The engine is created lazily on first use in a backend, never in the postmaster. Compiling
//! runs on a worker thread started with every signal blocked (Cranelift's rayon threads inherit
//! that mask), while the backend's thread waits with its signals open and answers cancel,
//! statement_timeout and terminate (see [`run_interruptibly`]). If Wasmer panics while compiling,
//! the engine is dropped and rebuilt on next use, since a panic may leave its internal locks
//! poisoned. [`features`] lists the WebAssembly proposals accepted.
//!
//! Every module is compiled with [`crate::runtime::instrument`]'s fuel and interrupt checks, and
//! instantiated under [`crate::runtime::limits`]'s memory cap.

pub mod backtrace;
pub mod cache;
pub mod failure;
pub mod guest;
pub mod guest_output;
pub mod host_api;
pub mod instance;
pub mod instrument;
pub mod limits;
pub mod query;
pub mod spi;
pub mod spool;
pub mod statement;
pub mod typed_call;
pub mod wasi;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;
use wasmer::{Engine, ExternType, Module};

use crate::abi::{WasmSignature, WasmType};
use crate::runtime::instrument::{Instrument, RESERVED_EXPORT_PREFIX};
use crate::runtime::limits::LimitingTunables;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Blocks every signal in this thread until dropped, then restores the previous mask.
struct SignalsBlocked {
    previous: libc::sigset_t,
}

impl SignalsBlocked {
    fn new() -> Self {
        // SAFETY: plain libc calls on valid, initialised sigset_t values.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
            Self { previous }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

/// The WebAssembly features plwasm accepts. Everything else is refused when a module is
/// compiled, because it could escape a limit:
/// - threads (shared memories, atomics): `memory.atomic.wait32` blocks the backend in a futex
///   that no signal ends;
/// - multi-memory: `wasm.max_memory` caps the one linear memory of an instance;
/// - memory64, exceptions, tail calls, relaxed SIMD: not needed by Rust or C UDFs, and not
///   covered by the instrumentation's accounting.
pub fn features() -> wasmer::sys::Features {
    let mut features = wasmer::sys::Features::none();
    features
        .reference_types(true)
        .simd(true)
        .bulk_memory(true)
        .multi_value(true)
        .extended_const(true)
        .threads(false)
        .multi_memory(false)
        .memory64(false)
        .exceptions(false)
        .tail_call(false)
        .relaxed_simd(false);
    features
}

fn new_engine() -> Engine {
    use wasmer::sys::CompilerConfig;
    let _blocked = SignalsBlocked::new();
    let mut compiler = wasmer::sys::Cranelift::default();
    compiler.push_middleware(std::sync::Arc::new(Instrument::default()));
    let mut engine = wasmer::sys::EngineBuilder::new(compiler)
        .set_features(Some(features()))
        .engine();
    engine.set_tunables(LimitingTunables::default());
    engine.into()
}

/// Drop this backend's engine (after Wasmer panicked); the next use builds a new one.
pub fn reset_engine() {
    ENGINE.with(|cell| cell.borrow_mut().take());
    ENGINE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Engines dropped so far in this backend: a module made by an earlier engine must never be
/// instantiated with a later one (its machine code belongs to the engine that made it).
static ENGINE_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current engine's number (see [`reset_engine`]).
pub fn engine_epoch() -> u64 {
    ENGINE_EPOCH.load(std::sync::atomic::Ordering::Relaxed)
}

/// This backend's engine (created on first use).
///
/// A compile abandoned by a cancelled statement holds the engine's lock until it ends; anything
/// that uses the engine (a compile, a new Store, host functions) first waits for it here,
/// interruptibly, instead of blocking on that lock where no cancel can reach it.
pub fn engine() -> Engine {
    wait_for_orphan();
    ENGINE.with(|cell| cell.borrow_mut().get_or_insert_with(new_engine).clone())
}

thread_local! {
    /// A compile (or WAT translation) left running by a statement that was cancelled while
    /// waiting for it. The next one waits for it first, so a backend never has more than one.
    static ORPHAN: RefCell<Option<std::thread::JoinHandle<()>>> = const { RefCell::new(None) };
}

/// Run `work` on a worker thread while this (the backend's) thread waits for it and keeps
/// serving Postgres's interrupts: a cancel, statement_timeout or terminate raises its ERROR
/// within [`WAIT_TICK`] and the worker's result is dropped when it finishes.
///
/// The worker (and the threads it spawns, e.g. Cranelift's rayon pool) starts with every signal
/// blocked, so Postgres's signals are only ever delivered to the backend's own thread — which
/// never blocks them, so no cancel is lost or delivered to a later statement.
///
/// `work` must not call Postgres. A panic in it is returned as `Err`.
pub fn run_interruptibly<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    wait_for_orphan();
    crate::runtime::instrument::set_compile_aborted(false);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = {
        let _blocked = SignalsBlocked::new();
        std::thread::Builder::new()
            .name("plwasm-compile".into())
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(work));
                let _ = tx.send(outcome);
            })
    };
    let handle = spawned.map_err(|e| format!("could not start a compiler thread: {e}"))?;
    ORPHAN.with(|o| *o.borrow_mut() = Some(handle));
    let _abandon = AbandonOnError;
    let _waiting = WaitReported::start();
    loop {
        match rx.recv_timeout(WAIT_TICK) {
            Ok(outcome) => {
                if let Some(handle) = ORPHAN.with(|o| o.borrow_mut().take()) {
                    let _ = handle.join();
                }
                return outcome.map_err(|_| "the WebAssembly compiler failed".to_string());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Raises Postgres's own ERROR (57014, 57P01, ...) if one is pending; the worker
                // stays in ORPHAN and is waited for by the next compile.
                pgrx::check_for_interrupts!();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                ORPHAN.with(|o| o.borrow_mut().take());
                return Err("the WebAssembly compiler thread ended without a result".into());
            }
        }
    }
}

/// Shows the backend in pg_stat_activity as waiting (wait_event_type "Extension") while it waits
/// for a compile worker.
struct WaitReported;

impl WaitReported {
    fn start() -> Self {
        // SAFETY: sets this backend's wait-event word; no allocation, no error.
        unsafe { pgrx::pg_sys::pgstat_report_wait_start(pgrx::pg_sys::PG_WAIT_EXTENSION) };
        Self
    }
}

impl Drop for WaitReported {
    fn drop(&mut self) {
        // While an ERROR unwinds, the transaction's abort clears the wait event itself.
        if !std::thread::panicking() {
            // SAFETY: clears this backend's wait-event word; no allocation, no error.
            unsafe { pgrx::pg_sys::pgstat_report_wait_end() };
        }
    }
}

/// Stack of the compile worker: parsing and compiling deeply nested code recurses.
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Tells an abandoned compile to stop, when an ERROR unwinds out of the wait.
struct AbandonOnError;

impl Drop for AbandonOnError {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::runtime::instrument::set_compile_aborted(true);
        }
    }
}

/// How often a backend waiting for a compile looks for interrupts.
const WAIT_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Wait (interruptibly) for a compile a cancelled statement left running.
fn wait_for_orphan() {
    loop {
        let finished = ORPHAN.with(|o| o.borrow().as_ref().is_none_or(|h| h.is_finished()));
        if finished {
            if let Some(handle) = ORPHAN.with(|o| o.borrow_mut().take()) {
                let _ = handle.join();
            }
            return;
        }
        std::thread::sleep(WAIT_TICK);
        pgrx::check_for_interrupts!();
    }
}

/// Compile (and validate) a binary WebAssembly module. The error is a human-readable reason.
///
/// Only the binary format is accepted here; text goes through `wasm.wat` first. Compiling runs
/// on a worker thread and can be cancelled (see [`run_interruptibly`]).
pub fn compile(bytes: &[u8]) -> Result<Module, String> {
    compile_or_why(bytes).map_err(|failure| failure.reason)
}

/// Why a compile failed, and whether compiling the same bytes again could succeed.
pub struct CompileFailure {
    pub reason: String,
    /// The compiler itself failed (it panicked, or its thread could not start), not the
    /// module: another try may work.
    pub transient: bool,
}

/// [`compile`], telling a module that does not compile from a compiler that failed.
pub fn compile_or_why(bytes: &[u8]) -> Result<Module, CompileFailure> {
    let invalid = |reason: String| CompileFailure {
        reason,
        transient: false,
    };
    if !bytes.starts_with(b"\0asm") {
        return Err(invalid(
            "not a WebAssembly binary (it does not start with the \\0asm magic number)".into(),
        ));
    }
    let engine = engine();
    let bytes = bytes.to_vec();
    match run_interruptibly(move || {
        instrument::prepare_compile(&bytes);
        let compiled = Module::from_binary(&engine, &bytes);
        instrument::finish_compile();
        compiled
    }) {
        Ok(Ok(module)) => {
            // Counted once compiled: a compile that failed or was cancelled is not.
            COMPILES.with(|n| n.set(n.get() + 1));
            Ok(module)
        }
        Ok(Err(e)) => Err(invalid(e.to_string())),
        Err(reason) => {
            // Wasmer panicked inside the compiler; do not reuse an engine it may have poisoned.
            reset_engine();
            Err(CompileFailure {
                reason: format!("{reason} on this module"),
                transient: true,
            })
        }
    }
}

thread_local! {
    static COMPILES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// How many modules this backend compiled (or tried to).
pub fn compile_count() -> i64 {
    COMPILES.with(std::cell::Cell::get)
}

/// WebAssembly text to binary, on a worker thread (interruptible like [`compile`]).
pub fn wat_to_wasm(source: &str) -> Result<Vec<u8>, String> {
    let source = source.to_string();
    run_interruptibly(move || {
        wasmer::wat2wasm(source.as_bytes())
            .map(|b| b.into_owned())
            .map_err(|e| e.to_string())
    })?
}

/// Imports of `module` that the host does not provide, as `"module"."name"` strings.
///
/// The plwasm ABI this server provides (`docs/abi.md`).
pub const ABI_VERSION: u32 = 1;
/// The custom section in which a module names the ABI it was built for: a decimal version per
/// line (the SDKs write one per object file, and linkers concatenate them).
pub const ABI_SECTION: &str = "plwasm.abi";

/// The ABI `module` says it was built for, when that is not [`ABI_VERSION`] ("v2", or what an
/// unreadable section says). A module without the section is taken to be for ABI v1. (Wasmer
/// keeps only the last of several sections of one name: `wasm.load` checks the bytes with
/// [`foreign_abi_in_bytes`], which sees them all.)
pub fn foreign_abi(module: &Module) -> Option<String> {
    module
        .custom_sections(ABI_SECTION)
        .find_map(|section| foreign_abi_in(&section))
}

/// [`foreign_abi`] over every `plwasm.abi` section of a module's bytes.
pub fn foreign_abi_in_bytes(bytes: &[u8]) -> Option<String> {
    use wasmer::wasmparser::{Parser, Payload};
    Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .find_map(|payload| match payload {
            Payload::CustomSection(reader) if reader.name() == ABI_SECTION => {
                foreign_abi_in(reader.data())
            }
            _ => None,
        })
}

/// The first version in one `plwasm.abi` section (a decimal version per line) that is not ours.
fn foreign_abi_in(section: &[u8]) -> Option<String> {
    String::from_utf8_lossy(section)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .find(|line| line.parse::<u32>() != Ok(ABI_VERSION))
        .map(|line| match line.parse::<u32>() {
            Ok(version) => format!("v{version}"),
            Err(_) => format!(
                "\"{}\" (not a version number)",
                crate::runtime::backtrace::shown(&line.chars().take(40).collect::<String>())
            ),
        })
}

/// plwasm provides WASI preview 1 functions and its own `plwasm` host API (with their exact
/// signatures), and nothing else.
pub fn unsupported_imports(module: &Module) -> Vec<String> {
    module
        .imports()
        .filter(|i| match i.ty() {
            ExternType::Function(ty) => {
                !crate::runtime::wasi::provides(i.module(), i.name(), ty)
                    && !crate::runtime::host_api::provides(i.module(), i.name(), ty)
            }
            _ => true,
        })
        .map(|i| format!("\"{}\".\"{}\"", i.module(), i.name()))
        .collect()
}

/// What kind of thing an export is; functions carry their signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Function(WasmSignature),
    Memory,
    Table,
    Global,
    Tag,
}

impl ExportKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Function(_) => "function",
            Self::Memory => "memory",
            Self::Table => "table",
            Self::Global => "global",
            Self::Tag => "tag",
        }
    }
}

/// One export of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub kind: ExportKind,
}

/// The exports of a compiled module (without plwasm's own instrumentation globals).
pub fn exports(module: &Module) -> Vec<Export> {
    module
        .exports()
        .filter(|e| !e.name().starts_with(RESERVED_EXPORT_PREFIX))
        .map(|e| Export {
            name: e.name().to_string(),
            kind: match e.ty() {
                ExternType::Function(f) => ExportKind::Function(WasmSignature::of(f)),
                ExternType::Memory(_) => ExportKind::Memory,
                ExternType::Table(_) => ExportKind::Table,
                ExternType::Global(_) => ExportKind::Global,
                ExternType::Tag(_) => ExportKind::Tag,
            },
        })
        .collect()
}

/// Exports as stored in the catalog and shown by `wasm.modules.exports`:
/// `[{"name": "add", "kind": "function", "params": ["i32","i32"], "results": ["i32"]}, ...]`.
pub fn exports_to_json(exports: &[Export]) -> serde_json::Value {
    serde_json::Value::Array(
        exports
            .iter()
            .map(|e| match &e.kind {
                ExportKind::Function(sig) => json!({
                    "name": e.name,
                    "kind": "function",
                    "params": sig.params.iter().map(|t| t.name()).collect::<Vec<_>>(),
                    "results": sig.results.iter().map(|t| t.name()).collect::<Vec<_>>(),
                }),
                other => json!({ "name": e.name, "kind": other.name() }),
            })
            .collect(),
    )
}

/// Read back what [`exports_to_json`] wrote. Entries it cannot read are skipped.
pub fn exports_from_json(value: &serde_json::Value) -> Vec<Export> {
    let types = |v: &serde_json::Value| -> Option<Vec<WasmType>> {
        v.as_array()?
            .iter()
            .map(|t| WasmType::from_name(t.as_str()?))
            .collect()
    };
    value
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let name = e.get("name")?.as_str()?.to_string();
                    let kind = match e.get("kind")?.as_str()? {
                        "function" => ExportKind::Function(WasmSignature {
                            params: types(e.get("params")?)?,
                            results: types(e.get("results")?)?,
                        }),
                        "memory" => ExportKind::Memory,
                        "table" => ExportKind::Table,
                        "global" => ExportKind::Global,
                        "tag" => ExportKind::Tag,
                        _ => return None,
                    };
                    Some(Export { name, kind })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why an export cannot implement a SQL function.
#[derive(Debug, PartialEq, Eq)]
pub enum ExportMismatch {
    Missing,
    NotAFunction(&'static str),
    Signature(WasmSignature),
}

/// Check that `exports` has a function `name` with signature `expected`.
pub fn check_export(
    exports: &[Export],
    name: &str,
    expected: &WasmSignature,
) -> Result<(), ExportMismatch> {
    let export = exports
        .iter()
        .find(|e| e.name == name)
        .ok_or(ExportMismatch::Missing)?;
    match &export.kind {
        ExportKind::Function(sig) if sig == expected => Ok(()),
        ExportKind::Function(sig) => Err(ExportMismatch::Signature(sig.clone())),
        other => Err(ExportMismatch::NotAFunction(other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(params: &[WasmType], results: &[WasmType]) -> WasmSignature {
        WasmSignature {
            params: params.to_vec(),
            results: results.to_vec(),
        }
    }

    #[test]
    fn exports_json_round_trip() {
        let exports = vec![
            Export {
                name: "add".into(),
                kind: ExportKind::Function(sig(&[WasmType::I32, WasmType::I32], &[WasmType::I32])),
            },
            Export {
                name: "memory".into(),
                kind: ExportKind::Memory,
            },
        ];
        let json = exports_to_json(&exports);
        assert_eq!(
            json[0],
            json!({"name":"add","kind":"function","params":["i32","i32"],"results":["i32"]})
        );
        assert_eq!(exports_from_json(&json), exports);
    }

    #[test]
    fn check_export_reports_each_mismatch() {
        let exports = vec![
            Export {
                name: "f".into(),
                kind: ExportKind::Function(sig(&[WasmType::I64], &[])),
            },
            Export {
                name: "memory".into(),
                kind: ExportKind::Memory,
            },
        ];
        let want = sig(&[WasmType::I64], &[]);
        assert_eq!(check_export(&exports, "f", &want), Ok(()));
        assert_eq!(
            check_export(&exports, "g", &want),
            Err(ExportMismatch::Missing)
        );
        assert_eq!(
            check_export(&exports, "memory", &want),
            Err(ExportMismatch::NotAFunction("memory"))
        );
        assert_eq!(
            check_export(&exports, "f", &sig(&[WasmType::I32], &[])),
            Err(ExportMismatch::Signature(want))
        );
    }
}

//! The Wasmer engine of this backend: creating it, compiling modules, describing their exports.
//!
//! The engine is created lazily on first use in a backend, never in the postmaster. Cranelift
//! compiles on rayon worker threads; every compile runs with all signals blocked in the calling
//! thread so threads it spawns inherit that mask and Postgres's signals always land on the
//! backend's main thread. If Wasmer panics while compiling, the engine is dropped and rebuilt on
//! next use, since a panic may leave its internal locks poisoned.
//!
//! Every module is compiled with [`crate::instrument`]'s fuel and interrupt checks, and
//! instantiated under [`crate::limits`]'s memory cap.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;
use wasmer::{Engine, ExternType, Module};

use crate::abi::{WasmSignature, WasmType};
use crate::instrument::{Instrument, RESERVED_EXPORT_PREFIX};
use crate::limits::LimitingTunables;

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

fn new_engine() -> Engine {
    use wasmer::sys::CompilerConfig;
    let _blocked = SignalsBlocked::new();
    let mut compiler = wasmer::sys::Cranelift::default();
    compiler.push_middleware(std::sync::Arc::new(Instrument::default()));
    let mut engine = wasmer::sys::EngineBuilder::new(compiler).engine();
    engine.set_tunables(LimitingTunables::default());
    engine.into()
}

/// This backend's engine (created on first use).
pub fn engine() -> Engine {
    ENGINE.with(|cell| cell.borrow_mut().get_or_insert_with(new_engine).clone())
}

/// Compile (and validate) a binary WebAssembly module. The error is a human-readable reason.
///
/// Only the binary format is accepted here; text goes through `wasm.wat` first.
pub fn compile(bytes: &[u8]) -> Result<Module, String> {
    if !bytes.starts_with(b"\0asm") {
        return Err(
            "not a WebAssembly binary (it does not start with the \\0asm magic number)".into(),
        );
    }
    let engine = engine();
    let outcome = {
        let _blocked = SignalsBlocked::new();
        catch_unwind(AssertUnwindSafe(|| Module::from_binary(&engine, bytes)))
    };
    match outcome {
        Ok(Ok(module)) => Ok(module),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            // Wasmer panicked inside the compiler; do not reuse an engine it may have poisoned.
            ENGINE.with(|cell| cell.borrow_mut().take());
            Err("the WebAssembly compiler failed on this module".into())
        }
    }
}

/// Imports of `module` that the host does not provide, as `"module"."name"` strings.
///
/// plwasm provides WASI preview 1 functions and its own `plwasm` host API (with their exact
/// signatures), and nothing else.
pub fn unsupported_imports(module: &Module) -> Vec<String> {
    module
        .imports()
        .filter(|i| match i.ty() {
            ExternType::Function(ty) => {
                !crate::wasi::provides(i.module(), i.name(), ty)
                    && !crate::host_api::provides(i.module(), i.name(), ty)
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

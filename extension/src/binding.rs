//! Binding a SQL function to a wasm export: the one place that decides whether a `LANGUAGE wasm`
//! function's SQL signature and body fit a module's exports.
//!
//! Used by the validator (CREATE FUNCTION), by `wasm.load(..., replace => true)` for every function
//! bound to the module, and by the call handler when it resolves a call site.

use pgrx::pg_sys;

use crate::abi::{self, SqlSignature};
use crate::catalog::SqlFunction;
use crate::errors::PlWasmError;
use crate::runtime::{check_export, Export, ExportMismatch};
use crate::target::FunctionTarget;

/// A SQL function's signature under the scalar ABI, or why it has none.
pub fn sql_signature(f: &SqlFunction) -> Result<SqlSignature, PlWasmError> {
    abi::sql_signature(&f.arg_types, f.result_type, f.returns_set).map_err(|u| {
        PlWasmError::UnsupportedType {
            function: f.display.clone(),
            position: u.position,
            type_name: type_name(u.type_oid),
        }
    })
}

/// A SQL function's target (module and export), or why its body is malformed.
pub fn target(f: &SqlFunction) -> Result<FunctionTarget, PlWasmError> {
    f.target().map_err(|reason| PlWasmError::InvalidBody {
        function: f.display.clone(),
        reason,
    })
}

/// Check that `exports` (of the module `target` names) implement `f` with signature `sig`.
pub fn check(
    f: &SqlFunction,
    sig: &SqlSignature,
    target: &FunctionTarget,
    exports: &[Export],
) -> Result<(), PlWasmError> {
    let expected = sig.wasm();
    let function = f.display.clone();
    let module = target.module_label().to_string();
    let export = target.export().to_string();
    check_export(exports, &export, &expected).map_err(|mismatch| match mismatch {
        ExportMismatch::Missing => PlWasmError::ExportNotFound {
            function,
            module,
            export,
        },
        ExportMismatch::NotAFunction(kind) => PlWasmError::ExportNotFunction {
            function,
            module,
            export,
            kind: kind.to_string(),
        },
        ExportMismatch::Signature(actual) => PlWasmError::SignatureMismatch {
            function,
            module,
            export,
            expected: expected.to_string(),
            actual: actual.to_string(),
        },
    })
}

fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be accepts any OID and returns a palloc'd string.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_be(oid))
            .to_string_lossy()
            .into_owned()
    }
}

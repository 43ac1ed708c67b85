//! Binding a SQL function to a wasm export: the one place that decides whether a `LANGUAGE wasm`
//! function's SQL signature and body fit a module's exports.
//!
//! Used by the validator (CREATE FUNCTION), by `wasm.load(..., replace => true)` for every function
//! bound to the module, and by the call handler when it resolves a call site.

use pgrx::pg_sys;

use crate::abi::{self, BytesType, SqlSignature, SqlType};
use crate::catalog::target::FunctionTarget;
use crate::catalog::SqlFunction;
use crate::errors::PlWasmError;
use crate::runtime::{check_export, Export, ExportKind, ExportMismatch};

/// A SQL function's signature under ABI v1, or why it has none.
pub fn sql_signature(f: &SqlFunction) -> Result<SqlSignature, PlWasmError> {
    if f.result_type == pg_sys::TRIGGEROID && !f.arg_types.is_empty() {
        return Err(PlWasmError::TriggerArguments {
            function: f.display.clone(),
        });
    }
    let sig = abi::sql_signature(
        &f.arg_types,
        f.result_type,
        f.returns_set,
        &crate::abi::json_form::eligible,
    )
    .map_err(|u| PlWasmError::UnsupportedType {
        function: f.display.clone(),
        position: u.position,
        type_name: type_name(u.type_oid),
    })?;
    // Text travels as UTF-8 and is stored unconverted: only UTF8 databases can pass it.
    let textual = |t: &SqlType| {
        matches!(
            t,
            SqlType::Bytes(
                BytesType::Text
                    | BytesType::Name
                    | BytesType::Json
                    | BytesType::Jsonb
                    | BytesType::JsonForm(_)
            )
        )
    };
    // SAFETY: reads the database encoding.
    let utf8 = unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32;
    if !utf8 && (sig.args.iter().any(textual) || sig.result.as_ref().is_some_and(textual)) {
        return Err(PlWasmError::UnsupportedType {
            function: f.display.clone(),
            position: "a text argument or result".into(),
            type_name: "text in a database whose encoding is not UTF8".into(),
        });
    }
    Ok(sig)
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
    })?;
    check_memory_exports(f, sig, target, exports)
}

/// Check the exports ABI v1 needs when values travel through memory: `memory`, and
/// `plwasm_alloc(i32) -> i32` for variable-length arguments (`plwasm_free(i32, i32)`, optional,
/// must have that signature if present).
pub fn check_memory_exports(
    f: &SqlFunction,
    sig: &SqlSignature,
    target: &FunctionTarget,
    exports: &[Export],
) -> Result<(), PlWasmError> {
    use crate::abi::{WasmSignature, WasmType::I32};
    use crate::runtime::instance::{ALLOC_EXPORT, FREE_EXPORT};
    let missing = |what: &str| PlWasmError::AbiExportMissing {
        function: f.display.clone(),
        module: target.module_label().to_string(),
        what: what.to_string(),
    };
    if !sig.uses_memory() {
        return Ok(());
    }
    if !exports
        .iter()
        .any(|e| e.name == "memory" && e.kind == ExportKind::Memory)
    {
        return Err(missing("a memory named \"memory\""));
    }
    let function_is =
        |name: &str, params: &[crate::abi::WasmType], results: &[crate::abi::WasmType]| {
            exports.iter().any(|e| {
                e.name == name
                    && e.kind
                        == ExportKind::Function(WasmSignature {
                            params: params.to_vec(),
                            results: results.to_vec(),
                        })
            })
        };
    if sig.has_bytes_args() && !function_is(ALLOC_EXPORT, &[I32], &[I32]) {
        return Err(missing("plwasm_alloc(i32) -> i32"));
    }
    if exports.iter().any(|e| e.name == FREE_EXPORT) && !function_is(FREE_EXPORT, &[I32, I32], &[])
    {
        return Err(missing(
            "plwasm_free with signature (i32, i32) -> () if it exports one",
        ));
    }
    Ok(())
}

/// Postgres's name of type `oid` (as `format_type_be` spells it), for messages.
pub fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be accepts any OID and returns a palloc'd string.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_be(oid))
            .to_string_lossy()
            .into_owned()
    }
}

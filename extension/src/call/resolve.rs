//! Resolve: once per call site, the function's `pg_proc` row, its module's instance (from the
//! per-backend cache), the export and its signature checked, and the JSON-form result decoder
//! on first use.

use pgrx::pg_sys;

use super::CallSite;
use crate::abi::json_form::{self, JsonDecoder};
use crate::abi::{BytesType, SqlType};
use crate::call::binding;
use crate::call::stats;
use crate::catalog::target::FunctionTarget;
use crate::catalog::{self, SqlFunction};
use crate::errors::PlWasmError;
use crate::runtime::cache;

impl CallSite {
    pub(super) fn resolve(fn_oid: pg_sys::Oid) -> Result<Self, PlWasmError> {
        let f = SqlFunction::from_oid(fn_oid);
        let signature = binding::sql_signature(&f)?;
        let target = binding::target(&f)?;
        let (instance, generation) = match &target {
            FunctionTarget::Stored { module, .. } => {
                catalog::accept_invalidations();
                let generation = catalog::generation();
                (cache::stored(module, &f.display)?, Some(generation))
            }
            FunctionTarget::Inline { source, .. } => {
                (cache::inline(source, &f.display, !f.temporary)?, None)
            }
        };
        binding::check(&f, &signature, &target, &instance.exports)?;
        let export_fn =
            instance
                .function(target.export())
                .ok_or_else(|| PlWasmError::ExportNotFound {
                    function: f.display.clone(),
                    module: target.module_label().to_string(),
                    export: target.export().to_string(),
                })?;
        let uses_memory = signature.uses_memory();
        let typed = instance.typed(&export_fn);
        let json_args = signature
            .args
            .iter()
            .map(|ty| match ty {
                SqlType::Bytes(BytesType::JsonForm(oid)) => Some(json_form::JsonEncoder::new(*oid)),
                _ => None,
            })
            .collect();
        let stats = stats::of(fn_oid, target.module_label(), target.export());
        let query = instance
            .uses_query
            .then(|| crate::runtime::query::QueryPolicy {
                allowed: match &target {
                    FunctionTarget::Stored { module, .. } => {
                        use crate::catalog::capabilities::{self, Capability};
                        if capabilities::of(module).contains(&Capability::Query) {
                            Ok(())
                        } else {
                            Err(format!(
                                "module \"{module}\" does not have the query capability"
                            ))
                        }
                    }
                    FunctionTarget::Inline { .. } => {
                        Err("inline modules have no capabilities".to_string())
                    }
                },
                read_only: !f.volatile,
                max_bytes: crate::gucs::max_memory_pages() as usize * 65536,
                module: match &target {
                    FunctionTarget::Stored { module, .. } => Some(module.clone()),
                    FunctionTarget::Inline { .. } => None,
                },
            });
        Ok(Self {
            function: f.display,
            export: target.export().to_string(),
            stats,
            params: Vec::with_capacity(signature.args.len()),
            json_args,
            uses_memory,
            typed,
            result_type: f.result_type,
            signature,
            instance,
            export_fn,
            generation,
            decoder: None,
            decoder_layout: 0,
            trigger_decoder: None,
            query,
        })
    }

    /// The JSON-form result decoder, made on first use.
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo.
    pub(super) unsafe fn decoder(&mut self, fcinfo: pg_sys::FunctionCallInfo) -> &JsonDecoder {
        let layout = json_form::row_layout(self.result_type);
        if self.decoder.is_some() && layout != self.decoder_layout {
            self.decoder = None;
        }
        self.decoder_layout = layout;
        let (function, label, export, result_type) = (
            &self.function,
            &self.instance.label,
            &self.export,
            self.result_type,
        );
        self.decoder.get_or_insert_with(|| {
            // SAFETY: fcinfo is valid (caller's contract).
            unsafe { make_decoder(function, label, export, result_type, fcinfo) }
        })
    }
}

/// A JSON-form result decoder for `result_type` (a row type's descriptor comes from the call).
///
/// # Safety
/// `fcinfo` is the current call's valid FunctionCallInfo.
unsafe fn make_decoder(
    function: &str,
    label: &str,
    export: &str,
    result_type: pg_sys::Oid,
    fcinfo: pg_sys::FunctionCallInfo,
) -> JsonDecoder {
    let context = format!("function {function} (module \"{label}\", export \"{export}\")");
    if !json_form::is_row_type(result_type) {
        return JsonDecoder::for_value(result_type, context);
    }
    let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
    // SAFETY: fcinfo is valid (caller's contract).
    let class = unsafe { pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc) };
    if class != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE || tupdesc.is_null() {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "function {function} returns record and was called in a context that cannot accept type record"
            ),
            "Declare OUT parameters or RETURNS TABLE (...), or give a column definition list."
        );
    }
    // SAFETY: a valid descriptor from get_call_result_type.
    unsafe { JsonDecoder::for_row(tupdesc, context) }
}

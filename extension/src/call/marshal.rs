//! Marshal: arguments into what the guest receives (wasm values, or bytes in its memory), and
//! the guest's result back into a datum. The conversion of each argument and of the result is
//! chosen by the types resolved at the call site; nothing is looked up per call.

use std::borrow::Cow;

use pgrx::pg_sys;

use wasmer::Value;

use super::CallSite;
use crate::abi::{json_form, values};
use crate::abi::{BytesType, SqlType};
use crate::errors::PlWasmError;
use crate::runtime::instance::{WireArg, WireResult};

impl CallSite {
    /// The arguments as they travel to the guest (ABI v1 with memory).
    ///
    /// # Safety
    /// Datums of this site's argument types (NULLs only for null-aware modules).
    pub(super) unsafe fn wire_args<'a>(
        &self,
        args: &'a [pg_sys::NullableDatum],
    ) -> Vec<WireArg<'a>> {
        args.iter()
            .zip(&self.signature.args)
            .enumerate()
            .map(|(i, (arg, ty))| match ty {
                _ if arg.isnull => match ty {
                    SqlType::Scalar(scalar) => WireArg::Value(scalar.zero()),
                    SqlType::Bytes(_) => WireArg::Null,
                },
                // SAFETY: caller's contract.
                SqlType::Scalar(scalar) => WireArg::Value(unsafe { scalar.to_wasm(arg.value) }),
                // SAFETY: caller's contract.
                SqlType::Bytes(BytesType::JsonForm(oid)) => {
                    // Made at resolve time for every JSON-form argument.
                    let encoder = self
                        .json_args
                        .get(i)
                        .copied()
                        .flatten()
                        .unwrap_or_else(|| json_form::JsonEncoder::new(*oid));
                    WireArg::Bytes(Cow::Owned(unsafe { encoder.to_json(arg.value) }))
                }
                // SAFETY: caller's contract.
                SqlType::Bytes(bytes) => match unsafe { values::to_bytes(*bytes, arg.value) } {
                    Ok(data) => WireArg::Bytes(data),
                    Err(reason) => PlWasmError::BadArgument {
                        function: self.function.clone(),
                        position: i + 1,
                        reason: reason.to_string(),
                    }
                    .report(),
                },
            })
            .collect()
    }

    /// The datum a non-set call returns (and `fcinfo->isnull`).
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo; `result` is what the call returned.
    pub(super) unsafe fn deliver(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
        result: WireResult,
        return_null: bool,
    ) -> pg_sys::Datum {
        if return_null && self.signature.result.is_some() {
            // The guest called plwasm.return_null: its wasm result is ignored.
            // SAFETY: fcinfo is valid.
            unsafe { (*fcinfo).isnull = true };
            return pg_sys::Datum::from(0usize);
        }
        if let (Some(SqlType::Bytes(BytesType::JsonForm(_))), WireResult::Bytes(bytes)) =
            (self.signature.result, &result)
        {
            let json = values::utf8(bytes).unwrap_or_else(|reason| self.bad_result(reason));
            // SAFETY: fcinfo is valid.
            let decoded = unsafe { self.decoder(fcinfo) }.decode_datum(json);
            let datum = decoded.unwrap_or_else(|reason| self.mismatch(reason));
            // SAFETY: fcinfo is valid.
            unsafe { (*fcinfo).isnull = datum.is_none() };
            return datum.unwrap_or(pg_sys::Datum::from(0usize));
        }
        // SAFETY: fcinfo is valid.
        unsafe { (*fcinfo).isnull = false };
        match (self.signature.result, result) {
            (None, _) => pg_sys::Datum::from(0usize),
            (Some(SqlType::Scalar(ty)), WireResult::Values(values)) => ty
                .from_wasm(&values[0])
                .unwrap_or_else(|value| self.out_of_range(value, ty)),
            (Some(SqlType::Scalar(ty)), WireResult::Value(Some(value))) => ty
                .from_wasm(&value)
                .unwrap_or_else(|value| self.out_of_range(value, ty)),
            (Some(SqlType::Bytes(BytesType::Bytea)), WireResult::Varlena(datum)) => datum,
            (Some(SqlType::Bytes(BytesType::Text)), WireResult::Varlena(datum)) => {
                // SAFETY: a varlena with a 4-byte header made by the call (`BytesResult`).
                let payload = unsafe {
                    let varlena = datum.cast_mut_ptr::<u8>();
                    std::slice::from_raw_parts(
                        varlena.add(pg_sys::VARHDRSZ),
                        pgrx::varsize_any_exhdr(varlena.cast()),
                    )
                };
                match values::utf8(payload) {
                    Ok(_) => datum,
                    Err(reason) => self.bad_result(reason),
                }
            }
            (Some(SqlType::Bytes(ty)), WireResult::Bytes(bytes)) => {
                values::from_bytes(ty, &bytes).unwrap_or_else(|reason| self.bad_result(reason))
            }
            (_, _) => PlWasmError::AbiViolation {
                function: self.function.clone(),
                module: self.instance.label.clone(),
                export: self.export.clone(),
                reason: "its result does not have the form its signature declares".into(),
            }
            .report(),
        }
    }
}

/// The scalar arguments as wasm values, into `params` (no allocation once it has grown): the
/// fast path of signatures without variable-length values.
///
/// # Safety
/// Datums of the types `types` (NULLs only for null-aware modules).
pub(super) unsafe fn scalar_params(
    params: &mut Vec<Value>,
    types: &[SqlType],
    args: &[pg_sys::NullableDatum],
) {
    params.clear();
    for (arg, ty) in args.iter().zip(types) {
        if let SqlType::Scalar(scalar) = ty {
            params.push(if arg.isnull {
                scalar.zero()
            } else {
                // SAFETY: the argument is non-NULL and of type `scalar` (caller's contract).
                unsafe { scalar.to_wasm(arg.value) }
            });
        }
    }
}

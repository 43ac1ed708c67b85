//! The call handler of `LANGUAGE wasm`.
//!
//! The first call at a call site (an `FmgrInfo`) resolves the function once: `pg_proc` via the
//! syscache, the module through [`cache`], the export and its signature through [`binding`]. The
//! result, a [`CallSite`], lives in `flinfo->fn_extra` (freed with `fn_mcxt`). Every later call
//! checks two integers (the catalog generation and the instance's liveness), converts the
//! arguments and calls the export: no catalog access, no string hashing.
//!
//! Postgres errors are raised only after the wasm call has returned, so no ERROR ever unwinds or
//! longjmps across wasm frames.

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use wasmer::{Function, Value};

use crate::abi::{BytesType, SqlSignature, SqlType};
use crate::binding;
use crate::cache::{self, CallFailure, GuestOutput, Instantiated, WireArg, WireResult};
use crate::catalog::{self, SqlFunction};
use crate::errors::{OrReport, PlWasmError};
use crate::json_form::{self, JsonDecoder};
use crate::spool::{Row, Spool, SpoolPtr};
use crate::target::FunctionTarget;
use crate::values::{self, ValueError};

/// Everything a call needs, resolved once per call site.
struct CallSite {
    function: String,
    export: String,
    signature: SqlSignature,
    instance: Rc<Instantiated>,
    export_fn: Function,
    /// The export as a typed call, when no value travels through memory and its signature is one
    /// `typed_call.rs` covers: no signature check and no allocation per call.
    typed: Option<Box<dyn crate::typed_call::TypedCall>>,
    /// Catalog generation this site was resolved at; `None` for inline modules (their code is
    /// the function body itself, fixed for the life of the FmgrInfo).
    generation: Option<u64>,
    /// Whether any value travels through the module's memory (ABI v1 variable-length values).
    uses_memory: bool,
    /// The SQL result type (for a set-returning function's tuple descriptor).
    result_type: pg_sys::Oid,
    params: Vec<Value>,
    /// Parses JSON-form results; made at the first call that needs it (a row type's descriptor
    /// may come from the call's context).
    decoder: Option<JsonDecoder>,
    /// For a named composite result: the layout the decoder was made for (see
    /// [`json_form::row_layout`]); the decoder is remade when ALTER TYPE changes it.
    decoder_layout: u64,
}

impl CallSite {
    fn resolve(fn_oid: pg_sys::Oid) -> Result<Self, PlWasmError> {
        let f = SqlFunction::from_oid(fn_oid);
        let signature = binding::sql_signature(&f)?;
        let target = binding::target(&f)?;
        let (instance, generation) = match &target {
            FunctionTarget::Stored { module, .. } => {
                catalog::accept_invalidations();
                let generation = catalog::generation();
                (cache::stored(module, &f.display)?, Some(generation))
            }
            FunctionTarget::Inline { source, .. } => (cache::inline(source, &f.display)?, None),
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
        let typed = if uses_memory {
            None
        } else {
            instance.typed(&export_fn)
        };
        Ok(Self {
            function: f.display,
            export: target.export().to_string(),
            params: Vec::with_capacity(signature.args.len()),
            uses_memory,
            typed,
            result_type: f.result_type,
            signature,
            instance,
            export_fn,
            generation,
            decoder: None,
            decoder_layout: 0,
        })
    }

    /// The JSON-form result decoder, made on first use.
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo.
    unsafe fn decoder(&mut self, fcinfo: pg_sys::FunctionCallInfo) -> &JsonDecoder {
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

    fn mismatch(&self, reason: json_form::DecodeError) -> ! {
        PlWasmError::ResultMismatch {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            reason: reason.to_string(),
        }
        .report()
    }

    #[inline]
    fn is_current(&self) -> bool {
        self.instance.is_alive()
            && self
                .generation
                .is_none_or(|resolved| resolved == catalog::generation())
    }

    /// # Safety
    /// `fcinfo` must be the call's valid `FunctionCallInfo`, with arguments of this site's types.
    unsafe fn call(&mut self, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
        // SAFETY: fcinfo is valid and has `nargs` arguments (caller's contract).
        let args = unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) };
        let any_null = args.iter().any(|arg| arg.isnull);
        if any_null && !self.instance.null_aware {
            // Only modules that import plwasm.arg_is_null can tell a NULL from a zero.
            let position = args.iter().position(|arg| arg.isnull).unwrap_or(0);
            PlWasmError::NullArgument {
                function: self.function.clone(),
                position: position + 1,
            }
            .report();
        }
        if self.instance.null_aware {
            let nulls: Vec<bool> = args.iter().map(|arg| arg.isnull).collect();
            self.instance.set_null_args(&nulls);
        }
        // A cancel that arrived before the call is handled before wasm starts.
        pgrx::check_for_interrupts!();
        // A set-returning call's rows go to a spool (a tuplestore) as they are emitted.
        let mut spool = self.signature.set_returning.then(Spool::new);
        let _spool_guard = spool
            .as_mut()
            .map(|spool| SpoolAttached::attach(&self.instance, spool));
        let outcome = if self.uses_memory {
            // SAFETY: non-NULL arguments of the resolved types.
            let wire = unsafe { self.wire_args(args) };
            let bytes_result = self.signature.bytes_result();
            self.instance
                .call_with_memory(&self.export_fn, &wire, bytes_result)
        } else {
            // The scalar fast path: no allocation beyond Wasmer's result slice.
            self.params.clear();
            for (arg, ty) in args.iter().zip(&self.signature.args) {
                if let SqlType::Scalar(scalar) = ty {
                    self.params.push(if arg.isnull {
                        scalar.zero()
                    } else {
                        // SAFETY: the argument is non-NULL and of type `scalar`.
                        unsafe { scalar.to_wasm(arg.value) }
                    });
                }
            }
            match &self.typed {
                Some(typed) => self
                    .instance
                    .call_typed(typed.as_ref(), &self.params)
                    .map(WireResult::Value),
                None => self
                    .instance
                    .call(&self.export_fn, &self.params)
                    .map(WireResult::Values),
            }
        };
        drop(_spool_guard);
        let mut return_null = false;
        if let Some(output) = self.instance.take_output() {
            return_null = output.return_null;
            self.report_output(output);
        }
        let result = match outcome {
            Ok(result) => result,
            Err(CallFailure::Exit(0)) => {
                // proc_exit(0) ends the call normally; there is no result value, but the rows a
                // set-returning call emitted before it are its result.
                self.instance.discard();
                if let Some(spool) = spool.as_mut() {
                    // SAFETY: fcinfo is valid; the rows were emitted by this call.
                    return unsafe { self.materialize(fcinfo, spool) };
                }
                // SAFETY: fcinfo is valid.
                unsafe { (*fcinfo).isnull = self.signature.result.is_some() };
                return pg_sys::Datum::from(0usize);
            }
            Err(failure) => self.fail(failure),
        };
        if let Some(spool) = spool.as_mut() {
            // SAFETY: fcinfo is valid; the rows were emitted by this call.
            return unsafe { self.materialize(fcinfo, spool) };
        }
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

    /// Return the rows a set-returning call emitted, in materialize mode (a tuplestore).
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo.
    unsafe fn materialize(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
        spool: &mut Spool,
    ) -> pg_sys::Datum {
        // SAFETY: Postgres passes a ReturnSetInfo for set-returning calls (checked below).
        unsafe {
            let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
            if rsinfo.is_null()
                || (*rsinfo).type_ != pg_sys::NodeTag::T_ReturnSetInfo
                || ((*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32)
                    == 0
            {
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!(
                        "set-valued function {} called in context that cannot accept a set",
                        self.function
                    )
                );
            }
            let Some(ty) = self.signature.result else {
                // SETOF void is refused by the signature check; answer an empty set anyway.
                (*fcinfo).isnull = true;
                return pg_sys::Datum::from(0usize);
            };
            let json = matches!(ty, SqlType::Bytes(BytesType::JsonForm(_)));
            // Rows of a composite type (SETOF t, RETURNS TABLE) have the decoder's descriptor.
            let row_desc = if json {
                self.decoder(fcinfo).tupdesc()
            } else {
                None
            };
            let per_query = (*(*rsinfo).econtext).ecxt_per_query_memory;
            let old = pg_sys::MemoryContextSwitchTo(per_query);
            // The executor frees setDesc after use: always hand it a fresh copy.
            let set_desc = match row_desc {
                Some(desc) => pg_sys::CreateTupleDescCopy(desc),
                None => {
                    let desc = pg_sys::CreateTemplateTupleDesc(1);
                    pg_sys::TupleDescInitEntry(desc, 1, c"value".as_ptr(), self.result_type, -1, 0);
                    desc
                }
            };
            let store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
            pg_sys::MemoryContextSwitchTo(old);
            let put_desc = row_desc.unwrap_or(set_desc);
            let width = (*put_desc).natts as usize;
            // Each row's datums live only until the tuplestore has copied them.
            let row_memory = PgMemoryContexts::new("plwasm SETOF row");
            let mut values = Vec::with_capacity(width);
            let mut nulls = Vec::with_capacity(width);
            let this = &*self;
            spool.for_each(|row| {
                let old = pg_sys::MemoryContextSwitchTo(row_memory.value());
                values.clear();
                nulls.clear();
                match (ty, row) {
                    (_, Row::Null) => {
                        values.resize(width, pg_sys::Datum::from(0usize));
                        nulls.resize(width, true);
                    }
                    (SqlType::Bytes(BytesType::JsonForm(_)), Row::Bytes(bytes)) => {
                        let json =
                            values::utf8(bytes).unwrap_or_else(|reason| this.bad_result(reason));
                        // Made above (row_desc) for every JSON-form result.
                        let decoded = match &this.decoder {
                            Some(decoder) => decoder.decode(json, &mut values, &mut nulls),
                            None => Err(json_form::DecodeError::NotAnObject {
                                type_name: "(no decoder)".into(),
                            }),
                        };
                        if let Err(reason) = decoded {
                            this.mismatch(reason);
                        }
                    }
                    (SqlType::Scalar(scalar), Row::Value(value))
                        if crate::abi::WasmType::from(value.ty()) == scalar.wasm_type() =>
                    {
                        match scalar.from_wasm(&value) {
                            Ok(datum) => {
                                values.push(datum);
                                nulls.push(false);
                            }
                            Err(value) => this.out_of_range(value, scalar),
                        }
                    }
                    (SqlType::Bytes(bytes_type), Row::Bytes(bytes)) => {
                        match values::from_bytes(bytes_type, bytes) {
                            Ok(datum) => {
                                values.push(datum);
                                nulls.push(false);
                            }
                            Err(reason) => this.bad_result(reason),
                        }
                    }
                    (_, row) => PlWasmError::AbiViolation {
                        function: this.function.clone(),
                        module: this.instance.label.clone(),
                        export: this.export.clone(),
                        reason: format!(
                            "called {}, which does not fit SETOF {}",
                            describe_row(&row),
                            crate::binding::type_name(this.result_type)
                        ),
                    }
                    .report(),
                };
                pg_sys::tuplestore_putvalues(
                    store,
                    put_desc,
                    values.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                );
                pg_sys::MemoryContextSwitchTo(old);
                pg_sys::MemoryContextReset(row_memory.value());
            });
            (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
            (*rsinfo).setResult = store;
            (*rsinfo).setDesc = set_desc;
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0usize)
        }
    }

    fn out_of_range(&self, value: i64, scalar: crate::abi::SqlScalar) -> ! {
        PlWasmError::ResultOutOfRange {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            value,
            type_name: scalar.sql_name().to_string(),
        }
        .report()
    }

    fn bad_result(&self, reason: ValueError) -> ! {
        PlWasmError::BadResult {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            text: matches!(reason, ValueError::InvalidUtf8(_) | ValueError::Nul),
            reason: reason.to_string(),
        }
        .report()
    }

    /// The arguments as they travel to the guest (ABI v1 with memory).
    ///
    /// # Safety
    /// Datums of this site's argument types (NULLs only for null-aware modules).
    unsafe fn wire_args<'a>(&self, args: &'a [pg_sys::NullableDatum]) -> Vec<WireArg<'a>> {
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
}

impl CallSite {
    /// Report what the guest wrote: `plwasm.log` messages at their level, stdout as NOTICE,
    /// stderr as LOG. After the call returned.
    fn report_output(&self, output: GuestOutput) {
        for (level, message) in &output.logs {
            match level {
                i32::MIN..=0 => pgrx::debug1!("{message}"),
                1 => pgrx::log!("{message}"),
                2 => pgrx::info!("{message}"),
                3 => pgrx::notice!("{message}"),
                _ => pgrx::warning!("{message}"),
            }
        }
        if output.logs_dropped > 0 {
            pgrx::notice!(
                "{}: {} plwasm.log messages were dropped (at most {} messages or {} bytes per call are kept)",
                self.function,
                output.logs_dropped,
                crate::guest::MAX_LOGS,
                crate::guest::MAX_LOG_BYTES
            );
        }
        let (stdout, stdout_dropped) = output.stdout;
        let (stderr, stderr_dropped) = output.stderr;
        for line in stdout {
            pgrx::notice!("{line}");
        }
        for line in stderr {
            pgrx::log!("{} (stderr): {line}", self.function);
        }
        if stdout_dropped + stderr_dropped > 0 {
            pgrx::notice!(
                "{}: {} bytes of output were dropped (at most {} bytes per stream and call are kept)",
                self.function,
                stdout_dropped + stderr_dropped,
                crate::guest_output::MAX_CAPTURED_BYTES
            );
        }
    }

    /// Turn a failed call into the right ERROR. Runs after the wasm call returned.
    fn fail(&self, failure: CallFailure) -> ! {
        if !matches!(failure, CallFailure::Busy) {
            // Its memory may be half-updated: the next call gets a fresh instance.
            self.instance.discard();
        }
        failure
            .into_error(&self.function, &self.instance.label, &self.export)
            .report()
    }
}

/// How the guest emitted a row, for messages: `emit_i32(1)`, `emit_bytes(5 bytes)`, `emit_null()`.
fn describe_row(row: &Row<'_>) -> String {
    match row {
        Row::Null => "emit_null()".into(),
        Row::Bytes(bytes) => format!("emit_bytes({} bytes)", bytes.len()),
        Row::Value(Value::I32(v)) => format!("emit_i32({v})"),
        Row::Value(Value::I64(v)) => format!("emit_i64({v})"),
        Row::Value(Value::F32(v)) => format!("emit_f32({v})"),
        Row::Value(Value::F64(v)) => format!("emit_f64({v})"),
        Row::Value(other) => format!("{other:?}"),
    }
}

/// Exposes a spool to the instance's `emit_*` host functions for one call; detaches it when
/// dropped (also while an ERROR unwinds), before the spool itself goes.
struct SpoolAttached<'a> {
    instance: &'a Instantiated,
}

impl<'a> SpoolAttached<'a> {
    fn attach(instance: &'a Instantiated, spool: &mut Spool) -> Self {
        instance.set_spool(Some(SpoolPtr(spool)));
        Self { instance }
    }
}

impl Drop for SpoolAttached<'_> {
    fn drop(&mut self) {
        self.instance.set_spool(None);
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

/// Tells the function manager that `plwasm_call_handler` uses the version-1 calling convention.
#[no_mangle]
pub extern "C" fn pg_finfo_plwasm_call_handler() -> &'static pg_sys::Pg_finfo_record {
    static RECORD: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &RECORD
}

/// The call handler: `RETURNS language_handler`, declared in `lib.rs`.
///
/// # Safety
/// Called by Postgres's function manager with a valid `fcinfo`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn plwasm_call_handler(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo and its flinfo are valid for the duration of the call.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let mut site = (*flinfo).fn_extra as *mut CallSite;
        if site.is_null() || !(*site).is_current() {
            let resolved = CallSite::resolve((*flinfo).fn_oid).or_report();
            if site.is_null() {
                site = PgMemoryContexts::For((*flinfo).fn_mcxt).leak_and_drop_on_delete(resolved);
                (*flinfo).fn_extra = site.cast();
            } else {
                *site = resolved;
            }
        }
        (*site).call(fcinfo)
    }
}

//! The call handler of `LANGUAGE wasm`, in stages:
//!
//! 1. `resolve.rs` (once per call site, an `FmgrInfo`): `pg_proc` via the syscache, the module's
//!    instance from [`crate::runtime::cache`], the export and its signature checked by
//!    [`crate::call::binding`], a typed call chosen where the signature allows. The result, a
//!    `CallSite`, lives in `flinfo->fn_extra` (freed with `fn_mcxt`). Every later call checks
//!    two integers (the catalog generation and the instance's liveness).
//! 2. `marshal.rs`: arguments into wasm values or guest memory, by the types resolved in 1.
//! 3. the call itself (`CallSite::call`, through [`crate::runtime::instance::Instantiated`]).
//! 4. deliver: a scalar or row datum (`marshal.rs`), or a set (`srf.rs`); what the guest logged
//!    or printed and every failure go through `report.rs`.
//!
//! No catalog access and no string hashing after stage 1. Postgres errors are raised only after
//! the wasm call has returned, so no ERROR ever unwinds or longjmps across wasm frames.

pub mod binding;
mod marshal;
mod report;
mod resolve;
mod srf;
pub mod stats;
mod trigger;

use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use wasmer::{Function, Value};

use crate::abi::json_form::JsonDecoder;
use crate::abi::SqlSignature;
use crate::abi::{BytesType, SqlType};
use crate::catalog;
use crate::errors::{OrReport, PlWasmError};
use crate::runtime::failure::CallFailure;
use crate::runtime::instance::{BytesResult, Instantiated, WireArg, WireResult};
use crate::runtime::spool::Spool;
use srf::SpoolAttached;

/// Everything a call needs, resolved once per call site.
struct CallSite {
    function: String,
    export: String,
    /// This function's counters in `wasm.stats`.
    stats: Rc<stats::FunctionStats>,
    signature: SqlSignature,
    instance: Rc<Instantiated>,
    export_fn: Function,
    /// The export as a typed call, when its wasm signature is one [`crate::runtime::typed_call`]
    /// covers (values through memory travel as `(ptr, len)` i32 pairs, so `f(text, text) ->
    /// int` is one too): no signature check and no allocation per call.
    typed: Option<Box<dyn crate::runtime::typed_call::TypedCall>>,
    /// Catalog generation this site was resolved at; `None` for inline modules (their code is
    /// the function body itself, fixed for the life of the FmgrInfo).
    generation: Option<u64>,
    /// Whether any value travels through the module's memory (ABI v1 variable-length values).
    uses_memory: bool,
    /// The SQL result type (for a set-returning function's tuple descriptor).
    result_type: pg_sys::Oid,
    params: Vec<Value>,
    /// For each argument in JSON form, its encoder (type properties looked up once).
    json_args: Vec<Option<crate::abi::json_form::JsonEncoder>>,
    /// Parses JSON-form results; made at the first call that needs it (a row type's descriptor
    /// may come from the call's context).
    decoder: Option<JsonDecoder>,
    /// For a named composite result: the layout the decoder was made for (see
    /// [`crate::abi::json_form::row_layout`]); the decoder is remade when ALTER TYPE changes it.
    decoder_layout: u64,
    /// For a trigger function: the decoder of rows its results change, with the relation and
    /// row layout it was made for (remade when the trigger fires on another table, or ALTER
    /// TABLE changed this one).
    trigger_decoder: Option<(pg_sys::Oid, u64, JsonDecoder)>,
    /// For modules that import the query functions: what this function's calls may do.
    query: Option<crate::runtime::query::QueryPolicy>,
}

/// What a call passes to the guest, made before anything of the call is set on the instance.
struct Marshalled<'a> {
    /// The arguments, when some go through the guest's memory (None: all are wasm values).
    wire: Option<Vec<WireArg<'a>>>,
    /// A trigger call: what its result applies to.
    trigger: Option<trigger::TriggerCall>,
}

impl CallSite {
    #[inline]
    fn is_current(&self) -> bool {
        self.instance.is_alive()
            && self
                .generation
                .is_none_or(|resolved| resolved == catalog::generation())
    }

    /// # Safety
    /// `fcinfo` must be the call's valid `FunctionCallInfo`, with arguments of this site's types.
    /// The arguments as they travel to the guest when some go through its memory (None: all
    /// are wasm values, converted in [`Self::call`]). This is the one stage that can run user
    /// code (a JSON-form argument's cast to json), which may call wasm, replace the module or
    /// trap this very instance: it runs before anything of this call is set on the instance,
    /// and the caller checks the site is still current afterwards. The bytes do not depend on
    /// the instance, only on the argument types, which a re-resolved site shares.
    ///
    /// # Safety
    /// `fcinfo` must be the call's valid `FunctionCallInfo`, with arguments of this site's types.
    unsafe fn marshal<'a>(&self, fcinfo: pg_sys::FunctionCallInfo) -> Marshalled<'a> {
        if self.signature.trigger {
            // SAFETY: fcinfo is valid (caller's contract).
            let mut call = unsafe { self.trigger_call(fcinfo) };
            let event = std::mem::take(&mut call.event);
            return Marshalled {
                wire: Some(vec![WireArg::Bytes(std::borrow::Cow::Owned(event))]),
                trigger: Some(call),
            };
        }
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
        Marshalled {
            // SAFETY: non-NULL arguments of the resolved types.
            wire: self.uses_memory.then(|| unsafe { self.wire_args(args) }),
            trigger: None,
        }
    }

    /// Call the export with arguments [`Self::marshal`] made, and deliver its result.
    ///
    /// # Safety
    /// `fcinfo` must be the call's valid `FunctionCallInfo`, with arguments of this site's types;
    /// the site is current (no user code ran since it was checked).
    unsafe fn call(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
        marshalled: Marshalled<'_>,
    ) -> pg_sys::Datum {
        let Marshalled { wire, trigger } = marshalled;
        // SAFETY: fcinfo is valid and has `nargs` arguments (caller's contract).
        let args = unsafe { (*fcinfo).args.as_slice((*fcinfo).nargs as usize) };
        if self.instance.null_aware {
            let nulls: Vec<bool> = args.iter().map(|arg| arg.isnull).collect();
            self.instance.set_null_args(&nulls);
        }
        // A cancel that arrived before the call is handled before wasm starts.
        pgrx::check_for_interrupts!();
        // A set-returning call's rows go to a spool (a tuplestore) as they are emitted; rows of a
        // native scalar type straight into the result set, made now.
        let mut set = None;
        let mut spool = None;
        if self.signature.set_returning {
            spool = Some(match self.signature.result {
                Some(SqlType::Scalar(scalar)) => {
                    // SAFETY: fcinfo is valid (caller's contract).
                    match unsafe { self.result_set(fcinfo) } {
                        Some(made) => {
                            // SAFETY: the result set lives as long as the query; its
                            // descriptor has one column of this scalar's SQL type.
                            let direct =
                                unsafe { Spool::direct(scalar, made.store(), made.put_desc()) };
                            set = Some(made);
                            direct
                        }
                        None => Spool::new(),
                    }
                }
                _ => Spool::new(),
            });
        }
        let _spool_guard = spool
            .as_mut()
            .map(|spool| SpoolAttached::attach(&self.instance, spool));
        if let Some(policy) = &self.query {
            self.instance.begin_queries(policy.clone());
        }
        let started = self.stats.start();
        let outcome = if let Some(wire) = wire {
            let bytes_result = match self.signature.result {
                _ if !self.signature.bytes_result() => BytesResult::No,
                // text and bytea results are the datum's payload as they are: one copy.
                Some(SqlType::Bytes(BytesType::Text | BytesType::Bytea)) => BytesResult::Varlena,
                _ => BytesResult::Vec,
            };
            self.instance.call_with_memory(
                &self.export_fn,
                self.typed.as_deref(),
                &wire,
                bytes_result,
            )
        } else {
            // SAFETY: the arguments are of this site's types (caller's contract).
            unsafe { marshal::scalar_params(&mut self.params, &self.signature.args, args) };
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
        if self.query.is_some() {
            self.instance.end_queries();
        }
        let failed = matches!(&outcome, Err(failure) if !matches!(failure, CallFailure::Exit(0)));
        self.stats
            .record(started, self.instance.fuel_used(), failed);
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
                if let Some(trigger) = &trigger {
                    // No result: the row as it was.
                    // SAFETY: made for this call, which has returned.
                    return unsafe { self.trigger_result(trigger, b"") };
                }
                if let Some(spool) = spool.as_mut() {
                    // SAFETY: fcinfo is valid; the rows were emitted by this call.
                    return unsafe { self.materialize(fcinfo, spool, set) };
                }
                // SAFETY: fcinfo is valid.
                unsafe { (*fcinfo).isnull = self.signature.result.is_some() };
                return pg_sys::Datum::from(0usize);
            }
            Err(failure) => self.fail(failure),
        };
        if let Some(spool) = spool.as_mut() {
            // SAFETY: fcinfo is valid; the rows were emitted by this call.
            return unsafe { self.materialize(fcinfo, spool, set) };
        }
        if let Some(trigger) = &trigger {
            // plwasm.return_null is a null result: skip the row.
            let bytes = match &result {
                _ if return_null => b"null".as_slice(),
                WireResult::Bytes(bytes) => bytes.as_slice(),
                _ => b"",
            };
            // SAFETY: made for this call, which has returned.
            return unsafe { self.trigger_result(trigger, bytes) };
        }
        // SAFETY: fcinfo is valid (caller's contract).
        unsafe { self.deliver(fcinfo, result, return_null) }
    }
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
        let resolve = |site: &mut *mut CallSite| {
            let resolved = CallSite::resolve((*flinfo).fn_oid).or_report();
            if site.is_null() {
                *site = PgMemoryContexts::For((*flinfo).fn_mcxt).leak_and_drop_on_delete(resolved);
                (*flinfo).fn_extra = (*site).cast();
            } else {
                **site = resolved;
            }
        };
        if site.is_null() || !(*site).is_current() {
            resolve(&mut site);
        }
        let marshalled = (*site).marshal(fcinfo);
        // Converting the arguments may have run user code that left the instance stale: resolve
        // again (no user code runs in between, so the new site is current) and call it with the
        // same arguments.
        if !(*site).is_current() {
            resolve(&mut site);
        }
        (*site).call(fcinfo, marshalled)
    }
}

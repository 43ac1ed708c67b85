//! Deliver a set: the rows a set-returning call emitted (spooled while it ran) returned to the
//! executor in materialize mode, each converted by the call site's result type.

use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use wasmer::Value;

use super::CallSite;
use crate::abi::json_form;
use crate::abi::values;
use crate::abi::{BytesType, SqlType};
use crate::errors::PlWasmError;
use crate::runtime::instance::Instantiated;
use crate::runtime::spool::{Misfit, Row, Spool, SpoolPtr};

impl CallSite {
    /// The call's result set: its `ReturnSetInfo` (checked to accept a materialized set), a new
    /// tuplestore and the descriptor handed to the executor (both in the query's memory), and
    /// the descriptor rows are put with. None for SETOF void.
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo.
    pub(super) unsafe fn result_set(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Option<ResultSet> {
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
            let ty = self.signature.result?;
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
            Some(ResultSet {
                ty,
                rsinfo,
                store,
                set_desc,
                put_desc: row_desc.unwrap_or(set_desc),
            })
        }
    }

    /// Return the rows a set-returning call emitted, in materialize mode (a tuplestore): for a
    /// direct spool (see [`Spool::direct`]) they are in `set` already; otherwise each spooled
    /// row is converted into it now.
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo; `set` was made by [`Self::result_set`]
    /// for it (None: made now).
    pub(super) unsafe fn materialize(
        &mut self,
        fcinfo: pg_sys::FunctionCallInfo,
        spool: &mut Spool,
        set: Option<ResultSet>,
    ) -> pg_sys::Datum {
        // SAFETY: the function's contract.
        unsafe {
            let set = match set {
                Some(set) => set,
                None => match self.result_set(fcinfo) {
                    Some(set) => set,
                    None => {
                        // SETOF void is refused by the signature check; answer an empty set.
                        (*fcinfo).isnull = true;
                        return pg_sys::Datum::from(0usize);
                    }
                },
            };
            let ResultSet {
                ty,
                rsinfo,
                store,
                set_desc,
                put_desc,
            } = set;
            match spool.direct_misfit() {
                Some(Some(misfit)) => self.misfit(misfit, ty),
                // A direct spool's rows are in the result already.
                Some(None) => {}
                None => {
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
                                let json = values::utf8(bytes)
                                    .unwrap_or_else(|reason| this.bad_result(reason));
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
                            (_, row) => this.does_not_fit(&describe_row(&row)),
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
                }
            }
            (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
            (*rsinfo).setResult = store;
            (*rsinfo).setDesc = set_desc;
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0usize)
        }
    }
}

/// A set-returning call's result, made before or after the call (see
/// [`CallSite::result_set`]).
pub(super) struct ResultSet {
    /// The function's result type (rows of a set of it).
    ty: SqlType,
    rsinfo: *mut pg_sys::ReturnSetInfo,
    store: *mut pg_sys::Tuplestorestate,
    set_desc: pg_sys::TupleDesc,
    put_desc: pg_sys::TupleDesc,
}

impl ResultSet {
    pub(super) fn store(&self) -> *mut pg_sys::Tuplestorestate {
        self.store
    }

    pub(super) fn put_desc(&self) -> pg_sys::TupleDesc {
        self.put_desc
    }
}

impl CallSite {
    /// The ERROR for the first row a direct spool could not take, as a spooled row gets it.
    fn misfit(&self, misfit: Misfit, ty: SqlType) -> ! {
        let scalar = match ty {
            SqlType::Scalar(scalar) => Some(scalar),
            SqlType::Bytes(_) => None,
        };
        if let (Misfit::Value(value), Some(scalar)) = (&misfit, scalar) {
            if crate::abi::WasmType::from(value.ty()) == scalar.wasm_type() {
                if let Err(value) = scalar.from_wasm(value) {
                    self.out_of_range(value, scalar);
                }
            }
        }
        match misfit {
            Misfit::Value(value) => self.does_not_fit(&describe_row(&Row::Value(value))),
            Misfit::Bytes(len) => self.does_not_fit(&format!("emit_bytes({len} bytes)")),
        }
    }

    /// The ERROR for a row emitted as `emitted` (see [`describe_row`]) that is not of the set's
    /// type.
    fn does_not_fit(&self, emitted: &str) -> ! {
        PlWasmError::AbiViolation {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            reason: format!(
                "called {emitted}, which does not fit SETOF {}",
                crate::call::binding::type_name(self.result_type)
            ),
        }
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
pub(super) struct SpoolAttached<'a> {
    instance: &'a Instantiated,
}

impl<'a> SpoolAttached<'a> {
    pub(super) fn attach(instance: &'a Instantiated, spool: &mut Spool) -> Self {
        instance.set_spool(Some(SpoolPtr(spool)));
        Self { instance }
    }
}

impl Drop for SpoolAttached<'_> {
    fn drop(&mut self) {
        self.instance.set_spool(None);
    }
}

//! Triggers: a `RETURNS trigger` function's export gets the trigger event as JSON text and
//! returns what to do as JSON text (`docs/abi.md`, "Triggers").
//!
//! The event: `{"name", "when", "level", "event", "schema", "table", "args", "old", "new"}`,
//! rows in their JSON form (what `to_json` prints). The result of a BEFORE or INSTEAD OF row
//! trigger: empty or `"unchanged"` (go on with the row the trigger got), `null` or `"skip"` (skip
//! this row's operation), or an object of columns to change in that row (the others keep their
//! value). AFTER and statement-level triggers' results are ignored, as Postgres ignores them.
//!
//! Everything here runs before the wasm call (the event) or after it has returned (the row).

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::trigger_support as support;

use super::CallSite;
use crate::abi::json_form::{self, JsonDecoder, JsonEncoder};
use crate::abi::values;
use crate::errors::PlWasmError;

/// One trigger call: the event the guest gets, and what its result is applied to.
pub(super) struct TriggerCall {
    /// The event as the guest receives it.
    pub event: Vec<u8>,
    /// For BEFORE and INSTEAD OF row triggers: the row a result applies to (NEW for INSERT and
    /// UPDATE, OLD for DELETE). `None`: the result is ignored.
    row: Option<pg_sys::HeapTuple>,
    relation: pg_sys::Relation,
    /// `trigger "t" on public.items`, for messages.
    label: String,
}

/// What a row trigger's result says.
#[derive(Debug, PartialEq, Eq)]
enum Verdict<'a> {
    Unchanged,
    Skip,
    /// An object of columns to change.
    Change(&'a str),
}

/// Read a row trigger's result (see the module docs).
fn verdict(json: &str) -> Result<Verdict<'_>, String> {
    let trimmed = json.trim_ascii();
    match trimmed {
        "" | "\"unchanged\"" => Ok(Verdict::Unchanged),
        "null" | "\"skip\"" => Ok(Verdict::Skip),
        _ if trimmed.starts_with('{') => Ok(Verdict::Change(trimmed)),
        _ => Err(format!(
            "a row trigger returns \"unchanged\", \"skip\", null or an object of the columns to \
             change, not {}",
            crate::runtime::backtrace::shown(trimmed)
        )),
    }
}

/// A JSON string.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A C string from Postgres as text (names and arguments; the database is UTF-8).
///
/// # Safety
/// `text` is NULL or a valid NUL-terminated string.
unsafe fn text_of(text: *const std::ffi::c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

impl CallSite {
    /// The event of the trigger call `fcinfo` is, or the error of a trigger function called
    /// another way.
    ///
    /// # Safety
    /// `fcinfo` is this call's valid FunctionCallInfo. May run user code (a column type's output
    /// function); the caller checks the site is still current afterwards.
    pub(super) unsafe fn trigger_call(&self, fcinfo: pg_sys::FunctionCallInfo) -> TriggerCall {
        // SAFETY: fcinfo is valid; its context is a TriggerData when called as a trigger.
        unsafe {
            if !support::called_as_trigger(fcinfo) {
                PlWasmError::NotCalledAsTrigger {
                    function: self.function.clone(),
                }
                .report();
            }
            let data = &*(*fcinfo).context.cast::<pg_sys::TriggerData>();
            let event = data.tg_event;
            let trigger = &*data.tg_trigger;
            let relation = data.tg_relation;
            let rowtype = (*(*relation).rd_att).tdtypeid;
            let schema = text_of(pg_sys::get_namespace_name(
                (*(*relation).rd_rel).relnamespace,
            ));
            let table = text_of((*(*relation).rd_rel).relname.data.as_ptr());
            let name = text_of(trigger.tgname);
            let label = format!("trigger {} on {schema}.{table}", quoted(&name));
            // A row larger than the module's memory may be can never reach it: refused before
            // it is printed (and each form is checked before it is copied again).
            let max_bytes = crate::gucs::max_memory_pages() as usize * 65536;
            let too_large = |bytes: usize| -> ! {
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "function {}: the event of {label} is {bytes} bytes or more, more than \
                         the module's memory may be ({max_bytes} bytes, wasm.max_memory)",
                        self.function
                    ),
                    "A superuser can raise wasm.max_memory."
                );
            };
            let row_json = |tuple: pg_sys::HeapTuple| -> Vec<u8> {
                if tuple.is_null() {
                    return b"null".to_vec();
                }
                let datum = pg_sys::heap_copy_tuple_as_datum(tuple, (*relation).rd_att);
                let size = pgrx::varlena::varsize_any(datum.cast_mut_ptr());
                if size > max_bytes {
                    too_large(size);
                }
                let json = JsonEncoder::new(rowtype).to_json(datum);
                pg_sys::pfree(datum.cast_mut_ptr());
                if json.len() > max_bytes {
                    too_large(json.len());
                }
                json
            };
            let for_row = support::trigger_fired_for_row(event);
            let (old, new) = match () {
                _ if !for_row => (std::ptr::null_mut(), std::ptr::null_mut()),
                _ if support::trigger_fired_by_insert(event) => {
                    (std::ptr::null_mut(), data.tg_trigtuple)
                }
                _ if support::trigger_fired_by_update(event) => {
                    (data.tg_trigtuple, data.tg_newtuple)
                }
                _ => (data.tg_trigtuple, std::ptr::null_mut()),
            };
            let when = if support::trigger_fired_before(event) {
                "BEFORE"
            } else if support::trigger_fired_instead(event) {
                "INSTEAD OF"
            } else {
                "AFTER"
            };
            let operation = match event & pg_sys::TRIGGER_EVENT_OPMASK {
                pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
                pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
                pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
                _ => "TRUNCATE",
            };
            let args: Vec<String> = (0..trigger.tgnargs.max(0) as usize)
                .map(|i| quoted(&text_of(*trigger.tgargs.add(i))))
                .collect();
            let mut json = format!(
                "{{\"name\":{},\"when\":\"{when}\",\"level\":\"{}\",\"event\":\"{operation}\",\
                 \"schema\":{},\"table\":{},\"args\":[{}],\"old\":",
                quoted(&name),
                if for_row { "ROW" } else { "STATEMENT" },
                quoted(&schema),
                quoted(&table),
                args.join(","),
            )
            .into_bytes();
            let old_json = row_json(old);
            json.extend_from_slice(&old_json);
            drop(old_json);
            let new_json = row_json(new);
            if json.len() + new_json.len() > max_bytes {
                too_large(json.len() + new_json.len());
            }
            json.extend_from_slice(b",\"new\":");
            json.extend_from_slice(&new_json);
            drop(new_json);
            json.push(b'}');
            let decides = for_row && !support::trigger_fired_after(event);
            let row = match () {
                _ if !decides => None,
                _ if new.is_null() => Some(old),
                _ => Some(new),
            };
            TriggerCall {
                event: json,
                row,
                relation,
                label,
            }
        }
    }

    /// What the trigger call returns to Postgres, from the guest's result.
    ///
    /// # Safety
    /// `call` was made for this call; runs after the wasm call returned.
    pub(super) unsafe fn trigger_result(
        &mut self,
        call: &TriggerCall,
        result: &[u8],
    ) -> pg_sys::Datum {
        let Some(tuple) = &call.row else {
            // AFTER and statement-level triggers: Postgres ignores the result.
            return pg_sys::Datum::from(0usize);
        };
        let json = values::utf8(result).unwrap_or_else(|reason| self.bad_result(reason));
        let changes = match verdict(json) {
            Ok(Verdict::Unchanged) => return pg_sys::Datum::from(*tuple),
            Ok(Verdict::Skip) => return pg_sys::Datum::from(0usize),
            Ok(Verdict::Change(changes)) => changes,
            Err(reason) => PlWasmError::BadResult {
                function: self.function.clone(),
                module: self.instance.label.clone(),
                export: self.export.clone(),
                reason: format!("{}: {reason}", call.label),
                text: false,
            }
            .report(),
        };
        let relation = call.relation;
        // SAFETY: the trigger's relation is open and locked for the call.
        let (relid, rowtype, tupdesc) = unsafe {
            (
                (*relation).rd_id,
                (*(*relation).rd_att).tdtypeid,
                (*relation).rd_att,
            )
        };
        let layout = json_form::row_layout(rowtype);
        if !matches!(&self.trigger_decoder, Some((id, made_for, _)) if *id == relid && *made_for == layout)
        {
            let context = format!(
                "trigger function {} (module \"{}\", export \"{}\")",
                self.function, self.instance.label, self.export
            );
            // SAFETY: the relation's descriptor (copied by the decoder), of its row type.
            let decoder = unsafe { JsonDecoder::for_row_over(tupdesc, context) };
            self.trigger_decoder = Some((relid, layout, decoder));
        }
        let Some((_, _, decoder)) = &self.trigger_decoder else {
            return pg_sys::Datum::from(*tuple);
        };
        let (mut values, mut nulls) = (Vec::new(), Vec::new());
        // SAFETY: the tuple the trigger got, of the relation's descriptor; the row datum is made
        // in the current (per-call) memory context.
        let base = unsafe { pg_sys::heap_copy_tuple_as_datum(*tuple, tupdesc) };
        if let Err(reason) = decoder.decode_over(base, changes, &mut values, &mut nulls) {
            PlWasmError::ResultMismatch {
                function: self.function.clone(),
                module: self.instance.label.clone(),
                export: self.export.clone(),
                reason: format!("{}: {reason}", call.label),
            }
            .report()
        }
        // SAFETY: one value per attribute of the relation's descriptor (the decoder's is a
        // copy of it); the tuple is formed in the caller's memory context, as Postgres expects.
        unsafe {
            pg_sys::Datum::from(pg_sys::heap_form_tuple(
                tupdesc,
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(""), Ok(Verdict::Unchanged));
        assert_eq!(verdict(" \"unchanged\"\n"), Ok(Verdict::Unchanged));
        assert_eq!(verdict("null"), Ok(Verdict::Skip));
        assert_eq!(verdict("\"skip\""), Ok(Verdict::Skip));
        assert_eq!(verdict(" {\"a\":1} "), Ok(Verdict::Change("{\"a\":1}")));
        for wrong in ["\"Skip\"", "[1]", "true", "1", "\"modify\""] {
            assert!(verdict(wrong).is_err(), "{wrong}");
        }
        let long = format!("\"{}\"", "x".repeat(1000));
        assert!(verdict(&long).unwrap_err().ends_with('…'));
    }
}

//! ABI v1's JSON form: how values of SQL types without a native encoding travel (numeric,
//! date/time, uuid, enums, domains, ranges, composite types and records, arrays other than the
//! packed ones).
//!
//! - Arguments become the JSON Postgres's own `to_json` would print, made with `array_to_json`
//!   (arrays directly, everything else as the only element of a one-element array whose brackets
//!   are then dropped): no per-call catalog access beyond the type cache.
//! - Results are parsed back by Postgres itself through one prepared statement per call site over
//!   `jsonb_to_record`: `SELECT r.v FROM jsonb_to_record(jsonb_build_object('v', $1::jsonb)) AS
//!   r(v <type>)` for a single value, `SELECT r.* FROM jsonb_to_record($1::jsonb) AS r(<columns>)`
//!   for a row. A single value given as a JSON scalar (a string, number, boolean or null: the
//!   common case of numeric, dates, uuid, enums) skips the statement: its text goes straight to
//!   the type's input function, which is what `jsonb_populate_record` does with scalars. So a
//!   result follows the rules of `jsonb_populate_record` (domains are checked, nested composites
//!   and arrays are built from objects and arrays), and a value that does not fit is Postgres's
//!   own error, with a detail line naming the function. A row must be a JSON object whose keys
//!   are column names (a missing key is NULL, an unknown key an ERROR); JSON `null` is SQL NULL.
//!
//! Conversions run after the wasm call has returned, never from inside it.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::pg_sys::PgTryBuilder;
use pgrx::{FromDatum, IntoDatum, PgLogLevel, PgTupleDesc};

/// Whether values of `oid` can travel in JSON form: base, composite, domain, enum, range and
/// multirange types, and `record`. Other pseudo-types (anyelement, internal, ...) cannot.
pub fn eligible(oid: pg_sys::Oid) -> bool {
    if oid == pg_sys::RECORDOID {
        return true;
    }
    // SAFETY: syscache lookups that accept any OID (0 for an unknown type).
    unsafe {
        pg_sys::get_typisdefined(oid)
            && matches!(
                pg_sys::get_typtype(oid) as u8,
                b'b' | b'c' | b'd' | b'e' | b'r' | b'm'
            )
    }
}

/// Whether `oid` is a composite type (or `record`): its results are rows.
pub fn is_row_type(oid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookup.
    oid == pg_sys::RECORDOID || unsafe { pg_sys::get_typtype(oid) as u8 == b'c' }
}

/// Identifies the current layout of a named composite type (changes with ALTER TYPE); 0 for
/// other types. A row decoder made for one layout must not build tuples for another.
pub fn row_layout(oid: pg_sys::Oid) -> u64 {
    if oid == pg_sys::RECORDOID {
        return 0;
    }
    // SAFETY: the type cache accepts any existing type; it loads a descriptor (and gives it an
    // identifier) for composite types only, so others stay 0.
    unsafe {
        let entry = pg_sys::lookup_type_cache(oid, pg_sys::TYPECACHE_TUPDESC as i32);
        (*entry).tupDesc_identifier
    }
}

/// The JSON form of a non-NULL datum of type `oid`.
///
/// # Safety
/// `datum` must be a non-NULL value of type `oid`.
#[allow(
    clippy::expect_used,
    reason = "invariant: array_to_json of an array is never NULL"
)]
pub unsafe fn to_json(oid: pg_sys::Oid, datum: pg_sys::Datum) -> Vec<u8> {
    // SAFETY: the caller guarantees the datum's type; every call below is a plain Postgres API
    // on a valid datum, and array_to_json takes the element type from the array itself.
    unsafe {
        let base = pg_sys::getBaseType(oid);
        let is_array = pg_sys::get_element_type(base) != pg_sys::InvalidOid;
        let array = if is_array {
            datum
        } else {
            let (mut len, mut by_val, mut align) = (0i16, false, 0 as std::ffi::c_char);
            pg_sys::get_typlenbyvalalign(oid, &mut len, &mut by_val, &mut align);
            let mut element = datum;
            pg_sys::Datum::from(pg_sys::construct_array(
                &mut element,
                1,
                oid,
                len.into(),
                by_val,
                align,
            ))
        };
        let json =
            pgrx::fcinfo::direct_function_call_as_datum(pg_sys::array_to_json, &[Some(array)])
                .expect("array_to_json of an array is not NULL");
        let text = <&[u8]>::from_datum(json, false).unwrap_or_default();
        if is_array {
            text.to_vec()
        } else {
            // "[x]" -> "x"
            text[1..text.len() - 1].to_vec()
        }
    }
}

/// What a result in JSON form becomes.
enum Shape {
    /// One value of type `oid`.
    Value {
        oid: pg_sys::Oid,
        by_val: bool,
        len: i16,
    },
    /// A row of this descriptor (kept in `TopMemoryContext`, blessed): `columns[i]` is the
    /// result column of attribute `i`, `None` for dropped attributes.
    Row {
        tupdesc: pg_sys::TupleDesc,
        columns: Vec<Option<i32>>,
        names: Vec<String>,
    },
}

/// Parses results in JSON form for one call site (see the module docs).
pub struct JsonDecoder {
    plan: pg_sys::SPIPlanPtr,
    shape: Shape,
    /// Type name for messages.
    type_name: String,
    /// "function f(int) (module "m", export "e")" for error details.
    context: CString,
}

/// Why a result could not be decoded (besides Postgres's own errors, which it raises itself).
#[derive(Debug)]
pub enum DecodeError {
    NotAnObject { type_name: String },
    UnknownKey { key: String, type_name: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnObject { type_name } => {
                write!(f, "a row of type {type_name} must be a JSON object or null")
            }
            Self::UnknownKey { key, type_name } => {
                write!(f, "type {type_name} has no column \"{key}\"")
            }
        }
    }
}

fn type_name(oid: pg_sys::Oid, typmod: i32) -> String {
    // SAFETY: accepts any OID; returns a palloc'd string.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_extended(
            oid,
            typmod,
            pg_sys::FORMAT_TYPE_FORCE_QUALIFY as u16 | pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN as u16,
        ))
        .to_string_lossy()
        .into_owned()
    }
}

impl JsonDecoder {
    /// A decoder for single values of type `oid`.
    pub fn for_value(oid: pg_sys::Oid, context: String) -> Self {
        let sql_type = type_name(oid, -1);
        let query = format!(
            "SELECT r.v FROM pg_catalog.jsonb_to_record(pg_catalog.jsonb_build_object('v', \
             $1::pg_catalog.jsonb)) AS r(v {sql_type})"
        );
        let (mut len, mut by_val) = (0i16, false);
        // SAFETY: syscache lookup of an existing type.
        unsafe { pg_sys::get_typlenbyval(oid, &mut len, &mut by_val) };
        Self {
            plan: prepare(&query),
            shape: Shape::Value { oid, by_val, len },
            type_name: sql_type,
            context: CString::new(context).unwrap_or_default(),
        }
    }

    /// A decoder for rows of `tupdesc` (copied and blessed, so the caller's may go away).
    ///
    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor.
    pub unsafe fn for_row(tupdesc: pg_sys::TupleDesc, context: String) -> Self {
        // SAFETY: copy into a long-lived context; blessing registers record types' typmods.
        let tupdesc = unsafe {
            let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            let copy = pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(tupdesc));
            pg_sys::MemoryContextSwitchTo(old);
            copy
        };
        // SAFETY: a valid descriptor we own.
        let desc = unsafe { PgTupleDesc::from_pg_unchecked(tupdesc) };
        let mut definitions = Vec::new();
        let mut columns = Vec::new();
        let mut names = Vec::new();
        for attr in desc.iter() {
            if attr.is_dropped() {
                columns.push(None);
                continue;
            }
            let name = attr.name().to_string();
            definitions.push(format!(
                "{} {}",
                pgrx::spi::quote_identifier(&name),
                type_name(attr.type_oid().value(), attr.type_mod())
            ));
            columns.push(Some(definitions.len() as i32));
            names.push(name);
        }
        // SAFETY: a valid descriptor.
        let row_type = match unsafe { (*tupdesc).tdtypeid } {
            // RETURNS TABLE, OUT parameters, a column definition list: name the columns.
            pg_sys::RECORDOID => format!("record ({})", names.join(", ")),
            oid => type_name(oid, -1),
        };
        let query = if definitions.is_empty() {
            // A row without columns: nothing to parse, but the JSON must still be valid.
            "SELECT $1::pg_catalog.jsonb".to_string()
        } else {
            format!(
                "SELECT r.* FROM pg_catalog.jsonb_to_record($1::pg_catalog.jsonb) AS r({})",
                definitions.join(", ")
            )
        };
        Self {
            plan: prepare(&query),
            shape: Shape::Row {
                tupdesc,
                columns,
                names,
            },
            type_name: row_type,
            context: CString::new(context).unwrap_or_default(),
        }
    }

    /// The result descriptor of a row decoder.
    pub fn tupdesc(&self) -> Option<pg_sys::TupleDesc> {
        match &self.shape {
            Shape::Row { tupdesc, .. } => Some(*tupdesc),
            Shape::Value { .. } => None,
        }
    }

    /// Decode one result into `values`/`nulls` (one entry for a value, one per attribute for a
    /// row), allocated in the current memory context; returns whether the JSON was `null` (a
    /// row is then all NULLs). Postgres's own conversion errors are raised with a detail line
    /// naming the function.
    #[allow(
        clippy::unreachable,
        reason = "invariant: an ERROR-level report does not return"
    )]
    pub fn decode(
        &self,
        json: &str,
        values: &mut Vec<pg_sys::Datum>,
        nulls: &mut Vec<bool>,
    ) -> Result<bool, DecodeError> {
        values.clear();
        nulls.clear();
        let scalar = match &self.shape {
            Shape::Row { columns, names, .. } => {
                if let RowJson::Null = check_row_keys(json.as_bytes(), names, &self.type_name)? {
                    values.resize(columns.len(), pg_sys::Datum::from(0usize));
                    nulls.resize(columns.len(), true);
                    return Ok(true);
                }
                None
            }
            Shape::Value { oid, .. } => scalar_input(json).map(|input| (*oid, input)),
        };
        let is_null = matches!(scalar, Some((_, ScalarInput::Null)));
        // Postgres's own conversion errors (bad input syntax, domain checks, ...) get a detail
        // line naming the function; everything else passes unchanged.
        let mut outcome = (std::mem::take(values), std::mem::take(nulls));
        let result = std::panic::AssertUnwindSafe(&mut outcome);
        PgTryBuilder::new(move || {
            let result = result;
            let (values, nulls) = &mut *result.0;
            match scalar {
                // A JSON scalar for a single value: the type's input function, as
                // jsonb_populate_record would call it, without running a statement.
                Some((_, ScalarInput::Null)) => {
                    values.push(pg_sys::Datum::from(0usize));
                    nulls.push(true);
                }
                Some((oid, ScalarInput::Text(input))) => {
                    values.push(crate::values::input_text(oid, &input));
                    nulls.push(false);
                }
                // SAFETY: see `convert`.
                None => unsafe { self.convert(json, values, nulls) },
            }
        })
        .catch_others(|caught| match caught {
            CaughtError::PostgresError(report) => {
                let detail = match report.detail() {
                    Some(detail) => format!("{detail}\n{}", self.context()),
                    None => self.context(),
                };
                ErrorReport::new(
                    report.sql_error_code(),
                    report.message().to_string(),
                    "plwasm",
                )
                .set_detail(detail)
                .report(PgLogLevel::ERROR);
                unreachable!("ERROR-level reports do not return")
            }
            other => other.rethrow(),
        })
        .execute();
        (*values, *nulls) = outcome;
        Ok(is_null)
    }

    fn context(&self) -> String {
        format!(
            "While converting the JSON result of {} to {}.",
            self.context.to_string_lossy(),
            self.type_name
        )
    }

    /// Run the prepared conversion on `text`.
    ///
    /// # Safety
    /// Raw SPI between SPI_connect and SPI_finish (an ERROR in between is cleaned up by the
    /// (sub)transaction abort it causes). The results are copied into the caller's memory
    /// context before SPI_finish frees them.
    #[allow(clippy::expect_used, reason = "invariant: a text datum is never NULL")]
    unsafe fn convert(&self, text: &str, values: &mut Vec<pg_sys::Datum>, nulls: &mut Vec<bool>) {
        // SAFETY: the function's contract.
        unsafe {
            let outer = pg_sys::CurrentMemoryContext;
            if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
                pgrx::error!("plwasm: SPI_connect failed");
            }
            let mut args = [text.into_datum().expect("text datum")];
            let arg_nulls = [b' ' as std::ffi::c_char];
            let rc =
                pg_sys::SPI_execute_plan(self.plan, args.as_mut_ptr(), arg_nulls.as_ptr(), true, 1);
            if rc != pg_sys::SPI_OK_SELECT as i32 || pg_sys::SPI_processed != 1 {
                pgrx::error!("plwasm: converting a JSON result failed (SPI code {rc})");
            }
            let table = pg_sys::SPI_tuptable;
            let tuple = *(*table).vals;
            let spi_desc = (*table).tupdesc;
            pg_sys::MemoryContextSwitchTo(outer);
            match &self.shape {
                Shape::Value { by_val, len, .. } => {
                    let mut isnull = false;
                    let datum = pg_sys::SPI_getbinval(tuple, spi_desc, 1, &mut isnull);
                    values.push(if isnull {
                        datum
                    } else {
                        copy_datum(datum, *by_val, *len)
                    });
                    nulls.push(isnull);
                }
                Shape::Row {
                    tupdesc, columns, ..
                } => {
                    let desc = PgTupleDesc::from_pg_unchecked(*tupdesc);
                    for (attr, column) in desc.iter().zip(columns) {
                        let Some(column) = column else {
                            values.push(pg_sys::Datum::from(0usize));
                            nulls.push(true);
                            continue;
                        };
                        let mut isnull = false;
                        let datum = pg_sys::SPI_getbinval(tuple, spi_desc, *column, &mut isnull);
                        values.push(if isnull {
                            datum
                        } else {
                            copy_datum(datum, attr.attbyval, attr.attlen)
                        });
                        nulls.push(isnull);
                    }
                }
            }
            pg_sys::SPI_finish();
        }
    }

    /// Decode one non-set result to a datum (`None` for SQL NULL): a row becomes a composite
    /// datum of the decoder's descriptor.
    pub fn decode_datum(&self, json: &str) -> Result<Option<pg_sys::Datum>, DecodeError> {
        let mut values = Vec::new();
        let mut nulls = Vec::new();
        let is_null = self.decode(json, &mut values, &mut nulls)?;
        match &self.shape {
            Shape::Value { .. } => Ok((!nulls[0]).then_some(values[0])),
            Shape::Row { .. } if is_null => Ok(None),
            Shape::Row { tupdesc, .. } => {
                // SAFETY: values and nulls have one entry per attribute of the blessed tupdesc.
                unsafe {
                    let tuple =
                        pg_sys::heap_form_tuple(*tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
                    Ok(Some(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)))
                }
            }
        }
    }
}

impl Drop for JsonDecoder {
    fn drop(&mut self) {
        // SAFETY: the plan was kept by `prepare` and is freed once; the descriptor was copied
        // into TopMemoryContext by `for_row`.
        unsafe {
            pg_sys::SPI_freeplan(self.plan);
            if let Shape::Row { tupdesc, .. } = self.shape {
                pg_sys::FreeTupleDesc(tupdesc);
            }
        }
    }
}

/// What a JSON scalar gives a type's input function.
enum ScalarInput {
    Null,
    /// A string's unescaped contents, or a number's or boolean's text.
    Text(String),
}

/// The input-function text of a JSON scalar (None for arrays, objects and invalid JSON, which
/// take the general path and its error messages).
fn scalar_input(json: &str) -> Option<ScalarInput> {
    let trimmed = json.trim_ascii();
    match trimmed.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(trimmed)
            .ok()
            .filter(|s| !s.contains('\0'))
            .map(ScalarInput::Text),
        b'n' if trimmed == "null" => Some(ScalarInput::Null),
        b't' | b'f' | b'-' | b'0'..=b'9' => serde_json::from_str::<serde::de::IgnoredAny>(trimmed)
            .ok()
            .map(|_| ScalarInput::Text(trimmed.to_string())),
        _ => None,
    }
}

/// A copy of a non-NULL datum in the current memory context (Postgres's `datumCopy`, which
/// pgrx does not bind; varlenas are also detoasted and flattened).
///
/// # Safety
/// `datum` is a valid non-NULL datum of a type with this length and by-value flag.
unsafe fn copy_datum(datum: pg_sys::Datum, by_val: bool, len: i16) -> pg_sys::Datum {
    if by_val {
        return datum;
    }
    // SAFETY: the caller's contract; each branch copies exactly the datum's bytes.
    unsafe {
        match len {
            -1 => pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr())),
            -2 => {
                let source = datum.cast_mut_ptr::<std::ffi::c_char>();
                pg_sys::Datum::from(pg_sys::pstrdup(source))
            }
            len => {
                let len = len as usize;
                let copy = pg_sys::palloc(len);
                std::ptr::copy_nonoverlapping(datum.cast_mut_ptr::<u8>(), copy.cast::<u8>(), len);
                pg_sys::Datum::from(copy)
            }
        }
    }
}

enum RowJson {
    Null,
    Object,
}

/// A row result must be `null` or an object whose keys are column names.
fn check_row_keys(json: &[u8], names: &[String], type_name: &str) -> Result<RowJson, DecodeError> {
    use serde_json::Value;
    let not_an_object = || DecodeError::NotAnObject {
        type_name: type_name.to_string(),
    };
    match json.trim_ascii().first() {
        Some(b'{') => {}
        // Not JSON at all is reported by jsonb's own parser, below.
        Some(b'n') if json.trim_ascii() == b"null" => return Ok(RowJson::Null),
        Some(b'[' | b'"' | b't' | b'f' | b'-' | b'0'..=b'9') => return Err(not_an_object()),
        _ => return Ok(RowJson::Object),
    }
    // Invalid JSON is left to jsonb's parser, which reports it with its position.
    let Ok(object) = serde_json::from_slice::<serde_json::Map<String, Value>>(json) else {
        return Ok(RowJson::Object);
    };
    match object.keys().find(|key| !names.iter().any(|n| n == *key)) {
        Some(key) => Err(DecodeError::UnknownKey {
            key: key.clone(),
            type_name: type_name.to_string(),
        }),
        None => Ok(RowJson::Object),
    }
}

thread_local! {
    static PLANS_PREPARED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many conversion statements this backend has prepared (tests check it stays per call site).
pub fn plans_prepared() -> u64 {
    PLANS_PREPARED.with(|n| n.get())
}

/// Prepare and keep a one-text-parameter statement.
#[allow(
    clippy::expect_used,
    reason = "invariant: the statement is made of catalog type spellings and quoted names, which hold no NUL"
)]
fn prepare(query: &str) -> pg_sys::SPIPlanPtr {
    PLANS_PREPARED.with(|n| n.set(n.get() + 1));
    let query = CString::new(query).expect("generated SQL has no NUL");
    // SAFETY: raw SPI inside its own connection; SPI_keepplan moves the plan out of it.
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            pgrx::error!("plwasm: SPI_connect failed");
        }
        let mut arg_types = [pg_sys::TEXTOID];
        let plan = pg_sys::SPI_prepare(query.as_ptr(), 1, arg_types.as_mut_ptr());
        if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
            pgrx::error!("plwasm: could not prepare the JSON result conversion");
        }
        pg_sys::SPI_finish();
        plan
    }
}

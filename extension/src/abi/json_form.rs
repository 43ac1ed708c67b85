//! ABI v1's JSON form: how values of SQL types without a native encoding travel (numeric,
//! date/time, uuid, enums, domains, ranges, composite types and records, arrays other than the
//! packed ones).
//!
//! - Arguments become the JSON Postgres's own `to_json` would print, made with `array_to_json`
//!   (arrays directly, everything else as the only element of a one-element array whose brackets
//!   are then dropped): no per-call catalog access beyond the type cache.
//! - Results are parsed back by Postgres itself, with no SQL statement: Postgres's
//!   `jsonb_to_record` is called directly through a call frame kept per call site that names
//!   the result's row type as its expected row, as a column definition list would (for a
//!   single value, a one-column row `(v <type>)` and the JSON wrapped as `{"v": ...}`). A single
//!   value of a type other than a domain given as a JSON scalar (a string, a number jsonb
//!   prints unchanged, a boolean or null: the common case of numeric, dates, uuid, enums) skips
//!   even that: its text goes straight to the type's input function, which is what
//!   `jsonb_to_record` does with scalars. So a result follows the rules of
//!   `jsonb_populate_record` (domains are checked, nested composites and arrays are built from
//!   objects and arrays), and a value that does not fit is Postgres's own error, with a detail
//!   line naming the function. A row must be a JSON object whose keys are column names (a
//!   missing key is NULL, an unknown key an ERROR); JSON `null` is SQL NULL.
//!
//! Conversions run after the wasm call has returned, never from inside it.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::pg_sys::PgTryBuilder;
use pgrx::{FromDatum, PgLogLevel, PgTupleDesc};

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

/// Makes the JSON form of arguments of one type; the type's properties are looked up once, when
/// the call site is resolved, not per call.
#[derive(Clone, Copy, Debug)]
pub struct JsonEncoder {
    oid: pg_sys::Oid,
    /// An array type (or a domain over one): `array_to_json` takes it as it is.
    is_array: bool,
    len: i16,
    by_val: bool,
    align: std::ffi::c_char,
}

impl JsonEncoder {
    /// The encoder of arguments of type `oid`.
    pub fn new(oid: pg_sys::Oid) -> Self {
        let (mut len, mut by_val, mut align) = (0i16, false, 0 as std::ffi::c_char);
        // SAFETY: syscache lookups that accept any existing type.
        let is_array = unsafe {
            pg_sys::get_typlenbyvalalign(oid, &mut len, &mut by_val, &mut align);
            pg_sys::get_element_type(pg_sys::getBaseType(oid)) != pg_sys::InvalidOid
        };
        Self {
            oid,
            is_array,
            len,
            by_val,
            align,
        }
    }

    /// The JSON form of a non-NULL datum: what `array_to_json` prints for an array, and for
    /// anything else the only element of a one-element array, without the brackets.
    ///
    /// # Safety
    /// `datum` must be a non-NULL value of this encoder's type.
    #[allow(
        clippy::expect_used,
        reason = "invariant: array_to_json of an array is never NULL"
    )]
    pub unsafe fn to_json(&self, datum: pg_sys::Datum) -> Vec<u8> {
        // SAFETY: the caller guarantees the datum's type; array_to_json takes the element type
        // from the array itself.
        unsafe {
            let array = if self.is_array {
                datum
            } else {
                let mut element = datum;
                pg_sys::Datum::from(pg_sys::construct_array(
                    &mut element,
                    1,
                    self.oid,
                    self.len.into(),
                    self.by_val,
                    self.align,
                ))
            };
            let json =
                pgrx::fcinfo::direct_function_call_as_datum(pg_sys::array_to_json, &[Some(array)])
                    .expect("array_to_json of an array is not NULL");
            let text = <&[u8]>::from_datum(json, false).unwrap_or_default();
            if self.is_array {
                text.to_vec()
            } else {
                // "[x]" -> "x"
                text[1..text.len() - 1].to_vec()
            }
        }
    }
}

/// What a result in JSON form becomes.
enum Shape {
    /// One value of type `oid`, decoded as the only column `v` of a one-column row.
    Value {
        by_val: bool,
        len: i16,
        /// Whether a JSON scalar may skip the row and go straight to the input function: not
        /// for domains (a JSON `null` must meet `NOT NULL`, a domain over json keeps strings
        /// as JSON).
        scalars_direct: bool,
    },
    /// A row of the decoder's descriptor: `names` are its columns' names (dropped ones left out).
    Row { names: Vec<String> },
}

/// Parses results in JSON form for one call site (see the module docs).
///
/// `jsonb_to_record` is called directly through a kept `FmgrInfo` and call frame whose
/// `ReturnSetInfo` names the expected row (the blessed descriptor), as a column definition list
/// would; it keeps its own per-call-site cache (column input functions, nested types) in
/// `fn_extra`. Missing keys are filled through each column's input, so domains (`NOT NULL` ones
/// too) are checked. A single value is the column `v` of a one-column row, its JSON wrapped as
/// `{"v": ...}` by `jsonb_set`.
pub struct JsonDecoder {
    /// Owns everything below that Postgres allocated (child of TopMemoryContext).
    memory: pg_sys::MemoryContext,
    /// Where one decode's intermediate values live; reset at the start of each decode.
    scratch: pg_sys::MemoryContext,
    /// A call frame for `jsonb_to_record(jsonb)` (one argument, set per call): its `FmgrInfo`
    /// (`fn_mcxt` = `memory`) and a `ReturnSetInfo` whose `expectedDesc` is `tupdesc`.
    to_record: pg_sys::FunctionCallInfo,
    /// The blessed descriptor of the rows built: the result row, or `(v <type>)` for a value.
    tupdesc: pg_sys::TupleDesc,
    /// For values: `'{}'::jsonb` and the path `'{v}'::text[]` that wrap a value as `{"v": ...}`.
    wrap: Option<(pg_sys::Datum, pg_sys::Datum)>,
    shape: Shape,
    /// Type name for messages.
    type_name: String,
    /// "function f(int) (module "m", export "e")" for error details.
    context: CString,
    /// For rows of a named composite type made by [`Self::for_row_over`]: a call frame for
    /// `jsonb_populate_record(base, jsonb)`, whose expression names the row type (the function
    /// is polymorphic) so that it fills a copy of `base` with the object's keys.
    over: Option<pg_sys::FunctionCallInfo>,
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

thread_local! {
    static DECODERS_MADE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many result decoders this backend has made (tests check it stays one per call site).
pub fn decoders_made() -> u64 {
    DECODERS_MADE.with(|n| n.get())
}

/// A jsonb datum parsed by Postgres's own parser (its errors are Postgres's, with positions).
#[allow(
    clippy::expect_used,
    reason = "invariants: JSON results were checked by values::utf8 to hold no NUL, and jsonb_in returns a value or raises an ERROR"
)]
fn jsonb(text: &str) -> pg_sys::Datum {
    let text = CString::new(text).expect("NUL bytes were rejected before");
    // SAFETY: jsonb_in reads a valid C string and allocates in the current memory context.
    unsafe {
        pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
    }
    .expect("jsonb_in of a string is not NULL")
}

impl JsonDecoder {
    /// A decoder for single values of type `oid`.
    pub fn for_value(oid: pg_sys::Oid, context: String) -> Self {
        let (mut len, mut by_val) = (0i16, false);
        // SAFETY: a one-column descriptor of an existing type, built in the current context
        // (`new` copies it); syscache lookups of that type.
        let (tupdesc, is_domain) = unsafe {
            pg_sys::get_typlenbyval(oid, &mut len, &mut by_val);
            let desc = pg_sys::CreateTemplateTupleDesc(1);
            pg_sys::TupleDescInitEntry(desc, 1, c"v".as_ptr(), oid, -1, 0);
            (desc, pg_sys::get_typtype(oid) as u8 == b'd')
        };
        // SAFETY: a valid descriptor.
        unsafe {
            Self::new(
                tupdesc,
                Shape::Value {
                    by_val,
                    len,
                    scalars_direct: !is_domain,
                },
                type_name(oid, -1),
                context,
            )
        }
    }

    /// A decoder for rows of `tupdesc` (copied and blessed, so the caller's may go away).
    ///
    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor.
    pub unsafe fn for_row(tupdesc: pg_sys::TupleDesc, context: String) -> Self {
        // SAFETY: a valid descriptor (caller's contract).
        let desc = unsafe { PgTupleDesc::from_pg_unchecked(tupdesc) };
        let names: Vec<String> = desc
            .iter()
            .filter(|attr| !attr.is_dropped())
            .map(|attr| attr.name().to_string())
            .collect();
        // SAFETY: a valid descriptor.
        let row_type = match unsafe { (*tupdesc).tdtypeid } {
            // RETURNS TABLE, OUT parameters, a column definition list: name the columns.
            pg_sys::RECORDOID => format!("record ({})", names.join(", ")),
            oid => type_name(oid, -1),
        };
        // SAFETY: a valid descriptor.
        unsafe { Self::new(tupdesc, Shape::Row { names }, row_type, context) }
    }

    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor; it is copied.
    unsafe fn new(
        tupdesc: pg_sys::TupleDesc,
        shape: Shape,
        type_name: String,
        context: String,
    ) -> Self {
        DECODERS_MADE.with(|n| n.set(n.get() + 1));
        // SAFETY: everything is allocated in a context this decoder owns (deleted in Drop);
        // blessing registers a record descriptor's typmod in this backend; the call frame is
        // what LOCAL_FCINFO would make for one argument, with the ReturnSetInfo through which
        // jsonb_to_record learns its result row (get_call_result_type reads expectedDesc).
        unsafe {
            let memory = pg_sys::AllocSetContextCreateExtended(
                pg_sys::TopMemoryContext,
                c"plwasm JSON result decoder".as_ptr(),
                pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
            );
            let scratch = pg_sys::AllocSetContextCreateExtended(
                memory,
                c"plwasm JSON result".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            let old = pg_sys::MemoryContextSwitchTo(memory);
            let tupdesc = pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(tupdesc));
            let flinfo =
                pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()).cast::<pg_sys::FmgrInfo>();
            pg_sys::fmgr_info_cxt(pg_sys::Oid::from(pg_sys::F_JSONB_TO_RECORD), flinfo, memory);
            let rsinfo = pg_sys::palloc0(std::mem::size_of::<pg_sys::ReturnSetInfo>())
                .cast::<pg_sys::ReturnSetInfo>();
            (*rsinfo).type_ = pg_sys::NodeTag::T_ReturnSetInfo;
            (*rsinfo).expectedDesc = tupdesc;
            let to_record = pg_sys::palloc0(
                std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
                    + std::mem::size_of::<pg_sys::NullableDatum>(),
            )
            .cast::<pg_sys::FunctionCallInfoBaseData>();
            (*to_record).flinfo = flinfo;
            (*to_record).nargs = 1;
            (*to_record).fncollation = pg_sys::InvalidOid;
            (*to_record).resultinfo = rsinfo.cast();
            let wrap = match shape {
                Shape::Value { .. } => {
                    let mut key = pg_sys::Datum::from(pg_sys::cstring_to_text(c"v".as_ptr()));
                    let path = pg_sys::construct_array(
                        &mut key,
                        1,
                        pg_sys::TEXTOID,
                        -1,
                        false,
                        b'i' as std::ffi::c_char,
                    );
                    Some((jsonb("{}"), pg_sys::Datum::from(path)))
                }
                Shape::Row { .. } => None,
            };
            pg_sys::MemoryContextSwitchTo(old);
            Self {
                memory,
                scratch,
                to_record,
                tupdesc,
                wrap,
                shape,
                type_name,
                context: CString::new(context).unwrap_or_default(),
                over: None,
            }
        }
    }

    /// A decoder for rows of `tupdesc`, a named composite type (a table's row), that can also
    /// apply changes to a row of it ([`Self::decode_over`]).
    ///
    /// # Safety
    /// `tupdesc` must be a valid tuple descriptor of a named composite type.
    pub unsafe fn for_row_over(tupdesc: pg_sys::TupleDesc, context: String) -> Self {
        // SAFETY: the caller's contract.
        let mut decoder = unsafe { Self::for_row(tupdesc, context) };
        // SAFETY: everything is allocated in the decoder's own context; the call frame is what
        // LOCAL_FCINFO makes for two arguments, and its FmgrInfo's expression (two typed NULL
        // constants) is where jsonb_populate_record learns its argument's row type.
        unsafe {
            let rowtype = (*tupdesc).tdtypeid;
            let old = pg_sys::MemoryContextSwitchTo(decoder.memory);
            let flinfo =
                pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()).cast::<pg_sys::FmgrInfo>();
            let populate = pg_sys::Oid::from(pg_sys::F_JSONB_POPULATE_RECORD);
            pg_sys::fmgr_info_cxt(populate, flinfo, decoder.memory);
            let mut args = pg_sys::lappend(
                std::ptr::null_mut(),
                pg_sys::makeNullConst(rowtype, -1, pg_sys::InvalidOid).cast(),
            );
            args = pg_sys::lappend(
                args,
                pg_sys::makeNullConst(pg_sys::JSONBOID, -1, pg_sys::InvalidOid).cast(),
            );
            let expr = pg_sys::makeFuncExpr(
                populate,
                rowtype,
                args,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            );
            (*flinfo).fn_expr = expr.cast();
            let fcinfo = pg_sys::palloc0(
                std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
                    + 2 * std::mem::size_of::<pg_sys::NullableDatum>(),
            )
            .cast::<pg_sys::FunctionCallInfoBaseData>();
            (*fcinfo).flinfo = flinfo;
            (*fcinfo).nargs = 2;
            (*fcinfo).fncollation = pg_sys::InvalidOid;
            pg_sys::MemoryContextSwitchTo(old);
            decoder.over = Some(fcinfo);
        }
        decoder
    }

    /// The result descriptor of a row decoder.
    pub fn tupdesc(&self) -> Option<pg_sys::TupleDesc> {
        match &self.shape {
            Shape::Row { .. } => Some(self.tupdesc),
            Shape::Value { .. } => None,
        }
    }

    /// Decode one result into `values`/`nulls` (one entry for a value, one per attribute for a
    /// row); returns whether the JSON was `null` (a row is then all NULLs). Values of a row may
    /// point into the decoder's scratch memory: they are valid until its next decode. Postgres's
    /// own conversion errors are raised with a detail line naming the function.
    #[allow(
        clippy::unreachable,
        clippy::expect_used,
        reason = "invariants: value decoders are made with a wrapper, and jsonb_set of non-NULL arguments returns a value"
    )]
    pub fn decode(
        &self,
        json: &str,
        values: &mut Vec<pg_sys::Datum>,
        nulls: &mut Vec<bool>,
    ) -> Result<bool, DecodeError> {
        values.clear();
        nulls.clear();
        match &self.shape {
            Shape::Row { names } => {
                if let RowJson::Null = check_row_keys(json.as_bytes(), names, &self.type_name)? {
                    // SAFETY: the descriptor we own.
                    let natts = unsafe { (*self.tupdesc).natts } as usize;
                    values.resize(natts, pg_sys::Datum::from(0usize));
                    nulls.resize(natts, true);
                    return Ok(true);
                }
                self.guarded(|_| {
                    // SAFETY: see `populate`; the row (in scratch memory) has one entry per
                    // attribute.
                    unsafe { deform(self.populate(jsonb(json)), self.tupdesc, values, nulls) }
                });
                Ok(false)
            }
            Shape::Value {
                by_val,
                len,
                scalars_direct,
            } => {
                let scalar = if *scalars_direct {
                    scalar_input(json)
                } else {
                    None
                };
                let is_null = matches!(scalar, Some(ScalarInput::Null));
                let oid = self.value_type();
                self.guarded(|outer| match scalar {
                    // A JSON scalar: the type's input function, as jsonb_populate_record would
                    // call it, without building a row.
                    Some(ScalarInput::Null) => {
                        values.push(pg_sys::Datum::from(0usize));
                        nulls.push(true);
                    }
                    // SAFETY: the value is made in the caller's context.
                    Some(ScalarInput::Text(input)) => unsafe {
                        pg_sys::MemoryContextSwitchTo(outer);
                        values.push(crate::abi::values::input_text(oid, &input));
                        nulls.push(false);
                    },
                    // SAFETY: see `populate`; the one-column row is built in scratch memory
                    // and its value copied into the caller's context.
                    None => unsafe {
                        let Some((wrapper, path)) = self.wrap else {
                            unreachable!("value decoders have a wrapper")
                        };
                        let wrapped = pgrx::fcinfo::direct_function_call_as_datum(
                            pg_sys::jsonb_set,
                            &[
                                Some(wrapper),
                                Some(path),
                                Some(jsonb(json)),
                                Some(pg_sys::Datum::from(true)),
                            ],
                        )
                        .expect("jsonb_set of non-NULL arguments is not NULL");
                        let (mut one, mut null) = (Vec::with_capacity(1), Vec::with_capacity(1));
                        deform(self.populate(wrapped), self.tupdesc, &mut one, &mut null);
                        pg_sys::MemoryContextSwitchTo(outer);
                        values.push(if null[0] {
                            one[0]
                        } else {
                            copy_datum(one[0], *by_val, *len)
                        });
                        nulls.push(null[0]);
                    },
                });
                Ok(is_null)
            }
        }
    }

    /// Apply `json`, an object whose keys are column names, to `base` (a row of this decoder's
    /// type, made by [`Self::for_row_over`]): the named columns take the object's values (through
    /// their types' input, as `jsonb_populate_record` does), the others keep `base`'s datums as
    /// they are. Values point into scratch memory, valid until the next decode.
    #[allow(
        clippy::expect_used,
        reason = "invariant: fmgr_info set fn_addr (jsonb_populate_record is a built-in function)"
    )]
    pub fn decode_over(
        &self,
        base: pg_sys::Datum,
        json: &str,
        values: &mut Vec<pg_sys::Datum>,
        nulls: &mut Vec<bool>,
    ) -> Result<(), DecodeError> {
        let not_an_object = || DecodeError::NotAnObject {
            type_name: self.type_name.clone(),
        };
        let (Shape::Row { names }, Some(fcinfo)) = (&self.shape, self.over) else {
            return Err(not_an_object());
        };
        if let RowJson::Null = check_row_keys(json.as_bytes(), names, &self.type_name)? {
            return Err(not_an_object());
        }
        values.clear();
        nulls.clear();
        self.guarded(|_| {
            // SAFETY: the kept call frame (see `for_row_over`) with both arguments set, called
            // through pgrx's FFI guard (an ERROR unwinds as a Rust panic, caught by `guarded`);
            // jsonb_populate_record of a non-NULL row and object is a non-NULL row of the type.
            unsafe {
                let args = (*fcinfo).args.as_mut_ptr();
                (*args).value = base;
                (*args).isnull = false;
                (*args.add(1)).value = jsonb(json);
                (*args.add(1)).isnull = false;
                (*fcinfo).isnull = false;
                let function = (*(*fcinfo).flinfo)
                    .fn_addr
                    .expect("jsonb_populate_record has an address");
                let row = pg_sys::ffi::pg_guard_ffi_boundary(|| function(fcinfo));
                deform(row, self.tupdesc, values, nulls)
            }
        });
        Ok(())
    }

    /// The type of a value decoder's column.
    fn value_type(&self) -> pg_sys::Oid {
        // SAFETY: the descriptor we own has at least one attribute for values.
        unsafe { (*(*self.tupdesc).attrs.as_ptr()).atttypid }
    }

    /// `jsonb_to_record(json)` for the decoder's row: a row datum of its type, allocated in the
    /// current memory context. Postgres's ERRORs raised inside become Rust panics here (the
    /// call is guarded), caught by [`Self::guarded`].
    ///
    /// # Safety
    /// `json` is a valid jsonb datum.
    #[allow(
        clippy::expect_used,
        reason = "invariant: fmgr_info set fn_addr (jsonb_to_record is a built-in function)"
    )]
    unsafe fn populate(&self, json: pg_sys::Datum) -> pg_sys::Datum {
        // SAFETY: the kept call frame (see `new`) with its one argument set; the function is
        // called through pgrx's FFI guard, so an ERROR unwinds as a Rust panic instead of a
        // longjmp over Rust frames. jsonb_to_record of a non-NULL object is a non-NULL row.
        unsafe {
            let fcinfo = self.to_record;
            let arg = (*fcinfo).args.as_mut_ptr();
            (*arg).value = json;
            (*arg).isnull = false;
            (*fcinfo).isnull = false;
            let function = (*(*fcinfo).flinfo)
                .fn_addr
                .expect("jsonb_to_record has an address");
            pg_sys::ffi::pg_guard_ffi_boundary(|| function(fcinfo))
        }
    }

    /// Run `convert` in the scratch memory (reset first; `convert` gets the caller's context
    /// and may switch to it), back in the caller's context afterwards. Postgres's own
    /// conversion errors (bad input syntax, domain checks, ...) get a detail line naming the
    /// function; everything else passes unchanged.
    #[allow(
        clippy::unreachable,
        reason = "invariant: an ERROR-level report does not return"
    )]
    fn guarded(&self, convert: impl FnOnce(pg_sys::MemoryContext)) {
        // SAFETY: resetting the scratch memory frees only what earlier decodes left there.
        let outer = unsafe {
            pg_sys::MemoryContextReset(self.scratch);
            pg_sys::MemoryContextSwitchTo(self.scratch)
        };
        let convert = std::panic::AssertUnwindSafe(convert);
        PgTryBuilder::new(move || {
            let convert = convert;
            (convert.0)(outer);
        })
        .catch_others(|caught| {
            // SAFETY: back to the caller's context before re-raising or unwinding further.
            unsafe { pg_sys::MemoryContextSwitchTo(outer) };
            match caught {
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
            }
        })
        .execute();
        // SAFETY: the caller's context again.
        unsafe { pg_sys::MemoryContextSwitchTo(outer) };
    }

    fn context(&self) -> String {
        format!(
            "While converting the JSON result of {} to {}.",
            self.context.to_string_lossy(),
            self.type_name
        )
    }

    /// Decode one non-set result to a datum in the current memory context (`None` for SQL
    /// NULL): a row becomes a composite datum of the decoder's descriptor.
    pub fn decode_datum(&self, json: &str) -> Result<Option<pg_sys::Datum>, DecodeError> {
        let mut values = Vec::new();
        let mut nulls = Vec::new();
        let is_null = self.decode(json, &mut values, &mut nulls)?;
        match &self.shape {
            Shape::Value { .. } => Ok((!nulls[0]).then_some(values[0])),
            Shape::Row { .. } if is_null => Ok(None),
            Shape::Row { .. } => {
                // SAFETY: values and nulls have one entry per attribute of the blessed tupdesc;
                // the tuple is formed in the caller's context.
                unsafe {
                    let tuple = pg_sys::heap_form_tuple(
                        self.tupdesc,
                        values.as_mut_ptr(),
                        nulls.as_mut_ptr(),
                    );
                    Ok(Some(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)))
                }
            }
        }
    }
}

impl Drop for JsonDecoder {
    fn drop(&mut self) {
        // SAFETY: the context holds everything this decoder allocated (the descriptor, the
        // call frame, its FmgrInfo and cache, scratch memory) and is deleted once.
        unsafe { pg_sys::MemoryContextDelete(self.memory) };
    }
}

/// The attributes of a composite datum into `values`/`nulls` (pointing into the datum).
///
/// # Safety
/// `row` is a composite datum of `tupdesc`'s row type.
unsafe fn deform(
    row: pg_sys::Datum,
    tupdesc: pg_sys::TupleDesc,
    values: &mut Vec<pg_sys::Datum>,
    nulls: &mut Vec<bool>,
) {
    // SAFETY: the caller's contract; the datum is a plain (not toasted) row made by
    // jsonb_to_record, and the vectors are sized to the descriptor before deforming.
    unsafe {
        let header = row.cast_mut_ptr::<pg_sys::HeapTupleHeaderData>();
        let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
        tuple.t_len = pgrx::varlena::varsize_any(header.cast()) as u32;
        tuple.t_data = header;
        let natts = (*tupdesc).natts as usize;
        values.resize(natts, pg_sys::Datum::from(0usize));
        nulls.resize(natts, true);
        pg_sys::heap_deform_tuple(&mut tuple, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
}

/// What a JSON scalar gives a type's input function.
enum ScalarInput {
    Null,
    /// A string's unescaped contents, or a number's or boolean's text.
    Text(String),
}

/// The input-function text of a JSON scalar, exactly as `jsonb_populate_record` would pass it
/// (None for arrays, objects, invalid JSON and numbers jsonb would print differently, which take
/// the general path and its error messages).
fn scalar_input(json: &str) -> Option<ScalarInput> {
    let trimmed = json.trim_ascii();
    match trimmed.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(trimmed)
            .ok()
            .filter(|s| !s.contains('\0'))
            .map(ScalarInput::Text),
        b'n' if trimmed == "null" => Some(ScalarInput::Null),
        b't' if trimmed == "true" => Some(ScalarInput::Text(trimmed.to_string())),
        b'f' if trimmed == "false" => Some(ScalarInput::Text(trimmed.to_string())),
        b'-' | b'0'..=b'9' if is_canonical_number(trimmed) => {
            Some(ScalarInput::Text(trimmed.to_string()))
        }
        _ => None,
    }
}

/// Whether `text` is a JSON number that jsonb prints back unchanged: digits without leading
/// zeros, an optional fraction, no exponent, not a negative zero (`1E2` prints as `100`, `-0`
/// as `0`).
fn is_canonical_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = all_digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(all_digits);
    let negative_zero = text.starts_with('-') && digits.bytes().all(|b| matches!(b, b'0' | b'.'));
    well_formed && !negative_zero
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
    // Invalid JSON is left to jsonb's parser, which reports it with its position. Only the
    // keys are kept (the values, however large, are skipped).
    let Ok(object) =
        serde_json::from_slice::<std::collections::HashMap<String, serde::de::IgnoredAny>>(json)
    else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_jsonb_prints_unchanged_skip_the_row() {
        for canonical in [
            "0",
            "7",
            "-7",
            "12.50",
            "-0.5",
            "123456789012345678901234567890.1",
        ] {
            assert!(is_canonical_number(canonical), "{canonical}");
        }
        // jsonb prints these differently (100, 0, 0.0, ...) or they are not JSON numbers.
        for other in [
            "1E2", "1e-3", "-0", "-0.0", "00", "01", "1.", ".5", "-", "1.2.3", "+1",
        ] {
            assert!(!is_canonical_number(other), "{other}");
        }
    }

    #[test]
    fn scalars_for_the_input_function() {
        assert!(matches!(scalar_input(" \"a\\u0062\" "), Some(ScalarInput::Text(t)) if t == "ab"));
        assert!(matches!(scalar_input("null"), Some(ScalarInput::Null)));
        assert!(matches!(scalar_input("true"), Some(ScalarInput::Text(t)) if t == "true"));
        assert!(matches!(scalar_input("3.25"), Some(ScalarInput::Text(t)) if t == "3.25"));
        // The general path: exponents, objects, arrays, invalid JSON, NUL in a string.
        for general in ["1e5", "{}", "[1]", "tru", "\"a\\u0000\"", "nul"] {
            assert!(scalar_input(general).is_none(), "{general}");
        }
    }
}

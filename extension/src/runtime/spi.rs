//! Running the read-only queries of `plwasm.query` and its cursors (`query.rs`) through SPI,
//! while wasm frames are live on the stack.
//!
//! Each host call runs in an internal subtransaction, with SPI connected inside it and the
//! subtransaction read-only (`XactReadOnly`), as PL/Python runs `plpy.execute`. A Postgres ERROR
//! inside it (a syntax error, division by zero, permission denied, a cancel or
//! statement_timeout) is caught here: the subtransaction is rolled back, which releases what the
//! query held (locks, snapshots, portals, SPI's state), and the error comes back as a
//! [`QueryError`] the host function turns into a trap; the call handler raises it again, with
//! its own SQLSTATE, after the wasm call has returned. No ERROR ever longjmps across wasm frames
//! (host functions run on the main stack, so Postgres's stack depth check holds here).
//!
//! A query is one `SELECT` (or `VALUES`, `TABLE`) statement, parsed with typed parameters and
//! run through a no-scroll cursor, its rows turned into JSON objects by `row_to_json`. Three
//! fences keep it read-only: the statement's kind is checked before it runs; SPI's read-only
//! mode refuses data-modifying CTEs and `FOR UPDATE` (for functions that are not VOLATILE,
//! which also run it in the calling statement's snapshot, like PL/pgSQL); and the read-only
//! subtransaction refuses writes from the functions a query calls (25006).

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::{IntoDatum, PgList, PgSqlErrorCode};

/// A Postgres ERROR raised by a query (or our refusal of one), to be raised again after the
/// wasm call returns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub sqlstate: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The statement that failed (set by the host function), for the DETAIL.
    pub statement: Option<String>,
}

impl QueryError {
    fn new(sqlstate: PgSqlErrorCode, message: String, hint: Option<&str>) -> Self {
        Self {
            sqlstate,
            message,
            detail: None,
            hint: hint.map(str::to_string),
            statement: None,
        }
    }

    fn caught(caught: CaughtError) -> Self {
        match caught {
            CaughtError::PostgresError(report)
            | CaughtError::ErrorReport(report)
            | CaughtError::RustPanic {
                ereport: report, ..
            } => Self {
                sqlstate: report.sql_error_code(),
                message: report.message().to_string(),
                detail: report.detail().map(str::to_string),
                hint: report.hint().map(str::to_string),
                statement: None,
            },
        }
    }

    /// Raise this error from inside [`in_subtransaction`]'s work (it is caught there).
    #[allow(
        clippy::unreachable,
        reason = "invariant: an ERROR-level report does not return"
    )]
    fn raise(self) -> ! {
        let mut report =
            pgrx::pg_sys::panic::ErrorReport::new(self.sqlstate, self.message, "plwasm");
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(pgrx::PgLogLevel::ERROR);
        unreachable!("ERROR-level reports do not return")
    }
}

/// One parameter of a query: its type (by its JSON kind) and value.
pub struct Param {
    pub type_oid: pg_sys::Oid,
    /// None: SQL NULL (of type text).
    pub value: Option<ParamValue>,
}

pub enum ParamValue {
    Bool(bool),
    Int(i64),
    /// A number that is not an integer, as JSON wrote it (becomes numeric).
    Number(String),
    Text(String),
    /// An array or object (becomes jsonb).
    Json(serde_json::Value),
}

impl Param {
    /// A parameter from one element of the JSON array of parameters: null is a NULL text, a
    /// boolean a boolean, an integer a bigint, another number a numeric, a string a text, an
    /// array or object a jsonb.
    pub fn from_json(value: serde_json::Value) -> Self {
        use serde_json::Value as V;
        let (type_oid, value) = match value {
            V::Null => (pg_sys::TEXTOID, None),
            V::Bool(b) => (pg_sys::BOOLOID, Some(ParamValue::Bool(b))),
            V::Number(n) => match n.as_i64() {
                Some(i) => (pg_sys::INT8OID, Some(ParamValue::Int(i))),
                None => (pg_sys::NUMERICOID, Some(ParamValue::Number(n.to_string()))),
            },
            V::String(s) => (pg_sys::TEXTOID, Some(ParamValue::Text(s))),
            other => (pg_sys::JSONBOID, Some(ParamValue::Json(other))),
        };
        Self { type_oid, value }
    }

    /// The datum, made in the current memory context.
    fn datum(&self) -> Option<pg_sys::Datum> {
        match self.value.as_ref()? {
            ParamValue::Bool(b) => b.into_datum(),
            ParamValue::Int(i) => i.into_datum(),
            ParamValue::Number(text) => {
                let numeric: pgrx::AnyNumeric = text.parse().ok()?;
                numeric.into_datum()
            }
            ParamValue::Text(s) => s.as_str().into_datum(),
            ParamValue::Json(value) => pgrx::JsonB(value.clone()).into_datum(),
        }
    }
}

/// Rows fetched from the cursor at a time while a whole query is read.
const BATCH_ROWS: i64 = 1000;

/// Run `work` with SPI connected in a read-only internal subtransaction; a Postgres ERROR inside
/// it rolls the subtransaction back and comes back as a [`QueryError`].
fn in_subtransaction<R>(work: impl FnOnce() -> R) -> Result<R, QueryError> {
    // SAFETY: plain reads of backend state.
    if unsafe { pg_sys::IsInParallelMode() } {
        return Err(QueryError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            "plwasm.query cannot run during a parallel operation".into(),
            Some("Declare the function PARALLEL RESTRICTED or PARALLEL UNSAFE."),
        ));
    }
    // SAFETY: plain reads of the caller's context and resource owner, restored below.
    let (old_context, old_owner) =
        unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    // Back in the caller's context and owner, after the subtransaction ended either way.
    let restore = move || {
        // SAFETY: the context and owner current when this call began, which outlive it.
        unsafe {
            pg_sys::MemoryContextSwitchTo(old_context);
            pg_sys::CurrentResourceOwner = old_owner;
        }
    };
    // Starting it may fail (e.g. too many subtransactions): then there is none to end.
    PgTryBuilder::new(|| {
        // SAFETY: the PL/Python sequence (plpy_spi.c): the subtransaction starts in the
        // caller's memory context.
        unsafe { pg_sys::BeginInternalSubTransaction(std::ptr::null()) };
        Ok(())
    })
    .catch_others(|caught| Err(QueryError::caught(caught)))
    .execute()?;
    restore();
    // SAFETY: restored when the subtransaction ends (xact.c saves it per subtransaction).
    unsafe { pg_sys::XactReadOnly = true };
    let work = std::panic::AssertUnwindSafe(work);
    // The subtransaction's commit is inside the try too (as in PL/Python): an ERROR raised while
    // it commits (a foreign data wrapper releasing its remote savepoint, say) rolls it back like
    // any other, instead of leaving it on the transaction's stack.
    PgTryBuilder::new(move || {
        let work = work;
        // SAFETY: connected and finished in this subtransaction (a rollback disconnects), which
        // is then committed.
        unsafe { pg_sys::SPI_connect() };
        let result = (work.0)();
        // SAFETY: see above.
        unsafe {
            pg_sys::SPI_finish();
            pg_sys::ReleaseCurrentSubTransaction();
        }
        restore();
        Ok(result)
    })
    .catch_others(move |caught| {
        // SAFETY: the subtransaction begun above is still the current one (an ERROR while
        // committing is raised before it is popped).
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        restore();
        Err(QueryError::caught(caught))
    })
    .execute()
}

/// The name of a command tag (`INSERT`, `SELECT`, ...).
fn tag_name(tag: pg_sys::CommandTag::Type) -> String {
    // SAFETY: returns a static string for every tag.
    unsafe { CStr::from_ptr(pg_sys::GetCommandTagName(tag)) }
        .to_string_lossy()
        .into_owned()
}

/// Parse `sql` with `params` and open a no-scroll cursor over it (inside
/// [`in_subtransaction`]); ERRORs unless it is one read-only statement.
fn open(sql: &CStr, params: &[Param], read_only: bool) -> pg_sys::Portal {
    let mut types: Vec<pg_sys::Oid> = params.iter().map(|p| p.type_oid).collect();
    // SAFETY: a NUL-terminated statement and one type per parameter; the plan lives in SPI's
    // memory until SPI_finish (the cursor copies it).
    let plan = unsafe {
        pg_sys::SPI_prepare_cursor(
            sql.as_ptr(),
            types.len() as i32,
            types.as_mut_ptr(),
            pg_sys::CURSOR_OPT_NO_SCROLL as i32,
        )
    };
    if plan.is_null() {
        // SAFETY: SPI_result is set when SPI_prepare_cursor returns NULL.
        let code = unsafe { CStr::from_ptr(pg_sys::SPI_result_code_string(pg_sys::SPI_result)) };
        QueryError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "plwasm.query: SPI_prepare failed: {}",
                code.to_string_lossy()
            ),
            None,
        )
        .raise();
    }
    // SAFETY: the plan's list of CachedPlanSources, valid while the plan is.
    let sources = unsafe {
        PgList::<pg_sys::CachedPlanSource>::from_pg(pg_sys::SPI_plan_get_plan_sources(plan))
    };
    if sources.len() != 1 {
        QueryError::new(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            format!(
                "plwasm.query runs one statement at a time, not {}",
                sources.len()
            ),
            None,
        )
        .raise();
    }
    let source = sources.get_ptr(0).unwrap_or(std::ptr::null_mut());
    // SAFETY: the one plan source, just checked to exist; its raw parse tree is a RawStmt.
    let (tag, is_select) = unsafe {
        let raw = (*source).raw_parse_tree;
        let is_select = !raw.is_null()
            && !(*raw).stmt.is_null()
            && (*(*raw).stmt).type_ == pg_sys::NodeTag::T_SelectStmt;
        ((*source).commandTag, is_select)
    };
    if tag != pg_sys::CommandTag::CMDTAG_SELECT || !is_select {
        QueryError::new(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!(
                "plwasm.query runs read-only queries, and {} is not one",
                tag_name(tag)
            ),
            Some("A query is one SELECT, VALUES or TABLE statement."),
        )
        .raise();
    }
    let mut values: Vec<pg_sys::Datum> = Vec::with_capacity(params.len());
    let mut nulls: Vec<std::ffi::c_char> = Vec::with_capacity(params.len() + 1);
    for param in params {
        match param.datum() {
            Some(datum) => {
                values.push(datum);
                nulls.push(b' ' as std::ffi::c_char);
            }
            None => {
                values.push(pg_sys::Datum::from(0usize));
                nulls.push(b'n' as std::ffi::c_char);
            }
        }
    }
    nulls.push(0);
    // SAFETY: one value and null flag per parameter of the plan; the cursor copies them.
    unsafe {
        pg_sys::SPI_cursor_open(
            std::ptr::null(),
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            read_only,
        )
    }
}

/// The user-defined type inside values of type `oid` (with `typmod`; a domain, an array's
/// elements, a row's columns, recursively) that has a cast to json, if any: `row_to_json` would
/// call that cast, code of the type's owner, as the role running the query.
fn json_cast_inside(oid: pg_sys::Oid, typmod: i32, depth: u32) -> Option<pg_sys::Oid> {
    if depth > 32 {
        return None;
    }
    // SAFETY: syscache and type cache look-ups of existing types; a row type's descriptor is
    // released after its columns were looked at.
    unsafe {
        let base = pg_sys::getBaseType(oid);
        let element = pg_sys::get_element_type(base);
        if element != pg_sys::InvalidOid {
            return json_cast_inside(element, -1, depth + 1);
        }
        if pg_sys::type_is_rowtype(base) {
            // An anonymous record's columns are known only per value (not checked).
            if base == pg_sys::RECORDOID && typmod < 0 {
                return None;
            }
            let desc = pg_sys::lookup_rowtype_tupdesc(base, typmod);
            let found = pgrx::PgTupleDesc::from_pg_unchecked(desc)
                .iter()
                .filter(|attr| !attr.is_dropped())
                .find_map(|attr| json_cast_inside(attr.atttypid, attr.atttypmod, depth + 1));
            if (*desc).tdrefcount >= 0 {
                pg_sys::DecrTupleDescRefCount(desc);
            }
            return found;
        }
        if u32::from(base) < pg_sys::FirstNormalObjectId {
            return None;
        }
        let mut function = pg_sys::InvalidOid;
        let path = pg_sys::find_coercion_pathway(
            pg_sys::JSONOID,
            base,
            pg_sys::CoercionContext::COERCION_EXPLICIT,
            &mut function,
        );
        (path == pg_sys::CoercionPathType::COERCION_PATH_FUNC && function != pg_sys::InvalidOid)
            .then_some(base)
    }
}

/// Refuse rows with a column whose conversion to JSON would run a user's cast (see
/// [`json_cast_inside`]) (inside [`in_subtransaction`]).
fn refuse_json_casts(desc: pg_sys::TupleDesc) {
    // SAFETY: the descriptor of the rows just fetched.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
    for attr in desc.iter().filter(|attr| !attr.is_dropped()) {
        if let Some(oid) = json_cast_inside(attr.atttypid, attr.atttypmod, 0) {
            QueryError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "plwasm.query cannot return column \"{}\": type {} has a cast to json, which \
                     would run code of the type's owner as the role running the query",
                    attr.name(),
                    crate::call::binding::type_name(oid)
                ),
                Some("Convert the column to text in the query (column::text)."),
            )
            .raise();
        }
    }
}

/// Fetch up to `limit` rows (all if None) from `portal` as a JSON array of objects (inside
/// [`in_subtransaction`]); ERROR 54000 if it would pass `max_bytes`.
fn fetch(portal: pg_sys::Portal, limit: Option<i64>, max_bytes: usize) -> Vec<u8> {
    let mut json = Vec::from(*b"[");
    let mut count = 0u64;
    // SAFETY: a child of SPI's procedure context, freed with it at SPI_finish.
    let scratch = unsafe {
        pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"plwasm query rows".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    };
    loop {
        let want = match limit {
            Some(limit) => (limit - count as i64).min(BATCH_ROWS),
            None => BATCH_ROWS,
        };
        if want <= 0 {
            break;
        }
        // SAFETY: an open portal; the rows land in SPI_tuptable (SPI's memory).
        let (table, fetched) = unsafe {
            pg_sys::SPI_cursor_fetch(portal, true, want);
            (pg_sys::SPI_tuptable, pg_sys::SPI_processed)
        };
        if table.is_null() || fetched == 0 {
            break;
        }
        if count == 0 {
            // SAFETY: the tuple table SPI just filled.
            refuse_json_casts(unsafe { (*table).tupdesc });
        }
        // SAFETY: the tuple table SPI just filled: `fetched` tuples of its descriptor, each
        // turned into a row datum of the (blessed) descriptor and given to row_to_json, all in
        // scratch memory reset per batch.
        unsafe {
            let desc = pg_sys::BlessTupleDesc((*table).tupdesc);
            let old = pg_sys::MemoryContextSwitchTo(scratch);
            for i in 0..fetched as usize {
                let tuple = *(*table).vals.add(i);
                let row = pg_sys::heap_copy_tuple_as_datum(tuple, desc);
                let text =
                    pgrx::fcinfo::direct_function_call_as_datum(pg_sys::row_to_json, &[Some(row)])
                        .unwrap_or(pg_sys::Datum::from(0usize));
                let bytes = <&[u8] as pgrx::FromDatum>::from_datum(text, false).unwrap_or_default();
                if json.len() + bytes.len() + 2 > max_bytes {
                    pg_sys::MemoryContextSwitchTo(old);
                    QueryError::new(
                        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        format!(
                            "plwasm.query: the result is larger than the module's memory may be \
                             ({max_bytes} bytes, wasm.max_memory)"
                        ),
                        Some("Read large results with a cursor (plwasm.cursor_open), a batch at a time."),
                    )
                    .raise();
                }
                if count > 0 {
                    json.push(b',');
                }
                json.extend_from_slice(bytes);
                count += 1;
            }
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::MemoryContextReset(scratch);
            pg_sys::SPI_freetuptable(table);
        }
        if (fetched as i64) < want {
            break;
        }
    }
    json.push(b']');
    json
}

/// Run `sql` (one read-only statement) with `params` and return all its rows; `read_only`: in
/// the calling statement's snapshot, with SPI's read-only checks (functions that are not
/// VOLATILE).
pub fn query(
    sql: &CStr,
    params: &[Param],
    read_only: bool,
    max_bytes: usize,
) -> Result<Vec<u8>, QueryError> {
    in_subtransaction(|| {
        let portal = open(sql, params, read_only);
        let rows = fetch(portal, None, max_bytes);
        // SAFETY: the portal opened above.
        unsafe { pg_sys::SPI_cursor_close(portal) };
        rows
    })
}

/// Open a cursor over `sql` (one read-only statement) with `params`; returns its portal's name.
/// The portal outlives the subtransaction (it passes to the calling one); [`close`] it.
pub fn cursor_open(sql: &CStr, params: &[Param], read_only: bool) -> Result<CString, QueryError> {
    in_subtransaction(|| {
        let portal = open(sql, params, read_only);
        // SAFETY: an open portal's name.
        unsafe { CStr::from_ptr((*portal).name) }.to_owned()
    })
}

/// Fetch up to `rows` rows from the cursor `name`.
pub fn cursor_fetch(name: &CStr, rows: i64, max_bytes: usize) -> Result<Vec<u8>, QueryError> {
    in_subtransaction(|| {
        // SAFETY: finds a portal by name (NULL if there is none).
        let portal = unsafe { pg_sys::SPI_cursor_find(name.as_ptr()) };
        if portal.is_null() {
            QueryError::new(
                PgSqlErrorCode::ERRCODE_INVALID_CURSOR_NAME,
                "plwasm.cursor_fetch: the cursor is closed".into(),
                None,
            )
            .raise();
        }
        fetch(portal, Some(rows), max_bytes)
    })
}

/// Close the cursor `name` if it is still open (the caller's transaction may have closed it).
pub fn close(name: &CStr) {
    // SAFETY: finds a portal by name and drops it; neither runs user code.
    unsafe {
        let portal = pg_sys::GetPortalByName(name.as_ptr());
        if !portal.is_null() {
            pg_sys::SPI_cursor_close(portal);
        }
    }
}

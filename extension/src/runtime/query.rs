//! The query functions of the `plwasm` host API: read-only SQL from wasm, as the calling role,
//! for modules with the `query` capability (`catalog/capabilities.rs`).
//!
//! | import | signature | effect |
//! |---|---|---|
//! | `query(sql_ptr, sql_len, params_ptr, params_len)` | `(i32, i32, i32, i32) -> i32` | runs one read-only statement with the parameters (a JSON array, or `len` 0 for none); returns the byte length of its rows (a JSON array of objects), which `query_read` copies out |
//! | `query_read(ptr, len)` | `(i32, i32) -> i32` | copies up to `len` bytes of what the last `query` or `cursor_fetch` returned to `ptr`; returns how many |
//! | `cursor_open(sql_ptr, sql_len, params_ptr, params_len)` | `(i32, i32, i32, i32) -> i32` | opens a cursor over one read-only statement; returns its handle |
//! | `cursor_fetch(handle, rows)` | `(i32, i32) -> i32` | fetches up to `rows` rows; returns their byte length (`[]`, 2 bytes, at the end) for `query_read` |
//! | `cursor_close(handle)` | `(i32) -> ()` | closes the cursor (all are closed when the call ends) |
//!
//! Every Postgres ERROR of a query (and every refusal: no capability, not read-only, a bad
//! argument) ends the call: the guest is trapped and the call handler raises the error again,
//! with its own SQLSTATE, after the wasm call returned (see `spi.rs`).

use std::ffi::CString;

use pgrx::PgSqlErrorCode;
use wasmer::{FunctionEnvMut, Module, RuntimeError, Type, Value};

use crate::runtime::guest::{arg_i32, bytes_cost, in_bounds, view_read, view_write, GuestCtx};
use crate::runtime::spi::{self, Param, QueryError};

use Type::I32;

/// The query functions (import module `plwasm`): name, parameters, results.
pub const FUNCTIONS: &[(&str, &[Type], &[Type])] = &[
    ("query", &[I32, I32, I32, I32], &[I32]),
    ("query_read", &[I32, I32], &[I32]),
    ("cursor_open", &[I32, I32, I32, I32], &[I32]),
    ("cursor_fetch", &[I32, I32], &[I32]),
    ("cursor_close", &[I32], &[]),
];

/// Most parameters one query may have (Postgres's own limit).
const MAX_PARAMS: usize = 65535;
/// Most rows one `cursor_fetch` may ask for.
const MAX_FETCH_ROWS: i32 = 100_000;
/// Most cursors one call may have open.
const MAX_CURSORS: usize = 64;

/// Whether `module` imports any of the query functions.
pub fn imports_query(module: &Module) -> bool {
    module.imports().any(|i| {
        i.module() == crate::runtime::host_api::MODULE
            && FUNCTIONS.iter().any(|(name, _, _)| *name == i.name())
    })
}

/// [`imports_query`] of a module's bytes (without compiling them); false if they do not parse.
pub fn imports_query_bytes(bytes: &[u8]) -> bool {
    use wasmer::wasmparser::{Parser, Payload, TypeRef};
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::ImportSection(reader)) = payload else {
            continue;
        };
        for import in reader.into_imports().flatten() {
            if import.module == crate::runtime::host_api::MODULE
                && matches!(import.ty, TypeRef::Func(_))
                && FUNCTIONS.iter().any(|(name, _, _)| *name == import.name)
            {
                return true;
            }
        }
    }
    false
}

/// What the current call may do with queries (set by the call handler for each call).
#[derive(Clone, Debug)]
pub struct QueryPolicy {
    /// Err(why) when the module may not query.
    pub allowed: Result<(), String>,
    /// Run in the calling statement's snapshot with SPI's read-only checks (the SQL function is
    /// not VOLATILE).
    pub read_only: bool,
    /// The most bytes one result may have (the module's memory cap).
    pub max_bytes: usize,
    /// The module's name (None for inline modules), for messages.
    pub module: Option<String>,
}

/// The query state of an instance's current call.
#[derive(Default)]
pub struct QueryCtx {
    /// None outside a call (e.g. the start function): queries are refused.
    pub policy: Option<QueryPolicy>,
    /// What the last `query` or `cursor_fetch` returned, for `query_read`.
    pending: Vec<u8>,
    /// The portal names of this call's cursors, by handle; None once closed.
    cursors: Vec<Option<CString>>,
}

impl QueryCtx {
    /// Start a call with `policy`.
    pub fn begin(&mut self, policy: QueryPolicy) {
        self.policy = Some(policy);
        self.pending = Vec::new();
        self.cursors.clear();
    }

    /// End the call: close the cursors it left open. After the wasm call returned.
    pub fn end(&mut self) {
        self.policy = None;
        self.pending = Vec::new();
        for name in self.cursors.drain(..).flatten() {
            spi::close(&name);
        }
    }
}

fn refused(sqlstate: PgSqlErrorCode, message: String, hint: Option<&str>) -> RuntimeError {
    RuntimeError::user(Box::new(QueryError {
        sqlstate,
        message,
        detail: None,
        hint: hint.map(str::to_string),
        statement: None,
    }))
}

/// Run one of [`FUNCTIONS`] (dispatched from `host_api.rs`).
pub fn call(
    name: &str,
    mut env: FunctionEnvMut<GuestCtx>,
    args: &[Value],
) -> Result<Vec<Value>, RuntimeError> {
    let (ctx, store) = env.data_and_store_mut();
    ctx.charge(1)?;
    let policy = match &ctx.query.policy {
        None => {
            return Err(refused(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("plwasm.{name} can only be called during a call of a SQL function"),
                None,
            ))
        }
        Some(QueryPolicy {
            allowed: Err(why),
            module,
            ..
        }) => {
            let hint = module.as_ref().map(|module| {
                format!(
                    "A superuser or a member of wasm_capabilities can allow it: \
                     SELECT wasm.set_capabilities({}, '{{query}}').",
                    pgrx::spi::quote_literal(module)
                )
            });
            return Err(refused(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied to run queries from wasm: {why}"),
                hint.as_deref(),
            ));
        }
        Some(policy) => policy.clone(),
    };
    match name {
        "query" | "cursor_open" => {
            let sql = read_sql(ctx, &store, arg_i32(args, 0), arg_i32(args, 1))?;
            let params = read_params(ctx, &store, arg_i32(args, 2), arg_i32(args, 3))?;
            let failed = |mut e: QueryError| {
                e.statement = Some(sql.to_string_lossy().into_owned());
                RuntimeError::user(Box::new(e))
            };
            if name == "query" {
                let rows = spi::query(&sql, &params, policy.read_only, policy.max_bytes)
                    .map_err(failed)?;
                pending(ctx, rows)
            } else {
                if ctx.query.cursors.iter().flatten().count() >= MAX_CURSORS {
                    return Err(refused(
                        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        format!("plwasm.cursor_open: a call may have at most {MAX_CURSORS} cursors open"),
                        None,
                    ));
                }
                let portal = spi::cursor_open(&sql, &params, policy.read_only).map_err(failed)?;
                ctx.query.cursors.push(Some(portal));
                Ok(vec![Value::I32(ctx.query.cursors.len() as i32 - 1)])
            }
        }
        "cursor_fetch" => {
            let portal = cursor(ctx, arg_i32(args, 0))?;
            let rows = arg_i32(args, 1);
            if !(1..=MAX_FETCH_ROWS).contains(&rows) {
                return Err(refused(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "plwasm.cursor_fetch: rows must be from 1 to {MAX_FETCH_ROWS}, not {rows}"
                    ),
                    None,
                ));
            }
            let rows = spi::cursor_fetch(&portal, i64::from(rows), policy.max_bytes)
                .map_err(|e| RuntimeError::user(Box::new(e)))?;
            pending(ctx, rows)
        }
        "cursor_close" => {
            let handle = arg_i32(args, 0);
            let portal = cursor(ctx, handle)?;
            spi::close(&portal);
            ctx.query.cursors[handle as usize] = None;
            Ok(vec![])
        }
        "query_read" => {
            let (ptr, len) = (arg_i32(args, 0), arg_i32(args, 1).max(0) as usize);
            let n = len.min(ctx.query.pending.len());
            ctx.charge(bytes_cost(n as u64))?;
            if view_write(ctx, &store, ptr, &ctx.query.pending[..n])
                != crate::runtime::guest::SUCCESS
            {
                return Err(refused(
                    PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
                    "plwasm.query_read: the buffer is outside the module's memory".into(),
                    None,
                ));
            }
            ctx.query.pending.drain(..n);
            Ok(vec![Value::I32(n as i32)])
        }
        _ => Err(RuntimeError::new(format!(
            "plwasm.{name} is not a host function"
        ))),
    }
}

/// Keep `bytes` for `query_read`; their length is the host function's result.
fn pending(ctx: &mut GuestCtx, bytes: Vec<u8>) -> Result<Vec<Value>, RuntimeError> {
    let len = i32::try_from(bytes.len()).map_err(|_| {
        refused(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "plwasm.query: the result is larger than 2GB".into(),
            None,
        )
    })?;
    ctx.query.pending = bytes;
    Ok(vec![Value::I32(len)])
}

/// The portal name of an open cursor of this call.
fn cursor(ctx: &GuestCtx, handle: i32) -> Result<CString, RuntimeError> {
    usize::try_from(handle)
        .ok()
        .and_then(|h| ctx.query.cursors.get(h).cloned().flatten())
        .ok_or_else(|| {
            refused(
                PgSqlErrorCode::ERRCODE_INVALID_CURSOR_NAME,
                format!("plwasm: {handle} is not an open cursor of this call"),
                None,
            )
        })
}

/// Copy `len` bytes at `ptr` out of the guest (checked against its memory first), charging fuel.
fn read_bytes(
    ctx: &GuestCtx,
    store: &impl wasmer::AsStoreRef,
    ptr: i32,
    len: i32,
    what: &str,
) -> Result<Vec<u8>, RuntimeError> {
    let len = len.max(0) as u32;
    if !in_bounds(ctx, store, ptr as u32, len) {
        return Err(refused(
            PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            format!("plwasm.query: the {what} is outside the module's memory"),
            None,
        ));
    }
    ctx.charge(bytes_cost(u64::from(len)))?;
    let mut bytes = vec![0u8; len as usize];
    view_read(ctx, store, ptr as u32, &mut bytes);
    Ok(bytes)
}

fn read_sql(
    ctx: &GuestCtx,
    store: &impl wasmer::AsStoreRef,
    ptr: i32,
    len: i32,
) -> Result<CString, RuntimeError> {
    let bytes = read_bytes(ctx, store, ptr, len, "query")?;
    let bad = |why: &str| {
        refused(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("plwasm.query: the query {why}"),
            None,
        )
    };
    std::str::from_utf8(&bytes).map_err(|_| bad("is not valid UTF-8"))?;
    CString::new(bytes).map_err(|_| bad("contains a NUL byte"))
}

fn read_params(
    ctx: &GuestCtx,
    store: &impl wasmer::AsStoreRef,
    ptr: i32,
    len: i32,
) -> Result<Vec<Param>, RuntimeError> {
    if len <= 0 {
        return Ok(Vec::new());
    }
    let bytes = read_bytes(ctx, store, ptr, len, "parameter list")?;
    let bad = |why: String| {
        refused(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("plwasm.query: the parameters {why}"),
            Some("Parameters are a JSON array: [1, \"text\", null, {\"a\": 1}] for $1, $2, ..."),
        )
    };
    let values = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Array(values)) => values,
        Ok(serde_json::Value::Null) => Vec::new(),
        Ok(_) => return Err(bad("are not a JSON array".into())),
        Err(e) => return Err(bad(format!("are not JSON: {e}"))),
    };
    if values.len() > MAX_PARAMS {
        return Err(bad(format!("are more than {MAX_PARAMS}")));
    }
    if values
        .iter()
        .any(|v| matches!(v, serde_json::Value::String(s) if s.contains('\0')))
    {
        return Err(bad("contain a string with a NUL character".into()));
    }
    Ok(values.into_iter().map(Param::from_json).collect())
}

//! The `plwasm` host API (ABI v1): what a module may import from module `plwasm`.
//!
//! | import | signature | effect |
//! |---|---|---|
//! | `arg_is_null(index)` | `(i32) -> i32` | 1 if argument `index` (from 0) of this call is NULL |
//! | `return_null()` | `() -> ()` | this call returns NULL (its wasm result is ignored) |
//! | `log(level, ptr, len)` | `(i32, i32, i32) -> ()` | a message: 0 DEBUG, 1 LOG, 2 INFO, 3 NOTICE, 4 WARNING |
//! | `error(ptr, len)` | `(i32, i32) -> ()` | ends the call with an ERROR carrying the message (P0001) |
//! | `error_code(code_ptr, code_len, ptr, len)` | `(i32, i32, i32, i32) -> ()` | the same, with a chosen SQLSTATE |
//! | `random_u64()` | `() -> i64` | 64 random bits from the operating system (`getrandom`) |
//! | `transaction_id()` | `() -> i64` | this backend's local transaction id: the same for every call of one transaction, never repeated by the backend (the SDK drops aggregate states of finished transactions with it) |
//! | `panic(ptr, len, file_ptr, file_len, line)` | `(i32, i32, i32, i32, i32) -> ()` | ends the call with a panic ERROR (38000) naming where it panicked (`file_len` 0: unknown) |
//! | `emit_i32/i64/f32/f64(v)`, `emit_bytes(ptr, len)`, `emit_null()` | | one row of a `RETURNS SETOF` function |
//! | `query`, `query_read`, `cursor_open`, `cursor_fetch`, `cursor_close` | | read-only SQL, for modules with the `query` capability (`query.rs`) |
//!
//! Like WASI, these only record state ([`GuestCtx`]) or unwind the guest: messages are reported
//! and errors raised after the call has returned, never while wasm frames are live.

use wasmer::{
    FunctionEnv, FunctionEnvMut, FunctionType, Imports, Module, RuntimeError, Store, Type, Value,
};

use crate::runtime::backtrace::shown;
use crate::runtime::guest::{
    self, arg_i32, bytes_cost, in_bounds, read_message, view_read, GuestCtx, MAX_LOGS,
    MAX_LOG_BYTES, MAX_MESSAGE_BYTES,
};
use crate::runtime::spool::{SpoolPtr, MAX_ROW_BYTES};

/// The host API's import module name.
pub const MODULE: &str = "plwasm";

/// The longest file name a panic location may have (in bytes); longer ones are ignored.
const MAX_PANIC_FILE_BYTES: i32 = 1024;

use Type::I32;

const FUNCTIONS: guest::HostTable = &[
    ("emit_i32", &[I32], &[]),
    ("emit_i64", &[Type::I64], &[]),
    ("emit_f32", &[Type::F32], &[]),
    ("emit_f64", &[Type::F64], &[]),
    ("emit_bytes", &[I32, I32], &[]),
    ("emit_null", &[], &[]),
    ("arg_is_null", &[I32], &[I32]),
    ("return_null", &[], &[]),
    ("log", &[I32, I32, I32], &[]),
    ("error", &[I32, I32], &[]),
    ("error_code", &[I32, I32, I32, I32], &[]),
    ("panic", &[I32, I32, I32, I32, I32], &[]),
    ("transaction_id", &[], &[Type::I64]),
    ("random_u64", &[], &[Type::I64]),
];

/// Whether the host API provides `module`.`name` with signature `ty`.
pub fn provides(module: &str, name: &str, ty: &FunctionType) -> bool {
    guest::provides(FUNCTIONS, MODULE, module, name, ty)
        || guest::provides(crate::runtime::query::FUNCTIONS, MODULE, module, name, ty)
}

/// Whether `module` can see NULL arguments (it imports `plwasm.arg_is_null`).
pub fn is_null_aware(module: &Module) -> bool {
    module
        .imports()
        .any(|i| i.module() == MODULE && i.name() == "arg_is_null")
}

/// An ERROR the guest raised through `plwasm.error` / `plwasm.error_code`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GuestRaised {
    /// A valid SQLSTATE, or None for the default (P0001).
    pub sqlstate: Option<[u8; 5]>,
    pub message: String,
    /// Set when the guest asked for an invalid SQLSTATE.
    pub bad_sqlstate: Option<String>,
    /// Set when the guest panicked (`plwasm.panic`) rather than returned an error.
    pub panic: Option<Panic>,
}

/// Where a guest panicked.
#[derive(Debug)]
pub struct Panic {
    /// `file:line`, when the guest said.
    pub location: Option<String>,
}

/// Add the host API functions `module` imports to `imports`.
pub fn add_imports(
    store: &mut Store,
    env: &FunctionEnv<GuestCtx>,
    module: &Module,
    imports: &mut Imports,
) {
    guest::add_imports(store, env, module, imports, MODULE, FUNCTIONS, call);
    guest::add_imports(
        store,
        env,
        module,
        imports,
        MODULE,
        crate::runtime::query::FUNCTIONS,
        crate::runtime::query::call,
    );
}

fn call(
    name: &str,
    mut env: FunctionEnvMut<GuestCtx>,
    args: &[Value],
) -> Result<Vec<Value>, RuntimeError> {
    let (ctx, store) = env.data_and_store_mut();
    ctx.charge(1)?;
    if let Some(kind) = name.strip_prefix("emit_") {
        // Outside a set-returning call no spool is attached and rows go nowhere.
        let Some(SpoolPtr(spool)) = ctx.spool else {
            return Ok(vec![]);
        };
        // SAFETY: the handler keeps the spool alive, and attached, for exactly this call.
        let spool = unsafe { &mut *spool };
        match kind {
            "bytes" => {
                let (ptr, len) = (arg_i32(args, 0) as u32, arg_i32(args, 1).max(0) as u32);
                if len as usize > MAX_ROW_BYTES {
                    return Err(guest_error(
                        *b"54000",
                        format!("emit_bytes: a row of {len} bytes is larger than {MAX_ROW_BYTES}"),
                    ));
                }
                if !in_bounds(ctx, &store, ptr, len) {
                    return Err(guest_error(
                        *b"38000",
                        "emit_bytes: the row is outside the module's memory".into(),
                    ));
                }
                ctx.charge(bytes_cost(u64::from(len)))?;
                spool.put_bytes(len as usize, |row| view_read(ctx, &store, ptr, row));
            }
            "null" => spool.put_value(None),
            _ => spool.put_value(args.first()),
        }
        return Ok(vec![]);
    }
    match name {
        "arg_is_null" => {
            let index = arg_i32(args, 0);
            let null = usize::try_from(index)
                .ok()
                .and_then(|i| ctx.null_args.get(i).copied())
                .unwrap_or(false);
            Ok(vec![Value::I32(null as i32)])
        }
        "return_null" => {
            ctx.return_null = true;
            Ok(vec![])
        }
        "transaction_id" => Ok(vec![Value::I64(i64::from(local_transaction_id()))]),
        "random_u64" => {
            let mut bytes = [0u8; 8];
            if !guest::fill_random(&mut bytes) {
                return Err(guest_error(
                    *b"58000",
                    "plwasm.random_u64: the operating system gave no random bytes".into(),
                ));
            }
            Ok(vec![Value::I64(i64::from_le_bytes(bytes))])
        }
        "log" => {
            // Bounded: MAX_LOGS messages and MAX_LOG_BYTES per call are kept; later ones are
            // counted, not even read.
            let len = (arg_i32(args, 2) as u32).min(MAX_MESSAGE_BYTES) as usize;
            if ctx.logs.len() >= MAX_LOGS || ctx.log_bytes + len > MAX_LOG_BYTES {
                ctx.logs_dropped += 1;
                return Ok(vec![]);
            }
            ctx.charge(bytes_cost(len as u64))?;
            let text = read_message(ctx, &store, arg_i32(args, 1), arg_i32(args, 2))
                .unwrap_or_else(|| "<log message outside the module's memory>".into());
            ctx.log_bytes += len;
            ctx.logs.push((arg_i32(args, 0), text));
            Ok(vec![])
        }
        "error" | "error_code" => {
            let (code, message) = if name == "error" {
                (
                    None,
                    read_message(ctx, &store, arg_i32(args, 0), arg_i32(args, 1)),
                )
            } else {
                (
                    read_message(ctx, &store, arg_i32(args, 0), arg_i32(args, 1)),
                    read_message(ctx, &store, arg_i32(args, 2), arg_i32(args, 3)),
                )
            };
            let message =
                message.unwrap_or_else(|| "<error message outside the module's memory>".into());
            let (sqlstate, bad_sqlstate) = match code {
                None => (None, None),
                Some(code) => match valid_sqlstate(&code) {
                    Some(state) => (Some(state), None),
                    None => (None, Some(code)),
                },
            };
            Err(RuntimeError::user(Box::new(GuestRaised {
                sqlstate,
                message,
                bad_sqlstate,
                panic: None,
            })))
        }
        "panic" => {
            let message = read_message(ctx, &store, arg_i32(args, 0), arg_i32(args, 1))
                .unwrap_or_else(|| "<panic message outside the module's memory>".into());
            // The file goes into a DETAIL line: a plausible length, shown like backtrace names
            // (control characters replaced, cut), or no location at all.
            let file_len = arg_i32(args, 3);
            let location = (1..=MAX_PANIC_FILE_BYTES)
                .contains(&file_len)
                .then(|| read_message(ctx, &store, arg_i32(args, 2), file_len))
                .flatten()
                .map(|file| format!("{}:{}", shown(&file), arg_i32(args, 4) as u32));
            Err(RuntimeError::user(Box::new(GuestRaised {
                sqlstate: None,
                message,
                bad_sqlstate: None,
                panic: Some(Panic { location }),
            })))
        }
        // Only listed functions are imported; answer anything else like a trap.
        _ => Err(RuntimeError::new(format!(
            "plwasm.{name} is not a host function"
        ))),
    }
}

/// The backend's local transaction id (`MyProc->lxid`): a plain read of shared state, no
/// Postgres call (wasm frames are live).
fn local_transaction_id() -> u32 {
    // SAFETY: MyProc is set for the life of a backend (and of a background worker); only its
    // own backend changes lxid.
    unsafe {
        let proc_ = pgrx::pg_sys::MyProc;
        if proc_.is_null() {
            0
        } else {
            (*proc_).lxid
        }
    }
}

fn guest_error(sqlstate: [u8; 5], message: String) -> RuntimeError {
    RuntimeError::user(Box::new(GuestRaised {
        sqlstate: Some(sqlstate),
        message,
        bad_sqlstate: None,
        panic: None,
    }))
}

/// Five characters from `0-9A-Z`, not a success or warning class (`00`, `01`, `02`), and not
/// one of Postgres's own classes that callers act on: operator intervention (`57`: a cancel, a
/// shutdown, which poolers and drivers treat as such), system errors (`58`) and internal errors
/// (`XX`, which plwasm promises never to raise for a module's failure).
pub fn valid_sqlstate(code: &str) -> Option<[u8; 5]> {
    let bytes: [u8; 5] = code.as_bytes().try_into().ok()?;
    let ok = bytes
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && !matches!(&bytes[..2], b"00" | b"01" | b"02" | b"57" | b"58" | b"XX");
    ok.then_some(bytes)
}

/// Postgres's packed form of a SQLSTATE (`MAKE_SQLSTATE`).
pub fn packed_sqlstate(code: [u8; 5]) -> i32 {
    code.iter()
        .enumerate()
        .map(|(i, c)| (((*c as i32) - ('0' as i32)) & 0x3F) << (6 * i))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(valid_sqlstate("22012"), Some(*b"22012"));
        assert_eq!(valid_sqlstate("P0001"), Some(*b"P0001"));
        assert_eq!(valid_sqlstate("00000"), None);
        assert_eq!(valid_sqlstate("01000"), None);
        for reserved in ["XX000", "XX001", "57014", "57P01", "57P02", "58030"] {
            assert_eq!(valid_sqlstate(reserved), None, "{reserved}");
        }
        assert_eq!(valid_sqlstate("2201"), None);
        assert_eq!(valid_sqlstate("2201a"), None);
    }

    #[test]
    fn packs_like_make_sqlstate() {
        assert_eq!(
            packed_sqlstate(*b"22012"),
            pgrx::PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO as i32
        );
    }

    #[test]
    fn provides_exact_signatures_only() {
        assert!(provides(
            MODULE,
            "log",
            &FunctionType::new(vec![I32, I32, I32], vec![])
        ));
        assert!(!provides(
            MODULE,
            "log",
            &FunctionType::new(vec![I32, I32], vec![])
        ));
        assert!(!provides(
            "env",
            "log",
            &FunctionType::new(vec![I32, I32, I32], vec![])
        ));
    }
}

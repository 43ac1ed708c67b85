//! What the host keeps per instance for the guest's imports (WASI and the `plwasm` host API):
//! the instance's memory, captured stdout/stderr and log messages, and the current call's NULL
//! flags. Host functions run while wasm frames are live, so they only touch this state; it is
//! reported to Postgres after the call has returned.

use wasmer::{
    AsStoreRef, Exports, Function, FunctionEnv, FunctionEnvMut, FunctionType, Imports, Memory,
    Module, RuntimeError, Store, Type, Value,
};

use crate::runtime::guest_output::Captured;
use crate::runtime::limits::Meter;

/// errno / status: success.
pub const SUCCESS: i32 = 0;
/// errno / status: the guest passed a bad pointer.
pub const EFAULT: i32 = 21;

/// Longest log or error message kept from a guest, in bytes.
pub const MAX_MESSAGE_BYTES: u32 = 8192;
/// Most `plwasm.log` messages, and bytes of them, kept per call; the rest are counted.
pub const MAX_LOGS: usize = 1000;
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// Per-instance host state for the guest's imports.
#[derive(Default)]
pub struct GuestCtx {
    pub memory: Option<Memory>,
    pub stdout: Captured,
    pub stderr: Captured,
    /// `plwasm.log` messages of the current call: (level, text).
    pub logs: Vec<(i32, String)>,
    /// Bytes of `logs`, and messages not kept (past [`MAX_LOG_BYTES`] or [`MAX_LOGS`]).
    pub log_bytes: usize,
    pub logs_dropped: usize,
    /// Which arguments of the current call are NULL (`plwasm.arg_is_null`).
    pub null_args: Vec<bool>,
    /// Set by `plwasm.return_null` during the current call.
    pub return_null: bool,
    /// Where a set-returning call's `plwasm.emit_*` rows go (attached by the handler for the
    /// call; None otherwise).
    pub spool: Option<crate::runtime::spool::SpoolPtr>,
    /// The instance's fuel counter and interrupt flag (set once the instance exists).
    pub meter: Option<Meter>,
    /// The current call's queries (`plwasm.query` and its cursors).
    pub query: crate::runtime::query::QueryCtx,
}

impl GuestCtx {
    /// Charge `units` of fuel for work a host function is about to do. Err ends the call (out
    /// of fuel, or a cancel/terminate is pending): host functions check before they work, so
    /// none runs long or allocates much past the call's budget.
    pub fn charge(&self, units: u64) -> Result<(), RuntimeError> {
        match &self.meter {
            Some(meter) => meter
                .charge(units)
                .map_err(|stopped| RuntimeError::user(Box::new(stopped))),
            None => Ok(()),
        }
    }
}

/// Fuel for a host function that touches `bytes` bytes: one unit per call and one per
/// [`crate::runtime::instrument::BULK_BYTES_PER_FUEL`] bytes, like a bulk memory instruction.
pub fn bytes_cost(bytes: u64) -> u64 {
    1 + bytes / crate::runtime::instrument::BULK_BYTES_PER_FUEL as u64
}

pub fn arg_i32(args: &[Value], i: usize) -> i32 {
    args.get(i).and_then(Value::i32).unwrap_or_default()
}

/// Fill `buf` with random bytes from the operating system (`getrandom`, retried until full);
/// false if it gives none. Shared by WASI `random_get` and the host API's `random_u64`.
pub fn fill_random(buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n <= 0 {
            return false;
        }
        filled += n as usize;
    }
    true
}

/// Write `bytes` at `ptr` in the guest's memory; `EFAULT` if out of bounds or no memory.
pub fn view_write(ctx: &GuestCtx, store: &impl AsStoreRef, ptr: i32, bytes: &[u8]) -> i32 {
    let Some(memory) = &ctx.memory else {
        return EFAULT;
    };
    match memory.view(store).write(ptr as u32 as u64, bytes) {
        Ok(()) => SUCCESS,
        Err(_) => EFAULT,
    }
}

/// Read `buf.len()` bytes at `ptr`; false if out of bounds or no memory.
pub fn view_read(ctx: &GuestCtx, store: &impl AsStoreRef, ptr: u32, buf: &mut [u8]) -> bool {
    ctx.memory
        .as_ref()
        .is_some_and(|memory| memory.view(store).read(ptr as u64, buf).is_ok())
}

/// Whether `len` bytes at `ptr` lie inside the guest's memory.
pub fn in_bounds(ctx: &GuestCtx, store: &impl AsStoreRef, ptr: u32, len: u32) -> bool {
    ctx.memory
        .as_ref()
        .is_some_and(|memory| u64::from(ptr) + u64::from(len) <= memory.view(store).data_size())
}

/// Read a guest string of `len` bytes at `ptr` (lossy UTF-8, cut at [`MAX_MESSAGE_BYTES`]).
pub fn read_message(ctx: &GuestCtx, store: &impl AsStoreRef, ptr: i32, len: i32) -> Option<String> {
    let len = (len as u32).min(MAX_MESSAGE_BYTES);
    let mut buf = vec![0u8; len as usize];
    view_read(ctx, store, ptr as u32, &mut buf)
        .then(|| crate::runtime::guest_output::printable(&buf))
}

pub fn write_u32s(ctx: &GuestCtx, store: &impl AsStoreRef, values: &[(i32, u32)]) -> i32 {
    for &(ptr, value) in values {
        let errno = view_write(ctx, store, ptr, &value.to_le_bytes());
        if errno != SUCCESS {
            return errno;
        }
    }
    SUCCESS
}

pub fn write_u64(ctx: &GuestCtx, store: &impl AsStoreRef, ptr: i32, value: u64) -> i32 {
    view_write(ctx, store, ptr, &value.to_le_bytes())
}

/// A table of host functions one import module provides: name, parameters, results.
pub type HostTable = &'static [(&'static str, &'static [Type], &'static [Type])];

/// The dispatcher of one import module: (function name, environment, arguments) -> results.
pub type Dispatch =
    fn(&str, FunctionEnvMut<GuestCtx>, &[Value]) -> Result<Vec<Value>, RuntimeError>;

/// Whether `table` (import module `namespace`) provides `module`.`name` with signature `ty`.
pub fn provides(
    table: HostTable,
    namespace: &str,
    module: &str,
    name: &str,
    ty: &FunctionType,
) -> bool {
    module == namespace
        && table.iter().any(|(n, params, results)| {
            *n == name && ty.params() == *params && ty.results() == *results
        })
}

/// Register, under `namespace`, the functions of `table` that `module` imports.
pub fn add_imports(
    store: &mut Store,
    env: &FunctionEnv<GuestCtx>,
    module: &Module,
    imports: &mut Imports,
    namespace: &str,
    table: HostTable,
    dispatch: Dispatch,
) {
    let mut exports = Exports::new();
    for import in module.imports() {
        if import.module() != namespace {
            continue;
        }
        let Some(&(name, params, results)) = table.iter().find(|(n, _, _)| *n == import.name())
        else {
            continue;
        };
        let ty = FunctionType::new(params.to_vec(), results.to_vec());
        let function =
            Function::new_with_env(store, env, ty, move |env, args| dispatch(name, env, args));
        exports.insert(name, function);
    }
    imports.register_namespace(namespace, exports);
}

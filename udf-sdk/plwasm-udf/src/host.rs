//! The plwasm host API and the ABI v1 memory exports, for the guest side.
//!
//! On wasm32 these call the host's `plwasm` imports. On other targets (for `cargo test` of UDF
//! crates) they record into thread-locals instead, so functions can be unit-tested natively.

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "plwasm")]
    unsafe extern "C" {
        pub fn arg_is_null(index: i32) -> i32;
        pub fn return_null();
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn error(ptr: i32, len: i32);
        pub fn error_code(code_ptr: i32, code_len: i32, ptr: i32, len: i32);
        pub fn panic(ptr: i32, len: i32, file_ptr: i32, file_len: i32, line: i32);
        pub fn emit_i32(v: i32);
        pub fn emit_i64(v: i64);
        pub fn emit_f32(v: f32);
        pub fn emit_f64(v: f64);
        pub fn emit_bytes(ptr: i32, len: i32);
        pub fn emit_null();
        pub fn transaction_id() -> i64;
        pub fn random_u64() -> i64;
    }
}

/// One row of a set-returning function, as the host API's `emit_*` calls.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub enum Row<'a> {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Bytes(&'a [u8]),
    Null,
}

/// Emit one row of a set-returning function.
#[cfg(target_arch = "wasm32")]
pub fn emit(row: Row<'_>) {
    // SAFETY: host imports; emit_bytes reads `len` bytes at `ptr` from our memory.
    unsafe {
        match row {
            Row::I32(v) => imports::emit_i32(v),
            Row::I64(v) => imports::emit_i64(v),
            Row::F32(v) => imports::emit_f32(v),
            Row::F64(v) => imports::emit_f64(v),
            Row::Bytes(b) => imports::emit_bytes(b.as_ptr() as i32, b.len() as i32),
            Row::Null => imports::emit_null(),
        }
    }
}

/// Whether argument `index` of the current call is NULL.
#[cfg(target_arch = "wasm32")]
pub fn arg_is_null(index: i32) -> bool {
    // SAFETY: a host import without memory effects.
    unsafe { imports::arg_is_null(index) != 0 }
}

/// This backend's current transaction, as a number no other transaction of the backend has (the
/// host's local transaction id). Used to drop aggregate states of finished transactions.
#[cfg(target_arch = "wasm32")]
pub fn transaction_id() -> i64 {
    // SAFETY: a host import without memory effects.
    unsafe { imports::transaction_id() }
}

/// 64 random bits from the host's operating system (`getrandom`).
#[cfg(target_arch = "wasm32")]
pub fn random_u64() -> u64 {
    // SAFETY: a host import without memory effects.
    unsafe { imports::random_u64() as u64 }
}

/// Make the current call return NULL.
#[cfg(target_arch = "wasm32")]
pub fn return_null() {
    // SAFETY: a host import without memory effects.
    unsafe { imports::return_null() }
}

/// Send a message at `level` (see [`crate::level`]); reported after the call returns.
#[cfg(target_arch = "wasm32")]
pub fn log(level: i32, message: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` from our memory.
    unsafe { imports::log(level, message.as_ptr() as i32, message.len() as i32) }
}

/// End the call with an ERROR carrying `message`. Does not return.
#[cfg(target_arch = "wasm32")]
pub fn raise_error(message: &str) -> ! {
    // SAFETY: the host reads the message, then unwinds this call.
    unsafe { imports::error(message.as_ptr() as i32, message.len() as i32) };
    unreachable!("plwasm.error does not return")
}

/// End the call with an ERROR with SQLSTATE `code` (5 characters) carrying `message`.
#[cfg(target_arch = "wasm32")]
pub fn raise_error_code(code: &str, message: &str) -> ! {
    // SAFETY: the host reads both strings, then unwinds this call.
    unsafe {
        imports::error_code(
            code.as_ptr() as i32,
            code.len() as i32,
            message.as_ptr() as i32,
            message.len() as i32,
        )
    };
    unreachable!("plwasm.error_code does not return")
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::RefCell;
    /// Answers natively run queries (`testing::on_query`).
    #[cfg(feature = "json")]
    pub type QueryHandler = Box<dyn Fn(&str, &serde_json::Value) -> serde_json::Value>;
    #[cfg(feature = "json")]
    thread_local! {
        pub static QUERY_HANDLER: RefCell<Option<QueryHandler>> = const { RefCell::new(None) };
        /// Natively opened cursors: the rows not fetched yet.
        pub static CURSORS: RefCell<Vec<Option<Vec<u8>>>> = const { RefCell::new(Vec::new()) };
    }
    thread_local! {
        pub static NULL_ARGS: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
        pub static LOGS: RefCell<Vec<(i32, String)>> = const { RefCell::new(Vec::new()) };
        pub static TRANSACTION: std::cell::Cell<i64> = const { std::cell::Cell::new(1) };
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub fn arg_is_null(index: i32) -> bool {
    native::NULL_ARGS.with(|n| n.borrow().get(index as usize).copied().unwrap_or(false))
}

#[cfg(not(target_arch = "wasm32"))]
pub fn return_null() {}

#[cfg(not(target_arch = "wasm32"))]
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Natively (tests): std's randomly keyed hasher over a counter.
    thread_local! {
        static KEY: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
        static COUNTER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let n = COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    KEY.with(|key| {
        let mut hasher = key.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    })
}

#[cfg(not(target_arch = "wasm32"))]
pub fn transaction_id() -> i64 {
    native::TRANSACTION.with(std::cell::Cell::get)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn emit(_row: Row<'_>) {}

#[cfg(not(target_arch = "wasm32"))]
pub fn log(level: i32, message: &str) {
    native::LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

#[cfg(not(target_arch = "wasm32"))]
pub fn raise_error(message: &str) -> ! {
    panic!("{message}")
}

#[cfg(not(target_arch = "wasm32"))]
pub fn raise_error_code(code: &str, message: &str) -> ! {
    panic!("{code}: {message}")
}

/// Turn panics into panic ERRORs (SQLSTATE 38000, DETAIL "panic at file:line"), distinct from
/// the ERROR an `Err` result raises (installed once, by the first call).
pub fn set_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = match info.payload().downcast_ref::<&str>() {
                    Some(s) => (*s).to_string(),
                    None => match info.payload().downcast_ref::<String>() {
                        Some(s) => s.clone(),
                        None => "panic".to_string(),
                    },
                };
                let (file, line) = info.location().map_or(("", 0), |l| (l.file(), l.line()));
                // SAFETY: a host import that reads the two strings and does not return.
                unsafe {
                    imports::panic(
                        message.as_ptr() as i32,
                        message.len() as i32,
                        file.as_ptr() as i32,
                        file.len() as i32,
                        line as i32,
                    )
                };
            }));
        });
    }
}

/// ABI v1: memory for arguments the host passes (`plwasm_alloc`), released with `plwasm_free`.
/// Blocks carry their size so `plwasm_free` can rebuild the allocation's layout.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn plwasm_alloc(len: i32) -> i32 {
    let len = len.max(0) as usize;
    let layout = match std::alloc::Layout::from_size_align(len.max(1), 8) {
        Ok(layout) => layout,
        Err(_) => return 0,
    };
    // SAFETY: a non-zero-sized layout.
    unsafe { std::alloc::alloc(layout) as i32 }
}

/// ABI v1: release a buffer from [`plwasm_alloc`] or a result buffer this crate leaked.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn plwasm_free(ptr: i32, len: i32) {
    if ptr == 0 {
        return;
    }
    let layout = std::alloc::Layout::from_size_align((len.max(0) as usize).max(1), 8)
        .expect("the layout plwasm_alloc used");
    // SAFETY: `ptr` came from plwasm_alloc (or a result buffer allocated with this layout).
    unsafe { std::alloc::dealloc(ptr as *mut u8, layout) }
}

/// Native stand-ins so UDF crates can be unit-tested with `cargo test`.
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod testing {
    /// Pretend the next call's arguments have these NULL flags.
    pub fn set_null_args(nulls: &[bool]) {
        super::native::NULL_ARGS.with(|n| *n.borrow_mut() = nulls.to_vec());
    }

    /// Pretend the next calls run in transaction `id` (aggregate states of other transactions
    /// are dropped when a new state is made).
    pub fn set_transaction(id: i64) {
        super::native::TRANSACTION.with(|t| t.set(id));
    }

    /// Answer natively run queries (`plwasm_udf::query`, `Cursor`) with `handler(sql, params)`,
    /// which returns the rows as a JSON array of objects.
    #[cfg(feature = "json")]
    pub fn on_query(handler: impl Fn(&str, &serde_json::Value) -> serde_json::Value + 'static) {
        super::native::QUERY_HANDLER.with(|h| *h.borrow_mut() = Some(Box::new(handler)));
    }

    /// Messages logged so far (and clear them).
    pub fn take_logs() -> Vec<(i32, String)> {
        super::native::LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

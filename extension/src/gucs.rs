//! plwasm's settings (GUCs). All are superuser-only (`PGC_SUSET`) and are read at each call, so a
//! change takes effect at the next call, cached instances included.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `wasm.max_memory`, in kB: linear memory per instance (and, separately, all its tables).
pub static MAX_MEMORY_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);
/// `wasm.fuel_limit`: instructions per call, 0 = unlimited.
pub static FUEL_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(0);
/// `wasm.max_module_size`, in bytes: largest module `wasm.load` accepts.
pub static MAX_MODULE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(32 * 1024 * 1024);

/// `wasm.cache_memory`, in kB: what one backend's module cache may hold (linear memory of its
/// instances plus compiled code) before it evicts idle instances.
pub static CACHE_MEMORY_KB: GucSetting<i32> = GucSetting::<i32>::new(256 * 1024);
/// `wasm.module_history`: previous versions kept per module for `wasm.rollback`.
pub static MODULE_HISTORY: GucSetting<i32> = GucSetting::<i32>::new(3);

/// `wasm.refresh_artifacts`: a backend that had to compile a stored module starts a background
/// worker that stores its artifact (see `catalog/refresh.rs`).
pub static REFRESH_ARTIFACTS: GucSetting<bool> = GucSetting::<bool>::new(true);

/// WebAssembly pages are 64 KiB.
pub const WASM_PAGE_KB: i32 = 64;

/// Register the settings. Called from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"wasm.max_memory",
        c"Memory of one WebAssembly instance: its linear memory, and as much for all its tables.",
        c"memory.grow and table.grow past it return -1; a module whose declared minimums exceed \
          it cannot be instantiated. Rounded down to whole 64kB WebAssembly pages; table \
          elements count 8 bytes.",
        &MAX_MEMORY_KB,
        WASM_PAGE_KB,
        4 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"wasm.fuel_limit",
        c"Instruction budget of one call of a WebAssembly function (0 = unlimited).",
        c"Counted at function entries and loop iterations, as the number of WebAssembly \
          instructions of the code they start (an upper bound of what runs).",
        &FUEL_LIMIT,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"wasm.max_module_size",
        c"Largest WebAssembly module wasm.load accepts, and longest inline module body.",
        c"",
        &MAX_MODULE_SIZE,
        8,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_int_guc(
        c"wasm.cache_memory",
        c"Memory one backend's WebAssembly cache may hold before it evicts idle instances.",
        c"Linear memory of the cached instances plus the compiled code of their modules. Idle \
          instances (used by no running statement) are evicted, least recently used first; \
          instances in use are not, so the cache may exceed it while they run.",
        &CACHE_MEMORY_KB,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"wasm.module_history",
        c"Previous versions of each module kept for wasm.rollback.",
        c"A replace keeps the version it replaces; the oldest beyond this many are deleted. \
          0 keeps none.",
        &MODULE_HISTORY,
        0,
        100,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"wasm.refresh_artifacts",
        c"Store compiled artifacts that are missing or unusable from a background worker.",
        c"A backend that had to compile a stored module (no artifact after a restore, or one \
          made by another build or for another CPU) starts a dynamic background worker that \
          compiles the database's modules lacking a usable artifact and stores them.",
        &REFRESH_ARTIFACTS,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: called once from _PG_init; reserves the `wasm.` prefix (PG 15+).
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"wasm".as_ptr())
    };
}

/// `wasm.cache_memory` in bytes.
pub fn cache_memory_bytes() -> u64 {
    CACHE_MEMORY_KB.get().max(0) as u64 * 1024
}

/// The memory limit in WebAssembly pages (at least 1).
pub fn max_memory_pages() -> u32 {
    (MAX_MEMORY_KB.get() / WASM_PAGE_KB).max(1) as u32
}

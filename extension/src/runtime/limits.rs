//! Enforcing limits while wasm runs: linear memory (`wasm.max_memory`), fuel (`wasm.fuel_limit`)
//! and Postgres's interrupts (statement_timeout, pg_cancel_backend, pg_terminate_backend).
//!
//! Memory: the engine's tunables cap the memory's maximum at `wasm.max_memory` when an
//! instance is created (modules have at most one memory: multi-memory is refused), and all the
//! instance's tables together at as many bytes; `memory.grow`/`table.grow` past them return -1,
//! and a declared minimum above them makes instantiation fail. An instance remembers the cap it
//! was created with and is re-created when the setting changes.
//!
//! Interrupts: while a backend runs wasm in a transaction, a Postgres timeout (`USER_TIMEOUT`)
//! ticks every [`TICK_MS`]. Its handler runs in signal context and does one thing: if a cancel or
//! terminate is pending, it sets the running instance's interrupt flag (see [`crate::runtime::instrument`])
//! through a raw pointer. The guest traps at its next check (a function entry or loop iteration);
//! the call handler then runs `CHECK_FOR_INTERRUPTS()`, which raises Postgres's own error. The
//! ticker is switched off at the end of the transaction.

use std::cell::Cell;
use std::ptr::{null_mut, NonNull};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};

use pgrx::pg_sys;
use wasmer::sys::vm::{
    MemoryError, MemoryStyle, TableStyle, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition,
};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{AsStoreMut, Instance, MemoryType, Pages, Store, StoreObjects, TableType};

use crate::gucs;
use crate::runtime::instrument::{FUEL_EXPORT, INTERRUPT_EXPORT};

/// Period of the interrupt ticker while wasm is in use, in milliseconds.
pub const TICK_MS: i32 = 10;

// ---------------------------------------------------------------------------------------------
// Memory

/// The memory cap (in pages) the tunables apply to the next instance; set before instantiating.
static MEMORY_CAP_PAGES: AtomicU32 = AtomicU32::new(1024);

/// Bytes one table element takes (a function or extern reference).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

thread_local! {
    /// Set by the tunables when a module's declared minimum exceeded the cap.
    static REFUSED: Cell<Option<Refused>> = const { Cell::new(None) };
    /// Table elements the instance being created may still reserve (see [`LimitingTunables`]).
    static TABLE_ELEMENTS_LEFT: Cell<u64> = const { Cell::new(0) };
}

/// What the tunables refused while an instance was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A memory declared this many pages as its minimum.
    MemoryPages(u32),
    /// The tables' declared minimums add up past the budget (this table's minimum).
    TableElements(u32),
}

/// Tunables that cap linear memory at [`MEMORY_CAP_PAGES`], and the tables of an instance
/// together at the same number of bytes ([`TABLE_ELEMENT_BYTES`] per element): each table's
/// maximum is lowered to what the instance's earlier tables left of that budget, so the sum of
/// all maxima, and with it every `table.grow`, stays within it. Never calls Postgres (Wasmer may
/// call tunables while holding its engine lock).
#[derive(Default)]
pub struct LimitingTunables {
    base: BaseTunables,
}

impl LimitingTunables {
    fn capped(&self, ty: &MemoryType) -> Result<MemoryType, MemoryError> {
        let cap = MEMORY_CAP_PAGES.load(Ordering::Relaxed);
        if ty.minimum.0 > cap {
            REFUSED.with(|r| r.set(Some(Refused::MemoryPages(ty.minimum.0))));
            return Err(MemoryError::Generic(format!(
                "the module needs {} pages of linear memory, more than wasm.max_memory allows ({cap})",
                ty.minimum.0
            )));
        }
        let mut capped = *ty;
        capped.maximum = Some(Pages(ty.maximum.map_or(cap, |m| m.0.min(cap))));
        Ok(capped)
    }

    fn capped_table(&self, ty: &TableType) -> Result<TableType, String> {
        let left = TABLE_ELEMENTS_LEFT.with(Cell::get);
        if u64::from(ty.minimum) > left {
            REFUSED.with(|r| r.set(Some(Refused::TableElements(ty.minimum))));
            return Err(format!(
                "a table needs {} elements, more than wasm.max_memory leaves for tables ({left})",
                ty.minimum
            ));
        }
        let maximum = u64::from(ty.maximum.unwrap_or(u32::MAX)).min(left);
        TABLE_ELEMENTS_LEFT.with(|l| l.set(left - maximum));
        let mut capped = *ty;
        capped.maximum = Some(u32::try_from(maximum).unwrap_or(u32::MAX));
        Ok(capped)
    }
}

impl Tunables for LimitingTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        // The style decides how code is compiled; keep it independent of the cap.
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.base.create_host_memory(&self.capped(ty)?, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        // SAFETY: forwarded unchanged from Wasmer's own caller.
        unsafe {
            self.base
                .create_vm_memory(&self.capped(ty)?, style, vm_definition_location)
        }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(&self.capped_table(ty)?, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let capped = self.capped_table(ty)?;
        // SAFETY: forwarded from Wasmer's own caller, with a lower maximum.
        unsafe {
            self.base
                .create_vm_table(&capped, style, vm_definition_location)
        }
    }
}

/// Prepare the tunables for instantiating with the current `wasm.max_memory`; returns the cap.
pub fn prepare_memory_cap() -> u32 {
    let cap = gucs::max_memory_pages();
    MEMORY_CAP_PAGES.store(cap, Ordering::Relaxed);
    REFUSED.with(|r| r.set(None));
    TABLE_ELEMENTS_LEFT.with(|l| l.set(table_budget(cap)));
    cap
}

/// Table elements an instance may hold in all, under a memory cap of `cap_pages`.
pub fn table_budget(cap_pages: u32) -> u64 {
    u64::from(cap_pages) * 65536 / TABLE_ELEMENT_BYTES
}

/// What the last instantiation's tunables refused, if anything.
pub fn refused() -> Option<Refused> {
    REFUSED.with(Cell::take)
}

// ---------------------------------------------------------------------------------------------
// Fuel and interrupt flag of one instance

/// Raw pointers to an instance's fuel counter and interrupt flag (globals added by
/// [`crate::runtime::instrument`]). They point into the instance's VM context and stay valid while the
/// instance (and its store) lives; the owner keeps both alive together.
pub struct Budget {
    meter: Meter,
}

/// What host functions use to charge their work to the running call: the instance's fuel
/// counter and interrupt flag.
#[derive(Clone, Copy, Debug)]
pub struct Meter {
    fuel: *mut i64,
    interrupt: *const i32,
}

// SAFETY: a backend runs one thread of wasm; the pointers are only used on it, while the
// instance they point into is alive (the GuestCtx holding a Meter lives in the same Store).
unsafe impl Send for Meter {}

/// A host function's work stopped by the budget: the call ends, and the handler reports it
/// from the counters (out of fuel, or interrupted).
#[derive(Debug, thiserror::Error)]
#[error("stopped by plwasm's fuel or interrupt check")]
pub struct Stopped;

impl Meter {
    /// Charge `units` of fuel; Err when the call must stop (fuel below zero or an interrupt
    /// pending). Host functions call this before doing the work they charge for.
    pub fn charge(&self, units: u64) -> Result<(), Stopped> {
        // SAFETY: see the type's docs; no wasm instruction runs while a host function does.
        unsafe {
            let left = self
                .fuel
                .read_volatile()
                .saturating_sub(i64::try_from(units).unwrap_or(i64::MAX));
            self.fuel.write_volatile(left);
            if left < 0 || self.interrupt.read_volatile() != 0 {
                return Err(Stopped);
            }
        }
        Ok(())
    }
}

impl Budget {
    /// Find the instrumentation globals of `instance`.
    pub fn of(instance: &Instance, store: &mut Store) -> Option<Self> {
        let fuel = global_ptr(instance, store, FUEL_EXPORT)?;
        let interrupt = global_ptr(instance, store, INTERRUPT_EXPORT)?;
        Some(Self {
            meter: Meter {
                fuel: fuel.cast(),
                interrupt: interrupt.cast(),
            },
        })
    }

    /// The meter host functions charge their work to.
    pub fn meter(&self) -> Meter {
        self.meter
    }

    /// Arm for one call: fuel from `wasm.fuel_limit`, interrupt flag cleared and exposed to the
    /// ticker until the returned guard is finished or dropped (also when a panic unwinds).
    pub fn arm(&self) -> Armed<'_> {
        let limit = gucs::FUEL_LIMIT.get();
        let fuel = if limit > 0 {
            limit as i64
        } else {
            i64::MAX / 2
        };
        // SAFETY: valid pointers (see the type's docs); no wasm runs on this thread right now.
        unsafe {
            self.meter.fuel.write_volatile(fuel);
            self.meter.interrupt.cast_mut().write_volatile(0);
        }
        // The flag is cleared before the ticker can see it (signal handlers run on this thread:
        // a compiler fence keeps the order).
        compiler_fence(Ordering::SeqCst);
        // A call made while another is running (a query from wasm calling a wasm function)
        // hands the flag back to the outer call when it ends.
        let outer = RUNNING_FLAG.swap(self.meter.interrupt.cast_mut(), Ordering::Relaxed);
        ensure_ticking();
        Armed {
            budget: self,
            fuel,
            outer,
        }
    }
}

/// An armed budget: the ticker may write the instance's interrupt flag until this is finished
/// or dropped.
pub struct Armed<'a> {
    budget: &'a Budget,
    /// The fuel the call started with.
    fuel: i64,
    /// The interrupt flag of the call running when this one was armed (null if none), exposed
    /// to the ticker again when this one ends.
    outer: *mut i32,
}

impl Armed<'_> {
    /// After the call: tell why the guest stopped if it was us, and how much fuel the call
    /// used; the flag stops being exposed when `self` is dropped, at the end.
    pub fn finish(self) -> (Stop, u64) {
        let meter = self.budget.meter;
        // SAFETY: as in `Budget::arm`.
        let (fuel, interrupted) = unsafe {
            (
                meter.fuel.read_volatile(),
                meter.interrupt.read_volatile() != 0,
            )
        };
        let used = self.fuel.saturating_sub(fuel.max(0)).max(0) as u64;
        let stop = if interrupted {
            Stop::Interrupted
        } else if fuel < 0 {
            Stop::OutOfFuel
        } else {
            Stop::NotUs
        };
        (stop, used)
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        // Never leave the ticker pointing into an instance that may be freed; an outer call
        // still running (its instance alive: it is on the stack below) gets the ticker back.
        RUNNING_FLAG.store(self.outer, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }
}

/// Why the instrumentation stopped a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupted,
    OutOfFuel,
    /// The instrumentation did not stop it (a genuine trap, or no trap at all).
    NotUs,
}

fn global_ptr(instance: &Instance, store: &mut Store, name: &str) -> Option<*mut u8> {
    let vm = instance
        .exports
        .get_extern(name)?
        .to_vm_extern()
        .unwrap_sys();
    let wasmer::sys::vm::VMExtern::Global(handle) = vm else {
        return None;
    };
    let StoreObjects::Sys(objects) = store.objects_mut();
    let definition = handle.get(objects).vmglobal();
    // SAFETY: `vmglobal()` points at the global's live definition; its value is a repr(C) union
    // at offset 0, so the i32 and i64 members both start there.
    Some(unsafe { std::ptr::addr_of_mut!((*definition.as_ptr()).val).cast() })
}

// ---------------------------------------------------------------------------------------------
// The interrupt ticker

/// The interrupt flag of the instance running now, or null.
static RUNNING_FLAG: AtomicPtr<i32> = AtomicPtr::new(null_mut());

// Per-process state, read on every call: plain statics rather than thread-locals (each backend
// is its own process and only its main thread runs calls; a thread-local costs a
// `__tls_get_addr` call per access in a shared library). Relaxed: the only other reader is the
// SIGALRM handler on the same thread, kept in order by compiler fences where it matters.
/// The registered timeout's id, or -1 before the first call.
static TIMEOUT_ID: AtomicI32 = AtomicI32::new(-1);
static TICKING: AtomicBool = AtomicBool::new(false);

// Postgres's timeout API is not in pgrx's bindings. `USER_TIMEOUT` is the first user-definable
// id in `utils/timeout.h`, which differs by major version.
#[cfg(feature = "pg13")]
const USER_TIMEOUT: i32 = 8;
#[cfg(feature = "pg14")]
const USER_TIMEOUT: i32 = 10;
#[cfg(any(feature = "pg15", feature = "pg16"))]
const USER_TIMEOUT: i32 = 12;
#[cfg(any(feature = "pg17", feature = "pg18"))]
const USER_TIMEOUT: i32 = 13;

unsafe extern "C-unwind" {
    fn RegisterTimeout(id: i32, handler: Option<unsafe extern "C" fn()>) -> i32;
    fn enable_timeout_every(id: i32, fin_time: pg_sys::TimestampTz, delay_ms: i32);
    fn disable_timeout(id: i32, keep_indicator: bool);
    fn get_timeout_active(id: i32) -> bool;
}

/// Runs in signal context (from Postgres's SIGALRM handler): only reads flags and writes one int.
unsafe extern "C" fn on_tick() {
    // SAFETY: reading sig_atomic_t flags Postgres's own signal handlers set.
    let pending = unsafe { pg_sys::QueryCancelPending != 0 || pg_sys::ProcDiePending != 0 };
    if pending {
        let flag = RUNNING_FLAG.load(Ordering::Relaxed);
        if !flag.is_null() {
            // SAFETY: non-null only while the instance is running and alive.
            unsafe { flag.write_volatile(1) };
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PREPARE
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
    ) {
        stop_ticking();
    }
}

fn ensure_ticking() {
    // Postgres may disable every timeout behind our back (it does after an ERROR), so ask it.
    let registered = TIMEOUT_ID.load(Ordering::Relaxed);
    // SAFETY: a registered timeout id.
    if TICKING.load(Ordering::Relaxed)
        && registered >= 0
        && unsafe { get_timeout_active(registered) }
    {
        return;
    }
    let id = match registered {
        id if id >= 0 => id,
        _ => {
            // SAFETY: registering a signal-safe handler and a transaction callback, once per backend.
            let id = unsafe {
                pg_sys::RegisterXactCallback(Some(on_xact_end), null_mut());
                RegisterTimeout(USER_TIMEOUT, Some(on_tick))
            };
            TIMEOUT_ID.store(id, Ordering::Relaxed);
            id
        }
    };
    // SAFETY: a registered timeout id; the first tick is TICK_MS from now.
    unsafe {
        let first = pg_sys::GetCurrentTimestamp() + i64::from(TICK_MS) * 1000;
        enable_timeout_every(id, first, TICK_MS);
    }
    TICKING.store(true, Ordering::Relaxed);
}

fn stop_ticking() {
    if !TICKING.load(Ordering::Relaxed) {
        return;
    }
    let id = TIMEOUT_ID.load(Ordering::Relaxed);
    if id >= 0 {
        // SAFETY: disabling our own registered timeout.
        unsafe { disable_timeout(id, false) };
    }
    TICKING.store(false, Ordering::Relaxed);
}

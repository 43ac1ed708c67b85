//! A module instantiated in this backend ([`Instantiated`]): its Wasmer `Store`, instance, memory
//! exports and guest state, and calling it. A call is armed with fuel and the interrupt flag
//! (see [`crate::runtime::limits`]), values travel as ABI v1 describes (scalars as wasm values,
//! variable-length values through `plwasm_alloc`ed guest memory), and a failure becomes a
//! [`CallFailure`]. An instance that trapped is discarded (its memory may be half-updated); the
//! cache keeps its compiled module for the next instance.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use wasmer::{
    Function, FunctionEnv, Instance, Memory, Module, RuntimeError, Store, TypedFunction, Value,
};

use crate::catalog::privileges;
use crate::errors::PlWasmError;
use crate::gucs;
use crate::runtime::failure::{classify, CallFailure, TrapSite};
use crate::runtime::guest::GuestCtx;
use crate::runtime::host_api;
use crate::runtime::instrument::{STACK_POINTER_EXPORT, START_EXPORT};
use crate::runtime::limits::{self, Budget, Refused, Stop};
use crate::runtime::wasi;
use crate::runtime::{self, Export};

/// A module instantiated in this backend.
pub struct Instantiated {
    /// The module's name, or `(inline)`.
    pub label: String,
    pub sha256: String,
    pub exports: Vec<Export>,
    pub(super) module: Module,
    store: RefCell<Store>,
    instance: Instance,
    /// The instance's fuel counter and interrupt flag (declared after `store` and `instance`
    /// are kept alive by this struct, which owns all three).
    budget: Budget,
    /// State for the guest's imports (WASI, host API), for modules that import anything.
    guest: Option<FunctionEnv<GuestCtx>>,
    /// The module imports `plwasm.arg_is_null`: it may be called with NULL arguments.
    pub null_aware: bool,
    /// The module imports the query functions (`plwasm.query`, ...): each call is given a
    /// [`QueryPolicy`](crate::runtime::query::QueryPolicy).
    pub uses_query: bool,
    /// ABI v1 memory exports: `memory`, `plwasm_alloc(i32) -> i32`, `plwasm_free(i32, i32)`.
    memory: Option<Memory>,
    alloc: Option<TypedFunction<i32, i32>>,
    free: Option<TypedFunction<(i32, i32), ()>>,
    /// `wasm.max_memory` (in pages) the instance was created under.
    memory_cap: u32,
    /// The role the instance belongs to: its memory is never visible to another role.
    role: pg_sys::Oid,
    /// The catalog generation at which the cache last checked this instance's module is
    /// current ([`super::cache`]'s business).
    pub(super) verified_generation: Cell<u64>,
    alive: Cell<bool>,
    /// Fuel the last call used (see [`Self::fuel_used`]).
    fuel_used: Cell<u64>,
    /// What the cache knows of this instance's use (`cache.rs`).
    pub(super) usage: super::cache::Usage,
}

/// Export names of ABI v1's memory management.
pub const ALLOC_EXPORT: &str = "plwasm_alloc";
pub const FREE_EXPORT: &str = "plwasm_free";

/// One argument as it travels to the guest.
pub enum WireArg<'a> {
    Value(Value),
    Bytes(std::borrow::Cow<'a, [u8]>),
    /// A NULL variable-length argument: `(0, 0)`, nothing allocated.
    Null,
}

/// What a call returned: wasm values, or the bytes a variable-length result pointed at.
pub enum WireResult {
    Values(Box<[Value]>),
    /// The result of a typed call: one value or none.
    Value(Option<Value>),
    Bytes(Vec<u8>),
    /// The bytes a variable-length result pointed at, copied once, straight into a `varlena`
    /// palloc'd in the current memory context (see [`BytesResult::Varlena`]).
    Varlena(pg_sys::Datum),
}

/// Whether, and how, a call's result is bytes in the guest's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BytesResult {
    /// The export returns wasm values.
    No,
    /// Bytes the caller parses (copied into a `Vec`).
    Vec,
    /// Bytes that are the datum as they are (text, bytea): copied into a palloc'd `varlena`.
    Varlena,
}

/// The largest varlena payload Postgres can allocate (`MaxAllocSize` less the header).
const MAX_VARLENA_PAYLOAD: u64 = 0x3fff_ffff - pg_sys::VARHDRSZ as u64;

/// A failure while exchanging values with the guest.
enum Exchange {
    Trap(RuntimeError),
    Abi(String),
}

/// What a call reported: stdout and stderr lines (each with the number of bytes dropped),
/// `plwasm.log` messages, and whether it asked to return NULL.
pub struct GuestOutput {
    pub stdout: (Vec<String>, usize),
    pub stderr: (Vec<String>, usize),
    pub logs: Vec<(i32, String)>,
    /// `plwasm.log` messages not kept (past the per-call bounds).
    pub logs_dropped: usize,
    pub return_null: bool,
}

impl Instantiated {
    pub(super) fn new(
        label: &str,
        sha256: String,
        module: Module,
        function: &str,
    ) -> Result<Self, PlWasmError> {
        if let Some(declared) = runtime::foreign_abi(&module) {
            return Err(PlWasmError::ForeignAbi {
                module: label.to_string(),
                declared,
            });
        }
        let imports = runtime::unsupported_imports(&module);
        if !imports.is_empty() {
            return Err(PlWasmError::UnsupportedImports {
                module: label.to_string(),
                imports: imports.join(", "),
            });
        }
        let mut store = Store::new(runtime::engine());
        let memory_cap = limits::prepare_memory_cap();
        let mut imports = wasmer::imports! {};
        let guest = if module.imports().next().is_some() {
            let env = FunctionEnv::new(&mut store, GuestCtx::default());
            wasi::add_imports(&mut store, &env, &module, &mut imports);
            host_api::add_imports(&mut store, &env, &module, &mut imports);
            Some(env)
        } else {
            None
        };
        let null_aware = host_api::is_null_aware(&module);
        let uses_query = crate::runtime::query::imports_query(&module);
        // Instantiating runs no guest code and calls no Postgres (the start function runs
        // below), so a panic here is Wasmer's own: report it as this module's failure (and
        // rebuild the engine, whose locks it may have poisoned) rather than as an internal error.
        let instantiated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Instance::new(&mut store, &module, &imports).map_err(|e| e.to_string())
        }))
        .map_err(|_| {
            runtime::reset_engine();
            PlWasmError::Instantiate {
                function: function.to_string(),
                module: label.to_string(),
                reason: "the WebAssembly runtime failed while instantiating it".into(),
            }
        })?;
        let instance = instantiated.map_err(|e| {
            let (function, module) = (function.to_string(), label.to_string());
            match limits::refused() {
                Some(Refused::MemoryPages(pages)) => PlWasmError::MemoryLimit {
                    function,
                    module,
                    pages,
                    limit: memory_cap,
                },
                Some(Refused::TableElements(elements)) => PlWasmError::TableLimit {
                    function,
                    module,
                    elements,
                    limit: limits::table_budget(memory_cap),
                },
                None => PlWasmError::Instantiate {
                    function,
                    module,
                    reason: e,
                },
            }
        })?;
        let budget = Budget::of(&instance, &mut store).ok_or_else(|| PlWasmError::Instantiate {
            function: function.to_string(),
            module: label.to_string(),
            reason: "the module was compiled without plwasm's instrumentation".into(),
        })?;
        if let Some(env) = &guest {
            let ctx = env.as_mut(&mut store);
            ctx.memory = instance.exports.get_memory("memory").ok().cloned();
            ctx.meter = Some(budget.meter());
        }
        // The module's start function (taken out of instantiation by the instrumentation), then
        // a WASI reactor's `_initialize` (C built with -mexec-model=reactor sets up its libc
        // there): each armed like a call, so fuel, cancel and statement_timeout apply.
        for (export, what) in [
            (START_EXPORT, "start function"),
            ("_initialize", "_initialize"),
        ] {
            let Ok(init) = instance.exports.get_function(export) else {
                continue;
            };
            let armed = budget.arm();
            let result = init.call(&mut store, &[]);
            let (stop, _) = armed.finish();
            if let Err(trap) = result {
                let site = TrapSite {
                    module: &module,
                    shadow_stack_exhausted: shadow_stack_exhausted(&instance, &mut store),
                };
                return Err(match classify(stop, trap, &site) {
                    CallFailure::Trap { message, .. } => PlWasmError::Instantiate {
                        function: function.to_string(),
                        module: label.to_string(),
                        reason: format!("its {what} failed: {message}"),
                    },
                    other => other.into_error(function, label, export),
                });
            }
        }
        if let Some(env) = &guest {
            // What the start function or _initialize asked of "the current call" (return_null,
            // emitted rows) belongs to no call; what they printed or logged is reported with
            // the first one.
            // (Rows emitted there went nowhere: no spool is attached outside a set-returning call.)
            let ctx = env.as_mut(&mut store);
            ctx.return_null = false;
        }
        let memory = instance.exports.get_memory("memory").ok().cloned();
        let alloc = instance
            .exports
            .get_typed_function::<i32, i32>(&store, ALLOC_EXPORT)
            .ok();
        let free = instance
            .exports
            .get_typed_function::<(i32, i32), ()>(&store, FREE_EXPORT)
            .ok();
        Ok(Self {
            memory,
            alloc,
            free,
            label: label.to_string(),
            sha256,
            exports: runtime::exports(&module),
            module,
            store: RefCell::new(store),
            instance,
            budget,
            guest,
            null_aware,
            uses_query,
            memory_cap,
            role: privileges::current_user(),
            verified_generation: Cell::new(super::cache::UNVERIFIED),
            alive: Cell::new(true),
            fuel_used: Cell::new(0),
            usage: super::cache::Usage::default(),
        })
    }

    /// False once the instance trapped, its module was replaced, `wasm.max_memory` changed, or
    /// the current role is not the instance's (then another instance serves this role).
    #[inline]
    pub fn is_alive(&self) -> bool {
        self.is_current() && self.role == privileges::current_user()
    }

    /// [`Self::is_alive`] for whichever role it belongs to: not trapped, replaced or made under
    /// another `wasm.max_memory`. What the cache keeps when it drops dead entries.
    #[inline]
    pub fn is_current(&self) -> bool {
        self.alive.get() && self.memory_cap == gucs::max_memory_pages()
    }

    /// The exported function `name`.
    pub fn function(&self, name: &str) -> Option<Function> {
        self.instance.exports.get_function(name).ok().cloned()
    }

    /// Run `work` on this instance's store under the current fuel limit, interruptible: the
    /// budget is armed around it, the instance is discarded if it unwinds, and a failure is
    /// turned into a [`CallFailure`] by `failure`, told what (if anything) stopped the guest.
    #[inline]
    fn run_armed<R, E>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<R, E>,
        failure: impl FnOnce(Stop, E, &TrapSite) -> CallFailure,
    ) -> Result<R, CallFailure> {
        let mut store = self.store.try_borrow_mut().map_err(|_| CallFailure::Busy)?;
        let _discard = DiscardOnUnwind(self);
        let armed = self.budget.arm();
        let result = work(&mut store);
        let (stop, fuel_used) = armed.finish();
        self.fuel_used.set(fuel_used);
        result.map_err(|e| {
            let site = TrapSite {
                module: &self.module,
                shadow_stack_exhausted: shadow_stack_exhausted(&self.instance, &mut store),
            };
            failure(stop, e, &site)
        })
    }

    /// Call `function` (an export of this instance) under the current fuel limit, interruptible.
    #[inline]
    pub fn call(&self, function: &Function, params: &[Value]) -> Result<Box<[Value]>, CallFailure> {
        self.run_armed(|store| function.call(store, params), classify)
    }

    /// A typed call of `function` (an export of this instance), when its signature allows one
    /// (see `typed_call.rs`).
    pub fn typed(
        &self,
        function: &Function,
    ) -> Option<Box<dyn crate::runtime::typed_call::TypedCall>> {
        let store = self.store.try_borrow().ok()?;
        crate::runtime::typed_call::make(function, &store)
    }

    /// [`Self::call`] through a typed call made by [`Self::typed`] for this instance.
    #[inline]
    pub fn call_typed(
        &self,
        typed: &dyn crate::runtime::typed_call::TypedCall,
        params: &[Value],
    ) -> Result<Option<Value>, CallFailure> {
        self.run_armed(|store| typed.call(store, params), classify)
    }

    /// Call `function` with arguments that may travel through the module's memory (ABI v1):
    /// bytes are copied into buffers from `plwasm_alloc`, a bytes result is read from the
    /// `(ptr << 32) | len` the export returns and released with `plwasm_free` (when exported), as
    /// are the argument buffers. All of it runs under one fuel budget, interruptible. `typed`,
    /// made by [`Self::typed`] for `function` when its signature allows, calls the export
    /// without Wasmer's dynamic call.
    pub fn call_with_memory(
        &self,
        function: &Function,
        typed: Option<&dyn crate::runtime::typed_call::TypedCall>,
        args: &[WireArg<'_>],
        bytes_result: BytesResult,
    ) -> Result<WireResult, CallFailure> {
        self.run_armed(
            |store| self.exchange(store, function, typed, args, bytes_result),
            |stop, failure, site| match failure {
                Exchange::Trap(trap) => classify(stop, trap, site),
                Exchange::Abi(message) => CallFailure::Abi(message),
            },
        )
    }

    fn exchange(
        &self,
        store: &mut Store,
        function: &Function,
        typed: Option<&dyn crate::runtime::typed_call::TypedCall>,
        args: &[WireArg<'_>],
        bytes_result: BytesResult,
    ) -> Result<WireResult, Exchange> {
        let memory = self
            .memory
            .as_ref()
            .ok_or_else(|| Exchange::Abi("the module exports no memory".into()))?;
        let mut params = Vec::with_capacity(args.len() * 2);
        let mut buffers = Vec::new();
        for arg in args {
            match arg {
                WireArg::Value(value) => params.push(value.clone()),
                WireArg::Null => params.extend([Value::I32(0), Value::I32(0)]),
                WireArg::Bytes(bytes) => {
                    let alloc = self.alloc.as_ref().ok_or_else(|| {
                        Exchange::Abi(format!("the module exports no {ALLOC_EXPORT}"))
                    })?;
                    let len = i32::try_from(bytes.len())
                        .map_err(|_| Exchange::Abi("an argument is larger than 2GB".into()))?;
                    let ptr = alloc.call(&mut *store, len).map_err(Exchange::Trap)?;
                    if ptr == 0 && len > 0 {
                        return Err(Exchange::Abi(format!(
                            "{ALLOC_EXPORT}({len}) returned 0 (out of memory?)"
                        )));
                    }
                    memory
                        .view(&*store)
                        .write(ptr as u32 as u64, bytes)
                        .map_err(|_| {
                            Exchange::Abi(format!(
                                "{ALLOC_EXPORT}({len}) returned {ptr}, outside the module's memory"
                            ))
                        })?;
                    buffers.push((ptr, len));
                    params.extend([Value::I32(ptr), Value::I32(len)]);
                }
            }
        }
        let results = match typed {
            Some(typed) => {
                WireResult::Value(typed.call(&mut *store, &params).map_err(Exchange::Trap)?)
            }
            None => WireResult::Values(
                function
                    .call(&mut *store, &params)
                    .map_err(Exchange::Trap)?,
            ),
        };
        let out = if bytes_result != BytesResult::No {
            let first = match &results {
                WireResult::Value(value) => value.as_ref(),
                WireResult::Values(values) => values.first(),
                WireResult::Bytes(_) | WireResult::Varlena(_) => None,
            };
            let packed = first.and_then(Value::i64).unwrap_or_default() as u64;
            let (ptr, len) = ((packed >> 32) as u32, packed as u32);
            let view = memory.view(&*store);
            if u64::from(ptr) + u64::from(len) > view.data_size() {
                return Err(Exchange::Abi(format!(
                    "returned (ptr {ptr}, len {len}), outside the module's memory of {} bytes",
                    view.data_size()
                )));
            }
            let out = if bytes_result == BytesResult::Varlena {
                if u64::from(len) > MAX_VARLENA_PAYLOAD {
                    return Err(Exchange::Abi(format!(
                        "returned {len} bytes, more than a value can hold (1GB)"
                    )));
                }
                // SAFETY: a varlena of exactly header + len bytes in the current memory
                // context, its header set before anything reads it; the bytes are copied into
                // its payload from the guest memory checked above.
                unsafe {
                    let total = pg_sys::VARHDRSZ + len as usize;
                    let varlena = pg_sys::palloc(total).cast::<pg_sys::varlena>();
                    pgrx::set_varsize_4b(varlena, total as i32);
                    let payload = std::slice::from_raw_parts_mut(
                        varlena.cast::<u8>().add(pg_sys::VARHDRSZ),
                        len as usize,
                    );
                    view.read(u64::from(ptr), payload)
                        .map_err(|e| Exchange::Abi(e.to_string()))?;
                    WireResult::Varlena(pg_sys::Datum::from(varlena))
                }
            } else {
                let mut bytes = vec![0u8; len as usize];
                view.read(u64::from(ptr), &mut bytes)
                    .map_err(|e| Exchange::Abi(e.to_string()))?;
                WireResult::Bytes(bytes)
            };
            if let Some(free) = &self.free {
                free.call(&mut *store, ptr as i32, len as i32)
                    .map_err(Exchange::Trap)?;
            }
            out
        } else {
            results
        };
        if let Some(free) = &self.free {
            for (ptr, len) in buffers {
                free.call(&mut *store, ptr, len).map_err(Exchange::Trap)?;
            }
        }
        Ok(out)
    }

    /// Where `plwasm.emit_*` put rows during the next call (None: they are ignored).
    pub fn set_spool(&self, spool: Option<crate::runtime::spool::SpoolPtr>) {
        if let (Some(env), Ok(mut store)) = (&self.guest, self.store.try_borrow_mut()) {
            env.as_mut(&mut *store).spool = spool;
        }
    }

    /// Tell the host API which arguments of the next call are NULL.
    pub fn set_null_args(&self, nulls: &[bool]) {
        if let (Some(env), Ok(mut store)) = (&self.guest, self.store.try_borrow_mut()) {
            let ctx = env.as_mut(&mut *store);
            ctx.null_args.clear();
            ctx.null_args.extend_from_slice(nulls);
            ctx.return_null = false;
        }
    }

    /// Before a call: what it may do with queries.
    pub fn begin_queries(&self, policy: crate::runtime::query::QueryPolicy) {
        if let (Some(env), Ok(mut store)) = (&self.guest, self.store.try_borrow_mut()) {
            env.as_mut(&mut *store).query.begin(policy);
        }
    }

    /// After a call: close the cursors it left open.
    pub fn end_queries(&self) {
        if let (Some(env), Ok(mut store)) = (&self.guest, self.store.try_borrow_mut()) {
            env.as_mut(&mut *store).query.end();
        }
    }

    /// What the guest reported during the last call (empties the buffers).
    pub fn take_output(&self) -> Option<GuestOutput> {
        let env = self.guest.as_ref()?;
        let mut store = self.store.try_borrow_mut().ok()?;
        let ctx = env.as_mut(&mut *store);
        let return_null = std::mem::take(&mut ctx.return_null);
        if ctx.stdout.is_empty()
            && ctx.stderr.is_empty()
            && ctx.logs.is_empty()
            && ctx.logs_dropped == 0
            && !return_null
        {
            return None;
        }
        ctx.log_bytes = 0;
        Some(GuestOutput {
            stdout: ctx.stdout.take_lines(),
            stderr: ctx.stderr.take_lines(),
            logs: std::mem::take(&mut ctx.logs),
            logs_dropped: std::mem::take(&mut ctx.logs_dropped),
            return_null,
        })
    }

    /// Call sites holding this instance re-resolve at their next call (the cache replaced it).
    /// The fuel the last call used: the instrumentation's count of instructions at function
    /// entries and loop iterations, plus what host functions charged.
    #[inline]
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used.get()
    }

    /// Bytes of linear memory the instance has now (0 while it runs, when they cannot be read).
    pub fn memory_bytes(&self) -> u64 {
        use wasmer::sys::vm::{LinearMemory, StoreObject, VMMemory};
        use wasmer::AsStoreMut as _;
        let Ok(mut store) = self.store.try_borrow_mut() else {
            return 0;
        };
        let wasmer::StoreObjects::Sys(objects) = store.objects_mut();
        let objects = &*objects;
        VMMemory::list(objects)
            .iter()
            .map(|memory| memory.size().bytes().0 as u64)
            .sum()
    }

    /// The role the instance belongs to.
    pub fn role(&self) -> pg_sys::Oid {
        self.role
    }

    /// Whether nothing but the cache holds this instance: no call site and no running
    /// statement uses it.
    pub(super) fn is_idle(self: &std::rc::Rc<Self>) -> bool {
        std::rc::Rc::strong_count(self) == 1
    }

    pub(super) fn mark_stale(&self) {
        self.alive.set(false);
    }

    /// Drop this instance from the cache (after a trap): the next call gets a fresh instance.
    pub fn discard(&self) {
        self.alive.set(false);
        super::cache::retire();
    }
}

/// Discards an instance when a Postgres ERROR raised inside a host function unwinds its call
/// (the guest was stopped mid-way: its memory may be half-updated).
struct DiscardOnUnwind<'a>(&'a Instantiated);

impl Drop for DiscardOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.discard();
        }
    }
}

/// Lowest shadow stack pointer that is not "exhausted": a function that calls nothing keeps its
/// frame below the pointer without moving it, so a pointer this close to the bottom of a stack
/// placed first in memory (LLVM's layout for Rust, and for C with `--stack-first`) is full.
const SHADOW_STACK_FLOOR: u32 = 4096;

/// Whether the module's shadow stack (its `__stack_pointer`, exported by the instrumentation) is
/// outside its memory or at the bottom of it: an out-of-bounds access then comes from the stack
/// overflowing, not from a bad pointer.
fn shadow_stack_exhausted(instance: &Instance, store: &mut Store) -> bool {
    let Ok(pointer) = instance.exports.get_global(STACK_POINTER_EXPORT) else {
        return false;
    };
    let Value::I32(pointer) = pointer.get(store) else {
        return false;
    };
    // The module's memory, whatever its export is called; without one, no claim.
    let Some((_, memory)) = instance.exports.iter().memories().next() else {
        return false;
    };
    let size = memory.view(&*store).data_size();
    let pointer = pointer as u32;
    // A pointer equal to the size is an empty stack at the top of memory.
    u64::from(pointer) > size || pointer < SHADOW_STACK_FLOOR
}

//! Compile-time instrumentation: the fuel counter and interrupt flag every module is compiled with.
//!
//! A Wasmer middleware adds three globals to each module, invisible to its own code (the module
//! was validated before they existed, so no instruction of it can name them): the two below, and
//! a scratch slot for bulk instructions (see further down).
//!
//! - `fuel` (i64): decremented at every function entry by the number of instructions in the
//!   function outside loops, and at every loop iteration by the number of instructions directly in
//!   the loop body. The host sets it before each call (`wasm.fuel_limit`).
//! - `interrupt` (i32): only ever written by the host — from a Postgres timeout handler when a
//!   cancel or terminate is pending. Guest code only reads it, so no host write can be lost.
//!
//! The costs are counted from the module's bytes before it is compiled ([`prepare_compile`]), so
//! the middleware passes each operator through as it comes, with the checks inserted: every
//! instruction keeps its own position in the module, which trap backtraces report.
//!
//! At each of those points the guest traps (`unreachable`) if `fuel < 0 || interrupt != 0`. The
//! host then reads the globals to tell a fuel or interrupt stop from a genuine `unreachable`.
//! Tight loops and recursion therefore always reach a check; straight-line code between checks is
//! bounded by the size of the function.
//!
//! Instructions whose work grows with an operand (`memory.fill/copy/init`: one unit per
//! [`BULK_BYTES_PER_FUEL`] bytes; `table.fill/copy/init/grow`: one per element) are charged by
//! that operand, with the same check, before they run; a third global holds the operand
//! meanwhile. Host functions charge what they do through the same counter (`guest.rs`).
//!
//! A module's start function is taken out of the module and exported as [`START_EXPORT`]: the
//! host runs it right after instantiation, armed like any call, so it is interruptible and
//! fuel-limited (it would otherwise run inside instantiation, before anything is armed).
//!
//! Two things for reporting traps (`runtime/backtrace.rs`): the global its name section calls
//! `__stack_pointer` (the shadow stack of modules built by LLVM: Rust, C) is exported as
//! [`STACK_POINTER_EXPORT`], so the host can tell a trap caused by that stack overflowing; and
//! the offset of the code section in the module's bytes is kept as custom section
//! [`CODE_OFFSET_SECTION`], which turns a frame's module offset into a DWARF address.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wasmer::sys::wasmparser::{
    BinaryReader, BinaryReaderError, BlockType, FunctionBody, Name, NameSectionReader, Operator,
    Parser, Payload,
};
use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::{
    ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, ModuleInfo, Mutability, Type,
};

/// Export names starting with this are plwasm's own; modules may not use them.
pub const RESERVED_EXPORT_PREFIX: &str = "__plwasm";
/// Export name of the fuel global.
pub const FUEL_EXPORT: &str = "__plwasm_fuel";
/// Export name of the interrupt flag global.
pub const INTERRUPT_EXPORT: &str = "__plwasm_interrupt";
/// Export name under which a module's start function is kept: the host calls it after
/// instantiating, under the same fuel and interrupt checks as any call.
pub const START_EXPORT: &str = "__plwasm_start";
/// Export name of the module's shadow stack pointer (`__stack_pointer` in its name section).
pub const STACK_POINTER_EXPORT: &str = "__plwasm_stack_pointer";
/// Custom section added to every compiled module: the offset of its code section's contents in
/// the module's bytes (little-endian u32), where DWARF addresses start.
pub const CODE_OFFSET_SECTION: &str = "plwasm.code_offset";
/// Fuel of code that runs before the host arms an instance (none does since start functions are
/// taken out; kept as the initial value of the counter).
pub const START_FUEL: i64 = 1_000_000_000;
/// Bulk memory instructions cost one unit of fuel per this many bytes they touch.
pub const BULK_BYTES_PER_FUEL: i64 = 8;

/// Set when the statement that started a compile was cancelled: the compile (running on a
/// worker thread, see `runtime::run_interruptibly`) stops at its next function or its next
/// [`ABORT_CHECK_EVERY`] operators instead of finishing for nobody.
static ABORT_COMPILE: AtomicBool = AtomicBool::new(false);
const ABORT_CHECK_EVERY: usize = 4096;

/// Ask the compile in progress (if any) to stop; `false` before starting a new one.
pub fn set_compile_aborted(aborted: bool) {
    ABORT_COMPILE.store(aborted, Ordering::SeqCst);
}

fn compile_aborted() -> Result<(), MiddlewareError> {
    if ABORT_COMPILE.load(Ordering::Relaxed) {
        Err(MiddlewareError::new(
            "plwasm",
            "compilation abandoned (the statement was cancelled)",
        ))
    } else {
        Ok(())
    }
}

/// What [`prepare_compile`] found in the bytes of the module compiled next.
#[derive(Debug)]
struct Prepared {
    /// Where the code section's contents start (DWARF addresses count from there).
    code_offset: Option<u32>,
    /// Fuel costs of each function body, in order (by local function index).
    costs: Arc<Vec<FunctionCosts>>,
}

/// Set by [`prepare_compile`], taken by the middleware when the compile starts (and cleared by
/// [`finish_compile`] if it never did); one compile runs at a time in a backend.
static PREPARED: Mutex<Option<Prepared>> = Mutex::new(None);

/// Fuel costs of one function: what its entry charges, and what each loop iteration charges
/// (loops in the order they appear).
#[derive(Debug, Default)]
struct FunctionCosts {
    entry: i64,
    loops: Vec<i64>,
}

impl FunctionCosts {
    /// Count the instructions of `body` per region: outside loops (charged at entry), and
    /// directly inside each loop (charged per iteration).
    fn of(body: &FunctionBody) -> Result<Self, BinaryReaderError> {
        let mut costs = Self::default();
        // Open control frames (true for a loop), and the loops open now, innermost last.
        let mut control = Vec::new();
        let mut open_loops: Vec<usize> = Vec::new();
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let operator = reader.read()?;
            match open_loops.last() {
                Some(&i) => costs.loops[i] += 1,
                None => costs.entry += 1,
            }
            match operator {
                Operator::Loop { .. } => {
                    costs.loops.push(0);
                    open_loops.push(costs.loops.len() - 1);
                    control.push(true);
                }
                Operator::Block { .. }
                | Operator::If { .. }
                | Operator::Try { .. }
                | Operator::TryTable { .. } => control.push(false),
                // The guard closes the frame whatever it was; a loop's also closes its region.
                Operator::End | Operator::Delegate { .. } if control.pop() == Some(true) => {
                    open_loops.pop();
                }
                _ => {}
            }
        }
        Ok(costs)
    }
}

/// Read what the middleware needs from `bytes`, the module compiled next: each function's fuel
/// costs and where the code section starts. A module that does not parse gets nothing (Wasmer
/// then rejects it with the reason).
pub fn prepare_compile(bytes: &[u8]) {
    let mut code_offset = None;
    let mut costs = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::CodeSectionStart { range, .. }) => {
                code_offset = u32::try_from(range.start).ok();
            }
            Ok(Payload::CodeSectionEntry(body)) => match FunctionCosts::of(&body) {
                Ok(counted) => costs.push(counted),
                Err(_) => break,
            },
            Ok(_) => {}
            Err(_) => break,
        }
    }
    *PREPARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Prepared {
        code_offset,
        costs: Arc::new(costs),
    });
}

/// Forget what [`prepare_compile`] found, if the compile did not take it (a module that failed
/// validation before the middleware ran).
pub fn finish_compile() {
    PREPARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

/// The export of the defined, mutable i32 global that `info`'s name section calls
/// `__stack_pointer`, if any.
fn stack_pointer_global(info: &ModuleInfo) -> Option<ExportIndex> {
    let section = info.custom_sections.get("name")?;
    let data = &info.custom_sections_data[*section];
    let reader = NameSectionReader::new(BinaryReader::new(data, 0));
    let index = reader.into_iter().find_map(|name| match name.ok()? {
        Name::Global(map) => map
            .into_iter()
            .filter_map(Result::ok)
            .find(|naming| naming.name == "__stack_pointer")
            .map(|naming| naming.index),
        _ => None,
    })?;
    let (index, ty) = info.globals.iter().nth(index as usize)?;
    (info.local_global_index(index).is_some()
        && ty.ty == Type::I32
        && ty.mutability == Mutability::Var)
        .then_some(ExportIndex::Global(index))
}

#[derive(Clone, Copy, Debug)]
struct Globals {
    fuel: u32,
    interrupt: u32,
    /// Scratch space for a bulk instruction's length operand (no threads: one is enough).
    scratch: u32,
}

/// The module middleware. One per engine; it compiles one module at a time (a backend is single
/// threaded), though the functions of that module may be compiled on several threads.
#[derive(Debug, Default)]
pub struct Instrument {
    globals: Mutex<Option<Globals>>,
    /// The fuel costs of the functions of the module being compiled.
    costs: Mutex<Option<Arc<Vec<FunctionCosts>>>>,
}

impl ModuleMiddleware for Instrument {
    fn generate_function_middleware<'a>(
        &self,
        index: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let globals = self
            .globals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .expect("transform_module_info runs before functions are compiled");
        let costs = self
            .costs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            // Without costs, the first operator fails the compile ("a function was not counted").
            .unwrap_or_default();
        Box::new(FunctionInstrument {
            globals,
            costs,
            function: index.as_u32() as usize,
            next_loop: 0,
            fed: 0,
        })
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        if let Some(name) = info
            .exports
            .keys()
            .find(|name| name.starts_with(RESERVED_EXPORT_PREFIX))
        {
            return Err(MiddlewareError::new(
                "plwasm",
                format!("export name \"{name}\" is reserved (names starting with \"{RESERVED_EXPORT_PREFIX}\" are plwasm's)"),
            ));
        }
        // Looked up before plwasm's own globals exist, so a name section cannot point at them.
        let stack_pointer = stack_pointer_global(info);
        let fuel = info
            .globals
            .push(GlobalType::new(Type::I64, Mutability::Var));
        info.global_initializers
            .push(GlobalInit::I64Const(START_FUEL));
        let interrupt = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        let scratch = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        info.exports
            .insert(FUEL_EXPORT.to_string(), ExportIndex::Global(fuel));
        info.exports
            .insert(INTERRUPT_EXPORT.to_string(), ExportIndex::Global(interrupt));
        // The start function would run inside instantiation, before the host can arm the
        // instance's fuel and interrupt checks: keep it as an export the host calls when armed.
        if let Some(start) = info.start_function.take() {
            info.exports
                .insert(START_EXPORT.to_string(), ExportIndex::Function(start));
        }
        if let Some(stack_pointer) = stack_pointer {
            info.exports
                .insert(STACK_POINTER_EXPORT.to_string(), stack_pointer);
        }
        let prepared = PREPARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or_else(|| {
                MiddlewareError::new("plwasm", "the module was not prepared for compiling")
            })?;
        if prepared.costs.len() != info.functions.len() - info.num_imported_functions {
            return Err(MiddlewareError::new(
                "plwasm",
                "the module's function bodies could not be counted",
            ));
        }
        *self
            .costs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(prepared.costs);
        if let Some(code_offset) = prepared.code_offset {
            let index = info
                .custom_sections_data
                .push(Box::from(code_offset.to_le_bytes()));
            info.custom_sections
                .insert(CODE_OFFSET_SECTION.to_string(), index);
        }
        *self
            .globals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Globals {
            fuel: fuel.as_u32(),
            interrupt: interrupt.as_u32(),
            scratch: scratch.as_u32(),
        });
        Ok(())
    }
}

/// Instruments one function: passes its operators through, with a check charging the
/// function's entry cost before the first one, one charging a loop's cost at the top of each
/// loop body, and a charge before each bulk instruction.
#[derive(Debug)]
struct FunctionInstrument {
    globals: Globals,
    /// The module's function costs, and this function's index in them.
    costs: Arc<Vec<FunctionCosts>>,
    function: usize,
    /// The next loop's index in this function's loop costs.
    next_loop: usize,
    /// Operators fed so far.
    fed: usize,
}

/// How a bulk instruction's length operand (an i32 on top of the stack) is charged: memory
/// instructions per [`BULK_BYTES_PER_FUEL`] bytes, table instructions per element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bulk {
    Bytes,
    Elements,
}

fn bulk_kind(op: &Operator) -> Option<Bulk> {
    match op {
        Operator::MemoryFill { .. } | Operator::MemoryCopy { .. } | Operator::MemoryInit { .. } => {
            Some(Bulk::Bytes)
        }
        Operator::TableFill { .. }
        | Operator::TableCopy { .. }
        | Operator::TableInit { .. }
        | Operator::TableGrow { .. } => Some(Bulk::Elements),
        _ => None,
    }
}

impl FunctionInstrument {
    /// Charge a bulk instruction by its length operand, then put the operand back.
    fn emit_bulk_charge(&self, kind: Bulk, state: &mut MiddlewareReaderState<'_>) {
        let Globals { fuel, scratch, .. } = self.globals;
        state.extend([
            Operator::GlobalSet {
                global_index: scratch,
            },
            Operator::GlobalGet { global_index: fuel },
            Operator::GlobalGet {
                global_index: scratch,
            },
            Operator::I64ExtendI32U,
        ]);
        if kind == Bulk::Bytes {
            state.extend([
                Operator::I64Const {
                    value: BULK_BYTES_PER_FUEL - 1,
                },
                Operator::I64Add,
                Operator::I64Const {
                    value: BULK_BYTES_PER_FUEL.trailing_zeros() as i64,
                },
                Operator::I64ShrU,
            ]);
        }
        state.extend([Operator::I64Sub]);
        self.emit_test_and_trap(state);
        state.extend([Operator::GlobalGet {
            global_index: scratch,
        }]);
    }

    /// `fuel -= cost`, then the check.
    fn emit_check(&self, cost: i64, state: &mut MiddlewareReaderState<'_>) {
        let fuel = self.globals.fuel;
        state.extend([
            Operator::GlobalGet { global_index: fuel },
            Operator::I64Const { value: cost },
            Operator::I64Sub,
        ]);
        self.emit_test_and_trap(state);
    }

    /// With the new fuel on the stack: store it, and trap if it is negative or the interrupt
    /// flag is set.
    fn emit_test_and_trap(&self, state: &mut MiddlewareReaderState<'_>) {
        let fuel = self.globals.fuel;
        state.extend([
            Operator::GlobalSet { global_index: fuel },
            Operator::GlobalGet { global_index: fuel },
            Operator::I64Const { value: 0 },
            Operator::I64LtS,
            Operator::GlobalGet {
                global_index: self.globals.interrupt,
            },
            Operator::I32Or,
            Operator::If {
                blockty: BlockType::Empty,
            },
            Operator::Unreachable,
            Operator::End,
        ]);
    }
}

impl<'a> FunctionMiddleware<'a> for FunctionInstrument {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        if self.fed.is_multiple_of(ABORT_CHECK_EVERY) {
            compile_aborted()?;
        }
        let costs = self
            .costs
            .get(self.function)
            .ok_or_else(|| MiddlewareError::new("plwasm", "a function was not counted"))?;
        if self.fed == 0 {
            self.emit_check(costs.entry, state);
        }
        self.fed += 1;
        if let Some(kind) = bulk_kind(&operator) {
            self.emit_bulk_charge(kind, state);
        }
        let is_loop = matches!(operator, Operator::Loop { .. });
        state.push_operator(operator);
        if is_loop {
            let cost = *costs
                .loops
                .get(self.next_loop)
                .ok_or_else(|| MiddlewareError::new("plwasm", "a loop was not counted"))?;
            self.next_loop += 1;
            self.emit_check(cost, state);
        }
        Ok(())
    }
}

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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use wasmer::sys::wasmparser::{BlockType, Operator};
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
}

impl ModuleMiddleware for Instrument {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let globals = self
            .globals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .expect("transform_module_info runs before functions are compiled");
        Box::new(FunctionInstrument {
            globals,
            ops: Vec::new(),
            control: Vec::new(),
            open_loops: Vec::new(),
            loop_costs: Vec::new(),
            entry_cost: 0,
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

/// Instruments one function: buffers its operators until the final `end`, counting instructions
/// per region (outside loops, and directly inside each loop), then emits them with checks at the
/// function entry and at the top of every loop body.
#[derive(Debug)]
struct FunctionInstrument<'a> {
    globals: Globals,
    ops: Vec<Operator<'a>>,
    /// Open control frames: true for a loop.
    control: Vec<bool>,
    /// Indexes into `loop_costs` of the loops open now, innermost last.
    open_loops: Vec<usize>,
    /// Cost of each loop body, in the order the loops appear.
    loop_costs: Vec<i64>,
    entry_cost: i64,
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

impl<'a> FunctionInstrument<'a> {
    /// Charge a bulk instruction by its length operand, then put the operand back.
    fn emit_bulk_charge(&self, kind: Bulk, state: &mut MiddlewareReaderState<'a>) {
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
    fn emit_check(&self, cost: i64, state: &mut MiddlewareReaderState<'a>) {
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
    fn emit_test_and_trap(&self, state: &mut MiddlewareReaderState<'a>) {
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

impl<'a> FunctionMiddleware<'a> for FunctionInstrument<'a> {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        if self.ops.len().is_multiple_of(ABORT_CHECK_EVERY) {
            compile_aborted()?;
        }
        match self.open_loops.last() {
            Some(&i) => self.loop_costs[i] += 1,
            None => self.entry_cost += 1,
        }
        let mut function_end = false;
        match &operator {
            Operator::Loop { .. } => {
                self.loop_costs.push(0);
                self.open_loops.push(self.loop_costs.len() - 1);
                self.control.push(true);
            }
            Operator::Block { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => self.control.push(false),
            Operator::End | Operator::Delegate { .. } => match self.control.pop() {
                Some(true) => {
                    self.open_loops.pop();
                }
                Some(false) => {}
                None => function_end = true,
            },
            _ => {}
        }
        self.ops.push(operator);
        if function_end {
            self.emit_check(self.entry_cost, state);
            let mut loops = self.loop_costs.iter();
            for op in std::mem::take(&mut self.ops) {
                let is_loop = matches!(op, Operator::Loop { .. });
                if let Some(kind) = bulk_kind(&op) {
                    self.emit_bulk_charge(kind, state);
                }
                state.push_operator(op);
                if is_loop {
                    let cost = loops
                        .next()
                        .copied()
                        .ok_or_else(|| MiddlewareError::new("plwasm", "a loop was not counted"))?;
                    self.emit_check(cost, state);
                }
            }
        }
        Ok(())
    }
}

//! Compile-time instrumentation: the fuel counter and interrupt flag every module is compiled with.
//!
//! A Wasmer middleware adds two globals to each module, invisible to its own code (the module was
//! validated before they existed, so no instruction of it can name them):
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
/// Fuel a module's start function runs with (during instantiation, before any call is armed).
pub const START_FUEL: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
struct Globals {
    fuel: u32,
    interrupt: u32,
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
        info.exports
            .insert(FUEL_EXPORT.to_string(), ExportIndex::Global(fuel));
        info.exports
            .insert(INTERRUPT_EXPORT.to_string(), ExportIndex::Global(interrupt));
        *self
            .globals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Globals {
            fuel: fuel.as_u32(),
            interrupt: interrupt.as_u32(),
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

impl<'a> FunctionInstrument<'a> {
    fn emit_check(&self, cost: i64, state: &mut MiddlewareReaderState<'a>) {
        let fuel = self.globals.fuel;
        state.extend([
            Operator::GlobalGet { global_index: fuel },
            Operator::I64Const { value: cost },
            Operator::I64Sub,
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
                state.push_operator(op);
                if is_loop {
                    let cost = *loops.next().expect("one cost per loop");
                    self.emit_check(cost, state);
                }
            }
        }
        Ok(())
    }
}

//! Why a call did not return normally ([`CallFailure`]), and the ERROR each failure is reported
//! as: traps with a bounded wasm backtrace, fuel, interrupts (Postgres's own errors),
//! `proc_exit`, ABI violations, errors the guest raised.

use wasmer::RuntimeError;

use crate::errors::PlWasmError;
use crate::runtime::host_api::GuestRaised;
use crate::runtime::limits::Stop;
use crate::runtime::wasi::ProcExit;

/// Why the guest stopped: our fuel or interrupt check, `proc_exit`, or a genuine trap.
pub(super) fn classify(stop: Stop, trap: RuntimeError) -> CallFailure {
    match stop {
        Stop::Interrupted => CallFailure::Interrupted,
        Stop::OutOfFuel => CallFailure::OutOfFuel,
        // `downcast` needs the only reference to the error, so no clone here.
        Stop::NotUs => match trap.downcast::<ProcExit>() {
            Ok(ProcExit(code)) => CallFailure::Exit(code),
            Err(trap) => match trap.downcast::<GuestRaised>() {
                Ok(raised) => CallFailure::Raised(raised),
                Err(trap) => CallFailure::Trap(trap),
            },
        },
    }
}

/// Why a call did not return normally.
pub enum CallFailure {
    /// The guest trapped (or the host raised a runtime error).
    Trap(RuntimeError),
    /// A cancel or terminate was pending: the guest was stopped at its next check.
    Interrupted,
    /// The call used up `wasm.fuel_limit`.
    OutOfFuel,
    /// The guest called WASI `proc_exit` with this code.
    Exit(i32),
    /// The guest broke ABI v1 (bad pointer, failed allocation, missing export).
    Abi(String),
    /// The guest raised an ERROR through `plwasm.error` / `plwasm.error_code`.
    Raised(GuestRaised),
    /// The instance is already running (a re-entrant call).
    Busy,
}

/// Frames of a wasm backtrace shown in a trap's DETAIL; deeper ones are counted.
const MAX_TRACE_FRAMES: usize = 16;

impl CallFailure {
    /// The ERROR a failed call of `export` (module `module`, SQL function `function`) is
    /// reported as. For an interrupt it raises Postgres's own error right here (57014 for a
    /// cancel or statement_timeout, a FATAL exit for pg_terminate_backend): only call it after
    /// the wasm call returned.
    pub fn into_error(self, function: &str, module: &str, export: &str) -> PlWasmError {
        let (function, module, export) =
            (function.to_string(), module.to_string(), export.to_string());
        match self {
            CallFailure::Busy => PlWasmError::Reentrant { function, module },
            CallFailure::Raised(raised) => {
                // Postgres knows the SQLSTATEs of its errcodes table; others are refused.
                let packed = raised
                    .sqlstate
                    .map(crate::runtime::host_api::packed_sqlstate);
                let known = packed.filter(|p| pgrx::PgSqlErrorCode::from(*p) as i32 == *p);
                let rejected = raised
                    .bad_sqlstate
                    .or_else(|| match (raised.sqlstate, known) {
                        (Some(code), None) => Some(String::from_utf8_lossy(&code).into_owned()),
                        _ => None,
                    });
                PlWasmError::GuestError {
                    function,
                    message: raised.message,
                    sqlstate: known,
                    rejected_sqlstate: rejected,
                }
            }
            CallFailure::Abi(reason) => PlWasmError::AbiViolation {
                function,
                module,
                export,
                reason,
            },
            CallFailure::Exit(code) => PlWasmError::Exit {
                function,
                module,
                export,
                code,
            },
            CallFailure::Interrupted => {
                // Raises Postgres's own error (57014 for a cancel or statement_timeout; a FATAL
                // exit for pg_terminate_backend).
                pgrx::check_for_interrupts!();
                // Interrupts are held off here (e.g. inside a critical section): still stop.
                PlWasmError::Interrupted {
                    function,
                    module,
                    export,
                }
            }
            CallFailure::OutOfFuel => PlWasmError::OutOfFuel {
                function,
                module,
                export,
                limit: crate::gucs::FUEL_LIMIT.get(),
            },
            CallFailure::Trap(trap) => {
                if trap.clone().to_trap() == Some(wasmer::sys::vm::TrapCode::StackOverflow) {
                    return PlWasmError::StackExhausted {
                        function,
                        module,
                        export,
                    };
                }
                let frames = trap.trace();
                let mut trace = frames
                    .iter()
                    .take(MAX_TRACE_FRAMES)
                    .map(|frame| {
                        format!(
                            "  at {} (func {}, offset {:#x})",
                            frame.function_name().unwrap_or("<unnamed>"),
                            frame.func_index(),
                            frame.module_offset()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                if frames.len() > MAX_TRACE_FRAMES {
                    trace.push_str(&format!(
                        "\n  ... {} more frames",
                        frames.len() - MAX_TRACE_FRAMES
                    ));
                }
                PlWasmError::Trap {
                    function,
                    module,
                    export,
                    trap: trap.message(),
                    trace,
                }
            }
        }
    }
}

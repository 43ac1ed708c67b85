//! Why a call did not return normally ([`CallFailure`]), and the ERROR each failure is reported
//! as: traps with a bounded wasm backtrace, fuel, interrupts (Postgres's own errors),
//! `proc_exit`, ABI violations, errors the guest raised.

use wasmer::sys::vm::TrapCode;
use wasmer::{Module, RuntimeError};

use crate::errors::PlWasmError;
use crate::runtime::backtrace;
use crate::runtime::host_api::GuestRaised;
use crate::runtime::limits::Stop;
use crate::runtime::spi::QueryError;
use crate::runtime::wasi::ProcExit;

/// What [`classify`] needs to know about the instance a trap came from.
pub(super) struct TrapSite<'a> {
    /// For the backtrace's names and source lines.
    pub module: &'a Module,
    /// The module's shadow stack pointer (see `instrument.rs`) had left its memory, or was at
    /// the bottom of it, when the guest stopped.
    pub shadow_stack_exhausted: bool,
}

/// Why the guest stopped: our fuel or interrupt check, `proc_exit`, or a genuine trap.
pub(super) fn classify(stop: Stop, trap: RuntimeError, site: &TrapSite) -> CallFailure {
    // A query's ERROR first: a cancel or statement_timeout during the query is that ERROR
    // (57014, with Postgres's own message), even if the ticker also flagged the guest.
    let trap = match trap.downcast::<QueryError>() {
        Ok(error) => return CallFailure::Query(Box::new(error)),
        Err(trap) => trap,
    };
    match stop {
        Stop::Interrupted => CallFailure::Interrupted,
        Stop::OutOfFuel => CallFailure::OutOfFuel,
        // `downcast` needs the only reference to the error, so no clone here.
        Stop::NotUs => match trap.downcast::<ProcExit>() {
            Ok(ProcExit(code)) => CallFailure::Exit(code),
            Err(trap) => match trap.downcast::<GuestRaised>() {
                Ok(raised) => CallFailure::Raised(raised),
                Err(trap) => {
                    let code = trap.clone().to_trap();
                    let trace = backtrace::render(site.module, trap.trace());
                    if code == Some(TrapCode::StackOverflow) {
                        CallFailure::StackExhausted {
                            trace,
                            shadow: false,
                        }
                    } else if code == Some(TrapCode::HeapAccessOutOfBounds)
                        && site.shadow_stack_exhausted
                    {
                        CallFailure::StackExhausted {
                            trace,
                            shadow: true,
                        }
                    } else {
                        CallFailure::Trap {
                            message: trap.message(),
                            trace,
                        }
                    }
                }
            },
        },
    }
}

/// Why a call did not return normally.
pub enum CallFailure {
    /// The guest trapped (or the host raised a runtime error); `trace` is rendered by
    /// `backtrace.rs`.
    Trap { message: String, trace: String },
    /// The call ran out of stack: Wasmer's (`shadow: false`), or the stack a Rust or C module
    /// keeps in its own linear memory (`shadow: true`).
    StackExhausted { trace: String, shadow: bool },
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
    /// A query the guest ran (`plwasm.query`) raised this ERROR, or was refused.
    Query(Box<QueryError>),
}

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
            CallFailure::Query(error) => PlWasmError::Query {
                function,
                module,
                export,
                error,
            },
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
                if let Some(panic) = raised.panic {
                    return PlWasmError::GuestPanic {
                        function,
                        module,
                        export,
                        message: raised.message,
                        location: panic.location,
                    };
                }
                let by = format!(
                    "raised by {function} (module \"{module}\", {})",
                    crate::errors::site(&export)
                );
                PlWasmError::GuestError {
                    message: raised.message,
                    sqlstate: known,
                    detail: match rejected {
                        Some(code) => format!(
                            "{by}; it asked for SQLSTATE \"{code}\", which a module may not raise (a SQLSTATE Postgres knows, outside classes 00-02, 57, 58 and XX)"
                        ),
                        None => by,
                    },
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
            CallFailure::StackExhausted { trace, shadow } => PlWasmError::StackExhausted {
                function,
                module,
                export,
                trace,
                shadow,
            },
            CallFailure::Trap { message, trace } => PlWasmError::Trap {
                function,
                module,
                export,
                trap: message,
                trace,
            },
        }
    }
}

//! Report: what the guest wrote (logs, stdout, stderr) and why a call or its result failed, as
//! Postgres messages and errors naming the function, module and export. Always after the wasm
//! call has returned.

use super::CallSite;
use crate::abi::json_form;
use crate::abi::values::ValueError;
use crate::errors::PlWasmError;
use crate::runtime::failure::CallFailure;
use crate::runtime::instance::GuestOutput;

impl CallSite {
    pub(super) fn mismatch(&self, reason: json_form::DecodeError) -> ! {
        PlWasmError::ResultMismatch {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            reason: reason.to_string(),
        }
        .report()
    }

    pub(super) fn out_of_range(&self, value: i64, scalar: crate::abi::SqlScalar) -> ! {
        PlWasmError::ResultOutOfRange {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            value,
            type_name: scalar.sql_name().to_string(),
        }
        .report()
    }

    pub(super) fn bad_result(&self, reason: ValueError) -> ! {
        PlWasmError::BadResult {
            function: self.function.clone(),
            module: self.instance.label.clone(),
            export: self.export.clone(),
            text: matches!(reason, ValueError::InvalidUtf8(_) | ValueError::Nul),
            reason: reason.to_string(),
        }
        .report()
    }

    /// Report what the guest wrote: `plwasm.log` messages at their level, stdout as NOTICE,
    /// stderr as LOG. After the call returned.
    pub(super) fn report_output(&self, output: GuestOutput) {
        for (level, message) in &output.logs {
            match level {
                i32::MIN..=0 => pgrx::debug1!("{message}"),
                1 => pgrx::log!("{message}"),
                2 => pgrx::info!("{message}"),
                3 => pgrx::notice!("{message}"),
                _ => pgrx::warning!("{message}"),
            }
        }
        if output.logs_dropped > 0 {
            pgrx::notice!(
                "{}: {} plwasm.log messages were dropped (at most {} messages or {} bytes per call are kept)",
                self.function,
                output.logs_dropped,
                crate::runtime::guest::MAX_LOGS,
                crate::runtime::guest::MAX_LOG_BYTES
            );
        }
        let (stdout, stdout_dropped) = output.stdout;
        let (stderr, stderr_dropped) = output.stderr;
        for line in stdout {
            pgrx::notice!("{line}");
        }
        for line in stderr {
            pgrx::log!("{} (stderr): {line}", self.function);
        }
        if stdout_dropped + stderr_dropped > 0 {
            pgrx::notice!(
                "{}: {} bytes of output were dropped (at most {} bytes per stream and call are kept)",
                self.function,
                stdout_dropped + stderr_dropped,
                crate::runtime::guest_output::MAX_CAPTURED_BYTES
            );
        }
    }

    /// Turn a failed call into the right ERROR. Runs after the wasm call returned.
    pub(super) fn fail(&self, failure: CallFailure) -> ! {
        if !matches!(failure, CallFailure::Busy) {
            // Its memory may be half-updated: the next call gets a fresh instance.
            self.instance.discard();
        }
        failure
            .into_error(&self.function, &self.instance.label, &self.export)
            .report()
    }
}

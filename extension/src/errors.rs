//! Errors that reach SQL.
//!
//! Every failure plwasm can report is a variant of [`PlWasmError`]. Each variant knows its SQLSTATE
//! and names the objects involved (module, export, SQL function), so users see an ordinary Postgres
//! ERROR they can catch by code. Nothing in plwasm raises a bare panic for a user-caused problem.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// A failure at the SQL boundary of plwasm (load/unload/wat, validator, call handler).
#[derive(Debug, thiserror::Error)]
pub enum PlWasmError {
    #[error("invalid module name \"{name}\": {reason}")]
    InvalidModuleName { name: String, reason: String },

    #[error("module \"{module}\" is not a valid WebAssembly module: {reason}")]
    InvalidModule { module: String, reason: String },

    #[error(
        "module \"{module}\" was built for plwasm ABI {declared}, but this server provides ABI v{}",
        crate::runtime::ABI_VERSION
    )]
    ForeignAbi { module: String, declared: String },

    #[error("module \"{module}\" imports {imports}, which plwasm does not provide")]
    UnsupportedImports { module: String, imports: String },

    #[error("module \"{name}\" already exists")]
    ModuleExists { name: String },

    #[error("module \"{name}\" does not exist")]
    ModuleNotFound { name: String },

    #[error("module \"{name}\" has no previous version to roll back to")]
    NoPreviousVersion { name: String },

    #[error("module \"{name}\" is used by {count} SQL function(s): {functions}")]
    ModuleInUse {
        name: String,
        count: usize,
        functions: String,
    },

    #[error("replacing module \"{name}\" would break SQL function(s): {problems}")]
    ReplaceBreaksFunctions { name: String, problems: String },

    #[error("invalid WebAssembly text: {message}")]
    WatSyntax { message: String },

    #[error("invalid body for function {function}: {reason}")]
    InvalidBody { function: String, reason: String },

    #[error("function {function}: module \"{module}\" has no export named \"{export}\"")]
    ExportNotFound {
        function: String,
        module: String,
        export: String,
    },

    #[error("function {function}: export \"{export}\" of module \"{module}\" is a {kind}, not a function")]
    ExportNotFunction {
        function: String,
        module: String,
        export: String,
        kind: String,
    },

    #[error("function {function}: export \"{export}\" of module \"{module}\" has signature {actual}, but the SQL signature needs {expected}")]
    SignatureMismatch {
        function: String,
        module: String,
        export: String,
        expected: String,
        actual: String,
    },

    #[error("function {function}: {position} has type {type_name}, which LANGUAGE wasm does not support")]
    UnsupportedType {
        function: String,
        position: String,
        type_name: String,
    },

    #[error("function {function}: module \"{module}\" could not be instantiated: {reason}")]
    Instantiate {
        function: String,
        module: String,
        reason: String,
    },

    #[error("wasm trap in function {function} (module \"{module}\", {site}): {trap}", site = site(.export))]
    Trap {
        function: String,
        module: String,
        export: String,
        trap: String,
        trace: String,
    },

    #[error("function {function} was called with a NULL argument {position}, but is not STRICT")]
    NullArgument { function: String, position: usize },

    #[error("function {function} (module \"{module}\", {site}) returned {value}, which is out of range for type {type_name}", site = site(.export))]
    ResultOutOfRange {
        function: String,
        module: String,
        export: String,
        value: i64,
        type_name: String,
    },

    #[error("module \"{module}\" is {size} bytes, more than wasm.max_module_size ({limit} bytes)")]
    ModuleTooLarge {
        module: String,
        size: usize,
        limit: usize,
    },

    #[error("function {function}: module \"{module}\" declares {pages} pages (64kB each) of linear memory, more than wasm.max_memory allows ({limit} pages)")]
    MemoryLimit {
        function: String,
        module: String,
        pages: u32,
        limit: u32,
    },

    #[error("function {function}: module \"{module}\" declares tables of at least {elements} elements, more than wasm.max_memory allows for tables ({limit} elements of 8 bytes)")]
    TableLimit {
        function: String,
        module: String,
        elements: u32,
        limit: u64,
    },

    #[error("function {function} (module \"{module}\", {site}) ran out of fuel: wasm.fuel_limit is {limit} instructions per call", site = site(.export))]
    OutOfFuel {
        function: String,
        module: String,
        export: String,
        limit: i32,
    },

    #[error("function {function} (module \"{module}\", {site}) exhausted the wasm call stack", site = site(.export))]
    StackExhausted {
        function: String,
        module: String,
        export: String,
        /// Rendered by `runtime/backtrace.rs`.
        trace: String,
        /// The module's own stack (in its linear memory) overflowed, not Wasmer's.
        shadow: bool,
    },

    #[error("function {function} (module \"{module}\", {site}) was interrupted", site = site(.export))]
    Interrupted {
        function: String,
        module: String,
        export: String,
    },

    #[error(
        "function {function} (module \"{module}\", {site}) called proc_exit({code})", site = site(.export))]
    Exit {
        function: String,
        module: String,
        export: String,
        code: i32,
    },

    #[error("function {function}: argument {position} cannot be passed to wasm: {reason}")]
    BadArgument {
        function: String,
        position: usize,
        reason: String,
    },

    #[error("function {function} (module \"{module}\", {site}) returned an invalid value: {reason}", site = site(.export))]
    BadResult {
        function: String,
        module: String,
        export: String,
        reason: String,
        /// Invalid text (UTF-8 or NUL): 22021 rather than 38000.
        text: bool,
    },

    #[error("function {function} (module \"{module}\", {site}) returned a value that does not fit its result type: {reason}", site = site(.export))]
    ResultMismatch {
        function: String,
        module: String,
        export: String,
        reason: String,
    },

    #[error(
        "function {function} (module \"{module}\", {site}) broke ABI v1: {reason}", site = site(.export))]
    AbiViolation {
        function: String,
        module: String,
        export: String,
        reason: String,
    },

    #[error("function {function}: module \"{module}\" must export {what} (ABI v1, variable-length values)")]
    AbiExportMissing {
        function: String,
        module: String,
        what: String,
    },

    #[error("{message}")]
    GuestError {
        message: String,
        /// The SQLSTATE the guest chose (packed), if valid and known to Postgres.
        sqlstate: Option<i32>,
        /// Who raised it ("raised by f(int) (module \"m\", export \"f\")"), and a SQLSTATE the
        /// guest asked for that was not valid.
        detail: String,
    },

    #[error("wasm panic in function {function} (module \"{module}\", {site}): {message}", site = site(.export))]
    GuestPanic {
        function: String,
        module: String,
        export: String,
        message: String,
        /// `file:line` where it panicked, when the guest said.
        location: Option<String>,
    },

    #[error("module \"{module}\" does not describe its functions: {reason}")]
    BadDescription { module: String, reason: String },

    #[error("permission denied to {action}: {reason}")]
    PermissionDenied { action: String, reason: String },

    /// A query run from wasm raised this ERROR (or was refused): reported with its own
    /// SQLSTATE, message and hint, and a detail line naming the function.
    #[error("{}", error.message)]
    Query {
        function: String,
        module: String,
        export: String,
        error: Box<crate::runtime::spi::QueryError>,
    },

    #[error("trigger function {function} can only be called as a trigger")]
    NotCalledAsTrigger { function: String },

    #[error("trigger function {function} cannot have declared arguments")]
    TriggerArguments { function: String },

    #[error("function {function}: module \"{module}\" is already running in this backend (re-entrant call)")]
    Reentrant { function: String, module: String },
}

/// Where in a module an error arose, for messages: `export "name"`, or `start function` for the
/// module's start function (which the instrumentation exports under the reserved
/// [`START_EXPORT`](crate::runtime::instrument::START_EXPORT); a module cannot export that name itself).
pub fn site(export: &str) -> String {
    if export == crate::runtime::instrument::START_EXPORT {
        "start function".to_string()
    } else {
        format!("export \"{export}\"")
    }
}

impl PlWasmError {
    /// The SQLSTATE this error is reported with.
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::InvalidModuleName { .. } => ERRCODE_INVALID_NAME,
            Self::InvalidModule { .. } => ERRCODE_INVALID_BINARY_REPRESENTATION,
            Self::UnsupportedImports { .. } | Self::ForeignAbi { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::ModuleExists { .. } => ERRCODE_DUPLICATE_OBJECT,
            Self::ModuleNotFound { .. } => ERRCODE_UNDEFINED_OBJECT,
            Self::NoPreviousVersion { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::ModuleInUse { .. } | Self::ReplaceBreaksFunctions { .. } => {
                ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST
            }
            Self::WatSyntax { .. } => ERRCODE_SYNTAX_ERROR,
            Self::InvalidBody { .. } | Self::SignatureMismatch { .. } => {
                ERRCODE_INVALID_FUNCTION_DEFINITION
            }
            Self::ExportNotFound { .. } => ERRCODE_UNDEFINED_FUNCTION,
            Self::ExportNotFunction { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            Self::UnsupportedType { .. } | Self::NotCalledAsTrigger { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::TriggerArguments { .. } => ERRCODE_INVALID_FUNCTION_DEFINITION,
            Self::Instantiate { .. }
            | Self::Trap { .. }
            | Self::Exit { .. }
            | Self::GuestPanic { .. } => ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            Self::NullArgument { .. } => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::ResultOutOfRange { .. } => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            Self::Reentrant { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::ModuleTooLarge { .. }
            | Self::MemoryLimit { .. }
            | Self::TableLimit { .. }
            | Self::OutOfFuel { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Self::StackExhausted { .. } => ERRCODE_STATEMENT_TOO_COMPLEX,
            Self::PermissionDenied { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::BadDescription { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Query { error, .. } => error.sqlstate,
            Self::GuestError { sqlstate, .. } => {
                sqlstate.map_or(ERRCODE_RAISE_EXCEPTION, PgSqlErrorCode::from)
            }
            Self::BadArgument { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::BadResult { text: true, .. } => ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            Self::BadResult { .. } | Self::AbiViolation { .. } => {
                ERRCODE_EXTERNAL_ROUTINE_EXCEPTION
            }
            Self::AbiExportMissing { .. } => ERRCODE_INVALID_FUNCTION_DEFINITION,
            Self::ResultMismatch { .. } => ERRCODE_DATATYPE_MISMATCH,
            Self::Interrupted { .. } => ERRCODE_QUERY_CANCELED,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::GuestError { detail, .. } => Some(detail.clone()),
            Self::Query {
                function,
                module,
                export,
                error,
            } => {
                let context = match &error.statement {
                    Some(statement) => format!(
                        "In a query of function {function} (module \"{module}\", {}): {}",
                        site(export),
                        crate::runtime::backtrace::shown(statement.trim())
                    ),
                    None => format!(
                        "In a query of function {function} (module \"{module}\", {}).",
                        site(export)
                    ),
                };
                Some(match &error.detail {
                    Some(detail) => format!("{detail}\n{context}"),
                    None => context,
                })
            }
            Self::GuestPanic {
                location: Some(location),
                ..
            } => Some(format!("panic at {location}")),
            Self::Trap { trace, .. } | Self::StackExhausted { trace, .. } if !trace.is_empty() => {
                Some(format!("wasm backtrace:\n{trace}"))
            }
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::ModuleExists { .. } => {
                Some("Pass replace => true to wasm.load to replace it.".into())
            }
            Self::ModuleInUse { .. } => Some("Drop those functions first.".into()),
            Self::Query { error, .. } => error.hint.clone(),
            Self::TriggerArguments { .. } => Some(
                "The arguments of CREATE TRIGGER ... EXECUTE FUNCTION f('a', ...) reach the \
                 trigger function in its event's \"args\"."
                    .into(),
            ),
            Self::NoPreviousVersion { .. } => Some(
                "A replace keeps the version it replaces (up to wasm.module_history of them); \
                 wasm.module_versions lists them. A module loaded anew, or after an unload, has \
                 none, and each rollback uses one up."
                    .into(),
            ),
            Self::ModuleNotFound { .. } => Some(
                "wasm.modules lists the loaded modules; wasm.load loads one. While a dump is \
                 restored, the modules must come before what needs them: see \"Backup and \
                 restore\" in plwasm's docs/sql-reference.md."
                    .into(),
            ),
            Self::NullArgument { .. } => Some(
                "Declare the function STRICT, or have its module import plwasm.arg_is_null to \
                 receive NULL arguments (see the ABI's host API)."
                    .into(),
            ),
            Self::OutOfFuel { .. } => {
                Some("A superuser can raise wasm.fuel_limit (0 means unlimited).".into())
            }
            Self::MemoryLimit { .. } | Self::TableLimit { .. } => {
                Some("A superuser can raise wasm.max_memory.".into())
            }
            Self::ModuleTooLarge { .. } => {
                Some("A superuser can raise wasm.max_module_size.".into())
            }
            Self::StackExhausted { shadow: false, .. } => {
                Some("The function recursed too deeply; the wasm stack of a call is 1MB.".into())
            }
            Self::StackExhausted { shadow: true, .. } => Some(
                "The function recursed too deeply for the stack the module keeps in its own \
                 memory (1 MiB by default for Rust and C); recurse less, or link the module with \
                 a larger stack (Rust: -C link-arg=-zstack-size=BYTES)."
                    .into(),
            ),
            Self::ForeignAbi { .. } => Some(format!(
                "Rebuild the module with an SDK for ABI v{} (the plwasm-udf crate or plwasm.h of \
                 this plwasm release), or install a plwasm that provides the ABI it needs.",
                crate::runtime::ABI_VERSION
            )),
            Self::UnsupportedImports { .. } => Some(
                "plwasm provides functions of WASI preview 1 (wasi_snapshot_preview1) and of its \
                 host API (plwasm), with their exact signatures; no memories, tables or globals."
                    .into(),
            ),
            _ => None,
        }
    }

    /// Raise this error as a Postgres ERROR. Never returns.
    #[track_caller]
    #[allow(
        clippy::unreachable,
        reason = "invariant: an ERROR-level report does not return"
    )]
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "plwasm");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR-level reports do not return")
    }
}

/// Unwrap a plwasm result, raising the error as a Postgres ERROR.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T, PlWasmError> {
    #[track_caller]
    fn or_report(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.report(),
        }
    }
}

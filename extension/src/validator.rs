//! The validator of `LANGUAGE wasm`: checks a function when it is created or replaced.
//!
//! Always: the SQL signature maps onto the ABI and the body parses. With `check_function_bodies`
//! on (the default; pg_dump turns it off on restore): the module exists, the export exists and is
//! a function, and its wasm signature matches. A stored module's name is share-locked
//! (`catalog::lock`, with checks off too) so it cannot be unloaded, replaced or first loaded
//! before the new function commits; an inline module is compiled and cached.

use pgrx::prelude::*;

use crate::call::binding;
use crate::catalog::target::FunctionTarget;
use crate::catalog::{self, SqlFunction};
use crate::errors::{OrReport, PlWasmError};
use crate::runtime::cache;

/// Validate a `LANGUAGE wasm` function. Registered as the language's validator in `lib.rs`.
#[pg_extern]
unsafe fn plwasm_validator(fn_oid: pg_sys::Oid, fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: fcinfo is this call's valid FunctionCallInfo.
    let validator_oid = unsafe { (*(*fcinfo).flinfo).fn_oid };
    // SAFETY: plain catalog check; returns false when the caller may not validate.
    if !unsafe { pg_sys::CheckFunctionValidatorAccess(validator_oid, fn_oid) } {
        return;
    }
    let f = SqlFunction::from_oid(fn_oid);
    let signature = binding::sql_signature(&f).or_report();
    let target = binding::target(&f).or_report();
    // SAFETY: reading a GUC variable.
    if !unsafe { pg_sys::check_function_bodies } {
        // Not checked now, but the name's lock is still taken (whether the module exists or not):
        // a load of that name waits for this transaction and then sees this function, so it
        // applies its rule on names that functions already use (privileges.rs).
        // Temporary functions neither pin nor reserve a name, so they take no lock either.
        // SAFETY: catalog look-ups of the function's schema by OID.
        let temporary = unsafe { pg_sys::isAnyTempNamespace(pg_sys::get_func_namespace(fn_oid)) };
        if let (FunctionTarget::Stored { module, .. }, false) = (&target, temporary) {
            let _ = catalog::lock(module, catalog::ModuleLock::Bind);
        }
        return;
    }
    let result = match &target {
        FunctionTarget::Stored { module, .. } => {
            if catalog::lock(module, catalog::ModuleLock::Bind).is_none() {
                Err(PlWasmError::ModuleNotFound {
                    name: module.clone(),
                })
            } else {
                let stored =
                    catalog::lookup(module, false).ok_or_else(|| PlWasmError::ModuleNotFound {
                        name: module.clone(),
                    });
                stored.and_then(|m| binding::check(&f, &signature, &target, &m.exports))
            }
        }
        FunctionTarget::Inline { source, .. } => cache::inline(source, &f.display, !f.temporary)
            .and_then(|instance| binding::check(&f, &signature, &target, &instance.exports)),
    };
    result.or_report();
}

//! Who may do what with modules, and plwasm's own access to its catalog.
//!
//! - `wasm.load` / `wasm.unload`: superusers and members of `wasm_loader` (EXECUTE is also revoked
//!   from PUBLIC in the extension script; this check holds even if someone grants it back).
//! - Replacing or unloading a module: its owner (or a member of the owning role) or a superuser.
//! - Loading a new name that functions in permanent schemas already name (created while function
//!   bodies were not checked): a role with the privileges of each of their owners, or a superuser.
//! - The catalog table is not readable or writable by ordinary roles. plwasm reads and writes it
//!   itself, after the checks above, through table and index access that needs no privilege and
//!   no change of user (see `catalog.rs`): no SQL ever runs with rights the caller lacks.

use pgrx::pg_sys;

use crate::catalog::{ModuleOwner, SqlFunction};
use crate::errors::PlWasmError;

/// The role whose members may load modules.
pub const LOADER_ROLE: &std::ffi::CStr = c"wasm_loader";

/// The current user (the role SQL runs as now).
#[inline]
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: no preconditions inside a transaction.
    unsafe { pg_sys::GetUserId() }
}

fn is_superuser() -> bool {
    // SAFETY: plain catalog check of the current user.
    unsafe { pg_sys::superuser() }
}

fn role_name(role: pg_sys::Oid) -> String {
    role_name_of(role).unwrap_or_else(|| format!("role {role}"))
}

/// The name of role `role`, or None if there is no such role.
pub fn role_name_of(role: pg_sys::Oid) -> Option<String> {
    // SAFETY: with noerr = true an unknown role yields NULL, handled below.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, true);
        (!name.is_null()).then(|| {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// Require superuser or membership in `wasm_loader` to load or unload modules.
pub fn require_loader(action: &str) -> Result<(), PlWasmError> {
    if is_superuser() {
        return Ok(());
    }
    let user = current_user();
    // SAFETY: catalog look-ups by name/oid; missing_ok so a dropped role just denies.
    let allowed = unsafe {
        let loader = pg_sys::get_role_oid(LOADER_ROLE.as_ptr(), true);
        loader != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, loader)
    };
    if allowed {
        Ok(())
    } else {
        Err(PlWasmError::PermissionDenied {
            action: action.to_string(),
            reason: format!(
                "only superusers and members of role wasm_loader may, and {} is neither",
                role_name(user)
            ),
        })
    }
}

/// Require ownership of a module (its owning role's privileges) or superuser. A module whose
/// owner is gone (see [`ModuleOwner::role`]) is only for superusers.
pub fn require_owner(module: &str, owner: &ModuleOwner, action: &str) -> Result<(), PlWasmError> {
    if is_superuser() {
        return Ok(());
    }
    let reason = match owner.role() {
        // SAFETY: plain catalog check.
        Some(role) if unsafe { pg_sys::has_privs_of_role(current_user(), role) } => return Ok(()),
        Some(role) => format!("it belongs to {}", role_name(role)),
        None => "it has no owner any more (its role was dropped or renamed, or it was restored \
                 from another cluster); a superuser can give it one with wasm.set_owner"
            .to_string(),
    };
    Err(PlWasmError::PermissionDenied {
        action: format!("{action} module \"{module}\""),
        reason,
    })
}

/// Require that the current user may claim the unused module name `module`, which `functions`
/// (in permanent schemas) already name: functions created while function bodies were not checked
/// (as pg_restore does) bind to whatever is loaded under their module's name, so only a role with
/// the privileges of each of their owners (or a superuser) may load it, never a loader they do
/// not trust. Temporary functions neither pin a module nor reserve its name (any role could
/// otherwise keep loaders from any name for as long as its session lasts).
pub fn require_may_claim(module: &str, functions: &[SqlFunction]) -> Result<(), PlWasmError> {
    if is_superuser() {
        return Ok(());
    }
    // SAFETY (of has_privs_of_role): plain catalog checks.
    let foreign = functions
        .iter()
        .find(|f| !unsafe { pg_sys::has_privs_of_role(current_user(), f.owner) });
    match foreign {
        None => Ok(()),
        Some(f) => Err(PlWasmError::PermissionDenied {
            action: format!("load module \"{module}\""),
            reason: format!(
                "function {} of role {} already names it and would run the code loaded under \
                 that name: only that role or a superuser may load it",
                f.display,
                role_name(f.owner)
            ),
        }),
    }
}

/// Require superuser or membership in `wasm_capabilities` to give modules capabilities.
pub fn require_granter(module: &str) -> Result<(), PlWasmError> {
    if is_superuser() {
        return Ok(());
    }
    let user = current_user();
    let granter = crate::catalog::capabilities::GRANTER_ROLE;
    // SAFETY: catalog look-ups by name/oid; missing_ok so a dropped role just denies.
    let allowed = unsafe {
        let role = pg_sys::get_role_oid(granter.as_ptr(), true);
        role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, role)
    };
    if allowed {
        return Ok(());
    }
    Err(PlWasmError::PermissionDenied {
        action: format!("give module \"{module}\" capabilities"),
        reason: format!(
            "only superusers and members of role wasm_capabilities may, and {} is neither \
             (a superuser can GRANT wasm_capabilities TO it)",
            role_name(user)
        ),
    })
}

/// Require superuser.
pub fn require_superuser(action: &str) -> Result<(), PlWasmError> {
    if is_superuser() {
        Ok(())
    } else {
        Err(PlWasmError::PermissionDenied {
            action: action.to_string(),
            reason: "only superusers may".into(),
        })
    }
}

//! Who may do what with modules, and plwasm's own access to its catalog.
//!
//! - `wasm.load` / `wasm.unload`: superusers and members of `wasm_loader` (EXECUTE is also revoked
//!   from PUBLIC in the extension script; this check holds even if someone grants it back).
//! - Replacing or unloading a module: its owner (or a member of the owning role) or a superuser.
//! - The catalog table is not readable or writable by ordinary roles. plwasm reads and writes it
//!   itself, after the checks above, inside [`as_catalog_owner`], which switches the current user
//!   to the bootstrap superuser for the duration of a closure (like Postgres's own internal
//!   accesses with `SECURITY_LOCAL_USERID_CHANGE`).

use pgrx::pg_sys;

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
    // SAFETY: with noerr = true an unknown role yields NULL, handled below.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, true);
        if name.is_null() {
            format!("role {role}")
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        }
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

/// Require ownership of a module (its owning role's privileges) or superuser.
pub fn require_owner(module: &str, owner: pg_sys::Oid, action: &str) -> Result<(), PlWasmError> {
    // SAFETY: plain catalog check.
    if is_superuser() || unsafe { pg_sys::has_privs_of_role(current_user(), owner) } {
        Ok(())
    } else {
        Err(PlWasmError::PermissionDenied {
            action: format!("{action} module \"{module}\""),
            reason: format!("it belongs to {}", role_name(owner)),
        })
    }
}

/// Restores the saved user and security context when dropped (also while unwinding an ERROR).
struct RestoreUser {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for RestoreUser {
    fn drop(&mut self) {
        // SAFETY: restores exactly what `as_catalog_owner` saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Run `f` as the bootstrap superuser, for plwasm's own catalog accesses.
pub fn as_catalog_owner<R>(f: impl FnOnce() -> R) -> R {
    let mut saved = RestoreUser {
        user: pg_sys::InvalidOid,
        context: 0,
    };
    // SAFETY: save, then switch; `saved` restores on every exit path.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved.user, &mut saved.context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            saved.context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = f();
    drop(saved);
    result
}

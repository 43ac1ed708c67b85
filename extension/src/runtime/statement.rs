//! Which statement a call belongs to, so that one statement runs one version of each module.
//!
//! Code resolution follows the latest committed catalog, and Postgres delivers other sessions'
//! commits whenever a backend takes a new lock, also in the middle of a statement; without
//! more, a module replaced while a statement runs would serve its first rows from the old
//! version and its last ones from the new (`runtime/cache.rs` pins each statement's instances).
//!
//! A statement here is what the client runs through one portal: a query, one `FETCH` after
//! another of a cursor, a `DO` block or a `CALL` with everything they run (functions, triggers,
//! nested queries), identified by `ActivePortal` while it runs. Each gets a number; a memory
//! context callback on the portal's memory tells when it ends (the portal is dropped), and the
//! ended numbers are collected at the next resolution, so nothing is freed from inside the
//! callback. Without an active portal (a background worker, a parallel worker, a call from a
//! validator) there is no statement: number 0, and nothing is pinned.

use std::cell::RefCell;

use pgrx::pg_sys;

thread_local! {
    static STATEMENTS: RefCell<Statements> = RefCell::new(Statements::default());
    /// Statements whose portal went away, until the next [`current`] collects them. Separate
    /// from `STATEMENTS` so the callback never meets a borrowed cell.
    static ENDED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Statements {
    /// Portals running a statement (a cursor's portal runs inside another's), by address.
    active: Vec<(usize, u64)>,
    last: u64,
}

/// The running statement's number (0: none), and the numbers of the statements that ended
/// since the last call.
pub fn current() -> (u64, Vec<u64>) {
    let ended = ENDED.with(|e| std::mem::take(&mut *e.borrow_mut()));
    // SAFETY: a read of the backend's global; the portal it points to is valid while it is set.
    let portal = unsafe { pg_sys::ActivePortal };
    STATEMENTS.with(|s| {
        let mut s = s.borrow_mut();
        // Ended portals first: a new portal may have the address of one that ended.
        s.active.retain(|(_, id)| !ended.contains(id));
        if portal.is_null() {
            return (0, ended);
        }
        let address = portal as usize;
        if let Some((_, id)) = s.active.iter().find(|(p, _)| *p == address) {
            return (*id, ended);
        }
        s.last += 1;
        let id = s.last;
        // SAFETY: the active portal's memory lives until the portal is dropped; the callback
        // record is allocated in it, so it lives exactly as long as needed.
        unsafe {
            let context = (*portal).portalContext;
            if context.is_null() {
                return (0, ended);
            }
            let callback = pg_sys::MemoryContextAlloc(
                context,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            ) as *mut pg_sys::MemoryContextCallback;
            callback.write(pg_sys::MemoryContextCallback {
                func: Some(statement_ended),
                arg: id as usize as *mut std::ffi::c_void,
                next: std::ptr::null_mut(),
            });
            pg_sys::MemoryContextRegisterResetCallback(context, callback);
        }
        s.active.push((address, id));
        (id, ended)
    })
}

/// Runs when a statement's portal memory is reset or deleted: only records the number.
unsafe extern "C-unwind" fn statement_ended(arg: *mut std::ffi::c_void) {
    let id = arg as usize as u64;
    ENDED.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.push(id);
        }
    });
}

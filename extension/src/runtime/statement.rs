//! Which statement a call belongs to, so that one statement runs one version of each module.
//!
//! Code resolution follows the latest committed catalog, and Postgres delivers other sessions'
//! commits whenever a backend takes a new lock, also in the middle of a statement; without
//! more, a module replaced while a statement runs would serve its first rows from the old
//! version and its last ones from the new (`runtime/cache.rs` pins each statement's versions).
//!
//! A statement here is what the client runs through one portal: a query, a `FETCH`, a `DO`
//! block or a `CALL`, with everything they run: functions, triggers, and the portals of cursors
//! they open and fetch from (a PL/pgSQL `FOR` loop over a query, `OPEN`/`FETCH`), which Postgres
//! makes `ActivePortal` while they run. A portal first seen while another known portal is
//! running (`PORTAL_ACTIVE`), or one created by the same client command as a known one (the
//! same `creation_time`: a cursor that ran wasm before its statement's own portal did), belongs
//! to that one's statement; any other starts a statement. A cursor's portal keeps its statement
//! for all its fetches. A
//! memory context callback on each portal's memory tells when it is dropped; a statement ends
//! when all its portals are, and the ended ones are collected at the next resolution, so nothing
//! is freed from inside the callback. Without an active portal (a background or parallel
//! worker, a call from a validator) there is no statement: number 0, and nothing is pinned.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use pgrx::pg_sys;

thread_local! {
    static STATEMENTS: RefCell<Statements> = RefCell::new(Statements::default());
    /// Portals dropped since the last [`ended`], by address. Separate from `STATEMENTS` so the
    /// callback never meets a borrowed cell.
    static DROPPED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Statements {
    /// Live portals seen running wasm code, by address, with their statement's number.
    portals: HashMap<usize, u64>,
    last: u64,
}

/// The numbers of the statements that ended (all their portals dropped) since the last call.
pub fn ended() -> HashSet<u64> {
    let dropped = DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    if dropped.is_empty() {
        return HashSet::new();
    }
    STATEMENTS.with(|s| {
        let mut s = s.borrow_mut();
        let mut candidates = HashSet::new();
        for address in dropped {
            if let Some(id) = s.portals.remove(&address) {
                candidates.insert(id);
            }
        }
        let live: HashSet<u64> = s.portals.values().copied().collect();
        candidates.retain(|id| !live.contains(id));
        candidates
    })
}

/// The running statement's number (0: none). Call [`ended`] first: a new portal may have the
/// address of one that was dropped.
pub fn current() -> u64 {
    // SAFETY: a read of the backend's global; the portal it points to is valid while it is set.
    let portal = unsafe { pg_sys::ActivePortal };
    if portal.is_null() {
        return 0;
    }
    let address = portal as usize;
    STATEMENTS.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(id) = s.portals.get(&address) {
            return *id;
        }
        // SAFETY: every portal in the map is live (dropped ones were collected by `ended`,
        // which the caller ran first), so reading its fields is valid; so is the active one.
        let outer = unsafe {
            let created = (*portal).creation_time;
            let running =
                |other: pg_sys::Portal| (*other).status == pg_sys::PortalStatus::PORTAL_ACTIVE;
            let sibling = |other: pg_sys::Portal| (*other).creation_time == created;
            let find = |test: &dyn Fn(pg_sys::Portal) -> bool| {
                s.portals
                    .iter()
                    .find_map(|(other, id)| test(*other as pg_sys::Portal).then_some(*id))
            };
            find(&running).or_else(|| find(&sibling))
        };
        // SAFETY: the active portal's memory lives until the portal is dropped; the callback
        // record is allocated in it, so it lives exactly as long as needed.
        unsafe {
            let context = (*portal).portalContext;
            if context.is_null() {
                return 0;
            }
            let id = outer.unwrap_or_else(|| {
                s.last += 1;
                s.last
            });
            let callback = pg_sys::MemoryContextAlloc(
                context,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            ) as *mut pg_sys::MemoryContextCallback;
            callback.write(pg_sys::MemoryContextCallback {
                func: Some(portal_dropped),
                arg: address as *mut std::ffi::c_void,
                next: std::ptr::null_mut(),
            });
            pg_sys::MemoryContextRegisterResetCallback(context, callback);
            s.portals.insert(address, id);
            id
        }
    })
}

/// Runs when a portal's memory is reset or deleted: only records the portal's address.
unsafe extern "C-unwind" fn portal_dropped(arg: *mut std::ffi::c_void) {
    let address = arg as usize;
    DROPPED.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            d.push(address);
        }
    });
}

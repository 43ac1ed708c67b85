//! Per-function call statistics of this backend (`wasm.stats`).
//!
//! Each call site holds its function's counters (resolved once per site), so a call adds to
//! them without a lookup: calls, calls that failed in wasm (a trap, an error or panic the module
//! raised, fuel or an interrupt that stopped it), and fuel used. Times are measured only while
//! Postgres's `track_functions` is `pl` or `all`, as Postgres itself measures them for
//! `pg_stat_user_functions` (which, with that setting, also has calls and times cluster-wide):
//! reading the clock twice is a large part of a trivial call.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use pgrx::pg_sys;

use crate::catalog::privileges;

/// One function's counters.
#[derive(Default)]
pub struct FunctionStats {
    module: RefCell<String>,
    export: RefCell<String>,
    calls: Cell<u64>,
    failures: Cell<u64>,
    fuel: Cell<u64>,
    timed_calls: Cell<u64>,
    total_ns: Cell<u64>,
    max_ns: Cell<u64>,
}

thread_local! {
    /// By function and role (the current user when the call site was resolved): a role sees
    /// only the counters of roles it has the privileges of.
    static STATS: RefCell<HashMap<(pg_sys::Oid, pg_sys::Oid), Rc<FunctionStats>>> =
        RefCell::new(HashMap::new());
}

/// May the current user see (and reset) `role`'s counters?
fn visible(role: pg_sys::Oid) -> bool {
    let user = privileges::current_user();
    // SAFETY: a catalog check of role membership.
    role == user || unsafe { pg_sys::has_privs_of_role(user, role) }
}

/// The counters of function `oid` for the current user, bound to `module`'s `export` (as last
/// resolved).
pub fn of(oid: pg_sys::Oid, module: &str, export: &str) -> Rc<FunctionStats> {
    let role = privileges::current_user();
    let stats = STATS.with(|s| s.borrow_mut().entry((oid, role)).or_default().clone());
    module.clone_into(&mut stats.module.borrow_mut());
    export.clone_into(&mut stats.export.borrow_mut());
    stats
}

impl FunctionStats {
    /// Before a call: the clock, if calls are timed.
    #[inline]
    pub fn start(&self) -> Option<Instant> {
        // SAFETY: a read of the backend's setting.
        (unsafe { pg_sys::pgstat_track_functions }
            != pg_sys::TrackFunctionsLevel::TRACK_FUNC_OFF as i32)
            .then(Instant::now)
    }

    /// After a call that used `fuel`, started at `started`, and `failed` in wasm or not.
    #[inline]
    pub fn record(&self, started: Option<Instant>, fuel: u64, failed: bool) {
        self.calls.set(self.calls.get() + 1);
        self.fuel.set(self.fuel.get().saturating_add(fuel));
        if failed {
            self.failures.set(self.failures.get() + 1);
        }
        if let Some(started) = started {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.timed_calls.set(self.timed_calls.get() + 1);
            self.total_ns.set(self.total_ns.get().saturating_add(ns));
            self.max_ns.set(self.max_ns.get().max(ns));
        }
    }
}

/// One row of `wasm.stats`.
pub struct Row {
    pub function: pg_sys::Oid,
    pub role: pg_sys::Oid,
    pub module: String,
    pub export: String,
    pub calls: i64,
    pub failures: i64,
    pub fuel: i64,
    pub timed_calls: i64,
    /// Milliseconds, over the timed calls (None when none was timed).
    pub total_time: Option<f64>,
    pub max_time: Option<f64>,
}

/// This backend's counters, one row per function and role called since the last [`reset`],
/// for the roles the current user has the privileges of.
pub fn rows() -> Vec<Row> {
    let ms = |ns: u64| ns as f64 / 1e6;
    let counters: Vec<_> = STATS.with(|s| {
        s.borrow()
            .iter()
            .filter(|(_, f)| f.calls.get() > 0)
            .map(|(key, f)| (*key, f.clone()))
            .collect()
    });
    let mut rows: Vec<Row> = counters
        .into_iter()
        .filter(|((_, role), _)| visible(*role))
        .map(|((oid, role), f)| {
            let timed = f.timed_calls.get() > 0;
            Row {
                function: oid,
                role,
                module: f.module.borrow().clone(),
                export: f.export.borrow().clone(),
                calls: f.calls.get() as i64,
                failures: f.failures.get() as i64,
                fuel: f.fuel.get().min(i64::MAX as u64) as i64,
                timed_calls: f.timed_calls.get() as i64,
                total_time: timed.then(|| ms(f.total_ns.get())),
                max_time: timed.then(|| ms(f.max_ns.get())),
            }
        })
        .collect();
    rows.sort_by_key(|r| (u32::from(r.function), u32::from(r.role)));
    rows
}

/// Zero this backend's counters of the roles the current user has the privileges of.
pub fn reset() {
    let counters: Vec<_> = STATS.with(|s| {
        s.borrow()
            .iter()
            .map(|((_, role), f)| (*role, f.clone()))
            .collect()
    });
    for (role, f) in counters {
        if visible(role) {
            for counter in [
                &f.calls,
                &f.failures,
                &f.fuel,
                &f.timed_calls,
                &f.total_ns,
                &f.max_ns,
            ] {
                counter.set(0);
            }
        }
    }
}

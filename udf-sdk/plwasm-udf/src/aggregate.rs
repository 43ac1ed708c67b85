//! Aggregate states that stay inside the module's instance between rows (`#[aggregate]`).
//!
//! Postgres keeps only a `bigint` handle as the aggregate's transition state (`STYPE = bigint`,
//! `INITCOND = '0'`); the state itself is a Rust value in this instance's memory, so a row costs
//! one call that updates it in place, whatever its size (a median over a million rows is linear).
//!
//! - Handle 0 (the initial state) makes a new state; the step function returns its handle, a
//!   random 63-bit number from the host ([`random_u64`]): another query in the same instance
//!   (a view's caller, a function called mid-query, a cursor under another role) cannot guess it.
//! - The final function consumes the state (the aggregate is declared `FINALFUNC_MODIFY =
//!   READ_WRITE`, so Postgres calls it once per state and refuses window use).
//! - States whose final function never ran (the query failed or was cancelled) are dropped when
//!   the first state of a later transaction is made ([`transaction_id`]).
//! - A handle this instance does not hold for this aggregate is an ERROR, never another state.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::host::{raise_error_code, random_u64, transaction_id};

thread_local! {
    static STATES: RefCell<HashMap<i64, Box<dyn Any>>> = RefCell::new(HashMap::new());
    /// The transaction whose states [`STATES`] holds.
    static TRANSACTION: Cell<Option<i64>> = const { Cell::new(None) };
}

fn lost(handle: i64) -> ! {
    raise_error_code(
        "55000",
        &format!(
            "aggregate state {handle} is not a state of this aggregate in this instance of the module"
        ),
    )
}

/// The transition function: apply `step` to the state `handle` names (a new `S` for 0), and
/// return its handle.
pub fn aggregate_step<S: Default + 'static>(handle: i64, step: impl FnOnce(&mut S)) -> i64 {
    if handle != 0 {
        // The state is updated where it is: a row costs one lookup. (A panic in `step` traps,
        // and the host then discards the whole instance, half-updated state included.)
        return STATES.with(|states| {
            match states
                .borrow_mut()
                .get_mut(&handle)
                .and_then(|state| state.downcast_mut::<S>())
            {
                Some(state) => step(state),
                None => lost(handle),
            }
            handle
        });
    }
    let transaction = transaction_id();
    let mut state = S::default();
    step(&mut state);
    STATES.with(|states| {
        let mut states = states.borrow_mut();
        // States left by failed or cancelled queries of earlier transactions: nothing can ask
        // for them any more. (Checked once per new state, cleared once per transaction.)
        if TRANSACTION.with(|t| t.replace(Some(transaction))) != Some(transaction) {
            states.clear();
        }
        let handle = loop {
            let candidate = (random_u64() >> 1) as i64;
            if candidate != 0 && !states.contains_key(&candidate) {
                break candidate;
            }
        };
        states.insert(handle, Box::new(state));
        handle
    })
}

/// The final function: `finish` on the state `handle` names (on a fresh `S` for 0: no rows),
/// which it consumes.
pub fn aggregate_finish<S: Default + 'static, R>(
    handle: i64,
    finish: impl FnOnce(&mut S) -> R,
) -> R {
    if handle == 0 {
        return finish(&mut S::default());
    }
    let state = STATES.with(|states| {
        let mut states = states.borrow_mut();
        match states.get(&handle) {
            Some(state) if state.is::<S>() => states.remove(&handle),
            _ => None,
        }
    });
    match state.and_then(|state| state.downcast::<S>().ok()) {
        Some(mut state) => finish(&mut state),
        None => lost(handle),
    }
}

/// How many states this instance holds (for tests).
#[doc(hidden)]
pub fn live_states() -> usize {
    STATES.with(|states| states.borrow().len())
}

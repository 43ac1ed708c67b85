//! Aggregate states that stay inside the module's instance between rows (`#[aggregate]`).
//!
//! Postgres keeps only a `bigint` handle as the aggregate's transition state (`STYPE = bigint`,
//! `INITCOND = '0'`); the state itself is a Rust value in this instance's memory, so a row costs
//! one call that updates it in place, whatever its size (a median over a million rows is linear).
//!
//! - Handle 0 (the initial state) makes a new state; the step function returns its handle, a
//!   random 63-bit number from the host ([`random_u64`]): another query in the same instance
//!   (a view's caller, a function called mid-query) cannot guess it, and no error prints one.
//! - The final function leaves the state as it was: Postgres may finalize a state more than once
//!   (a window aggregate, a hash aggregate rescanned in a correlated subquery).
//! - States live until the first state of a later transaction is made ([`transaction_id`]):
//!   Postgres does not say when it is done with one. A transaction that makes very many states
//!   (moving-frame windows restart the aggregate on every row; EXISTS and LIMIT stop before
//!   finalizing; savepoints roll back failed aggregates) holds them all, within
//!   `wasm.max_memory`.
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

fn lost() -> ! {
    // (Without the handle: an error message must not hand out handles of live states.)
    raise_error_code(
        "55000",
        "the aggregate's state is not in this instance of the module (the instance was replaced \
         during the query, or the handle is not this aggregate's)",
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
                None => lost(),
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
/// which stays for a later call.
pub fn aggregate_finish<S: Default + 'static, R>(
    handle: i64,
    finish: impl FnOnce(&mut S) -> R,
) -> R {
    if handle == 0 {
        return finish(&mut S::default());
    }
    STATES.with(|states| {
        match states
            .borrow_mut()
            .get_mut(&handle)
            .and_then(|state| state.downcast_mut::<S>())
        {
            Some(state) => finish(state),
            None => lost(),
        }
    })
}

/// How many states this instance holds (for tests).
#[doc(hidden)]
pub fn live_states() -> usize {
    STATES.with(|states| states.borrow().len())
}

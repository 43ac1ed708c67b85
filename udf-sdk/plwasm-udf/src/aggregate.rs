//! Aggregate states that stay inside the module's instance between rows (`#[aggregate]`).
//!
//! Postgres keeps only a `bigint` handle as the aggregate's transition state (`STYPE = bigint`,
//! `INITCOND = '0'`); the state itself is a Rust value in this instance's memory, so a row costs
//! one call that updates it in place, whatever its size (a median over a million rows is linear).
//!
//! - Handle 0 (the initial state) makes a new state; the step function returns its handle.
//! - States belong to the transaction that made them ([`transaction_id`]): making a new state
//!   drops every state of an earlier transaction, so states of queries that were cancelled or
//!   failed before their final function do not accumulate. (The final function does not drop its
//!   state: Postgres may call it more than once, e.g. for a window aggregate.)
//! - A handle this instance does not know (its instance was replaced during the query) is an
//!   ERROR, never another query's state.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::host::{raise_error_code, transaction_id};

struct Slot {
    transaction: i64,
    state: Box<dyn Any>,
}

thread_local! {
    static STATES: RefCell<HashMap<i64, Slot>> = RefCell::new(HashMap::new());
    static NEXT: std::cell::Cell<i64> = const { std::cell::Cell::new(1) };
}

fn lost(handle: i64) -> ! {
    raise_error_code(
        "55000",
        &format!(
            "aggregate state {handle} is not in this instance of the module (it was reset during the query)"
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
                .and_then(|slot| slot.state.downcast_mut::<S>())
            {
                Some(state) => step(state),
                None => lost(handle),
            }
            handle
        });
    }
    let transaction = transaction_id();
    let handle = NEXT.with(|next| {
        let handle = next.get();
        next.set(handle + 1);
        handle
    });
    let mut state = S::default();
    step(&mut state);
    STATES.with(|states| {
        let mut states = states.borrow_mut();
        // States of finished transactions will not be asked for again.
        states.retain(|_, slot| slot.transaction == transaction);
        states.insert(
            handle,
            Slot {
                transaction,
                state: Box::new(state),
            },
        );
    });
    handle
}

/// The final function: `finish` on the state `handle` names (on a fresh `S` for 0: no rows).
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
            .and_then(|slot| slot.state.downcast_mut::<S>())
        {
            Some(state) => finish(state),
            None => lost(handle),
        }
    })
}

/// How many states this instance holds (for tests).
#[doc(hidden)]
pub fn live_states() -> usize {
    STATES.with(|states| states.borrow().len())
}

//! `#[aggregate]` natively: the state stays in the instance between rows, behind a handle.

use plwasm_udf::{__private::live_states, aggregate, testing};

/// The mean of the non-NULL values.
#[derive(Default)]
struct Mean {
    sum: f64,
    count: u32,
}

#[aggregate]
impl Mean {
    fn step(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    fn finish(&mut self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// A row count: no arguments (`row_count(*)`).
#[derive(Default)]
struct RowCount(i64);

#[aggregate]
impl RowCount {
    fn step(&mut self) {
        self.0 += 1;
    }

    fn finish(&mut self) -> i64 {
        self.0
    }
}

/// Parameters named like the generated code's own variables.
#[derive(Default)]
struct Hygiene(i64);

#[aggregate]
impl Hygiene {
    fn step(&mut self, s: i64, state: i64) {
        self.0 += s * state;
    }

    fn finish(&mut self) -> i64 {
        self.0
    }
}

#[derive(Default)]
struct LongestWord(String);

#[aggregate(name = "longest")]
impl LongestWord {
    fn step(&mut self, #[sql("varchar")] word: &str) {
        if word.len() > self.0.len() {
            self.0 = word.to_string();
        }
    }

    fn finish(&self) -> String {
        self.0.clone()
    }
}

#[test]
fn state_stays_behind_one_handle() {
    testing::set_transaction(7);
    let handle = __plwasm_aggregate_mean_step(0, 3.0);
    // Random 63-bit handles, not a counter another query could guess (2^-43 odds of a false
    // failure per handle).
    assert!(handle > 1 << 20, "{handle}");
    for v in [1.0, 2.0, 10.0] {
        assert_eq!(__plwasm_aggregate_mean_step(handle, v), handle);
    }
    let words = __plwasm_aggregate_longest_word_step(0, "a");
    assert!(words > 1 << 20 && words != handle, "{words}");
    __plwasm_aggregate_longest_word_step(words, "abc");
    assert_eq!(live_states(), 2);
    assert_eq!(__plwasm_aggregate_mean_final(handle), Some(4.0));
    // The final function may run again (window aggregates, rescans): the state is still there.
    assert_eq!(__plwasm_aggregate_mean_final(handle), Some(4.0));
    assert_eq!(live_states(), 2);
    // No rows: the initial state.
    assert_eq!(__plwasm_aggregate_mean_final(0), None);
    // A handle of another aggregate's state is refused, and the state stays.
    assert!(std::panic::catch_unwind(|| __plwasm_aggregate_mean_final(words)).is_err());
    assert_eq!(__plwasm_aggregate_longest_word_final(words), "abc");

    // States are dropped with the first state of a later transaction.
    let orphan = __plwasm_aggregate_mean_step(0, 1.0);
    assert_eq!(live_states(), 3);
    testing::set_transaction(8);
    let next = __plwasm_aggregate_mean_step(0, 1.0);
    assert_eq!(live_states(), 1);
    assert!(std::panic::catch_unwind(|| __plwasm_aggregate_mean_step(orphan, 1.0)).is_err());
    assert_eq!(__plwasm_aggregate_mean_final(next), Some(1.0));
}

#[test]
fn no_arguments_and_hygiene() {
    let rows = __plwasm_aggregate_row_count_step(0);
    __plwasm_aggregate_row_count_step(rows);
    assert_eq!(__plwasm_aggregate_row_count_final(rows), 2);
    let h = __plwasm_aggregate_hygiene_step(0, 2, 3);
    assert_eq!(__plwasm_aggregate_hygiene_final(h), 6);
}

#[test]
#[should_panic(expected = "55000: the aggregate's state is not in this instance")]
fn unknown_handles_are_errors() {
    __plwasm_aggregate_mean_step(999, 1.0);
}

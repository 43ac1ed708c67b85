//! `#[aggregate]` natively: the state stays in the instance between rows, behind a handle.

use plwasm_udf::{__private::live_states, aggregate, testing};

/// The median of the non-NULL values.
#[derive(Default)]
struct Median(Vec<f64>);

#[aggregate]
impl Median {
    fn step(&mut self, value: f64) {
        self.0.push(value);
    }

    fn finish(&mut self) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_by(f64::total_cmp);
        let mid = self.0.len() / 2;
        Some(if self.0.len() % 2 == 1 {
            self.0[mid]
        } else {
            (self.0[mid - 1] + self.0[mid]) / 2.0
        })
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
    let handle = __plwasm_aggregate_median_step(0, 3.0);
    assert_ne!(handle, 0);
    for v in [1.0, 2.0, 10.0] {
        assert_eq!(__plwasm_aggregate_median_step(handle, v), handle);
    }
    assert_eq!(__plwasm_aggregate_median_final(handle), Some(2.5));
    // The final function may run again (window aggregates): the state is still there.
    assert_eq!(__plwasm_aggregate_median_final(handle), Some(2.5));
    // No rows: the initial state.
    assert_eq!(__plwasm_aggregate_median_final(0), None);

    let words = __plwasm_aggregate_longest_word_step(0, "a");
    __plwasm_aggregate_longest_word_step(words, "abc");
    assert_eq!(__plwasm_aggregate_longest_word_final(words), "abc");
    assert_eq!(live_states(), 2);

    // A new state in a later transaction drops the states of earlier ones.
    testing::set_transaction(8);
    let next = __plwasm_aggregate_median_step(0, 1.0);
    assert_eq!(live_states(), 1);
    assert_eq!(__plwasm_aggregate_median_final(next), Some(1.0));
}

#[test]
#[should_panic(expected = "55000: aggregate state 999 is not in this instance")]
fn unknown_handles_are_errors() {
    __plwasm_aggregate_median_step(999, 1.0);
}

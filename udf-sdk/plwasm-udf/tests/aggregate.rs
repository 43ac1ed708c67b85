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
    assert_ne!(handle, 0);
    for v in [1.0, 2.0, 10.0] {
        assert_eq!(__plwasm_aggregate_mean_step(handle, v), handle);
    }
    assert_eq!(__plwasm_aggregate_mean_final(handle), Some(4.0));
    // The final function may run again (window aggregates): the state is still there.
    assert_eq!(__plwasm_aggregate_mean_final(handle), Some(4.0));
    // No rows: the initial state.
    assert_eq!(__plwasm_aggregate_mean_final(0), None);

    let words = __plwasm_aggregate_longest_word_step(0, "a");
    __plwasm_aggregate_longest_word_step(words, "abc");
    assert_eq!(__plwasm_aggregate_longest_word_final(words), "abc");
    assert_eq!(live_states(), 2);

    // A new state in a later transaction drops the states of earlier ones.
    testing::set_transaction(8);
    let next = __plwasm_aggregate_mean_step(0, 1.0);
    assert_eq!(live_states(), 1);
    assert_eq!(__plwasm_aggregate_mean_final(next), Some(1.0));
}

#[test]
#[should_panic(expected = "55000: aggregate state 999 is not in this instance")]
fn unknown_handles_are_errors() {
    __plwasm_aggregate_mean_step(999, 1.0);
}

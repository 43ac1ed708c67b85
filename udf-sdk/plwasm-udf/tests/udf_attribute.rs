//! `#[udf]` accepts every supported signature and leaves the function callable natively (the
//! wasm export and metadata are generated for wasm32 only). The same functions are built for
//! wasm by `tests/sdk-signatures` and called in a real server by pg_regress `sdk_signatures.sql`,
//! which checks the generated glue and description.

include!("common/signatures.rs");

#[test]
fn functions_stay_callable() {
    assert_eq!(add(2, 3), 5);
    assert_eq!(shout("ab", 2), "ABAB");
    assert_eq!(scalars(1, 0.5, 0.25, true), 2.75);
    assert_eq!(bytes(b"a", b"b".to_vec()), b"ab");
    assert_eq!(
        arrays(vec![1.0], vec![1], vec![], vec![], vec![], vec![]),
        vec![1.0]
    );
    assert_eq!(json(serde_json::json!(1))["wrapped"], 1);
    assert_eq!(
        nullable(None, Some("x".into())).as_deref(),
        Some("None Some(\"x\")")
    );
    assert_eq!(fallible(-1), Err("negative".to_string()));
    nothing(1);
}

#[test]
fn logging_is_recorded_natively() {
    plwasm_udf::notice!("n = {}", 1);
    assert_eq!(
        plwasm_udf::testing::take_logs(),
        vec![(3, "n = 1".to_string())]
    );
}

#[test]
fn serde_types_stay_callable() {
    let m = mirror(Point { x: 1.0, y: 2.0 }, None);
    assert_eq!((m.x, m.y), (-1.0, -2.0));
}
#[test]
fn set_returning_functions_stay_callable() {
    assert_eq!(evens(5).collect::<Vec<_>>(), vec![0, 2, 4]);
    assert_eq!(maybe_words("a  b").len(), 3);
    assert_eq!(points(2).count(), 2);
}
#[test]
fn explicit_sql_types_stay_callable() {
    assert_eq!(halve(3.0, None), 1.5);
    assert_eq!(origin().x, 0.0);
    assert_eq!(diagonal(3).count(), 3);
    assert_eq!(varchar_len("abc"), 3);
}

#[test]
fn log_macros_are_recorded_natively_in_order() {
    plwasm_udf::testing::take_logs();
    assert_eq!(chatty(7), 7);
    let levels: Vec<i32> = plwasm_udf::testing::take_logs()
        .into_iter()
        .map(|(level, _)| level)
        .collect();
    assert_eq!(levels, vec![0, 2, 3, 4]);
}

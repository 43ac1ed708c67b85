//! `#[udf]` accepts every supported signature and leaves the function callable natively (the
//! wasm export and metadata are generated for wasm32 only).

use plwasm_udf::udf;

#[udf(immutable)]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[udf(name = "shout_sql", stable)]
fn shout(s: &str, times: i16) -> String {
    s.to_uppercase().repeat(times as usize)
}

#[udf]
fn scalars(a: i64, b: f32, c: f64, d: bool) -> f64 {
    a as f64 + b as f64 + c + d as i32 as f64
}

#[udf]
fn bytes(a: &[u8], b: Vec<u8>) -> Vec<u8> {
    [a, &b].concat()
}

#[udf]
fn arrays(
    a: Vec<f64>,
    b: Vec<i32>,
    c: Vec<bool>,
    d: Vec<i16>,
    e: Vec<i64>,
    f: Vec<f32>,
) -> Vec<f64> {
    let n = (b.len() + c.len() + d.len() + e.len() + f.len()) as f64;
    a.into_iter().map(|x| x * n).collect()
}

#[udf]
fn json(v: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "wrapped": v })
}

#[udf]
fn nullable(a: Option<i32>, b: Option<String>) -> Option<String> {
    Some(format!("{a:?} {b:?}"))
}

#[udf]
fn fallible(n: i32) -> Result<i32, String> {
    if n < 0 {
        Err("negative".into())
    } else {
        Ok(n)
    }
}

#[udf]
fn nothing(_n: i32) {}

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

#[derive(serde::Deserialize, serde::Serialize)]
struct Point {
    x: f64,
    y: f64,
}

/// Any Serialize + DeserializeOwned type travels as jsonb.
#[udf(immutable)]
fn mirror(p: Point, q: Option<Point>) -> Point {
    let q = q.unwrap_or(Point { x: 0.0, y: 0.0 });
    Point {
        x: -p.x + q.x,
        y: -p.y + q.y,
    }
}

#[test]
fn serde_types_stay_callable() {
    let m = mirror(Point { x: 1.0, y: 2.0 }, None);
    assert_eq!((m.x, m.y), (-1.0, -2.0));
}

#[udf]
fn evens(n: i32) -> impl Iterator<Item = i32> {
    (0..n).filter(|i| i % 2 == 0)
}

#[udf(setof)]
fn maybe_words(s: &str) -> Vec<Option<String>> {
    s.split(' ')
        .map(|w| (!w.is_empty()).then(|| w.to_string()))
        .collect()
}

#[udf]
fn points(n: i32) -> impl Iterator<Item = Point> {
    (0..n).map(|i| Point {
        x: i as f64,
        y: 0.0,
    })
}

#[test]
fn set_returning_functions_stay_callable() {
    assert_eq!(evens(5).collect::<Vec<_>>(), vec![0, 2, 4]);
    assert_eq!(maybe_words("a  b").len(), 3);
    assert_eq!(points(2).count(), 2);
}

/// SQL types without a native encoding travel as JSON: any serde type can take them.
#[udf(immutable, returns = "numeric")]
fn halve(#[sql("numeric")] x: f64, #[sql("date")] day: Option<String>) -> f64 {
    let _ = day;
    x / 2.0
}

/// A composite result (`returns = "point2d"`) and RETURNS TABLE rows are serde structs.
#[udf(returns = "point2d")]
fn origin() -> Point {
    Point { x: 0.0, y: 0.0 }
}

#[udf(table(x = "double precision", y = "double precision"))]
fn diagonal(n: i32) -> impl Iterator<Item = Point> {
    (0..n).map(|i| Point {
        x: i as f64,
        y: i as f64,
    })
}

/// varchar is passed natively, like text: `#[sql]` only renames the SQL type.
#[udf(stable)]
fn varchar_len(#[sql("varchar")] s: &str) -> i32 {
    s.len() as i32
}

#[test]
fn explicit_sql_types_stay_callable() {
    assert_eq!(halve(3.0, None), 1.5);
    assert_eq!(origin().x, 0.0);
    assert_eq!(diagonal(3).count(), 3);
    assert_eq!(varchar_len("abc"), 3);
}

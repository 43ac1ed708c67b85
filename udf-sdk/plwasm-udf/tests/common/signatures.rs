// Every `#[udf]` signature the SDK supports, one function each. Two crates include this file:
// the native test `tests/udf_attribute.rs` (the functions stay plain Rust functions) and the wasm
// fixture `tests/sdk-signatures` at the repository root, which pg_regress `sdk_signatures.sql`
// loads into a real server to check the generated glue and its `plwasm.udfs` description.

use plwasm_udf::udf;

#[udf(immutable)]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[udf(name = "shout_sql", stable, parallel_safe, cost = 0.5)]
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

#[udf(table(x = "double precision", y = "double precision"), rows = 12, cost = 25)]
fn diagonal(n: i32) -> impl Iterator<Item = Point> {
    (0..n).map(|i| Point {
        x: i as f64,
        y: i as f64,
    })
}

/// varchar is passed natively, like text: `#[sql]` only renames the SQL type.
#[udf(stable, parallel_restricted)]
fn varchar_len(#[sql("varchar")] s: &str) -> i32 {
    s.len() as i32
}

/// The log macros reach the server as messages of their level, in order.
#[udf]
fn chatty(n: i32) -> i32 {
    plwasm_udf::debug!("debug {n}");
    plwasm_udf::info!("info {n}");
    plwasm_udf::notice!("notice {n}");
    plwasm_udf::warning!("warning {n}");
    n
}

/// Rows counted by an aggregate without arguments: `row_count(*)`.
#[derive(Default)]
pub struct RowCount(i64);

/// How many rows.
#[plwasm_udf::aggregate]
impl RowCount {
    fn step(&mut self) {
        self.0 += 1;
    }

    fn finish(&mut self) -> i64 {
        self.0
    }
}

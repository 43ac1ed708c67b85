use plwasm_udf::udf;

#[derive(serde::Deserialize)]
struct Point {
    x: f64,
}

#[udf]
fn x_of(#[sql("integer[]")] p: Point) -> f64 {
    p.x
}

fn main() {}

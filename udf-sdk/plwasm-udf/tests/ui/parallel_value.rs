use plwasm_udf::udf;

#[udf(parallel = "sometimes")]
fn one() -> i32 {
    1
}

fn main() {}

use plwasm_udf::udf;

#[udf(immutable, fast)]
fn one() -> i32 {
    1
}

fn main() {}

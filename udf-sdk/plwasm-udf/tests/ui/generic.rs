use plwasm_udf::udf;

#[udf]
fn identity<T>(x: T) -> T {
    x
}

fn main() {}

use plwasm_udf::udf;

#[udf]
fn count_bits(x: u32) -> u32 {
    x.count_ones()
}

fn main() {}

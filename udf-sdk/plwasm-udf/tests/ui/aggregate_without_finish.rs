use plwasm_udf::aggregate;

#[derive(Default)]
struct Total(i64);

#[aggregate]
impl Total {
    fn step(&mut self, x: i64) {
        self.0 += x;
    }
}

fn main() {}

//! The benchmarks' compute kernels as SQL functions (plwasm Rust SDK), built with `opt-level = 3`.
//! `bench/native` wraps the very same source files in a native pgrx extension.

use plwasm_udf::udf;

mod compute;
#[path = "../../../examples/rust/text-udfs/src/kernels.rs"]
mod text;

#[udf(immutable)]
fn kernel_fib(n: i32) -> i32 {
    compute::fib(n)
}

#[udf(immutable)]
fn kernel_sha256(data: &[u8]) -> String {
    compute::sha256_hex(data)
}

#[udf(immutable)]
fn kernel_levenshtein(a: &str, b: &str) -> i32 {
    text::levenshtein(a, b)
}

#[udf(immutable)]
fn kernel_slugify(title: &str) -> String {
    text::slugify(title)
}
